//! The single-node broker: publishing is a direct, synchronous hand-off to this node's hub.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Broker, DisconnectTarget, Envelope};
use crate::hub::{CloseReason, Hub};

/// Delivers every envelope straight to the local [`Hub`].
pub struct MemoryBroker {
    hub: Arc<Hub>,
}

impl MemoryBroker {
    /// A broker that delivers to `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        MemoryBroker { hub }
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, envelope: Envelope) -> anyhow::Result<()> {
        self.hub.deliver(&envelope);
        Ok(())
    }

    async fn disconnect(
        &self,
        target: DisconnectTarget,
        reason: CloseReason,
    ) -> anyhow::Result<()> {
        self.hub.disconnect(&target, reason);
        Ok(())
    }
}
