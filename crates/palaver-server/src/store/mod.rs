//! Persistence: one trait per aggregate, and their implementations.
//!
//! - [`UserStore`], [`SessionStore`], [`ApiKeyStore`], [`BlockStore`], [`RoomStore`],
//!   [`MessageStore`], [`IdentityStore`], [`NotificationStore`]: the traits, each
//!   written in create-read-update-delete order with every method documented.
//! - [`sqlite`]: the embedded implementation (WAL, one writer connection, a reader pool).
//! - [`postgres`]: the same on PostgreSQL (one pool; seqs under the room's row lock), for
//!   deployments with several nodes.
//! - [`transfer`]: `palaver migrate`, `export` and `import` (a whole install as JSON
//!   Lines, between backends).
//! - Rows ([`UserRow`], [`RoomRow`], [`MessageRow`]) are storage shapes; the service layer
//!   turns them into wire types from `palaver-protocol`.
//!
//! The store knows nothing of HTTP or WebSocket and enforces only what the database
//! enforces (uniqueness, seq allocation, idempotency); the rules of who may do what live
//! in `service/`.

#[cfg(test)]
mod conformance;
pub mod files;
mod notifications;
pub mod postgres;
pub mod sqlite;
pub mod transfer;

use std::sync::Arc;

use async_trait::async_trait;
pub use notifications::{
    NotificationLevel, NotificationSettingsRow, NotificationStore, PushSubscriptionRow, VapidKeyRow,
};
pub use palaver_protocol::MemberRole;
use palaver_protocol::{CallLog, Mentions, MessageType, Role, RoomKind, RoomMentions, Visibility};

/// What can go wrong in a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row the call needs does not exist.
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; names the field (`"username"`, `"email"`).
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The store cannot take the write now (closing, or a group commit failed and was
    /// rolled back); nothing of it is stored and the caller may retry.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    /// A database error, except text PostgreSQL cannot hold (SQLSTATE 22021, a NUL in a
    /// path parameter such as a room id), which no row can match: `NotFound`. Request
    /// bodies and query strings have their NULs replaced before they get here.
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("22021") => {
                StoreError::NotFound
            }
            _ => StoreError::Database(e),
        }
    }
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A message queued by [`MessageStore::queue_message`], not yet known to be stored.
#[derive(Debug)]
pub struct PendingMessage(tokio::sync::oneshot::Receiver<StoreResult<(MessageRow, bool)>>);

impl PendingMessage {
    /// Wraps the receiver on which the store answers after the commit.
    pub fn new(receiver: tokio::sync::oneshot::Receiver<StoreResult<(MessageRow, bool)>>) -> Self {
        PendingMessage(receiver)
    }

    /// Waits for the commit: the stored message and whether it is new (`false`: a retried
    /// `client_id`, answered with the message stored the first time).
    ///
    /// # Errors
    /// As [`MessageStore::queue_message`].
    pub async fn committed(self) -> StoreResult<(MessageRow, bool)> {
        self.0
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the store stopped".into())))
    }
}

/// A reserved place in the message queue (see [`MessageStore::reserve_message`]).
pub struct MessageSlot(Box<dyn FnOnce(NewMessage) -> PendingMessage + Send>);

impl MessageSlot {
    /// A slot that queues with `queue` (which must not block).
    pub fn new(queue: impl FnOnce(NewMessage) -> PendingMessage + Send + 'static) -> Self {
        MessageSlot(Box::new(queue))
    }

    /// Queues `message` in this place, at once; the result is as for
    /// [`MessageStore::queue_message`].
    pub fn queue(self, message: NewMessage) -> PendingMessage {
        (self.0)(message)
    }
}

impl std::fmt::Debug for MessageSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageSlot")
    }
}

/// A stored user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub email: String,
    /// PHC string (argon2id); empty for deleted accounts.
    pub password_hash: String,
    pub role: Role,
    pub profile: Profile,
    /// JSON object text.
    pub settings: String,
    pub created_at: String,
    pub disabled_at: Option<String>,
    pub deleted_at: Option<String>,
    /// When `email` was proven to be the user's (a mailed link was used), RFC 3339 UTC;
    /// `None` if never (or since it last changed). See `docs/email.md`.
    pub email_verified_at: Option<String>,
}

/// What an e-mailed link is for (the `purpose` column of `email_tokens`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailPurpose {
    /// Prove that the account's current address is its owner's.
    Verify,
    /// Make the token's address the account's address (a pending e-mail change).
    ChangeEmail,
    /// Set a new password without the old one.
    Reset,
}

impl EmailPurpose {
    /// The `purpose` column's value: `verify`, `change_email` or `reset`.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailPurpose::Verify => "verify",
            EmailPurpose::ChangeEmail => "change_email",
            EmailPurpose::Reset => "reset",
        }
    }
}

/// An e-mailed link's token, as stored: everything but the token itself, which is kept
/// only as its SHA-256 hash (the key it is stored and taken by).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// The account the link acts on.
    pub user_id: String,
    pub purpose: EmailPurpose,
    /// The (normalised) address the link was mailed to.
    pub address: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC; the token is worthless once `expires_at <= now`.
    pub expires_at: String,
}

