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
//! With `redis_url` the calls live in Redis instead ([`crate::signaling::shared`]), where
//! every node reads and changes them, and Redis publishes each change's events; the
//! service then only stores the call log entries (and every request may also fail with
//! `503 unavailable` while Redis does not answer). Call log entries are `call` messages
//! stored through the same group commit as chat messages ([`Service::queue_message`]).
//!
//! A background task per node ([`spawn_ring_timer`]) times out ringing and, with shared
//! calls, records this node's heartbeat and takes the participants of dead nodes out of
//! their calls. Several deployments may share one Redis (they use distinct databases):
//! a node acts on a call in the background only if the call's room is in its own
//! database, so it never writes another deployment's call log.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use palaver_protocol::rest::IceServers;
use palaver_protocol::ws::{CallJoined, IceCandidate, SendSignal, SessionDescription, StartCall};
use palaver_protocol::{ErrorCode, MessageType};

use super::rooms::forbidden;
use super::user_limits::Action;
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Topic};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::signaling::{
    self, CallError, Calls, Done, Effect, EndBy, Joiner, LogEntry, Moment, NewCall, SharedRegistry,
    Target,
};
use crate::store::NewMessage;

/// How often ringing deadlines are checked.
const RING_CHECK_EVERY: Duration = Duration::from_millis(200);
/// With shared calls: every this many ring checks, the node records its heartbeat and
/// looks for dead nodes (every 2 s, well within [`signaling::shared::NODE_LEASE_MS`]).
const NODE_CHECK_TICKS: u64 = 10;
/// The most due ring deadlines handled per check.
const DUE_PER_CHECK: usize = 1_000;
/// The most call ids remembered as another deployment's (see [`Sweep`]).
const FOREIGN_KEPT: usize = 10_000;

impl Service {
    /// `call.start`: starts a call in a room (or in the DM with `user_id`, opened if
    /// needed) with the calling connection as its first participant and host, and rings
    /// the invited members (default: every other member) on all their connections.
    ///
    /// # Errors
    /// `422 validation_failed` (`room_id` and `user_id` both or neither, `invite` not
    /// other members, `user_id` oneself, `offer` not an SDP offer or over
    /// `rtc.max_sdp_bytes`); `404 not_found`; `403 not_member`;
    /// `403 forbidden` (a DM whose other member blocked the caller); `409 conflict` (a
    /// call is going on in the room, or this connection is in a call); `429 rate_limited`
    /// (`user_limits.call_starts`, counting the calls this user started).
    pub async fn start_call(
        &self,
        actor: &Actor,
        conn: ConnId,
        req: StartCall,
    ) -> AppResult<CallJoined> {
        if let Some(offer) = &req.offer {
            if offer.kind != palaver_protocol::ws::SdpType::Offer {
                return Err(AppError::validation(
                    "offer.type",
                    "offer must be an SDP offer",
                ));
            }
            if offer.sdp.len() > self.rtc.max_sdp_bytes {
                return Err(AppError::validation(
                    "offer.sdp",
                    format!("offer.sdp must be at most {} bytes", self.rtc.max_sdp_bytes),
                ));
            }
        }
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
            room_id: room_id.clone(),
            kind: req.kind,
            host: Joiner {
                participant_id: new_id(),
                user_id: actor.user_id.clone(),
                username: me.username,
                conn,
            },
            ringing,
            ring_for: Duration::from_secs(self.rtc.ring_timeout_secs),
            offer: req.offer,
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
        let admitted = AtomicBool::new(false);
        let now = moment();
        let admit = || {
            admitted.store(true, Ordering::Relaxed);
            hit.clone().map_err(StartRefused::Limit)
        };
        let mut started = self.calls.start(new.clone(), &now, admit).await;
        // With shared calls, the room's call may be left over from nodes that are all
        // gone: end it, and start once more.
        if let (Err(StartRefused::Call(CallError::RoomBusy { call_id })), Calls::Shared(shared)) =
            (&started, &self.calls)
        {
            if let Ok(Some(logs)) = shared.end_if_orphaned(call_id, &now).await {
                self.apply(Done::Logs(logs)).await;
                started = self.calls.start(new, &now, admit).await;
            }
        }
        if counted && !admitted.load(Ordering::Relaxed) {
            self.user_limits
                .unhit(&actor.user_id, Action::CallStart)
                .await;
        }
        let (joined, done) = started.map_err(|refused| match refused {
            StartRefused::Call(e) => AppError::from(e),
            StartRefused::Limit(e) => e,
        })?;
        self.apply(done).await;
        self.still_member(actor, &room_id).await?;
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
        let (room_id, users) = self.calls.room_and_users(call_id).await?;
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
        let (reply, done) = self
            .calls
            .accept(call_id, joiner, self.rtc.max_participants, &moment())
            .await?;
        self.apply(done).await;
        self.still_member(actor, &room_id).await?;
        Ok(reply)
    }

