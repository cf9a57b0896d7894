//! Seed 003's envelope, `{"msg_type": N, "from": id, "to": id, "payload": {...}}`
//! (`docs/signaling-compat.md`): what a client sends, parsed once into a [`Command`] or
//! refused with the error its Error reply carries ([`parse`], total: it never panics on
//! any input); and what the server sends ([`encode`]).
//!
//! Numbers here are the protocol's: users' and rooms' numbers (see
//! [`crate::service::call_rooms`]), not Palaver ids. Mapping them is the transport's job
//! ([`super::socket`]).

use palaver_protocol::ws::{Event, IceCandidate, SdpType, SessionDescription};
use palaver_protocol::{CallKind, ErrorCode};
use serde_json::{json, Map, Value};

use crate::error::AppError;
use crate::live::wire::Frame;

/// `msg_type` 0: make a room (client → server).
pub const CREATE_ROOM: i64 = 0;
/// `msg_type` 1: join a room by number (client → server).
pub const JOIN_ROOM: i64 = 1;
/// `msg_type` 2: an SDP description, both ways.
pub const SDP: i64 = 2;
/// `msg_type` 3: an ICE candidate, both ways.
pub const ICE_CANDIDATE: i64 = 3;
/// `msg_type` 4: leave the room's call (client → server).
pub const LEAVE_ROOM: i64 = 4;
/// `msg_type` 5: the answer to CreateRoom.
pub const ROOM_CREATED: i64 = 5;
/// `msg_type` 6: the answer to JoinRoom (Palaver's number: the seed names it only).
pub const ROOM_JOINED: i64 = 6;
/// `msg_type` 7: the answer to a refused message.
pub const ERROR: i64 = 7;
/// `msg_type` 8: someone joined the room's call.
pub const USER_JOINED: i64 = 8;
/// `msg_type` 9: someone left the room's call.
pub const USER_LEFT: i64 = 9;
/// `msg_type` 10: the call's host changed.
pub const HOST_CHANGED: i64 = 10;
/// `msg_type` 11: the call ended for this socket without it asking.
pub const ROOM_CLOSED: i64 = 11;

/// A client's message, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// 0.
    CreateRoom { kind: CallKind },
    /// 1: the room's number.
    JoinRoom { room: i64 },
    /// 2 and 3: a description or a candidate for user number `to`; `room`, when given,
    /// must be the sender's room.
    Signal {
        to: i64,
        room: Option<i64>,
        description: Option<SessionDescription>,
        candidate: Option<IceCandidate>,
    },
    /// 4: `room`, when given, must be the sender's room.
    LeaveRoom { room: Option<i64> },
}

/// Why a message was refused: the error, and the `msg_type` it had (if it had one).
#[derive(Debug, Clone)]
pub struct Refused {
    pub msg_type: Option<i64>,
    pub error: AppError,
}

/// Parses one text frame from user number `me`.
///
/// # Errors
/// [`Refused`] with `400 bad_request` (not a JSON object, `msg_type` missing or not an
/// integer), `400 unknown_type` (a type clients do not send), `403 forbidden` (`from`
/// neither absent, 0 nor `me`), `422 validation_failed` naming the field.
pub fn parse(text: &str, me: i64) -> Result<(i64, Command), Refused> {
    let refuse = |msg_type: Option<i64>, error: AppError| Refused { msg_type, error };
    let Ok(Value::Object(mut envelope)) = serde_json::from_str::<Value>(text) else {
        return Err(refuse(
            None,
            AppError::new(
                ErrorCode::BadRequest,
                "a message must be a JSON object {msg_type, from, payload}",
            ),
        ));
    };
    let msg_type = match envelope.get("msg_type") {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
            refuse(
                None,
                AppError::new(ErrorCode::BadRequest, "msg_type must be an integer"),
            )
        })?,
        _ => {
            return Err(refuse(
                None,
                AppError::new(ErrorCode::BadRequest, "msg_type must be an integer"),
            ))
        }
    };
    let at = |error: AppError| refuse(Some(msg_type), error);
    match envelope.get("from") {
        None | Some(Value::Null) => {}
        Some(from) => match number(from) {
            Some(0) => {}
            Some(n) if n == me => {}
            Some(_) => {
                return Err(at(AppError::new(
                    ErrorCode::Forbidden,
                    "from must be your own user number (or left out)",
                )))
            }
            None => {
                return Err(at(AppError::validation(
                    "from",
                    "from must be a user number",
                )))
            }
        },
    }
    let payload = match envelope.remove("payload") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(payload)) => payload,
        Some(_) => {
            return Err(at(AppError::validation(
                "payload",
                "payload must be an object",
            )))
        }
    };
    let command = match msg_type {
        CREATE_ROOM => Command::CreateRoom {
            kind: match payload.get("kind") {
                None | Some(Value::Null) => CallKind::Video,
                Some(kind) => serde_json::from_value(kind.clone()).map_err(|_| {
                    at(AppError::validation(
                        "payload.kind",
                        "payload.kind must be \"audio\" or \"video\"",
                    ))
                })?,
            },
        },
        JOIN_ROOM => Command::JoinRoom {
            room: room_number(payload.get("room_id"))
                .map_err(at)?
                .ok_or_else(|| {
                    at(AppError::validation(
                        "payload.room_id",
                        "payload.room_id must be a room number",
                    ))
                })?,
        },
        SDP | ICE_CANDIDATE => {
            let to = match envelope.get("to").or_else(|| payload.get("to")) {
                Some(to) => number(to)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| at(AppError::validation("to", "to must be a user number")))?,
                None => {
                    return Err(at(AppError::validation(
                        "to",
                        "to (the recipient's user number) is required",
                    )))
                }
            };
            let room = room_number(payload.get("room_id")).map_err(at)?;
            let (description, candidate) = if msg_type == SDP {
                (Some(description(&payload).map_err(at)?), None)
            } else {
                (None, Some(candidate(&payload).map_err(at)?))
            };
            Command::Signal {
                to,
                room,
                description,
                candidate,
            }
        }
        LEAVE_ROOM => Command::LeaveRoom {
            room: room_number(payload.get("room_id")).map_err(at)?,
        },
        _ => {
            return Err(at(AppError::new(
                ErrorCode::UnknownType,
                format!(
                    "msg_type {msg_type} is not one a client sends: 0 CreateRoom, 1 JoinRoom, \
                     2 SDP, 3 ICECandidate, 4 LeaveRoom"
                ),
            )))
        }
    };
    Ok((msg_type, command))
}