/// What presenting an e-mailed token found (see [`UserStore::take_email_token`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TakenEmailToken {
    /// The token was unused and live: it is now spent, and this is what it was for.
    Taken(EmailToken),
    /// The token exists, unused, but expired.
    Expired,
    /// No token of that purpose has this hash, or it was already used.
    Unknown,
}

/// The free-form profile fields of a user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub location: Option<String>,
    pub website: Option<String>,
    pub avatar_url: Option<String>,
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

/// A live session as listed to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub device_name: Option<String>,
    pub ip: Option<String>,
    pub created_at: String,
    pub last_used_at: String,
    pub expires_at: String,
}

/// A live connection's resume ticket: where a connection was in each of its rooms when it
/// ended, so that the client's next connection replays what it missed (SignalR, see
/// `gateway::signalr`). Ephemeral: not exported by `palaver export`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeTicket {
    pub user_id: String,
    /// Which endpoint the connection was on ("chat", "webrtc").
    pub hub: String,
    /// JSON object text: room id → the last seq delivered in that room.
    pub positions: String,
    /// RFC 3339 UTC; the ticket is worthless after this.
    pub expires_at: String,
}

/// What authenticating a credential needs to know about its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialState {
    pub user_id: String,
    pub role: Role,
    /// The credential is neither revoked nor expired, and its account is neither disabled
    /// nor deleted.
    pub active: bool,
}

/// The result of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is now spent and `new_hash` is current.
    Rotated { session_id: String, user_id: String },
    /// The token was current until a rotation less than the grace window ago (a concurrent
    /// refresh): nothing changed.
    WithinGrace,
    /// The token was spent before (by any earlier rotation, or by the latest one outside
    /// the grace window): the session is now revoked.
    Reused { session_id: String, user_id: String },
    /// No live session knows the token (or it expired).
    Unknown,
}

/// A stored API key (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// SHA-256 of the secret part.
    pub secret_hash: Vec<u8>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// A stored room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRow {
    pub id: String,
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub kind: RoomKind,
    pub created_by: String,
    pub created_at: String,
    pub last_seq: i64,
    pub member_count: i64,
    /// For a DM, the pair it belongs to: `<user_id>:<user_id>`, whoever of the two is a
    /// member right now; `None` for a channel.
    pub dm_key: Option<String>,
    /// Who may use `@room` (column `room_mentions`, NULL = members).
    pub room_mentions: RoomMentions,
}

impl RoomRow {
    /// For a DM, the user ids of its two people (members or not); `None` for a channel.
    pub fn dm_pair(&self) -> Option<(&str, &str)> {
        self.dm_key.as_deref()?.split_once(':')
    }
}

/// A room as one member sees it: the room plus their membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRoomRow {
    pub room: RoomRow,
    pub role: MemberRole,
    pub last_read_seq: i64,
    /// Undeleted messages by others after `last_read_seq`.
    pub unread_count: i64,
    /// Of those, the ones that mention the user (rows of `message_mentions`).
    pub mention_count: i64,
    /// When the user joined (RFC 3339); with the room id, the order of their room list.
    pub joined_at: String,
}

/// A member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    pub user_id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub role: MemberRole,
    pub joined_at: String,
    pub last_read_seq: i64,
}

/// What [`RoomStore::leave`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// Whether the user was a member (and is not any more).
    pub removed: bool,
    /// If the last owner left: the member who became owner (longest-standing admin, else
    /// longest-standing member).
    pub new_owner: Option<String>,
    /// The pending invitations the user had sent to the room, now revoked: `(invitation
    /// id, invitee id)`.
    pub revoked_invitations: Vec<(String, String)>,
}

/// A stored invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationRow {
    pub id: String,
    pub room_id: String,
    pub room_name: String,
    pub inviter_id: String,
    pub inviter_username: String,
    pub invitee_id: String,
    pub status: String,
    pub created_at: String,
}

/// A stored attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRow {
    pub id: String,
    pub uploader_id: String,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub storage_key: String,
    pub created_at: String,
}

/// One user's reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionRow {
    pub message_id: String,
    pub emoji: String,
    pub user_id: String,
}

/// An earlier version of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditRow {
    pub version: i64,
    pub content: String,
    pub written_at: String,
}

/// A room to create.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub id: String,
    pub name: String,
    pub topic: Option<String>,
    pub visibility: Visibility,
    pub kind: RoomKind,
    pub created_by: String,
    pub created_at: String,
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
    pub message_type: MessageType,
    pub reply_to: Option<String>,
    pub attachment_id: Option<String>,
    /// For `call` messages: the call log entry.
    pub call: Option<CallLog>,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
    /// The seq of the latest change (its creation, edit, deletion or a reaction).
    pub updated_seq: i64,
    /// Who the content mentions (column `mentions`, JSON; NULL = nobody).
    pub mentions: Mentions,
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
    pub message_type: MessageType,
    pub reply_to: Option<String>,
    pub attachment_id: Option<String>,
    /// For `call` messages: the call log entry.
    pub call: Option<CallLog>,
    /// Store the message only if, when its batch commits, `sender_id` is a member of the
    /// room and the room is not a DM; otherwise it fails with [`StoreError::NotFound`] and
    /// nothing is stored (a repeated `client_id` fails too, rather than answer with the
    /// first message). The send path's authorization checked inside the insert, which
    /// saves a read per send and cannot go stale between check and insert. `false`: the
    /// caller checked (a DM, a reply, an attachment, a call log entry).
    pub member_only: bool,
    /// Who the content mentions, stored with the message.
    pub mentions: Mentions,
    /// The users the message notifies (mentioned by name, or reached by `@room` /
    /// `@here`), stored in `message_mentions` with its seq when it is stored.
    pub mentioned: Vec<String>,
}

