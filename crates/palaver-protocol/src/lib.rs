//! Palaver wire types: everything that crosses the network, and nothing else.
//!
//! Layout:
//! - [`error`]: the stable error codes shared by REST and WebSocket, and the error body
//!   `{"error": {"code", "message", "field"?}}`.
//! - [`model`]: the public shapes of users, rooms and messages as clients see them.
//! - [`notifications`]: notification settings, Web Push subscriptions and push payloads.
//! - [`rest`]: request and response bodies of the REST API under `/api/v1`.
//! - [`ws`]: WebSocket frames — client requests, replies and server events
//!   (documented frame by frame in `docs/protocol.md`).
//!
//! These types are versioned with the API (`/api/v1`); storage rows live in the server
//! and are converted at the edge, so the database can change without breaking clients.
//! This crate does no I/O and depends only on `serde`.

pub mod error;
pub mod model;
pub mod notifications;
pub mod rest;
pub mod ws;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use model::{
    Attachment, CallKind, CallLog, CallLogEvent, Invitation, Member, MemberRole, Mentions, Message,
    MessageEdit, MessageSender, MessageType, PublicUser, Reaction, Role, Room, RoomKind,
    RoomMentions, User, Visibility,
};
