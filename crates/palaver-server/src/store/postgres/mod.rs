//! The PostgreSQL store: the same traits, and the same behaviour, as [`super::sqlite`],
//! for deployments that run several nodes against one database.
//!
//! - One connection pool serves reads and writes; PostgreSQL's MVCC lets them run side
//!   by side. Statements run at READ COMMITTED, except [`changes_since`] (one
//!   REPEATABLE READ snapshot for its two reads).
//! - Room seqs: every change that takes a seq (a new message, an edit, a deletion, a
//!   reaction) takes it under the room's row lock, in the transaction that stores the
//!   change (`UPDATE rooms SET last_seq = last_seq + 1 ... RETURNING last_seq`), so the
//!   next seq waits for the previous commit: seq order is commit order, even with
//!   several nodes writing.
//! - Serialisation that SQLite's single writer gives for free is had here with that same
//!   row lock: every write that reads and then changes a room's membership, roles or
//!   invitations, or a message, first locks its room (`SELECT ... FOR NO KEY UPDATE`,
//!   the lock an `UPDATE` of `last_seq` takes: it does not block foreign-key checks).
//! - Deadlock rule: a transaction takes its room locks before any other row lock, and
//!   one that locks several rooms (a batch of messages, an account deletion) locks them
//!   in ascending id order.
//! - New messages are stored by a group-commit task (see [`writer`]), as on SQLite.
//!
//! The schema (`migrations/postgres/0001_init.sql`) equals SQLite's after its eight
//! first migrations, and each later one repeats a later SQLite one (`0002_last_seen.sql`
//! is SQLite's 0009, `0003_resume_tickets.sql` its 0010, `0004_numeric_ids.sql` its 0011, `0006_email.sql` its 0013, `0009_notifications.sql` its 0016), with every TEXT column in the
//! "C" collation so that comparisons and ordering are byte-wise, as on SQLite. They are
//! embedded in the binary and applied at connect through sqlx's migrator (recorded in
//! `_sqlx_migrations`).
//!
//! [`changes_since`]: crate::store::MessageStore::changes_since

mod accounts;
mod identities;
mod messages;
mod notifications;
mod reports;
mod rooms;
mod search;
mod users;
mod writer;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use super::{Database, Store, StoreError};

/// The migrations, in order: `(version, description, sql)`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "last seen",
        include_str!("../../../migrations/postgres/0002_last_seen.sql"),
    ),
    (
        3,
        "resume tickets",
        include_str!("../../../migrations/postgres/0003_resume_tickets.sql"),
    ),
    (
        4,
        "numeric ids",
        include_str!("../../../migrations/postgres/0004_numeric_ids.sql"),
    ),
    (
        5,
        "two factor",
        include_str!("../../../migrations/postgres/0005_two_factor.sql"),
    ),
    (
        6,
        "email",
        include_str!("../../../migrations/postgres/0006_email.sql"),
    ),
    (
        7,
        "identities",
        include_str!("../../../migrations/postgres/0007_identities.sql"),
    ),
    (
        8,
        "search",
        include_str!("../../../migrations/postgres/0008_search.sql"),
    ),
    (
        9,
        "notifications",
        include_str!("../../../migrations/postgres/0009_notifications.sql"),
    ),
    (
        10,
        "mentions",
        include_str!("../../../migrations/postgres/0010_mentions.sql"),
    ),
];

/// Connections the pool opens at most.
const MAX_CONNECTIONS: u32 = 16;

/// Hands the embedded migrations to sqlx's [`Migrator`] (the `migrate!` macro would need
/// sqlx's `macros` feature, which this crate does not enable).
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// A handle on the PostgreSQL database: the pool and the group-commit task.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    /// Every query and transaction.
    pool: PgPool,
    /// The task that stores new messages, many per transaction.
    group_commit: writer::GroupCommit,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with any of libpq's query parameters that sqlx supports, e.g. `?sslmode=require`)
    /// and applies pending migrations. The database must exist.
    ///
    /// # Errors
    /// The URL is malformed, the server cannot be reached or refuses the login, or a
    /// migration fails (the database is then left at the last migration that succeeded).
    /// The URL is never part of the message (it may hold a password).
    pub async fn connect(url: &str) -> anyhow::Result<PostgresStore> {
        use anyhow::Context as _;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        Migrator::new(Embedded)
            .await
            .context("loading migrations")?
            .run(&pool)
            .await
            .context("applying migrations")?;
        search::ensure_index(&pool)
            .await
            .context("building the search index")?;
        let group_commit = writer::GroupCommit::start(pool.clone());
        Ok(PostgresStore { pool, group_commit })
    }

    /// The pool, for [`crate::store::transfer`]'s whole-database reads and writes.
    pub(crate) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Builds the message search index from the messages if it is missing or was built
    /// by an older folding (`search::INDEX_VERSION`); returns how many were indexed.
    ///
    /// # Errors
    /// A query fails (nothing is changed then).
    pub(crate) async fn ensure_search_index(&self) -> Result<u64, sqlx::Error> {
        search::ensure_index(&self.pool).await
    }

    /// All the stores, backed by this database.
    pub fn store(&self) -> Store {
        let this = Arc::new(self.clone());
        Store {
            database: this.clone(),
            users: this.clone(),
            sessions: this.clone(),
            api_keys: this.clone(),
            blocks: this.clone(),
            rooms: this.clone(),
            messages: this.clone(),
            attachments: this.clone(),
            reports: this.clone(),
            search: this.clone(),
            identities: this.clone(),
            notifications: this,
        }
    }
}

#[async_trait::async_trait]
impl Database for PostgresStore {
    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// Commits the messages still queued, then closes the pool, waiting for in-flight
    /// queries.
    async fn close(&self) {
        self.group_commit.close().await;
        self.pool.close().await;
    }
}

/// Locks room `room_id`'s row until the end of the transaction (the lock that taking a
/// seq takes); does nothing if there is no such room. Returns whether it exists.
async fn lock_room(conn: &mut PgConnection, room_id: &str) -> Result<bool, sqlx::Error> {
    let found: Option<bool> =
        sqlx::query_scalar("SELECT true FROM rooms WHERE id = $1 FOR NO KEY UPDATE")
            .bind(room_id)
            .fetch_optional(&mut *conn)
            .await?;
    Ok(found.is_some())
}

/// Whether `e` is a violation of the unique constraint or index named `constraint`.
fn unique_violation_on(e: &sqlx::Error, constraint: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}

/// Whether `e` is a FOREIGN KEY violation.
fn foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}

/// `e` as a store error: a FOREIGN KEY violation is [`StoreError::NotFound`] (a row it
/// names is missing), anything else [`StoreError::Database`].
fn not_found_on_foreign_key(e: sqlx::Error) -> StoreError {
    if foreign_key_violation(&e) {
        StoreError::NotFound
    } else {
        StoreError::Database(e)
    }
}