/// The `mentions` column for `m`: JSON, or NULL when nobody is mentioned.
pub(crate) fn mentions_column(m: &Mentions) -> Option<String> {
    (!m.is_empty())
        .then(|| serde_json::to_string(m).ok())
        .flatten()
}

/// The `mentions` column read back (NULL or unreadable: nobody).
pub(crate) fn mentions_from_column(raw: Option<String>) -> Mentions {
    raw.and_then(|r| serde_json::from_str(&r).ok())
        .unwrap_or_default()
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

/// Accounts, and the tokens of the links e-mailed to them.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user. `username` and `email` must already be normalised (lower case).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with `"username"` or `"email"` when either is taken.
    async fn create_user(&self, user: &UserRow) -> StoreResult<()>;

    /// The user with this id, if any (deleted accounts included: their scrubbed row).
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>>;

    /// The user whose username or email equals `login` (already lower-cased), if any and
    /// not deleted.
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<UserRow>>;

    /// Users whose username starts with `prefix`, by username, after the username `after`,
    /// at most `limit`. Deleted accounts are never listed; disabled ones only if
    /// `include_disabled`.
    async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
        include_disabled: bool,
    ) -> StoreResult<Vec<UserRow>>;

    /// Replaces the profile fields and settings of a user; returns the updated row.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no such live user.
    async fn update_profile(
        &self,
        id: &str,
        profile: &Profile,
        settings: &str,
        updated_at: &str,
    ) -> StoreResult<UserRow>;

    /// Stores a new password hash.
    async fn update_password(&self, id: &str, password_hash: &str, at: &str) -> StoreResult<()>;

    /// Sets a user's global role. Returns `false` if there is no such live user.
    async fn set_role(&self, id: &str, role: Role) -> StoreResult<bool>;

    /// Disables (`Some(time)`) or re-enables (`None`) an account; disabling also revokes
    /// every session. Returns `false` if there is no such live user.
    async fn set_disabled(&self, id: &str, disabled_at: Option<&str>) -> StoreResult<bool>;

    /// Deletes an account, atomically: scrubs its personal data and last seen time (the
    /// row stays, with `username` replaced by `deleted_username`, so its messages stay
    /// attributed), revokes
    /// every session and API key, removes its room memberships (with their notification
    /// settings), blocks, sign-in identities, push subscriptions, resume tickets and
    /// e-mail tokens.
    async fn delete_user(&self, id: &str, deleted_username: &str, at: &str) -> StoreResult<()>;

    /// Records that user `id`'s last connection closed at `at` (RFC 3339 UTC, from
    /// presence): it becomes their last seen time unless a later one is stored (nodes may
    /// report out of order). Nothing for an unknown or deleted user.
    async fn set_last_seen(&self, id: &str, at: &str) -> StoreResult<()>;

    /// User `id`'s last seen time, as [`set_last_seen`](Self::set_last_seen) stored it;
    /// `None` if never (or an unknown or deleted user: deletion forgets it).
    async fn last_seen(&self, id: &str) -> StoreResult<Option<String>>;

    /// The number of Palaver id `id` of `kind`, if it has one (see [`NumericKind`]).
    async fn numeric_id(&self, kind: NumericKind, id: &str) -> StoreResult<Option<i64>>;

    /// The Palaver id of `kind` numbered `n`, if any.
    async fn id_of_number(&self, kind: NumericKind, n: i64) -> StoreResult<Option<String>>;

    /// Gives `id` of `kind` a number, unless it has one: `n` if given (and free), else the
    /// next after the highest of that kind. Returns the id's number (its existing one if
    /// it had one), or `None` when `n` was given and is another id's. Of concurrent
    /// assignments to one id, all get the same number.
    async fn assign_number(
        &self,
        kind: NumericKind,
        id: &str,
        n: Option<i64>,
    ) -> StoreResult<Option<i64>>;

    /// Stores an e-mail token under `token_hash` (SHA-256 of the token, 32 bytes).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no user `token.user_id`.
    async fn create_email_token(&self, token_hash: &[u8], token: &EmailToken) -> StoreResult<()>;

    /// Takes the token `token_hash` of `purpose`: if it is unused and not expired at
    /// `now` (RFC 3339 UTC), marks it used in the same statement and returns it. Of
    /// concurrent takes of one token, at most one gets [`TakenEmailToken::Taken`]; a token
    /// of another purpose is [`TakenEmailToken::Unknown`].
    async fn take_email_token(
        &self,
        token_hash: &[u8],
        purpose: EmailPurpose,
        now: &str,
    ) -> StoreResult<TakenEmailToken>;

    /// What [`take_email_token`](Self::take_email_token) would find, without spending
    /// anything (to check a request before the token is spent).
    async fn email_token(
        &self,
        token_hash: &[u8],
        purpose: EmailPurpose,
        now: &str,
    ) -> StoreResult<TakenEmailToken>;

    /// Marks every unused token of `user_id` with `purpose` used at `at` (the links
    /// already mailed stop working); returns how many.
    async fn spend_email_tokens(
        &self,
        user_id: &str,
        purpose: EmailPurpose,
        at: &str,
    ) -> StoreResult<u64>;

    /// Records that user `id`'s address is verified at `at`, if the account is live and
    /// its address still is `address`. Returns whether it did (again for an already
    /// verified address: `true`, the time unchanged).
    async fn verify_email(&self, id: &str, address: &str, at: &str) -> StoreResult<bool>;

    /// Replaces user `id`'s address with `email` (already normalised), verified at
    /// `verified_at` (`None`: unverified). Returns `false` if there is no such live user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with `"email"` when another account has that address.
    async fn set_email(
        &self,
        id: &str,
        email: &str,
        verified_at: Option<&str>,
        at: &str,
    ) -> StoreResult<bool>;

    /// User `user_id`'s two-factor secret and state, if they have started a setup.
    async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactorRow>>;

    /// Starts (or restarts) a two-factor setup with `secret`, unless two-factor codes are
    /// enabled already. Returns whether it was stored.
    async fn begin_two_factor(&self, user_id: &str, secret: &[u8], at: &str) -> StoreResult<bool>;

    /// Enables the setup begun with `secret` (unless enabled already, or begun again with
    /// another secret meanwhile), recording `step` as the last time step used and
    /// replacing the recovery codes with `recovery_hashes`, in one transaction. Returns
    /// whether it was enabled.
    async fn enable_two_factor(
        &self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        recovery_hashes: &[Vec<u8>],
        at: &str,
    ) -> StoreResult<bool>;

    /// Accepts a code of time step `step` if two-factor codes are enabled and no code of
    /// this or a later step was accepted before (RFC 6238 §5.2: a code is used once). Of
    /// concurrent uses of one step, at most one is accepted.
    async fn use_two_factor_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;

    /// Marks the unused recovery code with SHA-256 `code_hash` used at `at`. Of
    /// concurrent uses, at most one succeeds.
    async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        at: &str,
    ) -> StoreResult<bool>;

    /// How many of the user's recovery codes are unused.
    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<i64>;

    /// Removes the user's two-factor secret and recovery codes; returns whether they had
    /// two-factor codes enabled.
    async fn disable_two_factor(&self, user_id: &str) -> StoreResult<bool>;
}

