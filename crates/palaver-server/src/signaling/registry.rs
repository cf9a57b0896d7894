//! This node's calls, each behind its own lock.
//!
//! # Locks
//! - The **index** (one `std::sync::Mutex` for the node) maps call ids to calls, rooms to
//!   their call, participant connections to their call, and ring deadlines to calls. It is
//!   held only for map lookups and updates: never across an `.await`, never while waiting
//!   for a call's lock.
//! - Each **call** has its own `std::sync::Mutex`. A change locks its call, runs the
//!   synchronous state machine ([`Call`]), updates the index (taking the index lock
//!   *inside* the call lock: the order is always call, then index, so the two cannot
//!   deadlock), and releases both before anything is published. Requests about
//!   different calls never wait for each other, and nothing waits for the broker under a
//!   lock.
//!
//! # Order
//! Effects are carried out after the locks are released, so two changes of one call
//! could race to the broker. To keep every participant's view in the same order (joins,
//! leaves, host changes, signals), each change takes, under its call's lock, the next
//! place in that call's order: a [`Batch`] holds a receiver that completes when the
//! previous batch of the same call has been applied (its [`Turn`] dropped), and the
//! service waits for it before publishing ([`Batch::in_turn`]). The effects of a call are
//! therefore published in exactly the order its changes were made, while changes
//! themselves never wait for publication. A batch that is dropped unapplied (its task
//! cancelled) lets the next one go.
//!
//! A call that ends is taken out of the index while its lock is held; a request that
//! found it just before sees [`Call::is_over`] and gets [`CallError::NotFound`].

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use palaver_protocol::ws::{CallJoined, SendSignal};
use tokio::sync::oneshot;

use super::call::{Call, EndBy, Joiner, LeaveReason, Moment, NewCall};
use super::{CallError, Effect};
use crate::hub::ConnId;

/// This node's calls (see the module docs).
#[derive(Default)]
pub struct Registry {
    index: Mutex<Index>,
}

/// Where to find each call.
#[derive(Default)]
struct Index {
    /// Call id → the call.
    calls: HashMap<String, Arc<Slot>>,
    /// Room id → the id of its call.
    by_room: HashMap<String, String>,
    /// Participant connection → the id of its call.
    by_conn: HashMap<ConnId, String>,
    /// Ring deadlines not yet handled: (when, in Unix milliseconds; call id), earliest
    /// first.
    deadlines: BTreeSet<(i64, String)>,
}

/// One call behind its own lock.
struct Slot(Mutex<Cell>);

/// A call and the end of its publication order.
struct Cell {
    call: Call,
    /// Completes when the latest batch of this call has been applied (see [`Batch`]);
    /// `None` before the first.
    tail: Option<oneshot::Receiver<()>>,
}

impl Cell {
    /// `effects` with the next place in this call's order (none needed when empty).
    fn batch(&mut self, effects: Vec<Effect>) -> Batch {
        if effects.is_empty() {
            return Batch {
                effects,
                previous: None,
                done: None,
            };
        }
        let (done, next) = oneshot::channel();
        Batch {
            effects,
            previous: self.tail.replace(next),
            done: Some(done),
        }
    }
}

/// The effects of one change of a call, in order, with their place in the call's order.
/// Apply them after [`Batch::in_turn`], and drop the [`Turn`] once they are applied.
#[derive(Debug)]
#[must_use = "a batch's effects must be applied"]
pub struct Batch {
    effects: Vec<Effect>,
    /// Completes when the call's previous batch has been applied.
    previous: Option<oneshot::Receiver<()>>,
    /// Dropped when this batch has been applied: completes the next batch's wait.
    done: Option<oneshot::Sender<()>>,
}

impl Batch {
    /// The effects, in order.
    pub fn effects(&self) -> &[Effect] {
        &self.effects
    }

    /// Waits until every earlier batch of the same call has been applied (or dropped),
    /// then gives the effects, and the [`Turn`] to drop once they are applied.
    pub async fn in_turn(mut self) -> (Vec<Effect>, Turn) {
        if let Some(previous) = self.previous.take() {
            // An error means the previous batch was dropped unapplied: also our turn.
            let _ = previous.await;
        }
        (self.effects, Turn { _done: self.done })
    }
}

/// A batch's turn to publish: the call's next batch waits until this is dropped.
#[derive(Debug)]
#[must_use = "dropping the turn at once lets the next batch publish before this one"]
pub struct Turn {
    _done: Option<oneshot::Sender<()>>,
}

