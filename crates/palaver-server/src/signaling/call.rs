//! One call as a state machine, in plain synchronous code: no store, no broker, no clock
//! of its own. Times, ids and limits come in as arguments; every change returns the
//! [`Effect`]s to carry out, in order, or a [`CallError`] and no change at all.
//!
//! The rules are those of `docs/protocol.md`, "Calls":
//! - participants are connections in join order; the first is the host, and when the host
//!   leaves the next in join order takes over (`call.host_changed`);
//! - ringing stops for a user who accepts (their other connections:
//!   `call.answered_elsewhere`), declines (`call.declined`), times out (`call.missed`), or
//!   when the call ends (`call.ended`);
//! - the call ends with its last participant (`ended`, or `missed` when nobody answered),
//!   on `call.end` by the host (or a room moderator, checked by the service), when ringing
//!   times out unanswered (`missed`), when every user rung declined unanswered
//!   (`declined`), or when the room is deleted (`room_closed`);
//! - call log entries: `started`, `answered` (the first other user joins), and one closing
//!   entry (`ended` with the duration, `missed` or `declined`; none for `room_closed`).
//!
//! Once over, a call refuses everything with [`CallError::NotFound`] and produces no more
//! effects, so a change racing with the end is harmless.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use palaver_protocol::ws::{
    CallDeclined, CallEnded, CallIncoming, CallInfo, CallJoined, CallRef, CallState, Event,
    HostChanged, Participant, ParticipantJoined, ParticipantLeft, SendSignal, SessionDescription,
    Signal,
};
use palaver_protocol::{CallKind, CallLog, CallLogEvent, MessageSender};

use super::{CallError, Effect, LogEntry, Target};
use crate::hub::ConnId;

/// The smallest participant cap applied: a call always has room for two.
const MIN_PARTICIPANTS: usize = 2;

/// A moment, as the call records it: milliseconds since the Unix epoch for durations and
/// deadlines, and RFC 3339 UTC (milliseconds) for the wire. Wall-clock time, so that a
/// call written down by one node means the same on every other (see
/// [`super::shared`]); the nodes' clocks are expected to agree (NTP).
#[derive(Debug, Clone)]
pub struct Moment {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub at: i64,
    pub rfc3339: String,
}

/// A connection joining a call (or starting it).
#[derive(Debug, Clone)]
pub struct Joiner {
    /// A fresh UUIDv7: what `rtc.signal` addresses.
    pub participant_id: String,
    pub user_id: String,
    pub username: String,
    pub conn: ConnId,
}

/// What starts a call (see [`Call::start`]).
#[derive(Debug, Clone)]
pub struct NewCall {
    /// A fresh UUIDv7.
    pub call_id: String,
    pub room_id: String,
    pub kind: CallKind,
    /// The starting connection: the first participant, the host, and (its user) the
    /// sender of the call log entries.
    pub host: Joiner,
    /// The users to ring (already checked to be other members who have not blocked the
    /// caller).
    pub ringing: BTreeSet<String>,
    /// How long they ring (`rtc.ring_timeout_secs`).
    pub ring_for: Duration,
    /// The caller's SDP offer, delivered with `call.incoming` (not kept with the call).
    pub offer: Option<SessionDescription>,
}

/// Why a participant leaves (`call.participant_left`'s `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// `call.leave`.
    Left,
    /// The connection closed.
    Disconnected,
    /// The user left the room, or was kicked or banned: the connection also gets
    /// `call.ended` with `reason: "removed"`.
    Removed,
}

impl LeaveReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::Removed => "removed",
        }
    }
}

/// Who asks to end a call (`call.end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndBy {
    /// A connection, which must be the host's.
    Connection(ConnId),
    /// An owner or admin of the room (checked against the store by the service).
    Moderator,
}

/// Why a call ends (`call.ended`'s `reason`, except `removed`, which only goes to a removed
/// member's connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    Ended,
    Missed,
    Declined,
    RoomClosed,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::Ended => "ended",
            EndReason::Missed => "missed",
            EndReason::Declined => "declined",
            EndReason::RoomClosed => "room_closed",
        }
    }
}

/// One call: its participants in join order, its host, who is being rung, and whether it
/// was answered. Serializable (JSON), so that every node can read the calls kept in Redis
/// ([`super::shared`]); the format is internal and may change between versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Call {
    id: String,
    room_id: String,
    kind: CallKind,
    /// The user who started it: the sender of its call log entries.
    caller: MessageSender,
    /// The host's participant id.
    host: String,
    started_at: String,
    /// When the users still ringing are told they missed it (Unix milliseconds); `None`
    /// when the configured timeout is too far away to represent (it never rings out).
    ring_deadline: Option<i64>,
    /// When someone other than the starter first joined: RFC 3339, and Unix milliseconds.
    answered: Option<(String, i64)>,
    /// In join order.
    participants: Vec<Part>,
    /// Users being rung now.
    ringing: BTreeSet<String>,
    /// Every user rung, and those who declined.
    rung: HashSet<String>,
    declined: HashSet<String>,
    /// Ended: everything is refused from now on.
    over: bool,
}

/// A participant: one connection of one user.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    id: String,
    user_id: String,
    username: String,
    conn: ConnId,
    joined_at: String,
}

impl Part {
    fn new(joiner: Joiner, now: &Moment) -> Part {
        Part {
            id: joiner.participant_id,
            user_id: joiner.user_id,
            username: joiner.username,
            conn: joiner.conn,
            joined_at: now.rfc3339.clone(),
        }
    }

    fn to_wire(&self) -> Participant {
        Participant {
            participant_id: self.id.clone(),
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            joined_at: self.joined_at.clone(),
        }
    }
}

/// The effects of one change, built in order.
#[derive(Default)]
struct Out(Vec<Effect>);

