//! Seed 003's Go signaling server, so that its apps move by changing their base URL:
//! its REST routes and its WebSocket envelope under `/compat/signaling/`
//! (`docs/signaling-compat.md`).
//!
//! - `POST /compat/signaling/register`, `/updatepassword`, `/regenerate`: accounts and
//!   API keys by username and password, with the seed's bodies (`Username`,
//!   `Password`...), on Palaver's accounts and API keys
//!   ([`crate::service::call_rooms`]).
//! - `GET /compat/signaling/ws` ([`connect`]): the WebSocket, authenticated by the API key
//!   before the upgrade. [`envelope`] parses and writes the envelope; [`socket`] is the
//!   core's transport. A seed room is a Palaver call room: a room with a number, one call
//!   at a time, the host and join order of Palaver's calls, signals only between its
//!   participants.

pub mod envelope;
pub mod socket;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::auth::presented_credential;
use crate::error::{AppError, AppResult};
use crate::gateway::native::handshake::WebSocketUpgrade;
use crate::gateway::native::websocket_config;
use crate::http::extract::{client_info, ApiJson, ClientAddr, Params};
use crate::store::UserRow;
use crate::AppState;

/// The prefix of every route of this protocol.
pub const PREFIX: &str = "/compat/signaling";

/// The routes under [`PREFIX`].
pub fn router() -> Router<AppState> {
    Router::new()
        .route(&format!("{PREFIX}/register"), post(register))
        .route(&format!("{PREFIX}/updatepassword"), post(update_password))
        .route(&format!("{PREFIX}/regenerate"), post(regenerate))
        .route(&format!("{PREFIX}/ws"), get(connect))
}

/// The seed's request body: `{"Username", "Password"}`, plus `NewPassword` for
/// `/updatepassword` and an optional `Email` for `/register`. Field names are matched as
/// Go's `encoding/json` does for the common spellings (`Username` or `username`).
#[derive(Debug, Deserialize)]
struct Credentials {
    #[serde(rename = "Username", alias = "username")]
    username: String,
    #[serde(rename = "Password", alias = "password")]
    password: String,
    #[serde(
        rename = "NewPassword",
        alias = "newPassword",
        alias = "new_password",
        default
    )]
    new_password: Option<String>,
    #[serde(rename = "Email", alias = "email", default)]
    email: Option<String>,
    /// For accounts with two-factor codes (`/updatepassword`, `/regenerate`): a current
    /// TOTP code or a recovery code.
    #[serde(rename = "Code", alias = "code", default)]
    code: Option<String>,
}

/// Responses are never cached (they may carry a key).
const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

/// Palaver's field names in errors, as the seed's clients name them.
fn seed_field(mut error: AppError) -> AppError {
    error.field = error.field.map(|field| {
        match field.as_str() {
            "username" => "Username",
            "password" => "Password",
            "new_password" => "NewPassword",
            "email" => "Email",
            other => other,
        }
        .to_owned()
    });
    error
}

/// The account as the seed's responses show it, with `key` when one was made.
fn account(user: &UserRow, number: i64, key: Option<String>) -> serde_json::Value {
    let mut body = json!({"ID": number, "Username": user.username});
    if let Some(key) = key {
        body["APIKey"] = json!(key);
    }
    body
}

/// `POST /compat/signaling/register`: `{"Username", "Password", "Email"?}` → `201
/// {"ID", "Username", "APIKey"}`.
///
/// # Errors
/// `422 validation_failed` (`Username`, `Password`, `Email`), `409 username_taken`,
/// `409 email_taken`, `429 rate_limited` (registrations per address).
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    body: Result<ApiJson<Credentials>, AppError>,
) -> AppResult<Response> {
    let ApiJson(body) = body?;
    let (user, key) = state
        .service
        .register_with_api_key(
            body.username,
            body.password,
            body.email,
            &client_info(&headers, client),
        )
        .await
        .map_err(seed_field)?;
    let number = state.service.user_number(&user.id).await?;
    Ok((
        StatusCode::CREATED,
        NO_STORE,
        Json(account(&user, number, Some(key.key))),
    )
        .into_response())
}

