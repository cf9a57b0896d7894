//! Cross-node publish/subscribe of room events.
//!
//! The service layer publishes one [`Envelope`] per change, after the change is committed;
//! the broker hands it to the [`Hub`](crate::hub::Hub) of every node, which delivers it to
//! its local sessions. [`MemoryBroker`] is the single-node implementation (a direct call
//! into this node's hub); a Redis implementation carries the same envelopes between nodes.

mod memory;

pub use memory::MemoryBroker;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;

use crate::hub::CloseReason;

/// A change to a room's membership that hubs apply along with delivering the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// `user_id` became a member of the room: their open connections are added *before*
    /// the frame is delivered, so they receive this event and every later one.
    Joined { user_id: String },
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
    /// One connection (a call participant: `rtc.signal` and call events). Connection ids
    /// are per node; calls are held by the node their participants are connected to.
    Connection(crate::hub::ConnId),
}

/// One event for one topic, serialized once: every recipient gets the same bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub topic: Topic,
    /// The JSON text of a server event (`{"type", "data"}`, plus `"seq"` for changes).
    pub frame: Utf8Bytes,
    /// For a change to the room's history: its seq (connections resuming from a seq drop
    /// live frames they already replayed).
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
    pub skip_conn: Option<crate::hub::ConnId>,
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
}
