//! `/api/v1/users/me/two-factor`: two-factor codes for password logins (RFC 6238 TOTP and
//! recovery codes; see [`crate::service::two_factor`]).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::Json;
use palaver_protocol::rest::{
    BeginTwoFactorRequest, RecoveryCodes, TwoFactorCode, TwoFactorSetup, TwoFactorStatus,
};
use palaver_protocol::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

/// Answers that carry a secret are never cached.
const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status, begin))
        .routes(routes!(confirm))
        .routes(routes!(disable))
}

/// Whether the caller has two-factor codes enabled.
///
/// `GET /api/v1/users/me/two-factor` → `200 {enabled, recovery_codes_left}`.
#[utoipa::path(
    get,
    path = "/users/me/two-factor",
    tag = "users",
    responses((status = 200, description = "the caller's two-factor state", body = TwoFactorStatus), (status = 401, description = "unauthorized", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn status(State(state): State<AppState>, actor: Actor) -> AppResult<Json<TwoFactorStatus>> {
    Ok(Json(state.service.two_factor_status(&actor).await?))
}

/// Start setting up two-factor codes.
///
/// `POST /api/v1/users/me/two-factor`: `{password}` → `200 {secret, otpauth_uri, qr_svg}`
/// (RFC 6238: SHA-1, 6 digits, 30 s). Nothing changes at login until the setup is
/// confirmed with a code; starting again replaces an unconfirmed secret.
/// `401 invalid_credentials` (wrong password); `409 conflict` (enabled already);
/// `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/users/me/two-factor",
    tag = "users",
    request_body = BeginTwoFactorRequest,
    responses((status = 200, description = "the secret, its otpauth:// URI and QR code (SVG)", body = TwoFactorSetup), (status = 401, description = "unauthorized or invalid_credentials", body = ErrorBody), (status = 409, description = "conflict: enabled already", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn begin(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<BeginTwoFactorRequest>,
) -> AppResult<(
    [(header::HeaderName, &'static str); 1],
    Json<TwoFactorSetup>,
)> {
    let setup = state.service.begin_two_factor(&actor, req.password).await?;
    Ok((NO_STORE, Json(setup)))
}

/// Confirm the setup with a code from the authenticator app.
///
/// `POST /api/v1/users/me/two-factor/confirm`: `{code}` (6 digits) → `200
/// {recovery_codes}`: two-factor codes are required at password login from now on, and
/// the 10 recovery codes are shown this once. `401 invalid_two_factor_code`;
/// `409 conflict` (no setup begun, or enabled already); `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/users/me/two-factor/confirm",
    tag = "users",
    request_body = TwoFactorCode,
    responses((status = 200, description = "enabled; the recovery codes, shown once", body = RecoveryCodes), (status = 401, description = "unauthorized or invalid_two_factor_code", body = ErrorBody), (status = 409, description = "conflict: no setup waiting", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn confirm(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<TwoFactorCode>,
) -> AppResult<([(header::HeaderName, &'static str); 1], Json<RecoveryCodes>)> {
    let codes = state.service.confirm_two_factor(&actor, &req.code).await?;
    Ok((NO_STORE, Json(codes)))
}

/// Turn two-factor codes off.
///
/// `POST /api/v1/users/me/two-factor/disable`: `{code}` (a current code or a recovery
/// code) → `204`. `401 invalid_two_factor_code`; `409 conflict` (not enabled);
/// `429 rate_limited`.
#[utoipa::path(
    post,
    path = "/users/me/two-factor/disable",
    tag = "users",
    request_body = TwoFactorCode,
    responses((status = 204, description = "disabled"), (status = 401, description = "unauthorized or invalid_two_factor_code", body = ErrorBody), (status = 409, description = "conflict: not enabled", body = ErrorBody), (status = 429, description = "rate_limited (see Retry-After)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn disable(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<TwoFactorCode>,
) -> AppResult<StatusCode> {
    state.service.disable_two_factor(&actor, &req.code).await?;
    Ok(StatusCode::NO_CONTENT)
}
