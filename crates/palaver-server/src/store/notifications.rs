//! [`NotificationStore`]: members' notification settings per room, Web Push subscriptions
//! per device, and the server's VAPID key (see `docs/notifications.md`). Implemented in
//! `sqlite/notifications.rs` and `postgres/notifications.rs`.

use async_trait::async_trait;

use super::StoreResult;

/// How much of a room a member wants to be notified of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotificationLevel {
    /// Everything the server notifies of (today: direct messages and mentions by push;
    /// clients may show more while open). The default, when a member has no row.
    #[default]
    All,
    /// Direct messages and mentions only.
    Mentions,
    /// Nothing.
    None,
}

impl NotificationLevel {
    /// The stored (and wire) form: `all`, `mentions`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationLevel::All => "all",
            NotificationLevel::Mentions => "mentions",
            NotificationLevel::None => "none",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all" => NotificationLevel::All,
            "mentions" => NotificationLevel::Mentions,
            "none" => NotificationLevel::None,
            _ => return None,
        })
    }
}

/// A member's notification settings for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationSettingsRow {
    pub room_id: String,
    pub user_id: String,
    pub level: NotificationLevel,
    /// Nothing is pushed before this time (RFC 3339 UTC); `None`: not muted.
    pub muted_until: Option<String>,
    pub updated_at: String,
}

/// One browser's Web Push subscription (RFC 8030 endpoint, RFC 8291 keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    pub id: String,
    pub user_id: String,
    /// The login session that subscribed; `None` when subscribed with an API key.
    pub session_id: Option<String>,
    /// The push service's URL for this browser (a capability: whoever knows it may push).
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes), base64url without padding.
    pub p256dh: String,
    /// The 16-byte authentication secret, base64url without padding.
    pub auth: String,
    /// The subscribing browser's `User-Agent` (at most 256 characters), to tell devices
    /// apart in a list.
    pub user_agent: Option<String>,
    pub created_at: String,
}

/// The server's VAPID key pair (RFC 8292), ECDSA on P-256.
#[derive(Clone, PartialEq, Eq)]
pub struct VapidKeyRow {
    /// The private scalar, 32 bytes big-endian. Secret.
    pub private_key: Vec<u8>,
    /// The public key, uncompressed SEC1 point (65 bytes).
    pub public_key: Vec<u8>,
    pub created_at: String,
}

impl std::fmt::Debug for VapidKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKeyRow")
            .field("private_key", &"[redacted]")
            .field("public_key", &self.public_key)
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Notification settings, push subscriptions and the VAPID key.
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Stores (creating or replacing) a member's settings for a room.
    ///
    /// # Errors
    /// [`StoreError::NotFound`](super::StoreError::NotFound) when `user_id` is not a
    /// member of `room_id` (settings exist only with the membership, and go with it).
    async fn set_notification_settings(
        &self,
        settings: &NotificationSettingsRow,
    ) -> StoreResult<()>;

    /// `user_id`'s settings for `room_id`, if ever set (and still a member).
    async fn notification_settings(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<NotificationSettingsRow>>;

    /// The settings of each of `user_ids` in `room_id` that has a row, in no particular
    /// order (one query, for a delivery).
    async fn notification_settings_of(
        &self,
        room_id: &str,
        user_ids: &[String],
    ) -> StoreResult<Vec<NotificationSettingsRow>>;

    /// Stores a subscription. Idempotent per endpoint: when `subscription.endpoint` is
    /// stored already, that row takes the new keys, session and user agent; it keeps its
    /// id and `created_at` if it is the same user's, else (another account subscribed the
    /// same browser) it becomes `subscription` entirely. Then, of the user's
    /// subscriptions, only the newest `keep` are kept. Returns the stored row and whether
    /// it is new to this user.
    ///
    /// # Errors
    /// [`StoreError::NotFound`](super::StoreError::NotFound) when the user or the session
    /// does not exist.
    async fn save_push_subscription(
        &self,
        subscription: &PushSubscriptionRow,
        keep: usize,
    ) -> StoreResult<(PushSubscriptionRow, bool)>;

    /// `user_id`'s subscriptions, oldest first.
    async fn push_subscriptions(&self, user_id: &str) -> StoreResult<Vec<PushSubscriptionRow>>;

    /// The subscriptions of `user_ids` that may receive pushes at `now`: those subscribed
    /// with an API key, and those whose session is neither revoked nor expired. In no
    /// particular order.
    async fn push_targets(
        &self,
        user_ids: &[String],
        now: &str,
    ) -> StoreResult<Vec<PushSubscriptionRow>>;

    /// Deletes subscription `id` of `user_id`; returns whether there was one.
    async fn delete_push_subscription(&self, user_id: &str, id: &str) -> StoreResult<bool>;

    /// Deletes subscription `id` if its endpoint is still `endpoint` (the push service
    /// answered 404 or 410 for it); returns whether it did.
    async fn delete_gone_subscription(&self, id: &str, endpoint: &str) -> StoreResult<bool>;

    /// The VAPID key pair, if one was created.
    async fn vapid_key(&self) -> StoreResult<Option<VapidKeyRow>>;

    /// Stores `key` unless a key pair exists already; returns the stored pair (so of
    /// concurrent calls, from any node, all get the same one).
    async fn create_vapid_key(&self, key: &VapidKeyRow) -> StoreResult<VapidKeyRow>;
}
