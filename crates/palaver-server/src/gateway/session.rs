//! One upgraded WebSocket connection: reader loop, writer task, hub registration.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use palaver_protocol::ws::{close_code, Event, Ready};
use palaver_protocol::ErrorCode;
use tokio::sync::{mpsc, watch};

use super::dispatch;
use crate::auth::Actor;
use crate::error::AppError;
use crate::hub::CloseReason;
use crate::AppState;

/// How long the writer may take to send a close frame to a client before giving up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs a connection until either side closes it.
///
/// `initial` is the `ready` data computed before the upgrade. The connection registers
/// with the hub for those rooms *first*, then takes a fresh `ready` snapshot and sends it,
/// so no event committed after the snapshot can be missed; events committed just before
/// it may follow `ready` (clients de-duplicate by `(room_id, seq)`).
pub async fn run(state: AppState, actor: Actor, initial: Ready, socket: WebSocket) {
    let capacity = state.service.limits().ws_outbound_queue_frames;
    let registration = state.hub.register(
        &actor.user_id,
        &actor.credential.hub_key(),
        initial.rooms.into_iter().map(|r| r.id),
        capacity,
    );
    let conn = registration.id;
    tracing::debug!(conn, user_id = %actor.user_id, "connection open");

    let (mut sink, stream) = socket.split();
    let ready = match state.service.ready(&actor).await {
        Ok(ready) => ready,
        Err(e) => {
            // The account vanished between the upgrade and now (or the store failed).
            let _ = sink
                .send(Message::Text(encode(&Event::Error(e.detail()))))
                .await;
            state.hub.unregister(conn);
            return;
        }
    };
    state
        .hub
        .add_rooms(conn, ready.rooms.iter().map(|r| r.id.clone()));
    if sink
        .send(Message::Text(encode(&Event::Ready(ready))))
        .await
        .is_err()
    {
        state.hub.unregister(conn);
        return;
    }

    let mut writer = tokio::spawn(write_loop(sink, registration.queue, registration.close));
    let reader = read_loop(&state, &actor, stream, registration.sender);
    tokio::select! {
        exit = reader => {
            if let Some(reason) = exit {
                state.hub.close(conn, reason);
            }
        }
        _ = &mut writer => {}
    }
    // Dropping the hub's sender (and the reader's) ends the writer once it has drained.
    state.hub.unregister(conn);
    if tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    tracing::debug!(conn, "connection closed");
}

/// Serializes an event once. Events are plain data; failure would be a bug, reported as
/// an `internal` error event rather than a panic.
pub fn encode<T: serde::Serialize>(value: &T) -> Utf8Bytes {
    match serde_json::to_string(value) {
        Ok(text) => Utf8Bytes::from(text),
        Err(e) => {
            let err = AppError::internal(e);
            Utf8Bytes::from(serde_json::to_string(&Event::Error(err.detail())).unwrap_or_default())
        }
    }
}

/// Reads frames until the client closes, the socket fails, or a frame breaks the rules.
/// Returns the close the server must send, if any.
async fn read_loop(
    state: &AppState,
    actor: &Actor,
    mut stream: SplitStream<WebSocket>,
    replies: mpsc::Sender<Utf8Bytes>,
) -> Option<CloseReason> {
    while let Some(received) = stream.next().await {
        let message = match received {
            Ok(message) => message,
            Err(e) => return too_big(e),
        };
        let answer = match message {
            Message::Text(text) => dispatch::handle(state, actor, text.as_str()).await,
            Message::Binary(_) => Some(encode(&Event::Error(
                AppError::new(ErrorCode::BadRequest, "binary frames are not supported").detail(),
            ))),
            Message::Close(_) => return None,
            // tungstenite answers pings itself; pongs need nothing.
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if let Some(frame) = answer {
            // The reply shares the outbound queue with events; a full queue means the
            // hub is already closing this connection as a slow consumer.
            if replies.try_send(frame).is_err() {
                return None;
            }
        }
    }
    None
}

/// The close to send for a read error: 1009 when the frame exceeded the size limit.
fn too_big(e: axum::Error) -> Option<CloseReason> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match e.into_inner().downcast::<WsError>() {
        Ok(inner) if matches!(*inner, WsError::Capacity(_)) => Some(CloseReason {
            code: close_code::MESSAGE_TOO_BIG,
            reason: "message too big",
        }),
        _ => None,
    }
}

/// Writes queued frames, flushing once per batch, until the queue closes or the hub asks
/// for a close.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Utf8Bytes>,
    mut close: watch::Receiver<Option<CloseReason>>,
) {
    loop {
        tokio::select! {
            biased;
            _ = close.changed() => {
                let reason = *close.borrow();
                let frame = reason.map(|r| CloseFrame { code: r.code, reason: r.reason.into() });
                if reason.is_some_and(|r| r.code == close_code::SERVICE_RESTART) {
                    // Shutting down: deliver what is already queued first.
                    while let Ok(frame) = queue.try_recv() {
                        if sink.feed(Message::Text(frame)).await.is_err() {
                            return;
                        }
                    }
                }
                let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(frame))).await;
                return;
            }
            next = queue.recv() => {
                let Some(frame) = next else {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
                    return;
                };
                if sink.feed(Message::Text(frame)).await.is_err() {
                    return;
                }
                while let Ok(frame) = queue.try_recv() {
                    if sink.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}
