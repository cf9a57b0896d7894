//! Calls: the WebRTC signaling core (see `docs/protocol.md`, "Calls"). No store, no
//! broker, no JSON text: the service checks membership and blocks against the store, calls
//! in here, and carries out the [`Effect`]s that come back.
//!
//! - [`call`]: one call as a state machine, in plain synchronous code. A [`Call`] is
//!   started, accepted, declined, left, ended, handed to the next host, timed out; every
//!   change returns the effects to carry out (typed events for a [`Target`], call log
//!   entries) or a [`CallError`], and changes nothing when it fails.
//! - [`registry`]: the calls of a node on its own, each behind its own lock, indexed by
//!   id, room and participant connection. No lock is held across an `.await`; each
//!   change's effects come back as a [`Batch`] holding its place in the call's order, so
//!   that every participant sees the changes of a call in the same order.
//! - [`shared`]: the calls of nodes that share a Redis, kept there so that every node can
//!   read and change them: the same state machine, a compare-and-set per change, and the
//!   events published by Redis in the order of the changes.
//! - [`relay`]: the shape and size rules of `rtc.signal`.
//! - [`turn`]: ICE servers and time-limited TURN credentials (coturn's `use-auth-secret`,
//!   the TURN REST API).
//!
//! Participants are connections ([`ConnId`]), not users: a user with two devices takes a
//! call on one of them. [`Calls`] is whichever registry the node uses: in memory on a
//! node on its own, in Redis with `redis_url` (participants of one call may then be
//! connected to different nodes: connection ids are unique across nodes).

pub mod call;
pub mod registry;
pub mod relay;
pub mod shared;
pub mod turn;

use std::sync::Arc;

use palaver_protocol::ws::{CallJoined, Event, SendSignal};
use palaver_protocol::{CallLog, ErrorCode, MessageSender};

use crate::error::AppError;
use crate::hub::ConnId;

pub use call::{Call, EndBy, Joiner, LeaveReason, Moment, NewCall};
pub use registry::{Batch, Registry};
pub use shared::SharedRegistry;

/// A clock for the signaling tests: [`Moment`]s `secs` after a fixed start.
#[cfg(test)]
pub(crate) mod test_clock {
    use super::Moment;

    /// 2026-11-21T12:00:00Z in Unix milliseconds.
    const START_MS: i64 = 1_795_262_400_000;

    pub(crate) struct Clock;

    impl Clock {
        pub(crate) fn new() -> Clock {
            Clock
        }

        pub(crate) fn at(&self, secs: u64) -> Moment {
            Moment {
                at: START_MS + i64::try_from(secs).expect("a test time") * 1000,
                rfc3339: format!("2026-11-21T12:00:{secs:02}.000Z"),
            }
        }
    }
}

/// The calls of this node: in its memory, or shared with the other nodes through Redis.
/// Each change returns what the service still has to carry out ([`Done`]).
pub enum Calls {
    /// A node on its own (no `redis_url`).
    Local(Registry),
    /// Nodes sharing a Redis.
    Shared(SharedRegistry),
}

impl Default for Calls {
    fn default() -> Self {
        Calls::Local(Registry::default())
    }
}

/// What is left to do after a change: publish a local batch in its turn, or (for shared
/// calls, whose events Redis has published) store the call log entries.
#[derive(Debug)]
#[must_use = "a change's effects must be carried out"]
pub enum Done {
    Batch(Batch),
    Logs(Vec<LogEntry>),
}

impl Calls {
    /// Starts a call (see [`Registry::start`]).
    ///
    /// # Errors
    /// [`CallError::ConnectionBusy`], then [`CallError::RoomBusy`], then `admit`'s;
    /// [`CallError::Unavailable`] for shared calls.
    pub async fn start<E: From<CallError>>(
        &self,
        new: NewCall,
        now: &Moment,
        admit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(CallJoined, Done), E> {
        match self {
            Calls::Local(r) => r
                .start(new, now, admit)
                .map(|(joined, batch)| (joined, Done::Batch(batch))),
            Calls::Shared(s) => s
                .start(new, now, admit)
                .await
                .map(|(joined, logs)| (joined, Done::Logs(logs))),
        }
    }

    /// The room of call `call_id`.
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::Unavailable`].
    pub async fn room_of(&self, call_id: &str) -> Result<String, CallError> {
        match self {
            Calls::Local(r) => r.room_of(call_id),
            Calls::Shared(s) => Ok(s.call(call_id).await?.room_id().to_owned()),
        }
    }

    /// The room of call `call_id` and the users taking part.
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::Unavailable`].
    pub async fn room_and_users(
        &self,
        call_id: &str,
    ) -> Result<(String, std::collections::BTreeSet<String>), CallError> {
        match self {
            Calls::Local(r) => r.room_and_users(call_id),
            Calls::Shared(s) => {
                let call = s.call(call_id).await?;
                Ok((call.room_id().to_owned(), call.participant_users()))
            }
        }
    }