/// A user's two-factor state ([`UserStore::two_factor`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwoFactorRow {
    /// The shared secret (RFC 6238 `K`).
    pub secret: Vec<u8>,
    /// When the setup was confirmed; `None` while only begun.
    pub enabled_at: Option<String>,
    /// The last time step whose code was accepted.
    pub last_step: i64,
}

/// What a number of [`UserStore::assign_number`] names: numbers for users and rooms in
/// protocols whose ids are integers (seed 003's signaling envelope,
/// `docs/signaling-compat.md`). Kept in table `numeric_ids`; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericKind {
    /// A user (numbered in order: 1, 2, ...).
    User,
    /// A room (numbered at random by the service).
    Room,
}

impl NumericKind {
    /// The `kind` column's value.
    pub fn as_str(self) -> &'static str {
        match self {
            NumericKind::User => "user",
            NumericKind::Room => "room",
        }
    }
}

/// Login sessions (one per device login; holds the refresh token hash).
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a new session.
    async fn create_session(&self, session: &NewSession) -> StoreResult<()>;

    /// The state of session `id` and its account at time `now`, if the session exists.
    async fn session_state(&self, id: &str, now: &str) -> StoreResult<Option<CredentialState>>;

    /// Spends refresh token `old_hash` and makes `new_hash` current, extending the session
    /// to `expires_at`; see [`Rotation`] for the outcomes. Every spent token is remembered
    /// (until `forget_before`), so presenting *any* of them again is reuse. `grace_cutoff`
    /// is the time before which the latest rotation counts as outside the grace window.
    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: &str,
        expires_at: &str,
        grace_cutoff: &str,
        forget_before: &str,
    ) -> StoreResult<Rotation>;

    /// The live sessions of a user, newest first.
    async fn sessions_for_user(&self, user_id: &str, now: &str) -> StoreResult<Vec<SessionRow>>;

    /// Revokes session `id` if it belongs to `user_id` and is live. Returns whether it did.
    async fn revoke_session(
        &self,
        user_id: &str,
        id: &str,
        reason: &str,
        at: &str,
    ) -> StoreResult<bool>;

    /// Revokes every live session of `user_id` except `keep` (if given); returns the ids
    /// revoked.
    async fn revoke_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
        at: &str,
    ) -> StoreResult<Vec<String>>;

    /// The distinct client addresses `user_id` has had sessions from (live or not: every
    /// successful login), newest first, at most `limit`. Empty for an unknown user.
    async fn session_ips(&self, user_id: &str, limit: i64) -> StoreResult<Vec<String>>;

    /// Stores (or replaces) the ticket whose token hashes to `ticket_hash` (SHA-256, 32 bytes).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] if there is no user `ticket.user_id`.
    async fn save_resume_ticket(
        &self,
        ticket_hash: &[u8],
        ticket: &ResumeTicket,
    ) -> StoreResult<()>;

    /// Takes the ticket `ticket_hash` (deleting it: single use) if it exists and has not
    /// expired at `now`; an expired one is deleted and `None` returned. A ticket has
    /// expired at `now` once `expires_at <= now` (as sessions do). Of concurrent takes of
    /// one ticket, at most one gets it.
    async fn take_resume_ticket(
        &self,
        ticket_hash: &[u8],
        now: &str,
    ) -> StoreResult<Option<ResumeTicket>>;

    /// Deletes every ticket expired at `now`; returns how many.
    async fn purge_resume_tickets(&self, now: &str) -> StoreResult<u64>;
}

