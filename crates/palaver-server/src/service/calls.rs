//! Calls: the service's side of WebRTC signaling (see `docs/protocol.md`, "Calls").
//!
//! The call state machine, the registry of this node's calls, the `rtc.signal` rules and
//! TURN credentials live in [`crate::signaling`], which knows nothing of the store or the
//! broker. Each request here:
//! 1. checks against the store what the rules need (membership, blocks, roles), before
//!    touching the registry;
//! 2. makes the change in the registry, which looks the call up again (it may have
//!    changed meanwhile) and returns the effects as a [`Batch`];
//! 3. carries the effects out with `Service::apply`, the one place where signaling
//!    effects become broker envelopes and call log messages, in the call's order.
//!
//! No lock is held across an `.await`: the registry locks each call only while changing
//! it (see [`crate::signaling::registry`] for how the order of publication is kept).
//! Call log entries are `call` messages stored through the same group commit as chat
//! messages ([`Service::queue_message`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use palaver_protocol::rest::IceServers;
use palaver_protocol::ws::{CallJoined, SendSignal, StartCall};
use palaver_protocol::{ErrorCode, MessageType};

use super::rooms::forbidden;
use super::user_limits::Action;
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Topic};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::signaling::{
    self, Batch, CallError, Effect, EndBy, Joiner, LogEntry, Moment, NewCall, Target,
};
use crate::store::NewMessage;

/// How often ringing deadlines are checked.
const RING_CHECK_EVERY: Duration = Duration::from_millis(200);

impl Service {
    /// `call.start`: starts a call in a room (or in the DM with `user_id`, opened if
    /// needed) with the calling connection as its first participant and host, and rings
    /// the invited members (default: every other member) on all their connections.
    ///
    /// # Errors
    /// `422 validation_failed` (`room_id` and `user_id` both or neither, `invite` not
    /// other members, `user_id` oneself); `404 not_found`; `403 not_member`;
    /// `403 forbidden` (a DM whose other member blocked the caller); `409 conflict` (a
    /// call is going on in the room, or this connection is in a call); `429 rate_limited`
    /// (`user_limits.call_starts`, counting the calls this user started).
    pub async fn start_call(
        &self,
        actor: &Actor,
        conn: ConnId,
        req: StartCall,
    ) -> AppResult<CallJoined> {
        let room_id = match (req.room_id, req.user_id) {
            (Some(room_id), None) => room_id,
            (None, Some(user_id)) => self.open_dm(actor, &user_id).await?.id,
            _ => {
                return Err(AppError::validation(
                    "room_id",
                    "give exactly one of room_id and user_id",
                ))
            }
        };
        let (room, me) = self.require_member(actor, &room_id).await?;
        self.check_dm_not_blocked(actor, &room).await?;
        let members = self.store.rooms.members(&room_id).await?;
        let invited: Vec<String> = match req.invite {
            Some(list) => {
                for user_id in &list {
                    if *user_id == actor.user_id || !members.iter().any(|m| m.user_id == *user_id) {
                        return Err(AppError::validation(
                            "invite",
                            "invite must list other members of the room",
                        ));
                    }
                }
                list
            }
            None => members
                .iter()
                .filter(|m| m.user_id != actor.user_id)
                .map(|m| m.user_id.clone())
                .collect(),
        };
        // Members who blocked the caller are not rung.
        let mut ringing = BTreeSet::new();
        for user_id in invited {
            if !self.is_blocked(&user_id, &actor.user_id).await? {
                ringing.insert(user_id);
            }
        }

        let new = NewCall {
            call_id: new_id(),
            room_id,
            kind: req.kind,
            host: Joiner {
                participant_id: new_id(),
                user_id: actor.user_id.clone(),
                username: me.username,
                conn,
            },
            ringing,
            ring_for: Duration::from_secs(self.rtc.ring_timeout_secs),
        };
        // The rate limit counts only starts that pass the registry's checks. It is asked
        // first (a shared limit is a Redis round trip, which cannot run under the
        // registry's lock) and refunded when the registry refuses the start; its refusal
        // still comes after the registry's own errors.
        let hit = self
            .user_limits
            .hit(&actor.user_id, Action::CallStart)
            .await;
        let counted = hit.is_ok();
        let admitted = std::cell::Cell::new(false);
        let started = self.calls.start(new, &moment(), || {
            admitted.set(true);
            hit
        });
        if counted && !admitted.get() {
            self.user_limits
                .unhit(&actor.user_id, Action::CallStart)
                .await;
        }
        let (joined, batch) = started?;
        self.apply(batch).await;
        Ok(joined)
    }

