//! `/api/v1/auth/*`: register, log in, refresh, log out; with e-mail (`[email]`,
//! `docs/email.md`) also verify an address, resend the link, reset a password.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::rest::{
    AuthResponse, CheckInbox, EmailVerified, LoginRequest, PasswordResetConfirm,
    PasswordResetRequest, RefreshRequest, RegisterRequest, ResendVerificationRequest,
    VerifyEmailRequest,
};
use palaver_protocol::ErrorBody;

use super::extract::{client_info, ApiJson, ClientAddr};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::service::accounts::Registered;
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
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(password_reset))
        .routes(routes!(password_reset_confirm))
}

/// Register an account.
///
/// `POST /api/v1/auth/register`:
/// `{username, email, password}` → without e-mail: `201 {user, access_token,
/// refresh_token, token_type, expires_in}` (logged in); with e-mail (`[email]`):
/// `202 {"status": "check_your_inbox"}`, the same whether or not the address is taken
/// (a new account is created unverified and mailed a link; a taken address's owner is
/// mailed that someone tried). `409 username_taken`; `409 email_taken` (only without
/// e-mail); `422 validation_failed`; `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses((status = 201, description = "registered and logged in (the server sends no e-mail)", body = AuthResponse), (status = 202, description = "the server sends e-mail: check your inbox (the same whether or not the address is registered)", body = CheckInbox), (status = 409, description = "username_taken; email_taken (only when the server sends no e-mail)", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    let done = state
        .service
        .register(req, client_info(&headers, client))
        .await?;
    Ok(match done {
        Registered::LoggedIn(auth) => (StatusCode::CREATED, NO_STORE, Json(*auth)).into_response(),
        Registered::CheckInbox(inbox) => (StatusCode::ACCEPTED, Json(inbox)).into_response(),
    })
}

/// Log in.
///
/// `POST /api/v1/auth/login`:
/// `{login, password}` (login = username or email) → `200 {user, access_token,
/// refresh_token, token_type, expires_in}`; `401 invalid_credentials`;
/// `403 account_disabled`; `403 email_not_verified` (with e-mail: the address is not
/// verified yet; a new link was mailed); `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses((status = 200, description = "logged in", body = AuthResponse), (status = 401, description = "invalid_credentials", body = ErrorBody), (status = 403, description = "account_disabled; email_not_verified (a new verification link was mailed)", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
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

/// Verify an e-mail address.
///
/// `POST /api/v1/auth/verify-email`:
/// `{token}` (from a mailed link, `#verify-email=<token>`) → `200 {status: "verified",
/// email}`: a registration link marks the account's address verified (then log in); an
/// e-mail change link makes its address the account's. Does not log in. The token works
/// once. `400 invalid_token` (unknown, used, or for an address the account no longer
/// has); `409 email_disabled`; `409 email_taken` (an e-mail change to an address taken
/// meanwhile); `410 token_expired`.
#[utoipa::path(
    post,
    path = "/auth/verify-email",
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses((status = 200, description = "the address is verified (and, for an e-mail change, the account's)", body = EmailVerified), (status = 400, description = "invalid_token: unknown, used, or for an address the account no longer has", body = ErrorBody), (status = 409, description = "email_disabled; email_taken (an e-mail change to an address taken meanwhile)", body = ErrorBody), (status = 410, description = "token_expired: ask for a new link", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody))
)]
async fn verify_email(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<VerifyEmailRequest>,
) -> AppResult<Json<EmailVerified>> {
    Ok(Json(state.service.verify_email(req).await?))
}

/// Mail a new verification link.
///
/// `POST /api/v1/auth/resend-verification`:
/// `{login}` (username or e-mail address) → `202 {status: "check_your_inbox"}`, the same
/// whether or not such an account exists; a link is mailed only to an unverified
/// account's address. `409 email_disabled`; `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/auth/resend-verification",
    tag = "auth",
    request_body = ResendVerificationRequest,
    responses((status = 202, description = "check your inbox (the same whether or not the account exists)", body = CheckInbox), (status = 409, description = "email_disabled", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn resend_verification(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    ApiJson(req): ApiJson<ResendVerificationRequest>,
) -> AppResult<(StatusCode, Json<CheckInbox>)> {
    let done = state
        .service
        .resend_verification(req, client_info(&headers, client))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(done)))
}

/// Ask for a password reset link.
///
/// `POST /api/v1/auth/password-reset`:
/// `{email}` → `202 {status: "check_your_inbox"}`, the same whether or not the address is
/// registered; a link (valid 30 minutes by default, once) is mailed only to the verified
/// address of a live account. `409 email_disabled`; `422 validation_failed` (`email`);
/// `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/auth/password-reset",
    tag = "auth",
    request_body = PasswordResetRequest,
    responses((status = 202, description = "check your inbox (the same whether or not the address is registered)", body = CheckInbox), (status = 409, description = "email_disabled", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn password_reset(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    ApiJson(req): ApiJson<PasswordResetRequest>,
) -> AppResult<(StatusCode, Json<CheckInbox>)> {
    let done = state
        .service
        .request_password_reset(req, client_info(&headers, client))
        .await?;
    Ok((StatusCode::ACCEPTED, Json(done)))
}

/// Set a new password with a reset link.
///
/// `POST /api/v1/auth/password-reset/confirm`:
/// `{token, new_password}` → `204`: the password is set, the link and every other reset
/// link of the account stop working, and every session of the account ends (its
/// WebSockets close with 4001; API keys stay). `400 invalid_token`; `409 email_disabled`;
/// `410 token_expired`; `422 validation_failed` (`new_password`; the link still works).
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = "auth",
    request_body = PasswordResetConfirm,
    responses((status = 204, description = "the password is set; every session of the account ended"), (status = 400, description = "invalid_token: unknown, used, or mailed to an address the account no longer has", body = ErrorBody), (status = 409, description = "email_disabled", body = ErrorBody), (status = 410, description = "token_expired: ask for a new link", body = ErrorBody), (status = 422, description = "validation_failed, naming the field (the link still works)", body = ErrorBody))
)]
async fn password_reset_confirm(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PasswordResetConfirm>,
) -> AppResult<StatusCode> {
    state.service.confirm_password_reset(req).await?;
    Ok(StatusCode::NO_CONTENT)
}
