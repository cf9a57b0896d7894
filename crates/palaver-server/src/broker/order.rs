//! Room-seq order across nodes: every change of a room reaches this node's connections in
//! seq order, once, even when several nodes publish and Redis loses some of it.
//!
//! On one node, the room's turn makes publish order seq order. With several nodes it does
//! not: node A commits seq 5 and node B seq 6, and B's note may reach node C first (or C
//! may have committed 6 itself). Worse, Redis may lose notes (a restart, a cut
//! connection, a node that dies between its commit and its publish). The database holds
//! every change, so each node keeps, per room that has local connections, the next seq it
//! expects ([`RoomOrder`]):
//!
//! - the expected seq is delivered at once, followed by any held ones that now follow it;
//! - a seq below it was delivered already (or is older than every local connection's
//!   snapshot): dropped;
//! - a seq above it opens a **gap**: it is held, and if the gap is still open after
//!   [`GAP_WAIT`] the node reads the room's changes after the last seq it delivered from
//!   the database ([`ChangeSource`]) and delivers them in seq order, then what it held
//!   beyond them. While that read runs, new changes of the room are held too, so the
//!   order never breaks;
//! - when the node subscribes to a room's channel (its first local connection came, or
//!   the subscription broke and came back: [`Sequencer::subscribed`]), or another node
//!   reports that it had to drop notes it could not publish
//!   ([`Sequencer::repair_rooms`]), the room is read again in the same way, since a
//!   note lost or published before the subscription took effect leaves no gap until the
//!   room's next change.
//!
//! - every [`AUDIT_EVERY`] the node reads, in one query, the `last_seq` of every room it
//!   orders; a room whose database stays ahead of what the node delivered across two
//!   audits lost a change that nothing revealed (the last change of a room whose node
//!   died between its commit and its publish) and is read again
//!   ([`Sequencer::spawn_audit`]).
//!
//! Where the expected seq starts: a connection's `ready` snapshot gives each of its rooms'
//! `last_seq`, read *after* the connection was registered with the hub, so every later
//! change reaches it live; [`Sequencer::baseline`] records it if the room had no order
//! yet. A room first seen through a live change (a user who just joined, on a node with
//! no other connection of that room) waits [`GAP_WAIT`] for lower seqs still on their
//! way, then starts at the lowest it holds.
//!
//! A user who joins a room on another node reaches this one on the user's channel, with
//! the room's `last_seq` read before the join, which starts the room's order here if
//! the node did not serve it.
//!
//! Rooms without local connections keep no order (their changes reach no one here; the
//! broker drops a room's order when it unsubscribes: [`Sequencer::forget`]), so the
//! memory held is one small entry per room this node serves.
//!
//! A replayed change is the message's current state at the seq of its latest change, as
//! in a client's own resume (`docs/protocol.md`, "Resume"): a message created and then
//! edited within a gap arrives once, as `message.created` with the edit, at the edit's
//! seq. Clients see seqs increase, possibly with holes where a change was superseded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use palaver_protocol::ws::Event;

use super::{Envelope, Topic};
use crate::hub::Hub;
use crate::metrics::Metrics;

/// How long a gap may stay open before the node reads the missing changes from the
/// database. Notes from two nodes normally cross Redis within a millisecond or two; this
/// leaves room for a busy node without holding a lost change for long.
pub const GAP_WAIT: Duration = Duration::from_millis(150);

/// How often a node checks, in one query, that it delivered every committed change of
/// the rooms it serves ([`Sequencer::spawn_audit`]).
pub const AUDIT_EVERY: Duration = Duration::from_secs(5);

/// The longest wait between two attempts at reading a gap that failed.
const MAX_RETRY: Duration = Duration::from_secs(2);

