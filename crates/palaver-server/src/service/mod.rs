//! The rules of Palaver: who may do what, validation, and orchestration of store writes
//! and event publication. No HTTP, no SQL: transports call in with an [`Actor`] and plain
//! values, and get wire types or an [`AppError`] back.
//!
//! - [`accounts`]: register, login, refresh, logout, authentication of every request,
//!   password change, account deletion.
//! - [`credentials`]: listing and ending sessions; API keys.
//! - [`profiles`]: profile edits, public profiles, user search.
//! - [`admin`]: roles, disabling accounts, bootstrapping users from the command line.
//! - [`blocks`]: who has blocked whom.
//! - [`password_policy`]: NIST SP 800-63B password rules and the common-password list.
//! - [`rooms`]: create, list, directory, join, update, delete; the membership check.
//! - [`members`]: member list, leave, kick, ban, roles, ownership.
//! - [`invitations`]: invitations to private rooms, direct messages.
//! - [`messages`]: send (durable, idempotent, published in seq order), history, edits,
//!   deletes, reactions, read markers.
//! - [`moderation`]: message reports for the server's moderators and admins.
//! - [`notifications`]: notification settings per room, Web Push subscriptions, and the
//!   hand-over of committed messages to [`crate::push`].
//! - [`attachments`]: uploads and downloads.
//! - [`live`]: presence and typing (ephemeral, never stored).
//! - [`calls`]: calls and WebRTC signal relay: the store checks, then
//!   [`crate::signaling`], then publishing its effects and storing call log entries.
//! - [`user_limits`]: per-account limits on live actions (messages, calls, typing,
//!   presence, invitations, room creation).
//! - [`validate`]: input newtypes.

pub mod accounts;
pub mod admin;
pub mod attachments;
pub mod avatars;
pub mod blocks;
pub mod call_rooms;
pub mod calls;
pub mod credentials;
pub mod default_rooms;
pub mod email;
pub mod invitations;
pub mod live;
pub mod members;
pub mod mentions;
pub mod messages;
pub mod moderation;
pub mod notifications;
pub mod oidc;
pub mod password_policy;
pub mod profiles;
pub mod rooms;
pub mod search;
pub mod two_factor;
pub mod user_limits;
pub mod validate;

use std::hash::BuildHasher;
use std::sync::Arc;

use crate::auth::tokens::TokenIssuer;
use crate::broker::{Broker, Envelope};
use crate::config::{AttachmentsConfig, AuthConfig, Config, Limits, RtcConfig};
use crate::error::AppResult;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::files::FileStore;
use crate::store::Store;

/// The most rooms [`Service::remember_group_room`] keeps (about 100 bytes each).
const GROUP_ROOMS_KEPT: usize = 100_000;

/// Number of stripes in [`Service::room_order`].
const ROOM_LOCK_STRIPES: usize = 64;

/// The service layer: everything a transport needs, behind one handle.
pub struct Service {
    pub(crate) store: Store,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) tokens: TokenIssuer,
    pub(crate) limits: Limits,
    pub(crate) auth: AuthConfig,
    pub(crate) attachments: AttachmentsConfig,
    pub(crate) rtc: RtcConfig,
    /// The calls: this node's, each behind its own lock (see
    /// [`crate::signaling::registry`]), or with `redis_url` every node's, in Redis (see
    /// [`crate::signaling::shared`]).
    pub(crate) calls: crate::signaling::Calls,
    pub(crate) files: Arc<dyn FileStore>,
    pub(crate) presence: Arc<dyn Presence>,
    pub(crate) metrics: Arc<Metrics>,
    /// When each (user, room) last had a `typing: true` relayed (the throttle).
    typing_last: std::sync::Mutex<std::collections::HashMap<(String, String), std::time::Instant>>,
    pub(crate) rate: accounts::LoginLimiters,
    /// Per-user limits on live actions (`[user_limits]`).
    pub(crate) user_limits: user_limits::UserLimiters,
    /// The Redis the nodes share (`redis_url`), if set: the rate limits count there and
    /// `/readyz` pings it.
    pub(crate) redis: Option<Arc<crate::redis_conn::RedisConn>>,
    /// Striped per-room ordering (see [`Service::room_order`] and [`Turn`]), so that the
    /// events of one room are published in seq order.
    room_order: Vec<OrderStripe>,
    hasher: std::collections::hash_map::RandomState,
    /// Outgoing e-mail (`[email]`), if configured; `None`: e-mail is off.
    pub(crate) mailer: Option<Arc<crate::email::Mailer>>,
    /// Web Push (`[push]`); `None`: push is off (`push.enabled = false`).
    pub(crate) push: Option<Arc<crate::push::Pusher>>,
    /// Rooms seen to be channels or private rooms (not DMs), for the send fast path (see
    /// [`Service::is_known_group_room`]).
    group_rooms: std::sync::Mutex<std::collections::HashSet<String>>,
    /// The OpenID Connect providers and GitHub people may sign in with (`[auth]`).
    pub(crate) sign_in: oidc::SignInProviders,
    /// The public channels every new account joins (`default_rooms`).
    pub(crate) default_rooms: Vec<String>,
    /// Held while a default room is looked up or created, so that two registrations on
    /// this node do not both create it.
    default_rooms_lock: tokio::sync::Mutex<()>,
}

