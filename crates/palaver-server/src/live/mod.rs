//! The live connection core, shared by every wire protocol.
//!
//! - [`connection`]: one connection from registration to cleanup (ready snapshot,
//!   requests, replay and resume, heartbeat, backpressure), over any [`Transport`].
//! - [`request`]: the typed [`Request`]s a client can make and their [`Response`]s.
//! - [`wire`]: how events and answers are encoded per wire format, once per event.
//! - [`queue`]: each connection's bounded outbound queue, filled by the hub.
//! - [`cursor`]: what a connection has sent of each room's history.
//!
//! Gateways (`crate::gateway`) only parse and frame: they turn their wire's frames into
//! [`Request`]s and implement [`Transport`].
//!
//! [`Transport`]: connection::Transport
//! [`Request`]: request::Request
//! [`Response`]: request::Response

pub mod connection;
pub mod cursor;
pub mod queue;
pub mod request;
pub mod wire;

#[cfg(test)]
mod tests;