/// The changes of a room read from the database, for repairing a gap.
#[async_trait]
pub trait ChangeSource: Send + Sync {
    /// Every change of `room_id` after seq `after`, as `(seq, event)` in seq order (each
    /// message once, in its current state, at the seq of its latest change: see
    /// `Service::replay`), and the seq up to which they reflect every change.
    ///
    /// # Errors
    /// The store failed.
    async fn changes_after(
        &self,
        room_id: &str,
        after: i64,
    ) -> anyhow::Result<(Vec<(i64, Event)>, i64)>;

    /// `(room_id, last_seq)` of each of `room_ids` that exists, in no particular order.
    ///
    /// # Errors
    /// The store failed.
    async fn last_seqs(&self, room_ids: &[String]) -> anyhow::Result<Vec<(String, i64)>>;
}

/// One room's order on this node.
#[derive(Default)]
struct RoomOrder {
    /// The seq to deliver next; `None` while the room's starting point is not known yet.
    next: Option<i64>,
    /// Changes that arrived ahead of `next`, by seq.
    held: BTreeMap<i64, Envelope>,
    /// A check of the gap (or of the starting point) is scheduled or a repair is running;
    /// no other is started meanwhile.
    waiting: bool,
    /// A repair is running: everything is held until it ends.
    repairing: bool,
    /// A repair was asked for while one ran: run another when it ends.
    again: bool,
    /// The node is subscribed to the room's channel (it hears every change published
    /// from now on).
    heard: bool,
}

/// Per-room seq order for the changes this node delivers (see the module docs).
pub struct Sequencer {
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    rooms: Mutex<HashMap<String, Arc<Mutex<RoomOrder>>>>,
    source: Mutex<Option<Weak<dyn ChangeSource>>>,
    /// Itself, for the tasks it spawns.
    me: Weak<Sequencer>,
}

impl Sequencer {
    /// A sequencer delivering to `hub`. Gaps wait (and are not repaired) until
    /// [`Sequencer::attach`] gives it the database.
    pub fn new(hub: Arc<Hub>, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new_cyclic(|me| Sequencer {
            hub,
            metrics,
            rooms: Mutex::new(HashMap::new()),
            source: Mutex::new(None),
            me: me.clone(),
        })
    }

