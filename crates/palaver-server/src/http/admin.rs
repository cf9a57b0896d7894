//! `/api/v1/admin/*`: account administration (role `admin` only).

use axum::extract::{Path, State};
use axum::Json;
use palaver_protocol::rest::{AdminUser, AdminUserList, SetRoleRequest};
use palaver_protocol::ErrorBody;

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_accounts))
        .routes(routes!(set_account_role))
        .routes(routes!(disable_account))
        .routes(routes!(enable_account))
}

/// List accounts (admins).
///
/// `GET /api/v1/admin/users?q=<prefix>&limit=<1..200>&after=<cursor>`:
/// → `200 {users: [AdminUser], next}`; `403 forbidden` for non-admins.
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    params(("q" = Option<String>, Query, description = "username prefix"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "page size, 1..=200, default 50"), ("after" = Option<String>, Query, description = "the next cursor of the previous page")),
    responses((status = 200, description = "accounts, disabled ones included", body = AdminUserList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "forbidden", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_accounts(
    State(state): State<AppState>,
    actor: Actor,
    query: Params,
) -> AppResult<Json<AdminUserList>> {
    let q = query.get("q").unwrap_or("");
    let after = query.get("after");
    let limit = query.int("limit")?;
    Ok(Json(
        state.service.admin_users(&actor, q, after, limit).await?,
    ))
}

/// Set an account's role (admins).
///
/// `PUT /api/v1/admin/users/{user_id}/role`:
/// `{role: "user" | "moderator" | "admin"}` → `200 AdminUser`; `403`; `404`;
/// `409 conflict` (demoting oneself).
#[utoipa::path(
    put,
    path = "/admin/users/{user_id}/role",
    tag = "admin",
    request_body = SetRoleRequest,
    params(("user_id" = String, Path)),
    responses((status = 200, description = "role set", body = AdminUser), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "forbidden", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 409, description = "conflict: demoting oneself", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn set_account_role(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<SetRoleRequest>,
) -> AppResult<Json<AdminUser>> {
    Ok(Json(
        state.service.set_role(&actor, &user_id, req.role).await?,
    ))
}

/// Disable an account (admins).
///
/// `POST /api/v1/admin/users/{user_id}/disable`:
/// → `200 AdminUser`: sessions end, WebSockets close, logins answer
/// `403 account_disabled`; `409 conflict` (oneself).
#[utoipa::path(
    post,
    path = "/admin/users/{user_id}/disable",
    tag = "admin",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "disabled; sessions ended", body = AdminUser), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "forbidden", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 409, description = "conflict: disabling oneself", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn disable_account(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<AdminUser>> {
    Ok(Json(
        state.service.set_disabled(&actor, &user_id, true).await?,
    ))
}

/// Enable an account (admins).
///
/// `POST /api/v1/admin/users/{user_id}/enable`:
/// → `200 AdminUser`.
#[utoipa::path(
    post,
    path = "/admin/users/{user_id}/enable",
    tag = "admin",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "enabled", body = AdminUser), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "forbidden", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn enable_account(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<AdminUser>> {
    Ok(Json(
        state.service.set_disabled(&actor, &user_id, false).await?,
    ))
}