impl Registry {
    /// Starts a call (see [`Call::start`]) unless its room has a call or its starting
    /// connection is in one. `admit` runs once those checks have passed and before
    /// anything changes (the per-user rate limit: a refused start must not count); its
    /// error is returned as is.
    ///
    /// # Errors
    /// [`CallError::ConnectionBusy`], then [`CallError::RoomBusy`] (naming the call going
    /// on), then `admit`'s.
    pub fn start<E: From<CallError>>(
        &self,
        new: NewCall,
        now: &Moment,
        admit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(CallJoined, Batch), E> {
        let mut index = self.lock_index();
        if let Some(call_id) = index.by_conn.get(&new.host.conn) {
            return Err(CallError::ConnectionBusy {
                call_id: call_id.clone(),
            }
            .into());
        }
        if let Some(call_id) = index.by_room.get(&new.room_id) {
            return Err(CallError::RoomBusy {
                call_id: call_id.clone(),
            }
            .into());
        }
        admit()?;
        let conn = new.host.conn;
        let (call, reply, effects) = Call::start(new, now);
        let id = call.id().to_owned();
        index.by_room.insert(call.room_id().to_owned(), id.clone());
        index.by_conn.insert(conn, id.clone());
        if let Some(deadline) = call.ring_deadline() {
            index.deadlines.insert((deadline, id.clone()));
        }
        let mut cell = Cell { call, tail: None };
        let batch = cell.batch(effects);
        index.calls.insert(id, Arc::new(Slot(Mutex::new(cell))));
        Ok((reply, batch))
    }

    /// The room of call `call_id`.
    ///
    /// # Errors
    /// [`CallError::NotFound`].
    pub fn room_of(&self, call_id: &str) -> Result<String, CallError> {
        let slot = self.slot(call_id)?;
        let cell = lock(&slot.0);
        live(&cell.call)?;
        Ok(cell.call.room_id().to_owned())
    }

    /// The room of call `call_id` and the users taking part (for the block check before
    /// a join).
    ///
    /// # Errors
    /// [`CallError::NotFound`].
    pub fn room_and_users(&self, call_id: &str) -> Result<(String, BTreeSet<String>), CallError> {
        let slot = self.slot(call_id)?;
        let cell = lock(&slot.0);
        live(&cell.call)?;
        Ok((
            cell.call.room_id().to_owned(),
            cell.call.participant_users(),
        ))
    }

    /// `call.accept` (see [`Call::accept`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::ConnectionBusy`] when the connection is in
    /// this or another call; [`CallError::Full`].
    pub fn accept(
        &self,
        call_id: &str,
        joiner: Joiner,
        max_participants: usize,
        now: &Moment,
    ) -> Result<(CallJoined, Batch), CallError> {
        let slot = self.slot(call_id)?;
        self.change(&slot, |call| {
            live(call)?;
            // Checked and recorded under the index lock: a connection joins one call.
            let mut index = self.lock_index();
            let conn = joiner.conn;
            if let Some(other) = index.by_conn.get(&conn) {
                return Err(CallError::ConnectionBusy {
                    call_id: other.clone(),
                });
            }
            let joined = call.accept(joiner, max_participants, now)?;
            index.by_conn.insert(conn, call.id().to_owned());
            Ok(joined)
        })
    }

    /// `call.decline` (see [`Call::decline`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::NotRinging`].
    pub fn decline(
        &self,
        call_id: &str,
        user_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Batch, CallError> {
        let slot = self.slot(call_id)?;
        let ((), batch) = self.change(&slot, |call| Ok(((), call.decline(user_id, conn, now)?)))?;
        Ok(batch)
    }

    /// `call.leave`: connection `conn` leaves call `call_id` ([`LeaveReason::Left`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`.
    pub fn leave(&self, call_id: &str, conn: ConnId, now: &Moment) -> Result<Batch, CallError> {
        let slot = self.slot_of_participant(conn, call_id)?;
        let ((), batch) = self.change(&slot, |call| {
            Ok(((), call.leave(conn, LeaveReason::Left, now)?))
        })?;
        Ok(batch)
    }

    /// Connection `conn` closed: it leaves its call, if any
    /// ([`LeaveReason::Disconnected`]).
    pub fn disconnect(&self, conn: ConnId, now: &Moment) -> Option<Batch> {
        let slot = {
            let index = self.lock_index();
            let call_id = index.by_conn.get(&conn)?;
            Arc::clone(index.calls.get(call_id)?)
        };
        self.change(&slot, |call| {
            Ok(((), call.leave(conn, LeaveReason::Disconnected, now)?))
        })
        .ok()
        .map(|((), batch)| batch)
    }

    /// `call.end` (see [`Call::end`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::NotHost`].
    pub fn end(&self, call_id: &str, by: EndBy, now: &Moment) -> Result<Batch, CallError> {
        let slot = self.slot(call_id)?;
        let ((), batch) = self.change(&slot, |call| Ok(((), call.end(by, now)?)))?;
        Ok(batch)
    }

    /// Connection `conn` hangs up call `call_id` (see [`Call::hang_up`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`.
    pub fn hang_up(&self, call_id: &str, conn: ConnId, now: &Moment) -> Result<Batch, CallError> {
        let slot = self.slot_of_participant(conn, call_id)?;
        let ((), batch) = self.change(&slot, |call| Ok(((), call.hang_up(conn, now)?)))?;
        Ok(batch)
    }

    /// The call connection `conn` takes part in, if any.
    pub fn call_of(&self, conn: ConnId) -> Option<String> {
        self.lock_index().by_conn.get(&conn).cloned()
    }

    /// The call going on in room `room_id`, if any.
    pub fn call_in_room(&self, room_id: &str) -> Option<String> {
        self.lock_index().by_room.get(room_id).cloned()
    }

    /// The participant ids of `user_id` in call `call_id` other than `conn`'s own (see
    /// [`Call::participants_of_user`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`.
    pub fn participants_of_user(
        &self,
        conn: ConnId,
        call_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, CallError> {
        let slot = self.slot_of_participant(conn, call_id)?;
        let cell = lock(&slot.0);
        cell.call.participants_of_user(conn, user_id)
    }

    /// Room `room_id` was deleted: its call, if any, ends (see [`Call::close_room`]).
    pub fn close_room(&self, room_id: &str, now: &Moment) -> Option<Batch> {
        let slot = self.slot_of_room(room_id)?;
        self.change(&slot, |call| Ok(((), call.close_room(now))))
            .ok()
            .map(|((), batch)| batch)
    }

    /// `user_id` is no longer a member of `room_id`: they leave its call, if any (see
    /// [`Call::remove_user`]).
    pub fn remove_user(&self, room_id: &str, user_id: &str, now: &Moment) -> Option<Batch> {
        let slot = self.slot_of_room(room_id)?;
        self.change(&slot, |call| Ok(((), call.remove_user(user_id, now))))
            .ok()
            .map(|((), batch)| batch)
    }

    /// The user of participant `to`, for a signal from `conn` in `call_id` (see
    /// [`Call::signal_recipient`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`;
    /// [`CallError::NoSuchParticipant`]; [`CallError::Invalid`] (`to` oneself).
    pub fn signal_recipient(
        &self,
        conn: ConnId,
        call_id: &str,
        to: &str,
    ) -> Result<String, CallError> {
        let slot = self.slot_of_participant(conn, call_id)?;
        let cell = lock(&slot.0);
        cell.call.signal_recipient(conn, to).map(str::to_owned)
    }

    /// `rtc.signal` from `conn` (see [`Call::relay`]), checked again against the call as
    /// it is now: both ends must still be participants.
    ///
    /// # Errors
    /// As [`Registry::signal_recipient`].
    pub fn relay(&self, conn: ConnId, signal: SendSignal) -> Result<Batch, CallError> {
        let slot = self.slot_of_participant(conn, &signal.call_id)?;
        let ((), batch) = self.change(&slot, |call| Ok(((), call.relay(conn, signal)?)))?;
        Ok(batch)
    }

    /// The ring timer: every call whose ring deadline is at or before `now.at` times out
    /// (see [`Call::ring_timeout`]), once. Returns the non-empty batches.
    pub fn expire_ringing(&self, now: &Moment) -> Vec<Batch> {
        let due: Vec<Arc<Slot>> = {
            let mut index = self.lock_index();
            let mut due = Vec::new();
            while index
                .deadlines
                .first()
                .is_some_and(|(deadline, _)| *deadline <= now.at)
            {
                let Some((_, call_id)) = index.deadlines.pop_first() else {
                    break;
                };
                if let Some(slot) = index.calls.get(&call_id) {
                    due.push(Arc::clone(slot));
                }
            }
            due
        };
        due.iter()
            .filter_map(|slot| {
                self.change(slot, |call| Ok(((), call.ring_timeout(now))))
                    .ok()
            })
            .map(|((), batch)| batch)
            .filter(|batch| !batch.effects.is_empty())
            .collect()
    }

    /// How many calls this node holds.
    pub fn len(&self) -> usize {
        self.lock_index().calls.len()
    }

    /// Whether this node holds no call.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on the call of `slot` under its lock; then brings the index up to date
    /// with the call's participants (and takes an ended call out), and gives the effects
    /// their place in the call's order. When `f` fails, nothing has changed.
    fn change<T>(
        &self,
        slot: &Slot,
        f: impl FnOnce(&mut Call) -> Result<(T, Vec<Effect>), CallError>,
    ) -> Result<(T, Batch), CallError> {
        let mut cell = lock(&slot.0);
        let before = cell.call.conns();
        let (value, effects) = f(&mut cell.call)?;
        self.reindex(&cell.call, &before);
        Ok((value, cell.batch(effects)))
    }

    /// Updates the index after a change of `call`, whose participants' connections were
    /// `before`. Called under the call's lock.
    fn reindex(&self, call: &Call, before: &[ConnId]) {
        let after = call.conns();
        if !call.is_over() && after == before {
            return;
        }
        let id = call.id();
        let mut index = self.lock_index();
        for conn in before.iter().filter(|c| !after.contains(c)) {
            if index.by_conn.get(conn).is_some_and(|c| c == id) {
                index.by_conn.remove(conn);
            }
        }
        for conn in after.iter().filter(|c| !before.contains(c)) {
            index.by_conn.entry(*conn).or_insert_with(|| id.to_owned());
        }
        if call.is_over() {
            index.calls.remove(id);
            if index.by_room.get(call.room_id()).is_some_and(|c| c == id) {
                index.by_room.remove(call.room_id());
            }
            if let Some(deadline) = call.ring_deadline() {
                index.deadlines.remove(&(deadline, id.to_owned()));
            }
        }
    }

    fn lock_index(&self) -> MutexGuard<'_, Index> {
        lock(&self.index)
    }

    /// The call `call_id`.
    fn slot(&self, call_id: &str) -> Result<Arc<Slot>, CallError> {
        self.lock_index()
            .calls
            .get(call_id)
            .cloned()
            .ok_or(CallError::NotFound)
    }

    /// The call `call_id`, if `conn` takes part in it; else not found (for a connection
    /// that is not a participant, the call is invisible).
    fn slot_of_participant(&self, conn: ConnId, call_id: &str) -> Result<Arc<Slot>, CallError> {
        let index = self.lock_index();
        match index.by_conn.get(&conn) {
            Some(id) if id == call_id => index.calls.get(call_id).cloned(),
            _ => None,
        }
        .ok_or(CallError::NotFound)
    }

    /// The call going on in `room_id`.
    fn slot_of_room(&self, room_id: &str) -> Option<Arc<Slot>> {
        let index = self.lock_index();
        let call_id = index.by_room.get(room_id)?;
        index.calls.get(call_id).cloned()
    }
}

/// [`CallError::NotFound`] for a call that is over.
fn live(call: &Call) -> Result<(), CallError> {
    if call.is_over() {
        Err(CallError::NotFound)
    } else {
        Ok(())
    }
}

/// Locks `mutex`. The state under these locks is changed only by code that does not
/// panic midway, so a poisoned lock (a panic elsewhere in the critical section) still
/// holds consistent state: use it rather than fail every later call request.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use palaver_protocol::ws::{Event, SdpType, SessionDescription};
    use palaver_protocol::CallKind;

    use super::*;
    use crate::signaling::Target;

    const A: ConnId = 1;
    const B: ConnId = 2;
    const C: ConnId = 3;

    use crate::signaling::test_clock::Clock;

    fn joiner(user: &str, conn: ConnId) -> Joiner {
        Joiner {
            participant_id: format!("p-{user}-{conn}"),
            user_id: user.to_owned(),
            username: user.to_owned(),
            conn,
        }
    }

    fn new_call(call_id: &str, room_id: &str, host: Joiner, ringing: &[&str]) -> NewCall {
        NewCall {
            call_id: call_id.into(),
            room_id: room_id.into(),
            kind: CallKind::Audio,
            host,
            ringing: ringing.iter().map(|u| (*u).to_owned()).collect(),
            ring_for: Duration::from_secs(30),
            offer: None,
        }
    }

    /// Starts `call_id` in `room_id` with `host`, admitted.
    fn start(
        registry: &Registry,
        clock: &Clock,
        call_id: &str,
        room_id: &str,
        host: Joiner,
        ringing: &[&str],
    ) -> Batch {
        let (_, batch) = registry
            .start::<CallError>(
                new_call(call_id, room_id, host, ringing),
                &clock.at(0),
                || Ok(()),
            )
            .expect("the start is admitted");
        batch
    }

    fn offer(call_id: &str, to: &str) -> SendSignal {
        SendSignal {
            call_id: call_id.into(),
            to: to.into(),
            description: Some(SessionDescription {
                kind: SdpType::Offer,
                sdp: String::new(),
            }),
            candidate: None,
        }
    }

    #[test]
    fn one_call_per_room_and_per_connection() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let _ = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);

