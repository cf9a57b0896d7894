//! This node's live connections, indexed by room and by user, and local fan-out.
//!
//! Each live connection (`crate::live::connection`) registers with its wire format and
//! an [`Outbox`]: a bounded outbound queue of encoded frames and a close signal. The hub
//! never awaits: delivery encodes each typed event once per wire format among its
//! recipients ([`Encoded`]) and pushes the same bytes to each queue. A queue that is full
//! means the client is not reading; that connection is closed with
//! [`SLOW_CONSUMER`](palaver_protocol::ws::close_code::SLOW_CONSUMER) so it never slows
//! the others, and it resumes after reconnecting.
//!
//! The indexes sit behind one `std::sync::RwLock`, held only for map operations (never
//! across an await): delivery takes the read lock, (un)registration and joins the write
//! lock.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::broker::{DisconnectTarget, Envelope, Membership, Topic};
use crate::live::queue::{Outbound, Outbox, Pushed};
use crate::live::wire::{Encoded, Wire};
use crate::metrics::Metrics;

/// Identifies one connection. Unique across the nodes that share a Redis: the high
/// [`NODE_BITS`] bits are the node's number ([`Hub::on_node`]; 0 for a node on its own),
/// the low [`COUNTER_BITS`] this hub's counter. So the node holding a connection is known
/// from its id alone ([`node_of`]): that is where its call signals are sent.
pub type ConnId = u64;

/// Bits of a [`ConnId`] that count the connections of one node (about 10^12 per run).
pub const COUNTER_BITS: u32 = 40;
/// Bits of a [`ConnId`] that hold the node's number.
pub const NODE_BITS: u32 = 64 - COUNTER_BITS;
/// The largest node number.
pub const MAX_NODE: u32 = (1 << NODE_BITS) - 1;

/// The number of the node that holds connection `id`.
pub fn node_of(id: ConnId) -> u32 {
    // At most NODE_BITS (24) bits remain: always fits.
    u32::try_from(id >> COUNTER_BITS).unwrap_or(MAX_NODE)
}

/// Why the server closes a connection: a WebSocket close code and a short reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

/// What the hub holds for one connection.
struct Connection {
    user_id: String,
    /// The credential it was opened with (`Credential::hub_key`).
    credential: String,
    /// The format its frames are encoded in.
    wire: Wire,
    rooms: HashSet<String>,
    /// Bumped whenever a membership change of this connection's user (a join, a leave, a
    /// kick, a ban) is delivered, so that [`Hub::set_rooms`] can tell whether a snapshot
    /// of the user's rooms taken meanwhile is already stale.
    membership_epoch: u64,
    outbox: Arc<Outbox>,
}

#[derive(Default)]
struct Indexes {
    conns: HashMap<ConnId, Connection>,
    by_room: HashMap<String, HashSet<ConnId>>,
    by_user: HashMap<String, HashSet<ConnId>>,
    by_credential: HashMap<String, HashSet<ConnId>>,
    /// Set once the node is shutting down: new connections are closed at once.
    closing: Option<CloseReason>,
    /// Told when a room gains its first local connection or loses its last (see
    /// [`Hub::watch_rooms`]).
    watch: Option<tokio::sync::mpsc::UnboundedSender<LocalRoom>>,
}

/// A room this node starts or stops serving: its first local connection came, or its
/// last one went (a broker subscribes to and unsubscribes from the room's channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalRoom {
    Gained(String),
    Lost(String),
}

/// The connection registry and local fan-out of one node.
#[derive(Default)]
pub struct Hub {
    indexes: RwLock<Indexes>,
    /// This node's number, in the high bits of every [`ConnId`] it gives out.
    node: u32,
    next_id: AtomicU64,
    /// Signalled whenever a connection unregisters (for shutdown's wait).
    unregistered: Notify,
    /// Sockets each user holds or is opening (see [`Hub::reserve_socket`]).
    socket_slots: Mutex<HashMap<String, usize>>,
    metrics: Arc<Metrics>,
}

/// What a connection holds after [`Hub::register`].
pub struct Registration {
    pub id: ConnId,
    /// Its outbound queue and close signal, shared with the hub.
    pub outbox: Arc<Outbox>,
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Self {
        Hub::default()
    }

