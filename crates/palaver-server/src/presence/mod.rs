//! Who is online: per-user connections, chosen status, custom text and last seen.
//!
//! [`Presence`] is the trait; [`MemoryPresence`] keeps it in this process (one node, no
//! `redis_url`) and [`RedisPresence`] shares it between the nodes using one Redis (see
//! [`redis`] for its leases). A user is online while any of their connections is; only
//! the first connection and the last disconnection (cluster-wide, with Redis) change what
//! others see, so a user with five tabs is announced once.
//!
//! Neither implementation touches the database: each call returns a [`Change`] for the
//! service to act on (`service/live.rs`): it stores `last_seen` (the `users.last_seen_at`
//! column) when a user's last connection went, so that it survives restarts and Redis
//! losing its data, and reads it back for users whose presence here does not know it.

pub mod redis;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use palaver_protocol::ws::{PresenceInfo, PresenceStatus};

pub use self::redis::RedisPresence;
use crate::hub::ConnId;

/// What others see of `user_id`, from its parts: `online` is whether any connection is
/// (cluster-wide), `chosen` the status the user chose (`online` when none); `invisible`
/// and no connection both show `offline`, without the status text.
fn visible(
    user_id: &str,
    online: bool,
    chosen: Option<PresenceStatus>,
    status_text: Option<&str>,
    last_seen: Option<&str>,
) -> PresenceInfo {
    let status = match (online, chosen) {
        (false, _) | (_, Some(PresenceStatus::Invisible)) => PresenceStatus::Offline,
        (true, Some(chosen)) => chosen,
        (true, None) => PresenceStatus::Online,
    };
    PresenceInfo {
        user_id: user_id.to_owned(),
        status,
        status_text: if status == PresenceStatus::Offline {
            None
        } else {
            status_text.map(str::to_owned)
        },
        last_seen: last_seen.map(str::to_owned),
    }
}

/// A change of one user's presence, returned for the caller to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// What others see now: announce it to those who share a room with the user.
    pub info: PresenceInfo,
    /// The user's last connection (cluster-wide) just went, at `info.last_seen`: store
    /// that as their last seen time.
    pub went_offline: bool,
}

/// `Some(Change)` when `after` differs from `before` or the user went offline.
fn change(before: &PresenceInfo, after: PresenceInfo, went_offline: bool) -> Option<Change> {
    (went_offline || *before != after).then_some(Change {
        info: after,
        went_offline,
    })
}

/// Presence bookkeeping. Each change returns a [`Change`] *if* what others see changed
/// (so the caller announces it), else `None`. Failures of a shared backend are logged
/// and answered as "no change" (see [`RedisPresence`]), never returned.
#[async_trait]
pub trait Presence: Send + Sync {
    /// Connection `conn` (this node's id for it) of `user_id` opened.
    async fn connected(&self, user_id: &str, conn: ConnId) -> Option<Change>;

    /// Connection `conn` of `user_id` closed at `at` (RFC 3339 UTC). When it was the
    /// user's last, the change is `offline` with `last_seen = at` and `went_offline`.
    async fn disconnected(&self, user_id: &str, conn: ConnId, at: &str) -> Option<Change>;

    /// The user chose a status (`offline` is not a choice: use `invisible`) and text.
    async fn set(
        &self,
        user_id: &str,
        status: PresenceStatus,
        status_text: Option<String>,
    ) -> Option<Change>;

    /// What others see of `user_id` now (`last_seen` is `None` when this presence does
    /// not know it: the caller may read the stored one).
    async fn get(&self, user_id: &str) -> PresenceInfo;

    /// Whether `user_id` has a connection open on any node, whatever status they chose
    /// (an invisible user with an open socket is connected): who gets no Web Push,
    /// because their open clients show the message. With Redis, a node that died counts
    /// until its leases are swept (see [`RedisPresence`]).
    async fn is_connected(&self, user_id: &str) -> bool;

    /// How often [`tick`](Self::tick) must run, or `None` when it has nothing to do.
    fn tick_every(&self) -> Option<Duration> {
        None
    }

    /// Periodic upkeep (renewing this node's leases, noticing other nodes' expired ones);
    /// returns the changes it found, each to act on as any other.
    async fn tick(&self) -> Vec<Change> {
        Vec::new()
    }
}