/// A positive integer (a JSON number without fraction), else `None`.
fn number(value: &Value) -> Option<i64> {
    value.as_u64().and_then(|n| i64::try_from(n).ok())
}

/// `payload.room_id`: absent, or a room number.
fn room_number(value: Option<&Value>) -> Result<Option<i64>, AppError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => number(v).filter(|n| *n > 0).map(Some).ok_or_else(|| {
            AppError::validation("payload.room_id", "payload.room_id must be a room number")
        }),
    }
}

/// The SDP description of an SDP message: `payload.{type, sdp}` or `payload.sdp` as
/// `{type, sdp}`.
fn description(payload: &Map<String, Value>) -> Result<SessionDescription, AppError> {
    let (kind, sdp) = match payload.get("sdp") {
        Some(Value::Object(nested)) => (nested.get("type"), nested.get("sdp")),
        _ => (payload.get("type"), payload.get("sdp")),
    };
    let kind: SdpType = kind
        .and_then(|k| serde_json::from_value(k.clone()).ok())
        .ok_or_else(|| {
            AppError::validation(
                "payload.type",
                "payload.type must be offer, answer, pranswer or rollback",
            )
        })?;
    let sdp = match sdp {
        Some(Value::String(sdp)) => sdp.clone(),
        None | Some(Value::Null) if kind == SdpType::Rollback => String::new(),
        _ => {
            return Err(AppError::validation(
                "payload.sdp",
                "payload.sdp must be the SDP text",
            ))
        }
    };
    Ok(SessionDescription { kind, sdp })
}

/// The candidate of an ICECandidate message: `payload` as `RTCIceCandidateInit`, or
/// `payload.candidate` as one.
fn candidate(payload: &Map<String, Value>) -> Result<IceCandidate, AppError> {
    let bad = || {
        AppError::validation(
            "payload.candidate",
            "payload.candidate must be an ICE candidate string (RTCIceCandidateInit)",
        )
    };
    let mut init = match payload.get("candidate") {
        Some(Value::Object(nested)) => nested.clone(),
        Some(Value::String(_)) => payload.clone(),
        _ => return Err(bad()),
    };
    // Fields of the envelope's payload that are not the candidate's.
    for other in ["to", "room_id"] {
        init.remove(other);
    }
    serde_json::from_value(Value::Object(init)).map_err(|_| bad())
}

/// An envelope the server sends: `from` 0 for the server's own messages, `to` the
/// recipient's number.
pub fn encode(msg_type: i64, from: i64, to: i64, payload: &Value) -> Frame {
    Frame::from(
        json!({"msg_type": msg_type, "from": from, "to": to, "payload": payload}).to_string(),
    )
}

/// The Error reply (7) to a message of `msg_type` refused with `error`.
pub fn error(to: i64, msg_type: Option<i64>, error: &AppError) -> Frame {
    let mut payload = json!({
        "code": error.code,
        "message": error.message,
        "msg_type": msg_type,
    });
    if let Some(field) = &error.field {
        payload["field"] = json!(field);
    }
    encode(ERROR, 0, to, &payload)
}