    /// Register first, then check: the membership checked before joining a call may be
    /// stale by the time the join is made (a kick, ban or leave committed meanwhile took
    /// the user out of a call they were not in yet). Checked again once joined: a user no
    /// longer a member leaves the room's call at once (`reason: "removed"`), and the
    /// request fails with `404 not_found`.
    async fn still_member(&self, actor: &Actor, room_id: &str) -> AppResult<()> {
        let member = self
            .store
            .rooms
            .room_and_member(room_id, &actor.user_id)
            .await?;
        if matches!(member, Some((_, Some(_)))) {
            return Ok(());
        }
        self.member_left_calls(room_id, &actor.user_id).await;
        Err(AppError::not_found("call"))
    }

    /// `call.decline`: a user being rung declines. All their connections stop ringing,
    /// and the participants hear `call.declined`. When nobody has answered and every user
    /// rung has declined, the call ends as `declined`.
    ///
    /// # Errors
    /// `404 not_found` (no such call, or not a member of its room); `409 conflict` (not
    /// being rung now).
    pub async fn decline_call(&self, actor: &Actor, conn: ConnId, call_id: &str) -> AppResult<()> {
        let room_id = self.calls.room_of(call_id).await?;
        self.call_member(actor, &room_id).await?;
        let done = self
            .calls
            .decline(call_id, &actor.user_id, conn, &moment())
            .await?;
        self.apply(done).await;
        Ok(())
    }

    /// `call.leave`: the calling connection leaves its call (see
    /// [`signaling::Call::leave`]).
    ///
    /// # Errors
    /// `404 not_found` unless this connection is a participant of `call_id`.
    pub async fn leave_call(&self, conn: ConnId, call_id: &str) -> AppResult<()> {
        let done = self.calls.leave(call_id, conn, &moment()).await?;
        self.apply(done).await;
        Ok(())
    }

    /// `call.end`: the host, or an owner or admin of the room, ends the call for everyone
    /// (`call.ended`, `reason: "ended"`).
    ///
    /// # Errors
    /// `404 not_found` (no such call, or not a member of its room); `403 forbidden`
    /// (neither the host nor a moderator of the room).
    pub async fn end_call(&self, actor: &Actor, conn: ConnId, call_id: &str) -> AppResult<()> {
        let done = match self
            .calls
            .end(call_id, EndBy::Connection(conn), &moment())
            .await
        {
            Err(CallError::NotHost) => {
                let room_id = self.calls.room_of(call_id).await?;
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
                self.calls.end(call_id, EndBy::Moderator, &moment()).await?
            }
            other => other?,
        };
        self.apply(done).await;
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
        let to_user = self
            .calls
            .signal_recipient(conn, &req.call_id, &req.to)
            .await?;
        if to_user != actor.user_id && self.is_blocked(&to_user, &actor.user_id).await? {
            return Err(forbidden("this participant has blocked you"));
        }
        // Both may have left meanwhile: the registry looks again.
        let done = self.calls.relay(conn, req).await?;
        self.apply(done).await;
        Ok(())
    }

