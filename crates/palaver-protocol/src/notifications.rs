//! Notifications (`docs/notifications.md`): a member's settings per room, the browsers
//! subscribed to Web Push (RFC 8030), and the JSON a push carries.

use serde::{Deserialize, Serialize};

use crate::model::{MessageSender, RoomKind};

/// How much of a room a member wants to be notified of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NotificationLevel {
    /// Everything: direct messages and mentions are pushed (other messages are not
    /// pushed at any level; a client that is open may show them). The default.
    #[default]
    All,
    /// Direct messages and mentions.
    Mentions,
    /// Nothing is pushed for this room, not even direct messages.
    None,
}

/// `GET` and `PUT /api/v1/rooms/{room_id}/notifications`: the caller's settings for a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationSettings {
    pub room_id: String,
    pub level: NotificationLevel,
    /// Nothing is pushed for this room before this time (RFC 3339 UTC); `null`: not muted.
    /// A time in the past means not muted.
    pub muted_until: Option<String>,
}

/// `PUT /api/v1/rooms/{room_id}/notifications`: replaces the caller's settings for a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateNotificationSettings {
    pub level: NotificationLevel,
    /// Mute until this time (RFC 3339, any offset; stored as UTC); `null` or absent:
    /// not muted.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub muted_until: Option<String>,
}

/// `GET /api/v1/push/vapid-public-key`: the server's VAPID public key (RFC 8292), to pass
/// as `applicationServerKey` to `PushManager.subscribe()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VapidPublicKey {
    /// The uncompressed P-256 point (65 bytes), base64url without padding (87 characters).
    pub public_key: String,
}

/// The keys of a push subscription (RFC 8291 §2 and §3.2), as `PushSubscription.toJSON()`
/// gives them: base64url, padding optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSubscriptionKeys {
    /// The browser's P-256 public key: an uncompressed point (65 bytes).
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 87, max_length = 88, pattern = "^[A-Za-z0-9_-]{87}=?$")
    )]
    pub p256dh: String,
    /// The authentication secret: 16 bytes.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 22, max_length = 24, pattern = "^[A-Za-z0-9_-]{22}(==)?$")
    )]
    pub auth: String,
}

/// `POST /api/v1/push/subscriptions`: the browser's `PushSubscription.toJSON()`, as is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatePushSubscription {
    /// The push service's URL for this browser: `https://`, with a host name (not an IP
    /// address), at most 2048 characters.
    #[cfg_attr(feature = "openapi", schema(max_length = 2048, pattern = "^https://"))]
    pub endpoint: String,
    pub keys: PushSubscriptionKeys,
    /// Ignored (browsers send `null`; when set, the push service ends the subscription
    /// itself and answers 404 or 410, after which the server forgets it).
    #[serde(default, rename = "expirationTime")]
    pub expiration_time: Option<f64>,
}

/// A push subscription of the caller (one browser or device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSubscription {
    pub id: String,
    /// Compare with the browser's current `PushSubscription.endpoint` to know whether
    /// this browser is subscribed.
    pub endpoint: String,
    /// The `User-Agent` of the browser that subscribed, if it sent one (at most 256
    /// characters).
    pub user_agent: Option<String>,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// `GET /api/v1/push/subscriptions`: the caller's subscriptions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushSubscriptions {
    pub subscriptions: Vec<PushSubscription>,
}

/// What a Web Push message carries, as JSON (encrypted end to end with RFC 8291: the push
/// service sees none of it). At most about 1.5 KB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushNotification {
    /// `message`: a new message the recipient should know of.
    #[serde(rename = "type")]
    pub kind: String,
    pub room_id: String,
    pub room_name: String,
    pub room_kind: RoomKind,
    pub message_id: String,
    /// The message's seq in its room.
    pub seq: i64,
    pub sender: MessageSender,
    /// The start of the message's text (at most 200 characters, `…` added when cut);
    /// empty when the server is set not to send previews (`push.preview = false`) or
    /// the message is an attachment without caption.
    pub body: String,
    /// Whether the recipient is mentioned (else: a direct message).
    pub mention: bool,
}
