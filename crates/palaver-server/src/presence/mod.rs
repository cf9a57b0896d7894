//! Who is online: per-user connection counts, chosen status, custom text and last seen.
//!
//! [`Presence`] is the trait (a Redis implementation shares it across nodes);
//! [`MemoryPresence`] keeps it in this process. A user is online while any of their
//! connections is; only the first connection and the last disconnection change what
//! others see, so a user with five tabs is announced once.

use std::collections::HashMap;
use std::sync::Mutex;

use palaver_protocol::ws::{PresenceInfo, PresenceStatus};

/// What one user's presence is made of.
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
        let status = match (self.connections, self.chosen) {
            (0, _) | (_, Some(PresenceStatus::Invisible)) => PresenceStatus::Offline,
            (_, Some(chosen)) => chosen,
            (_, None) => PresenceStatus::Online,
        };
        PresenceInfo {
            user_id: user_id.to_owned(),
            status,
            status_text: if status == PresenceStatus::Offline {
                None
            } else {
                self.status_text.clone()
            },
            last_seen: self.last_seen.clone(),
        }
    }
}

/// Presence bookkeeping. Each method returns the user's visible presence *if it changed*
/// for others (so the caller announces it), else `None`.
pub trait Presence: Send + Sync {
    /// A connection of `user_id` opened.
    fn connected(&self, user_id: &str) -> Option<PresenceInfo>;

    /// A connection of `user_id` closed at `at` (RFC 3339).
    fn disconnected(&self, user_id: &str, at: &str) -> Option<PresenceInfo>;

    /// The user chose a status (`offline` is not a choice: use `invisible`) and text.
    fn set(
        &self,
        user_id: &str,
        status: PresenceStatus,
        status_text: Option<String>,
    ) -> Option<PresenceInfo>;

    /// What others see of `user_id` now.
    fn get(&self, user_id: &str) -> PresenceInfo;
}

/// Presence held in this process.
#[derive(Default)]
pub struct MemoryPresence {
    users: Mutex<HashMap<String, State>>,
}

impl MemoryPresence {
    /// Applies `change` to `user_id`'s state; returns the visible presence if it changed.
    fn update(&self, user_id: &str, change: impl FnOnce(&mut State)) -> Option<PresenceInfo> {
        let mut users = self.users.lock().expect("presence lock poisoned");
        let state = users.entry(user_id.to_owned()).or_default();
        let before = state.visible(user_id);
        change(state);
        let after = state.visible(user_id);
        (before != after).then_some(after)
    }
}

impl Presence for MemoryPresence {
    fn connected(&self, user_id: &str) -> Option<PresenceInfo> {
        self.update(user_id, |s| s.connections += 1)
    }

    fn disconnected(&self, user_id: &str, at: &str) -> Option<PresenceInfo> {
        self.update(user_id, |s| {
            s.connections = s.connections.saturating_sub(1);
            if s.connections == 0 {
                s.last_seen = Some(at.to_owned());
            }
        })
    }

    fn set(
        &self,
        user_id: &str,
        status: PresenceStatus,
        status_text: Option<String>,
    ) -> Option<PresenceInfo> {
        self.update(user_id, |s| {
            s.chosen = Some(status);
            s.status_text = status_text;
        })
    }

    fn get(&self, user_id: &str) -> PresenceInfo {
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

    #[test]
    fn only_the_first_connection_and_last_disconnection_are_announced() {
        let p = MemoryPresence::default();
        assert_eq!(
            p.connected("a").map(|i| i.status),
            Some(PresenceStatus::Online)
        );
        assert!(p.connected("a").is_none(), "second tab: no change");
        assert!(p.disconnected("a", "t1").is_none(), "one tab left");
        let gone = p.disconnected("a", "t2").expect("last tab closed");
        assert_eq!(gone.status, PresenceStatus::Offline);
        assert_eq!(gone.last_seen.as_deref(), Some("t2"));
    }

    #[test]
    fn invisible_looks_offline_and_dnd_is_shown() {
        let p = MemoryPresence::default();
        p.connected("a");
        let dnd = p
            .set("a", PresenceStatus::Dnd, Some("focus".into()))
            .unwrap();
        assert_eq!(
            (dnd.status, dnd.status_text.as_deref()),
            (PresenceStatus::Dnd, Some("focus"))
        );
        let hidden = p
            .set("a", PresenceStatus::Invisible, Some("x".into()))
            .unwrap();
        assert_eq!(hidden.status, PresenceStatus::Offline);
        assert_eq!(hidden.status_text, None, "no text leaks while invisible");
        assert_eq!(p.get("a").status, PresenceStatus::Offline);
        assert_eq!(p.get("nobody").status, PresenceStatus::Offline);
    }
}
