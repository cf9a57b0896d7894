//! The public shapes of the chat model: users, rooms and messages.
//!
//! IDs are UUIDv7 strings (RFC 9562), times are RFC 3339 strings in UTC with millisecond
//! precision (e.g. `"2026-11-21T07:31:41.123Z"`).

use serde::{Deserialize, Serialize};

/// A global role. `admin` may use `/api/v1/admin/*`; `moderator` moderates public
/// channels (deletes messages, kicks, bans; never the room's owner or an admin) and works
/// through message reports; admins may do all a moderator may. Everyone else is `user`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Moderator,
    Admin,
}

impl Role {
    /// The wire and storage name: `user`, `moderator`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Moderator => "moderator",
            Role::Admin => "admin",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "user" => Some(Role::User),
            "moderator" => Some(Role::Moderator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A user's own profile, as returned by `GET /api/v1/users/me` and in auth responses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// 3–32 characters of `[a-z0-9_.-]`, unique.
    pub username: String,
    /// Lower-cased, unique. Shown only to the user themself (and admins).
    pub email: String,
    /// Whether `email` was verified (a mailed link used, or a sign-in provider vouched
    /// for it). Only meaningful on servers that send e-mail (`docs/email.md`).
    #[serde(default)]
    pub email_verified: bool,
    pub role: Role,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub location: Option<String>,
    /// An `http(s)` URL.
    pub website: Option<String>,
    /// An `http(s)` URL, or for a picture uploaded with `PUT /api/v1/users/me/avatar` the
    /// path `/api/v1/users/{id}/avatar?v=<version>` on this server (fetched with the
    /// bearer token).
    pub avatar_url: Option<String>,
    /// A JSON object of client settings, stored as given (at most 16 KiB).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub settings: serde_json::Value,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// What anyone signed in may see of another user: no email, names or settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PublicUser {
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub location: Option<String>,
    pub website: Option<String>,
    /// As [`User::avatar_url`].
    pub avatar_url: Option<String>,
    pub role: Role,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// Who may find and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Listed in the directory; anyone may join.
    Public,
    /// Not listed; joined only by invitation.
    Private,
}

/// What kind of conversation a room is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// A named room (public channel or private group).
    Channel,
    /// The one direct-message room between two users.
    Dm,
}

/// A member's role in a room: owners and admins moderate (kick, ban, edit the room);
/// owners also delete the room and transfer ownership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Member,
    Admin,
    Owner,
}

impl MemberRole {
    /// The stored and wire name: `owner`, `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::Admin => "admin",
            MemberRole::Member => "member",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<MemberRole> {
        match s {
            "owner" => Some(MemberRole::Owner),
            "admin" => Some(MemberRole::Admin),
            "member" => Some(MemberRole::Member),
            _ => None,
        }
    }

    /// Owners and admins moderate.
    pub fn moderates(self) -> bool {
        matches!(self, MemberRole::Owner | MemberRole::Admin)
    }
}

/// A room as its members (or the public directory) see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Room {
    /// UUIDv7.
    pub id: String,
    /// 1–100 characters (for a DM: the two usernames).
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub kind: RoomKind,
    /// The user who created the room.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The room's latest seq: that of its newest change (a message created, edited,
    /// deleted or reacted to), 0 when nothing happened yet.
    pub last_seq: i64,
    /// Number of members.
    pub member_count: i64,
    /// The caller's role, in views for a member (`null` in the public directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub my_role: Option<MemberRole>,
    /// The caller's read marker: the highest seq they have read (member views only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<i64>,
    /// Messages by others after the caller's read marker that are not deleted (member
    /// views only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread_count: Option<i64>,
    /// Of those, the ones that mention the caller (by name, `@room` or `@here`; member
    /// views only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention_count: Option<i64>,
    /// Who may use `@room` here.
    #[serde(default)]
    pub room_mentions: RoomMentions,
    /// The newest message, or `null` (in `GET /api/v1/rooms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_message: Option<Box<Message>>,
}

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub user_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub role: MemberRole,
    /// RFC 3339 UTC.
    pub joined_at: String,
    /// The member's read marker: the highest seq they have read (0: none). Members see
    /// each other's markers, as they do live through `receipt.updated`.
    #[serde(default)]
    pub last_read_seq: i64,
}

