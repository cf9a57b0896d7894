//! Ephemeral state: presence (online, away, dnd, offline/invisible, status text, last
//! seen) and typing. Neither is stored in the database. Both go only to users who share a
//! room with the subject (presence) or to the room's other members (typing).

use std::time::{Duration, Instant};

use palaver_protocol::ws::{Event, PresenceInfo, PresenceStatus, SetPresence, Typing};

use super::user_limits::Action;
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Topic};
use crate::error::{AppError, AppResult};

/// How long a `typing: true` holds without another.
pub const TYPING_EXPIRES: Duration = Duration::from_secs(6);
/// At most one `typing: true` per user and room per this interval is relayed.
pub const TYPING_THROTTLE: Duration = Duration::from_secs(2);
/// Longest custom status text, in characters.
const STATUS_TEXT_MAX: usize = 100;

impl Service {
    /// A connection of the caller opened; announces them online on their first one.
    pub async fn connection_opened(&self, actor: &Actor) {
        if let Some(info) = self.presence.connected(&actor.user_id) {
            self.announce_presence(info).await;
        }
    }

    /// A connection of the caller closed; announces them offline (with `last_seen`) when
    /// it was their last.
    pub async fn connection_closed(&self, actor: &Actor) {
        if let Some(info) = self.presence.disconnected(&actor.user_id, &now_rfc3339()) {
            self.announce_presence(info).await;
        }
    }

    /// Sets the caller's presence status and text.
    ///
    /// # Errors
    /// `422 validation_failed`: `status` `offline` (use `invisible`), `status_text` over
    /// 100 characters; `429 rate_limited` (`user_limits.presence`).
    pub async fn set_presence(&self, actor: &Actor, req: SetPresence) -> AppResult<PresenceInfo> {
        if req.status == PresenceStatus::Offline {
            return Err(AppError::validation(
                "status",
                "status must be online, away, dnd or invisible",
            ));
        }
        let text = req
            .status_text
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        if text
            .as_ref()
            .is_some_and(|t| t.chars().count() > STATUS_TEXT_MAX || t.chars().any(char::is_control))
        {
            return Err(AppError::validation(
                "status_text",
                format!("status_text must be at most {STATUS_TEXT_MAX} characters"),
            ));
        }
        self.user_limits
            .hit(&actor.user_id, Action::Presence)
            .await?;
        if let Some(info) = self.presence.set(&actor.user_id, req.status, text) {
            self.announce_presence(info).await;
        }
        Ok(self.presence.get(&actor.user_id))
    }

    /// Another user's presence, for users who share a room with them (and themself).
    ///
    /// # Errors
    /// `404 not_found` for anyone else, as for an unknown user.
    pub async fn presence_of(&self, actor: &Actor, user_id: &str) -> AppResult<PresenceInfo> {
        if user_id != actor.user_id
            && !self
                .store
                .rooms
                .share_a_room(&actor.user_id, user_id)
                .await?
        {
            return Err(AppError::not_found("user"));
        }
        Ok(self.presence.get(user_id))
    }

    /// Relays a typing notice to the room's other members: `active: true` at most once per
    /// 2 s per user and room (the others are dropped silently and succeed), `active:
    /// false` always. Never stored. Every notice relayed counts against
    /// `user_limits.typing`, so alternating `active` cannot relay more than that limit.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`; `429 rate_limited` (`user_limits.typing`; the
    /// notice is not relayed).
    pub async fn typing(&self, actor: &Actor, room_id: &str, active: bool) -> AppResult<()> {
        self.require_member(actor, room_id).await?;
        if active && !self.typing_allowed(&actor.user_id, room_id) {
            return Ok(());
        }
        self.user_limits.hit(&actor.user_id, Action::Typing).await?;
        if !active {
            // A stop ends the throttle window: the next start is news again.
            self.typing_last
                .lock()
                .expect("typing lock poisoned")
                .remove(&(actor.user_id.clone(), room_id.to_owned()));
        }
        let event = Event::Typing(Typing {
            room_id: room_id.to_owned(),
            active,
            user_id: Some(actor.user_id.clone()),
            expires_in_ms: Some(TYPING_EXPIRES.as_millis() as u64),
        });
        self.publish(
            Envelope::room(room_id, event)
                .ephemeral()
                .skip_user(&actor.user_id),
        )
        .await;
        Ok(())
    }

    /// Whether a `typing: true` from `user_id` in `room_id` passes the throttle now.
    fn typing_allowed(&self, user_id: &str, room_id: &str) -> bool {
        let now = Instant::now();
        let mut last = self.typing_last.lock().expect("typing lock poisoned");
        if last.len() > 10_000 {
            last.retain(|_, at| now.duration_since(*at) < TYPING_THROTTLE);
        }
        let key = (user_id.to_owned(), room_id.to_owned());
        match last.get(&key) {
            Some(at) if now.duration_since(*at) < TYPING_THROTTLE => false,
            _ => {
                last.insert(key, now);
                true
            }
        }
    }

    /// Sends `info` to every user who shares a room with its subject, once each (the
    /// subject learns their own state from the `presence.set` reply).
    async fn announce_presence(&self, info: PresenceInfo) {
        let subject = info.user_id.clone();
        let recipients = match self.store.rooms.co_members(&subject).await {
            Ok(users) => users,
            Err(e) => {
                tracing::error!(error = %e, "listing who shares a room, for presence");
                return;
            }
        };
        if recipients.is_empty() {
            return;
        }
        // One envelope for every recipient: encoded once per wire format, not per user.
        let topic = Topic::Users(recipients.into());
        self.publish(Envelope::new(topic, Event::PresenceUpdated(info)).ephemeral())
            .await;
    }
}
