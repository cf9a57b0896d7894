//! `/api/v1/auth/*`: register, log in, refresh, log out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use palaver_protocol::rest::{AuthResponse, LoginRequest, RefreshRequest, RegisterRequest};

use super::extract::{client_info, ApiJson};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
}

/// # `POST /api/v1/auth/register`
/// `{username, email, password}` → `201 {user, access_token, refresh_token, token_type,
/// expires_in}`; `409 username_taken | email_taken`; `422 validation_failed`;
/// `429 rate_limited`.
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> AppResult<(StatusCode, Json<AuthResponse>)> {
    let auth = state
        .service
        .register(req, client_info(&headers, peer))
        .await?;
    Ok((StatusCode::CREATED, Json(auth)))
}

/// # `POST /api/v1/auth/login`
/// `{login, password}` (login = username or email) → `200` same shape as register;
/// `401 invalid_credentials`; `403 account_disabled`; `429 rate_limited`.
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<Json<AuthResponse>> {
    let auth = state
        .service
        .login(req, client_info(&headers, peer))
        .await?;
    Ok(Json(auth))
}

/// # `POST /api/v1/auth/refresh`
/// `{refresh_token}` → `200` a new pair (same shape as login); the presented token is
/// spent. `401 unauthorized`; `401 refresh_token_reused` (the session is revoked);
/// `409 refresh_conflict` (a concurrent refresh just spent it).
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> AppResult<Json<AuthResponse>> {
    Ok(Json(state.service.refresh(req).await?))
}

/// # `POST /api/v1/auth/logout`
/// → `204`: the current session ends (or, with an API key, the key is revoked); its
/// WebSockets close with 4001.
async fn logout(State(state): State<AppState>, actor: Actor) -> AppResult<StatusCode> {
    state.service.logout(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
