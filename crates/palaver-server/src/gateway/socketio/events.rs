//! Client events on the Socket.IO wire: seed 004's event names and payloads parsed once
//! into the core's typed [`Request`]s, and each request's outcome shaped as the seed's
//! acknowledgement (`{ok: true, ...}` or `{ok: false, error}`) plus the events the seed
//! answers with (`message_sent`, `message_history`).
//!
//! Payload fields are camelCase as in the seed; a payload of the wrong shape is
//! `validation_failed` naming the (camelCase) field, an unknown event `unknown_type`.
//! The table of events is in `docs/socketio.md`, "Client events".

use palaver_protocol::ws::{IceCandidate, SendMessage, SessionDescription, SetPresence, StartCall};
use palaver_protocol::{CallKind, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{AppError, AppResult};
use crate::http::extract::from_value;
use crate::live::request::{Request, Response};

/// What a client event asks for, so its answer can be shaped as the seed's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `send_message`: also `message_sent` to the sender.
    SendMessage,
    /// `join_room`: also `message_history`.
    JoinRoom,
    /// Anything else.
    Other,
}

/// `{messageId, roomId?}`, or a bare message id string (as the seed's `delete_message`
/// and `mark_message_read` send it).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageTarget {
    message_id: String,
    #[serde(default)]
    room_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomTarget {
    room_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileRef {
    file_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Send {
    room_id: String,
    #[serde(default)]
    content: String,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    file_attachment: Option<FileRef>,
    #[serde(default)]
    encrypted: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Edit {
    message_id: String,
    content: String,
    #[serde(default)]
    room_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct React {
    message_id: String,
    emoji: String,
    #[serde(default)]
    room_id: Option<String>,
}

/// The seed's statuses: Palaver's, with `offline` meaning `invisible`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SeedStatus {
    Online,
    Away,
    Dnd,
    Offline,
    Invisible,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    status: SeedStatus,
    #[serde(default)]
    custom_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallUser {
    target_user_id: String,
    #[serde(default)]
    room_id: Option<String>,
    #[serde(default = "video")]
    call_type: CallKind,
}

fn video() -> CallKind {
    CallKind::Video
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallTarget {
    call_id: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MaybeCall {
    #[serde(default)]
    call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offer {
    target_user_id: String,
    offer: SessionDescription,
    #[serde(default)]
    call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    target_user_id: String,
    answer: SessionDescription,
    #[serde(default)]
    call_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    target_user_id: String,
    candidate: IceCandidate,
    #[serde(default)]
    call_id: Option<String>,
}

#[derive(Deserialize)]
struct SyncRooms {
    rooms: std::collections::BTreeMap<String, Option<i64>>,
}

/// `data` (the event's first argument; `None` when it sent none) as a `T`.
fn data<T: DeserializeOwned>(data: Option<Value>) -> AppResult<T> {
    from_value(data.unwrap_or(Value::Null))
}

/// A message target: a bare id string or `{messageId, roomId?}`.
fn message_target(raw: Option<Value>) -> AppResult<MessageTarget> {
    match raw {
        Some(Value::String(id)) => Ok(MessageTarget {
            message_id: id,
            room_id: None,
        }),
        other => data(other),
    }
}

/// Parses client event `event` with its first argument `raw`.
pub fn parse(event: &str, raw: Option<Value>) -> (Kind, AppResult<Request>) {
    let kind = match event {
        "send_message" => Kind::SendMessage,
        "join_room" => Kind::JoinRoom,
        _ => Kind::Other,
    };
    (kind, request(event, raw))
}

fn request(event: &str, raw: Option<Value>) -> AppResult<Request> {
    Ok(match event {
        "send_message" => {
            let req: Send = data(raw)?;
            if req.encrypted == Some(true) {
                return Err(AppError::validation(
                    "encrypted",
                    "encrypted: Palaver does not store messages flagged as end-to-end encrypted",
                ));
            }
            Request::SendMessage(SendMessage {
                room_id: req.room_id,
                content: req.content,
                client_id: req.client_id,
                reply_to: req.reply_to,
                attachment_id: req.file_attachment.map(|f| f.file_id),
            })
        }
        "edit_message" => {
            let req: Edit = data(raw)?;
            Request::EditMessage {
                room_id: req.room_id,
                message_id: req.message_id,
                content: req.content,
            }
        }
        "delete_message" => {
            let req = message_target(raw)?;
            Request::DeleteMessage {
                room_id: req.room_id,
                message_id: req.message_id,
            }
        }
        "add_reaction" | "remove_reaction" => {
            let req: React = data(raw)?;
            Request::React {
                room_id: req.room_id,
                message_id: req.message_id,
                emoji: req.emoji,
                add: event == "add_reaction",
            }
        }
        "mark_message_read" => {
            let req = message_target(raw)?;
            Request::MarkMessageRead {
                room_id: req.room_id,
                message_id: req.message_id,
            }
        }
        "join_room" => Request::JoinRoom {
            room_id: data::<RoomTarget>(raw)?.room_id,
        },
        "leave_room" => Request::LeaveRoom {
            room_id: data::<RoomTarget>(raw)?.room_id,
        },
        "user_typing" | "user_stop_typing" => Request::Typing {
            room_id: data::<RoomTarget>(raw)?.room_id,
            active: event == "user_typing",
        },
        "set_status" => {
            use palaver_protocol::ws::PresenceStatus as P;
            let req: Status = data(raw)?;
            let status = match req.status {
                SeedStatus::Online => P::Online,
                SeedStatus::Away => P::Away,
                SeedStatus::Dnd => P::Dnd,
                SeedStatus::Offline | SeedStatus::Invisible => P::Invisible,
            };
            Request::SetPresence(SetPresence {
                status,
                status_text: req.custom_status.filter(|s| !s.is_empty()),
            })
        }
        "call_user" => {
            let req: CallUser = data(raw)?;
            let (room_id, user_id, invite) = match req.room_id {
                Some(room) => (Some(room), None, Some(vec![req.target_user_id])),
                None => (None, Some(req.target_user_id), None),
            };
            Request::StartCall(StartCall {
                room_id,
                user_id,
                kind: req.call_type,
                invite,
                offer: None,
            })
        }
        "accept_call" => Request::AcceptCall {
            call_id: data::<CallTarget>(raw)?.call_id,
        },
        "reject_call" => Request::DeclineCall {
            call_id: data::<CallTarget>(raw)?.call_id,
        },
        "end_call" => {
            let req: MaybeCall = match raw {
                None | Some(Value::Null) => MaybeCall::default(),
                Some(Value::String(id)) => MaybeCall { call_id: Some(id) },
                other => data(other)?,
            };
            Request::HangUp {
                call_id: req.call_id,
            }
        }
        "webrtc_offer" => {
            let req: Offer = data(raw)?;
            Request::SignalUser {
                call_id: req.call_id,
                to_user: req.target_user_id,
                description: Some(req.offer),
                candidate: None,
            }
        }
        "webrtc_answer" => {
            let req: Answer = data(raw)?;
            Request::SignalUser {
                call_id: req.call_id,
                to_user: req.target_user_id,
                description: Some(req.answer),
                candidate: None,
            }
        }
        "ice_candidate" => {
            let req: Candidate = data(raw)?;
            Request::SignalUser {
                call_id: req.call_id,
                to_user: req.target_user_id,
                description: None,
                candidate: Some(req.candidate),
            }
        }
        // Palaver's own: replay rooms after the given seqs (`{rooms: {roomId: seq}}`).
        "sync" => Request::Sync {
            rooms: data::<SyncRooms>(raw)?.rooms,
        },
        "ping" => Request::Ping,
        other => {
            return Err(AppError::new(
                ErrorCode::UnknownType,
                format!("unknown event {other:?}"),
            ))
        }
    })
}

/// The acknowledgement of a request that succeeded: `{ok: true, <what it answers>}`.
pub fn ack_ok(response: &Response) -> Value {
    use super::wire::{camel, message};
    match response {
        Response::Message(m) => json!({"ok": true, "message": message(m, None)}),
        Response::Read(read) => json!({"ok": true, "read": camel(json!(read))}),
        Response::Room(room) => json!({"ok": true, "room": camel(json!(room))}),
        Response::Presence(p) => json!({
            "ok": true,
            "status": p.status,
            "customStatus": p.status_text,
        }),
        Response::Call(joined) => json!({
            "ok": true,
            "callId": joined.call.call_id,
            "participantId": joined.participant_id,
            "call": camel(json!(joined.call)),
        }),
        Response::CallRoom { number, joined } => json!({
            "ok": true,
            "roomNumber": number,
            "callId": joined.call.call_id,
            "participantId": joined.participant_id,
            "call": camel(json!(joined.call)),
        }),
        Response::Synced { rooms } => json!({"ok": true, "rooms": rooms}),
        Response::Empty {} => json!({"ok": true}),
    }
}

/// The acknowledgement of a request that failed: `{ok: false, error: {code, message,
/// field?, retryAfterSecs?}}`.
pub fn ack_err(error: &AppError) -> Value {
    json!({"ok": false, "error": super::wire::error_detail(&error.detail())})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(event: &str, raw: Value) -> ErrorCode {
        parse(event, Some(raw)).1.unwrap_err().code
    }

    #[test]
    fn seed_payloads_become_requests() {
        match parse("delete_message", Some(json!("m1"))).1.unwrap() {
            Request::DeleteMessage {
                room_id: None,
                message_id,
            } => assert_eq!(message_id, "m1"),
            other => panic!("{other:?}"),
        }
        match parse(
            "send_message",
            Some(json!({"roomId": "r", "content": "hi", "clientId": "c", "fileAttachment": null})),
        )
        .1
        .unwrap()
        {
            Request::SendMessage(m) => {
                assert_eq!(
                    (m.room_id.as_str(), m.client_id.as_deref()),
                    ("r", Some("c"))
                )
            }
            other => panic!("{other:?}"),
        }
        match parse(
            "call_user",
            Some(json!({"targetUserId": "u2", "callType": "audio"})),
        )
        .1
        .unwrap()
        {
            Request::StartCall(s) => {
                assert_eq!(s.user_id.as_deref(), Some("u2"));
                assert!(s.room_id.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse("end_call", None).1.unwrap(),
            Request::HangUp { call_id: None }
        ));
    }

    #[test]
    fn bad_payloads_get_stable_codes() {
        assert_eq!(
            code("send_message", json!({"content": "x"})),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            code(
                "send_message",
                json!({"roomId": "r", "content": "x", "encrypted": true})
            ),
            ErrorCode::ValidationFailed
        );
        assert_eq!(code("warp", json!({})), ErrorCode::UnknownType);
        let err = parse("join_room", Some(json!({"roomId": 5})))
            .1
            .unwrap_err();
        assert_eq!(err.detail().field.as_deref(), Some("roomId"));
    }
}