    /// An empty hub that records into `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        Hub {
            metrics,
            ..Hub::default()
        }
    }

    /// This hub, numbering its connections as node `node` (at most [`MAX_NODE`]; larger
    /// numbers are reduced modulo 2^[`NODE_BITS`]). Nodes that share a Redis take distinct
    /// numbers, so that connection ids are unique across them.
    pub fn on_node(mut self, node: u32) -> Self {
        self.node = node & MAX_NODE;
        self
    }

    /// This node's number (0 for a node on its own).
    pub fn node(&self) -> u32 {
        self.node
    }

    /// Whether connection `id` belongs to this node (by its number; it may be closed).
    pub fn is_local(&self, id: ConnId) -> bool {
        node_of(id) == self.node
    }

    /// Registers a connection of `user_id`, opened with `credential`, that is a member of
    /// `rooms` and reads `wire`, with an outbound queue of at most `max_frames` frames and
    /// `max_bytes` bytes. From this moment the connection receives the events of those
    /// rooms, of any room the user joins, and the closes aimed at its user or credential.
    pub fn register(
        &self,
        user_id: &str,
        credential: &str,
        rooms: impl IntoIterator<Item = String>,
        wire: Wire,
        max_frames: usize,
        max_bytes: usize,
    ) -> Registration {
        let counter = self.next_id.fetch_add(1, Ordering::Relaxed) & ((1 << COUNTER_BITS) - 1);
        let id = (u64::from(self.node) << COUNTER_BITS) | counter;
        let outbox = Arc::new(Outbox::new(max_frames, max_bytes));
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        if let Some(reason) = ix.closing {
            outbox.close(reason);
        }
        ix.by_user.entry(user_id.to_owned()).or_default().insert(id);
        ix.by_credential
            .entry(credential.to_owned())
            .or_default()
            .insert(id);
        ix.conns.insert(
            id,
            Connection {
                user_id: user_id.to_owned(),
                credential: credential.to_owned(),
                wire,
                rooms: HashSet::new(),
                membership_epoch: 0,
                outbox: Arc::clone(&outbox),
            },
        );
        add_rooms(&mut ix, id, rooms);
        self.count_connections(ix.conns.len());
        Registration { id, outbox }
    }

    /// Adds rooms to a registered connection (rooms it is already in are skipped).
    pub fn add_rooms(&self, id: ConnId, rooms: impl IntoIterator<Item = String>) {
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        add_rooms(&mut ix, id, rooms);
    }

    /// The connection's membership epoch: read it before taking a snapshot of the user's
    /// rooms, and hand it to [`Hub::set_rooms`] with the snapshot. `None` if the
    /// connection is gone.
    pub fn membership_epoch(&self, id: ConnId) -> Option<u64> {
        let ix = self.indexes.read().expect("hub lock poisoned");
        ix.conns.get(&id).map(|c| c.membership_epoch)
    }

    /// Makes `rooms` the connection's whole room set (rooms not in it are left), but only
    /// if no membership change of its user was delivered since [`Hub::membership_epoch`]
    /// returned `epoch`. Returns whether the set was replaced; on `false` the snapshot
    /// may miss a join or still hold a room the user was removed from: take a new one.
    ///
    /// This closes the gap between reading a user's rooms from the store and
    /// registering for them: a kick committed after the read is delivered either before
    /// this call (the epoch moved: retry) or after it (it removes the room as usual).
    pub fn set_rooms(
        &self,
        id: ConnId,
        rooms: impl IntoIterator<Item = String>,
        epoch: u64,
    ) -> bool {
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        let ix = &mut *ix;
        let Some(conn) = ix.conns.get_mut(&id) else {
            return false;
        };
        if conn.membership_epoch != epoch {
            return false;
        }
        let wanted: HashSet<String> = rooms.into_iter().collect();
        let gone: Vec<String> = conn.rooms.difference(&wanted).cloned().collect();
        for room in &gone {
            conn.rooms.remove(room);
        }
        for room in &gone {
            leave_room(ix, room, id);
        }
        add_rooms(ix, id, wanted);
        true
    }

    /// Reserves one of `user_id`'s `max` WebSocket slots (`user_limits.sockets`; 0 means
    /// no cap), before the upgrade, so that any number of parallel upgrades cannot get
    /// past the cap. The slot is held until the returned [`SocketSlot`] is dropped (when
    /// the connection ends, or the upgrade never happens). `None` when all are taken.
    pub fn reserve_socket(self: &Arc<Self>, user_id: &str, max: usize) -> Option<SocketSlot> {
        let mut slots = self.socket_slots.lock().expect("hub slots lock poisoned");
        let held = slots.entry(user_id.to_owned()).or_default();
        if max > 0 && *held >= max {
            if *held == 0 {
                slots.remove(user_id);
            }
            return None;
        }
        *held += 1;
        Some(SocketSlot {
            hub: Arc::clone(self),
            user_id: user_id.to_owned(),
        })
    }

    /// From now on, every room that gains its first local connection or loses its last
    /// is sent to the returned receiver, in the order it happened (a later call replaces
    /// the receiver).
    pub fn watch_rooms(&self) -> tokio::sync::mpsc::UnboundedReceiver<LocalRoom> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.indexes.write().expect("hub lock poisoned").watch = Some(tx);
        rx
    }

    /// The rooms that have local connections now.
    pub fn rooms(&self) -> Vec<String> {
        let ix = self.indexes.read().expect("hub lock poisoned");
        ix.by_room.keys().cloned().collect()
    }

    /// Adds every local connection of `user_id` to `room_id` (they joined it), before
    /// anything of the room is delivered to them. Returns whether the user has any
    /// connection here.
    pub fn join(&self, user_id: &str, room_id: &str) -> bool {
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        let ix = &mut *ix;
        let ids = user_conns(ix, user_id);
        for &id in &ids {
            if let Some(conn) = ix.conns.get_mut(&id) {
                conn.membership_epoch += 1;
            }
            add_rooms(ix, id, [room_id.to_owned()]);
        }
        !ids.is_empty()
    }

    /// Takes every local connection of `user_id` out of `room_id` (they left it, or were
    /// kicked or banned): nothing more of the room reaches them.
    pub fn leave(&self, user_id: &str, room_id: &str) {
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        for id in user_conns(&ix, user_id) {
            if let Some(conn) = ix.conns.get_mut(&id) {
                conn.membership_epoch += 1;
                conn.rooms.remove(room_id);
            }
            leave_room(&mut ix, room_id, id);
        }
    }

    /// Whether any local connection receives `room_id`'s events.
    pub fn has_room(&self, room_id: &str) -> bool {
        let ix = self.indexes.read().expect("hub lock poisoned");
        ix.by_room.contains_key(room_id)
    }

    /// Removes a connection from every index. Idempotent.
    pub fn unregister(&self, id: ConnId) {
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        if let Some(conn) = ix.conns.remove(&id) {
            for room in &conn.rooms {
                leave_room(&mut ix, room, id);
            }
            remove_from(&mut ix.by_user, &conn.user_id, id);
            remove_from(&mut ix.by_credential, &conn.credential, id);
        }
        self.count_connections(ix.conns.len());
        drop(ix);
        self.unregistered.notify_waiters();
    }

    /// Delivers `envelope` to every local connection of its topic, applying its
    /// membership change (see [`Membership`]). Never blocks: a connection whose queue is
    /// full is closed as a slow consumer.
    pub fn deliver(&self, envelope: &Envelope) {
        let started = std::time::Instant::now();
        self.deliver_inner(envelope);
        self.metrics
            .fanout_seconds
            .observe(started.elapsed().as_secs_f64());
    }

    fn deliver_inner(&self, envelope: &Envelope) {
        let encoded = Encoded::new(&envelope.event, envelope.seq);
        let room_id = match &envelope.topic {
            Topic::Connection(id) => {
                let ix = self.indexes.read().expect("hub lock poisoned");
                let one = [*id];
                send_to(&ix, one.iter(), &encoded, None, envelope, &self.metrics);
                return;
            }
            Topic::User(user_id) => {
                let ix = self.indexes.read().expect("hub lock poisoned");
                if let Some(ids) = ix.by_user.get(user_id) {
                    send_to(&ix, ids.iter(), &encoded, None, envelope, &self.metrics);
                }
                return;
            }
            Topic::Users(users) => {
                let ix = self.indexes.read().expect("hub lock poisoned");
                for user_id in users.iter() {
                    if let Some(ids) = ix.by_user.get(user_id) {
                        send_to(&ix, ids.iter(), &encoded, None, envelope, &self.metrics);
                    }
                }
                return;
            }
            Topic::Room(room_id) => room_id,
        };
        if let Some(Membership::Joined { user_id, .. }) = &envelope.membership {
            self.join(user_id, room_id);
        }
        {
            let change = envelope
                .seq
                .map(|seq| (Arc::<str>::from(room_id.as_str()), seq));
            let ix = self.indexes.read().expect("hub lock poisoned");
            if let Some(members) = ix.by_room.get(room_id) {
                send_to(
                    &ix,
                    members.iter(),
                    &encoded,
                    change,
                    envelope,
                    &self.metrics,
                );
            }
        }
        match &envelope.membership {
            Some(Membership::Left { user_id }) => self.leave(user_id, room_id),
            Some(Membership::Closed) => {
                let mut ix = self.indexes.write().expect("hub lock poisoned");
                if let Some(ids) = ix.by_room.remove(room_id) {
                    for id in ids {
                        if let Some(conn) = ix.conns.get_mut(&id) {
                            conn.rooms.remove(room_id);
                        }
                    }
                    if let Some(watch) = &ix.watch {
                        let _ = watch.send(LocalRoom::Lost(room_id.clone()));
                    }
                }
            }
            _ => {}
        }
    }

    fn count_connections(&self, n: usize) {
        self.metrics.connections.set(n as i64);
        self.metrics
            .sessions
            .get_or_create(&Metrics::label("transport", "websocket"))
            .set(n as i64);
    }

    /// Asks one connection to close with `reason` (no-op if it is gone).
    pub fn close(&self, id: ConnId, reason: CloseReason) {
        let ix = self.indexes.read().expect("hub lock poisoned");
        if let Some(conn) = ix.conns.get(&id) {
            conn.outbox.close(reason);
        }
    }

    /// Asks the connections `target` names to close with `reason`.
    pub fn disconnect(&self, target: &DisconnectTarget, reason: CloseReason) {
        let ix = self.indexes.read().expect("hub lock poisoned");
        let ids = match target {
            DisconnectTarget::Credential(key) => ix.by_credential.get(key),
            DisconnectTarget::User(user_id) => ix.by_user.get(user_id),
        };
        for id in ids.into_iter().flatten() {
            if let Some(conn) = ix.conns.get(id) {
                conn.outbox.close(reason);
            }
        }
    }

    /// Asks every connection (and any that registers later) to close with `reason`.
    pub fn close_all(&self, reason: CloseReason) {
        let mut ix = self.indexes.write().expect("hub lock poisoned");
        ix.closing = Some(reason);
        for conn in ix.conns.values() {
            conn.outbox.close(reason);
        }
    }

    /// Number of registered connections.
    pub fn connection_count(&self) -> usize {
        self.indexes.read().expect("hub lock poisoned").conns.len()
    }

    /// Waits until no connection is registered, or `timeout` passes. Returns whether the
    /// hub emptied in time.
    pub async fn wait_until_empty(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.unregistered.notified();
            if self.connection_count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.connection_count() == 0;
            }
        }
    }
}

