//! `/api/v1/users/*`: profiles, password, e-mail address, account deletion, sessions, API
//! keys, blocks.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::rest::{
    ApiKeyList, BlockList, ChangeEmailRequest, ChangePasswordRequest, CheckInbox,
    CreateApiKeyRequest, CreatedApiKey, DeleteAccountRequest, SessionList, UpdateProfileRequest,
    UserList,
};
use palaver_protocol::ws::PresenceInfo;
use palaver_protocol::ErrorBody;
use palaver_protocol::{PublicUser, User};

use super::extract::{client_info, ApiJson, ClientAddr, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::service::email::EmailChange;
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search))
        .routes(routes!(me, update_me, delete_me))
        .routes(routes!(change_password))
        .routes(routes!(change_email))
        .routes(routes!(sessions))
        .routes(routes!(end_session))
        .routes(routes!(api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(blocks))
        .routes(routes!(block, unblock))
        .routes(routes!(profile))
        .routes(routes!(presence))
}

/// Get the caller's profile.
///
/// `GET /api/v1/users/me`:
/// → `200 User`; `401 unauthorized`.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = "users",
    responses((status = 200, description = "the caller's profile", body = User), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn me(State(state): State<AppState>, actor: Actor) -> AppResult<Json<User>> {
    Ok(Json(state.service.me(&actor).await?))
}

/// Update the caller's profile.
///
/// `PATCH /api/v1/users/me`:
/// `{display_name?, first_name?, last_name?, bio?, location?, website?, avatar_url?,
/// settings?}` (absent = unchanged, `null` = cleared) → `200 User`;
/// `422 validation_failed`.
#[utoipa::path(
    patch,
    path = "/users/me",
    tag = "users",
    request_body = UpdateProfileRequest,
    responses((status = 200, description = "the updated profile", body = User), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn update_me(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<UpdateProfileRequest>,
) -> AppResult<Json<User>> {
    Ok(Json(state.service.update_profile(&actor, req).await?))
}

/// Delete the caller's account.
///
/// `DELETE /api/v1/users/me`:
/// `{password}` → `204`: the account is deleted; `401 invalid_credentials`.
#[utoipa::path(
    delete,
    path = "/users/me",
    tag = "users",
    request_body = DeleteAccountRequest,
    responses((status = 204, description = "the account is deleted"), (status = 401, description = "unauthorized or invalid_credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn delete_me(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> AppResult<StatusCode> {
    state.service.delete_account(&actor, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the caller's password.
///
/// `PUT /api/v1/users/me/password`:
/// `{current_password, new_password}` → `204`; every other session ends.
/// `401 invalid_credentials`; `422 validation_failed` (`new_password`).
#[utoipa::path(
    put,
    path = "/users/me/password",
    tag = "users",
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "changed; every other session ended"), (status = 401, description = "unauthorized or invalid_credentials", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    state.service.change_password(&actor, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change the caller's e-mail address.
///
/// `PUT /api/v1/users/me/email`:
/// `{email, password}` → without e-mail: `200 User`, changed at once (unverified);
/// `409 email_taken`. With e-mail (`[email]`): `202 {status: "check_your_inbox"}`: a link
/// goes to the new address (or, if another account has it, its owner is told someone
/// tried), and the account keeps its old address until the link is used
/// (`POST /api/v1/auth/verify-email`). `401 invalid_credentials`;
/// `422 validation_failed` (`email`, also the account's own address); `429 rate_limited`.
#[utoipa::path(
    put,
    path = "/users/me/email",
    tag = "users",
    request_body = ChangeEmailRequest,
    responses((status = 200, description = "changed (the server sends no e-mail)", body = User), (status = 202, description = "the server sends e-mail: a link went to the new address; nothing changes until it is used", body = CheckInbox), (status = 401, description = "unauthorized or invalid_credentials", body = ErrorBody), (status = 409, description = "email_taken (only when the server sends no e-mail)", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn change_email(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    client: ClientAddr,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> AppResult<Response> {
    let done = state
        .service
        .change_email(&actor, req, client_info(&headers, client))
        .await?;
    Ok(match done {
        EmailChange::Changed(user) => Json(*user).into_response(),
        EmailChange::Pending(inbox) => (StatusCode::ACCEPTED, Json(inbox)).into_response(),
    })
}

/// List the caller's sessions.
///
/// `GET /api/v1/users/me/sessions`:
/// → `200 {sessions: [SessionInfo]}`, newest first.
#[utoipa::path(
    get,
    path = "/users/me/sessions",
    tag = "sessions",
    responses((status = 200, description = "live sessions, newest first", body = SessionList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn sessions(State(state): State<AppState>, actor: Actor) -> AppResult<Json<SessionList>> {
    let sessions = state.service.sessions(&actor).await?;
    Ok(Json(SessionList { sessions }))
}

/// End a session.
///
/// `DELETE /api/v1/users/me/sessions/{session_id}`:
/// → `204`; `404 not_found` (not one of the caller's live sessions).
#[utoipa::path(
    delete,
    path = "/users/me/sessions/{session_id}",
    tag = "sessions",
    params(("session_id" = String, Path)),
    responses((status = 204, description = "the session ended"), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn end_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(session_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.end_session(&actor, &session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the caller's API keys.
///
/// `GET /api/v1/users/me/api-keys`:
/// → `200 {api_keys: [ApiKeyInfo]}` (never the secrets).
#[utoipa::path(
    get,
    path = "/users/me/api-keys",
    tag = "api_keys",
    responses((status = 200, description = "the caller's keys, without secrets", body = ApiKeyList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn api_keys(State(state): State<AppState>, actor: Actor) -> AppResult<Json<ApiKeyList>> {
    let api_keys = state.service.api_keys(&actor).await?;
    Ok(Json(ApiKeyList { api_keys }))
}

/// Create an API key.
///
/// `POST /api/v1/users/me/api-keys`:
/// `{name, expires_at?}` → `201 {id, name, prefix, created_at, expires_at, last_used_at,
/// key}`: the key, shown this once. `409 conflict` past 50 live keys;
/// `422 validation_failed`.
#[utoipa::path(
    post,
    path = "/users/me/api-keys",
    tag = "api_keys",
    request_body = CreateApiKeyRequest,
    responses((status = 201, description = "the key, shown this once", body = CreatedApiKey), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 409, description = "conflict: the caller already has 50 live keys", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create_api_key(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> AppResult<(
    StatusCode,
    [(axum::http::HeaderName, &'static str); 2],
    Json<CreatedApiKey>,
)> {
    let key = state.service.create_api_key(&actor, req).await?;
    Ok((StatusCode::CREATED, super::auth::NO_STORE, Json(key)))
}

/// Revoke an API key.
///
/// `DELETE /api/v1/users/me/api-keys/{key_id}`:
/// → `204`: the key stops working at once, open WebSockets included; `404 not_found`.
#[utoipa::path(
    delete,
    path = "/users/me/api-keys/{key_id}",
    tag = "api_keys",
    params(("key_id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn revoke_api_key(
    State(state): State<AppState>,
    actor: Actor,
    Path(key_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.revoke_api_key(&actor, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List blocked users.
///
/// `GET /api/v1/users/me/blocks`:
/// → `200 {blocked: [PublicUser]}`.
#[utoipa::path(
    get,
    path = "/users/me/blocks",
    tag = "blocks",
    responses((status = 200, description = "blocked users", body = BlockList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn blocks(State(state): State<AppState>, actor: Actor) -> AppResult<Json<BlockList>> {
    let blocked = state.service.blocked_users(&actor).await?;
    Ok(Json(BlockList { blocked }))
}

/// Block a user.
///
/// `PUT /api/v1/users/me/blocks/{user_id}`:
/// → `200 PublicUser` (the blocked user; idempotent); `404 not_found`;
/// `422 validation_failed` (oneself).
#[utoipa::path(
    put,
    path = "/users/me/blocks/{user_id}",
    tag = "blocks",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "blocked", body = PublicUser), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn block(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<PublicUser>> {
    Ok(Json(state.service.block(&actor, &user_id).await?))
}

/// Unblock a user.
///
/// `DELETE /api/v1/users/me/blocks/{user_id}`:
/// → `204`; `404 not_found` (no such block).
#[utoipa::path(
    delete,
    path = "/users/me/blocks/{user_id}",
    tag = "blocks",
    params(("user_id" = String, Path)),
    responses((status = 204, description = "unblocked"), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn unblock(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.unblock(&actor, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get a public profile.
///
/// `GET /api/v1/users/{user_id}`:
/// → `200 PublicUser`; `404 not_found`.
#[utoipa::path(
    get,
    path = "/users/{user_id}",
    tag = "users",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "a public profile", body = PublicUser), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn profile(
    State(state): State<AppState>,
    _actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<PublicUser>> {
    Ok(Json(state.service.public_profile(&user_id).await?))
}

/// Search users by username prefix.
///
/// `GET /api/v1/users?q=<prefix>&limit=<1..100>&after=<cursor>`:
/// → `200 {users: [PublicUser], next}`: active users whose username starts with `q`.
#[utoipa::path(
    get,
    path = "/users",
    tag = "users",
    params(("q" = Option<String>, Query, description = "username prefix"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "page size, 1..=100, default 20"), ("after" = Option<String>, Query, description = "the next cursor of the previous page")),
    responses((status = 200, description = "users whose username starts with q", body = UserList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn search(
    State(state): State<AppState>,
    _actor: Actor,
    query: Params,
) -> AppResult<Json<UserList>> {
    let q = query.get("q").unwrap_or("");
    let after = query.get("after");
    let limit = query.int("limit")?;
    Ok(Json(state.service.search_users(q, after, limit).await?))
}

/// Get a user's presence.
///
/// `GET /api/v1/users/{user_id}/presence`:
/// → `200 {user_id, status, status_text, last_seen}` for users who share a room with the
/// caller (and the caller themself); `404 not_found` for anyone else.
#[utoipa::path(
    get,
    path = "/users/{user_id}/presence",
    tag = "users",
    params(("user_id" = String, Path)),
    responses((status = 200, description = "presence", body = PresenceInfo),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn presence(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<PresenceInfo>> {
    Ok(Json(state.service.presence_of(&actor, &user_id).await?))
}
