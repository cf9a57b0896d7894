//! Sign-in with OpenID Connect providers and GitHub (`service/oidc.rs`, `docs/oidc.md`):
//! the provider list, the browser flow (start → provider → callback), the confirmation of
//! a pending link, and the caller's linked identities.
//!
//! The browser routes (`start`, `callback`) answer with redirects, never with JSON: an
//! error sends the browser to `/?auth_error=<code>` (the codes of
//! `palaver_protocol::ErrorCode`), and is logged.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::rest::{
    AuthProvider, AuthResponse, Identity, LinkConfirmRequest, LinkStartResponse,
};
use palaver_protocol::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{auth_answer, NO_STORE};
use super::extract::{client_info, ApiJson, ClientAddr, Params};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::service::oidc::{Callback, SignInOutcome, FLOW_COOKIE, FLOW_TTL};
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sign_in_providers))
        .routes(routes!(oidc_start))
        .routes(routes!(oidc_link_start))
        .routes(routes!(oidc_callback))
        .routes(routes!(confirm_link))
        .routes(routes!(list_identities))
        .routes(routes!(unlink_identity))
}

/// `Set-Cookie` binding a flow to this browser (`Path=/api/v1/auth/oidc`, `SameSite=Lax`
/// since the callback is a cross-site top-level navigation from the provider); an empty
/// `state` clears it.
fn flow_cookie(state: &str, headers: &HeaderMap) -> HeaderValue {
    let secure = if crate::net::host_is_loopback(headers) {
        ""
    } else {
        "; Secure"
    };
    let max_age = if state.is_empty() {
        0
    } else {
        FLOW_TTL.as_secs()
    };
    HeaderValue::from_str(&format!(
        "{FLOW_COOKIE}={state}; Path=/api/v1/auth/oidc; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("palaver_oidc=; Path=/api/v1/auth/oidc; Max-Age=0"))
}

/// A `302 Found` to `location`, never cached, with `cookies` set.
fn redirect(location: &str, cookies: Vec<HeaderValue>) -> Response {
    let mut response = (StatusCode::FOUND, NO_STORE).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    for cookie in cookies {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The browser's way out of a failed flow: `/?auth_error=<code>`.
fn error_redirect(e: &AppError, cookies: Vec<HeaderValue>) -> Response {
    tracing::info!(code = e.code.as_str(), message = %e.message, "sign-in failed");
    redirect(&format!("/?auth_error={}", e.code.as_str()), cookies)
}

/// List the sign-in providers.
///
/// `GET /api/v1/auth/providers` → `200 [{id, display_name, start_url}]`: the configured
/// OpenID Connect providers, then GitHub; for the web client's sign-in buttons (no
/// secrets).
#[utoipa::path(
    get,
    path = "/auth/providers",
    tag = "auth",
    responses((status = 200, description = "the sign-in providers", body = [AuthProvider]))
)]
async fn list_sign_in_providers(State(state): State<AppState>) -> Json<Vec<AuthProvider>> {
    Json(state.service.sign_in_providers())
}

/// Start signing in with a provider.
///
/// `GET /api/v1/auth/oidc/{provider}/start` (a browser navigation) → `302` to the
/// provider's authorization endpoint (authorization code flow with PKCE S256, `state`
/// and, for OpenID Connect, `nonce`), setting the `palaver_oidc` cookie that binds the
/// flow to this browser. The flow must come back within 10 minutes. Errors redirect to
/// `/?auth_error=unknown_provider | provider_unavailable`.
#[utoipa::path(
    get,
    path = "/auth/oidc/{provider}/start",
    tag = "auth",
    params(("provider" = String, Path, description = "a configured `[[auth.oidc]] id`, or `github`")),
    responses((status = 302, description = "to the provider (or, on error, to /?auth_error=<code>)"))
)]
async fn oidc_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(provider): Path<String>,
) -> Response {
    match state.service.begin_sign_in(&provider, None).await {
        Ok(started) => redirect(&started.url, vec![flow_cookie(&started.state, &headers)]),
        Err(e) => error_redirect(&e, Vec::new()),
    }
}