/// API keys.
#[async_trait]
pub trait ApiKeyStore: Send + Sync {
    /// Stores a new key.
    async fn create_api_key(&self, key: &ApiKeyRow) -> StoreResult<()>;

    /// The user's keys that are not revoked, newest first.
    async fn api_keys_for_user(&self, user_id: &str) -> StoreResult<Vec<ApiKeyRow>>;

    /// Key `id` and the state of it and its account at `now`, if it exists.
    async fn api_key_state(
        &self,
        id: &str,
        now: &str,
    ) -> StoreResult<Option<(ApiKeyRow, CredentialState)>>;

    /// Records use of key `id` at `now`, unless it was recorded after `stale_before`
    /// (so a busy key costs one write a minute, not one per request).
    async fn touch_api_key(&self, id: &str, now: &str, stale_before: &str) -> StoreResult<()>;

    /// Revokes key `id` if it belongs to `user_id` and is not revoked yet.
    async fn revoke_api_key(&self, user_id: &str, id: &str, at: &str) -> StoreResult<bool>;

    /// Revokes every key of `user_id` not revoked yet; returns their ids.
    async fn revoke_api_keys(&self, user_id: &str, at: &str) -> StoreResult<Vec<String>>;
}

/// Blocks between users.
#[async_trait]
pub trait BlockStore: Send + Sync {
    /// `blocker` blocks `blocked`. Returns `false` if it already did.
    async fn block(&self, blocker: &str, blocked: &str, at: &str) -> StoreResult<bool>;

    /// Lifts a block. Returns `false` if there was none.
    async fn unblock(&self, blocker: &str, blocked: &str) -> StoreResult<bool>;

    /// The users `blocker` has blocked, most recent first.
    async fn blocked_by(&self, blocker: &str) -> StoreResult<Vec<UserRow>>;

    /// Whether `blocker` has blocked `blocked`.
    async fn is_blocked(&self, blocker: &str, blocked: &str) -> StoreResult<bool>;
}

/// Rooms, their members, bans, invitations and read markers.
#[async_trait]
pub trait RoomStore: Send + Sync {
    /// Creates a room and makes `created_by` its owner and first member, atomically.
    async fn create_room(&self, room: &NewRoom) -> StoreResult<RoomRow>;

    /// The DM room between `room.created_by` and `other`, creating it (with both as
    /// owners) if it does not exist; `dm_key` identifies the pair. Returns the room and
    /// whether it was created now.
    async fn open_dm(
        &self,
        room: &NewRoom,
        other: &str,
        dm_key: &str,
    ) -> StoreResult<(RoomRow, bool)>;

    /// The room with this id, if any.
    async fn room_by_id(&self, room_id: &str) -> StoreResult<Option<RoomRow>>;

    /// `(room_id, last_seq)` of each of `room_ids` that exists, in no particular order
    /// (one query, for a node checking that it delivered every change of its rooms).
    async fn last_seqs(&self, room_ids: &[String]) -> StoreResult<Vec<(String, i64)>>;

    /// Rooms `user_id` is a member of, with their membership, oldest membership first.
    async fn rooms_for_user(&self, user_id: &str) -> StoreResult<Vec<MemberRoomRow>>;