        let mut admitted = false;
        let busy_room = registry.start::<CallError>(
            new_call("c2", "r1", joiner("carol", C), &[]),
            &clock.at(1),
            || {
                admitted = true;
                Ok(())
            },
        );
        assert_eq!(
            busy_room.unwrap_err(),
            CallError::RoomBusy {
                call_id: "c1".into()
            }
        );
        let busy_conn = registry.start::<CallError>(
            new_call("c2", "r2", joiner("alice", A), &[]),
            &clock.at(1),
            || {
                admitted = true;
                Ok(())
            },
        );
        assert_eq!(
            busy_conn.unwrap_err(),
            CallError::ConnectionBusy {
                call_id: "c1".into()
            }
        );
        assert!(!admitted, "refused starts are not counted");

        // A refusal by `admit` (the rate limit) leaves nothing behind.
        let limited = registry.start(
            new_call("c2", "r2", joiner("carol", C), &["bob"]),
            &clock.at(1),
            || Err(CallError::NotRinging),
        );
        assert_eq!(limited.unwrap_err(), CallError::NotRinging);
        assert_eq!(registry.len(), 1);
        assert!(registry.room_of("c2").is_err());

        // A connection in one call cannot join another.
        let _ = start(&registry, &clock, "c2", "r2", joiner("carol", C), &["bob"]);
        assert_eq!(
            registry
                .accept("c2", joiner("alice", A), 8, &clock.at(2))
                .unwrap_err(),
            CallError::ConnectionBusy {
                call_id: "c1".into()
            }
        );
        let (reply, _) = registry
            .accept("c2", joiner("bob", B), 8, &clock.at(2))
            .unwrap();
        assert_eq!(reply.call.participants.len(), 2);
        assert_eq!(
            registry
                .accept("c1", joiner("bob", B), 8, &clock.at(3))
                .unwrap_err(),
            CallError::ConnectionBusy {
                call_id: "c2".into()
            }
        );
    }

    #[test]
    fn an_ended_call_frees_its_room_and_connections() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let _ = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        let _ = registry
            .accept("c1", joiner("bob", B), 8, &clock.at(1))
            .unwrap();

        let batch = registry.leave("c1", A, &clock.at(2)).unwrap();
        assert_eq!(batch.effects().len(), 2, "participant_left, host_changed");
        assert_eq!(
            registry.leave("c1", A, &clock.at(3)).unwrap_err(),
            CallError::NotFound,
            "left already"
        );
        let batch = registry.disconnect(B, &clock.at(4)).expect("B was in c1");
        assert!(matches!(batch.effects(), [Effect::Log(_)]));
        assert!(registry.is_empty());
        assert_eq!(registry.room_of("c1").unwrap_err(), CallError::NotFound);
        assert!(registry.disconnect(B, &clock.at(5)).is_none());

        // Room and connections are free for a new call.
        let _ = start(&registry, &clock, "c2", "r1", joiner("bob", B), &["alice"]);
        let _ = registry
            .accept("c2", joiner("alice", A), 8, &clock.at(6))
            .unwrap();
        assert_eq!(
            registry
                .close_room("r1", &clock.at(7))
                .map(|b| b.effects().len()),
            Some(2)
        );
        assert!(registry.is_empty());
        assert!(registry.close_room("r1", &clock.at(8)).is_none());
    }

    #[test]
    fn signals_need_the_sender_in_that_call() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let _ = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        let _ = registry
            .accept("c1", joiner("bob", B), 8, &clock.at(1))
            .unwrap();
        let _ = start(&registry, &clock, "c2", "r2", joiner("carol", C), &[]);

        assert_eq!(
            registry.signal_recipient(A, "c1", "p-bob-2").as_deref(),
            Ok("bob")
        );
        let batch = registry.relay(A, offer("c1", "p-bob-2")).unwrap();
        assert!(matches!(
            batch.effects(),
            [Effect::Publish {
                target: Target::Connection(B),
                ..
            }]
        ));
        // Carol, in another call, reaches no one in c1, through either call id.
        assert_eq!(
            registry.relay(C, offer("c1", "p-alice-1")).unwrap_err(),
            CallError::NotFound
        );
        assert_eq!(
            registry.relay(C, offer("c2", "p-alice-1")).unwrap_err(),
            CallError::NoSuchParticipant
        );
        assert_eq!(
            registry.signal_recipient(C, "c1", "p-alice-1").unwrap_err(),
            CallError::NotFound
        );
    }

    #[test]
    fn a_connections_call_and_a_users_participants_are_found_and_hung_up() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let _ = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        let _ = registry
            .accept("c1", joiner("bob", B), 8, &clock.at(1))
            .unwrap();
        let _ = start(&registry, &clock, "c2", "r2", joiner("carol", C), &[]);

        assert_eq!(registry.call_of(A).as_deref(), Some("c1"));
        assert_eq!(registry.call_of(C).as_deref(), Some("c2"));
        assert_eq!(registry.call_of(99), None);
        assert_eq!(
            registry.participants_of_user(A, "c1", "bob"),
            Ok(vec!["p-bob-2".to_owned()])
        );
        assert_eq!(
            registry.participants_of_user(C, "c1", "bob"),
            Err(CallError::NotFound),
            "carol is not in c1"
        );
        assert_eq!(
            registry.hang_up("c1", C, &clock.at(2)).unwrap_err(),
            CallError::NotFound
        );

        // Bob hangs up the call of two: it ends, and frees both connections.
        let batch = registry.hang_up("c1", B, &clock.at(2)).unwrap();
        assert_eq!(batch.effects().len(), 3, "ended to both, the log entry");
        assert_eq!(registry.call_of(A), None);
        assert_eq!(registry.call_of(B), None);
        assert_eq!(registry.room_of("c1").unwrap_err(), CallError::NotFound);
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn ring_deadlines_fire_once_when_due() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let _ = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        assert!(registry.expire_ringing(&clock.at(29)).is_empty());
        let batches = registry.expire_ringing(&clock.at(30));
        assert_eq!(batches.len(), 1);
        assert_eq!(
            batches[0].effects().len(),
            3,
            "missed, ended, the log entry"
        );
        assert!(registry.is_empty(), "unanswered: it ended");
        assert!(registry.expire_ringing(&clock.at(31)).is_empty());
    }

    #[test]
    fn a_removed_member_leaves_the_rooms_call() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let _ = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        let _ = registry
            .accept("c1", joiner("bob", B), 8, &clock.at(1))
            .unwrap();
        assert!(registry.remove_user("r2", "bob", &clock.at(2)).is_none());
        let batch = registry.remove_user("r1", "bob", &clock.at(2)).unwrap();
        assert_eq!(
            batch.effects().len(),
            2,
            "ended (removed), participant_left"
        );
        assert_eq!(
            registry.leave("c1", B, &clock.at(3)).unwrap_err(),
            CallError::NotFound,
            "bob's connection is out"
        );
        // Bob's connection may now start a call elsewhere.
        let _ = start(&registry, &clock, "c2", "r2", joiner("bob", B), &[]);
    }

    /// Checks that the index and the calls agree: every indexed connection is a
    /// participant of its call and every participant is indexed; every room maps to a
    /// live call in that room; every call is live and indexed by its room.
    fn assert_consistent(registry: &Registry) {
        let index = registry.lock_index();
        for (conn, call_id) in &index.by_conn {
            let slot = index
                .calls
                .get(call_id)
                .expect("an indexed connection's call");
            let cell = lock(&slot.0);
            assert!(cell.call.conns().contains(conn), "{conn} in {call_id}");
        }
        for (call_id, slot) in &index.calls {
            let cell = lock(&slot.0);
            assert!(!cell.call.is_over(), "{call_id} is over but indexed");
            assert_eq!(index.by_room.get(cell.call.room_id()), Some(call_id));
            for conn in cell.call.conns() {
                assert_eq!(index.by_conn.get(&conn), Some(call_id), "conn {conn}");
            }
        }
        assert_eq!(index.by_room.len(), index.calls.len());
    }

    /// Threads starting, joining, leaving and closing calls in a few rooms at once leave
    /// the index consistent, and empty once every connection has gone.
    #[test]
    fn concurrent_changes_keep_the_index_consistent() {
        const THREADS: u64 = 4;
        const CONNS_PER_THREAD: u64 = 5;
        let registry = Arc::new(Registry::default());
        let clock = Arc::new(Clock::new());
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let registry = Arc::clone(&registry);
                let clock = Arc::clone(&clock);
                std::thread::spawn(move || {
                    // A small linear congruential generator: varied, and the same every run.
                    let mut seed = t + 1;
                    let mut next = move |n: u64| {
                        seed = seed
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        (seed >> 33) % n
                    };
                    let user = format!("u{t}");
                    for i in 0..2_000 {
                        let conn = t * 100 + next(CONNS_PER_THREAD);
                        let room = format!("r{}", next(3));
                        let now = clock.at(1);
                        match next(4) {
                            0 => {
                                let new = new_call(
                                    &format!("c-{t}-{i}"),
                                    &room,
                                    joiner(&user, conn),
                                    &["someone"],
                                );
                                let _ = registry.start::<CallError>(new, &now, || Ok(()));
                            }
                            1 => {
                                let call_id = registry.lock_index().by_room.get(&room).cloned();
                                if let Some(call_id) = call_id {
                                    let _ = registry.accept(&call_id, joiner(&user, conn), 3, &now);
                                }
                            }
                            2 => {
                                let _ = registry.disconnect(conn, &now);
                            }
                            _ => {
                                let _ = registry.close_room(&room, &now);
                            }
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_consistent(&registry);

        for t in 0..THREADS {
            for c in 0..CONNS_PER_THREAD {
                let _ = registry.disconnect(t * 100 + c, &clock.at(2));
            }
        }
        assert!(registry.is_empty());
        let index = registry.lock_index();
        assert!(index.by_room.is_empty() && index.by_conn.is_empty());
        assert!(index.deadlines.is_empty());
    }

    /// The order of one call's batches holds however their tasks are scheduled; other
    /// calls' batches do not wait for it.
    #[tokio::test]
    async fn batches_of_one_call_publish_in_the_order_of_their_changes() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let first = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        let (_, second) = registry
            .accept("c1", joiner("bob", B), 8, &clock.at(1))
            .unwrap();
        let third = registry.relay(B, offer("c1", "p-alice-1")).unwrap();
        let other = start(&registry, &clock, "c2", "r2", joiner("carol", C), &["dan"]);

        let published = Arc::new(Mutex::new(Vec::new()));
        let apply = |name: &'static str, batch: Batch| {
            let published = Arc::clone(&published);
            tokio::spawn(async move {
                let (_effects, turn) = batch.in_turn().await;
                published.lock().unwrap().push(name);
                drop(turn);
            })
        };
        // Later changes are handed over first; the call's order still wins.
        let third = apply("third", third);
        let second = apply("second", second);
        let other = apply("other call", other);
        other.await.unwrap();
        assert_eq!(
            *published.lock().unwrap(),
            ["other call"],
            "another call does not wait for c1"
        );
        let first = apply("first", first);
        for task in [first, second, third] {
            task.await.unwrap();
        }
        assert_eq!(
            *published.lock().unwrap(),
            ["other call", "first", "second", "third"]
        );
    }

    #[tokio::test]
    async fn a_batch_dropped_unapplied_lets_the_next_one_go() {
        let (registry, clock) = (Registry::default(), Clock::new());
        let first = start(&registry, &clock, "c1", "r1", joiner("alice", A), &["bob"]);
        let second = registry.leave("c1", A, &clock.at(1)).unwrap();
        drop(first);
        let (effects, _turn) = tokio::time::timeout(Duration::from_secs(10), second.in_turn())
            .await
            .expect("not stuck behind a dropped batch");
        assert!(effects.iter().any(|e| matches!(
            e,
            Effect::Publish { event, .. } if matches!(&**event, Event::CallEnded(_))
        )));
    }
}
