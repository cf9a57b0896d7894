//! The chat hub at `/hubs/chat` (seeds 001 and 002): their hub method names and
//! positional arguments parsed into the core's [`Request`]s, and the core's [`Event`]s
//! written as their client methods, with camelCase payloads.
//!
//! The tables of methods and events are in `docs/signalr.md`, "/hubs/chat".

use palaver_protocol::ws::{Event, PresenceStatus, SendMessage, SetPresence};
use palaver_protocol::Message;
use serde::Deserialize;
use serde_json::{json, Value};

use super::args::Args;
use super::record::invocation_record;
use crate::error::{AppError, AppResult};
use crate::live::request::Request;
use crate::live::wire::Frame;

/// `SendMessage`'s second argument: the text, or an object with it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Payload {
    Text(String),
    Full(FullPayload),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FullPayload {
    #[serde(default, alias = "content")]
    text: String,
    #[serde(default)]
    attachments: Vec<AttachmentRef>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
}

/// An uploaded attachment: its id, or `{id}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum AttachmentRef {
    Id(String),
    Object { id: String },
}

/// The message to send in `room_id` described by `payload`.
fn send(room_id: String, payload: Payload) -> AppResult<SendMessage> {
    let full = match payload {
        Payload::Text(text) => FullPayload {
            text,
            attachments: Vec::new(),
            client_id: None,
            reply_to: None,
        },
        Payload::Full(full) => full,
    };
    if full.attachments.len() > 1 {
        return Err(AppError::validation(
            "attachments",
            "a message carries at most one attachment",
        ));
    }
    let attachment_id = full.attachments.into_iter().next().map(|a| match a {
        AttachmentRef::Id(id) | AttachmentRef::Object { id } => id,
    });
    Ok(SendMessage {
        room_id,
        content: full.text,
        client_id: full.client_id,
        reply_to: full.reply_to,
        attachment_id,
    })
}

/// Hub method `target` with `arguments`, as a request.
///
/// # Errors
/// `400 unknown_type` for a method this hub does not have; `400 bad_request` for the
/// wrong number of arguments or one of the wrong type; whatever a payload's own checks
/// say (`422 validation_failed`).
pub fn request(target: &str, arguments: Vec<Value>) -> AppResult<Request> {
    let mut args = Args::new(target, arguments);
    let request = match target {
        "JoinChannel" => Request::JoinRoom {
            room_id: args.next("channelId")?,
        },
        "LeaveChannel" => Request::LeaveRoom {
            room_id: args.next("channelId")?,
        },
        "SendMessage" => {
            let room_id = args.next("channelId")?;
            Request::SendMessage(send(room_id, args.next("payload")?)?)
        }
        "SendPrivateMessage" => {
            let user_id = args.next("userId")?;
            Request::SendDirectMessage {
                user_id,
                message: send(String::new(), args.next("payload")?)?,
            }
        }
        "Typing" => Request::Typing {
            room_id: args.next("channelId")?,
            active: args.next("isTyping")?,
        },
        "SetStatus" => {
            let status: String = args.next("status")?;
            let status = match status.as_str() {
                "online" => PresenceStatus::Online,
                "away" => PresenceStatus::Away,
                "dnd" => PresenceStatus::Dnd,
                "invisible" | "offline" => PresenceStatus::Invisible,
                _ => {
                    return Err(AppError::validation(
                        "status",
                        "status must be online, away, dnd, invisible or offline",
                    ))
                }
            };
            let status_text = args.optional("customStatus")?;
            Request::SetPresence(SetPresence {
                status,
                status_text,
            })
        }
        "EditMessage" => Request::EditMessage {
            room_id: None,
            message_id: args.next("messageId")?,
            content: args.next("text")?,
        },
        "DeleteMessage" => Request::DeleteMessage {
            room_id: None,
            message_id: args.next("messageId")?,
        },
        "MarkRead" => Request::MarkRead {
            room_id: args.next("channelId")?,
            seq: args.next("seq")?,
        },
        _ => return Err(super::args::unknown_method("chat", target)),
    };
    args.finish()?;
    Ok(request)
}

