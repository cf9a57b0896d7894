//! `/api/v1/auth/*`: register, log in, refresh, log out.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use palaver_protocol::rest::{AuthResponse, LoginRequest, RefreshRequest, RegisterRequest};
use palaver_protocol::ErrorBody;

use super::extract::{client_info, ApiJson, ClientAddr};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The headers of a response carrying tokens: never stored by a cache (RFC 6749 §5.1).
pub(super) const NO_STORE: [(header::HeaderName, &str); 2] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::PRAGMA, "no-cache"),
];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
}

/// Register an account.
///
/// `POST /api/v1/auth/register`:
/// `{username, email, password}` → `201 {user, access_token, refresh_token, token_type,
/// expires_in}`; `409 username_taken | email_taken`; `422 validation_failed`;
/// `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, description = "registered and logged in", body = AuthResponse), (status = 409, description = "username_taken or email_taken", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> AppResult<(
    StatusCode,
    [(header::HeaderName, &'static str); 2],
    Json<AuthResponse>,
)> {
    let auth = state
        .service
        .register(req, client_info(&headers, client))
        .await?;
    Ok((StatusCode::CREATED, NO_STORE, Json(auth)))
}

/// Log in.
///
/// `POST /api/v1/auth/login`:
/// `{login, password, code?}` (login = username or email; `code` a TOTP or recovery code
/// for accounts with two-factor codes) → `200` same shape as register;
/// `401 invalid_credentials`; `401 two_factor_required` (the password was right: send
/// the login again with `code`); `401 invalid_two_factor_code`; `403 account_disabled`;
/// `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "logged in", body = AuthResponse), (status = 401, description = "invalid_credentials; two_factor_required (the password was right: send `code`); invalid_two_factor_code", body = ErrorBody), (status = 403, description = "account_disabled", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<([(header::HeaderName, &'static str); 2], Json<AuthResponse>)> {
    let auth = state
        .service
        .login(req, client_info(&headers, client))
        .await?;
    Ok((NO_STORE, Json(auth)))
}

/// Refresh the token pair.
///
/// `POST /api/v1/auth/refresh`:
/// `{refresh_token}` → `200` a new pair (same shape as login); the presented token is
/// spent. `401 unauthorized`; `401 refresh_token_reused` (the session is revoked);
/// `409 refresh_conflict` (a concurrent refresh just spent it).
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses((status = 200, description = "a new token pair", body = AuthResponse), (status = 401, description = "unauthorized or refresh_token_reused (the session is revoked)", body = ErrorBody), (status = 409, description = "refresh_conflict: spent by a concurrent refresh", body = ErrorBody))
)]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> AppResult<([(header::HeaderName, &'static str); 2], Json<AuthResponse>)> {
    Ok((NO_STORE, Json(state.service.refresh(req).await?)))
}

/// Log out.
///
/// `POST /api/v1/auth/logout`:
/// → `204`: the current session ends (or, with an API key, the key is revoked); its
/// WebSockets close with 4001.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses((status = 204, description = "the session (or API key) ended"), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn logout(State(state): State<AppState>, actor: Actor) -> AppResult<StatusCode> {
    state.service.logout(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}
