//! The embedded SQLite store.
//!
//! One database file in WAL mode with `synchronous = FULL`, so a commit that returned is
//! on disk (a send is acknowledged only after that). Reads use a pool of read-only
//! connections and never wait for writes (WAL readers see the last committed snapshot).
//!
//! Two connections write, taking turns on SQLite's single write lock:
//! - New messages, the most frequent write, are stored by the group-commit writer (see
//!   [`writer`]): a thread with its own connection, many messages per transaction and
//!   fsync.
//! - Every other write goes through sqlx's writer pool of exactly one connection, its
//!   transactions opened with `BEGIN IMMEDIATE` ([`SqliteStore::begin_write`]) so that
//!   they wait for the message writer rather than fail (see [`writer`] for why).
//!
//! Migrations are embedded in the binary (`migrations/sqlite/*.sql`) and applied at open
//! through sqlx's migrator, which records them in `_sqlx_migrations`.

mod accounts;
mod messages;
mod reports;
mod rooms;
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
pub use writer::WriterStats;

/// How long a connection waits for SQLite's write lock (held by the other writing
/// connection, or a checkpoint) before its statement fails with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// WAL pages after which a commit checkpoints, on both writing connections (SQLite's
/// default is 1,000, which one large batch of messages exceeds, making every commit also
/// copy its pages into the database file and fsync it). 8,192 pages is 32 MiB of WAL
/// between checkpoints; a page changed by many batches is copied once per checkpoint.
const WAL_AUTOCHECKPOINT: u32 = 8192;

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
    /// Exactly one connection: every write but new messages goes through it.
    writer: SqlitePool,
    /// Read-only connections for queries.
    reader: SqlitePool,
    /// The thread that stores new messages, many per transaction.
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
            .busy_timeout(BUSY_TIMEOUT);
        let writer_options = options
            .clone()
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT.to_string());
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(writer_options)
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
        let group_commit = writer::GroupCommit::start(path, BUSY_TIMEOUT)
            .await
            .context("starting the message writer")?;
        Ok(SqliteStore {
            writer,
            reader,
            group_commit,
        })
    }

    /// What the message writer (group commit) did since the store opened: commits and
    /// messages, whose ratio is the mean batch size.
    pub fn writer_stats(&self) -> WriterStats {
        self.group_commit.stats()
    }

    /// Begins a transaction on the writer pool with `BEGIN IMMEDIATE`: it takes SQLite's
    /// write lock before reading, waiting (up to the busy timeout) while the message
    /// writer commits a batch. A deferred `BEGIN` that read first would fail with
    /// `SQLITE_BUSY` at its first write whenever a batch committed in between.
    ///
    /// # Errors
    /// The lock was not had within the busy timeout, or the connection failed.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.writer.begin_with("BEGIN IMMEDIATE").await
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
            reports: this,
        }
    }
}

#[async_trait::async_trait]
impl Database for SqliteStore {
    async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.reader).await.is_ok()
    }

    /// Commits the messages still queued and closes the message writer's connection, then
    /// closes both pools, waiting for in-flight queries; the WAL is checkpointed when the
    /// last connection closes.
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
