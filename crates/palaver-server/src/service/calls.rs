//! Calls: WebRTC signaling for 1:1 and group calls, and TURN credentials (see
//! `docs/protocol.md`, "Calls").
//!
//! A call lives in a room, at most one per room. Its participants are connections
//! ([`ConnId`]) in join order; the first is the host. The registry lives in this node's
//! memory behind one async mutex. Every change is checked, applied and published under
//! it, so that:
//! - every participant sees the same order of joins, leaves and host changes;
//! - no signal is relayed to or from a connection after it has left.
//!
//! Database reads (membership, blocks) happen before the lock is taken, and the call is
//! looked up again afterwards. Call log entries are `call` messages stored through the
//! same group commit as chat messages ([`Service::queue_message`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use palaver_protocol::rest::{IceServer, IceServers};
use palaver_protocol::ws::{
    CallDeclined, CallEnded, CallIncoming, CallInfo, CallJoined, CallRef, CallState, Event,
    HostChanged, Participant, ParticipantJoined, ParticipantLeft, SendSignal, Signal, StartCall,
};
use palaver_protocol::{CallKind, CallLog, CallLogEvent, ErrorCode, MessageSender, MessageType};
use tokio::time::Instant;

use super::rooms::forbidden;
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Topic};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::store::NewMessage;

/// How often ringing deadlines are checked.
const RING_CHECK_EVERY: Duration = Duration::from_millis(200);
/// Longest ICE candidate line relayed, bytes (RFC 8839 lines are far shorter).
const MAX_CANDIDATE_BYTES: usize = 1024;
/// Longest `sdpMid`, characters.
const MAX_SDP_MID_CHARS: usize = 64;
/// Longest `usernameFragment`, characters (RFC 8839 §5.4 allows 4–256).
const MAX_UFRAG_CHARS: usize = 256;

/// This node's calls, indexed by id, room and participant connection.
#[derive(Default)]
pub(crate) struct CallRegistry {
    calls: HashMap<String, Call>,
    /// Room id → the id of its call.
    by_room: HashMap<String, String>,
    /// Participant connection → the id of its call.
    by_conn: HashMap<ConnId, String>,
}

/// One call.
struct Call {
    id: String,
    room_id: String,
    kind: CallKind,
    /// The user who started it: the sender of its call log entries.
    caller: MessageSender,
    /// The host's participant id.
    host: String,
    started_at: String,
    /// When the users still ringing are told they missed it.
    ring_deadline: Instant,
    /// When someone other than the starter first joined: RFC 3339, and as an instant.
    answered: Option<(String, Instant)>,
    /// In join order.
    participants: Vec<Part>,
    /// Users being rung now.
    ringing: BTreeSet<String>,
    /// Every user rung, and those who declined.
    rung: HashSet<String>,
    declined: HashSet<String>,
}

/// A participant: one connection of one user.
struct Part {
    id: String,
    user_id: String,
    username: String,
    conn: ConnId,
    joined_at: String,
}

impl Part {
    fn to_wire(&self) -> Participant {
        Participant {
            participant_id: self.id.clone(),
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            joined_at: self.joined_at.clone(),
        }
    }
}

impl Call {
    fn info(&self) -> CallInfo {
        CallInfo {
            call_id: self.id.clone(),
            room_id: self.room_id.clone(),
            kind: self.kind,
            state: if self.answered.is_some() {
                CallState::Active
            } else {
                CallState::Ringing
            },
            host: self.host.clone(),
            started_at: self.started_at.clone(),
            answered_at: self.answered.as_ref().map(|(at, _)| at.clone()),
            participants: self.participants.iter().map(Part::to_wire).collect(),
            ringing: self.ringing.iter().cloned().collect(),
        }
    }

    fn part_by_conn(&self, conn: ConnId) -> Option<&Part> {
        self.participants.iter().find(|p| p.conn == conn)
    }

    fn log(&self, event: CallLogEvent, duration_secs: Option<u64>) -> CallLog {
        CallLog {
            call_id: self.id.clone(),
            kind: self.kind,
            event,
            duration_secs,
        }
    }

    /// Whole seconds since the answer, for an answered call.
    fn duration_secs(&self) -> Option<u64> {
        self.answered.as_ref().map(|(_, at)| at.elapsed().as_secs())
    }
}

/// What a change to the registry does outside it, in order: events to publish and call
/// log entries to store.
#[derive(Default)]
struct Outbox {
    items: Vec<Effect>,
}