    /// A page of [`rooms_for_user`](Self::rooms_for_user): at most `limit`, after the
    /// membership `after = (joined_at, room_id)` when given.
    async fn rooms_for_user_page(
        &self,
        user_id: &str,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<MemberRoomRow>>;

    /// `room_id` as `user_id` sees it, if they are a member.
    async fn member_room(&self, room_id: &str, user_id: &str)
        -> StoreResult<Option<MemberRoomRow>>;

    /// Public rooms, newest first (by `created_at`, then id), at most `limit`: those
    /// whose name contains `name_contains` (ASCII case-insensitive) when given, and only
    /// those after `after = (created_at, id)` in that order when given.
    async fn public_rooms(
        &self,
        name_contains: Option<&str>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<RoomRow>>;

    /// Sets name, topic and who may use `@room`; returns the updated room, `None` if it
    /// does not exist.
    async fn update_room(
        &self,
        room_id: &str,
        name: &str,
        topic: Option<&str>,
        room_mentions: RoomMentions,
        at: &str,
    ) -> StoreResult<Option<RoomRow>>;

    /// Deletes a room with its members, messages, invitations and bans.
    async fn delete_room(&self, room_id: &str) -> StoreResult<bool>;

    /// `user_id`'s membership of `room_id`, if any.
    async fn member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRow>>;

    /// The room with this id, if any, with `user_id`'s membership of it, if any: one read
    /// for the check every room-scoped request makes.
    async fn room_and_member(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(RoomRow, Option<MemberRow>)>>;

    /// Whether `user_id` is a member of `room_id`.
    async fn is_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        Ok(self.member(room_id, user_id).await?.is_some())
    }

    /// The members of a room, owners first, then by joining time.
    async fn members(&self, room_id: &str) -> StoreResult<Vec<MemberRow>>;

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

    /// Removes a member; if they were the last owner, hands ownership to the
    /// longest-standing admin, else the longest-standing member. With `ban_by`, also bans
    /// them (atomically).
    async fn leave(
        &self,
        room_id: &str,
        user_id: &str,
        ban_by: Option<&str>,
        at: &str,
    ) -> StoreResult<Departure>;

    /// Sets a member's role. Returns `false` if they are not a member.
    async fn set_member_role(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
    ) -> StoreResult<bool>;

    /// Makes `to` the owner and `from` an admin, atomically. Returns `false` if `to` is
    /// not a member.
    async fn transfer_ownership(&self, room_id: &str, from: &str, to: &str) -> StoreResult<bool>;

    /// Whether `user_id` is banned from `room_id`.
    async fn is_banned(&self, room_id: &str, user_id: &str) -> StoreResult<bool>;

    /// Lifts a ban. Returns `false` if there was none.
    async fn unban(&self, room_id: &str, user_id: &str) -> StoreResult<bool>;

    /// Records a pending invitation; if one is already pending for this room and
    /// invitee, returns that one instead (unless its inviter is no longer a member or their
    /// account is disabled: that one is revoked first).
    async fn create_invitation(
        &self,
        id: &str,
        room_id: &str,
        inviter_id: &str,
        invitee_id: &str,
        at: &str,
    ) -> StoreResult<InvitationRow>;

    /// The pending invitations of `invitee_id` whose inviter is still a member of the room
    /// with an enabled account, newest first.
    async fn pending_invitations(&self, invitee_id: &str) -> StoreResult<Vec<InvitationRow>>;

    /// The pending invitations to `room_id` (only those sent by `inviter_id`, when given)
    /// whose inviter is still a member with an enabled account, newest first.
    async fn room_invitations(
        &self,
        room_id: &str,
        inviter_id: Option<&str>,
    ) -> StoreResult<Vec<InvitationRow>>;

    /// Invitation `id` in any status, if it exists.
    async fn invitation(&self, id: &str) -> StoreResult<Option<InvitationRow>>;

    /// Accepts (adding the invitee as a member) or declines a pending invitation,
    /// atomically, and returns its new status: `accepted`, `declined`, or `revoked` when
    /// accepting an invitation whose inviter is no longer a member of the room or whose
    /// account is disabled (nothing else changes then). `None` if it was not pending.
    async fn respond_invitation(
        &self,
        id: &str,
        accept: bool,
        at: &str,
    ) -> StoreResult<Option<String>>;

    /// Revokes invitation `id` if it is pending. Returns whether it did.
    async fn revoke_invitation(&self, id: &str, at: &str) -> StoreResult<bool>;

    /// The users other than `user_id` who share at least one room with them.
    async fn co_members(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// Whether `a` and `b` share at least one room.
    async fn share_a_room(&self, a: &str, b: &str) -> StoreResult<bool>;

    /// Moves `user_id`'s read marker in `room_id` forward to `seq` (capped at the room's
    /// last seq; never backwards). Returns the marker after the call, the unread count and
    /// the unread mentions of the user, or `None` if not a member.
    async fn mark_read(
        &self,
        room_id: &str,
        user_id: &str,
        seq: i64,
    ) -> StoreResult<Option<(i64, i64, i64)>>;
}

/// Message history.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Queues a message to be stored under the room's next seq, and returns as soon as it
    /// is queued; [`PendingMessage::committed`] resolves once it is on disk. Messages are
    /// stored in the order they were queued, so a caller that queues under a room's lock
    /// fixes the room's seq order without holding the lock until the commit (the SQLite
    /// store commits whatever is queued in one transaction: group commit). Every change to
    /// a message (edit, delete, reaction) takes the next seq of the same counter and
    /// records it as the message's `updated_seq`. If `client_id` is set and the same
    /// sender already stored a message with it in this room, stores nothing and resolves
    /// to that message with `false`; otherwise to the new message with `true`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the store is closing (here, or from `committed`);
    /// from `committed`: [`StoreError::NotFound`] if the room or the sender does not
    /// exist, [`StoreError::Unavailable`] if the commit failed (nothing of it is stored).
    async fn queue_message(&self, message: NewMessage) -> StoreResult<PendingMessage>;

    /// Reserves a place in the queue of [`MessageStore::queue_message`], waiting while it
    /// is full; [`MessageSlot::queue`] then queues without waiting, so a caller can fix
    /// the order of its messages under a lock that is never held across an `.await`.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the store is closing.
    async fn reserve_message(&self) -> StoreResult<MessageSlot>;

    /// One page of a room's history in ascending seq order, and whether more exist in the
    /// paging direction (older, unless only `after` is given: then newer).
    async fn messages_page(
        &self,
        room_id: &str,
        page: PageQuery,
    ) -> StoreResult<(Vec<MessageRow>, bool)>;

    /// Message `message_id` if it is in `room_id` (an id from another room is `None`).
    async fn message(&self, room_id: &str, message_id: &str) -> StoreResult<Option<MessageRow>>;

    /// Where message `message_id` is, whatever its room: `(room_id, seq)`, the seq it was
    /// created under (not its latest change); `None` when no message has that id. A
    /// deleted message (a tombstone) is still found. For protocols that address messages
    /// by id alone; the caller checks that the reader may see the room.
    async fn message_position(&self, message_id: &str) -> StoreResult<Option<(String, i64)>>;

    /// Replaces a message's content, keeping the previous version in its edit history,
    /// and its mentions: `mentions` is stored with it, `mentioned` replaces the users it
    /// notifies (see [`NewMessage::mentioned`]).
    async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: &str,
        mentions: &Mentions,
        mentioned: &[String],
        at: &str,
    ) -> StoreResult<MessageRow>;

    /// Turns a message into a tombstone: content emptied, reactions removed,
    /// `deleted_at` set. Its edit history is removed too.
    async fn delete_message(
        &self,
        room_id: &str,
        message_id: &str,
        at: &str,
    ) -> StoreResult<MessageRow>;

    /// Earlier versions of a message, oldest first.
    async fn edits(&self, message_id: &str) -> StoreResult<Vec<EditRow>>;

    /// Adds a reaction; returns the seq of the change, or `None` if the user had already
    /// reacted with that emoji (nothing changed).
    async fn add_reaction(
        &self,
        room_id: &str,
        message_id: &str,
        user_id: &str,
        emoji: &str,
        at: &str,
    ) -> StoreResult<Option<i64>>;

    /// Removes a reaction; returns the seq of the change, or `None` if there was none.
    async fn remove_reaction(
        &self,
        room_id: &str,
        message_id: &str,
        user_id: &str,
        emoji: &str,
    ) -> StoreResult<Option<i64>>;

    /// The messages of `room_id` changed (created, edited, deleted or reacted to) after
    /// seq `since`, ordered by their latest change (`updated_seq`), at most `limit`, and
    /// the room's `last_seq`, both read from one consistent snapshot: every change up to
    /// that seq is reflected (when fewer than `limit` rows come back).
    async fn changes_since(
        &self,
        room_id: &str,
        since: i64,
        limit: i64,
    ) -> StoreResult<(Vec<MessageRow>, i64)>;

    /// The reactions to the given messages, oldest first.
    async fn reactions(&self, message_ids: &[String]) -> StoreResult<Vec<ReactionRow>>;
}

/// A report of a message, with the room's name, the author and the reporter joined in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub id: String,
    pub room_id: String,
    pub room_name: String,
    /// Whether the room is a public channel (moderators see only those reports).
    pub public_channel: bool,
    pub message_id: String,
    pub author_id: String,
    pub author_username: String,
    /// The message's content when reported.
    pub content: String,
    pub reporter_id: String,
    pub reporter_username: String,
    pub reason: String,
    /// `open` or `resolved`.
    pub status: String,
    pub created_at: String,
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
}

