//! The Socket.IO gateway at `/socket.io/`: seed 004's clients (the official
//! `socket.io-client` 4.x and any Engine.IO v4 / Socket.IO v5 client) on Palaver's live
//! core. Migration guide and event tables: `docs/socketio.md`.
//!
//! socketioxide speaks the wire (the Engine.IO handshake, long-polling and the WebSocket
//! upgrade, heartbeats, packet framing, acknowledgements); its rooms and adapters are not
//! used: every socket is one connection of the hub, and fan-out, ordering, resume and
//! backpressure are the core's ([`crate::live::connection`]), as for the native gateway.
//!
//! 1. [`authenticate`], a connect middleware, runs before the client is told it is
//!    connected: `Origin` (the native gateway's rule), the credential (`auth.token`, or an
//!    `Authorization`/`X-API-Key` header), the account's socket limit, and `auth.since`.
//!    A refusal is the client's `connect_error`, with `err.message` =
//!    `"<code>: <message>"`. It also installs the socket's event handlers, so no event
//!    sent right after connecting is missed.
//! 2. [`serve`], the connect handler, runs the connection core over a
//!    [`socket::SioSocket`] until either side ends it.

pub mod events;
pub mod socket;
pub mod wire;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use palaver_protocol::ErrorCode;
use serde_json::Value;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler as _;
use socketioxide::handler::FromMessageParts;
use socketioxide::layer::SocketIoLayer;
use socketioxide::SocketIo;
use tokio::sync::mpsc;

use self::socket::{ClientEvent, Incoming, SioSocket, INBOUND_EVENTS};
use crate::auth::{presented_credential, Actor};
use crate::error::AppError;
use crate::hub::SocketSlot;
use crate::AppState;

/// The default Socket.IO path (the official client's `path` option).
pub const PATH: &str = "/socket.io";

/// Engine.IO packets buffered per socket before a write waits (then the core's
/// slow-consumer rule applies). Acknowledgements cannot wait: socketioxide's `AckSender`
/// is spent by a send that finds the buffer full, so the buffer is large enough that a
/// burst of [`INBOUND_EVENTS`] requests (each an event, its echo and its ack) never fills
/// it; a dropped ack is logged.
const SOCKET_BUFFER_PACKETS: usize = 1024;

/// What [`authenticate`] leaves for [`serve`] in the socket's extensions.
#[derive(Clone)]
struct Accepted(Arc<Mutex<Option<Connection>>>);

struct Connection {
    actor: Actor,
    resume: Vec<(String, Option<i64>)>,
    slot: SocketSlot,
    inbound: mpsc::Receiver<Incoming>,
}

/// The Socket.IO service as a layer over the rest of the application: it answers
/// requests under [`PATH`] and passes every other request through. The [`SocketIo`]
/// handle closes every Socket.IO transport at shutdown ([`close_transports`]).
pub fn layer(state: &AppState) -> (SocketIoLayer, SocketIo) {
    let limits = state.service.limits();
    let max = limits.ws_frame_max_bytes;
    let (layer, io) = SocketIo::builder()
        .req_path(PATH)
        .ping_interval(Duration::from_secs(limits.ws_ping_interval_secs.max(1)))
        .ping_timeout(Duration::from_secs(limits.ws_pong_timeout_secs.max(1)))
        .max_payload(u64::try_from(max).unwrap_or(u64::MAX))
        .ws_max_message_size(max)
        .ws_max_frame_size(max)
        .ws_read_buffer_size(1024)
        .max_buffer_size(SOCKET_BUFFER_PACKETS)
        .build_layer();
    let (for_auth, for_serve) = (state.clone(), state.clone());
    io.ns(
        "/",
        (move |socket: SocketRef| serve(for_serve.clone(), socket)).with(
            move |socket: SocketRef, TryData(auth): TryData<Value>| {
                authenticate(for_auth.clone(), socket, auth.ok())
            },
        ),
    );
    (layer, io)
}

/// At shutdown, once the hub has closed the connections (or `wait` passed): closes every
/// Engine.IO transport, so clients see a dropped connection and reconnect by themselves
/// (to another node, or to this one once it is back), and no long-poll holds the HTTP
/// drain up.
pub async fn close_transports(io: SocketIo, hub: Arc<crate::hub::Hub>, wait: Duration) {
    hub.wait_until_empty(wait).await;
    io.close().await;
}