    /// `call.accept` (see [`Call::accept`]).
    ///
    /// # Errors
    /// As [`Registry::accept`]; [`CallError::Unavailable`].
    pub async fn accept(
        &self,
        call_id: &str,
        joiner: Joiner,
        max_participants: usize,
        now: &Moment,
    ) -> Result<(CallJoined, Done), CallError> {
        match self {
            Calls::Local(r) => r
                .accept(call_id, joiner, max_participants, now)
                .map(|(joined, batch)| (joined, Done::Batch(batch))),
            Calls::Shared(s) => s
                .accept(call_id, joiner, max_participants, now)
                .await
                .map(|(joined, logs)| (joined, Done::Logs(logs))),
        }
    }

    /// `call.decline` (see [`Call::decline`]).
    ///
    /// # Errors
    /// As [`Registry::decline`]; [`CallError::Unavailable`].
    pub async fn decline(
        &self,
        call_id: &str,
        user_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Done, CallError> {
        match self {
            Calls::Local(r) => r.decline(call_id, user_id, conn, now).map(Done::Batch),
            Calls::Shared(s) => s.decline(call_id, user_id, conn, now).await.map(Done::Logs),
        }
    }

    /// `call.leave` by connection `conn`.
    ///
    /// # Errors
    /// As [`Registry::leave`]; [`CallError::Unavailable`].
    pub async fn leave(
        &self,
        call_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Done, CallError> {
        match self {
            Calls::Local(r) => r.leave(call_id, conn, now).map(Done::Batch),
            Calls::Shared(s) => s.leave(call_id, conn, now).await.map(Done::Logs),
        }
    }

    /// Connection `conn` closed: it leaves its call, if any.
    pub async fn disconnect(&self, conn: ConnId, now: &Moment) -> Option<Done> {
        match self {
            Calls::Local(r) => r.disconnect(conn, now).map(Done::Batch),
            Calls::Shared(s) => s.disconnect(conn, now).await.map(Done::Logs),
        }
    }

    /// `call.end` (see [`Call::end`]).
    ///
    /// # Errors
    /// As [`Registry::end`]; [`CallError::Unavailable`].
    pub async fn end(&self, call_id: &str, by: EndBy, now: &Moment) -> Result<Done, CallError> {
        match self {
            Calls::Local(r) => r.end(call_id, by, now).map(Done::Batch),
            Calls::Shared(s) => s.end(call_id, by, now).await.map(Done::Logs),
        }
    }

    /// Connection `conn` hangs up call `call_id` (see [`Call::hang_up`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`;
    /// [`CallError::Unavailable`].
    pub async fn hang_up(
        &self,
        call_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Done, CallError> {
        match self {
            Calls::Local(r) => r.hang_up(call_id, conn, now).map(Done::Batch),
            Calls::Shared(s) => s.hang_up(call_id, conn, now).await.map(Done::Logs),
        }
    }

    /// The call connection `conn` takes part in (a connection is in at most one), if any.
    ///
    /// # Errors
    /// [`CallError::Unavailable`] (shared calls).
    pub async fn call_of(&self, conn: ConnId) -> Result<Option<String>, CallError> {
        match self {
            Calls::Local(r) => Ok(r.call_of(conn)),
            Calls::Shared(s) => s.call_of(conn).await,
        }
    }

    /// The call going on in room `room_id` (a room has at most one), if any.
    ///
    /// # Errors
    /// [`CallError::Unavailable`] (shared calls).
    pub async fn call_in_room(&self, room_id: &str) -> Result<Option<String>, CallError> {
        match self {
            Calls::Local(r) => Ok(r.call_in_room(room_id)),
            Calls::Shared(s) => s.call_in_room(room_id).await,
        }
    }

    /// The participant ids of `user_id` in call `call_id`, other than `conn`'s own, in
    /// join order (empty when the user takes no part).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`;
    /// [`CallError::Unavailable`].
    pub async fn participants_of_user(
        &self,
        conn: ConnId,
        call_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, CallError> {
        match self {
            Calls::Local(r) => r.participants_of_user(conn, call_id, user_id),
            Calls::Shared(s) => s.participants_of_user(conn, call_id, user_id).await,
        }
    }

    /// Room `room_id` was deleted: its call, if any, ends.
    pub async fn close_room(&self, room_id: &str, now: &Moment) -> Option<Done> {
        match self {
            Calls::Local(r) => r.close_room(room_id, now).map(Done::Batch),
            Calls::Shared(s) => s.close_room(room_id, now).await.map(Done::Logs),
        }
    }

    /// `user_id` is no longer a member of `room_id`: they leave its call, if any.
    pub async fn remove_user(&self, room_id: &str, user_id: &str, now: &Moment) -> Option<Done> {
        match self {
            Calls::Local(r) => r.remove_user(room_id, user_id, now).map(Done::Batch),
            Calls::Shared(s) => s.remove_user(room_id, user_id, now).await.map(Done::Logs),
        }
    }

    /// The user of participant `to`, for a signal from `conn` in `call_id`.
    ///
    /// # Errors
    /// As [`Registry::signal_recipient`]; [`CallError::Unavailable`].
    pub async fn signal_recipient(
        &self,
        conn: ConnId,
        call_id: &str,
        to: &str,
    ) -> Result<String, CallError> {
        match self {
            Calls::Local(r) => r.signal_recipient(conn, call_id, to),
            Calls::Shared(s) => s.signal_recipient(conn, call_id, to).await,
        }
    }

    /// `rtc.signal` from `conn`, checked again against the call as it is now.
    ///
    /// # Errors
    /// As [`Registry::relay`]; [`CallError::Unavailable`].
    pub async fn relay(&self, conn: ConnId, signal: SendSignal) -> Result<Done, CallError> {
        match self {
            Calls::Local(r) => r.relay(conn, signal).map(Done::Batch),
            Calls::Shared(s) => s.relay(conn, signal).await.map(|()| Done::Logs(Vec::new())),
        }
    }
}

/// Who receives a published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One connection: a participant (call events, `rtc.signal`).
    Connection(ConnId),
    /// Every connection of one user: ringing and its end (`call.incoming`,
    /// `call.missed`, ...).
    User(String),
    /// Every connection of every member of a room. Not produced by the call state machine
    /// today; part of the vocabulary so that the service maps every target in one place.
    Room(String),
}

/// Something a change to a call does outside the call, in the order given.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Publish `event` to `target`. The effects of one change that send the same event to
    /// several targets share one [`Arc`].
    Publish {
        target: Target,
        event: Arc<Event>,
        /// A connection of the target that does not receive the event (the connection
        /// that answered, for `call.answered_elsewhere`; the one that declined, for its
        /// user's `call.declined`).
        skip_conn: Option<ConnId>,
    },
    /// Store a call log message in the call's room.
    Log(LogEntry),
}

/// A call log message to store: `message_type: "call"`, sent by the call's starter (see
/// `docs/protocol.md`, "Call log").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub room_id: String,
    /// The user who started the call.
    pub caller: MessageSender,
    pub log: CallLog,
}

impl LogEntry {
    /// The message's `content`: a short English line for clients that do not render
    /// `call` themselves, e.g. `Video call ended after 2:05` (minutes and seconds).
    pub fn content(&self) -> String {
        use palaver_protocol::{CallKind, CallLogEvent};
        let kind = match self.log.kind {
            CallKind::Audio => "Audio call",
            CallKind::Video => "Video call",
        };
        match self.log.event {
            CallLogEvent::Started => format!("{kind} started"),
            CallLogEvent::Answered => format!("{kind} answered"),
            CallLogEvent::Missed => format!("Missed {}", kind.to_lowercase()),
            CallLogEvent::Declined => format!("{kind} declined"),
            CallLogEvent::Ended => {
                let secs = self.log.duration_secs.unwrap_or(0);
                format!("{kind} ended after {}:{:02}", secs / 60, secs % 60)
            }
        }
    }
}

/// Why a call request was refused. Converts into the [`AppError`] the client gets (codes
/// and messages as in `docs/protocol.md`, "Call requests").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// `404 not_found`: no such call, it is over, or this connection is not one of its
    /// participants (a call the caller may not see is invisible).
    #[error("call not found")]
    NotFound,
    /// `404 not_found` with `field: "to"`: the signal's `to` is not a participant.
    #[error("participant not found")]
    NoSuchParticipant,
    /// `409 conflict`: this connection is already in call `call_id`.
    #[error("this connection is already in call {call_id}")]
    ConnectionBusy { call_id: String },
    /// `409 conflict`: call `call_id` is going on in the room.
    #[error("call {call_id} is going on in this room: join it with call.accept")]
    RoomBusy { call_id: String },
    /// `409 call_full`: the call has `max` participants.
    #[error("the call already has {max} participants")]
    Full { max: usize },
    /// `409 conflict`: `call.decline` by a user who is not being rung.
    #[error("you are not being rung for this call")]
    NotRinging,
    /// `call.end` by a connection that is not the host. The service then asks the store
    /// whether the user moderates the room; if not, it is `403 forbidden`.
    #[error("only the host or a room owner or admin can end the call")]
    NotHost,
    /// `422 validation_failed` naming `field`.
    #[error("{message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// `503 unavailable`: the calls shared between nodes (in Redis) could not be read or
    /// changed. Never from the state machine itself.
    #[error("calls are unavailable for a moment: try again")]
    Unavailable,
}

