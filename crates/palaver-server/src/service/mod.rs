//! The rules of Palaver: who may do what, validation, and orchestration of store writes
//! and event publication. No HTTP, no SQL: transports call in with an [`Actor`] and plain
//! values, and get wire types or an [`AppError`] back.
//!
//! - [`accounts`]: register, login, profile, token verification.
//! - [`rooms`]: create, list, directory, join.
//! - [`messages`]: send (durable, idempotent, published in seq order) and history.
//! - [`validate`]: input newtypes.

pub mod accounts;
pub mod messages;
pub mod rooms;
pub mod validate;

use std::hash::BuildHasher;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use palaver_protocol::ws::Event;

use crate::auth::tokens::TokenIssuer;
use crate::auth::Actor;
use crate::broker::{Broker, Envelope, Membership};
use crate::config::Limits;
use crate::error::{AppError, AppResult};
use crate::store::Store;

/// Number of stripes in [`Service::room_locks`].
const ROOM_LOCK_STRIPES: usize = 64;

/// The service layer: everything a transport needs, behind one handle.
pub struct Service {
    pub(crate) store: Store,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) tokens: TokenIssuer,
    pub(crate) limits: Limits,
    /// Refresh token lifetime, seconds.
    pub(crate) refresh_ttl_secs: u64,
    /// Striped per-room locks held from a room write's commit to its publication, so that
    /// events of one room are published in seq order.
    room_locks: Vec<tokio::sync::Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Service {
    /// Builds the service over a store and a broker.
    pub fn new(
        store: Store,
        broker: Arc<dyn Broker>,
        tokens: TokenIssuer,
        limits: Limits,
        refresh_ttl_secs: u64,
    ) -> Self {
        Service {
            store,
            broker,
            tokens,
            limits,
            refresh_ttl_secs,
            room_locks: (0..ROOM_LOCK_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            hasher: Default::default(),
        }
    }

    /// The configured input limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The caller behind an access token.
    ///
    /// # Errors
    /// `401 unauthorized` if the token is malformed, expired, or not signed by us.
    pub fn authenticate(&self, token: &str) -> AppResult<Actor> {
        let claims = self
            .tokens
            .verify(token)
            .ok_or_else(|| AppError::unauthorized("invalid or expired token"))?;
        Ok(Actor {
            user_id: claims.sub,
            session_id: claims.sid,
        })
    }

    /// The lock that orders writes-and-publishes in `room_id`.
    fn room_lock(&self, room_id: &str) -> &tokio::sync::Mutex<()> {
        let h = self.hasher.hash_one(room_id);
        &self.room_locks[(h as usize) % ROOM_LOCK_STRIPES]
    }

    /// Serializes `event` once and publishes it to `room_id`'s members. A broker failure
    /// is logged, not returned: the change is already committed, and clients that miss the
    /// live event catch up from history.
    async fn publish(&self, room_id: &str, event: &Event, membership: Option<Membership>) {
        let frame = match serde_json::to_string(event) {
            Ok(text) => Utf8Bytes::from(text),
            Err(e) => {
                tracing::error!(error = %e, "serializing event");
                return;
            }
        };
        let envelope = Envelope {
            room_id: room_id.to_owned(),
            frame,
            membership,
        };
        if let Err(e) = self.broker.publish(envelope).await {
            tracing::error!(error = %e, room_id, "publishing event");
        }
    }
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
