//! Cross-node publish/subscribe of room events.
//!
//! The service layer publishes one [`Envelope`] per change, after the change is committed;
//! the broker hands it to the [`Hub`](crate::hub::Hub) of every node, which delivers it to
//! its local sessions. [`MemoryBroker`] is the single-node implementation (a direct call
//! into this node's hub); a Redis implementation carries the same envelopes between nodes.

mod memory;
mod order;
mod redis;

pub(crate) use self::redis::shared_note;
pub use self::redis::RedisBroker;
pub use memory::MemoryBroker;
pub use order::{ChangeSource, Sequencer, GAP_WAIT};

use std::sync::Arc;

use async_trait::async_trait;
use palaver_protocol::ws::Event;

use crate::hub::{CloseReason, ConnId};

/// A change to a room's membership that hubs apply along with delivering the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// `user_id` became a member of the room: their open connections are added *before*
    /// the frame is delivered, so they receive this event and every later one.
    Joined {
        user_id: String,
        /// The room's `last_seq` read before the join committed: the user's connections
        /// on other nodes receive the room's changes after it (a node that did not serve
        /// the room yet starts its order there: see [`Sequencer::baseline`]).
        after_seq: i64,
    },
    /// `user_id` left (or was kicked or banned): the frame is delivered, *then* their
    /// connections are removed, so they receive nothing more from the room.
    Left { user_id: String },
    /// The room was deleted: the frame is delivered, then every connection is removed.
    Closed,
}

/// Who receives an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Every connection of every member of the room.
    Room(String),
    /// Every connection of one user (e.g. an invitation).
    User(String),
    /// Every connection of each of these users, each connection once (presence: one
    /// envelope, encoded once, for everyone who shares a room with its subject).
    Users(Arc<[String]>),
    /// One connection (a call participant: `rtc.signal` and call events), on whichever
    /// node holds it: connection ids are unique across nodes and name their node
    /// ([`crate::hub::node_of`]).
    Connection(crate::hub::ConnId),
}

/// One typed event for one topic. Hubs encode it once per wire format, and every
/// recipient of that format gets the same bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub topic: Topic,
    /// The event, shared (never copied) by every hop between the service and the hubs.
    pub event: Arc<Event>,
    /// For a change to the room's history: its seq (connections resuming from a seq drop
    /// live frames they already replayed). On the native wire it is the frame's top-level
    /// `"seq"`.
    pub seq: Option<i64>,
    /// A membership change to apply (for room topics), if any.
    pub membership: Option<Membership>,
    /// Ephemeral (typing, presence): dropped for a connection whose queue is half full,
    /// rather than counting toward closing it as a slow consumer.
    pub ephemeral: bool,
    /// A user whose connections do not receive this (the typist, for `typing`).
    pub skip_user: Option<String>,
    /// A connection that does not receive this (the one that answered a call, for
    /// `call.answered_elsewhere`).
    pub skip_conn: Option<ConnId>,
}

impl Envelope {
    /// `event` for `topic`: not a change, no membership change, not ephemeral, skipping
    /// no one.
    pub fn new(topic: Topic, event: Event) -> Self {
        Envelope {
            topic,
            event: Arc::new(event),
            seq: None,
            membership: None,
            ephemeral: false,
            skip_user: None,
            skip_conn: None,
        }
    }

    /// `event` for every member of `room_id`.
    pub fn room(room_id: &str, event: Event) -> Self {
        Envelope::new(Topic::Room(room_id.to_owned()), event)
    }

    /// `event` for every connection of `user_id`.
    pub fn user(user_id: &str, event: Event) -> Self {
        Envelope::new(Topic::User(user_id.to_owned()), event)
    }

    /// A change to the room's history with `seq`.
    pub fn change(mut self, seq: i64) -> Self {
        self.seq = Some(seq);
        self
    }

    /// Applies `membership` along with delivery.
    pub fn membership(mut self, membership: Membership) -> Self {
        self.membership = Some(membership);
        self
    }

