//! Server events on the Socket.IO wire: each [`Event`] of the core becomes one Socket.IO
//! event with seed 004's name and payload shape (camelCase, the seed's Message schema),
//! encoded once per event and shared by every Socket.IO recipient.
//!
//! A [`Frame`] of this wire is `<event name> <payload JSON>` (one space between them):
//! [`super::socket::SioSocket::feed`] splits it and emits the payload under that name.
//! The table of events is in `docs/socketio.md`, "Server events".

use palaver_protocol::ws::{Event, SdpType, Signal};
use palaver_protocol::{Message, MessageType};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::live::wire::Frame;

/// `event` as a Socket.IO frame; `seq` is the change's seq (sent as `changeSeq`).
pub fn event(event: &Event, seq: Option<i64>) -> Frame {
    let (name, payload) = match event {
        Event::Ready(ready) => ("ready", camel(json!(ready))),
        Event::MessageCreated(m) => ("new_message", message(m, seq)),
        Event::MessageUpdated(m) => ("message_edited", message(m, seq)),
        Event::MessageDeleted(m) => {
            let mut value = message(m, seq);
            value["messageId"] = Value::String(m.id.clone());
            ("message_deleted", value)
        }
        Event::ReactionAdded(r) | Event::ReactionRemoved(r) => {
            let name = if matches!(event, Event::ReactionAdded(_)) {
                "reaction_added"
            } else {
                "reaction_removed"
            };
            let payload = json!({
                "roomId": r.room_id,
                "messageId": r.message_id,
                "emoji": r.emoji,
                "userId": r.user_id,
                "changeSeq": seq.or(r.seq),
            });
            (name, payload)
        }
        Event::ReceiptUpdated(r) => (
            "message_read",
            json!({"roomId": r.room_id, "userId": r.user_id, "seq": r.seq}),
        ),
        Event::Typing(t) => {
            let name = if t.active {
                "user_typing"
            } else {
                "user_stop_typing"
            };
            let mut payload = json!({"roomId": t.room_id, "userId": t.user_id});
            if let Some(ms) = t.expires_in_ms {
                payload["expiresInMs"] = json!(ms);
            }
            (name, payload)
        }
        Event::PresenceUpdated(p) => (
            "user_status_changed",
            json!({
                "userId": p.user_id,
                "status": p.status,
                "customStatus": p.status_text,
                "lastSeen": p.last_seen,
            }),
        ),
        Event::MemberJoined(m) => ("user_joined", camel(json!(m))),
        Event::MemberLeft(m) => ("user_left", camel(json!(m))),
        Event::MemberUpdated(m) => ("member_updated", camel(json!(m))),
        Event::RoomUpdated(r) => ("room_updated", camel(json!(r))),
        Event::RoomDeleted(r) => ("room_deleted", camel(json!(r))),
        Event::InvitationCreated(i) => ("invitation_created", camel(json!(i))),
        Event::InvitationRevoked(i) => ("invitation_revoked", camel(json!(i))),
        Event::Mention(m) => ("mention", camel(json!(m))),
        Event::CallIncoming(c) => (
            "incoming_call",
            json!({
                "callId": c.call_id,
                "callerId": c.caller.id,
                "callerName": c.caller.username,
                "callType": c.kind,
                "roomId": c.room_id,
            }),
        ),
        Event::CallAnsweredElsewhere(c) => {
            ("call_answered_elsewhere", json!({"callId": c.call_id}))
        }
        Event::CallDeclined(c) => (
            "call_rejected",
            json!({"callId": c.call_id, "userId": c.user_id}),
        ),
        Event::CallMissed(c) => ("call_missed", json!({"callId": c.call_id})),
        Event::ParticipantJoined(p) => (
            "call_accepted",
            json!({
                "callId": p.call_id,
                "userId": p.participant.user_id,
                "username": p.participant.username,
                "participantId": p.participant.participant_id,
            }),
        ),
        Event::ParticipantLeft(p) => ("call_left", camel(json!(p))),
        Event::HostChanged(h) => ("call_host_changed", camel(json!(h))),
        Event::CallEnded(c) => ("call_ended", camel(json!(c))),
        Event::Signal(s) => signal(s),
        Event::Error(e) => ("error", error_detail(e)),
    };
    frame(name, &payload)
}

