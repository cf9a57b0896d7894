//! Persistence: one trait per aggregate, and their implementations.
//!
//! - [`UserStore`], [`SessionStore`], [`RoomStore`], [`MessageStore`]: the traits, each
//!   written in create-read-update-delete order with every method documented.
//! - [`sqlite`]: the embedded implementation (WAL, one writer connection, a reader pool).
//! - Rows ([`UserRow`], [`RoomRow`], [`MessageRow`]) are storage shapes; the service layer
//!   turns them into wire types from `palaver-protocol`.
//!
//! The store knows nothing of HTTP or WebSocket and enforces only what the database
//! enforces (uniqueness, seq allocation, idempotency); the rules of who may do what live
//! in `service/`.

pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use palaver_protocol::Visibility;

/// What can go wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the call needs does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; names the field (`"username"`, `"email"`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: String,
}

/// A new login session.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    /// SHA-256 of the refresh token.
    pub refresh_token_hash: Vec<u8>,
    pub device_name: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
    pub expires_at: String,
}

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub id: String,
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub created_by: String,
    pub created_at: String,
    pub last_seq: i64,
    pub member_count: i64,
}

/// A room to create.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub id: String,
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub created_by: String,
    pub created_at: String,
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRole {
    Owner,
    Admin,
    Member,
}

impl MemberRole {
    /// The stored name: `owner`, `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberRole::Owner => "owner",
            MemberRole::Admin => "admin",
            MemberRole::Member => "member",
        }
    }
}

/// A stored message, with its sender's username joined in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    pub id: String,
    pub room_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub sender_username: String,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: String,
}

/// A message to store; its `seq` is assigned by the store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub room_id: String,
    pub sender_id: String,
    pub content: String,
    pub client_id: Option<String>,
    pub created_at: String,
}

/// Which page of a room's history to read. Seqs are exclusive bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// Only messages with `seq < before`.
    pub before: Option<i64>,
    /// Only messages with `seq > after`.
    pub after: Option<i64>,
    /// At most this many (1..=100, checked by the caller).
    pub limit: i64,
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user. `username` and `email` must already be normalised (lower case).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with `"username"` or `"email"` when either is taken.
    async fn create_user(&self, user: &UserRow) -> StoreResult<()>;

    /// The user with this id, if any.
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>>;

    /// The user whose username or email equals `login` (already lower-cased), if any.
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<UserRow>>;
}

/// Login sessions (one per device login; holds the refresh token hash).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session.
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;
}

/// Rooms and their members.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room and makes `created_by` its owner and first member, atomically.
    async fn create_room(&self, room: &NewRoom) -> StoreResult<RoomRow>;

    /// The room with this id, if any.
    async fn room_by_id(&self, room_id: &str) -> StoreResult<Option<RoomRow>>;

    /// Rooms `user_id` is a member of, oldest membership first.
    async fn rooms_for_user(&self, user_id: &str) -> StoreResult<Vec<RoomRow>>;

    /// Public rooms, newest first, at most `limit`.
    async fn public_rooms(&self, limit: i64) -> StoreResult<Vec<RoomRow>>;

    /// Whether `user_id` is a member of `room_id`.
    async fn is_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool>;

    /// Adds a member with `role`. Returns `false` (and changes nothing) if already a member.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if the room does not exist.
    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
        joined_at: &str,
    ) -> StoreResult<bool>;
}

/// Message history.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Stores a message under the room's next seq, in one transaction that also bumps the
    /// room's counter, so seqs are gap-free and commit-ordered. If `client_id` is set and
    /// the same sender already stored a message with it in this room, stores nothing and
    /// returns that message with `false`; otherwise returns the new message with `true`.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if the room or the sender does not exist.
    async fn insert_message(&self, message: &NewMessage) -> StoreResult<(MessageRow, bool)>;

    /// One page of a room's history in ascending seq order, and whether more exist in the
    /// paging direction (older, unless only `after` is given: then newer).
    async fn messages_page(
        &self,
        room_id: &str,
        page: PageQuery,
    ) -> StoreResult<(Vec<MessageRow>, bool)>;
}

/// The database as a whole: liveness and orderly close.
#[async_trait]
pub trait Database: Send + Sync {
    /// Whether the database answers a trivial query (for `/healthz`).
    async fn ping(&self) -> bool;

    /// Waits for in-flight queries and closes every connection (flushing the WAL on
    /// SQLite). Called once at shutdown.
    async fn close(&self);
}

/// All stores, as trait objects, so the service layer does not know which database runs.
#[derive(Clone)]
pub struct Store {
    pub database: Arc<dyn Database>,
    pub users: Arc<dyn UserStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub rooms: Arc<dyn RoomStore>,
    pub messages: Arc<dyn MessageStore>,
}