/// What one user's presence is made of, in memory.
#[derive(Debug, Clone, Default)]
struct State {
    connections: u32,
    /// The status the user chose (`online` unless they set another).
    chosen: Option<PresenceStatus>,
    status_text: Option<String>,
    /// RFC 3339 UTC of the last disconnection.
    last_seen: Option<String>,
}

impl State {
    /// What others see.
    fn visible(&self, user_id: &str) -> PresenceInfo {
        visible(
            user_id,
            self.connections > 0,
            self.chosen,
            self.status_text.as_deref(),
            self.last_seen.as_deref(),
        )
    }
}

/// Presence held in this process: one node's connections are all there is.
#[derive(Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<String, State>>,
}

impl MemoryPresence {
    /// Applies `change` to `user_id`'s state (which returns whether the user went
    /// offline); returns the change if others see one.
    fn update(&self, user_id: &str, change: impl FnOnce(&mut State) -> bool) -> Option<Change> {
        let mut users = self.users.lock().expect("presence lock poisoned");
        let state = users.entry(user_id.to_owned()).or_default();
        let before = state.visible(user_id);
        let went_offline = change(state);
        self::change(&before, state.visible(user_id), went_offline)
    }
}

#[async_trait]
impl Presence for MemoryPresence {
    async fn connected(&self, user_id: &str, _conn: ConnId) -> Option<Change> {
        self.update(user_id, |s| {
            s.connections += 1;
            false
        })
    }

    async fn disconnected(&self, user_id: &str, _conn: ConnId, at: &str) -> Option<Change> {
        self.update(user_id, |s| {
            let was_online = s.connections > 0;
            s.connections = s.connections.saturating_sub(1);
            if s.connections == 0 {
                s.last_seen = Some(at.to_owned());
            }
            was_online && s.connections == 0
        })
    }

    async fn set(
        &self,
        user_id: &str,
        status: PresenceStatus,
        status_text: Option<String>,
    ) -> Option<Change> {
        self.update(user_id, |s| {
            s.chosen = Some(status);
            s.status_text = status_text;
            false
        })
    }

    async fn is_connected(&self, user_id: &str) -> bool {
        let users = self.users.lock().expect("presence lock poisoned");
        users.get(user_id).is_some_and(|s| s.connections > 0)
    }

    async fn get(&self, user_id: &str) -> PresenceInfo {
        let users = self.users.lock().expect("presence lock poisoned");
        users
            .get(user_id)
            .map(|s| s.visible(user_id))
            .unwrap_or_else(|| State::default().visible(user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_first_connection_and_last_disconnection_are_announced() {
        let p = MemoryPresence::default();
        assert_eq!(
            p.connected("a", 1).await.map(|c| c.info.status),
            Some(PresenceStatus::Online)
        );
        assert!(p.connected("a", 2).await.is_none(), "second tab: no change");
        assert!(p.disconnected("a", 1, "t1").await.is_none(), "one tab left");
        assert!(p.is_connected("a").await);
        let gone = p.disconnected("a", 2, "t2").await.expect("last tab closed");
        assert!(gone.went_offline);
        assert_eq!(gone.info.status, PresenceStatus::Offline);
        assert_eq!(gone.info.last_seen.as_deref(), Some("t2"));
        assert!(!p.is_connected("a").await);
        assert!(!p.is_connected("nobody").await);
    }

    #[tokio::test]
    async fn invisible_looks_offline_and_dnd_is_shown() {
        let p = MemoryPresence::default();
        p.connected("a", 1).await;
        let dnd = p
            .set("a", PresenceStatus::Dnd, Some("focus".into()))
            .await
            .unwrap();
        assert_eq!(
            (dnd.info.status, dnd.info.status_text.as_deref()),
            (PresenceStatus::Dnd, Some("focus"))
        );
        assert!(!dnd.went_offline);
        let hidden = p
            .set("a", PresenceStatus::Invisible, Some("x".into()))
            .await
            .unwrap();
        assert_eq!(hidden.info.status, PresenceStatus::Offline);
        assert!(p.is_connected("a").await, "invisible, yet connected");
        assert_eq!(
            hidden.info.status_text, None,
            "no text leaks while invisible"
        );
        assert_eq!(p.get("a").await.status, PresenceStatus::Offline);
        assert_eq!(p.get("nobody").await.status, PresenceStatus::Offline);
    }
}