/// `event` as this wire's frame (see [`crate::live::wire::Wire::SignalingCompat`]): the
/// call events this protocol carries, in the native JSON the transport reads back to
/// write them with numbers; an empty frame (not sent) for every other event.
pub fn event(event: &Event) -> Frame {
    match event {
        Event::ParticipantJoined(_)
        | Event::ParticipantLeft(_)
        | Event::HostChanged(_)
        | Event::CallEnded(_)
        | Event::Signal(_) => serde_json::to_string(event)
            .map(Frame::from)
            .unwrap_or_default(),
        _ => Frame::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> (Option<i64>, ErrorCode, Option<String>) {
        let r = parse(text, 7).expect_err(text);
        (r.msg_type, r.error.code, r.error.field)
    }

    #[test]
    fn the_seeds_messages_parse() {
        assert_eq!(
            parse(r#"{"msg_type":0,"from":7,"payload":{}}"#, 7).unwrap(),
            (
                0,
                Command::CreateRoom {
                    kind: CallKind::Video
                }
            )
        );
        assert_eq!(
            parse(r#"{"msg_type":1,"payload":{"room_id":42}}"#, 7).unwrap(),
            (1, Command::JoinRoom { room: 42 })
        );
        let (_, sdp) = parse(
            r#"{"msg_type":2,"from":0,"to":9,"payload":{"type":"offer","sdp":"v=0"}}"#,
            7,
        )
        .unwrap();
        let (_, nested) = parse(
            r#"{"msg_type":2,"payload":{"to":9,"sdp":{"type":"offer","sdp":"v=0"}}}"#,
            7,
        )
        .unwrap();
        assert_eq!(sdp, nested);
        assert!(
            matches!(sdp, Command::Signal { to: 9, description: Some(ref d), .. } if d.sdp == "v=0")
        );
        let (_, ice) = parse(
            r#"{"msg_type":3,"to":9,"payload":{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0,"room_id":5}}"#,
            7,
        )
        .unwrap();
        let (_, ice_nested) = parse(
            r#"{"msg_type":3,"to":9,"payload":{"room_id":5,"candidate":{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}}}"#,
            7,
        )
        .unwrap();
        assert_eq!(ice, ice_nested);
        assert!(
            matches!(ice, Command::Signal { room: Some(5), candidate: Some(ref c), .. } if c.sdp_m_line_index == Some(0))
        );
        assert_eq!(
            parse(r#"{"msg_type":4}"#, 7).unwrap(),
            (4, Command::LeaveRoom { room: None })
        );
    }

    #[test]
    fn bad_messages_are_refused_with_a_stable_code() {
        use ErrorCode::*;
        assert_eq!(refused("nope"), (None, BadRequest, None));
        assert_eq!(refused("[1]"), (None, BadRequest, None));
        assert_eq!(refused("{}"), (None, BadRequest, None));
        assert_eq!(refused(r#"{"msg_type":"0"}"#), (None, BadRequest, None));
        assert_eq!(refused(r#"{"msg_type":1.5}"#), (None, BadRequest, None));
        assert_eq!(refused(r#"{"msg_type":99}"#), (Some(99), UnknownType, None));
        assert_eq!(refused(r#"{"msg_type":5}"#), (Some(5), UnknownType, None));
        assert_eq!(refused(r#"{"msg_type":-1}"#), (Some(-1), UnknownType, None));
        assert_eq!(
            refused(r#"{"msg_type":0,"from":8}"#),
            (Some(0), Forbidden, None)
        );
        assert_eq!(
            refused(r#"{"msg_type":0,"from":"7"}"#),
            (Some(0), ValidationFailed, Some("from".into()))
        );
        assert_eq!(
            refused(r#"{"msg_type":0,"payload":[]}"#),
            (Some(0), ValidationFailed, Some("payload".into()))
        );
        for bad in [r#""abc""#, "-1", "0", "1.5", "null"] {
            assert_eq!(
                refused(&format!(
                    r#"{{"msg_type":1,"payload":{{"room_id":{bad}}}}}"#
                )),
                (Some(1), ValidationFailed, Some("payload.room_id".into())),
                "{bad}"
            );
        }
        assert_eq!(
            refused(r#"{"msg_type":2,"to":9,"payload":{"type":"bogus","sdp":"v=0"}}"#),
            (Some(2), ValidationFailed, Some("payload.type".into()))
        );
        assert_eq!(
            refused(r#"{"msg_type":2,"to":9,"payload":{"type":"offer","sdp":5}}"#),
            (Some(2), ValidationFailed, Some("payload.sdp".into()))
        );
        assert_eq!(
            refused(r#"{"msg_type":2,"payload":{"type":"offer","sdp":"v=0"}}"#),
            (Some(2), ValidationFailed, Some("to".into()))
        );
        assert_eq!(
            refused(r#"{"msg_type":3,"to":9,"payload":{"candidate":42}}"#),
            (Some(3), ValidationFailed, Some("payload.candidate".into()))
        );
        assert_eq!(
            refused(r#"{"msg_type":3,"to":9,"payload":{"candidate":"c","bogus":1}}"#),
            (Some(3), ValidationFailed, Some("payload.candidate".into()))
        );
    }

    #[test]
    fn errors_echo_the_refused_type() {
        let frame = error(
            7,
            Some(2),
            &AppError::validation("to", "to must be a user number"),
        );
        let v: Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(v["msg_type"], ERROR);
        assert_eq!(v["from"], 0);
        assert_eq!(v["to"], 7);
        assert_eq!(v["payload"]["code"], "validation_failed");
        assert_eq!(v["payload"]["field"], "to");
        assert_eq!(v["payload"]["msg_type"], 2);
    }
}
