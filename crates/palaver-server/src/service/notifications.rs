//! Notifications (`docs/notifications.md`): a member's settings per room, the caller's Web
//! Push subscriptions, and [`Service::notify_message`], which hands a committed message
//! to [`crate::push`].

use std::sync::Arc;

use palaver_protocol::notifications::{
    CreatePushSubscription, NotificationLevel as WireLevel, NotificationSettings, PushSubscription,
    PushSubscriptions, UpdateNotificationSettings, VapidPublicKey,
};
use palaver_protocol::{ErrorCode, Message};

use super::{new_id, now_rfc3339, parse_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::push::Pusher;
use crate::store::{NotificationLevel, NotificationSettingsRow, PushSubscriptionRow, StoreError};

/// Longest `User-Agent` kept with a subscription, in characters.
const USER_AGENT_CHARS: usize = 256;

fn level_to_wire(level: NotificationLevel) -> WireLevel {
    match level {
        NotificationLevel::All => WireLevel::All,
        NotificationLevel::Mentions => WireLevel::Mentions,
        NotificationLevel::None => WireLevel::None,
    }
}

fn level_from_wire(level: WireLevel) -> NotificationLevel {
    match level {
        WireLevel::All => NotificationLevel::All,
        WireLevel::Mentions => NotificationLevel::Mentions,
        WireLevel::None => NotificationLevel::None,
    }
}

fn subscription_to_wire(row: PushSubscriptionRow) -> PushSubscription {
    PushSubscription {
        id: row.id,
        endpoint: row.endpoint,
        user_agent: row.user_agent,
        created_at: row.created_at,
    }
}

/// What [`Service::notify_message`] hands over, to call once the message is committed
/// (see [`Service::notify_hook`]).
pub(crate) struct NotifyHook {
    pusher: Arc<Pusher>,
    mentioned: Vec<String>,
}

impl NotifyHook {
    /// Queues `message` for Web Push (never waits).
    pub(crate) fn fire(self, message: &Message) {
        self.pusher.notify(message, self.mentioned);
    }
}

impl Service {
    /// Delivers Web Push through `pusher` (`[push]`, see [`crate::push`]).
    pub fn with_pusher(mut self, pusher: Arc<Pusher>) -> Self {
        self.push = Some(pusher);
        self
    }

    /// At shutdown: waits up to `within` for the pushes queued and in flight.
    pub async fn close_push(&self, within: std::time::Duration) {
        if let Some(pusher) = &self.push {
            pusher.close(within).await;
        }
    }

    /// After a message is committed (new, not a retried `client_id`): queues Web Push to
    /// the members it concerns, the other member of a DM and `mentioned` (user ids; the
    /// mention parser's result, members or not), each unless their settings for the room
    /// or an open socket say otherwise (see [`crate::push`]). Never waits and never
    /// fails: the send is answered whatever happens here.
    pub fn notify_message(&self, room_id: &str, message: &Message, mentioned: Vec<String>) {
        if let Some(hook) = self.notify_hook(room_id, mentioned) {
            hook.fire(message);
        }
    }

    /// What [`notify_message`](Self::notify_message) does, to carry into the task that
    /// waits for the commit; `None` when there is nothing to do: push is off, or a room
    /// known to be a group room and no mention (plain room messages are never pushed).
    pub(crate) fn notify_hook(&self, room_id: &str, mentioned: Vec<String>) -> Option<NotifyHook> {
        let pusher = self.push.clone()?;
        if mentioned.is_empty() && self.is_known_group_room(room_id) {
            return None;
        }
        Some(NotifyHook { pusher, mentioned })
    }

    /// The caller's notification settings for a room they are a member of.
    ///
    /// # Errors
    /// `404 not_found` when the room does not exist or the caller is not a member.
    pub async fn notification_settings(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> AppResult<NotificationSettings> {
        self.require_membership_or_404(actor, room_id).await?;
        let row = self
            .store
            .notifications
            .notification_settings(room_id, &actor.user_id)
            .await?;
        Ok(NotificationSettings {
            room_id: room_id.to_owned(),
            level: row
                .as_ref()
                .map_or(WireLevel::All, |r| level_to_wire(r.level)),
            muted_until: row.and_then(|r| r.muted_until),
        })
    }

    /// Replaces the caller's notification settings for a room they are a member of.
    ///
    /// # Errors
    /// `422 validation_failed` (`muted_until` not an RFC 3339 time); `404 not_found` when
    /// the room does not exist or the caller is not a member.
    pub async fn set_notification_settings(
        &self,
        actor: &Actor,
        room_id: &str,
        update: UpdateNotificationSettings,
    ) -> AppResult<NotificationSettings> {
        let muted_until = match update.muted_until.as_deref() {
            None => None,
            Some(raw) => Some(parse_rfc3339(raw).ok_or_else(|| {
                AppError::validation(
                    "muted_until",
                    "muted_until must be an RFC 3339 time, e.g. 2026-12-01T08:00:00Z",
                )
            })?),
        };
        self.require_membership_or_404(actor, room_id).await?;
        let row = NotificationSettingsRow {
            room_id: room_id.to_owned(),
            user_id: actor.user_id.clone(),
            level: level_from_wire(update.level),
            muted_until,
            updated_at: now_rfc3339(),
        };
        self.store
            .notifications
            .set_notification_settings(&row)
            .await
            .map_err(|e| match e {
                // Left the room meanwhile.
                StoreError::NotFound => AppError::not_found("room"),
                e => e.into(),
            })?;
        Ok(NotificationSettings {
            room_id: row.room_id,
            level: update.level,
            muted_until: row.muted_until,
        })
    }

    /// `404 not_found` unless the caller is a member of `room_id` (settings are private
    /// to members: a non-member learns nothing, not even that the room exists).
    async fn require_membership_or_404(&self, actor: &Actor, room_id: &str) -> AppResult<()> {
        match self.store.rooms.member(room_id, &actor.user_id).await? {
            Some(_) => Ok(()),
            None => Err(AppError::not_found("room")),
        }
    }

    /// The pusher, or `409 push_disabled`.
    fn pusher(&self) -> AppResult<&Arc<Pusher>> {
        self.push.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorCode::PushDisabled,
                "Web Push is turned off on this server",
            )
        })
    }

    /// The VAPID public key browsers subscribe with.
    ///
    /// # Errors
    /// `409 push_disabled`.
    pub fn vapid_public_key(&self, _actor: &Actor) -> AppResult<VapidPublicKey> {
        Ok(VapidPublicKey {
            public_key: self.pusher()?.public_key(),
        })
    }

    /// Subscribes a browser of the caller (its `PushSubscription.toJSON()`), idempotently
    /// per endpoint; tied to the caller's session when they use one (it stops getting
    /// pushes once the session ends). Only the newest `push.max_subscriptions_per_user`
    /// are kept. Returns the subscription and whether it is new to the caller.
    ///
    /// # Errors
    /// `409 push_disabled`; `422 validation_failed`: `endpoint` (not an `https://` URL
    /// with a domain name), `keys.p256dh` (not a base64url uncompressed P-256 point),
    /// `keys.auth` (not 16 bytes of base64url).
    pub async fn create_push_subscription(
        &self,
        actor: &Actor,
        request: CreatePushSubscription,
        user_agent: Option<&str>,
    ) -> AppResult<(PushSubscription, bool)> {
        let pusher = self.pusher()?;
        // Stored as the browser gave it (it compares its own with ours), once checked.
        crate::push::check_endpoint(&request.endpoint, pusher.allows_loopback_http())
            .map_err(|why| AppError::validation("endpoint", why))?;
        let (p256dh, auth) = crate::push::check_keys(&request.keys.p256dh, &request.keys.auth)
            .map_err(|(field, why)| AppError::validation(field, why))?;
        let row = PushSubscriptionRow {
            id: new_id(),
            user_id: actor.user_id.clone(),
            session_id: actor.credential.session_id().map(str::to_owned),
            endpoint: request.endpoint,
            p256dh,
            auth,
            user_agent: user_agent.map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(USER_AGENT_CHARS)
                    .collect()
            }),
            created_at: now_rfc3339(),
        };
        let (stored, new) = self
            .store
            .notifications
            .save_push_subscription(&row, pusher.max_subscriptions())
            .await
            .map_err(|e| match e {
                // The session ended (or the account went) meanwhile.
                StoreError::NotFound => AppError::unauthorized("the session has ended"),
                e => e.into(),
            })?;
        Ok((subscription_to_wire(stored), new))
    }

    /// The caller's push subscriptions, oldest first.
    ///
    /// # Errors
    /// `409 push_disabled`.
    pub async fn push_subscriptions(&self, actor: &Actor) -> AppResult<PushSubscriptions> {
        self.pusher()?;
        let rows = self
            .store
            .notifications
            .push_subscriptions(&actor.user_id)
            .await?;
        Ok(PushSubscriptions {
            subscriptions: rows.into_iter().map(subscription_to_wire).collect(),
        })
    }

    /// Deletes one of the caller's push subscriptions (the browser unsubscribed, or the
    /// user signs a device out of notifications).
    ///
    /// # Errors
    /// `404 not_found` when the caller has no subscription with that id. Works with push
    /// turned off too, so that nothing is left behind.
    pub async fn delete_push_subscription(&self, actor: &Actor, id: &str) -> AppResult<()> {
        if self
            .store
            .notifications
            .delete_push_subscription(&actor.user_id, id)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::not_found("push subscription"))
        }
    }
}
