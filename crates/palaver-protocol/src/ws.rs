//! WebSocket frames on `GET /api/v1/ws` (text frames, JSON). See `docs/protocol.md`.
//!
//! - Client request: `{"id": <string|number>, "type": "<name>", "data": {...}}`.
//! - Reply to it: `{"type": "reply", "id": <same>, "ok": true, "data": {...}}` or
//!   `{"type": "reply", "id": <same>, "ok": false, "error": {"code", "message"}}`.
//! - Server event: `{"type": "<name>", "data": {...}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorDetail;
use crate::model::{CallKind, Message, MessageSender, Room, User};

/// A request id chosen by the client: a string or a number, echoed in the reply.
/// Kept as a JSON value so it round-trips exactly.
pub type RequestId = Value;

/// The envelope of a client request, before its `data` is interpreted by `type`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientFrame {
    #[serde(default)]
    pub id: Option<RequestId>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: Value,
}

/// `message.send` request data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendMessage {
    pub room_id: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub attachment_id: Option<String>,
}

/// `message.edit` request data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EditMessage {
    pub room_id: String,
    pub message_id: String,
    pub content: String,
}

/// `message.delete` request data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageRef {
    pub room_id: String,
    pub message_id: String,
}

/// `reaction.add` and `reaction.remove` request data, and the data of the
/// `reaction.added` and `reaction.removed` events (which add `user_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionChange {
    pub room_id: String,
    pub message_id: String,
    pub emoji: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The seq of the change (events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
}

/// `sync` request data: per room, the highest seq the client has seen (`null`: none,
/// start from the room's latest page). The server replays every change after it, then
/// continues live; the reply's data is `{rooms: {room_id: seq}}`, the seq each room is
/// now complete up to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sync {
    pub rooms: std::collections::BTreeMap<String, Option<i64>>,
}

/// A presence status. `invisible` is chosen by a user and shown to others as `offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    Online,
    Away,
    Dnd,
    Offline,
    Invisible,
}

/// `presence.updated` event data and `GET /api/v1/users/{user_id}/presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PresenceInfo {
    pub user_id: String,
    /// `online`, `away`, `dnd` or `offline` (never `invisible`).
    pub status: PresenceStatus,
    /// The user's custom status text (not shown while offline).
    pub status_text: Option<String>,
    /// When the user's last connection closed (RFC 3339 UTC), if known.
    pub last_seen: Option<String>,
}

/// `presence.set` request data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetPresence {
    /// `online`, `away`, `dnd` or `invisible`.
    pub status: PresenceStatus,
    /// At most 100 characters; absent or `null` clears it.
    #[serde(default)]
    pub status_text: Option<String>,
}

/// `typing` request data, and `typing` event data (which adds `user_id` and
/// `expires_in_ms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Typing {
    pub room_id: String,
    pub active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Events only: treat the user as no longer typing after this many milliseconds
    /// unless another `typing` event arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_ms: Option<u64>,
}

/// `room.join` and `room.leave` request data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRef {
    pub room_id: String,
}

/// `read` request data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MarkRead {
    pub room_id: String,
    pub seq: i64,
}

/// `receipt.updated` event data: `user_id` has read `room_id` up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub room_id: String,
    pub user_id: String,
    pub seq: i64,
}

/// `member.left` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberLeft {
    pub room_id: String,
    pub user_id: String,
    /// `left`, `kicked` or `banned`.
    pub reason: String,
}

/// `invitation.revoked` event data, sent to the invitee only: a pending invitation can no
/// longer be accepted (accepting it answers `410 invitation_revoked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationRevoked {
    /// The invitation's id.
    pub id: String,
    pub room_id: String,
    /// `revoked` (by the inviter or a room owner or admin), or `inviter_left`,
    /// `inviter_kicked`, `inviter_banned` (the inviter is no longer a member).
    pub reason: String,
}

/// `member.updated` event data: a member's role changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberUpdated {
    pub room_id: String,
    pub user_id: String,
    pub role: crate::model::MemberRole,
}

/// `room.deleted` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomDeleted {
    pub room_id: String,
}

/// `call.start` request data: a call in `room_id`, or (seed-compatible shortcut) a 1:1
/// call to `user_id` in the DM with them, opened if needed. Exactly one of the two.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartCall {
    #[serde(default)]
    pub room_id: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    pub kind: CallKind,
    /// Members to ring; absent: every other member of the room.
    #[serde(default)]
    pub invite: Option<Vec<String>>,
    /// An SDP offer to ring with: delivered in `call.incoming` to everyone rung, for
    /// clients that send their offer before anyone answers (SignalR's `CallUser`, see
    /// `docs/signalr.md`). Checked like an `rtc.signal` description (`rtc.max_sdp_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<SessionDescription>,
}

/// `call.accept`, `call.decline`, `call.leave` and `call.end` request data, and the data
/// of the `call.answered_elsewhere` and `call.missed` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRef {
    pub call_id: String,
}