/// `event` as this hub's client method invocations (a frame of whole records); an empty
/// frame for an event this hub does not carry.
///
/// `message.created` becomes two records, `ReceiveMessage` then
/// `ReceivePrivateMessage`: the transport sends the first for a group room and the
/// second for a direct-message room (it knows which rooms are which), so the encoding
/// stays one per event for every recipient.
pub fn event(event: &Event) -> Frame {
    let text = match event {
        Event::Ready(ready) => super::ready_frame(ready),
        Event::MessageCreated(m) => {
            let message = message(m);
            let mut text = invocation_record("ReceiveMessage", &args2(&m.room_id, &message));
            text.push_str(&invocation_record(
                "ReceivePrivateMessage",
                &args2(&m.sender.id, &message),
            ));
            text
        }
        Event::MessageUpdated(m) => {
            invocation_record("MessageEdited", &args2(&m.room_id, &message(m)))
        }
        Event::MessageDeleted(m) => {
            invocation_record("MessageDeleted", &json!([m.room_id, m.id]).to_string())
        }
        Event::Typing(t) => invocation_record(
            "UserTyping",
            &json!([t.room_id, t.user_id, t.active]).to_string(),
        ),
        Event::PresenceUpdated(p) => {
            let status = json!(p.status);
            let mut text = invocation_record(
                "UserPresenceUpdate",
                &json!([p.user_id, status]).to_string(),
            );
            let edge = match p.status {
                PresenceStatus::Online => Some("UserConnected"),
                PresenceStatus::Offline => Some("UserDisconnected"),
                _ => None,
            };
            if let Some(edge) = edge {
                text.push_str(&invocation_record(edge, &json!([p.user_id]).to_string()));
            }
            text
        }
        Event::MemberJoined(m) => invocation_record(
            "UserJoinedChannel",
            &json!([m.room_id, m.user_id]).to_string(),
        ),
        Event::MemberLeft(m) => invocation_record(
            "UserLeftChannel",
            &json!([m.room_id, m.user_id]).to_string(),
        ),
        Event::RoomDeleted(r) => {
            invocation_record("ChannelDeleted", &json!([r.room_id]).to_string())
        }
        _ => String::new(),
    };
    Frame::from(text)
}

/// `[first, second]` as JSON array text.
fn args2(first: &str, second: &Value) -> String {
    json!([first, second]).to_string()
}

/// A message as the seeds' clients read it:
/// `{id, channelId, senderId, senderName, text, attachments: [{id, url, mimeType, size,
/// fileName}], createdAt, editedAt, deletedAt, seq, clientId, replyTo}`.
pub fn message(m: &Message) -> Value {
    let attachments: Vec<Value> = m
        .attachment
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "url": a.url,
                "mimeType": a.content_type,
                "size": a.size,
                "fileName": a.filename,
            })
        })
        .collect();
    json!({
        "id": m.id,
        "channelId": m.room_id,
        "senderId": m.sender.id,
        "senderName": m.sender.username,
        "text": m.content,
        "attachments": attachments,
        "createdAt": m.created_at,
        "editedAt": m.edited_at,
        "deletedAt": m.deleted_at,
        "seq": m.seq,
        "clientId": m.client_id,
        "replyTo": m.reply_to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::ErrorCode;

    fn args(v: Value) -> Vec<Value> {
        v.as_array().unwrap().clone()
    }

    #[test]
    fn methods_parse_with_positional_arguments() {
        match request("SendMessage", args(json!(["r1", "hello"]))).unwrap() {
            Request::SendMessage(m) => {
                assert_eq!((m.room_id.as_str(), m.content.as_str()), ("r1", "hello"));
            }
            other => panic!("{other:?}"),
        }
        match request(
            "SendMessage",
            args(json!(["r1", {"text": "hi", "clientId": "c1", "attachments": [{"id": "a1"}]}])),
        )
        .unwrap()
        {
            Request::SendMessage(m) => {
                assert_eq!(m.client_id.as_deref(), Some("c1"));
                assert_eq!(m.attachment_id.as_deref(), Some("a1"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request("Typing", args(json!(["r1", true]))).unwrap(),
            Request::Typing { active: true, .. }
        ));
        assert!(matches!(
            request("SendPrivateMessage", args(json!(["u2", "psst"]))).unwrap(),
            Request::SendDirectMessage { user_id, .. } if user_id == "u2"
        ));
    }

    #[test]
    fn bad_invocations_say_why() {
        let code = |t: &str, a: Value| request(t, args(a)).unwrap_err().code;
        assert_eq!(code("Nope", json!([])), ErrorCode::UnknownType);
        assert_eq!(code("JoinChannel", json!([])), ErrorCode::BadRequest);
        assert_eq!(
            code("JoinChannel", json!(["a", "b"])),
            ErrorCode::BadRequest
        );
        assert_eq!(code("JoinChannel", json!([7])), ErrorCode::BadRequest);
        assert_eq!(code("Typing", json!(["r", "yes"])), ErrorCode::BadRequest);
        assert_eq!(
            code("SendMessage", json!(["r", {"attachments": ["a", "b"]}])),
            ErrorCode::ValidationFailed
        );
        assert_eq!(
            code("SetStatus", json!(["sleepy"])),
            ErrorCode::ValidationFailed
        );
    }
}
