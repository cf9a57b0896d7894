//! Ephemeral state: presence (online, away, dnd, offline/invisible, status text, last
//! seen) and typing. Only `last_seen` is stored in the database (when a user's last
//! connection goes, see [`crate::presence`]). Both go only to users who share a room with
//! the subject (presence) or to the room's other members (typing).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use palaver_protocol::ws::{Event, PresenceInfo, PresenceStatus, SetPresence, Typing};
use tokio::task::JoinHandle;

use super::user_limits::Action;
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Topic};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::presence::Change;

/// How long a `typing: true` holds without another.
pub const TYPING_EXPIRES: Duration = Duration::from_secs(6);
/// At most one `typing: true` per user and room per this interval is relayed.
pub const TYPING_THROTTLE: Duration = Duration::from_secs(2);
/// Longest custom status text, in characters.
const STATUS_TEXT_MAX: usize = 100;
/// How long shutdown waits for a presence tick under way before abandoning it.
const KEEPER_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The task that runs [`crate::presence::Presence::tick`] (renewing this node's leases,
/// sweeping expired ones) and acts on what it finds; [`Service::keep_presence`] starts it
/// and its owner stops it with [`PresenceKeeper::stop`] before closing the store.
pub struct PresenceKeeper {
    /// Dropped to ask the task to stop.
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl PresenceKeeper {
    /// Stops the task: waits for a tick under way (at most 5 s, then abandons it).
    pub async fn stop(self) {
        drop(self.stop);
        let mut task = self.task;
        if tokio::time::timeout(KEEPER_STOP_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

impl Service {
    /// Connection `conn` of the caller opened; announces them online on their first one
    /// (cluster-wide with Redis).
    pub async fn connection_opened(&self, actor: &Actor, conn: ConnId) {
        if let Some(change) = self.presence.connected(&actor.user_id, conn).await {
            self.apply_presence(change).await;
        }
    }

    /// Connection `conn` of the caller closed; when it was their last (cluster-wide with
    /// Redis), stores their last seen time and announces them offline with it.
    pub async fn connection_closed(&self, actor: &Actor, conn: ConnId) {
        let at = now_rfc3339();
        if let Some(change) = self.presence.disconnected(&actor.user_id, conn, &at).await {
            self.apply_presence(change).await;
        }
    }

    /// Starts the task that keeps presence (see [`PresenceKeeper`]), if the presence
    /// needs one (with Redis: renewing leases and sweeping expired ones every
    /// `presence.lease_refresh_secs`).
    pub fn keep_presence(self: &Arc<Self>) -> Option<PresenceKeeper> {
        let every = self.presence.tick_every()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(keep_presence(Arc::downgrade(self), every, async move {
            let _ = (&mut stopped).await;
        }));
        Some(PresenceKeeper { stop, task })
    }

    /// Acts on a presence change: stores the last seen time of a user who went offline,
    /// then announces the change.
    pub(crate) async fn apply_presence(&self, change: Change) {
        if change.went_offline {
            if let Some(at) = change.info.last_seen.as_deref() {
                if let Err(e) = self
                    .store
                    .users
                    .set_last_seen(&change.info.user_id, at)
                    .await
                {
                    tracing::error!(error = %e, "storing a last seen time");
                }
            }
        }
        self.announce_presence(change.info).await;
    }

    /// What others see of `user_id` now, with the stored last seen time when the presence
    /// does not know one (after a restart).
    async fn visible_presence(&self, user_id: &str) -> PresenceInfo {
        let mut info = self.presence.get(user_id).await;
        self.fill_last_seen(&mut info).await;
        info
    }

    /// Fills `info.last_seen` from the store when it is unknown.
    async fn fill_last_seen(&self, info: &mut PresenceInfo) {
        if info.last_seen.is_some() {
            return;
        }
        match self.store.users.last_seen(&info.user_id).await {
            Ok(stored) => info.last_seen = stored,
            Err(e) => tracing::warn!(error = %e, "reading a last seen time"),
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
        if let Some(change) = self.presence.set(&actor.user_id, req.status, text).await {
            self.apply_presence(change).await;
        }
        Ok(self.visible_presence(&actor.user_id).await)
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
        Ok(self.visible_presence(user_id).await)
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
    /// subject learns their own state from the `presence.set` reply), with the stored last
    /// seen time if `info` has none.
    async fn announce_presence(&self, mut info: PresenceInfo) {
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
        self.fill_last_seen(&mut info).await;
        // One envelope for every recipient: encoded once per wire format, not per user.
        let topic = Topic::Users(recipients.into());
        self.publish(Envelope::new(topic, Event::PresenceUpdated(info)).ephemeral())
            .await;
    }
}

/// Runs the presence tick of `service` every `every` until `stop` completes or the
/// service is gone, acting on each change it returns.
async fn keep_presence(
    service: Weak<Service>,
    every: Duration,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick completes at once: the leases were just written.
    tick.tick().await;
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => {}
        }
        let Some(service) = service.upgrade() else {
            return;
        };
        for change in service.presence.tick().await {
            service.apply_presence(change).await;
        }
    }
}
