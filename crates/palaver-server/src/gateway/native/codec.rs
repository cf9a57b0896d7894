//! The native protocol's client frames (`docs/protocol.md`): `{"id", "type", "data"}`
//! parsed once into a typed [`Request`].
//!
//! Unparseable JSON is `invalid_json`, an unknown `type` is `unknown_type`, and `data` of
//! the wrong shape is `validation_failed` naming the field (or `bad_request`), exactly as
//! the REST routes answer bodies of the wrong shape (`http::extract::from_value`).

use palaver_protocol::ws::{
    CallRef, EditMessage, MarkRead, MessageRef, ReactionChange, RequestId, RoomRef, SendMessage,
    SendSignal, SetPresence, StartCall, Sync, Typing,
};
use palaver_protocol::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{AppError, AppResult};
use crate::http::extract::{from_value, has_nul, replace_nul};
use crate::live::request::Request;

/// A client frame: the request id (if any, so even a malformed request's answer carries
/// it), and the request or why it cannot be run.
pub struct Parsed {
    pub id: Option<RequestId>,
    pub request: AppResult<Request>,
}

/// The envelope, borrowed from the frame's text: `data` stays raw until `type` says
/// what it is.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Parses one text frame.
pub fn parse(text: &str) -> Parsed {
    // A NUL in any string takes the slow path, which replaces it (see `replace_nul`).
    if has_nul(text.as_bytes()) {
        return parse_slow(text);
    }
    match serde_json::from_str::<Frame<'_>>(text) {
        Ok(frame) => {
            let id = frame.id.filter(|v| v.is_string() || v.is_number());
            Parsed {
                id,
                request: request(&frame.kind, frame.data),
            }
        }
        // Not the usual shape: take the slow path, which tells exactly what is wrong.
        Err(_) => parse_slow(text),
    }
}

/// The general path: through a `serde_json::Value`, for frames the borrowed envelope does
/// not fit (not JSON, not an object, `type` missing or not a string...).
fn parse_slow(text: &str) -> Parsed {
    let mut value: serde_json::Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return Parsed {
                id: None,
                request: Err(AppError::new(
                    ErrorCode::InvalidJson,
                    format!("malformed JSON: {e}"),
                )),
            }
        }
    };
    // Keep the id even if the rest of the frame is malformed, so the reply can carry it.
    let id: Option<RequestId> = value
        .get("id")
        .filter(|v| v.is_string() || v.is_number())
        .cloned();
    replace_nul(&mut value);
    let request = from_value::<palaver_protocol::ws::ClientFrame>(value).and_then(|frame| {
        let data = serde_json::value::to_raw_value(&frame.data).map_err(AppError::internal)?;
        request(&frame.kind, Some(&data))
    });
    Parsed { id, request }
}

/// `data` as a `T`: straight from the raw text when it fits, else through the REST
/// routes' rules (which accept `2.0` for an integer and name the offending field).
fn data<T: DeserializeOwned>(data: Option<&RawValue>) -> AppResult<T> {
    let raw = data.map(RawValue::get).unwrap_or("null");
    match serde_json::from_str::<T>(raw) {
        Ok(value) => Ok(value),
        Err(_) => {
            let value = serde_json::from_str(raw).unwrap_or(serde_json::Value::Null);
            from_value(value)
        }
    }
}

