//! `/api/v1/auth/*`: register, log in, refresh, log out; the refresh token cookie; with
//! e-mail (`[email]`, `docs/email.md`) also verify an address, resend the link, reset a
//! password.
//!
//! # The refresh token cookie
//! API clients get the refresh token in the JSON body. A browser asks for it in a cookie
//! instead with `?refresh=cookie` on register, login and refresh (and always gets it so
//! from the sign-in callback, `http/oidc.rs`): the answer then sets [`REFRESH_COOKIE`]
//! (`HttpOnly; SameSite=Strict; Path=/api/v1/auth/refresh`, so it goes to the refresh
//! route only; `Secure` except on a loopback host; `Max-Age` the refresh token's lifetime)
//! and its body has no `refresh_token`, so page scripts never see it. `POST /api/v1/auth/refresh` with no token in the body takes the
//! cookie's (and answers with the next one in a cookie); logout clears it.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::rest::{
    AuthResponse, CheckInbox, EmailVerified, LoginRequest, PasswordResetConfirm,
    PasswordResetRequest, RefreshRequest, RegisterRequest, ResendVerificationRequest,
    VerifyEmailRequest,
};
use palaver_protocol::ErrorBody;

use super::extract::{client_info, parse_json, ApiJson, ClientAddr, Params};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::service::accounts::Registered;
use crate::AppState;

/// The cookie carrying a browser's refresh token.
pub const REFRESH_COOKIE: &str = "palaver_refresh";