/// An invitation to a private room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invitation {
    pub id: String,
    pub room_id: String,
    pub room_name: String,
    pub inviter: MessageSender,
    pub invitee_id: String,
    /// `pending`, `accepted`, `declined` or `revoked` (withdrawn by the inviter or a room
    /// owner or admin, or ended by the inviter leaving, being kicked or banned, or their
    /// account being disabled or deleted).
    pub status: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// A stored file, referenced by attachment messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub id: String,
    /// The uploaded file name (sanitised).
    pub filename: String,
    /// The type sniffed from the bytes, not the one the client claimed.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Where to download it (`GET`, authenticated).
    pub url: String,
}

/// The reactions of one emoji on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reaction {
    /// One emoji grapheme.
    pub emoji: String,
    pub count: i64,
    /// Who reacted, oldest first.
    pub user_ids: Vec<String>,
}

/// A kind of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Text,
    /// Carries an `attachment`; `content` is its caption (may be empty).
    Attachment,
    /// A call log entry: carries `call`; `content` is a short text for display. Stored by
    /// the server, never sent by clients, and not editable.
    Call,
}

/// What a call log entry records (see `docs/protocol.md`, "Call log").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallLogEvent {
    Started,
    /// The first participant other than the starter joined.
    Answered,
    /// Nobody answered (ringing timed out, or the caller hung up first).
    Missed,
    /// Everyone rung declined.
    Declined,
    /// An answered call ended; `duration_secs` says how long it lasted.
    Ended,
}

/// The `call` of a call log message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallLog {
    pub call_id: String,
    /// `audio` or `video`.
    pub kind: CallKind,
    pub event: CallLogEvent,
    /// For `ended`: whole seconds from the answer to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<u64>,
}

/// What media a call starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    Audio,
    Video,
}

impl CallKind {
    /// `audio` or `video`.
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Audio => "audio",
            CallKind::Video => "video",
        }
    }
}

/// An earlier version of an edited message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageEdit {
    /// 1 for the original text, then 2, 3, ...
    pub version: i64,
    pub content: String,
    /// When this version was written (RFC 3339 UTC).
    pub written_at: String,
}

/// The author of a message, denormalised into every message so clients need no lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageSender {
    pub id: String,
    pub username: String,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// UUIDv7.
    pub id: String,
    pub room_id: String,
    /// Position in the room: starts at 1, in commit order.
    pub seq: i64,
    pub sender: MessageSender,
    /// 1–4000 characters (configurable); empty once deleted.
    pub content: String,
    /// The sender's idempotency key, if it gave one.
    pub client_id: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
    #[serde(default = "text_type")]
    pub message_type: MessageType,
    /// The id of the message this one replies to (same room).
    #[serde(default)]
    pub reply_to: Option<String>,
    /// The attached file, for `attachment` messages.
    #[serde(default)]
    pub attachment: Option<Attachment>,
    /// When the content was last edited (RFC 3339 UTC), or `null`.
    #[serde(default)]
    pub edited_at: Option<String>,
    /// When the message was deleted (RFC 3339 UTC): a tombstone with no content.
    #[serde(default)]
    pub deleted_at: Option<String>,
    /// Reactions, grouped by emoji, in order of first use.
    #[serde(default)]
    pub reactions: Vec<Reaction>,
    /// For `call` messages: the call log entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<CallLog>,
    /// Who the content mentions, as resolved when it was sent or last edited (absent when
    /// nobody).
    #[serde(default, skip_serializing_if = "Mentions::is_empty")]
    pub mentions: Mentions,
}

/// The mentions of a message: `@username` of members (resolved to user ids), `@room`
/// (every member) and `@here` (the members online when it was sent). A name that is not
/// a member's, and `@room` from a member of a room whose `room_mentions` is `admins`, are
/// only text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Mentions {
    /// The members mentioned by name, in order of first mention.
    #[serde(default)]
    pub user_ids: Vec<String>,
    /// `@room`: every member was notified.
    #[serde(default)]
    pub room: bool,
    /// `@here`: the members online then were notified.
    #[serde(default)]
    pub here: bool,
}

impl Mentions {
    /// Whether nobody is mentioned.
    pub fn is_empty(&self) -> bool {
        self.user_ids.is_empty() && !self.room && !self.here
    }
}

/// Who may use `@room` in a room (`room_mentions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RoomMentions {
    /// Any member (the default).
    #[default]
    Members,
    /// Only the room's owners and admins; from anyone else `@room` is only text.
    Admins,
}

fn text_type() -> MessageType {
    MessageType::Text
}