/// Start linking a provider to the caller's account.
///
/// `POST /api/v1/auth/oidc/{provider}/link-start` (with the caller's credentials) →
/// `200 {url}`: the provider's authorization URL, for the web client to navigate to; the
/// answer sets the `palaver_oidc` cookie (same-origin `fetch` keeps it). The callback
/// then links the provider account to the caller and redirects to `/?linked=<provider>`
/// (or `/?auth_error=identity_already_linked` when it is another account's).
/// `404 unknown_provider`; `502 provider_unavailable`.
#[utoipa::path(
    post,
    path = "/auth/oidc/{provider}/link-start",
    tag = "auth",
    params(("provider" = String, Path, description = "a configured `[[auth.oidc]] id`, or `github`")),
    responses((status = 200, description = "the provider's authorization URL", body = LinkStartResponse), (status = 404, description = "unknown_provider", body = ErrorBody), (status = 502, description = "provider_unavailable", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn oidc_link_start(
    State(state): State<AppState>,
    headers: HeaderMap,
    actor: Actor,
    Path(provider): Path<String>,
) -> AppResult<Response> {
    let started = state
        .service
        .begin_sign_in(&provider, Some(&actor.user_id))
        .await?;
    Ok((
        NO_STORE,
        [(header::SET_COOKIE, flow_cookie(&started.state, &headers))],
        Json(LinkStartResponse { url: started.url }),
    )
        .into_response())
}

/// Finish signing in with a provider.
///
/// `GET /api/v1/auth/oidc/{provider}/callback?code=&state=[&iss=]` (the provider
/// redirects the browser here) → `302`:
/// - to `/` with the `palaver_refresh` cookie set (signed in; the web client calls
///   `POST /api/v1/auth/refresh?refresh=cookie` for an access token). A first sign-in
///   creates the account.
/// - to `/?link=<token>` when the provider's verified e-mail belongs to an existing
///   account: its owner confirms with `POST /api/v1/auth/link/confirm` within 10 minutes.
/// - to `/?linked=<provider>` after a link start.
/// - to `/?auth_error=<code>` on any failure: `oauth_state_invalid`,
///   `oauth_provider_error`, `oauth_issuer_mismatch`, `oauth_code_rejected`,
///   `oidc_id_token_invalid`, `oidc_id_token_expired`, `oidc_nonce_mismatch`,
///   `provider_unavailable`, `identity_already_linked`, `account_disabled`,
///   `unknown_provider`.
#[utoipa::path(
    get,
    path = "/auth/oidc/{provider}/callback",
    tag = "auth",
    params(
        ("provider" = String, Path, description = "a configured `[[auth.oidc]] id`, or `github`"),
        ("code" = Option<String>, Query, description = "the authorization code"),
        ("state" = Option<String>, Query, description = "the state of the start"),
        ("iss" = Option<String>, Query, description = "the issuer (RFC 9207)"),
        ("error" = Option<String>, Query, description = "the provider's error (RFC 6749 §4.1.2.1)")
    ),
    responses((status = 302, description = "to / (signed in), /?link=<token>, /?linked=<provider> or /?auth_error=<code>"))
)]
async fn oidc_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    Path(provider): Path<String>,
    params: Params,
) -> Response {
    let callback = Callback {
        code: params.get("code").map(str::to_owned),
        state: params.get("state").map(str::to_owned),
        iss: params.get("iss").map(str::to_owned),
        error: params.get("error").map(str::to_owned),
    };
    let browser_state = crate::net::cookie(&headers, FLOW_COOKIE).map(str::to_owned);
    let clear = flow_cookie("", &headers);
    let outcome = state
        .service
        .finish_sign_in(
            &provider,
            callback,
            browser_state.as_deref(),
            client_info(&headers, client),
        )
        .await;
    match outcome {
        Ok(SignInOutcome::Session(auth)) => {
            let max_age = state.service.auth.refresh_token_ttl_secs;
            let refresh = super::auth::refresh_cookie(&auth.refresh_token, max_age, &headers);
            redirect("/", vec![clear, refresh])
        }
        Ok(SignInOutcome::LinkPending(token)) => redirect(&format!("/?link={token}"), vec![clear]),
        Ok(SignInOutcome::Linked) => redirect(&format!("/?linked={provider}"), vec![clear]),
        Err(e) => error_redirect(&e, vec![clear]),
    }
}

/// Confirm linking a provider account to an existing account.
///
/// `POST /api/v1/auth/link/confirm` `{token, password}` (the token from `/?link=<token>`,
/// the existing account's password) → `200` signed in, same shape as login (with
/// `?refresh=cookie`, the refresh token in the `palaver_refresh` cookie). The token is
/// spent by any attempt. `400 link_token_invalid`; `401 invalid_credentials`;
/// `403 account_disabled`; `409 identity_already_linked`.
#[utoipa::path(
    post,
    path = "/auth/link/confirm",
    tag = "auth",
    request_body = LinkConfirmRequest,
    params(("refresh" = Option<String>, Query, description = "`cookie`: set the refresh token as the HttpOnly `palaver_refresh` cookie instead of returning it in the body", pattern = "^cookie$")),
    responses((status = 200, description = "linked and signed in", body = AuthResponse), (status = 400, description = "link_token_invalid", body = ErrorBody), (status = 401, description = "invalid_credentials", body = ErrorBody), (status = 403, description = "account_disabled", body = ErrorBody), (status = 409, description = "identity_already_linked", body = ErrorBody), (status = 422, description = "validation_failed: `refresh` other than `cookie`", body = ErrorBody))
)]
async fn confirm_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    params: Params,
    ApiJson(req): ApiJson<LinkConfirmRequest>,
) -> AppResult<Response> {
    // Checked first: a refused request must not spend the link.
    let cookie = super::auth::wants_cookie(&params)?;
    let auth = state
        .service
        .confirm_link(req, client_info(&headers, client))
        .await?;
    Ok(auth_answer(&state, &headers, StatusCode::OK, auth, cookie))
}

/// List the caller's linked sign-in identities.
///
/// `GET /api/v1/users/me/identities` → `200 [{id, provider, email, created_at}]`, oldest
/// first.
#[utoipa::path(
    get,
    path = "/users/me/identities",
    tag = "users",
    responses((status = 200, description = "the linked identities", body = [Identity])),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_identities(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<Vec<Identity>>> {
    Ok(Json(state.service.identities(&actor).await?))
}

/// Unlink a sign-in identity from the caller's account.
///
/// `DELETE /api/v1/users/me/identities/{identity_id}` → `204`; `404 not_found`;
/// `409 last_sign_in_method` when the account has no password and no other identity.
#[utoipa::path(
    delete,
    path = "/users/me/identities/{identity_id}",
    tag = "users",
    params(("identity_id" = String, Path, description = "the identity's id")),
    responses((status = 204, description = "unlinked"), (status = 409, description = "last_sign_in_method", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn unlink_identity(
    State(state): State<AppState>,
    actor: Actor,
    Path(identity_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.unlink_identity(&actor, &identity_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