/// One of a user's WebSocket slots, released on drop (see [`Hub::reserve_socket`]).
pub struct SocketSlot {
    hub: Arc<Hub>,
    user_id: String,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut slots = self
            .hub
            .socket_slots
            .lock()
            .expect("hub slots lock poisoned");
        if let Some(held) = slots.get_mut(&self.user_id) {
            *held -= 1;
            if *held == 0 {
                slots.remove(&self.user_id);
            }
        }
    }
}

/// The ids of `user_id`'s connections (a copy, so the indexes can be changed while
/// iterating).
fn user_conns(ix: &Indexes, user_id: &str) -> Vec<ConnId> {
    ix.by_user
        .get(user_id)
        .map(|s| s.iter().copied().collect())
        .unwrap_or_default()
}

/// Queues the event to each connection in `ids` (but `envelope.skip_user`'s and
/// `skip_conn`), in its wire format: see [`Outbox::push`] for what happens to one that is
/// full (closed as a slow consumer) or, for ephemeral events, half full (left out).
fn send_to<'i>(
    ix: &Indexes,
    ids: impl Iterator<Item = &'i ConnId>,
    encoded: &Encoded<'_>,
    change: Option<(Arc<str>, i64)>,
    envelope: &Envelope,
    metrics: &Metrics,
) {
    for id in ids {
        let Some(conn) = ix.conns.get(id) else {
            continue;
        };
        if envelope.skip_user.as_deref() == Some(conn.user_id.as_str())
            || envelope.skip_conn == Some(*id)
        {
            continue;
        }
        let item = Outbound {
            frame: encoded.frame(conn.wire),
            change: change.clone(),
        };
        match conn.outbox.push(item, envelope.ephemeral) {
            Pushed::Queued => {
                metrics.messages_out.inc();
            }
            Pushed::Dropped => {
                metrics.queue_drops.inc();
            }
            Pushed::Full => {
                metrics.slow_consumer_disconnects.inc();
                tracing::info!(conn = id, user_id = %conn.user_id, "slow consumer disconnected");
            }
            Pushed::Closing => {}
        }
    }
}