/// Whether anyone besides the starter has joined yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Ringing,
    Active,
}

/// One connection in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// UUIDv7; what `rtc.signal`'s `to` and `from` name.
    pub participant_id: String,
    pub user_id: String,
    pub username: String,
    /// RFC 3339 UTC.
    pub joined_at: String,
}

/// A call as a participant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    pub call_id: String,
    pub room_id: String,
    pub kind: CallKind,
    pub state: CallState,
    /// The host's participant id.
    pub host: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// When someone other than the starter first joined (RFC 3339 UTC).
    pub answered_at: Option<String>,
    /// In join order.
    pub participants: Vec<Participant>,
    /// Users still being rung.
    pub ringing: Vec<String>,
}

/// The reply to `call.start` and `call.accept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallJoined {
    pub call: CallInfo,
    /// This connection's participant id.
    pub participant_id: String,
}

/// `call.incoming` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallIncoming {
    pub call_id: String,
    pub room_id: String,
    pub caller: MessageSender,
    pub kind: CallKind,
    /// The caller's SDP offer, when `call.start` carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<SessionDescription>,
}

/// `call.declined` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallDeclined {
    pub call_id: String,
    pub user_id: String,
}

/// `call.participant_joined` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantJoined {
    pub call_id: String,
    pub participant: Participant,
}

/// `call.participant_left` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantLeft {
    pub call_id: String,
    pub participant_id: String,
    pub user_id: String,
    /// `left`, `disconnected` or `removed` (no longer a member of the room).
    pub reason: String,
}

/// `call.host_changed` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostChanged {
    pub call_id: String,
    /// The new host's participant id.
    pub host: String,
    pub user_id: String,
}

/// `call.ended` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEnded {
    pub call_id: String,
    /// `ended`, `missed`, `declined`, `room_closed` or `removed`.
    pub reason: String,
    /// For answered calls: whole seconds since the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
}

/// The `type` of an SDP description (W3C WebRTC `RTCSdpType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// An SDP offer or answer (W3C WebRTC `RTCSessionDescriptionInit`, RFC 8866 SDP).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpType,
    /// May be empty for `rollback`.
    #[serde(default)]
    pub sdp: String,
}

/// An ICE candidate (W3C WebRTC `RTCIceCandidateInit`, RFC 8839); an empty `candidate`
/// signals the end of candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u16>,
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// `rtc.signal` request data: exactly one of `description` and `candidate`, for the
/// participant `to`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendSignal {
    pub call_id: String,
    pub to: String,
    #[serde(default)]
    pub description: Option<SessionDescription>,
    #[serde(default)]
    pub candidate: Option<IceCandidate>,
}

/// `rtc.signal` event data, as relayed to the participant named by `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub call_id: String,
    /// The sender's participant id.
    pub from: String,
    pub from_user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<SessionDescription>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<IceCandidate>,
}

/// The reply to a client request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    /// Always `"reply"`.
    #[serde(rename = "type")]
    pub kind: String,
    pub id: RequestId,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl Reply {
    /// A successful reply carrying `data`.
    pub fn ok(id: RequestId, data: Value) -> Self {
        Reply {
            kind: "reply".into(),
            id,
            ok: true,
            data: Some(data),
            error: None,
        }
    }

    /// A failed reply carrying `error`.
    pub fn err(id: RequestId, error: ErrorDetail) -> Self {
        Reply {
            kind: "reply".into(),
            id,
            ok: false,
            data: None,
            error: Some(error),
        }
    }
}

/// `ready` event data: sent once, right after the connection opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ready {
    pub user: User,
    /// Rooms the user is a member of.
    pub rooms: Vec<Room>,
}

/// `member.joined` event data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberJoined {
    pub room_id: String,
    pub user_id: String,
    pub username: String,
}