impl Service {
    /// Builds the service over a store, a file store and a broker, with settings from
    /// `config`; its rate limits live in `redis` when given (`redis_url`), else in memory.
    // Each argument is a separate part a node wires in (lib.rs `open`); grouping them
    // would only move the list.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        files: Arc<dyn FileStore>,
        broker: Arc<dyn Broker>,
        presence: Arc<dyn Presence>,
        metrics: Arc<Metrics>,
        tokens: TokenIssuer,
        config: &Config,
        redis: Option<Arc<crate::redis_conn::RedisConn>>,
    ) -> Self {
        Service {
            store,
            broker,
            tokens,
            limits: config.limits.clone(),
            auth: config.auth.clone(),
            attachments: config.attachments.clone(),
            rtc: config.rtc.clone(),
            calls: Default::default(),
            files,
            presence,
            metrics: Arc::clone(&metrics),
            typing_last: Default::default(),
            sign_in: oidc::SignInProviders::new(&config.auth, &config.public_base()),
            rate: accounts::LoginLimiters::new(&config.rate_limits, redis.as_ref()),
            user_limits: user_limits::UserLimiters::new(
                &config.user_limits,
                Arc::clone(&metrics),
                redis.as_ref(),
            ),
            redis,
            room_order: (0..ROOM_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(None))
                .collect(),
            hasher: Default::default(),
            group_rooms: Default::default(),
            mailer: None,
            push: None,
            default_rooms: config.default_rooms.clone(),
            default_rooms_lock: Default::default(),
        }
    }

    /// Sends e-mail through `mailer` (`[email]`): verification, password reset and
    /// e-mail change turn on (see [`email`]).
    pub fn with_mailer(mut self, mailer: Arc<crate::email::Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// At shutdown: waits up to `within` for queued mail to go out (see
    /// [`crate::email::Mailer::close`]).
    pub async fn close_mail(&self, within: std::time::Duration) {
        if let Some(mailer) = &self.mailer {
            mailer.close(within).await;
        }
    }

    /// Keeps the calls in Redis, shared with the other nodes of the deployment, instead of
    /// in this node's memory (with `redis_url`).
    pub fn with_shared_calls(mut self, shared: crate::signaling::SharedRegistry) -> Self {
        self.calls = crate::signaling::Calls::Shared(shared);
        self
    }

    /// Whether `room_id` was seen to be a group room (a channel or a private room, not a
    /// DM). A room's kind never changes, so the answer never goes stale; a room deleted
    /// since is refused by the insert itself. Sends to such a room may take the fast path
    /// (membership checked inside the insert, [`crate::store::NewMessage::member_only`]).
    pub(crate) fn is_known_group_room(&self, room_id: &str) -> bool {
        self.group_rooms
            .lock()
            .is_ok_and(|rooms| rooms.contains(room_id))
    }

    /// Remembers that `room_id` is a group room (see [`Service::is_known_group_room`]);
    /// the set is emptied when it reaches [`GROUP_ROOMS_KEPT`] rooms.
    pub(crate) fn remember_group_room(&self, room_id: &str) {
        if let Ok(mut rooms) = self.group_rooms.lock() {
            if rooms.len() >= GROUP_ROOMS_KEPT {
                rooms.clear();
            }
            rooms.insert(room_id.to_owned());
        }
    }

    /// Whether `room_id` is a direct-message room (`false` for an unknown room). Group
    /// rooms are remembered (see [`Service::is_known_group_room`]); a room's kind never
    /// changes.
    ///
    /// # Errors
    /// The store failed.
    pub async fn room_is_dm(&self, room_id: &str) -> AppResult<bool> {
        if self.is_known_group_room(room_id) {
            return Ok(false);
        }
        let dm = match self.store.rooms.room_by_id(room_id).await? {
            Some(room) => room.kind == palaver_protocol::RoomKind::Dm,
            None => return Ok(false),
        };
        if !dm {
            self.remember_group_room(room_id);
        }
        Ok(dm)
    }

    /// The largest attachment accepted, in bytes.
    pub fn attachment_limit(&self) -> usize {
        self.attachments.max_bytes
    }

    /// This node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the store answers (for `/healthz` and `/readyz`).
    pub async fn store_ready(&self) -> bool {
        self.store.database.ping().await
    }

    /// The configured input limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The stripe that orders `room_id`'s writes.
    fn order_stripe(&self, room_id: &str) -> &OrderStripe {
        let h = self.hasher.hash_one(room_id);
        &self.room_order[(h as usize) % ROOM_LOCK_STRIPES]
    }

    /// Exclusive access to `room_id`'s writes, to hold from a write's commit to its
    /// publication (edits, deletions, reactions, membership changes): waits until every
    /// earlier write of the room has been published (sends still in a group commit
    /// included), and keeps later ones out until dropped. Sends do not take it: see
    /// [`Service::queue_in_order`].
    pub(crate) async fn room_order(&self, room_id: &str) -> RoomOrder<'_> {
        let mut tail = self.order_stripe(room_id).lock().await;
        if let Some(previous) = tail.take() {
            // An error means the previous write ended without publishing: also its turn.
            let _ = previous.await;
        }
        tail
    }

    /// Queues `new` for the group commit under `room_id`'s order, and returns the pending
    /// commit with the write's [`Turn`] to publish: writes queued one after the other in
    /// a room publish in that order, without any of them holding the room while its
    /// commit is on disk. The queue's place is reserved first (waiting, if the queue is
    /// full, without any lock), so the stripe's lock is held only while the message is
    /// queued and the turn swapped, never across an `.await`.
    ///
    /// # Errors
    /// `503 unavailable` when the store is closing.
    pub(crate) async fn queue_in_order(
        &self,
        room_id: &str,
        new: crate::store::NewMessage,
    ) -> AppResult<(crate::store::PendingMessage, Turn)> {
        let slot = self.store.messages.reserve_message().await?;
        let (done, next) = tokio::sync::oneshot::channel();
        // Waits while an edit or membership change of the room holds it; once taken, it
        // is held for two steps that never wait.
        let mut tail = self.order_stripe(room_id).lock().await;
        let pending = slot.queue(new);
        let previous = tail.replace(next);
        drop(tail);
        Ok((
            pending,
            Turn {
                previous,
                _done: done,
            },
        ))
    }

    /// Publishes `envelope` (see [`publish`]).
    pub(crate) async fn publish(&self, envelope: Envelope) {
        publish(&*self.broker, envelope).await;
    }
}