    /// `call.accept`: the calling connection joins the call (rung or not, as long as the
    /// user is a member of its room). The user's other connections stop ringing
    /// (`call.answered_elsewhere`); the other participants get
    /// `call.participant_joined`.
    ///
    /// # Errors
    /// `404 not_found` (no such call, or not a member of its room); `403 forbidden` (a
    /// participant blocked the caller); `409 conflict` (this connection is in a call);
    /// `409 call_full`.
    pub async fn accept_call(
        &self,
        actor: &Actor,
        conn: ConnId,
        call_id: &str,
    ) -> AppResult<CallJoined> {
        let (room_id, users) = self.calls.room_and_users(call_id)?;
        let username = self.call_member(actor, &room_id).await?;
        for user_id in users {
            if user_id != actor.user_id && self.is_blocked(&user_id, &actor.user_id).await? {
                return Err(forbidden("a participant of this call has blocked you"));
            }
        }
        let joiner = Joiner {
            participant_id: new_id(),
            user_id: actor.user_id.clone(),
            username,
            conn,
        };
        let (reply, batch) =
            self.calls
                .accept(call_id, joiner, self.rtc.max_participants, &moment())?;
        self.apply(batch).await;
        Ok(reply)
    }

    /// `call.decline`: a user being rung declines. All their connections stop ringing,
    /// and the participants hear `call.declined`. When nobody has answered and every user
    /// rung has declined, the call ends as `declined`.
    ///
    /// # Errors
    /// `404 not_found` (no such call, or not a member of its room); `409 conflict` (not
    /// being rung now).
    pub async fn decline_call(&self, actor: &Actor, conn: ConnId, call_id: &str) -> AppResult<()> {
        let room_id = self.calls.room_of(call_id)?;
        self.call_member(actor, &room_id).await?;
        let batch = self
            .calls
            .decline(call_id, &actor.user_id, conn, &moment())?;
        self.apply(batch).await;
        Ok(())
    }

    /// `call.leave`: the calling connection leaves its call (see
    /// [`signaling::Call::leave`]).
    ///
    /// # Errors
    /// `404 not_found` unless this connection is a participant of `call_id`.
    pub async fn leave_call(&self, conn: ConnId, call_id: &str) -> AppResult<()> {
        let batch = self.calls.leave(call_id, conn, &moment())?;
        self.apply(batch).await;
        Ok(())
    }

    /// `call.end`: the host, or an owner or admin of the room, ends the call for everyone
    /// (`call.ended`, `reason: "ended"`).
    ///
    /// # Errors
    /// `404 not_found` (no such call, or not a member of its room); `403 forbidden`
    /// (neither the host nor a moderator of the room).
    pub async fn end_call(&self, actor: &Actor, conn: ConnId, call_id: &str) -> AppResult<()> {
        let batch = match self.calls.end(call_id, EndBy::Connection(conn), &moment()) {
            Err(CallError::NotHost) => {
                let room_id = self.calls.room_of(call_id)?;
                let role = match self.require_member(actor, &room_id).await {
                    Ok((_, member)) => member.role,
                    Err(e) if e.code == ErrorCode::NotMember => {
                        return Err(AppError::not_found("call"))
                    }
                    Err(e) => return Err(e),
                };
                if !role.moderates() {
                    return Err(CallError::NotHost.into());
                }
                self.calls.end(call_id, EndBy::Moderator, &moment())?
            }
            other => other?,
        };
        self.apply(batch).await;
        Ok(())
    }

    /// `rtc.signal`: relays an SDP description or an ICE candidate from the calling
    /// connection to the participant `to` of the same call, and to no one else.
    ///
    /// # Errors
    /// `422 validation_failed` (not exactly one of `description` and `candidate`, sizes,
    /// `to` oneself); `404 not_found` (this connection is not in `call_id`, or `to` is not
    /// a participant of it); `403 forbidden` (`to`'s user blocked the caller).
    pub async fn relay_signal(
        &self,
        actor: &Actor,
        conn: ConnId,
        req: SendSignal,
    ) -> AppResult<()> {
        signaling::relay::check(&req, self.rtc.max_sdp_bytes)?;
        let to_user = self.calls.signal_recipient(conn, &req.call_id, &req.to)?;
        if to_user != actor.user_id && self.is_blocked(&to_user, &actor.user_id).await? {
            return Err(forbidden("this participant has blocked you"));
        }
        // Both may have left meanwhile: the registry looks again.
        let batch = self.calls.relay(conn, req)?;
        self.apply(batch).await;
        Ok(())
    }