fn add_rooms(ix: &mut Indexes, id: ConnId, rooms: impl IntoIterator<Item = String>) {
    let Some(conn) = ix.conns.get_mut(&id) else {
        return;
    };
    for room in rooms {
        if conn.rooms.insert(room.clone()) {
            match ix.by_room.entry(room) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    e.get_mut().insert(id);
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    if let Some(watch) = &ix.watch {
                        let _ = watch.send(LocalRoom::Gained(e.key().clone()));
                    }
                    e.insert(HashSet::from([id]));
                }
            }
        }
    }
}

/// Takes connection `id` out of `room`'s index (the caller updates the connection's own
/// set); tells the watcher if that was the room's last local connection.
fn leave_room(ix: &mut Indexes, room: &str, id: ConnId) {
    if let Some(set) = ix.by_room.get_mut(room) {
        set.remove(&id);
        if set.is_empty() {
            ix.by_room.remove(room);
            if let Some(watch) = &ix.watch {
                let _ = watch.send(LocalRoom::Lost(room.to_owned()));
            }
        }
    }
}

fn remove_from(index: &mut HashMap<String, HashSet<ConnId>>, key: &str, id: ConnId) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::ws::{close_code, Event, RoomDeleted};

    /// The marker of a queued test frame (see [`envelope`]).
    fn text(item: Outbound) -> String {
        let value: serde_json::Value = serde_json::from_str(item.frame.as_str()).unwrap();
        value["data"]["room_id"].as_str().unwrap().to_owned()
    }

    /// A test event for `room` whose frame carries `text` as its marker.
    fn event(text: &str) -> Event {
        Event::RoomDeleted(RoomDeleted {
            room_id: text.to_owned(),
        })
    }

    fn envelope(room: &str, text: &str) -> Envelope {
        Envelope::room(room, event(text))
    }

    #[test]
    fn delivers_only_to_connections_in_the_room() {
        let hub = Hub::new();
        let a = hub.register(
            "alice",
            "session:alice",
            ["r1".to_string()],
            Wire::Native,
            8,
            1 << 20,
        );
        let b = hub.register(
            "bob",
            "session:bob",
            ["r2".to_string()],
            Wire::Native,
            8,
            1 << 20,
        );
        hub.deliver(&envelope("r1", "hello"));
        assert_eq!(text(a.outbox.pop().unwrap()), "hello");
        assert!(b.outbox.pop().is_none(), "bob is not in r1");
    }

    #[test]
    fn join_adds_every_connection_of_the_user_before_delivery() {
        let hub = Hub::new();
        let tab1 = hub.register("bob", "session:bob", [], Wire::Native, 8, 1 << 20);
        let tab2 = hub.register("bob", "session:bob", [], Wire::Native, 8, 1 << 20);
        let mut env = envelope("r1", "joined");
        env.membership = Some(Membership::Joined {
            user_id: "bob".into(),
            after_seq: 0,
        });
        hub.deliver(&env);
        for tab in [&tab1, &tab2] {
            assert_eq!(text(tab.outbox.pop().unwrap()), "joined");
        }
    }

    #[test]
    fn a_leaver_gets_the_left_event_and_nothing_after() {
        let hub = Hub::new();
        let bob = hub.register(
            "bob",
            "session:bob",
            ["r".to_string()],
            Wire::Native,
            8,
            1 << 20,
        );
        let alice = hub.register(
            "alice",
            "session:alice",
            ["r".to_string()],
            Wire::Native,
            8,
            1 << 20,
        );
        let mut env = envelope("r", "left");
        env.membership = Some(Membership::Left {
            user_id: "bob".into(),
        });
        hub.deliver(&env);
        hub.deliver(&envelope("r", "after"));
        assert_eq!(text(bob.outbox.pop().unwrap()), "left");
        assert!(
            bob.outbox.pop().is_none(),
            "bob receives nothing after leaving"
        );
        assert_eq!(text(alice.outbox.pop().unwrap()), "left");
        assert_eq!(text(alice.outbox.pop().unwrap()), "after");
    }

    #[test]
    fn user_topic_reaches_every_connection_of_that_user_only() {
        let hub = Hub::new();
        let a1 = hub.register("alice", "session:a1", [], Wire::Native, 8, 1 << 20);
        let a2 = hub.register("alice", "session:a2", [], Wire::Native, 8, 1 << 20);
        let bob = hub.register("bob", "session:bob", [], Wire::Native, 8, 1 << 20);
        hub.deliver(&Envelope::user("alice", event("invited")));
        assert_eq!(text(a1.outbox.pop().unwrap()), "invited");
        assert_eq!(text(a2.outbox.pop().unwrap()), "invited");
        assert!(bob.outbox.pop().is_none());
    }

    #[test]
    fn closing_a_room_stops_its_delivery() {
        let hub = Hub::new();
        let a = hub.register(
            "alice",
            "session:a",
            ["r".to_string()],
            Wire::Native,
            8,
            1 << 20,
        );
        let mut env = envelope("r", "deleted");
        env.membership = Some(Membership::Closed);
        hub.deliver(&env);
        hub.deliver(&envelope("r", "ghost"));
        assert_eq!(text(a.outbox.pop().unwrap()), "deleted");
        assert!(a.outbox.pop().is_none());
    }

    #[test]
    fn full_queue_closes_that_connection_only() {
        let hub = Hub::new();
        let slow = hub.register(
            "slow",
            "session:slow",
            ["r".to_string()],
            Wire::Native,
            2,
            1 << 20,
        );
        let fast = hub.register(
            "fast",
            "session:fast",
            ["r".to_string()],
            Wire::Native,
            64,
            1 << 20,
        );
        for i in 0..5 {
            hub.deliver(&envelope("r", &format!("m{i}")));
            let _ = fast.outbox.pop();
        }
        assert_eq!(
            slow.outbox.closing().map(|r| r.code),
            Some(close_code::SLOW_CONSUMER)
        );
        assert!(fast.outbox.closing().is_none());
    }

    #[test]
    fn disconnect_closes_only_the_named_credential_or_user() {
        let hub = Hub::new();
        let phone = hub.register("alice", "session:phone", [], Wire::Native, 8, 1 << 20);
        let laptop = hub.register("alice", "session:laptop", [], Wire::Native, 8, 1 << 20);
        let bob = hub.register("bob", "session:bob", [], Wire::Native, 8, 1 << 20);
        let reason = CloseReason {
            code: 4001,
            reason: "session ended",
        };
        hub.disconnect(
            &DisconnectTarget::Credential("session:phone".into()),
            reason,
        );
        assert_eq!(phone.outbox.closing(), Some(reason));
        assert!(laptop.outbox.closing().is_none());
        hub.disconnect(&DisconnectTarget::User("alice".into()), reason);
        assert_eq!(laptop.outbox.closing(), Some(reason));
        assert!(bob.outbox.closing().is_none());
    }

    #[test]
    fn the_byte_budget_closes_a_connection_before_its_frame_budget_does() {
        let hub = Hub::new();
        let len = Wire::Native.event(&event("12345678"), None).len();
        // Room for 1000 frames but only one and a half frames' bytes.
        let slow = hub.register(
            "slow",
            "session:slow",
            ["r".to_string()],
            Wire::Native,
            1000,
            len * 3 / 2,
        );
        hub.deliver(&envelope("r", "12345678"));
        assert!(slow.outbox.closing().is_none(), "one frame fits");
        hub.deliver(&envelope("r", "12345678"));
        assert_eq!(
            slow.outbox.closing().map(|r| r.code),
            Some(close_code::SLOW_CONSUMER),
            "two do not"
        );
        assert_eq!(slow.outbox.queued_bytes(), len);
    }

    #[test]
    fn a_stale_room_snapshot_is_refused_and_a_fresh_one_replaces_the_set() {
        let hub = Hub::new();
        let bob = hub.register("bob", "session:bob", [], Wire::Native, 8, 1 << 20);
        let epoch = hub.membership_epoch(bob.id).unwrap();
        // Bob is kicked from r1 after his snapshot (which still lists r1) was read.
        let mut left = envelope("r1", "left");
        left.membership = Some(Membership::Left {
            user_id: "bob".into(),
        });
        hub.deliver(&left);
        assert!(
            !hub.set_rooms(bob.id, ["r1".to_string(), "r2".to_string()], epoch),
            "the snapshot predates the kick"
        );
        let epoch = hub.membership_epoch(bob.id).unwrap();
        assert!(hub.set_rooms(bob.id, ["r2".to_string()], epoch));
        hub.deliver(&envelope("r1", "secret"));
        hub.deliver(&envelope("r2", "hello"));
        assert_eq!(text(bob.outbox.pop().unwrap()), "hello");
        assert!(bob.outbox.pop().is_none(), "nothing of r1");
        // Replacing drops rooms no longer in the set.
        let epoch = hub.membership_epoch(bob.id).unwrap();
        assert!(hub.set_rooms(bob.id, [], epoch));
        hub.deliver(&envelope("r2", "gone"));
        assert!(bob.outbox.pop().is_none());
    }

    #[test]
    fn socket_slots_cap_each_user_and_free_on_drop() {
        let hub = Arc::new(Hub::new());
        let a = hub.reserve_socket("alice", 2).expect("first");
        let b = hub.reserve_socket("alice", 2).expect("second");
        assert!(hub.reserve_socket("alice", 2).is_none(), "third refused");
        let _bob = hub.reserve_socket("bob", 2).expect("others unaffected");
        drop(a);
        let _c = hub
            .reserve_socket("alice", 2)
            .expect("a freed slot is reusable");
        drop(b);
        let unlimited: Vec<_> = (0..100).map(|_| hub.reserve_socket("carol", 0)).collect();
        assert!(unlimited.iter().all(Option::is_some), "0 means no cap");
    }

    #[test]
    fn connection_ids_carry_the_node_number() {
        let alone = Hub::new();
        let first = alone.register("alice", "s", [], Wire::Native, 8, 1 << 20);
        assert_eq!(first.id, 0, "a node on its own numbers from 0");
        assert!(alone.is_local(first.id));

        let node = Hub::new().on_node(7);
        let a = node.register("alice", "s", [], Wire::Native, 8, 1 << 20);
        let b = node.register("bob", "s", [], Wire::Native, 8, 1 << 20);
        assert_eq!((node_of(a.id), node_of(b.id)), (7, 7));
        assert_ne!(a.id, b.id);
        assert!(node.is_local(a.id));
        assert!(
            !node.is_local(first.id),
            "node 0's connection is not node 7's"
        );
        assert_eq!(Hub::new().on_node(MAX_NODE).node(), MAX_NODE);
        assert_eq!(node_of(u64::MAX), MAX_NODE);
    }

    #[test]
    fn unregister_removes_from_indexes() {
        let hub = Hub::new();
        let a = hub.register(
            "alice",
            "session:alice",
            ["r1".to_string()],
            Wire::Native,
            8,
            1 << 20,
        );
        hub.unregister(a.id);
        assert_eq!(hub.connection_count(), 0);
        hub.deliver(&envelope("r1", "x")); // must not panic or deliver
    }
}