/// `POST /compat/signaling/updatepassword`: `{"Username", "Password", "NewPassword"}` →
/// `200 {"ID", "Username"}`; every login session of the account ends, API keys stay.
///
/// # Errors
/// `401 invalid_credentials`, `403 account_disabled`, `422 validation_failed`
/// (`NewPassword`), `429 rate_limited`.
async fn update_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    body: Result<ApiJson<Credentials>, AppError>,
) -> AppResult<Response> {
    let ApiJson(body) = body?;
    let new_password = body
        .new_password
        .ok_or_else(|| AppError::validation("NewPassword", "NewPassword is required"))?;
    let user = state
        .service
        .change_password_by_login(
            body.username,
            body.password,
            new_password,
            body.code,
            &client_info(&headers, client),
        )
        .await
        .map_err(seed_field)?;
    let number = state.service.user_number(&user.id).await?;
    Ok((NO_STORE, Json(account(&user, number, None))).into_response())
}

/// `POST /compat/signaling/regenerate`: `{"Username", "Password"}` → `200 {"ID",
/// "Username", "APIKey"}`; the keys `/register` and `/regenerate` made before are
/// revoked, and their WebSockets closed (4001).
///
/// # Errors
/// `401 invalid_credentials`, `401 two_factor_required` / `invalid_two_factor_code`
/// (accounts with two-factor codes: send `Code`), `403 account_disabled`,
/// `429 rate_limited`.
async fn regenerate(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientAddr,
    body: Result<ApiJson<Credentials>, AppError>,
) -> AppResult<Response> {
    let ApiJson(body) = body?;
    let (user, key) = state
        .service
        .regenerate_api_key(
            body.username,
            body.password,
            body.code,
            &client_info(&headers, client),
        )
        .await
        .map_err(seed_field)?;
    let number = state.service.user_number(&user.id).await?;
    Ok((NO_STORE, Json(account(&user, number, Some(key.key)))).into_response())
}

/// The credential of a WebSocket request: `X-API-Key`, `Authorization: Bearer <key>`,
/// `Authorization: <key>`, or (browsers) `?api_key=` / `?access_token=`.
fn credential<'a>(headers: &'a HeaderMap, query: &'a Params) -> Option<&'a str> {
    presented_credential(headers)
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && !v.contains(' '))
        })
        .or(query.get("api_key"))
        .or(query.get("access_token"))
}

/// `GET /compat/signaling/ws`: the WebSocket of seed 003's envelope.
///
/// # Errors
/// `401 unauthorized` (no or a bad key); `403 forbidden` (a browser `Origin` not
/// allowed); `429 rate_limited` (the account holds `user_limits.sockets` live
/// connections); `400 bad_request` (not a WebSocket upgrade).
async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Params,
    ws: Result<WebSocketUpgrade, AppError>,
) -> AppResult<Response> {
    let token =
        credential(&headers, &query).ok_or_else(|| AppError::unauthorized("missing API key"))?;
    let actor = state.service.authenticate(token).await?;
    super::check_origin(&headers, &state.cors.allowed_origins)?;
    let me = state.service.user_number(&actor.user_id).await?;
    let max_sockets = state.service.user_limits.max_sockets();
    let slot = state
        .hub
        .reserve_socket(&actor.user_id, max_sockets)
        .ok_or_else(|| state.service.user_limits.too_many_sockets(max_sockets))?;
    let ws = ws?;
    let config = websocket_config(state.service.limits().ws_frame_max_bytes);
    Ok(ws.on_upgrade(config, move |ws| {
        let socket = socket::SignalingSocket::new(ws, state.clone(), actor.user_id.clone(), me);
        crate::live::connection::run(state, actor, Vec::new(), socket, slot)
    }))
}