    /// A connection closed: it leaves its call (`reason: "disconnected"`).
    pub async fn connection_left_calls(&self, conn: ConnId) {
        if let Some(batch) = self.calls.disconnect(conn, &moment()) {
            self.apply(batch).await;
        }
    }

    /// `user_id` is no longer a member of `room_id` (left, kicked or banned): their
    /// connections leave the room's call (`reason: "removed"`) and stop ringing.
    pub(crate) async fn member_left_calls(&self, room_id: &str, user_id: &str) {
        if let Some(batch) = self.calls.remove_user(room_id, user_id, &moment()) {
            self.apply(batch).await;
        }
    }

    /// The room was deleted: its call ends (`reason: "room_closed"`).
    pub(crate) async fn room_closed_calls(&self, room_id: &str) {
        if let Some(batch) = self.calls.close_room(room_id, &moment()) {
            self.apply(batch).await;
        }
    }

    /// `GET /api/v1/rtc/ice-servers`: the configured STUN servers, and the TURN servers
    /// with credentials for the caller valid `rtc.turn_ttl_secs`, in the shared-secret
    /// scheme of coturn's `use-auth-secret` (draft-uberti-behave-turn-rest-00): username
    /// `<expiry unix seconds>:<user_id>`, credential base64(HMAC-SHA1(secret, username)).
    /// See [`signaling::turn`].
    pub fn ice_servers(&self, actor: &Actor) -> IceServers {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        signaling::turn::ice_servers(&self.rtc, &actor.user_id, now)
    }

    /// The caller's username in `room_id`, for a request about a call in it.
    ///
    /// # Errors
    /// `404 not_found` when the caller is not a member: the call is invisible to them.
    async fn call_member(&self, actor: &Actor, room_id: &str) -> AppResult<String> {
        match self.require_member(actor, room_id).await {
            Ok((_, member)) => Ok(member.username),
            Err(e) if e.code == ErrorCode::NotMember => Err(AppError::not_found("call")),
            Err(e) => Err(e),
        }
    }

    /// Carries out `batch` once the call's earlier batches are carried out (so every
    /// participant sees one call's events in the order of its changes): publishes each
    /// event to its target, and queues each call log entry, in order. The one place where
    /// signaling effects become broker envelopes. A broker failure is logged: the change
    /// is made, and a client that missed an event learns the state from later ones.
    async fn apply(&self, batch: Batch) {
        let (effects, turn) = batch.in_turn().await;
        for effect in effects {
            match effect {
                Effect::Publish {
                    target,
                    event,
                    skip_conn,
                } => {
                    let topic = match target {
                        Target::Connection(conn) => Topic::Connection(conn),
                        Target::User(user_id) => Topic::User(user_id),
                        Target::Room(room_id) => Topic::Room(room_id),
                    };
                    let envelope = Envelope {
                        topic,
                        event,
                        seq: None,
                        membership: None,
                        ephemeral: false,
                        skip_user: None,
                        skip_conn,
                    };
                    self.publish(envelope).await;
                }
                Effect::Log(entry) => self.store_call_log(entry).await,
            }
        }
        drop(turn);
    }

    /// Queues a call log message; a failure (the room or the caller gone) is logged.
    async fn store_call_log(&self, entry: LogEntry) {
        let new = NewMessage {
            id: new_id(),
            content: entry.content(),
            room_id: entry.room_id,
            sender_id: entry.caller.id,
            client_id: None,
            created_at: now_rfc3339(),
            message_type: MessageType::Call,
            reply_to: None,
            attachment_id: None,
            call: Some(entry.log),
            member_only: false,
        };
        match self.queue_message(new, None).await {
            Ok(stored) => {
                tokio::spawn(async move {
                    if let Err(e) = stored.await {
                        tracing::warn!(code = %e.code, "storing a call log entry");
                    }
                });
            }
            Err(e) => tracing::warn!(code = %e.code, "queueing a call log entry"),
        }
    }
}

/// Now, for the registry: a monotonic instant and its RFC 3339 form.
fn moment() -> Moment {
    Moment {
        at: Instant::now(),
        rfc3339: now_rfc3339(),
    }
}

/// Times out ringing every [`RING_CHECK_EVERY`] until the service is dropped.
pub(crate) async fn expire_ringing(service: Weak<Service>) {
    let mut tick = tokio::time::interval(RING_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        for batch in service.calls.expire_ringing(&moment()) {
            service.apply(batch).await;
        }
    }
}

/// Starts [`expire_ringing`] for `service`.
pub(crate) fn spawn_ring_timer(service: &Arc<Service>) {
    tokio::spawn(expire_ringing(Arc::downgrade(service)));
}
