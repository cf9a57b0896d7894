//! The embedded SQLite store.
//!
//! One database file in WAL mode with `synchronous = FULL`, so a commit that returned is
//! on disk (a send is acknowledged only after that). Writes go through a pool of exactly
//! one connection, which serialises them the way SQLite does anyway and makes the
//! seq counter trivially gap-free; reads use a separate pool and never wait for writes
//! (WAL readers see the last committed snapshot).
//!
//! New messages, the most frequent write, are stored by a group-commit task (see
//! [`writer`]): many per transaction and fsync.
//!
//! Migrations are embedded in the binary (`migrations/sqlite/*.sql`) and applied at open
//! through sqlx's migrator, which records them in `_sqlx_migrations`.

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
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::{Database, Store};

/// The migrations, in order: `(version, description, sql)`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "accounts",
        include_str!("../../../migrations/sqlite/0002_accounts.sql"),
    ),
    (
        3,
        "spent refresh tokens",
        include_str!("../../../migrations/sqlite/0003_spent_refresh_tokens.sql"),
    ),
    (
        4,
        "conversations",
        include_str!("../../../migrations/sqlite/0004_conversations.sql"),
    ),
    (
        5,
        "change seq",
        include_str!("../../../migrations/sqlite/0005_change_seq.sql"),
    ),
    (
        6,
        "seq trigger",
        include_str!("../../../migrations/sqlite/0006_seq_trigger.sql"),
    ),
    (
        7,
        "call log",
        include_str!("../../../migrations/sqlite/0007_call_log.sql"),
    ),
    (
        8,
        "room rules",
        include_str!("../../../migrations/sqlite/0008_room_rules.sql"),
    ),
    (
        9,
        "last seen",
        include_str!("../../../migrations/sqlite/0009_last_seen.sql"),
    ),
    (
        10,
        "resume tickets",
        include_str!("../../../migrations/sqlite/0010_resume_tickets.sql"),
    ),
    (
        11,
        "numeric ids",
        include_str!("../../../migrations/sqlite/0011_numeric_ids.sql"),
    ),
    (
        12,
        "two factor",
        include_str!("../../../migrations/sqlite/0012_two_factor.sql"),
    ),
    (
        13,
        "email",
        include_str!("../../../migrations/sqlite/0013_email.sql"),
    ),
    (
        14,
        "identities",
        include_str!("../../../migrations/sqlite/0014_identities.sql"),
    ),
    (
        15,
        "search",
        include_str!("../../../migrations/sqlite/0015_search.sql"),
    ),
    (
        16,
        "notifications",
        include_str!("../../../migrations/sqlite/0016_notifications.sql"),
    ),
    (
        17,
        "mentions",
        include_str!("../../../migrations/sqlite/0017_mentions.sql"),
    ),
];

/// Hands the embedded migrations to sqlx's [`Migrator`].
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

/// A handle on the SQLite database: the writer and reader pools.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: every write goes through it.
    writer: SqlitePool,
    /// Read-only connections for queries.
    reader: SqlitePool,
    /// The task that stores new messages, many per transaction.
    group_commit: writer::GroupCommit,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` and applies pending migrations.
    ///
    /// # Errors
    /// The file cannot be opened or created, or a migration fails (the database is then
    /// left at the last migration that succeeded).
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        use anyhow::Context as _;
        crate::store::create_private_file(path)
            .with_context(|| format!("creating database {}", path.display()))?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("opening database {}", path.display()))?;
        Migrator::new(Embedded)
            .await
            .context("loading migrations")?
            .run(&writer)
            .await
            .context("applying migrations")?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .with_context(|| format!("opening database {} for reading", path.display()))?;
        search::ensure_index(&writer)
            .await
            .context("building the search index")?;
        let group_commit = writer::GroupCommit::start(writer.clone());
        Ok(SqliteStore {
            writer,
            reader,
            group_commit,
        })
    }

    /// The writer pool (one connection), for [`crate::store::transfer`]'s whole-database
    /// reads and writes.
    pub(crate) fn writer_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Builds the message search index from the messages if it is missing or was built
    /// by an older folding (`search::INDEX_VERSION`); returns how many were indexed.
    ///
    /// # Errors
    /// A query fails (nothing is changed then).
    pub(crate) async fn ensure_search_index(&self) -> Result<u64, sqlx::Error> {
        search::ensure_index(&self.writer).await
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
impl Database for SqliteStore {
    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    /// Commits the messages still queued, then closes both pools, waiting for in-flight
    /// queries; the WAL is checkpointed when the last connection closes.
    async fn close(&self) {
        self.group_commit.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Whether `e` is a UNIQUE violation (sqlx fills `constraint()` only on Postgres, so on
/// SQLite the message names the column: "UNIQUE constraint failed: users.email").
fn unique_violation_on(e: &sqlx::Error, column: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => db.is_unique_violation() && db.message().contains(column),
        _ => false,
    }
}

/// Whether `e` is a FOREIGN KEY violation.
fn foreign_key_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_foreign_key_violation())
}