/// The typed request for `kind` with `raw` data.
fn request(kind: &str, raw: Option<&RawValue>) -> AppResult<Request> {
    Ok(match kind {
        "message.send" => Request::SendMessage(data::<SendMessage>(raw)?),
        "message.edit" => {
            let req: EditMessage = data(raw)?;
            Request::EditMessage {
                room_id: Some(req.room_id),
                message_id: req.message_id,
                content: req.content,
            }
        }
        "message.delete" => {
            let req: MessageRef = data(raw)?;
            Request::DeleteMessage {
                room_id: Some(req.room_id),
                message_id: req.message_id,
            }
        }
        "reaction.add" | "reaction.remove" => {
            let req: ReactionChange = data(raw)?;
            Request::React {
                room_id: Some(req.room_id),
                message_id: req.message_id,
                emoji: req.emoji,
                add: kind == "reaction.add",
            }
        }
        "read" => {
            let req: MarkRead = data(raw)?;
            Request::MarkRead {
                room_id: req.room_id,
                seq: req.seq,
            }
        }
        "room.join" => Request::JoinRoom {
            room_id: data::<RoomRef>(raw)?.room_id,
        },
        "room.leave" => Request::LeaveRoom {
            room_id: data::<RoomRef>(raw)?.room_id,
        },
        "presence.set" => Request::SetPresence(data::<SetPresence>(raw)?),
        "typing" => {
            let req: Typing = data(raw)?;
            Request::Typing {
                room_id: req.room_id,
                active: req.active,
            }
        }
        "call.start" => Request::StartCall(data::<StartCall>(raw)?),
        "call.accept" => Request::AcceptCall {
            call_id: data::<CallRef>(raw)?.call_id,
        },
        "call.decline" => Request::DeclineCall {
            call_id: data::<CallRef>(raw)?.call_id,
        },
        "call.leave" => Request::LeaveCall {
            call_id: data::<CallRef>(raw)?.call_id,
        },
        "call.end" => Request::EndCall {
            call_id: data::<CallRef>(raw)?.call_id,
        },
        "rtc.signal" => Request::Signal(data::<SendSignal>(raw)?),
        "sync" => Request::Sync {
            rooms: data::<Sync>(raw)?.rooms,
        },
        "ping" => Request::Ping,
        other => {
            return Err(AppError::new(
                ErrorCode::UnknownType,
                format!("unknown request type {other:?}"),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        parse(text).request.unwrap_err().code
    }

    #[test]
    fn a_send_is_parsed_once_into_its_type() {
        let parsed = parse(
            r#"{"id":1,"type":"message.send","data":{"room_id":"r","content":"hi","client_id":"c"}}"#,
        );
        assert_eq!(parsed.id, Some(serde_json::json!(1)));
        match parsed.request.unwrap() {
            Request::SendMessage(m) => {
                assert_eq!((m.room_id.as_str(), m.content.as_str()), ("r", "hi"));
                assert_eq!(m.client_id.as_deref(), Some("c"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_frames_get_stable_codes_and_keep_the_id() {
        assert_eq!(code("{nope"), ErrorCode::InvalidJson);
        assert_eq!(code(r#"{"id":"x","type":"warp"}"#), ErrorCode::UnknownType);
        let parsed = parse(r#"{"id":"x","type":"read","data":{"room_id":"r","seq":"1"}}"#);
        assert_eq!(parsed.id, Some(serde_json::json!("x")));
        assert_eq!(
            parsed.request.unwrap_err().code,
            ErrorCode::ValidationFailed
        );
        // A frame whose `type` is not a string still answers with its id.
        let parsed = parse(r#"{"id":7,"type":5}"#);
        assert_eq!(parsed.id, Some(serde_json::json!(7)));
        assert!(parsed.request.is_err());
    }

    #[test]
    fn integral_floats_are_integers_as_on_rest() {
        match parse(r#"{"type":"read","data":{"room_id":"r","seq":2.0}}"#)
            .request
            .unwrap()
        {
            Request::MarkRead { seq, .. } => assert_eq!(seq, 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn native_message_requests_always_name_their_room() {
        match parse(
            r#"{"type":"reaction.remove","data":{"room_id":"r","message_id":"m","emoji":"👍"}}"#,
        )
        .request
        .unwrap()
        {
            Request::React {
                room_id,
                message_id,
                emoji,
                add,
            } => {
                assert_eq!(room_id.as_deref(), Some("r"));
                assert_eq!(
                    (message_id.as_str(), emoji.as_str(), add),
                    ("m", "👍", false)
                );
            }
            other => panic!("{other:?}"),
        }
        match parse(r#"{"type":"message.delete","data":{"room_id":"r","message_id":"m"}}"#)
            .request
            .unwrap()
        {
            Request::DeleteMessage { room_id, .. } => assert_eq!(room_id.as_deref(), Some("r")),
            other => panic!("{other:?}"),
        }
        // The room stays required on the native wire.
        assert_eq!(
            code(r#"{"type":"message.edit","data":{"message_id":"m","content":"x"}}"#),
            ErrorCode::ValidationFailed
        );
    }

    #[test]
    fn ids_that_are_neither_strings_nor_numbers_are_ignored() {
        assert_eq!(parse(r#"{"id":{"a":1},"type":"ping"}"#).id, None);
    }
}