/// A report to store.
#[derive(Debug, Clone)]
pub struct NewReport {
    pub id: String,
    pub room_id: String,
    pub message_id: String,
    pub reporter_id: String,
    pub reason: String,
    pub content: String,
    pub created_at: String,
}

/// Reports of messages, for the server's moderators and admins.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Stores an open report and returns it.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with `"report"` if the reporter already reported the
    /// message.
    async fn create_report(&self, report: &NewReport) -> StoreResult<ReportRow>;

    /// Reports with `status` (any, when `None`), only those of public channels when
    /// `public_only`, with ids after `after`, oldest first, at most `limit`.
    async fn reports(
        &self,
        status: Option<&str>,
        public_only: bool,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ReportRow>>;

    /// Report `id`, if it exists.
    async fn report(&self, id: &str) -> StoreResult<Option<ReportRow>>;

    /// Marks report `id` resolved by `by` at `at`, if it is open. Returns whether it did.
    async fn resolve_report(&self, id: &str, by: &str, at: &str) -> StoreResult<bool>;
}

/// Uploaded files' metadata (the bytes live in an `AttachmentStorage`).
#[async_trait]
pub trait AttachmentStore: Send + Sync {
    /// Records an uploaded file.
    async fn create_attachment(&self, attachment: &AttachmentRow) -> StoreResult<()>;

    /// The attachment with this id, if any.
    async fn attachment(&self, id: &str) -> StoreResult<Option<AttachmentRow>>;

    /// Whether `user_id` may download attachment `id`: they uploaded it, or they are a
    /// member of a room where a message carrying it was posted.
    async fn may_download(&self, id: &str, user_id: &str) -> StoreResult<bool>;
}

/// A sign-in identity: an account at an OpenID Connect provider or GitHub, linked to a
/// Palaver account (see `service/oidc.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityRow {
    pub id: String,
    pub user_id: String,
    /// The configured provider id (`[[auth.oidc]] id`) or `github`.
    pub provider: String,
    /// The provider's stable id of the user (`sub`, or GitHub's numeric id as text).
    pub subject: String,
    /// The provider's verified e-mail address when linked, if it gave one.
    pub email: Option<String>,
    pub created_at: String,
}