impl Out {
    fn publish(&mut self, target: Target, event: &Arc<Event>, skip_conn: Option<ConnId>) {
        self.0.push(Effect::Publish {
            target,
            event: Arc::clone(event),
            skip_conn,
        });
    }

    fn send_conn(&mut self, conn: ConnId, event: &Arc<Event>) {
        self.publish(Target::Connection(conn), event, None);
    }

    fn send_user(&mut self, user_id: &str, event: &Arc<Event>, skip_conn: Option<ConnId>) {
        self.publish(Target::User(user_id.to_owned()), event, skip_conn);
    }

    /// `event` to each of `parts`, in join order.
    fn send_parts(&mut self, parts: &[Part], event: &Arc<Event>) {
        for part in parts {
            self.send_conn(part.conn, event);
        }
    }
}

impl Call {
    /// Starts a call: `new.host` is its first participant and host, the users in
    /// `new.ringing` ring until `now + new.ring_for`.
    ///
    /// Returns the call, the starter's reply (`{call, participant_id}`), and the effects:
    /// the `started` call log entry, then `call.incoming` to every user being rung.
    pub fn start(new: NewCall, now: &Moment) -> (Call, CallJoined, Vec<Effect>) {
        let host = Part::new(new.host, now);
        let call = Call {
            id: new.call_id,
            room_id: new.room_id,
            kind: new.kind,
            caller: MessageSender {
                id: host.user_id.clone(),
                username: host.username.clone(),
            },
            host: host.id.clone(),
            started_at: now.rfc3339.clone(),
            ring_deadline: i64::try_from(new.ring_for.as_millis())
                .ok()
                .and_then(|ms| now.at.checked_add(ms)),
            answered: None,
            participants: vec![host],
            rung: new.ringing.iter().cloned().collect(),
            ringing: new.ringing,
            declined: HashSet::new(),
            over: false,
        };
        let mut out = Out::default();
        call.log(&mut out, CallLogEvent::Started, None);
        let incoming = Arc::new(Event::CallIncoming(CallIncoming {
            call_id: call.id.clone(),
            room_id: call.room_id.clone(),
            caller: call.caller.clone(),
            kind: call.kind,
            offer: new.offer,
        }));
        for user_id in &call.ringing {
            out.send_user(user_id, &incoming, None);
        }
        let reply = CallJoined {
            call: call.info(),
            participant_id: call.host.clone(),
        };
        (call, reply, out.0)
    }

    /// `call.accept`: `joiner` joins at the end of the join order (rung or not: the service
    /// has checked that its user is a member of the room and blocked by no participant).
    ///
    /// Effects: `call.participant_joined` to the participants already there; when the user
    /// was being rung, `call.answered_elsewhere` to their other connections; the
    /// `answered` call log entry when this is the first user other than the starter.
    /// Returns the joiner's reply: the call with every participant, and its participant id.
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over; [`CallError::ConnectionBusy`] when
    /// the connection already takes part; [`CallError::Full`] when the call has
    /// `max_participants` participants (at least 2).
    pub fn accept(
        &mut self,
        joiner: Joiner,
        max_participants: usize,
        now: &Moment,
    ) -> Result<(CallJoined, Vec<Effect>), CallError> {
        self.ensure_live()?;
        if self.part_by_conn(joiner.conn).is_some() {
            return Err(CallError::ConnectionBusy {
                call_id: self.id.clone(),
            });
        }
        let max = max_participants.max(MIN_PARTICIPANTS);
        if self.participants.len() >= max {
            return Err(CallError::Full { max });
        }
        let part = Part::new(joiner, now);
        let mut out = Out::default();
        let joined = Arc::new(Event::ParticipantJoined(ParticipantJoined {
            call_id: self.id.clone(),
            participant: part.to_wire(),
        }));
        out.send_parts(&self.participants, &joined);
        if self.ringing.remove(&part.user_id) {
            let elsewhere = Arc::new(Event::CallAnsweredElsewhere(CallRef {
                call_id: self.id.clone(),
            }));
            out.send_user(&part.user_id, &elsewhere, Some(part.conn));
        }
        // Answered once another user joins (not the caller on a second device).
        let answers = self.answered.is_none() && part.user_id != self.caller.id;
        let participant_id = part.id.clone();
        self.participants.push(part);
        if answers {
            self.answered = Some((now.rfc3339.clone(), now.at));
            self.log(&mut out, CallLogEvent::Answered, None);
        }
        let reply = CallJoined {
            call: self.info(),
            participant_id,
        };
        Ok((reply, out.0))
    }