impl From<CallError> for AppError {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::NotFound => AppError::not_found("call"),
            CallError::NoSuchParticipant => AppError {
                field: Some("to".into()),
                ..AppError::not_found("participant")
            },
            CallError::ConnectionBusy { .. } | CallError::RoomBusy { .. } => {
                AppError::new(ErrorCode::Conflict, message)
            }
            CallError::NotRinging => AppError::new(ErrorCode::Conflict, message),
            CallError::Full { .. } => AppError::new(ErrorCode::CallFull, message),
            CallError::NotHost => AppError::new(ErrorCode::Forbidden, message),
            CallError::Invalid { field, message } => AppError::validation(field, message),
            CallError::Unavailable => AppError::new(ErrorCode::Unavailable, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::{CallKind, CallLogEvent};

    #[test]
    fn call_log_content_names_the_kind_and_duration() {
        let entry = LogEntry {
            room_id: "r".into(),
            caller: MessageSender {
                id: "u".into(),
                username: "alice".into(),
            },
            log: CallLog {
                call_id: "c".into(),
                kind: CallKind::Video,
                event: CallLogEvent::Ended,
                duration_secs: Some(125),
            },
        };
        assert_eq!(entry.content(), "Video call ended after 2:05");
        let mut missed = entry.clone();
        missed.log.event = CallLogEvent::Missed;
        missed.log.duration_secs = None;
        assert_eq!(missed.content(), "Missed video call");
        let mut started = entry;
        started.log.kind = CallKind::Audio;
        started.log.event = CallLogEvent::Started;
        assert_eq!(started.content(), "Audio call started");
    }

    #[test]
    fn call_errors_map_to_the_documented_codes() {
        let cases = [
            (CallError::NotFound, ErrorCode::NotFound, None),
            (
                CallError::NoSuchParticipant,
                ErrorCode::NotFound,
                Some("to"),
            ),
            (
                CallError::ConnectionBusy {
                    call_id: "c1".into(),
                },
                ErrorCode::Conflict,
                None,
            ),
            (
                CallError::RoomBusy {
                    call_id: "c2".into(),
                },
                ErrorCode::Conflict,
                None,
            ),
            (CallError::Full { max: 2 }, ErrorCode::CallFull, None),
            (CallError::NotRinging, ErrorCode::Conflict, None),
            (CallError::NotHost, ErrorCode::Forbidden, None),
            (CallError::Unavailable, ErrorCode::Unavailable, None),
            (
                CallError::Invalid {
                    field: "to",
                    message: "to must be another participant".into(),
                },
                ErrorCode::ValidationFailed,
                Some("to"),
            ),
        ];
        for (error, code, field) in cases {
            let app = AppError::from(error.clone());
            assert_eq!(app.code, code, "{error:?}");
            assert_eq!(app.field.as_deref(), field, "{error:?}");
        }
        let busy = AppError::from(CallError::RoomBusy {
            call_id: "c2".into(),
        });
        assert!(busy.message.contains("c2"), "names the call: {busy:?}");
    }
}