/// What [`IdentityStore::delete_identity`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlink {
    /// The identity is gone.
    Removed,
    /// The user has no identity with that id.
    NotFound,
    /// Refused: it is the account's last way to sign in (no password, no other identity).
    LastSignIn,
}

/// Sign-in identities at external providers, and the short-lived tickets of sign-in
/// flows (kept only as SHA-256 hashes, single use).
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Creates `user` and links `identity` to it, atomically (a first sign-in).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with `"username"`, `"email"` or `"identity"` (the
    /// provider and subject are linked already); nothing is stored then.
    async fn create_user_with_identity(
        &self,
        user: &UserRow,
        identity: &IdentityRow,
    ) -> StoreResult<()>;

    /// Links `identity` to its (existing) user.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] with `"identity"` if the provider and subject are linked
    /// already (to anyone); [`StoreError::NotFound`] if there is no such user.
    async fn create_identity(&self, identity: &IdentityRow) -> StoreResult<()>;

    /// The identity of `subject` at `provider`, if linked.
    async fn identity(&self, provider: &str, subject: &str) -> StoreResult<Option<IdentityRow>>;

    /// The identities of `user_id`, oldest first.
    async fn identities_for_user(&self, user_id: &str) -> StoreResult<Vec<IdentityRow>>;

    /// Removes identity `id` of `user_id` unless it is the account's last way to sign in
    /// (the account has no password, `password_hash = ''`, and no other identity); the
    /// check and the removal are atomic.
    async fn delete_identity(&self, user_id: &str, id: &str) -> StoreResult<Unlink>;

    /// Stores (or replaces) the ticket whose token hashes to `ticket_hash`.
    async fn save_ticket(
        &self,
        ticket_hash: &[u8],
        kind: &str,
        payload: &str,
        expires_at: &str,
    ) -> StoreResult<()>;

    /// Takes the ticket `ticket_hash` of `kind` (deleting it: single use) and returns its
    /// payload, unless it has expired at `now` (`expires_at <= now`: then `None`, and it
    /// is deleted all the same) or is of another kind (`None`, and it is kept). Of
    /// concurrent takes of one ticket, at most one gets it.
    async fn take_ticket(
        &self,
        ticket_hash: &[u8],
        kind: &str,
        now: &str,
    ) -> StoreResult<Option<String>>;

    /// Deletes every ticket expired at `now`; returns how many.
    async fn purge_tickets(&self, now: &str) -> StoreResult<u64>;
}

/// What a message search looks at besides its words. Times are RFC 3339 UTC in the
/// stores' format (compared as text, like every stored time).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchFilter {
    /// Only this room's messages.
    pub room_id: Option<String>,
    /// Only this user's messages.
    pub sender_id: Option<String>,
    /// Only messages created strictly before this time.
    pub before: Option<String>,
    /// Only messages created strictly after this time.
    pub after: Option<String>,
    /// `Some(true)`: only messages with an attachment; `Some(false)`: only without.
    pub has_attachment: Option<bool>,
    /// Newest first instead of best match first.
    pub newest_first: bool,
}

/// One message a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchHit {
    pub message: MessageRow,
    /// The name of the message's room.
    pub room_name: String,
    /// How well it matched: higher is better (FTS5's bm25 negated on SQLite,
    /// `ts_rank_cd` on PostgreSQL; comparable within one result list only).
    pub rank: f64,
}

/// Full-text search over messages. The index (words folded by [`crate::search`]) is kept
/// by the message writes themselves (insert, edit, delete) in their transactions.
#[async_trait]
pub trait SearchStore: Send + Sync {
    /// The undeleted messages matching `query` and `filter` in the rooms `user_id` is a
    /// member of *now* (the rule of the history route: a member reads the room's whole
    /// history, a former member none of it), best match first (ties: newest first) or
    /// newest first; skipping `offset`, at most `limit`, and whether more follow.
    async fn search_messages(
        &self,
        user_id: &str,
        query: &crate::search::SearchQuery,
        filter: &SearchFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<SearchHit>, bool)>;
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
    pub api_keys: Arc<dyn ApiKeyStore>,
    pub blocks: Arc<dyn BlockStore>,
    pub rooms: Arc<dyn RoomStore>,
    pub messages: Arc<dyn MessageStore>,
    pub attachments: Arc<dyn AttachmentStore>,
    pub reports: Arc<dyn ReportStore>,
    pub search: Arc<dyn SearchStore>,
    pub identities: Arc<dyn IdentityStore>,
    pub notifications: Arc<dyn NotificationStore>,
}

/// Creates `dir` and any missing parents readable by the owner only (0700 on Unix), as the
/// data directory holds password hashes and every private message (ASVS 5.0 V13.3). An
/// existing directory keeps the permissions its operator gave it.
///
/// # Errors
/// The directory cannot be created.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates the empty file `path` readable by the owner only (0600 on Unix) unless it
/// exists, so that SQLite, which gives its `-wal` and `-shm` files the database file's
/// permissions, creates all three private.
///
/// # Errors
/// The file cannot be created.
pub fn create_private_file(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}