/// The connect middleware (step 1 in the module doc).
async fn authenticate(
    state: AppState,
    socket: SocketRef,
    auth: Option<Value>,
) -> Result<(), ConnectError> {
    let headers = &socket.req_parts().headers;
    super::check_origin(headers, &state.cors.allowed_origins)?;
    let token = auth
        .as_ref()
        .and_then(|a| a.get("token"))
        .and_then(Value::as_str)
        .map(|t| t.strip_prefix("Bearer ").unwrap_or(t).trim())
        .filter(|t| !t.is_empty())
        .or_else(|| presented_credential(headers))
        .ok_or_else(|| AppError::unauthorized("missing access token or API key"))?;
    let actor = state.service.authenticate(token).await?;
    let resume = parse_since(auth.as_ref().and_then(|a| a.get("since")))?;
    let max_sockets = state.service.user_limits.max_sockets();
    let slot = state
        .hub
        .reserve_socket(&actor.user_id, max_sockets)
        .ok_or_else(|| state.service.user_limits.too_many_sockets(max_sockets))?;

    let (tx, inbound) = mpsc::channel(INBOUND_EVENTS);
    let queue = tx.clone();
    socket.on_fallback(
        move |socket: SocketRef,
              Event(name): Event,
              AckId(ack_id): AckId,
              ack: AckSender,
              TryData(data): TryData<Value>| {
            let ack = ack_id.map(|_| ack);
            let incoming = Incoming::Event(Box::new(ClientEvent {
                name,
                data: data.ok(),
                ack,
            }));
            if let Err(mpsc::error::TrySendError::Full(Incoming::Event(event))) =
                queue.try_send(incoming)
            {
                let ClientEvent { name, ack, .. } = *event;
                let busy = AppError::new(
                    ErrorCode::RateLimited,
                    format!("too many events waiting: {name:?} was dropped"),
                );
                match ack {
                    Some(ack) => {
                        let _ = ack.send(&events::ack_err(&busy));
                    }
                    None => {
                        let mut payload = wire::error_detail(&busy.detail());
                        payload["event"] = Value::String(name);
                        let _ = socket.emit("error", &payload);
                    }
                }
            }
            std::future::ready(())
        },
    );
    socket.on_disconnect(move || {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Incoming::Disconnected).await;
        }
    });
    socket
        .extensions
        .insert(Accepted(Arc::new(Mutex::new(Some(Connection {
            actor,
            resume,
            slot,
            inbound,
        })))));
    Ok(())
}

/// The connect handler (step 2 in the module doc).
async fn serve(state: AppState, socket: SocketRef) {
    let Some(Accepted(accepted)) = socket.extensions.get::<Accepted>() else {
        return;
    };
    let Some(conn) = accepted.lock().ok().and_then(|mut c| c.take()) else {
        return;
    };
    let transport = SioSocket::new(socket, conn.inbound, state.clone(), conn.actor.clone());
    crate::live::connection::run(state, conn.actor, conn.resume, transport, conn.slot).await;
}

/// The acknowledgement id of a client event, if the client passed a callback.
struct AckId(Option<i64>);

impl<A: socketioxide::adapter::Adapter> FromMessageParts<A> for AckId {
    type Error = std::convert::Infallible;
    fn from_message_parts(
        _: &Arc<socketioxide::socket::Socket<A>>,
        _: &mut socketioxide::handler::Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        Ok(AckId(*ack_id))
    }
}

/// A refused connection: `connect_error` with `"<code>: <message>"`.
#[derive(Debug)]
struct ConnectError(AppError);

impl From<AppError> for ConnectError {
    fn from(e: AppError) -> Self {
        ConnectError(e)
    }
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code.as_str(), self.0.message)
    }
}

/// `auth.since`: `{roomId: seq}` (`null`: from the room's latest page), as the core's
/// resume list.
///
/// # Errors
/// `422 validation_failed` (`since`) for anything else, or more than 1,000 rooms.
fn parse_since(since: Option<&Value>) -> Result<Vec<(String, Option<i64>)>, AppError> {
    let bad = || {
        AppError::validation(
            "since",
            "since must be an object of room ids to seqs (integers >= 0, or null)",
        )
    };
    let Some(since) = since.filter(|s| !s.is_null()) else {
        return Ok(Vec::new());
    };
    let rooms = since.as_object().ok_or_else(bad)?;
    if rooms.len() > 1000 {
        return Err(bad());
    }
    rooms
        .iter()
        .map(|(room, seq)| {
            if room.is_empty() || room.len() > 64 {
                return Err(bad());
            }
            let seq = match seq {
                Value::Null => None,
                v => Some(v.as_i64().filter(|s| *s >= 0).ok_or_else(bad)?),
            };
            Ok((room.clone(), seq))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_is_an_object_of_room_seqs() {
        assert_eq!(parse_since(None).unwrap(), vec![]);
        assert_eq!(
            parse_since(Some(&json!({"a": 3, "b": null}))).unwrap(),
            vec![("a".to_string(), Some(3)), ("b".to_string(), None)]
        );
        for bad in [
            json!([1]),
            json!({"a": "x"}),
            json!({"a": -1}),
            json!({"": 1}),
        ] {
            assert!(parse_since(Some(&bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn refusals_start_with_the_code() {
        let e = ConnectError(AppError::unauthorized("bad token"));
        assert_eq!(e.to_string(), "unauthorized: bad token");
    }
}
