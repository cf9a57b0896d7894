//! The WebSocket gateway at `GET /api/v1/ws` (RFC 6455).
//!
//! 1. [`upgrade`]: authenticates *before* the upgrade (a bearer header, or an
//!    `access_token` query parameter because browsers cannot set headers on a WebSocket);
//!    a missing or bad token is a plain `401 unauthorized` response.
//! 2. [`session`]: once upgraded, registers the connection with the hub, sends `ready`,
//!    then runs a reader (parse and dispatch requests, one at a time, in order) and
//!    a writer task (drain the bounded outbound queue, batching frames per flush; send the
//!    close frame the hub asks for).
//!
//! Frames and codes are documented in `docs/protocol.md`.

mod dispatch;
mod session;

use std::collections::HashMap;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use palaver_protocol::ErrorCode;

use crate::auth::bearer_token;
use crate::error::{AppError, AppResult};
use crate::AppState;

/// Read buffer per connection, bytes. tungstenite's default (128 KiB) would make every
/// idle connection cost that much.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Bytes buffered before tungstenite writes to the socket; the writer also flushes after
/// each batch.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route("/ws", get(upgrade))
}

/// # `GET /api/v1/ws`
/// Upgrades to a WebSocket after authenticating. `401 unauthorized` without a valid
/// token (header `Authorization: Bearer <token>` or query `access_token=<token>`);
/// `400 bad_request` if the request is not a WebSocket upgrade.
async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> AppResult<Response> {
    let query_token = query
        .as_ref()
        .ok()
        .and_then(|Query(q)| q.get("access_token"))
        .map(String::as_str);
    let token = bearer_token(&headers)
        .or(query_token)
        .ok_or_else(|| AppError::unauthorized("missing access token"))?;
    let actor = state.service.authenticate(token)?;
    let ready = state.service.ready(&actor).await?;
    let ws = ws.map_err(|_| {
        AppError::new(
            ErrorCode::BadRequest,
            "expected a WebSocket upgrade request",
        )
    })?;
    let max = state.service.limits().ws_frame_max_bytes;
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session::run(state, actor, ready, socket)))
}
