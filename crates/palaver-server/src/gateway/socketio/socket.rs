//! The Socket.IO [`Transport`]: one socketioxide socket (Engine.IO v4 over polling or
//! WebSocket, Socket.IO v5) as a connection of the live core.
//!
//! - In: the socket's fallback handler turns every client event into an [`Incoming`] on a
//!   bounded channel, synchronously and so in arrival order; [`SioSocket::recv`] parses
//!   it into a [`Request`](crate::live::request::Request) (see [`super::events`]) and
//!   keeps its acknowledgement for the answer.
//! - Out: frames of [`Wire::SocketIo`] (`<event> <payload>`, see [`super::wire`]) are
//!   emitted under their event name; when socketioxide's per-socket buffer is full the
//!   write waits, so the core's slow-consumer rule applies as on the native wire.
//! - Heartbeat: Engine.IO pings and times out the client itself; the core's own heartbeat
//!   is answered locally while the socket is connected.

use std::collections::VecDeque;
use std::time::Duration;

use palaver_protocol::ws::{close_code, RequestId};
use serde_json::Value;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::{SendError, SocketError};
use tokio::sync::mpsc;

use super::events::{self, Kind};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::hub::CloseReason;
use crate::live::connection::{Gone, Inbound, Transport};
use crate::live::request::Response;
use crate::live::wire::{Frame, Wire};
use crate::AppState;

/// Client events waiting for the core, per socket. A client that sends more without
/// waiting for answers gets `rate_limited` for the excess.
pub const INBOUND_EVENTS: usize = 32;

/// How long a write waits between tries while socketioxide's buffer for the socket is
/// full (the core closes the connection as a slow consumer if it stays full).
const FULL_RETRY: Duration = Duration::from_millis(5);

/// Messages in `message_history` after `join_room`.
const HISTORY_PAGE: i64 = 50;

/// What the socket's handlers hand to the connection. Events are boxed: the channel's
/// slots are allocated per socket up front, and an idle socket should not pay for them.
pub enum Incoming {
    /// A client event.
    Event(Box<ClientEvent>),
    /// The socket disconnected (the client left, or Engine.IO's heartbeat timed out).
    Disconnected,
}

/// A client event: its name, its first argument (if any), and its acknowledgement.
pub struct ClientEvent {
    pub name: String,
    pub data: Option<Value>,
    /// `Some` when the client passed an acknowledgement callback.
    pub ack: Option<AckSender>,
}

/// A request being run: what answers it.
struct Pending {
    id: u64,
    kind: Kind,
    name: String,
    /// Present when the client passed an acknowledgement callback.
    ack: Option<AckSender>,
}

/// A Socket.IO socket serving one live connection.
pub struct SioSocket {
    socket: SocketRef,
    inbound: mpsc::Receiver<Incoming>,
    state: AppState,
    actor: Actor,
    pending: VecDeque<Pending>,
    next_id: u64,
    /// The core asked for a heartbeat: answered by the next `recv`.
    heartbeat: bool,
}

impl SioSocket {
    /// The connection over `socket`, reading the events its handlers put on `inbound`.
    pub fn new(
        socket: SocketRef,
        inbound: mpsc::Receiver<Incoming>,
        state: AppState,
        actor: Actor,
    ) -> Self {
        SioSocket {
            socket,
            inbound,
            state,
            actor,
            pending: VecDeque::new(),
            next_id: 0,
            heartbeat: false,
        }
    }

    /// Emits `payload` under `name`, waiting while the socket's buffer is full.
    async fn emit(
        &self,
        name: &str,
        payload: &(impl serde::Serialize + ?Sized),
    ) -> Result<(), Gone> {
        loop {
            match self.socket.emit(name, payload) {
                Ok(()) => return Ok(()),
                Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                    tokio::time::sleep(FULL_RETRY).await;
                }
                Err(_) => return Err(Gone),
            }
        }
    }

    /// After `join_room`: the room's latest messages as `message_history`.
    async fn send_history(&self, room_id: &str) -> Result<(), Gone> {
        match self
            .state
            .service
            .history(&self.actor, room_id, None, None, Some(HISTORY_PAGE))
            .await
        {
            Ok(page) => {
                let messages: Vec<Value> = page
                    .messages
                    .iter()
                    .map(|m| super::wire::message(m, None))
                    .collect();
                self.emit("message_history", &messages).await
            }
            Err(e) => {
                let frame = super::wire::error(&e.detail(), "join_room");
                self.feed_frame(&frame).await
            }
        }
    }

    /// Emits a frame of [`Wire::SocketIo`]: its payload goes out as the JSON text it
    /// already is (encoded once for every recipient), not parsed or copied again here.
    async fn feed_frame(&self, frame: &Frame) -> Result<(), Gone> {
        let text = frame.as_str();
        let (name, json) = text.split_once(' ').unwrap_or((text, "null"));
        self.emit(name, &RawJson(json)).await
    }
}

