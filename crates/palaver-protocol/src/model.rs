//! The public shapes of the chat model: users, rooms and messages.
//!
//! IDs are UUIDv7 strings (RFC 9562), times are RFC 3339 strings in UTC with millisecond
//! precision (e.g. `"2026-11-21T07:31:41.123Z"`).

use serde::{Deserialize, Serialize};

/// A global role. `admin` may use `/api/v1/admin/*`; `moderator` is reserved for
/// moderation features; everyone else is `user`.
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
    pub role: Role,
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub location: Option<String>,
    /// An `http(s)` URL.
    pub website: Option<String>,
    /// An `http(s)` URL.
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

/// A room as its members (or the public directory) see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Room {
    /// UUIDv7.
    pub id: String,
    /// 1–100 characters.
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    /// The user who created the room.
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// The seq of the newest message (0 when the room has none).
    pub last_seq: i64,
    /// Number of members.
    pub member_count: i64,
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
    /// Position in the room: starts at 1, gap-free, in commit order.
    pub seq: i64,
    pub sender: MessageSender,
    /// 1–4000 characters (configurable).
    pub content: String,
    /// The sender's idempotency key, if it gave one.
    pub client_id: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}