    /// `call.decline` by `user_id` on connection `conn`: their ringing stops.
    ///
    /// Effects: `call.declined` to the participants and to the user's other connections;
    /// when nobody answered and every user rung has declined, the call ends as `declined`
    /// (see [`Call::end`] for the effects of an end).
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over; [`CallError::NotRinging`] when the
    /// user is not being rung.
    pub fn decline(
        &mut self,
        user_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Vec<Effect>, CallError> {
        self.ensure_live()?;
        if !self.ringing.remove(user_id) {
            return Err(CallError::NotRinging);
        }
        self.declined.insert(user_id.to_owned());
        let mut out = Out::default();
        let declined = Arc::new(Event::CallDeclined(CallDeclined {
            call_id: self.id.clone(),
            user_id: user_id.to_owned(),
        }));
        out.send_parts(&self.participants, &declined);
        out.send_user(user_id, &declined, Some(conn));
        if self.answered.is_none() && self.ringing.is_empty() && self.declined == self.rung {
            self.finish(EndReason::Declined, now, &mut out);
        }
        Ok(out.0)
    }

    /// Connection `conn` leaves the call for `reason`.
    ///
    /// Effects: for [`LeaveReason::Removed`], `call.ended` (`removed`) to that connection;
    /// then, if it was the last participant, the end of the call (`ended`, or `missed`
    /// when nobody answered); otherwise `call.participant_left` to the others and, if it
    /// was the host, `call.host_changed` naming the next in join order.
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over or `conn` is not a participant.
    pub fn leave(
        &mut self,
        conn: ConnId,
        reason: LeaveReason,
        now: &Moment,
    ) -> Result<Vec<Effect>, CallError> {
        self.ensure_live()?;
        let index = self
            .participants
            .iter()
            .position(|p| p.conn == conn)
            .ok_or(CallError::NotFound)?;
        let mut out = Out::default();
        self.remove_at(index, reason, now, &mut out);
        Ok(out.0)
    }

    /// Connection `conn` hangs up (Socket.IO's `end_call`): the host ends the call for
    /// everyone (as [`Call::end`]); so does anyone when the call has exactly two
    /// participants and nobody is being rung (a one-to-one call ends when either side
    /// hangs up: `call.ended`, reason `ended`, to both). Otherwise the connection leaves
    /// (as [`Call::leave`] with [`LeaveReason::Left`]) and the call goes on.
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over or `conn` is not a participant.
    pub fn hang_up(&mut self, conn: ConnId, now: &Moment) -> Result<Vec<Effect>, CallError> {
        self.ensure_live()?;
        let index = self
            .participants
            .iter()
            .position(|p| p.conn == conn)
            .ok_or(CallError::NotFound)?;
        let mut out = Out::default();
        let last_two = self.participants.len() == 2 && self.ringing.is_empty();
        if self.is_host(conn) || last_two {
            self.finish(EndReason::Ended, now, &mut out);
        } else {
            self.remove_at(index, LeaveReason::Left, now, &mut out);
        }
        Ok(out.0)
    }

    /// `call.end` for everyone. Ends with reason `ended`: `call.ended` to every
    /// participant (with `duration_secs` since the answer, for an answered call) and to
    /// every user still being rung, then the closing call log entry (`ended` for an
    /// answered call, else `missed`).
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over; [`CallError::NotHost`] for
    /// [`EndBy::Connection`] other than the host's.
    pub fn end(&mut self, by: EndBy, now: &Moment) -> Result<Vec<Effect>, CallError> {
        self.ensure_live()?;
        if let EndBy::Connection(conn) = by {
            if !self.is_host(conn) {
                return Err(CallError::NotHost);
            }
        }
        let mut out = Out::default();
        self.finish(EndReason::Ended, now, &mut out);
        Ok(out.0)
    }

    /// The room was deleted: the call ends with reason `room_closed`, and no call log
    /// entry (the history is gone). No effects when the call is already over.
    pub fn close_room(&mut self, now: &Moment) -> Vec<Effect> {
        let mut out = Out::default();
        if !self.over {
            self.finish(EndReason::RoomClosed, now, &mut out);
        }
        out.0
    }

    /// `user_id` is no longer a member of the room: if they were being rung, `call.ended`
    /// (`removed`) to all their connections; each of their participant connections leaves
    /// with [`LeaveReason::Removed`] (in join order). No effects when the call is over.
    pub fn remove_user(&mut self, user_id: &str, now: &Moment) -> Vec<Effect> {
        let mut out = Out::default();
        if self.over {
            return out.0;
        }
        if self.ringing.remove(user_id) {
            let ended = Arc::new(self.ended_event("removed", None));
            out.send_user(user_id, &ended, None);
        }
        while !self.over {
            let Some(index) = self.participants.iter().position(|p| p.user_id == user_id) else {
                break;
            };
            self.remove_at(index, LeaveReason::Removed, now, &mut out);
        }
        out.0
    }

    /// The ring timer: once the deadline has passed, `call.missed` to every user still
    /// being rung (who then stop ringing), and an unanswered call ends as `missed`. No
    /// effects before the deadline, when nobody is being rung, or when the call is over.
    pub fn ring_timeout(&mut self, now: &Moment) -> Vec<Effect> {
        let mut out = Out::default();
        let due = self.ring_deadline.is_some_and(|d| d <= now.at);
        if self.over || !due || self.ringing.is_empty() {
            return out.0;
        }
        let missed = Arc::new(Event::CallMissed(CallRef {
            call_id: self.id.clone(),
        }));
        for user_id in std::mem::take(&mut self.ringing) {
            out.send_user(&user_id, &missed, None);
        }
        if self.answered.is_none() {
            self.finish(EndReason::Missed, now, &mut out);
        }
        out.0
    }

    /// The user of participant `to`, for a signal from connection `from` (so the service
    /// can check blocks before relaying).
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over or `from` is not a participant;
    /// [`CallError::NoSuchParticipant`] when `to` is not one;
    /// [`CallError::Invalid`] (`to`) when `to` is `from` itself.
    pub fn signal_recipient(&self, from: ConnId, to: &str) -> Result<&str, CallError> {
        let (_, to) = self.signal_pair(from, to)?;
        Ok(&to.user_id)
    }

    /// The participant ids of `user_id`'s connections in the call other than `from`, in
    /// join order (empty when `user_id` takes no part), for a signal from `from` addressed
    /// to a user rather than a participant.
    ///
    /// # Errors
    /// [`CallError::NotFound`] when the call is over or `from` is not a participant.
    pub fn participants_of_user(
        &self,
        from: ConnId,
        user_id: &str,
    ) -> Result<Vec<String>, CallError> {
        self.ensure_live()?;
        self.part_by_conn(from).ok_or(CallError::NotFound)?;
        Ok(self
            .participants
            .iter()
            .filter(|p| p.user_id == user_id && p.conn != from)
            .map(|p| p.id.clone())
            .collect())
    }

    /// `rtc.signal` from connection `from`: one `rtc.signal` event to exactly the
    /// participant named by `signal.to`, carrying the sender's participant and user ids.
    /// The shape and sizes are checked by [`super::relay::check`] first.
    ///
    /// # Errors
    /// As [`Call::signal_recipient`]; [`CallError::NotFound`] when `signal.call_id` is not
    /// this call.
    pub fn relay(&self, from: ConnId, signal: SendSignal) -> Result<Vec<Effect>, CallError> {
        if signal.call_id != self.id {
            return Err(CallError::NotFound);
        }
        let (sender, to) = self.signal_pair(from, &signal.to)?;
        let event = Arc::new(Event::Signal(Signal {
            call_id: signal.call_id,
            from: sender.id.clone(),
            from_user: sender.user_id.clone(),
            description: signal.description,
            candidate: signal.candidate,
        }));
        let mut out = Out::default();
        out.send_conn(to.conn, &event);
        Ok(out.0)
    }

    /// The call as participants see it.
    pub fn info(&self) -> CallInfo {
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

    /// The call's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id of the room the call lives in.
    pub fn room_id(&self) -> &str {
        &self.room_id
    }

    /// When ringing times out, in Unix milliseconds (`None`: never).
    pub fn ring_deadline(&self) -> Option<i64> {
        self.ring_deadline
    }

    /// Whether some user is still being rung.
    pub fn is_ringing(&self) -> bool {
        !self.ringing.is_empty()
    }

    /// Whether the call has ended.
    pub fn is_over(&self) -> bool {
        self.over
    }

    /// The participants' connections, in join order (none once over).
    pub fn conns(&self) -> Vec<ConnId> {
        self.participants.iter().map(|p| p.conn).collect()
    }

    /// The distinct users taking part.
    pub fn participant_users(&self) -> BTreeSet<String> {
        self.participants
            .iter()
            .map(|p| p.user_id.clone())
            .collect()
    }

    fn ensure_live(&self) -> Result<(), CallError> {
        if self.over {
            Err(CallError::NotFound)
        } else {
            Ok(())
        }
    }

    fn part_by_conn(&self, conn: ConnId) -> Option<&Part> {
        self.participants.iter().find(|p| p.conn == conn)
    }

    fn is_host(&self, conn: ConnId) -> bool {
        self.part_by_conn(conn).is_some_and(|p| p.id == self.host)
    }

    /// The sender and the recipient of a signal from `from` to participant `to`.
    fn signal_pair(&self, from: ConnId, to: &str) -> Result<(&Part, &Part), CallError> {
        self.ensure_live()?;
        let sender = self.part_by_conn(from).ok_or(CallError::NotFound)?;
        let recipient = self
            .participants
            .iter()
            .find(|p| p.id == to)
            .ok_or(CallError::NoSuchParticipant)?;
        if recipient.conn == from {
            return Err(CallError::Invalid {
                field: "to",
                message: "to must be another participant".into(),
            });
        }
        Ok((sender, recipient))
    }

    /// Takes participant `index` out (see [`Call::leave`]).
    fn remove_at(&mut self, index: usize, reason: LeaveReason, now: &Moment, out: &mut Out) {
        let part = self.participants.remove(index);
        if reason == LeaveReason::Removed {
            let ended = Arc::new(self.ended_event("removed", None));
            out.send_conn(part.conn, &ended);
        }
        if self.participants.is_empty() {
            let reason = if self.answered.is_some() {
                EndReason::Ended
            } else {
                EndReason::Missed
            };
            self.finish(reason, now, out);
            return;
        }
        let left = Arc::new(Event::ParticipantLeft(ParticipantLeft {
            call_id: self.id.clone(),
            participant_id: part.id.clone(),
            user_id: part.user_id.clone(),
            reason: reason.as_str().to_owned(),
        }));
        out.send_parts(&self.participants, &left);
        if self.host == part.id {
            let next = &self.participants[0];
            self.host = next.id.clone();
            let changed = Arc::new(Event::HostChanged(HostChanged {
                call_id: self.id.clone(),
                host: next.id.clone(),
                user_id: next.user_id.clone(),
            }));
            out.send_parts(&self.participants, &changed);
        }
    }

    /// Ends the call for everyone with `reason`: `call.ended` to the participants and to
    /// the users still being rung, then the closing call log entry unless the room is
    /// gone. The call is over afterwards, with no participants and nobody ringing.
    fn finish(&mut self, reason: EndReason, now: &Moment, out: &mut Out) {
        self.over = true;
        let duration_secs = self
            .answered
            .as_ref()
            .map(|(_, at)| u64::try_from(now.at.saturating_sub(*at) / 1000).unwrap_or(0));
        let ended = Arc::new(self.ended_event(reason.as_str(), duration_secs));
        out.send_parts(&std::mem::take(&mut self.participants), &ended);
        for user_id in std::mem::take(&mut self.ringing) {
            out.send_user(&user_id, &ended, None);
        }
        let closing = if self.answered.is_some() {
            CallLogEvent::Ended
        } else if reason == EndReason::Declined {
            CallLogEvent::Declined
        } else {
            CallLogEvent::Missed
        };
        if reason != EndReason::RoomClosed {
            self.log(out, closing, duration_secs);
        }
    }

    fn ended_event(&self, reason: &str, duration_secs: Option<u64>) -> Event {
        Event::CallEnded(CallEnded {
            call_id: self.id.clone(),
            reason: reason.to_owned(),
            duration_secs,
        })
    }

    fn log(&self, out: &mut Out, event: CallLogEvent, duration_secs: Option<u64>) {
        out.0.push(Effect::Log(LogEntry {
            room_id: self.room_id.clone(),
            caller: self.caller.clone(),
            log: CallLog {
                call_id: self.id.clone(),
                kind: self.kind,
                event,
                duration_secs,
            },
        }));
    }
}

#[cfg(test)]
mod tests {
    //! Each test drives one call through a scenario of `docs/protocol.md` and checks the
    //! effects of every step: who gets which event, in which order, and what is logged.

    use super::*;
    use palaver_protocol::ws::{IceCandidate, SdpType};

    /// Connection ids: Alice's, Bob's laptop and phone, Carol's, Dave's.
    const A: ConnId = 1;
    const B1: ConnId = 2;
    const B2: ConnId = 3;
    const C: ConnId = 4;
    const D: ConnId = 5;

    use crate::signaling::test_clock::Clock;

    fn joiner(user: &str, conn: ConnId) -> Joiner {
        Joiner {
            participant_id: format!("p-{user}-{conn}"),
            user_id: user.to_owned(),
            username: format!("{user}name"),
            conn,
        }
    }

    /// `alice` on [`A`] starts a video call in room `r`, ringing `ringing` for 30 s.
    fn started(clock: &Clock, ringing: &[&str]) -> (Call, CallJoined, Vec<Effect>) {
        Call::start(
            NewCall {
                call_id: "call".into(),
                room_id: "r".into(),
                kind: CallKind::Video,
                host: joiner("alice", A),
                ringing: ringing.iter().map(|u| (*u).to_owned()).collect(),
                ring_for: Duration::from_secs(30),
                offer: None,
            },
            &clock.at(0),
        )
    }

    /// One effect, spelled out for comparison: `"conn 2: call.participant_joined"`,
    /// `"user bob (not 2): call.answered_elsewhere"`, `"log answered"`.
    fn describe(effect: &Effect) -> String {
        match effect {
            Effect::Publish {
                target,
                event,
                skip_conn,
            } => {
                let to = match target {
                    Target::Connection(conn) => format!("conn {conn}"),
                    Target::User(user) => format!("user {user}"),
                    Target::Room(room) => format!("room {room}"),
                };
                let skip = skip_conn.map_or(String::new(), |c| format!(" (not {c})"));
                let value = serde_json::to_value(&**event).expect("events serialize");
                let kind = value["type"].as_str().expect("a type").to_owned();
                let detail = match &**event {
                    Event::CallEnded(e) => format!(" {}", e.reason),
                    Event::ParticipantLeft(e) => {
                        format!(" {} {}", e.participant_id, e.reason)
                    }
                    Event::ParticipantJoined(e) => format!(" {}", e.participant.participant_id),
                    Event::HostChanged(e) => format!(" {}", e.host),
                    Event::CallDeclined(e) => format!(" {}", e.user_id),
                    Event::Signal(e) => format!(" from {}", e.from),
                    _ => String::new(),
                };
                format!("{to}{skip}: {kind}{detail}")
            }
            Effect::Log(entry) => {
                let event = serde_json::to_value(entry.log.event).expect("serializes");
                format!("log {}", event.as_str().expect("a string"))
            }
        }
    }

    fn describe_all(effects: &[Effect]) -> Vec<String> {
        effects.iter().map(describe).collect()
    }

    /// The log entries among `effects`.
    fn logs(effects: &[Effect]) -> Vec<&LogEntry> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Log(entry) => Some(entry),
                Effect::Publish { .. } => None,
            })
            .collect()
    }

    /// The `duration_secs` of the `call.ended` events among `effects`.
    fn ended_durations(effects: &[Effect]) -> Vec<Option<u64>> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Publish { event, .. } => match &**event {
                    Event::CallEnded(ended) => Some(ended.duration_secs),
                    _ => None,
                },
                Effect::Log(_) => None,
            })
            .collect()
    }

    fn offer(call_id: &str, to: &str) -> SendSignal {
        SendSignal {
            call_id: call_id.into(),
            to: to.into(),
            description: Some(SessionDescription {
                kind: SdpType::Offer,
                sdp: "v=0\r\n".into(),
            }),
            candidate: None,
        }
    }

    fn candidate(call_id: &str, to: &str) -> SendSignal {
        SendSignal {
            call_id: call_id.into(),
            to: to.into(),
            description: None,
            candidate: Some(IceCandidate {
                candidate: "candidate:1 1 udp 2122260223 192.0.2.1 50001 typ host".into(),
                sdp_mid: Some("0".into()),
                sdp_m_line_index: Some(0),
                username_fragment: None,
            }),
        }
    }

    #[test]
    fn starting_logs_and_rings_every_invited_user_with_the_starter_as_host() {
        let clock = Clock::new();
        let (call, reply, effects) = started(&clock, &["bob", "carol"]);
        assert_eq!(
            describe_all(&effects),
            [
                "log started",
                "user bob: call.incoming",
                "user carol: call.incoming"
            ]
        );
        let entry = logs(&effects)[0];
        assert_eq!(entry.room_id, "r");
        assert_eq!(entry.caller.id, "alice");
        assert_eq!(entry.caller.username, "alicename");
        assert_eq!(reply.participant_id, "p-alice-1");
        assert_eq!(reply.call.host, "p-alice-1");
        assert_eq!(reply.call.state, CallState::Ringing);
        assert_eq!(reply.call.ringing, ["bob", "carol"]);
        assert_eq!(reply.call.started_at, "2026-11-21T12:00:00.000Z");
        assert!(reply.call.answered_at.is_none());
        assert_eq!(call.conns(), [A]);
        assert_eq!(
            call.ring_deadline(),
            Some(clock.at(30).at),
            "rings for ring_for"
        );
    }

    #[test]
    fn one_to_one_answered_on_one_of_two_devices() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob"]);

        // Bob answers on his laptop: his phone stops ringing, Alice hears of it.
        let (reply, effects) = call.accept(joiner("bob", B1), 8, &clock.at(3)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.participant_joined p-bob-2",
                "user bob (not 2): call.answered_elsewhere",
                "log answered",
            ]
        );
        assert_eq!(reply.participant_id, "p-bob-2");
        assert_eq!(reply.call.state, CallState::Active);
        assert_eq!(
            reply.call.answered_at.as_deref(),
            Some("2026-11-21T12:00:03.000Z")
        );
        let order: Vec<&str> = reply
            .call
            .participants
            .iter()
            .map(|p| p.participant_id.as_str())
            .collect();
        assert_eq!(order, ["p-alice-1", "p-bob-2"], "join order");
        assert!(reply.call.ringing.is_empty());

        // The phone, not a participant, may not decline any more: it is not rung.
        assert_eq!(
            call.decline("bob", B2, &clock.at(4)).unwrap_err(),
            CallError::NotRinging
        );

        // Alice hangs up: Bob is told and becomes host; then Bob leaves and it ends.
        let effects = call.leave(A, LeaveReason::Left, &clock.at(10)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 2: call.participant_left p-alice-1 left",
                "conn 2: call.host_changed p-bob-2",
            ]
        );
        let effects = call.leave(B1, LeaveReason::Left, &clock.at(128)).unwrap();
        assert_eq!(describe_all(&effects), ["log ended"]);
        let log = &logs(&effects)[0].log;
        assert_eq!(log.duration_secs, Some(125), "since the answer");
        assert!(call.is_over());
        assert!(call.conns().is_empty());
        assert_eq!(
            call.accept(joiner("bob", B2), 8, &clock.at(129))
                .unwrap_err(),
            CallError::NotFound,
            "an ended call is gone"
        );
    }

    #[test]
    fn the_caller_on_a_second_device_does_not_answer() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob"]);
        let (reply, effects) = call.accept(joiner("alice", B2), 8, &clock.at(1)).unwrap();
        assert_eq!(
            describe_all(&effects),
            ["conn 1: call.participant_joined p-alice-3"]
        );
        assert_eq!(reply.call.state, CallState::Ringing);
        assert_eq!(reply.call.ringing, ["bob"]);
    }

    #[test]
    fn declining_tells_participants_and_other_devices_and_ends_when_all_declined() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);

        let effects = call.decline("bob", B1, &clock.at(2)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.declined bob",
                "user bob (not 2): call.declined bob"
            ]
        );
        assert!(!call.is_over(), "carol is still being rung");
        assert_eq!(
            call.decline("bob", B2, &clock.at(3)).unwrap_err(),
            CallError::NotRinging,
            "declining twice"
        );
        assert_eq!(
            call.decline("alice", A, &clock.at(3)).unwrap_err(),
            CallError::NotRinging,
            "the starter is not rung"
        );

        let effects = call.decline("carol", C, &clock.at(4)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.declined carol",
                "user carol (not 4): call.declined carol",
                "conn 1: call.ended declined",
                "log declined",
            ]
        );
        assert_eq!(ended_durations(&effects), [None], "never answered");
        assert!(call.is_over());
    }

    #[test]
    fn declining_after_an_answer_does_not_end_the_call() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        let effects = call.decline("carol", C, &clock.at(2)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.declined carol",
                "conn 2: call.declined carol",
                "user carol (not 4): call.declined carol",
            ]
        );
        assert!(!call.is_over());
    }

    #[test]
    fn ringing_times_out_as_missed() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        assert!(
            call.ring_timeout(&clock.at(29)).is_empty(),
            "before the deadline"
        );
        assert!(!call.is_over());

        let effects = call.ring_timeout(&clock.at(30));
        assert_eq!(
            describe_all(&effects),
            [
                "user bob: call.missed",
                "user carol: call.missed",
                "conn 1: call.ended missed",
                "log missed",
            ]
        );
        assert!(call.is_over());
        assert!(call.ring_timeout(&clock.at(31)).is_empty(), "once only");
    }

    #[test]
    fn a_timeout_after_an_answer_only_stops_the_ringing() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(5)).unwrap();
        let effects = call.ring_timeout(&clock.at(30));
        assert_eq!(describe_all(&effects), ["user carol: call.missed"]);
        assert!(!call.is_over());
        assert!(call.info().ringing.is_empty());
        // Carol may still join while the call lasts.
        let (reply, _) = call.accept(joiner("carol", C), 8, &clock.at(40)).unwrap();
        assert_eq!(reply.call.participants.len(), 3);
    }

    #[test]
    fn a_caller_hanging_up_before_an_answer_stops_the_ringing_as_missed() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob"]);
        let effects = call.leave(A, LeaveReason::Left, &clock.at(5)).unwrap();
        assert_eq!(
            describe_all(&effects),
            ["user bob: call.ended missed", "log missed"]
        );
        assert_eq!(ended_durations(&effects), [None]);
        assert!(call.is_over());
        assert!(call.ring_timeout(&clock.at(30)).is_empty());
    }

    #[test]
    fn three_parties_join_in_order_and_the_host_is_handed_on() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol", "dave"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();

        let (reply, effects) = call.accept(joiner("carol", C), 8, &clock.at(2)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.participant_joined p-carol-4",
                "conn 2: call.participant_joined p-carol-4",
                "user carol (not 4): call.answered_elsewhere",
            ],
            "only the first answer is logged"
        );
        let order: Vec<&str> = reply
            .call
            .participants
            .iter()
            .map(|p| p.participant_id.as_str())
            .collect();
        assert_eq!(order, ["p-alice-1", "p-bob-2", "p-carol-4"]);
        assert_eq!(reply.call.host, "p-alice-1");
        assert_eq!(reply.call.ringing, ["dave"]);

        // The host leaves: the next in join order (Bob) takes over, and everyone hears.
        let effects = call.leave(A, LeaveReason::Left, &clock.at(3)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 2: call.participant_left p-alice-1 left",
                "conn 4: call.participant_left p-alice-1 left",
                "conn 2: call.host_changed p-bob-2",
                "conn 4: call.host_changed p-bob-2",
            ]
        );
        assert_eq!(call.info().host, "p-bob-2");

        // A non-host leaving changes no host.
        let (_, _) = call.accept(joiner("dave", D), 8, &clock.at(4)).unwrap();
        let effects = call
            .leave(C, LeaveReason::Disconnected, &clock.at(5))
            .unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 2: call.participant_left p-carol-4 disconnected",
                "conn 5: call.participant_left p-carol-4 disconnected",
            ]
        );

        // The new host ends it for everyone; the duration counts from the first answer.
        let effects = call.end(EndBy::Connection(B1), &clock.at(61)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 2: call.ended ended",
                "conn 5: call.ended ended",
                "log ended"
            ]
        );
        assert_eq!(ended_durations(&effects), [Some(60), Some(60)]);
        assert_eq!(logs(&effects)[0].log.duration_secs, Some(60));
    }

    #[test]
    fn only_the_host_connection_or_a_moderator_ends_a_call() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();

        assert_eq!(
            call.end(EndBy::Connection(B1), &clock.at(2)).unwrap_err(),
            CallError::NotHost,
            "a participant who is not the host"
        );
        assert_eq!(
            call.end(EndBy::Connection(B2), &clock.at(2)).unwrap_err(),
            CallError::NotHost,
            "a connection not in the call, even of a participant user"
        );
        assert!(!call.is_over(), "refusals change nothing");

        // A moderator (checked by the service) ends it; Carol, still rung, is told too.
        let effects = call.end(EndBy::Moderator, &clock.at(3)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.ended ended",
                "conn 2: call.ended ended",
                "user carol: call.ended ended",
                "log ended",
            ]
        );
        assert_eq!(
            call.end(EndBy::Moderator, &clock.at(4)).unwrap_err(),
            CallError::NotFound,
            "ending twice"
        );
    }

    #[test]
    fn a_call_holds_at_most_max_participants_and_at_least_two() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 2, &clock.at(1)).unwrap();
        assert_eq!(
            call.accept(joiner("carol", C), 2, &clock.at(2))
                .unwrap_err(),
            CallError::Full { max: 2 }
        );
        assert_eq!(call.conns(), [A, B1], "nobody added");
        assert_eq!(call.info().ringing, ["carol"], "still ringing");

        // A place frees up when someone leaves.
        call.leave(B1, LeaveReason::Left, &clock.at(3)).unwrap();
        call.accept(joiner("carol", C), 2, &clock.at(4)).unwrap();
        assert_eq!(call.conns(), [A, C]);

        // A cap below two still lets a second participant in.
        let (mut small, _, _) = started(&clock, &["bob"]);
        small.accept(joiner("bob", B1), 0, &clock.at(1)).unwrap();
        assert_eq!(
            small
                .accept(joiner("carol", C), 1, &clock.at(2))
                .unwrap_err(),
            CallError::Full { max: 2 }
        );
    }

    #[test]
    fn a_connection_joins_a_call_once() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob"]);
        assert_eq!(
            call.accept(joiner("alice", A), 8, &clock.at(1))
                .unwrap_err(),
            CallError::ConnectionBusy {
                call_id: "call".into()
            }
        );
    }

    #[test]
    fn signals_go_only_between_participants_and_to_exactly_one() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        call.accept(joiner("carol", C), 8, &clock.at(2)).unwrap();

        assert_eq!(call.signal_recipient(A, "p-bob-2"), Ok("bob"));
        let effects = call.relay(A, offer("call", "p-bob-2")).unwrap();
        assert_eq!(
            describe_all(&effects),
            ["conn 2: rtc.signal from p-alice-1"]
        );
        let Effect::Publish { event, .. } = &effects[0] else {
            panic!("a publish");
        };
        let Event::Signal(signal) = &**event else {
            panic!("a signal");
        };
        assert_eq!(signal.from_user, "alice");
        assert_eq!(signal.description.as_ref().unwrap().kind, SdpType::Offer);
        assert!(signal.candidate.is_none());

        let effects = call.relay(C, candidate("call", "p-alice-1")).unwrap();
        assert_eq!(
            describe_all(&effects),
            ["conn 1: rtc.signal from p-carol-4"]
        );

        // Not from a participant (Bob's phone), to nobody, to oneself, another call.
        assert_eq!(
            call.relay(B2, offer("call", "p-alice-1")).unwrap_err(),
            CallError::NotFound
        );
        assert_eq!(
            call.signal_recipient(B2, "p-alice-1"),
            Err(CallError::NotFound)
        );
        assert_eq!(
            call.relay(A, offer("call", "p-nobody")).unwrap_err(),
            CallError::NoSuchParticipant
        );
        assert!(matches!(
            call.relay(A, offer("call", "p-alice-1")).unwrap_err(),
            CallError::Invalid { field: "to", .. }
        ));
        assert_eq!(
            call.relay(A, offer("another-call", "p-bob-2")).unwrap_err(),
            CallError::NotFound
        );

        // Once a participant has left, nothing goes to or from it.
        call.leave(B1, LeaveReason::Left, &clock.at(3)).unwrap();
        assert_eq!(
            call.relay(A, offer("call", "p-bob-2")).unwrap_err(),
            CallError::NoSuchParticipant
        );
        assert_eq!(
            call.relay(B1, offer("call", "p-alice-1")).unwrap_err(),
            CallError::NotFound
        );
        // Nor in a call that is over.
        call.end(EndBy::Moderator, &clock.at(4)).unwrap();
        assert_eq!(
            call.relay(A, offer("call", "p-carol-4")).unwrap_err(),
            CallError::NotFound
        );
    }

    #[test]
    fn signals_between_two_devices_of_one_user_are_relayed() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob"]);
        call.accept(joiner("alice", B2), 8, &clock.at(1)).unwrap();
        let effects = call.relay(A, offer("call", "p-alice-3")).unwrap();
        assert_eq!(
            describe_all(&effects),
            ["conn 3: rtc.signal from p-alice-1"]
        );
    }

    #[test]
    fn hanging_up_ends_a_call_of_two_and_leaves_a_larger_one() {
        let clock = Clock::new();
        // One to one: the callee hanging up ends it for both, like the host would.
        let (mut call, _, _) = started(&clock, &["bob"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        let effects = call.hang_up(B1, &clock.at(11)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.ended ended",
                "conn 2: call.ended ended",
                "log ended"
            ]
        );
        assert_eq!(ended_durations(&effects), [Some(10), Some(10)]);
        assert!(call.is_over());
        assert_eq!(
            call.hang_up(A, &clock.at(12)).unwrap_err(),
            CallError::NotFound
        );

        // Three taking part, Dave still ringing: a non-host hanging up only leaves; with
        // two left and Dave still ringing, the call still goes on; once nobody rings,
        // either of the last two ends it.
        let (mut call, _, _) = started(&clock, &["bob", "carol", "dave"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        call.accept(joiner("carol", C), 8, &clock.at(2)).unwrap();
        assert_eq!(
            call.hang_up(D, &clock.at(3)).unwrap_err(),
            CallError::NotFound,
            "dave is rung, not a participant"
        );
        let effects = call.hang_up(C, &clock.at(3)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.participant_left p-carol-4 left",
                "conn 2: call.participant_left p-carol-4 left",
            ]
        );
        let effects = call.hang_up(B1, &clock.at(4)).unwrap();
        assert_eq!(
            describe_all(&effects),
            ["conn 1: call.participant_left p-bob-2 left"],
            "dave is still being rung"
        );
        call.accept(joiner("dave", D), 8, &clock.at(5)).unwrap();
        let effects = call.hang_up(D, &clock.at(6)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.ended ended",
                "conn 5: call.ended ended",
                "log ended"
            ]
        );

        // The host hanging up ends it for everyone, the users still ringing included.
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        let effects = call.hang_up(A, &clock.at(2)).unwrap();
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.ended ended",
                "conn 2: call.ended ended",
                "user carol: call.ended ended",
                "log ended"
            ]
        );
    }

    #[test]
    fn a_users_participants_are_found_for_a_participant_only() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        call.accept(joiner("bob", B2), 8, &clock.at(2)).unwrap();
        assert_eq!(
            call.participants_of_user(A, "bob"),
            Ok(vec!["p-bob-2".to_owned(), "p-bob-3".to_owned()]),
            "both of bob's devices, in join order"
        );
        assert_eq!(
            call.participants_of_user(B1, "bob"),
            Ok(vec!["p-bob-3".to_owned()]),
            "never the asking connection itself"
        );
        assert_eq!(call.participants_of_user(A, "carol"), Ok(Vec::new()));
        assert_eq!(
            call.participants_of_user(C, "bob"),
            Err(CallError::NotFound),
            "carol is rung, not a participant"
        );
        call.end(EndBy::Moderator, &clock.at(3)).unwrap();
        assert_eq!(
            call.participants_of_user(A, "bob"),
            Err(CallError::NotFound)
        );
    }

    #[test]
    fn a_removed_member_leaves_and_stops_ringing() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        call.accept(joiner("bob", B2), 8, &clock.at(2)).unwrap();

        // Carol, being rung, is removed from the room.
        let effects = call.remove_user("carol", &clock.at(3));
        assert_eq!(describe_all(&effects), ["user carol: call.ended removed"]);
        assert!(call.info().ringing.is_empty());

        // Bob, in the call on two devices, is kicked: both leave as removed, one after
        // the other in join order (so his second device hears of his first leaving).
        let effects = call.remove_user("bob", &clock.at(4));
        assert_eq!(
            describe_all(&effects),
            [
                "conn 2: call.ended removed",
                "conn 1: call.participant_left p-bob-2 removed",
                "conn 3: call.participant_left p-bob-2 removed",
                "conn 3: call.ended removed",
                "conn 1: call.participant_left p-bob-3 removed",
            ]
        );
        assert_eq!(call.conns(), [A]);
        assert!(
            call.remove_user("bob", &clock.at(5)).is_empty(),
            "nothing left"
        );
    }

    #[test]
    fn removing_the_last_participant_ends_the_call() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob"]);
        call.accept(joiner("bob", B1), 8, &clock.at(10)).unwrap();
        call.leave(B1, LeaveReason::Left, &clock.at(11)).unwrap();
        let effects = call.remove_user("alice", &clock.at(20));
        assert_eq!(
            describe_all(&effects),
            ["conn 1: call.ended removed", "log ended"]
        );
        assert_eq!(logs(&effects)[0].log.duration_secs, Some(10));
        assert!(call.is_over());
    }

    #[test]
    fn deleting_the_room_ends_the_call_without_a_log_entry() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        let effects = call.close_room(&clock.at(2));
        assert_eq!(
            describe_all(&effects),
            [
                "conn 1: call.ended room_closed",
                "conn 2: call.ended room_closed",
                "user carol: call.ended room_closed",
            ]
        );
        assert!(call.is_over());
        assert!(call.close_room(&clock.at(3)).is_empty(), "once only");
    }

    #[test]
    fn events_to_several_participants_share_one_allocation() {
        let clock = Clock::new();
        let (mut call, _, _) = started(&clock, &["bob", "carol"]);
        call.accept(joiner("bob", B1), 8, &clock.at(1)).unwrap();
        let (_, effects) = call.accept(joiner("carol", C), 8, &clock.at(2)).unwrap();
        let (Effect::Publish { event: first, .. }, Effect::Publish { event: second, .. }) =
            (&effects[0], &effects[1])
        else {
            panic!("two publishes: {effects:?}");
        };
        assert!(Arc::ptr_eq(first, second));
    }

    #[test]
    fn a_ring_timeout_too_far_to_represent_never_rings_out() {
        let clock = Clock::new();
        let (mut call, _, _) = Call::start(
            NewCall {
                call_id: "call".into(),
                room_id: "r".into(),
                kind: CallKind::Audio,
                host: joiner("alice", A),
                ringing: ["bob".to_owned()].into(),
                ring_for: Duration::MAX,
                offer: None,
            },
            &clock.at(0),
        );
        assert_eq!(call.ring_deadline(), None);
        assert!(call.ring_timeout(&clock.at(59)).is_empty());
        assert_eq!(call.info().ringing, ["bob"]);
    }
}