impl Transport for SioSocket {
    const WIRE: Wire = Wire::SocketIo;

    async fn recv(&mut self) -> Inbound {
        if std::mem::take(&mut self.heartbeat) {
            return Inbound::Heard;
        }
        let (name, data, ack) = match self.inbound.recv().await {
            None | Some(Incoming::Disconnected) => return Inbound::End(None),
            Some(Incoming::Event(event)) => {
                let ClientEvent { name, data, ack } = *event;
                (name, data, ack)
            }
        };
        let (kind, request) = events::parse(&name, data);
        self.next_id += 1;
        let id = self.next_id;
        self.pending.push_back(Pending {
            id,
            kind,
            name,
            ack,
        });
        Inbound::Request {
            id: Some(Value::from(id)),
            request,
        }
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Gone> {
        self.feed_frame(&frame).await
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        // socketioxide writes each packet out as it is emitted.
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        if self.socket.connected() {
            self.heartbeat = true;
            Ok(())
        } else {
            Err(Gone)
        }
    }

    async fn answer(
        &mut self,
        id: Option<RequestId>,
        outcome: AppResult<Response>,
    ) -> Result<(), Gone> {
        let id = id.and_then(|v| v.as_u64());
        let Some(at) = self.pending.iter().position(|p| Some(p.id) == id) else {
            // Not one of ours (cannot happen): report a failure as an `error` event.
            if let Err(e) = outcome {
                return self.feed_frame(&super::wire::error(&e.detail(), "")).await;
            }
            return Ok(());
        };
        let pending = self.pending.remove(at).expect("found above");
        match outcome {
            Ok(response) => {
                if pending.kind == Kind::SendMessage {
                    if let Response::Message(m) = &response {
                        self.emit("message_sent", &super::wire::message(m, Some(m.seq)))
                            .await?;
                    }
                }
                if let Some(ack) = pending.ack {
                    if let Err(e) = ack.send(&events::ack_ok(&response)) {
                        tracing::warn!(error = %e, event = %pending.name, "Socket.IO ack dropped");
                    }
                }
                if pending.kind == Kind::JoinRoom {
                    if let Response::Room(room) = &response {
                        self.send_history(&room.id).await?;
                    }
                }
                Ok(())
            }
            Err(e) => self.fail(pending.ack, &pending.name, &e).await,
        }
    }

    async fn close(&mut self, reason: Option<CloseReason>) {
        if let Some(reason) = reason {
            let _ = self.socket.emit(
                "error",
                &serde_json::json!({
                    "code": "closed",
                    "closeCode": reason.code,
                    "message": reason.reason,
                }),
            );
            // A restart: the server closes every Engine.IO transport once its connections
            // have ended (`close_transports`), which the client takes as a dropped
            // connection and reconnects by itself. A Socket.IO disconnect would read as a
            // kick: the official client does not reconnect after one.
            if reason.code == close_code::SERVICE_RESTART {
                return;
            }
        }
        let _ = self.socket.clone().disconnect();
    }
}

impl SioSocket {
    /// Answers a failed event: on its acknowledgement if it has one, else as an `error`
    /// event naming it.
    async fn fail(&self, ack: Option<AckSender>, name: &str, e: &AppError) -> Result<(), Gone> {
        match ack {
            Some(ack) => {
                if let Err(error) = ack.send(&events::ack_err(e)) {
                    tracing::warn!(%error, event = name, "Socket.IO ack dropped");
                }
                Ok(())
            }
            _ => {
                self.feed_frame(&super::wire::error(&e.detail(), name))
                    .await
            }
        }
    }
}

/// JSON text that serde_json writes out as is: the mechanism of
/// `serde_json::value::RawValue` (its reserved struct name, stable across serde_json 1.x),
/// without `RawValue::from_string`'s validating parse and copy, which would otherwise run
/// once per recipient of every event. Only for text this server encoded itself
/// ([`super::wire`]), which is valid JSON by construction.
struct RawJson<'a>(&'a str);

impl serde::Serialize for RawJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        const TOKEN: &str = "$serde_json::private::RawValue";
        let mut raw = serializer.serialize_struct(TOKEN, 1)?;
        raw.serialize_field(TOKEN, self.0)?;
        raw.end()
    }
}

#[cfg(test)]
mod tests {
    use super::RawJson;

    #[test]
    fn raw_json_is_written_as_is() {
        let payload = r#"{"content":"a \"quoted\" text","seq":3}"#;
        let text = serde_json::to_string(&("new_message", RawJson(payload))).unwrap();
        assert_eq!(text, format!(r#"["new_message",{payload}]"#));
        // What serde_json's own RawValue writes: the same bytes.
        let checked = serde_json::value::RawValue::from_string(payload.to_owned()).unwrap();
        assert_eq!(
            text,
            serde_json::to_string(&("new_message", checked)).unwrap()
        );
    }
}