/// A server-initiated event: `{"type": "<name>", "data": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// Right after connect: the user and their rooms.
    #[serde(rename = "ready")]
    Ready(Ready),
    /// A message was stored in a room the recipient is a member of.
    #[serde(rename = "message.created")]
    MessageCreated(Message),
    /// A user joined a room the recipient is a member of (the joiner's own connections
    /// receive it too, and from then on receive the room's events).
    #[serde(rename = "member.joined")]
    MemberJoined(MemberJoined),
    /// A message's content was edited.
    #[serde(rename = "message.updated")]
    MessageUpdated(Message),
    /// A message was deleted: the data is its tombstone (no content).
    #[serde(rename = "message.deleted")]
    MessageDeleted(Message),
    #[serde(rename = "reaction.added")]
    ReactionAdded(ReactionChange),
    #[serde(rename = "reaction.removed")]
    ReactionRemoved(ReactionChange),
    /// A member moved their read marker.
    #[serde(rename = "receipt.updated")]
    ReceiptUpdated(Receipt),
    /// A member left, was kicked or banned; they receive this event and nothing more from
    /// the room.
    #[serde(rename = "member.left")]
    MemberLeft(MemberLeft),
    #[serde(rename = "member.updated")]
    MemberUpdated(MemberUpdated),
    /// The room's name or topic changed.
    #[serde(rename = "room.updated")]
    RoomUpdated(Room),
    /// The room was deleted; its members receive nothing more from it.
    #[serde(rename = "room.deleted")]
    RoomDeleted(RoomDeleted),
    /// A user who shares a room with the recipient came online, went offline, or changed
    /// status.
    #[serde(rename = "presence.updated")]
    PresenceUpdated(PresenceInfo),
    /// A member of a room started or stopped typing (not sent to the typist).
    #[serde(rename = "typing")]
    Typing(Typing),
    /// The recipient was invited to a room (sent to the invitee only).
    #[serde(rename = "invitation.created")]
    InvitationCreated(crate::model::Invitation),
    /// A pending invitation of the recipient was revoked (sent to the invitee only).
    #[serde(rename = "invitation.revoked")]
    InvitationRevoked(InvitationRevoked),
    /// A call rings the recipient (every connection of every user rung).
    #[serde(rename = "call.incoming")]
    CallIncoming(CallIncoming),
    /// Another connection of the recipient's user accepted the call: stop ringing.
    #[serde(rename = "call.answered_elsewhere")]
    CallAnsweredElsewhere(CallRef),
    /// A user declined the call (to the participants and the decliner's other
    /// connections).
    #[serde(rename = "call.declined")]
    CallDeclined(CallDeclined),
    /// The recipient's ringing timed out.
    #[serde(rename = "call.missed")]
    CallMissed(CallRef),
    #[serde(rename = "call.participant_joined")]
    ParticipantJoined(ParticipantJoined),
    #[serde(rename = "call.participant_left")]
    ParticipantLeft(ParticipantLeft),
    #[serde(rename = "call.host_changed")]
    HostChanged(HostChanged),
    #[serde(rename = "call.ended")]
    CallEnded(CallEnded),
    /// An SDP description or ICE candidate from another participant of the call.
    #[serde(rename = "rtc.signal")]
    Signal(Signal),
    /// A message mentions the recipient (sent to the mentioned user's connections only,
    /// after `message.created`, or after `message.updated` for a name an edit added).
    #[serde(rename = "mention")]
    Mention(Mention),
    /// An error not tied to a request id (e.g. an unparseable frame).
    #[serde(rename = "error")]
    Error(ErrorDetail),
}

/// `mention` event data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    pub room_id: String,
    pub message_id: String,
    pub seq: i64,
    pub sender_id: String,
    /// `user` (by name), `room` (`@room`) or `here` (`@here`).
    pub kind: MentionKind,
}

/// Why a user was mentioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MentionKind {
    User,
    Room,
    Here,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;
    use serde_json::json;

    #[test]
    fn event_has_type_and_data() {
        let ev = Event::MemberJoined(MemberJoined {
            room_id: "r".into(),
            user_id: "u".into(),
            username: "alice".into(),
        });
        assert_eq!(
            serde_json::to_value(&ev).unwrap(),
            json!({"type": "member.joined", "data": {"room_id": "r", "user_id": "u", "username": "alice"}})
        );
    }

    #[test]
    fn failed_reply_has_error_and_no_data() {
        let r = Reply::err(
            json!(7),
            ErrorDetail {
                code: ErrorCode::UnknownType,
                message: "unknown".into(),
                field: None,
                retry_after_secs: None,
            },
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["type"], "reply");
        assert_eq!(v["id"], 7);
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "unknown_type");
        assert!(v.get("data").is_none());
    }
}

/// WebSocket close codes Palaver sends (RFC 6455 §7.4; 4000–4999 are application codes).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The client broke the WebSocket protocol: an unmasked frame, a reserved bit or
    /// opcode, a continuation with no message to continue, a control frame over 125
    /// bytes... (RFC 6455 §7.4.1 "protocol error").
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message was not valid UTF-8 (RFC 6455 §7.4.1 "invalid frame payload data").
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message exceeded the configured frame size limit (RFC 6455 "message too big"),
    /// also when it came in fragments that were each under it.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server is restarting or shutting down: reconnect with jittered backoff
    /// (IANA "Service Restart").
    pub const SERVICE_RESTART: u16 = 1012;
    /// The server could not set the connection up just now (its rooms kept changing
    /// while it was being registered, or the store failed): reconnect with jittered
    /// backoff (IANA "Try Again Later").
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The credential the connection was opened with ended: logout, a revoked session or
    /// API key, a password change, or a disabled or deleted account. Do not reconnect
    /// with the same credential.
    pub const SESSION_ENDED: u16 = 4001;
    /// The client did not answer the server's pings (nothing heard for
    /// `ws_ping_interval_secs + ws_pong_timeout_secs`): reconnect and resume.
    pub const HEARTBEAT_TIMEOUT: u16 = 4002;
    /// The client did not read fast enough and its outbound queue filled up: reconnect
    /// and resume.
    pub const SLOW_CONSUMER: u16 = 4008;
}
