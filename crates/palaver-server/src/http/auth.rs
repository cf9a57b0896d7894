//! `/api/v1/auth/*`: register and log in.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use palaver_protocol::rest::{AuthResponse, LoginRequest, RegisterRequest};

use super::extract::{client_info, ApiJson};
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
}

/// # `POST /api/v1/auth/register`
/// `{username, email, password}` → `201 {user, access_token, refresh_token, token_type,
/// expires_in}`; `409 username_taken | email_taken`; `422 validation_failed`.
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
/// `401 invalid_credentials`.
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
