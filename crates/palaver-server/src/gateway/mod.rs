//! The gateways: one module per wire protocol, each only authenticating, parsing and
//! framing. Everything a connection does once it is open (ready snapshot, requests,
//! resume, backpressure, heartbeat) is the protocol-neutral core in [`crate::live`].
//!
//! - [`native`]: the documented JSON protocol at `GET /api/v1/ws` (`docs/protocol.md`).

pub mod native;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// Every gateway's routes.
pub fn router() -> OpenApiRouter<AppState> {
    native::router()
}