enum Effect {
    Publish {
        topic: Topic,
        /// The event (shared by every participant it goes to).
        event: Arc<Event>,
        /// A connection of the topic that skips the event.
        skip_conn: Option<ConnId>,
    },
    Log {
        room_id: String,
        caller: MessageSender,
        log: CallLog,
    },
}

impl Outbox {
    fn publish(&mut self, topic: Topic, event: &Event, skip_conn: Option<ConnId>) {
        self.items.push(Effect::Publish {
            topic,
            event: Arc::new(event.clone()),
            skip_conn,
        });
    }

    fn send_conn(&mut self, conn: ConnId, event: &Event) {
        self.publish(Topic::Connection(conn), event, None);
    }

    fn send_user(&mut self, user_id: &str, event: &Event, skip_conn: Option<ConnId>) {
        self.publish(Topic::User(user_id.to_owned()), event, skip_conn);
    }

    /// `event` to every participant of `call` (one shared event).
    fn send_participants(&mut self, call: &Call, event: &Event) {
        let event = Arc::new(event.clone());
        for part in &call.participants {
            self.items.push(Effect::Publish {
                topic: Topic::Connection(part.conn),
                event: Arc::clone(&event),
                skip_conn: None,
            });
        }
    }

    fn log(&mut self, call: &Call, event: CallLogEvent, duration_secs: Option<u64>) {
        self.items.push(Effect::Log {
            room_id: call.room_id.clone(),
            caller: call.caller.clone(),
            log: call.log(event, duration_secs),
        });
    }
}

impl CallRegistry {
    fn call(&self, call_id: &str) -> AppResult<&Call> {
        self.calls
            .get(call_id)
            .ok_or_else(|| AppError::not_found("call"))
    }

    fn call_mut(&mut self, call_id: &str) -> AppResult<&mut Call> {
        self.calls
            .get_mut(call_id)
            .ok_or_else(|| AppError::not_found("call"))
    }

    /// The call `conn` takes part in, if it is `call_id`; else `404` (for a connection
    /// that is not a participant, the call is invisible).
    fn call_of_participant(&self, conn: ConnId, call_id: &str) -> AppResult<&Call> {
        match self.by_conn.get(&conn) {
            Some(id) if id == call_id => self.call(call_id),
            _ => Err(AppError::not_found("call")),
        }
    }

    fn ensure_free(&self, conn: ConnId) -> AppResult<()> {
        match self.by_conn.get(&conn) {
            Some(call_id) => Err(AppError::new(
                ErrorCode::Conflict,
                format!("this connection is already in call {call_id}"),
            )),
            None => Ok(()),
        }
    }

