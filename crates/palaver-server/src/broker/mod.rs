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

/// A change to a room's membership that hubs must apply before delivering the frame, so
/// that the joiner's open connections receive this event and every later one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Membership {
    /// `user_id` became a member of the envelope's room.
    Joined { user_id: String },
}

/// One event for one room, serialized once: every recipient gets the same bytes.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// Topic: the room whose members receive `frame`.
    pub room_id: String,
    /// The JSON text of a server event (`{"type", "data"}`).
    pub frame: Utf8Bytes,
    /// A membership change to apply first, if any.
    pub membership: Option<Membership>,
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
