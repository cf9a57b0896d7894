//! `/api/v1/users/*`: profiles, password, account deletion, sessions, API keys, blocks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use palaver_protocol::rest::{
    ApiKeyList, BlockList, ChangePasswordRequest, CreateApiKeyRequest, CreatedApiKey,
    DeleteAccountRequest, SessionList, UpdateProfileRequest, UserList,
};
use palaver_protocol::{PublicUser, User};

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(search))
        .route("/users/me", get(me).patch(update_me).delete(delete_me))
        .route("/users/me/password", put(change_password))
        .route("/users/me/sessions", get(sessions))
        .route("/users/me/sessions/{session_id}", delete(end_session))
        .route("/users/me/api-keys", get(api_keys).post(create_api_key))
        .route("/users/me/api-keys/{key_id}", delete(revoke_api_key))
        .route("/users/me/blocks", get(blocks))
        .route("/users/me/blocks/{user_id}", put(block).delete(unblock))
        .route("/users/{user_id}", get(profile))
}

/// # `GET /api/v1/users/me`
/// → `200 User`; `401 unauthorized`.
async fn me(State(state): State<AppState>, actor: Actor) -> AppResult<Json<User>> {
    Ok(Json(state.service.me(&actor).await?))
}

/// # `PATCH /api/v1/users/me`
/// `{display_name?, first_name?, last_name?, bio?, location?, website?, avatar_url?,
/// settings?}` (absent = unchanged, `null` = cleared) → `200 User`;
/// `422 validation_failed`.
async fn update_me(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<UpdateProfileRequest>,
) -> AppResult<Json<User>> {
    Ok(Json(state.service.update_profile(&actor, req).await?))
}

/// # `DELETE /api/v1/users/me`
/// `{password}` → `204`: the account is deleted; `401 invalid_credentials`.
async fn delete_me(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> AppResult<StatusCode> {
    state.service.delete_account(&actor, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # `PUT /api/v1/users/me/password`
/// `{current_password, new_password}` → `204`; every other session ends.
/// `401 invalid_credentials`; `422 validation_failed` (`new_password`).
async fn change_password(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    state.service.change_password(&actor, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # `GET /api/v1/users/me/sessions`
/// → `200 {sessions: [SessionInfo]}`, newest first.
async fn sessions(State(state): State<AppState>, actor: Actor) -> AppResult<Json<SessionList>> {
    let sessions = state.service.sessions(&actor).await?;
    Ok(Json(SessionList { sessions }))
}

/// # `DELETE /api/v1/users/me/sessions/{session_id}`
/// → `204`; `404 not_found` (not one of the caller's live sessions).
async fn end_session(
    State(state): State<AppState>,
    actor: Actor,
    Path(session_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.end_session(&actor, &session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # `GET /api/v1/users/me/api-keys`
/// → `200 {api_keys: [ApiKeyInfo]}` (never the secrets).
async fn api_keys(State(state): State<AppState>, actor: Actor) -> AppResult<Json<ApiKeyList>> {
    let api_keys = state.service.api_keys(&actor).await?;
    Ok(Json(ApiKeyList { api_keys }))
}

/// # `POST /api/v1/users/me/api-keys`
/// `{name, expires_at?}` → `201 {id, name, prefix, created_at, expires_at, last_used_at,
/// key}`: the key, shown this once. `422 validation_failed`.
async fn create_api_key(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateApiKeyRequest>,
) -> AppResult<(StatusCode, Json<CreatedApiKey>)> {
    let key = state.service.create_api_key(&actor, req).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// # `DELETE /api/v1/users/me/api-keys/{key_id}`
/// → `204`: the key stops working at once, open WebSockets included; `404 not_found`.
async fn revoke_api_key(
    State(state): State<AppState>,
    actor: Actor,
    Path(key_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.revoke_api_key(&actor, &key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # `GET /api/v1/users/me/blocks`
/// → `200 {blocked: [PublicUser]}`.
async fn blocks(State(state): State<AppState>, actor: Actor) -> AppResult<Json<BlockList>> {
    let blocked = state.service.blocked_users(&actor).await?;
    Ok(Json(BlockList { blocked }))
}

/// # `PUT /api/v1/users/me/blocks/{user_id}`
/// → `200 PublicUser` (the blocked user; idempotent); `404 not_found`;
/// `422 validation_failed` (oneself).
async fn block(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<PublicUser>> {
    Ok(Json(state.service.block(&actor, &user_id).await?))
}

/// # `DELETE /api/v1/users/me/blocks/{user_id}`
/// → `204`; `404 not_found` (no such block).
async fn unblock(
    State(state): State<AppState>,
    actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.unblock(&actor, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// # `GET /api/v1/users/{user_id}`
/// → `200 PublicUser`; `404 not_found`.
async fn profile(
    State(state): State<AppState>,
    _actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Json<PublicUser>> {
    Ok(Json(state.service.public_profile(&user_id).await?))
}

/// # `GET /api/v1/users?q=<prefix>&limit=<1..100>&after=<cursor>`
/// → `200 {users: [PublicUser], next}`: active users whose username starts with `q`.
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
