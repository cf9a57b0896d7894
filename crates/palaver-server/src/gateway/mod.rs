//! The gateways: one module per wire protocol, each only authenticating, parsing and
//! framing. Everything a connection does once it is open (ready snapshot, requests,
//! resume, backpressure, heartbeat) is the protocol-neutral core in [`crate::live`].
//!
//! - [`native`]: the documented JSON protocol at `GET /api/v1/ws` (`docs/protocol.md`).
//! - [`socketio`]: Socket.IO at `/socket.io/`, with seed 004's events (`docs/socketio.md`).
//! - [`signalr`]: ASP.NET Core SignalR at `/hubs/chat` and `/hubs/webrtc`, with seeds
//!   000–002's hubs (`docs/signalr.md`).
//! - [`signaling_compat`]: seed 003's Go signaling server at `/compat/signaling/`: its
//!   REST routes and `msg_type` envelope (`docs/signaling-compat.md`).

pub mod native;
pub mod signaling_compat;
pub mod signalr;
pub mod socketio;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every gateway's routes.
pub fn router() -> OpenApiRouter<AppState> {
    native::router()
}

/// Cross-site WebSocket hijacking defence (OWASP ASVS 5.0 V4.4), for every gateway: a
/// browser always sends `Origin`; it must be this server's own origin or one in
/// `cors.allowed_origins`. Non-browser clients send none and are allowed; `Origin: null`
/// is refused.
///
/// # Errors
/// `403 forbidden` for any other origin.
pub(crate) fn check_origin(
    headers: &axum::http::HeaderMap,
    allowed: &[String],
) -> crate::error::AppResult<()> {
    use axum::http::header;
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("null").trim_end_matches('/');
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let same_origin = host.is_some_and(|host| {
        origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host)
    });
    let listed = allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    if origin != "null" && (same_origin || listed) {
        Ok(())
    } else {
        tracing::warn!(%origin, "live connection refused: Origin not allowed");
        Err(crate::error::AppError::new(
            palaver_protocol::ErrorCode::Forbidden,
            "this Origin may not open a live connection here",
        ))
    }
}