    /// An SDP description or ICE candidate from the calling connection to every other
    /// participant of its call whose user is `to_user` (normally one: the device that
    /// answered), for protocols that address peers by user (Socket.IO's `webrtc_offer`,
    /// `webrtc_answer`, `ice_candidate`). Each gets the same `rtc.signal` event as from
    /// [`Service::relay_signal`]. `call_id: None` is the call this connection takes part
    /// in. Returns the call's id.
    ///
    /// # Errors
    /// `422 validation_failed` (not exactly one of `description` and `candidate`, sizes,
    /// as [`Service::relay_signal`]; `to_user` the caller: field `to_user`);
    /// `404 not_found` (this connection is in no call, or not in `call_id`; `to_user` has
    /// no participant in it: field `to_user`); `403 forbidden` (`to_user` blocked the
    /// caller); `503 unavailable` (shared calls, Redis not answering).
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn relay_signal_to_user(
        &self,
        actor: &Actor,
        conn: ConnId,
        call_id: Option<&str>,
        to_user: &str,
        description: Option<SessionDescription>,
        candidate: Option<IceCandidate>,
    ) -> AppResult<String> {
        let mut signal = SendSignal {
            call_id: String::new(),
            to: String::new(),
            description,
            candidate,
        };
        signaling::relay::check(&signal, self.rtc.max_sdp_bytes)?;
        if to_user == actor.user_id {
            return Err(AppError::validation(
                "to_user",
                "to_user must be another user",
            ));
        }
        let call_id = self.call_of_connection(conn, call_id).await?;
        let recipients = self
            .calls
            .participants_of_user(conn, &call_id, to_user)
            .await?;
        if recipients.is_empty() {
            return Err(no_participant());
        }
        if self.is_blocked(to_user, &actor.user_id).await? {
            return Err(forbidden("this participant has blocked you"));
        }
        signal.call_id.clone_from(&call_id);
        let mut relayed = false;
        for to in recipients {
            signal.to = to;
            // Each is checked again against the call as it is now.
            match self.calls.relay(conn, signal.clone()).await {
                Ok(done) => {
                    self.apply(done).await;
                    relayed = true;
                }
                // That device left meanwhile.
                Err(CallError::NoSuchParticipant) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !relayed {
            return Err(no_participant());
        }
        Ok(call_id)
    }

    /// Hangs up (Socket.IO's `end_call`): when the calling connection hosts its call, or
    /// the call has only one other participant and nobody is being rung, the call ends
    /// for everyone (`call.ended`, `reason: "ended"`, as [`Service::end_call`]); otherwise
    /// the connection leaves it (as [`Service::leave_call`]) and the call goes on.
    /// `call_id: None` is the call this connection takes part in.
    ///
    /// # Errors
    /// `404 not_found` (this connection is in no call, or not in `call_id`);
    /// `503 unavailable` (shared calls, Redis not answering).
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn hang_up(
        &self,
        actor: &Actor,
        conn: ConnId,
        call_id: Option<&str>,
    ) -> AppResult<()> {
        let call_id = self.call_of_connection(conn, call_id).await?;
        let done = self.calls.hang_up(&call_id, conn, &moment()).await?;
        self.apply(done).await;
        Ok(())
    }

    /// `call_id` if given (the registry then checks that `conn` takes part in it), else
    /// the call `conn` takes part in.
    ///
    /// # Errors
    /// `404 not_found` when `call_id` is `None` and `conn` is in no call;
    /// `503 unavailable`.
    async fn call_of_connection(&self, conn: ConnId, call_id: Option<&str>) -> AppResult<String> {
        match call_id {
            Some(call_id) => Ok(call_id.to_owned()),
            None => self
                .calls
                .call_of(conn)
                .await?
                .ok_or_else(|| AppError::not_found("call")),
        }
    }

    /// A connection closed: it leaves its call (`reason: "disconnected"`).
    pub async fn connection_left_calls(&self, conn: ConnId) {
        if let Some(done) = self.calls.disconnect(conn, &moment()).await {
            self.apply(done).await;
        }
    }

    /// `user_id` is no longer a member of `room_id` (left, kicked or banned): their
    /// connections leave the room's call (`reason: "removed"`) and stop ringing.
    pub(crate) async fn member_left_calls(&self, room_id: &str, user_id: &str) {
        if let Some(done) = self.calls.remove_user(room_id, user_id, &moment()).await {
            self.apply(done).await;
        }
    }

    /// The room was deleted: its call ends (`reason: "room_closed"`).
    pub(crate) async fn room_closed_calls(&self, room_id: &str) {
        if let Some(done) = self.calls.close_room(room_id, &moment()).await {
            self.apply(done).await;
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

    /// Carries out what a change left to do. A local batch, once the call's earlier
    /// batches are carried out (so every participant sees one call's events in the order
    /// of its changes): publishes each event to its target, and queues each call log
    /// entry, in order; the one place where a local call's effects become broker
    /// envelopes. A broker failure is logged: the change is made, and a client that
    /// missed an event learns the state from later ones. For shared calls (whose events
    /// Redis published with the change), queues the call log entries in order.
    async fn apply(&self, done: Done) {
        let batch = match done {
            Done::Batch(batch) => batch,
            Done::Logs(logs) => {
                for entry in logs {
                    self.store_call_log(entry).await;
                }
                return;
            }
        };
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
            mentions: Default::default(),
            mentioned: Vec::new(),
        };
        match self.queue_message(new, None, Vec::new()).await {
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

/// `404 not_found` naming `to_user`: the user has no (other) participant in the call.
fn no_participant() -> AppError {
    AppError {
        field: Some("to_user".into()),
        ..AppError::not_found("participant")
    }
}

/// Why a call start was refused: by the registry, or by the rate limit.
enum StartRefused {
    Call(CallError),
    Limit(AppError),
}

impl From<CallError> for StartRefused {
    fn from(e: CallError) -> Self {
        StartRefused::Call(e)
    }
}

/// Now, for the registry: Unix milliseconds and the RFC 3339 form of the same instant.
fn moment() -> Moment {
    let now = time::OffsetDateTime::now_utc();
    Moment {
        at: i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX),
        rfc3339: super::rfc3339(now),
    }
}

/// What the background task of a node with shared calls remembers between checks: the
/// calls (and dead nodes) found to belong to another deployment on the same Redis (their
/// room is not in this node's database), so that it does not look them up again.
#[derive(Default)]
struct Sweep {
    foreign_calls: HashSet<String>,
    /// Dead nodes whose every remaining call is another deployment's.
    foreign_nodes: HashSet<u32>,
}

impl Sweep {
    fn remember_foreign(&mut self, call_id: &str) {
        if self.foreign_calls.len() >= FOREIGN_KEPT {
            self.foreign_calls.clear();
            self.foreign_nodes.clear();
        }
        self.foreign_calls.insert(call_id.to_owned());
    }
}

/// Times out ringing every [`RING_CHECK_EVERY`] until the service is dropped; with shared
/// calls, also records this node's heartbeat and clears dead nodes' participants every
/// [`NODE_CHECK_TICKS`] checks.
pub(crate) async fn expire_ringing(service: Weak<Service>) {
    let mut tick = tokio::time::interval(RING_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sweep = Sweep::default();
    for n in 0_u64.. {
        tick.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        match &service.calls {
            Calls::Local(registry) => {
                for batch in registry.expire_ringing(&moment()) {
                    service.apply(Done::Batch(batch)).await;
                }
            }
            Calls::Shared(shared) => {
                service.time_out_shared_ringing(shared, &mut sweep).await;
                if n % NODE_CHECK_TICKS == 0 {
                    shared.heartbeat(moment().at).await;
                    service.clear_dead_nodes(shared, &mut sweep).await;
                }
            }
        }
    }
}

impl Service {
    /// Shared calls: the calls of this deployment whose ring deadline has passed time
    /// out (once, whichever node gets there first).
    async fn time_out_shared_ringing(&self, shared: &SharedRegistry, sweep: &mut Sweep) {
        let now = moment();
        let Ok(due) = shared.due_calls(now.at, DUE_PER_CHECK).await else {
            return;
        };
        for call_id in due {
            if sweep.foreign_calls.contains(&call_id) {
                continue;
            }
            match self.is_ours(shared, &call_id).await {
                Some(true) => {}
                Some(false) => {
                    sweep.remember_foreign(&call_id);
                    continue;
                }
                None => {
                    shared.forget_deadline(&call_id).await;
                    continue;
                }
            }
            if let Ok(logs) = shared.ring_timeout(&call_id, &now).await {
                self.apply(Done::Logs(logs)).await;
            }
        }
    }

    /// Shared calls: the participants of nodes not heard from for the lease leave their
    /// calls of this deployment (`disconnected`); a dead node with no call left is
    /// forgotten.
    async fn clear_dead_nodes(&self, shared: &SharedRegistry, sweep: &mut Sweep) {
        let now = moment();
        let Ok(dead) = shared.dead_nodes(now.at).await else {
            return;
        };
        for node in dead {
            if sweep.foreign_nodes.contains(&node) {
                continue;
            }
            let Ok(calls) = shared.calls_on_node(node).await else {
                return;
            };
            let mut all_foreign = true;
            for call_id in calls {
                if sweep.foreign_calls.contains(&call_id) {
                    continue;
                }
                if self.is_ours(shared, &call_id).await == Some(false) {
                    sweep.remember_foreign(&call_id);
                    continue;
                }
                all_foreign = false;
                match shared.leave_node(&call_id, node, &now).await {
                    Ok(logs) => self.apply(Done::Logs(logs)).await,
                    Err(e) => {
                        tracing::warn!(node, call_id, error = %e, "clearing a dead node's call");
                    }
                }
            }
            if shared.forget_node(node, now.at).await {
                tracing::info!(node, "a dead node's calls were cleared");
            } else if all_foreign {
                sweep.foreign_nodes.insert(node);
            }
        }
    }

    /// Whether shared call `call_id` belongs to this deployment (its room is in this
    /// node's database); `None` when the call no longer exists. A failure to tell counts
    /// as ours (the change is then tried, and fails harmlessly).
    async fn is_ours(&self, shared: &SharedRegistry, call_id: &str) -> Option<bool> {
        let call = match shared.call(call_id).await {
            Ok(call) => call,
            Err(CallError::NotFound) => return None,
            Err(_) => return Some(true),
        };
        match self.store.rooms.room_by_id(call.room_id()).await {
            Ok(room) => Some(room.is_some()),
            Err(_) => Some(true),
        }
    }
}

/// Starts [`expire_ringing`] for `service`.
pub(crate) fn spawn_ring_timer(service: &Arc<Service>) {
    tokio::spawn(expire_ringing(Arc::downgrade(service)));
}
