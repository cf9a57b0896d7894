//! Integration tests: every test boots the real server on port 0 with a fresh data
//! directory and drives it over HTTP and WebSocket with `palaver-client`.
//! One binary for all of them (see zero-to-production's `tests/api`).

mod helpers;

mod abuse_limits;
mod accounts;
mod auth_hardening;
mod authorization;
mod avatars;
mod binary;
mod calls;
mod chat;
mod cluster;
mod cluster_calls;
mod cluster_presence;
mod cluster_resilience;
mod conversations;
mod default_rooms;
mod email;
mod errors;
mod heartbeat;
mod live;
mod mentions;
mod notifications;
mod observability;
mod openapi;
mod operator;
mod presence;
mod restart;
mod resume;
mod room_rules;
#[cfg(feature = "s3-tests")]
mod s3;
mod search;
mod server_info;
mod shared_limits;
mod signaling_compat;
mod transfer;
#[cfg(feature = "turn-tests")]
mod turn;
mod two_factor;
mod web_client;
mod ws_edges;
mod ws_races;