    /// Ends `call_id` for everyone with `reason`: participants and users still ringing
    /// get `call.ended`; the closing call log entry is stored unless the room is gone.
    fn end(&mut self, call_id: &str, reason: &str, out: &mut Outbox) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.by_room.remove(&call.room_id);
        for part in &call.participants {
            self.by_conn.remove(&part.conn);
        }
        let duration_secs = call.duration_secs();
        let ended = Event::CallEnded(CallEnded {
            call_id: call.id.clone(),
            reason: reason.to_owned(),
            duration_secs,
        });
        out.send_participants(&call, &ended);
        for user_id in &call.ringing {
            out.send_user(user_id, &ended, None);
        }
        let closing = if call.answered.is_some() {
            CallLogEvent::Ended
        } else if reason == "declined" {
            CallLogEvent::Declined
        } else {
            CallLogEvent::Missed
        };
        if reason != "room_closed" {
            out.log(&call, closing, duration_secs);
        }
    }

    /// Takes `conn` out of its call `call_id` (`reason`: `left`, `disconnected` or
    /// `removed`): the others get `call.participant_left`, and `call.host_changed` when it
    /// was the host; the call ends with its last participant.
    fn remove_participant(&mut self, call_id: &str, conn: ConnId, reason: &str, out: &mut Outbox) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let Some(index) = call.participants.iter().position(|p| p.conn == conn) else {
            return;
        };
        let part = call.participants.remove(index);
        self.by_conn.remove(&conn);
        if reason == "removed" {
            let ended = Event::CallEnded(CallEnded {
                call_id: call_id.to_owned(),
                reason: "removed".into(),
                duration_secs: None,
            });
            out.send_conn(conn, &ended);
        }
        if call.participants.is_empty() {
            let reason = if call.answered.is_some() {
                "ended"
            } else {
                "missed"
            };
            self.end(call_id, reason, out);
            return;
        }
        let left = Event::ParticipantLeft(ParticipantLeft {
            call_id: call_id.to_owned(),
            participant_id: part.id.clone(),
            user_id: part.user_id.clone(),
            reason: reason.to_owned(),
        });
        out.send_participants(call, &left);
        if call.host == part.id {
            let next = &call.participants[0];
            call.host = next.id.clone();
            let changed = Event::HostChanged(HostChanged {
                call_id: call_id.to_owned(),
                host: next.id.clone(),
                user_id: next.user_id.clone(),
            });
            out.send_participants(call, &changed);
        }
    }

    /// Tells the users whose ringing timed out, and ends unanswered calls as missed.
    fn expire_ringing(&mut self, now: Instant, out: &mut Outbox) {
        let due: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.ring_deadline <= now && !c.ringing.is_empty())
            .map(|c| c.id.clone())
            .collect();
        for call_id in due {
            let Some(call) = self.calls.get_mut(&call_id) else {
                continue;
            };
            let missed = Event::CallMissed(CallRef {
                call_id: call_id.clone(),
            });
            for user_id in std::mem::take(&mut call.ringing) {
                out.send_user(&user_id, &missed, None);
            }
            if call.answered.is_none() {
                self.end(&call_id, "missed", out);
            }
        }
    }
}

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

        let mut calls = self.calls.lock().await;
        calls.ensure_free(conn)?;
        if let Some(existing) = calls.by_room.get(&room_id) {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("call {existing} is going on in this room: join it with call.accept"),
            ));
        }
        self.user_limits
            .hit(&actor.user_id, super::user_limits::Action::CallStart)?;
        let now = now_rfc3339();
        let part = Part {
            id: new_id(),
            user_id: actor.user_id.clone(),
            username: me.username.clone(),
            conn,
            joined_at: now.clone(),
        };
        let call = Call {
            id: new_id(),
            room_id: room_id.clone(),
            kind: req.kind,
            caller: MessageSender {
                id: actor.user_id.clone(),
                username: me.username,
            },
            host: part.id.clone(),
            started_at: now,
            ring_deadline: Instant::now() + Duration::from_secs(self.rtc.ring_timeout_secs),
            answered: None,
            participants: vec![part],
            rung: ringing.iter().cloned().collect(),
            ringing,
            declined: HashSet::new(),
        };
        let mut out = Outbox::default();
        out.log(&call, CallLogEvent::Started, None);
        let incoming = Event::CallIncoming(CallIncoming {
            call_id: call.id.clone(),
            room_id: room_id.clone(),
            caller: call.caller.clone(),
            kind: call.kind,
        });
        for user_id in &call.ringing {
            out.send_user(user_id, &incoming, None);
        }
        let joined = CallJoined {
            call: call.info(),
            participant_id: call.host.clone(),
        };
        calls.by_room.insert(room_id, call.id.clone());
        calls.by_conn.insert(conn, call.id.clone());
        calls.calls.insert(call.id.clone(), call);
        self.apply(out).await;
        drop(calls);
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
        let (room_id, users) = {
            let calls = self.calls.lock().await;
            let call = calls.call(call_id)?;
            let users: HashSet<String> = call
                .participants
                .iter()
                .map(|p| p.user_id.clone())
                .collect();
            (call.room_id.clone(), users)
        };
        let me = self.call_member(actor, &room_id).await?;
        for user_id in users {
            if user_id != actor.user_id && self.is_blocked(&user_id, &actor.user_id).await? {
                return Err(forbidden("a participant of this call has blocked you"));
            }
        }

        let mut calls = self.calls.lock().await;
        calls.ensure_free(conn)?;
        let max = self.rtc.max_participants.max(2);
        let call = calls.call_mut(call_id)?;
        if call.participants.len() >= max {
            return Err(AppError::new(
                ErrorCode::CallFull,
                format!("the call already has {max} participants"),
            ));
        }
        let part = Part {
            id: new_id(),
            user_id: actor.user_id.clone(),
            username: me,
            conn,
            joined_at: now_rfc3339(),
        };
        let mut out = Outbox::default();
        let joined = Event::ParticipantJoined(ParticipantJoined {
            call_id: call_id.to_owned(),
            participant: part.to_wire(),
        });
        out.send_participants(call, &joined);
        if call.ringing.remove(&actor.user_id) {
            let elsewhere = Event::CallAnsweredElsewhere(CallRef {
                call_id: call_id.to_owned(),
            });
            out.send_user(&actor.user_id, &elsewhere, Some(conn));
        }
        let participant_id = part.id.clone();
        call.participants.push(part);
        // Answered once another user joins (not the caller on a second device).
        if call.answered.is_none() && actor.user_id != call.caller.id {
            call.answered = Some((now_rfc3339(), Instant::now()));
            out.log(call, CallLogEvent::Answered, None);
        }
        let reply = CallJoined {
            call: call.info(),
            participant_id,
        };
        calls.by_conn.insert(conn, call_id.to_owned());
        self.apply(out).await;
        drop(calls);
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
        let room_id = self.calls.lock().await.call(call_id)?.room_id.clone();
        self.call_member(actor, &room_id).await?;
        let mut calls = self.calls.lock().await;
        let call = calls.call_mut(call_id)?;
        if !call.ringing.remove(&actor.user_id) {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "you are not being rung for this call",
            ));
        }
        call.declined.insert(actor.user_id.clone());
        let mut out = Outbox::default();
        let declined = Event::CallDeclined(CallDeclined {
            call_id: call_id.to_owned(),
            user_id: actor.user_id.clone(),
        });
        out.send_participants(call, &declined);
        out.send_user(&actor.user_id, &declined, Some(conn));
        if call.answered.is_none() && call.ringing.is_empty() && call.declined == call.rung {
            calls.end(call_id, "declined", &mut out);
        }
        self.apply(out).await;
        Ok(())
    }

    /// `call.leave`: the calling connection leaves its call (see
    /// [`CallRegistry::remove_participant`]).
    ///
    /// # Errors
    /// `404 not_found` unless this connection is a participant of `call_id`.
    pub async fn leave_call(&self, conn: ConnId, call_id: &str) -> AppResult<()> {
        let mut calls = self.calls.lock().await;
        calls.call_of_participant(conn, call_id)?;
        let mut out = Outbox::default();
        calls.remove_participant(call_id, conn, "left", &mut out);
        self.apply(out).await;
        Ok(())
    }

    /// `call.end`: the host, or an owner or admin of the room, ends the call for everyone
    /// (`call.ended`, `reason: "ended"`).
    ///
    /// # Errors
    /// `404 not_found` (no such call, or not a member of its room); `403 forbidden`
    /// (neither the host nor a moderator of the room).
    pub async fn end_call(&self, actor: &Actor, conn: ConnId, call_id: &str) -> AppResult<()> {
        let (room_id, is_host) = {
            let calls = self.calls.lock().await;
            let call = calls.call(call_id)?;
            let is_host = call.part_by_conn(conn).is_some_and(|p| p.id == call.host);
            (call.room_id.clone(), is_host)
        };
        if !is_host {
            let role = match self.require_member(actor, &room_id).await {
                Ok((_, member)) => member.role,
                Err(e) if e.code == ErrorCode::NotMember => {
                    return Err(AppError::not_found("call"))
                }
                Err(e) => return Err(e),
            };
            if !role.moderates() {
                return Err(forbidden(
                    "only the host or a room owner or admin can end the call",
                ));
            }
        }
        let mut calls = self.calls.lock().await;
        calls.call(call_id)?;
        let mut out = Outbox::default();
        calls.end(call_id, "ended", &mut out);
        self.apply(out).await;
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
        self.check_signal(&req)?;
        let to_user = {
            let calls = self.calls.lock().await;
            let call = calls.call_of_participant(conn, &req.call_id)?;
            let to = call
                .participants
                .iter()
                .find(|p| p.id == req.to)
                .ok_or_else(|| AppError {
                    field: Some("to".into()),
                    ..AppError::not_found("participant")
                })?;
            if to.conn == conn {
                return Err(AppError::validation("to", "to must be another participant"));
            }
            to.user_id.clone()
        };
        if to_user != actor.user_id && self.is_blocked(&to_user, &actor.user_id).await? {
            return Err(forbidden("this participant has blocked you"));
        }
        // Both may have left meanwhile: look again, and publish under the lock.
        let calls = self.calls.lock().await;
        let call = calls.call_of_participant(conn, &req.call_id)?;
        let (Some(from), Some(to)) = (
            call.part_by_conn(conn),
            call.participants.iter().find(|p| p.id == req.to),
        ) else {
            return Err(AppError::not_found("participant"));
        };
        let mut out = Outbox::default();
        let signal = Event::Signal(Signal {
            call_id: req.call_id,
            from: from.id.clone(),
            from_user: from.user_id.clone(),
            description: req.description,
            candidate: req.candidate,
        });
        out.send_conn(to.conn, &signal);
        self.apply(out).await;
        drop(calls);
        Ok(())
    }

    /// A connection closed: it leaves its call (`reason: "disconnected"`).
    pub async fn connection_left_calls(&self, conn: ConnId) {
        let mut calls = self.calls.lock().await;
        let Some(call_id) = calls.by_conn.get(&conn).cloned() else {
            return;
        };
        let mut out = Outbox::default();
        calls.remove_participant(&call_id, conn, "disconnected", &mut out);
        self.apply(out).await;
    }

    /// `user_id` is no longer a member of `room_id` (left, kicked or banned): their
    /// connections leave the room's call (`reason: "removed"`) and stop ringing.
    pub(crate) async fn member_left_calls(&self, room_id: &str, user_id: &str) {
        let mut calls = self.calls.lock().await;
        let Some(call_id) = calls.by_room.get(room_id).cloned() else {
            return;
        };
        let mut out = Outbox::default();
        let conns: Vec<ConnId> = calls
            .call(&call_id)
            .map(|c| {
                c.participants
                    .iter()
                    .filter(|p| p.user_id == user_id)
                    .map(|p| p.conn)
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(call) = calls.call_mut(&call_id) {
            if call.ringing.remove(user_id) {
                let ended = Event::CallEnded(CallEnded {
                    call_id: call_id.clone(),
                    reason: "removed".into(),
                    duration_secs: None,
                });
                out.send_user(user_id, &ended, None);
            }
        }
        for conn in conns {
            calls.remove_participant(&call_id, conn, "removed", &mut out);
        }
        self.apply(out).await;
    }

    /// The room was deleted: its call ends (`reason: "room_closed"`).
    pub(crate) async fn room_closed_calls(&self, room_id: &str) {
        let mut calls = self.calls.lock().await;
        let Some(call_id) = calls.by_room.get(room_id).cloned() else {
            return;
        };
        let mut out = Outbox::default();
        calls.end(&call_id, "room_closed", &mut out);
        self.apply(out).await;
    }

    /// `GET /api/v1/rtc/ice-servers`: the configured STUN servers, and the TURN servers
    /// with credentials for the caller valid `rtc.turn_ttl_secs`, in the shared-secret
    /// scheme of coturn's `use-auth-secret` (draft-uberti-behave-turn-rest-00): username
    /// `<expiry unix seconds>:<user_id>`, credential base64(HMAC-SHA1(secret, username)).
    pub fn ice_servers(&self, actor: &Actor) -> IceServers {
        let mut ice_servers = Vec::new();
        if !self.rtc.stun_urls.is_empty() {
            ice_servers.push(IceServer {
                urls: self.rtc.stun_urls.clone(),
                username: None,
                credential: None,
            });
        }
        if let (false, Some(secret)) = (self.rtc.turn_urls.is_empty(), &self.rtc.turn_secret) {
            let expiry = time::OffsetDateTime::now_utc().unix_timestamp()
                + i64::try_from(self.rtc.turn_ttl_secs).unwrap_or(i64::MAX / 2);
            let username = format!("{expiry}:{}", actor.user_id);
            ice_servers.push(IceServer {
                urls: self.rtc.turn_urls.clone(),
                credential: Some(turn_credential(secret.expose(), &username)),
                username: Some(username),
            });
        }
        IceServers {
            ice_servers,
            ttl_secs: self.rtc.turn_ttl_secs,
        }
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

    /// The shape and size rules of `rtc.signal`.
    fn check_signal(&self, req: &SendSignal) -> AppResult<()> {
        match (&req.description, &req.candidate) {
            (Some(description), None) => at_most(
                "description.sdp",
                description.sdp.len(),
                self.rtc.max_sdp_bytes,
                "bytes",
            ),
            (None, Some(candidate)) => {
                at_most(
                    "candidate.candidate",
                    candidate.candidate.len(),
                    MAX_CANDIDATE_BYTES,
                    "bytes",
                )?;
                let chars = |v: &Option<String>| v.as_ref().map_or(0, |v| v.chars().count());
                at_most(
                    "candidate.sdpMid",
                    chars(&candidate.sdp_mid),
                    MAX_SDP_MID_CHARS,
                    "characters",
                )?;
                at_most(
                    "candidate.usernameFragment",
                    chars(&candidate.username_fragment),
                    MAX_UFRAG_CHARS,
                    "characters",
                )
            }
            _ => Err(AppError::validation(
                "description",
                "give exactly one of description and candidate",
            )),
        }
    }

    /// Carries out `out` in order. Runs under the registry lock, so call events are
    /// published in the order of the changes; call log entries are queued in that order
    /// too, and committed and published by a task of their own.
    async fn apply(&self, out: Outbox) {
        for effect in out.items {
            match effect {
                Effect::Publish {
                    topic,
                    event,
                    skip_conn,
                } => {
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
                Effect::Log {
                    room_id,
                    caller,
                    log,
                } => self.store_call_log(room_id, caller, log).await,
            }
        }
    }

    /// Queues a call log message; a failure (the room or the caller gone) is logged.
    async fn store_call_log(&self, room_id: String, caller: MessageSender, log: CallLog) {
        let new = NewMessage {
            id: new_id(),
            room_id,
            sender_id: caller.id,
            content: call_log_text(&log),
            client_id: None,
            created_at: now_rfc3339(),
            message_type: MessageType::Call,
            reply_to: None,
            attachment_id: None,
            call: Some(log),
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

/// Checks ringing deadlines every [`RING_CHECK_EVERY`] until the service is dropped.
pub(crate) async fn expire_ringing(service: Weak<Service>) {
    let mut tick = tokio::time::interval(RING_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(service) = service.upgrade() else {
            return;
        };
        let mut calls = service.calls.lock().await;
        if calls.calls.is_empty() {
            continue;
        }
        let mut out = Outbox::default();
        calls.expire_ringing(Instant::now(), &mut out);
        service.apply(out).await;
    }
}

/// Starts [`expire_ringing`] for `service`.
pub(crate) fn spawn_ring_timer(service: &Arc<Service>) {
    tokio::spawn(expire_ringing(Arc::downgrade(service)));
}

/// `422 validation_failed` naming `field` when `len` exceeds `max` (in `unit`).
fn at_most(field: &str, len: usize, max: usize, unit: &str) -> AppResult<()> {
    if len > max {
        return Err(AppError::validation(
            field,
            format!("{field} must be at most {max} {unit}"),
        ));
    }
    Ok(())
}

/// base64(HMAC-SHA1(secret, username)): the TURN password of coturn's `use-auth-secret`.
fn turn_credential(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `content` of a call log message: a short English line for clients that do not
/// render `call` themselves.
fn call_log_text(log: &CallLog) -> String {
    let kind = match log.kind {
        CallKind::Audio => "Audio call",
        CallKind::Video => "Video call",
    };
    match log.event {
        CallLogEvent::Started => format!("{kind} started"),
        CallLogEvent::Answered => format!("{kind} answered"),
        CallLogEvent::Missed => format!("Missed {}", kind.to_lowercase()),
        CallLogEvent::Declined => format!("{kind} declined"),
        CallLogEvent::Ended => {
            let secs = log.duration_secs.unwrap_or(0);
            format!("{kind} ended after {}:{:02}", secs / 60, secs % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The credential matches an independent computation (Python's `hmac` module:
    /// `base64.b64encode(hmac.new(b"north-wind-secret", b"1700000000:0190a1b2-user",
    /// hashlib.sha1).digest())`).
    #[test]
    fn turn_credential_is_base64_hmac_sha1_of_the_username() {
        assert_eq!(
            turn_credential("north-wind-secret", "1700000000:0190a1b2-user"),
            "a9p+lYmNRIxHABCLU34njqHl7YQ="
        );
    }

    #[test]
    fn call_log_text_names_the_kind_and_duration() {
        let log = CallLog {
            call_id: "c".into(),
            kind: CallKind::Video,
            event: CallLogEvent::Ended,
            duration_secs: Some(125),
        };
        assert_eq!(call_log_text(&log), "Video call ended after 2:05");
        let missed = CallLog {
            event: CallLogEvent::Missed,
            duration_secs: None,
            ..log
        };
        assert_eq!(call_log_text(&missed), "Missed video call");
    }
}
