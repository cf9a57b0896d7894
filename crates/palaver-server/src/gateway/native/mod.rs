//! The WebSocket gateway at `GET /api/v1/ws` (RFC 6455).
//!
//! 1. [`upgrade`]: authenticates *before* the upgrade (a bearer header, or an
//!    `access_token` query parameter because browsers cannot set headers on a WebSocket);
//!    a missing or bad token is a plain `401 unauthorized` response. The handshake itself
//!    is [`handshake`] (hyper and tokio-tungstenite).
//! 2. [`codec`]: each client text frame is parsed once into a typed request;
//!    [`socket`] carries frames between the WebSocket and the connection core
//!    ([`crate::live::connection`]), which runs everything else.
//!
//! Frames and codes are documented in `docs/protocol.md`.

pub mod codec;
pub mod handshake;
pub mod socket;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use palaver_protocol::ErrorBody;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::presented_credential;
use crate::error::{AppError, AppResult};
use crate::http::extract::Params;
use crate::AppState;
use handshake::WebSocketUpgrade;

/// Read buffer per connection, bytes. tungstenite's default (128 KiB) would make every
/// idle connection cost that much.
const READ_BUFFER_BYTES: usize = 1024;
/// Bytes buffered before tungstenite writes to the socket; the writer also flushes after
/// each batch.
const WRITE_BUFFER_BYTES: usize = 8 * 1024;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(upgrade))
}

/// Open the live WebSocket connection.
///
/// `GET /api/v1/ws`:
/// Upgrades to a WebSocket after authenticating. `401 unauthorized` without a valid
/// credential (`Authorization: Bearer <token or API key>`, `X-API-Key`, or the query
/// parameter `access_token=<token or API key>`); `403 forbidden` for a browser `Origin`
/// that is neither this server nor in `cors.allowed_origins` (requests without `Origin`,
/// such as bots, are allowed; `Origin: null` is not); `400 bad_request` if the request is
/// not a WebSocket upgrade; `429 rate_limited` (with `Retry-After`) when the account
/// already holds `user_limits.sockets` open WebSockets.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "websocket",
    params(("access_token" = Option<String>, Query, description = "an access token or API key, for clients that cannot set headers")),
    responses(
        (status = 101, description = "switching to the WebSocket protocol (frames: docs/protocol.md)"),
        (status = 400, description = "bad_request: not a WebSocket upgrade", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: Origin not allowed", body = ErrorBody),
        (status = 429, description = "rate_limited: the account already holds `user_limits.sockets` WebSockets (see Retry-After)", body = ErrorBody)
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Params,
    ws: Result<WebSocketUpgrade, AppError>,
) -> AppResult<Response> {
    let token = presented_credential(&headers)
        .or(query.get("access_token"))
        .ok_or_else(|| AppError::unauthorized("missing access token or API key"))?;
    let actor = state.service.authenticate(token).await?;
    super::check_origin(&headers, &state.cors.allowed_origins)?;
    let resume = parse_since(query.get("since"))?;
    let max_sockets = state.service.user_limits.max_sockets();
    let slot = state
        .hub
        .reserve_socket(&actor.user_id, max_sockets)
        .ok_or_else(|| state.service.user_limits.too_many_sockets(max_sockets))?;
    // `400 bad_request` "expected a WebSocket upgrade request", only now.
    let ws = ws?;
    let config = websocket_config(state.service.limits().ws_frame_max_bytes);
    Ok(ws.on_upgrade(config, move |ws| {
        crate::live::connection::run(state, actor, resume, socket::NativeSocket::new(ws), slot)
    }))
}

/// A live WebSocket's settings (native and SignalR): small buffers, so an idle
/// connection costs little, and messages and frames of at most `max` bytes (a larger one
/// closes with 1009).
pub fn websocket_config(max: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// Parses the connect URL's `since=<room_id>:<seq>,<room_id>:<seq>` (a missing seq, as in
/// `<room_id>:`, means "from the latest page").
///
/// # Errors
/// `422 validation_failed` (`since`) for anything else.
fn parse_since(raw: Option<&str>) -> AppResult<Vec<(String, Option<i64>)>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(Vec::new());
    };
    let bad = || AppError::validation("since", "since must be room_id:seq pairs joined by commas");
    raw.split(',')
        .map(|pair| {
            let (room, seq) = pair.split_once(':').ok_or_else(bad)?;
            if room.is_empty() || room.len() > 64 {
                return Err(bad());
            }
            let seq = if seq.is_empty() {
                None
            } else {
                Some(seq.parse::<i64>().map_err(|_| bad())?)
            };
            Ok((room.to_owned(), seq))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::check_origin;
    use super::*;
    use axum::http::{header, HeaderValue};

    fn headers(origin: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::HOST,
            HeaderValue::from_static("chat.example.com:8080"),
        );
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_static(o));
        }
        h
    }

    #[test]
    fn since_parses_room_seq_pairs() {
        assert_eq!(parse_since(None).unwrap(), vec![]);
        assert_eq!(
            parse_since(Some("a:3,b:")).unwrap(),
            vec![("a".to_string(), Some(3)), ("b".to_string(), None)]
        );
        for bad in ["a", "a:x", ":3", "a:1,,b:2"] {
            assert!(parse_since(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn origin_rules() {
        let allowed = vec!["https://app.example.org".to_string()];
        assert!(
            check_origin(&headers(None), &allowed).is_ok(),
            "no Origin: a bot"
        );
        assert!(check_origin(&headers(Some("http://chat.example.com:8080")), &allowed).is_ok());
        assert!(check_origin(&headers(Some("https://app.example.org")), &allowed).is_ok());
        assert!(check_origin(&headers(Some("https://evil.example")), &allowed).is_err());
        assert!(check_origin(&headers(Some("null")), &allowed).is_err());
        assert!(check_origin(&headers(Some("http://chat.example.com")), &[]).is_err());
    }
}