/// An `error` event for a client event that failed without an ack: the error and the
/// event's name.
pub fn error(detail: &palaver_protocol::ErrorDetail, client_event: &str) -> Frame {
    let mut payload = error_detail(detail);
    payload["event"] = Value::String(client_event.to_owned());
    frame("error", &payload)
}

/// An error as Socket.IO clients read it: `{code, message, field?, retryAfterSecs?}`, with
/// `field` named as in the client's payload (camelCase; the seed's `targetUserId` for the
/// core's `to_user`).
pub fn error_detail(detail: &palaver_protocol::ErrorDetail) -> Value {
    let mut payload = camel(json!(detail));
    if let Some(field) = &detail.field {
        let renamed = match field.as_str() {
            "to_user" => "targetUserId".to_owned(),
            other => other
                .split('.')
                .map(camel_key)
                .collect::<Vec<_>>()
                .join("."),
        };
        payload["field"] = Value::String(renamed);
    }
    payload
}

/// `name` and `payload` as one frame of this wire.
pub fn frame(name: &str, payload: &impl Serialize) -> Frame {
    let json = serde_json::to_string(payload).unwrap_or_else(|_| "null".to_owned());
    Frame::from(format!("{name} {json}"))
}

/// An `rtc.signal` as the seed's `webrtc_offer`, `webrtc_answer` or `ice_candidate`,
/// with the sender's user id as `senderId`.
fn signal(s: &Signal) -> (&'static str, Value) {
    let base = |key: &str, value: Value| {
        json!({
            key: value,
            "senderId": s.from_user,
            "senderParticipantId": s.from,
            "callId": s.call_id,
        })
    };
    match (&s.description, &s.candidate) {
        (Some(d), _) if d.kind == SdpType::Answer || d.kind == SdpType::Pranswer => {
            ("webrtc_answer", base("answer", json!(d)))
        }
        (Some(d), _) => ("webrtc_offer", base("offer", json!(d))),
        (None, Some(c)) => ("ice_candidate", base("candidate", json!(c))),
        (None, None) => ("ice_candidate", base("candidate", Value::Null)),
    }
}

/// A message in seed 004's Message schema, plus Palaver's `seq` (its position in the
/// room), `changeSeq` (the room's seq after this change, on events), `clientId`,
/// `replyTo` and `call`. See `docs/socketio.md`, "The message object".
pub fn message(m: &Message, change_seq: Option<i64>) -> Value {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SeedMessage<'a> {
        #[serde(rename = "_id")]
        underscore_id: &'a str,
        id: &'a str,
        room_id: &'a str,
        sender_id: &'a str,
        sender_name: &'a str,
        content: &'a str,
        message_type: &'a str,
        encrypted: bool,
        file_attachment: Option<Value>,
        reactions: Vec<SeedReaction<'a>>,
        edited_at: Option<&'a str>,
        is_deleted: bool,
        deleted_at: Option<&'a str>,
        created_at: &'a str,
        updated_at: &'a str,
        seq: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        change_seq: Option<i64>,
        client_id: Option<&'a str>,
        reply_to: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        call: Option<Value>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct SeedReaction<'a> {
        emoji: &'a str,
        user_id: &'a str,
    }
    let message_type = match (m.message_type, &m.attachment) {
        (MessageType::Text, _) => "text",
        (MessageType::Call, _) => "call",
        (MessageType::Attachment, Some(a)) if a.content_type.starts_with("image/") => "image",
        (MessageType::Attachment, Some(a)) if a.content_type.starts_with("video/") => "video",
        (MessageType::Attachment, Some(a)) if a.content_type.starts_with("audio/") => "voice",
        (MessageType::Attachment, _) => "file",
    };
    let file_attachment = m.attachment.as_ref().map(|a| {
        json!({
            "fileId": a.id,
            "fileName": a.filename,
            "fileSize": a.size,
            "fileUrl": a.url,
            "contentType": a.content_type,
        })
    });
    let reactions = m
        .reactions
        .iter()
        .flat_map(|r| {
            r.user_ids.iter().map(|u| SeedReaction {
                emoji: &r.emoji,
                user_id: u,
            })
        })
        .collect();
    let seed = SeedMessage {
        underscore_id: &m.id,
        id: &m.id,
        room_id: &m.room_id,
        sender_id: &m.sender.id,
        sender_name: &m.sender.username,
        content: &m.content,
        message_type,
        encrypted: false,
        file_attachment,
        reactions,
        edited_at: m.edited_at.as_deref(),
        is_deleted: m.deleted_at.is_some(),
        deleted_at: m.deleted_at.as_deref(),
        created_at: &m.created_at,
        updated_at: m
            .deleted_at
            .as_deref()
            .or(m.edited_at.as_deref())
            .unwrap_or(&m.created_at),
        seq: m.seq,
        change_seq,
        client_id: m.client_id.as_deref(),
        reply_to: m.reply_to.as_deref(),
        call: m.call.as_ref().map(|c| camel(json!(c))),
    };
    serde_json::to_value(seed).unwrap_or(Value::Null)
}

