//! Request and response bodies of the REST API under `/api/v1`.
//!
//! Unknown fields in requests are ignored; missing required fields or fields of the wrong
//! type are answered with `422 validation_failed` naming the field.

use serde::{Deserialize, Serialize};

use crate::model::{Message, Room, User, Visibility};

/// `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// 3–32 characters of `[a-z0-9_.-]`.
    pub username: String,
    /// A valid address (RFC 5322 addr-spec); stored lower-cased.
    pub email: String,
    /// 8–128 characters.
    pub password: String,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    /// A username or an email address (matched case-insensitively).
    pub login: String,
    pub password: String,
}

/// The answer to register and login: the user and a fresh token pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthResponse {
    pub user: User,
    /// A JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// An opaque 256-bit token (base64url), stored by the server only as a hash.
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
}

/// `POST /api/v1/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRoomRequest {
    /// 1–100 characters after trimming.
    pub name: String,
    pub visibility: Visibility,
    #[serde(default)]
    pub topic: Option<String>,
}

/// `GET /api/v1/rooms` and `GET /api/v1/rooms/public`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomList {
    pub rooms: Vec<Room>,
}

/// `POST /api/v1/rooms/{room_id}/messages` (the WebSocket `message.send` carries the same
/// fields plus `room_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendMessageRequest {
    /// 1–4000 characters (configurable), not only whitespace.
    pub content: String,
    /// Idempotency key, 1–128 characters: a send repeated with the same `client_id` by
    /// the same sender in the same room returns the original message.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// `GET /api/v1/rooms/{room_id}/messages?before=&after=&limit=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessagePage {
    /// Ascending by `seq`.
    pub messages: Vec<Message>,
    /// Whether more messages exist beyond this page in the direction paged
    /// (older for `before` or no cursor, newer for `after` alone).
    pub has_more: bool,
}
