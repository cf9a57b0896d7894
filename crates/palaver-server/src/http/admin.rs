//! `/api/v1/admin/*`: account administration (role `admin` only).

use axum::extract::{Path, State};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use palaver_protocol::rest::{AdminUser, AdminUserList, SetRoleRequest};

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/users", get(list))
        .route("/admin/users/{user_id}/role", put(set_role))
        .route("/admin/users/{user_id}/disable", post(disable))
        .route("/admin/users/{user_id}/enable", post(enable))
}

/// # `GET /api/v1/admin/users?q=<prefix>&limit=<1..200>&after=<cursor>`
/// → `200 {users: [AdminUser], next}`; `403 forbidden` for non-admins.
async fn list(
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

/// # `PUT /api/v1/admin/users/{user_id}/role`
/// `{role: "user" | "moderator" | "admin"}` → `200 AdminUser`; `403`; `404`;
/// `409 conflict` (demoting oneself).
async fn set_role(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
    ApiJson(req): ApiJson<SetRoleRequest>,
) -> AppResult<Json<AdminUser>> {
    Ok(Json(
        state.service.set_role(&actor, &user_id, req.role).await?,
    ))
}

/// # `POST /api/v1/admin/users/{user_id}/disable`
/// → `200 AdminUser`: sessions end, WebSockets close, logins answer
/// `403 account_disabled`; `409 conflict` (oneself).
async fn disable(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<AdminUser>> {
    Ok(Json(
        state.service.set_disabled(&actor, &user_id, true).await?,
    ))
}

/// # `POST /api/v1/admin/users/{user_id}/enable`
/// → `200 AdminUser`.
async fn enable(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<AdminUser>> {
    Ok(Json(
        state.service.set_disabled(&actor, &user_id, false).await?,
    ))
}