/// `value` with every object key turned from snake_case to camelCase, recursively.
pub fn camel(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (camel_key(&k), camel(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camel).collect()),
        other => other,
    }
}

fn camel_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' && !out.is_empty() {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::ws::{ReactionChange, Typing};
    use palaver_protocol::MessageSender;

    fn split(frame: &Frame) -> (String, Value) {
        let (name, json) = frame.as_str().split_once(' ').unwrap();
        (name.to_owned(), serde_json::from_str(json).unwrap())
    }

    fn sample() -> Message {
        Message {
            id: "m1".into(),
            room_id: "r1".into(),
            seq: 7,
            sender: MessageSender {
                id: "u1".into(),
                username: "alice".into(),
            },
            content: "hi".into(),
            client_id: Some("c1".into()),
            created_at: "2026-11-24T10:00:00.000Z".into(),
            message_type: MessageType::Text,
            reply_to: None,
            attachment: None,
            edited_at: None,
            deleted_at: None,
            reactions: vec![palaver_protocol::Reaction {
                emoji: "👍".into(),
                count: 2,
                user_ids: vec!["u1".into(), "u2".into()],
            }],
            call: None,
            mentions: Default::default(),
        }
    }

    #[test]
    fn messages_take_the_seed_schema() {
        let (name, payload) = split(&event(&Event::MessageCreated(sample()), Some(7)));
        assert_eq!(name, "new_message");
        assert_eq!(payload["_id"], "m1");
        assert_eq!(payload["roomId"], "r1");
        assert_eq!(payload["senderId"], "u1");
        assert_eq!(payload["senderName"], "alice");
        assert_eq!(payload["messageType"], "text");
        assert_eq!(payload["isDeleted"], false);
        assert_eq!(payload["changeSeq"], 7);
        assert_eq!(payload["clientId"], "c1");
        assert_eq!(
            payload["reactions"],
            json!([{"emoji": "👍", "userId": "u1"}, {"emoji": "👍", "userId": "u2"}])
        );
        let (name, payload) = split(&event(&Event::MessageDeleted(sample()), Some(9)));
        assert_eq!(name, "message_deleted");
        assert_eq!(payload["messageId"], "m1");
        assert_eq!(payload["seq"], 7, "the message's position");
        assert_eq!(payload["changeSeq"], 9, "the room's seq after the change");
    }

    #[test]
    fn typing_and_reactions_are_named_as_in_the_seed() {
        let typing = Event::Typing(Typing {
            room_id: "r".into(),
            active: false,
            user_id: Some("u".into()),
            expires_in_ms: None,
        });
        let (name, payload) = split(&event(&typing, None));
        assert_eq!(name, "user_stop_typing");
        assert_eq!(payload, json!({"roomId": "r", "userId": "u"}));
        let reaction = Event::ReactionAdded(ReactionChange {
            room_id: "r".into(),
            message_id: "m".into(),
            emoji: "x".into(),
            user_id: Some("u".into()),
            seq: Some(3),
        });
        let (name, payload) = split(&event(&reaction, Some(3)));
        assert_eq!(name, "reaction_added");
        assert_eq!(payload["messageId"], "m");
        assert_eq!(payload["changeSeq"], 3);
    }

    #[test]
    fn keys_become_camel_case() {
        assert_eq!(
            camel(json!({"room_id": 1, "a": [{"last_seen_at": 2}], "_id": 3})),
            json!({"roomId": 1, "a": [{"lastSeenAt": 2}], "_id": 3})
        );
    }
}
