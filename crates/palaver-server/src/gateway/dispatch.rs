//! Interprets one client text frame and produces the frame to send back, if any.
//!
//! `{"id", "type", "data"}` → a `reply` with the same `id`. A frame without an `id` is
//! executed too, but only failures are answered, as an `error` event. Unparseable JSON
//! and unknown types are answered and the connection stays open.

use palaver_protocol::ws::{
    CallRef, ClientFrame, EditMessage, Event, MarkRead, MessageRef, ReactionChange, Reply,
    RequestId, RoomRef, SendMessage, SendSignal, SetPresence, StartCall, Sync, Typing,
};
use palaver_protocol::ErrorCode;
use serde_json::{json, Value};

use super::session::encode;
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::http::extract::from_value;
use crate::hub::{ConnId, Outbound};
use crate::service::messages::SendOptions;
use crate::AppState;

/// Handles one text frame of connection `conn`; returns the reply or error event to
/// queue (or, for `sync`, the replay the writer performs and answers in queue order).
pub async fn handle(state: &AppState, actor: &Actor, conn: ConnId, text: &str) -> Option<Outbound> {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            let err = AppError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}"));
            return Some(Outbound::frame(encode(&Event::Error(err.detail()))));
        }
    };
    // Keep the id even if the rest of the frame is malformed, so the reply can carry it.
    let id: Option<RequestId> = value
        .get("id")
        .filter(|v| v.is_string() || v.is_number())
        .cloned();
    let result = match from_value::<ClientFrame>(value) {
        Ok(frame) if frame.kind == "sync" => match from_value::<Sync>(frame.data) {
            Ok(sync) => {
                return Some(Outbound::Sync {
                    rooms: sync.rooms.into_iter().collect(),
                    reply_id: id,
                })
            }
            Err(e) => Err(e),
        },
        Ok(frame) => execute(state, actor, conn, &frame.kind, frame.data).await,
        Err(e) => Err(e),
    };
    let frame = match (id, result) {
        (Some(id), Ok(data)) => encode(&Reply::ok(id, data)),
        (Some(id), Err(e)) => encode(&Reply::err(id, e.detail())),
        (None, Ok(_)) => return None,
        (None, Err(e)) => encode(&Event::Error(e.detail())),
    };
    Some(Outbound::frame(frame))
}

/// Runs request `kind` with its `data` for connection `conn`; returns the reply data.
async fn execute(
    state: &AppState,
    actor: &Actor,
    conn: ConnId,
    kind: &str,
    data: Value,
) -> AppResult<Value> {
    let service = &state.service;
    match kind {
        "message.send" => {
            let req: SendMessage = from_value(data)?;
            let options = SendOptions {
                client_id: req.client_id.as_deref(),
                reply_to: req.reply_to.as_deref(),
                attachment_id: req.attachment_id.as_deref(),
            };
            to_value(
                service
                    .send_message(actor, &req.room_id, &req.content, options)
                    .await?,
            )
        }
        "message.edit" => {
            let req: EditMessage = from_value(data)?;
            let message = service
                .edit_message(actor, &req.room_id, &req.message_id, &req.content)
                .await?;
            to_value(message)
        }
        "message.delete" => {
            let req: MessageRef = from_value(data)?;
            to_value(
                service
                    .delete_message(actor, &req.room_id, &req.message_id)
                    .await?,
            )
        }
        "reaction.add" | "reaction.remove" => {
            let req: ReactionChange = from_value(data)?;
            let add = kind == "reaction.add";
            let message = service
                .react(actor, &req.room_id, &req.message_id, &req.emoji, add)
                .await?;
            to_value(message)
        }
        "read" => {
            let req: MarkRead = from_value(data)?;
            to_value(service.mark_read(actor, &req.room_id, req.seq).await?)
        }
        "room.join" => {
            let req: RoomRef = from_value(data)?;
            to_value(service.join_room(actor, &req.room_id).await?)
        }
        "room.leave" => {
            let req: RoomRef = from_value(data)?;
            service.leave_room(actor, &req.room_id).await?;
            Ok(json!({}))
        }
        "presence.set" => {
            let req: SetPresence = from_value(data)?;
            to_value(service.set_presence(actor, req).await?)
        }
        "typing" => {
            let req: Typing = from_value(data)?;
            service.typing(actor, &req.room_id, req.active).await?;
            Ok(json!({}))
        }
        "call.start" => {
            let req: StartCall = from_value(data)?;
            to_value(service.start_call(actor, conn, req).await?)
        }
        "call.accept" => {
            let req: CallRef = from_value(data)?;
            to_value(service.accept_call(actor, conn, &req.call_id).await?)
        }
        "call.decline" => {
            let req: CallRef = from_value(data)?;
            service.decline_call(actor, conn, &req.call_id).await?;
            Ok(json!({}))
        }
        "call.leave" => {
            let req: CallRef = from_value(data)?;
            service.leave_call(conn, &req.call_id).await?;
            Ok(json!({}))
        }
        "call.end" => {
            let req: CallRef = from_value(data)?;
            service.end_call(actor, conn, &req.call_id).await?;
            Ok(json!({}))
        }
        "rtc.signal" => {
            let req: SendSignal = from_value(data)?;
            service.relay_signal(actor, conn, req).await?;
            Ok(json!({}))
        }
        "ping" => Ok(json!({})),
        other => Err(AppError::new(
            ErrorCode::UnknownType,
            format!("unknown request type {other:?}"),
        )),
    }
}

fn to_value<T: serde::Serialize>(value: T) -> AppResult<Value> {
    serde_json::to_value(value).map_err(AppError::internal)
}