/// The one publish path: hands `envelope`, a typed event, to `broker` for every node's
/// hub, which encodes it once per wire format. A broker failure is logged, not returned:
/// the change is already committed, and clients that miss the live event catch up from
/// history.
pub(crate) async fn publish(broker: &dyn Broker, envelope: Envelope) {
    if let Err(e) = broker.publish(envelope).await {
        tracing::error!(error = %e, "publishing event");
    }
}

/// One stripe of the room order: the turn of the last write queued in its rooms
/// (`None` when every write has published), behind the lock that queues writes.
type OrderStripe = tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>;

/// Exclusive access to a room's writes (see [`Service::room_order`]).
pub(crate) type RoomOrder<'a> =
    tokio::sync::MutexGuard<'a, Option<tokio::sync::oneshot::Receiver<()>>>;

/// A queued send's place in its room's publication order (see
/// [`Service::queue_in_order`]). [`Turn::wait`] returns once every write queued before it has
/// published (or given up); dropping the turn lets the next one go.
#[derive(Debug)]
pub(crate) struct Turn {
    previous: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Dropped when this write has published: that completes the next turn's wait.
    _done: tokio::sync::oneshot::Sender<()>,
}

impl Turn {
    /// Waits until every write queued before this one in the room has published.
    pub(crate) async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            let _ = previous.await;
        }
    }
}

/// The current time, and `now ± secs`, as RFC 3339 strings (see [`rfc3339`]).
pub fn now_plus(secs: i64) -> String {
    rfc3339(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

/// Parses an RFC 3339 time given by a client and returns it in the canonical form of
/// [`rfc3339`] (UTC, milliseconds), so stored times compare as strings.
pub fn parse_rfc3339(raw: &str) -> Option<String> {
    time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(rfc3339)
}

/// A new UUIDv7 (RFC 9562) as a lower-case hyphenated string.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The current time as RFC 3339 UTC with millisecond precision, e.g.
/// `2026-11-21T07:31:41.123Z`.
pub fn now_rfc3339() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 UTC with millisecond precision.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let millis = t.millisecond();
    let t = t
        .replace_nanosecond(u32::from(millis) * 1_000_000)
        .unwrap_or(t);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_millis_and_z() {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_789).unwrap();
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn ids_are_uuid_v7() {
        let id = new_id();
        let parsed = uuid::Uuid::parse_str(&id).unwrap();
        assert_eq!(parsed.get_version_num(), 7);
    }
}