    /// Marks the event ephemeral (typing, presence).
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self
    }

    /// Leaves out `user_id`'s connections.
    pub fn skip_user(mut self, user_id: &str) -> Self {
        self.skip_user = Some(user_id.to_owned());
        self
    }

    /// Leaves out connection `conn`.
    pub fn skip_conn(mut self, conn: Option<ConnId>) -> Self {
        self.skip_conn = conn;
        self
    }
}

/// Which connections a [`Broker::disconnect`] closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectTarget {
    /// Every connection opened with this credential (see `Credential::hub_key`).
    Credential(String),
    /// Every connection of this user.
    User(String),
}

/// Delivers envelopes to every node's hub.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Publishes `envelope` to every node (this one included). Envelopes published from one
    /// task are delivered in publish order.
    ///
    /// # Errors
    /// The transport failed (never for the in-memory broker).
    async fn publish(&self, envelope: Envelope) -> anyhow::Result<()>;

    /// Closes, on every node, the connections `target` names, with `reason` (a revoked
    /// session or key, a disabled or deleted account).
    ///
    /// # Errors
    /// The transport failed (never for the in-memory broker).
    async fn disconnect(&self, target: DisconnectTarget, reason: CloseReason)
        -> anyhow::Result<()>;

    /// Whether this node hears the other nodes now (for `/readyz`); always for the
    /// in-memory broker.
    fn is_ready(&self) -> bool {
        true
    }

    /// Gives the broker the database's changes, for repairing gaps in a room's seq order
    /// (see [`Sequencer`]). The in-memory broker needs none: on one node, publish order
    /// is seq order.
    fn attach(&self, _source: std::sync::Weak<dyn ChangeSource>) {}

    /// A connection's `ready` snapshot reflects every change of `room_id` up to
    /// `last_seq` (see [`Sequencer::baseline`]).
    fn baseline(&self, _room_id: &str, _last_seq: i64) {}
}

#[cfg(test)]
mod tests {
    //! Against the machine's Redis at 127.0.0.1:6379 (`PALAVER_TEST_REDIS_URL` overrides
    //! it), with node numbers far above those of real nodes.

    use std::time::Duration;

    use palaver_protocol::ws::CallRef;

    use super::*;
    use crate::hub::Hub;
    use crate::live::wire::Wire;

    fn redis_url() -> String {
        std::env::var("PALAVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A connection event published on one node reaches that connection on another, and
    /// not a connection `skip_conn` names.
    #[tokio::test]
    async fn a_connection_topic_goes_to_the_node_that_holds_the_connection() {
        let base = 9_000_000 + rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 1_000_000;
        let (hub_1, hub_2) = (
            Arc::new(Hub::new().on_node(base)),
            Arc::new(Hub::new().on_node(base + 1)),
        );
        let broker_1 = RedisBroker::connect(&redis_url(), Arc::clone(&hub_1), Arc::default())
            .await
            .unwrap();
        let _broker_2 = RedisBroker::connect(&redis_url(), Arc::clone(&hub_2), Arc::default())
            .await
            .unwrap();
        let there = hub_2.register("bob", "s", [], Wire::Native, 8, 1 << 20);
        let skipped = hub_2.register("bob", "s", [], Wire::Native, 8, 1 << 20);
        let event = |call_id: &str| {
            Event::CallAnsweredElsewhere(CallRef {
                call_id: call_id.into(),
            })
        };
        broker_1
            .publish(Envelope::new(Topic::Connection(there.id), event("one")))
            .await
            .unwrap();
        broker_1
            .publish(Envelope::user("bob", event("two")).skip_conn(Some(skipped.id)))
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < 2 && tokio::time::Instant::now() < deadline {
            while let Some(item) = there.outbox.pop() {
                let frame: serde_json::Value = serde_json::from_str(item.frame.as_str()).unwrap();
                got.push(frame["data"]["call_id"].as_str().unwrap().to_owned());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(got, ["one", "two"]);
        assert!(skipped.outbox.pop().is_none(), "skip_conn crossed nodes");
    }
}