    /// Where gaps are read from (the service; held weakly, so it is not kept alive).
    pub fn attach(&self, source: Weak<dyn ChangeSource>) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(source);
    }

    fn room(&self, room_id: &str) -> Arc<Mutex<RoomOrder>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(order) = rooms.get(room_id) {
            return Arc::clone(order);
        }
        Arc::clone(rooms.entry(room_id.to_owned()).or_default())
    }

    /// Delivers `envelope` to the hub: at once if it is not a room change, else in the
    /// room's seq order (held, dropped or repaired as the module docs say).
    pub fn deliver(&self, envelope: Envelope) {
        let (Topic::Room(room_id), Some(seq)) = (&envelope.topic, envelope.seq) else {
            self.hub.deliver(&envelope);
            return;
        };
        if !self.hub.has_room(room_id) {
            // No local connection: nothing to deliver, no order to keep (an order kept
            // would fall behind). A connection registering meanwhile reads a snapshot
            // that already holds this change, and starts the order again.
            let mut rooms = self.rooms.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(order) = rooms.get(room_id) {
                let idle = order
                    .try_lock()
                    .is_ok_and(|o| !o.waiting && !o.repairing && o.held.is_empty());
                if idle {
                    rooms.remove(room_id);
                }
            }
            return;
        }
        let room_id = room_id.clone();
        let order = self.room(&room_id);
        let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
        match o.next {
            Some(next) if !o.repairing => {
                if seq < next {
                    return;
                }
                if seq == next {
                    self.hub.deliver(&envelope);
                    o.next = Some(seq + 1);
                    self.release(&mut o);
                } else {
                    o.held.insert(seq, envelope);
                }
            }
            _ => {
                o.held.insert(seq, envelope);
            }
        }
        if !o.held.is_empty() && !o.waiting {
            o.waiting = true;
            self.check_later(room_id);
        }
    }

    /// Records that a connection's snapshot of `room_id` reflects every change up to
    /// `last_seq` (read after the connection was registered): if this node had no order
    /// for the room yet, it starts after `last_seq`.
    ///
    /// If the node is already subscribed to the room ([`Sequencer::subscribed`]), the
    /// room is read from the database from there, for what was published before the
    /// subscription took effect.
    pub fn baseline(&self, room_id: &str, last_seq: i64) {
        if !self.hub.has_room(room_id) {
            return;
        }
        let order = self.room(room_id);
        let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
        if o.next.is_none() {
            o.next = Some(last_seq + 1);
            o.held = o.held.split_off(&(last_seq + 1));
            if !o.repairing {
                self.release(&mut o);
            }
            if o.heard {
                drop(o);
                self.repair_soon(room_id.to_owned(), &order);
            }
        }
    }

    /// The node is now subscribed to `room_id`'s channel: what was published before that
    /// is read from the database (at once if the room's starting point is known, else
    /// when [`Sequencer::baseline`] gives it).
    pub fn subscribed(&self, room_id: &str) {
        let order = self.room(room_id);
        let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
        o.heard = true;
        if o.next.is_some() {
            drop(o);
            self.repair_soon(room_id.to_owned(), &order);
        }
    }

    /// The node stopped serving `room_id` (unsubscribed): its order is dropped.
    pub fn forget(&self, room_id: &str) {
        self.rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(room_id);
    }

    /// The rooms whose starting point is known and that wait for nothing (no gap, no
    /// repair), with the seq each expects next.
    fn positions(&self) -> Vec<(String, i64)> {
        let rooms: Vec<(String, Arc<Mutex<RoomOrder>>)> = self
            .rooms
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, o)| (id.clone(), Arc::clone(o)))
            .collect();
        rooms
            .into_iter()
            .filter_map(|(id, order)| {
                let o = order.lock().unwrap_or_else(PoisonError::into_inner);
                match o.next {
                    Some(next) if !o.waiting && !o.repairing => Some((id, next)),
                    _ => None,
                }
            })
            .collect()
    }

    /// Every [`AUDIT_EVERY`], reads the `last_seq` of every room this node orders. A room
    /// whose database was ahead of what this node delivered at the previous audit, and
    /// still is, lost a change that no later change revealed as a gap (its node died
    /// between its commit and its publish): it is read again. A change merely on its way
    /// is not read twice: it has arrived by the next audit. Ends when the sequencer is
    /// dropped.
    pub fn spawn_audit(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            // Room → its database's `last_seq`, seen ahead of this node at the last audit.
            let mut ahead: HashMap<String, i64> = HashMap::new();
            let mut tick = tokio::time::interval(AUDIT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                let positions = me.positions();
                let source = me
                    .source
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .and_then(Weak::upgrade);
                let Some(source) = source else { continue };
                if positions.is_empty() {
                    ahead.clear();
                    continue;
                }
                let ids: Vec<String> = positions.iter().map(|(id, _)| id.clone()).collect();
                let seqs = match source.last_seqs(&ids).await {
                    Ok(seqs) => seqs,
                    Err(e) => {
                        tracing::warn!(error = %e, "auditing the rooms' seqs failed");
                        continue;
                    }
                };
                let next: HashMap<&str, i64> =
                    positions.iter().map(|(id, n)| (id.as_str(), *n)).collect();
                let mut still = HashMap::new();
                for (room_id, last_seq) in seqs {
                    let Some(&expected) = next.get(room_id.as_str()) else {
                        continue;
                    };
                    if last_seq < expected {
                        continue;
                    }
                    if ahead.get(&room_id).is_some_and(|&was| was >= expected) {
                        tracing::info!(
                            room_id,
                            expected,
                            last_seq,
                            "a room's change never arrived; reading it"
                        );
                        me.repair_rooms(std::slice::from_ref(&room_id));
                    } else {
                        still.insert(room_id, last_seq);
                    }
                }
                ahead = still;
            }
        });
    }

    /// Reads the rooms `room_ids` again (those this node keeps an order for).
    pub fn repair_rooms(&self, room_ids: &[String]) {
        for room_id in room_ids {
            let order = self
                .rooms
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(room_id)
                .cloned();
            if let Some(order) = order {
                self.repair_soon(room_id.clone(), &order);
            }
        }
    }

    fn repair_soon(&self, room_id: String, order: &Mutex<RoomOrder>) {
        let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
        if o.next.is_none() {
            return;
        }
        if o.repairing {
            o.again = true;
            return;
        }
        o.repairing = true;
        o.waiting = true;
        drop(o);
        self.spawn_repair(room_id);
    }

    /// Delivers the held changes that follow `next`, in order.
    fn release(&self, o: &mut RoomOrder) {
        let Some(mut next) = o.next else { return };
        while let Some(entry) = o.held.first_entry() {
            let seq = *entry.key();
            if seq < next {
                entry.remove();
                continue;
            }
            if seq > next {
                break;
            }
            let envelope = entry.remove();
            self.hub.deliver(&envelope);
            next = seq + 1;
        }
        o.next = Some(next);
    }

    /// After [`GAP_WAIT`]: starts the room at its lowest held seq if its starting point
    /// is still unknown, and repairs it from the database if a gap is still open.
    fn check_later(&self, room_id: String) {
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep(GAP_WAIT).await;
            let Some(me) = me.upgrade() else { return };
            let order = me.room(&room_id);
            let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
            if o.repairing {
                return;
            }
            if o.next.is_none() {
                o.next = o.held.keys().next().copied();
                me.release(&mut o);
            }
            if o.held.is_empty() {
                o.waiting = false;
                return;
            }
            o.repairing = true;
            drop(o);
            me.spawn_repair(room_id);
        });
    }

    /// Reads the room's changes after the last delivered seq and delivers them, then what
    /// was held beyond them. Tries again with a growing wait while the store fails.
    fn spawn_repair(&self, room_id: String) {
        let me = self.me.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(50);
            loop {
                let Some(me) = me.upgrade() else { return };
                let order = me.room(&room_id);
                let after = {
                    let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
                    o.again = false;
                    match o.next {
                        Some(next) => next - 1,
                        None => {
                            o.repairing = false;
                            o.waiting = false;
                            return;
                        }
                    }
                };
                let source = me
                    .source
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .and_then(Weak::upgrade);
                let read = match source {
                    Some(source) => source.changes_after(&room_id, after).await,
                    None => Err(anyhow::anyhow!("no database attached yet")),
                };
                let mut o = order.lock().unwrap_or_else(PoisonError::into_inner);
                match read {
                    Ok((changes, up_to)) => {
                        let replayed = changes.len();
                        for (seq, event) in changes {
                            if o.next.is_some_and(|next| seq >= next) {
                                let envelope = Envelope::room(&room_id, event).change(seq);
                                me.hub.deliver(&envelope);
                                o.next = Some(seq + 1);
                            }
                        }
                        if o.next.is_some_and(|next| next <= up_to) {
                            o.next = Some(up_to + 1);
                        }
                        me.metrics.broker_replayed_changes.inc_by(replayed as u64);
                        if replayed > 0 {
                            tracing::info!(
                                room_id,
                                after,
                                up_to,
                                replayed,
                                "replayed a gap from the database"
                            );
                        }
                        me.release(&mut o);
                        if o.again {
                            drop(o);
                            continue;
                        }
                        o.repairing = false;
                        if o.held.is_empty() {
                            o.waiting = false;
                        } else {
                            // Still a gap beyond what the database had when read: a change
                            // committed since, whose note is on its way. Check again.
                            drop(o);
                            me.check_later(room_id);
                        }
                        return;
                    }
                    Err(e) => {
                        drop(o);
                        tracing::warn!(room_id, error = %e, "reading a gap from the database failed; retrying");
                        drop(me);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_RETRY);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::wire::Wire;
    use palaver_protocol::ws::RoomDeleted;

    /// A change event whose frame carries `marker` (as its `room_id`).
    fn event(marker: &str) -> Event {
        Event::RoomDeleted(RoomDeleted {
            room_id: marker.to_owned(),
        })
    }

    fn change(seq: i64) -> Envelope {
        Envelope::room("r", event(&format!("live {seq}"))).change(seq)
    }

    /// The database of the tests: every seq in `(after, last_seq]`, marked `db`.
    struct Database {
        last_seq: Mutex<i64>,
        reads: Mutex<Vec<i64>>,
    }

    #[async_trait]
    impl ChangeSource for Database {
        async fn changes_after(
            &self,
            _room_id: &str,
            after: i64,
        ) -> anyhow::Result<(Vec<(i64, Event)>, i64)> {
            self.reads.lock().unwrap().push(after);
            let last = *self.last_seq.lock().unwrap();
            let changes = (after + 1..=last)
                .map(|seq| (seq, event(&format!("db {seq}"))))
                .collect();
            Ok((changes, last.max(after)))
        }

        async fn last_seqs(&self, room_ids: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
            let last = *self.last_seq.lock().unwrap();
            Ok(room_ids.iter().map(|id| (id.clone(), last)).collect())
        }
    }

    struct Setup {
        order: Arc<Sequencer>,
        outbox: Arc<crate::live::queue::Outbox>,
        database: Arc<Database>,
    }

    /// A sequencer over a hub with one connection in room `r`, whose order starts after
    /// seq `start`, and a database holding seqs up to `last_seq`.
    fn setup(start: i64, last_seq: i64) -> Setup {
        let s = setup_unstarted(last_seq);
        s.order.baseline("r", start);
        s
    }

    /// [`setup`] with no starting point given yet.
    fn setup_unstarted(last_seq: i64) -> Setup {
        let hub = Arc::new(Hub::new());
        let conn = hub.register(
            "u",
            "session:u",
            ["r".to_owned()],
            Wire::Native,
            1024,
            1 << 20,
        );
        let order = Sequencer::new(hub, Arc::new(Metrics::default()));
        let database = Arc::new(Database {
            last_seq: Mutex::new(last_seq),
            reads: Mutex::new(Vec::new()),
        });
        let source: Arc<dyn ChangeSource> = database.clone();
        // `database` keeps the allocation the weak reference points to alive.
        order.attach(Arc::downgrade(&source));
        Setup {
            order,
            outbox: conn.outbox,
            database,
        }
    }

    /// The markers of the frames queued so far, with their seqs.
    fn delivered(outbox: &crate::live::queue::Outbox) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(item) = outbox.pop() {
            let value: serde_json::Value = serde_json::from_str(item.frame.as_str()).unwrap();
            out.push(value["data"]["room_id"].as_str().unwrap().to_owned());
        }
        out
    }

    #[tokio::test]
    async fn a_seq_ahead_of_its_turn_waits_for_the_one_before_and_a_repeat_is_dropped() {
        let s = setup(10, 13);
        s.order.deliver(change(12));
        s.order.deliver(change(11));
        s.order.deliver(change(11));
        s.order.deliver(change(13));
        assert_eq!(delivered(&s.outbox), ["live 11", "live 12", "live 13"]);
        tokio::time::sleep(GAP_WAIT * 2).await;
        assert!(
            s.database.reads.lock().unwrap().is_empty(),
            "no gap was left open"
        );
    }

    #[tokio::test]
    async fn a_gap_still_open_after_the_wait_is_read_from_the_database_in_order() {
        let s = setup(10, 14);
        s.order.deliver(change(11));
        s.order.deliver(change(14));
        assert_eq!(delivered(&s.outbox), ["live 11"]);
        tokio::time::sleep(GAP_WAIT * 3).await;
        assert_eq!(*s.database.reads.lock().unwrap(), [11]);
        // 12 and 13 came from the database; 14 too (the database's state wins), once.
        assert_eq!(delivered(&s.outbox), ["db 12", "db 13", "db 14"]);
        s.order.deliver(change(13));
        s.order.deliver(change(15));
        assert_eq!(delivered(&s.outbox), ["live 15"], "late 13 is dropped");
    }

    #[tokio::test]
    async fn after_a_lost_subscription_every_room_is_read_again() {
        let s = setup(10, 10);
        s.order.deliver(change(11));
        assert_eq!(delivered(&s.outbox), ["live 11"]);
        // Redis lost 12 and 13 and nothing follows them: no gap shows. The node
        // subscribes again.
        *s.database.last_seq.lock().unwrap() = 13;
        s.order.subscribed("r");
        tokio::time::sleep(GAP_WAIT).await;
        assert_eq!(delivered(&s.outbox), ["db 12", "db 13"]);
        s.order.deliver(change(14));
        assert_eq!(delivered(&s.outbox), ["live 14"]);
    }

    #[tokio::test]
    async fn changes_held_while_a_repair_reads_follow_it_in_order() {
        let s = setup(10, 12);
        s.order.deliver(change(12));
        s.order.subscribed("r");
        // Arrives while the repair is (or is about to be) reading.
        s.order.deliver(change(13));
        tokio::time::sleep(GAP_WAIT * 3).await;
        assert_eq!(delivered(&s.outbox), ["db 11", "db 12", "live 13"]);
    }

    #[tokio::test]
    async fn a_room_first_heard_live_starts_at_the_lowest_seq_that_came_in_time() {
        let hub = Arc::new(Hub::new());
        let conn = hub.register(
            "u",
            "session:u",
            ["r".to_owned()],
            Wire::Native,
            64,
            1 << 20,
        );
        let order = Sequencer::new(hub, Arc::new(Metrics::default()));
        order.deliver(change(21));
        order.deliver(change(20));
        assert!(
            delivered(&conn.outbox).is_empty(),
            "held: lower seqs may be on their way"
        );
        tokio::time::sleep(GAP_WAIT * 2).await;
        assert_eq!(delivered(&conn.outbox), ["live 20", "live 21"]);
    }

    #[tokio::test]
    async fn what_was_committed_before_the_subscription_took_effect_is_read_once_subscribed() {
        // A user joined on another node after seq 10; changes 11 and 12 were published
        // before this node's subscription to the room took effect.
        let s = setup(10, 12);
        tokio::time::sleep(GAP_WAIT).await;
        assert!(
            s.database.reads.lock().unwrap().is_empty(),
            "not subscribed yet"
        );
        s.order.subscribed("r");
        tokio::time::sleep(GAP_WAIT).await;
        assert_eq!(*s.database.reads.lock().unwrap(), [10]);
        assert_eq!(delivered(&s.outbox), ["db 11", "db 12"]);
    }

    #[tokio::test]
    async fn subscribed_before_the_starting_point_is_known_reads_once_it_is() {
        let s = setup_unstarted(7);
        s.order.subscribed("r");
        s.order.baseline("r", 5);
        tokio::time::sleep(GAP_WAIT).await;
        assert_eq!(*s.database.reads.lock().unwrap(), [5]);
        assert_eq!(delivered(&s.outbox), ["db 6", "db 7"]);
    }

    #[tokio::test]
    async fn changes_of_a_room_with_no_local_connection_keep_no_order() {
        let hub = Arc::new(Hub::new());
        let order = Sequencer::new(hub, Arc::new(Metrics::default()));
        order.deliver(change(5));
        assert!(order.rooms.lock().unwrap().is_empty());
    }
}