/// `Set-Cookie` for `token` as the refresh cookie, living `max_age` seconds (`""` and 0:
/// clears it).
pub(super) fn refresh_cookie(token: &str, max_age: u64, headers: &HeaderMap) -> HeaderValue {
    let secure = if crate::net::host_is_loopback(headers) {
        ""
    } else {
        "; Secure"
    };
    HeaderValue::from_str(&format!(
        "{REFRESH_COOKIE}={token}; Path=/api/v1/auth/refresh; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("palaver_refresh=; Path=/api/v1/auth/refresh; Max-Age=0"))
}

/// The answer carrying `auth`: as JSON with `status`, or, when `cookie`, with the refresh
/// token moved from the body into [`REFRESH_COOKIE`].
pub(super) fn auth_answer(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    mut auth: AuthResponse,
    cookie: bool,
) -> Response {
    let mut response = (status, NO_STORE).into_response();
    if cookie {
        let token = std::mem::take(&mut auth.refresh_token);
        let max_age = state.service.auth.refresh_token_ttl_secs;
        response
            .headers_mut()
            .append(header::SET_COOKIE, refresh_cookie(&token, max_age, headers));
    }
    let (parts, _) = response.into_parts();
    (parts, Json(auth)).into_response()
}

/// Whether the query asks for the refresh token in a cookie (`refresh=cookie`).
///
/// # Errors
/// `422 validation_failed` (`refresh`) for any other value.
pub(super) fn wants_cookie(params: &Params) -> AppResult<bool> {
    match params.get("refresh") {
        None => Ok(false),
        Some("cookie") => Ok(true),
        Some(_) => Err(AppError::validation(
            "refresh",
            "refresh must be \"cookie\" (or left out)",
        )),
    }
}
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
/// e-mail); `422 validation_failed`; `429 rate_limited`. With `?refresh=cookie` the
/// refresh token is set as the `palaver_refresh` cookie instead of in the body.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    params(("refresh" = Option<String>, Query, description = "`cookie`: set the refresh token as the HttpOnly `palaver_refresh` cookie instead of returning it in the body", pattern = "^cookie$")),
    responses((status = 201, description = "registered and logged in (the server sends no e-mail)", body = AuthResponse), (status = 202, description = "the server sends e-mail: check your inbox (the same whether or not the address is registered)", body = CheckInbox), (status = 409, description = "username_taken; email_taken (only when the server sends no e-mail)", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    params: Params,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> AppResult<Response> {
    let cookie = wants_cookie(&params)?;
    let done = state
        .service
        .register(req, client_info(&headers, client))
        .await?;
    Ok(match done {
        Registered::LoggedIn(auth) => {
            auth_answer(&state, &headers, StatusCode::CREATED, *auth, cookie)
        }
        Registered::CheckInbox(inbox) => (StatusCode::ACCEPTED, Json(inbox)).into_response(),
    })
}

/// Log in.
///
/// `POST /api/v1/auth/login`:
/// `{login, password, code?}` (login = username or email; `code` a TOTP or recovery code
/// for accounts with two-factor codes) → `200` same shape as register;
/// `401 invalid_credentials`; `401 two_factor_required` (the password was right: send
/// the login again with `code`); `401 invalid_two_factor_code`; `403 account_disabled`;
/// `403 email_not_verified` (with e-mail: the address is not verified yet; a new link
/// was mailed); `429 rate_limited`. With `?refresh=cookie` the refresh token is set as the
/// `palaver_refresh` cookie instead of in the body.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    params(("refresh" = Option<String>, Query, description = "`cookie`: set the refresh token as the HttpOnly `palaver_refresh` cookie instead of returning it in the body", pattern = "^cookie$")),
    responses((status = 200, description = "logged in", body = AuthResponse), (status = 401, description = "invalid_credentials; two_factor_required (the password was right: send `code`); invalid_two_factor_code", body = ErrorBody), (status = 403, description = "account_disabled; email_not_verified (a new verification link was mailed)", body = ErrorBody), (status = 422, description = "validation_failed: `refresh` other than `cookie`", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody))
)]
async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    params: Params,
    ApiJson(req): ApiJson<LoginRequest>,
) -> AppResult<Response> {
    let cookie = wants_cookie(&params)?;
    let auth = state
        .service
        .login(req, client_info(&headers, client))
        .await?;
    Ok(auth_answer(&state, &headers, StatusCode::OK, auth, cookie))
}

/// Refresh the token pair.
///
/// `POST /api/v1/auth/refresh`:
/// `{refresh_token}` → `200` a new pair (same shape as login); the presented token is
/// spent. Without a token in the body (or without a body) the `palaver_refresh` cookie's
/// is used, and the new one is set in that cookie (not in the body), as with
/// `?refresh=cookie`. `401 unauthorized`; `401 refresh_token_reused` (the session is
/// revoked); `409 refresh_conflict` (a concurrent refresh just spent it).
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    params(("refresh" = Option<String>, Query, description = "`cookie`: set the refresh token as the HttpOnly `palaver_refresh` cookie instead of returning it in the body", pattern = "^cookie$")),
    responses((status = 200, description = "a new token pair", body = AuthResponse), (status = 401, description = "unauthorized or refresh_token_reused (the session is revoked)", body = ErrorBody), (status = 409, description = "refresh_conflict: spent by a concurrent refresh", body = ErrorBody), (status = 422, description = "validation_failed: `refresh` other than `cookie`", body = ErrorBody))
)]
async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Params,
    body: Bytes,
) -> AppResult<Response> {
    let mut req = if body.iter().all(u8::is_ascii_whitespace) {
        RefreshRequest::default()
    } else {
        parse_json::<RefreshRequest>(&body)?
    };
    let mut cookie = wants_cookie(&params)?;
    if req.refresh_token.trim().is_empty() {
        let from_cookie = crate::net::cookie(&headers, REFRESH_COOKIE).ok_or_else(|| {
            AppError::unauthorized("no refresh token in the body or the palaver_refresh cookie")
        })?;
        req.refresh_token = from_cookie.to_owned();
        cookie = true;
    }
    let auth = state.service.refresh(req).await?;
    Ok(auth_answer(&state, &headers, StatusCode::OK, auth, cookie))
}

/// Log out.
///
/// `POST /api/v1/auth/logout`:
/// → `204`: the current session ends (or, with an API key, the key is revoked); its
/// WebSockets close with 4001. The `palaver_refresh` cookie is cleared.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "auth",
    responses((status = 204, description = "the session (or API key) ended"), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    actor: Actor,
) -> AppResult<Response> {
    state.service.logout(&actor).await?;
    let clear = refresh_cookie("", 0, &headers);
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, clear)]).into_response())
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
