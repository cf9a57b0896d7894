//! Moving a whole install between databases, and applying migrations on demand: the
//! library side of `palaver migrate`, `palaver export` and `palaver import`.
//!
//! Both backends have the same tables with the same columns (see
//! `migrations/postgres/0001_init.sql`), so the transfer is a generic copy of every row of
//! every table, described by [`TABLES`]; nothing is translated. The export file is JSON
//! Lines (UTF-8, one JSON object per line):
//!
//! 1. A header: `{"format":"palaver-export","version":5,"backend":"sqlite",
//!    "schema_version":9,"exported_at":"<RFC 3339>"}`: [`FORMAT_VERSION`] fixes the set of
//!    tables and columns below; `backend` and `schema_version` (the last migration applied
//!    to the source) are for the reader. Files of an earlier version are read too: the
//!    columns added since ([`ADDED_COLUMNS`]) are NULL.
//! 2. One line per row, `{"table":"users","row":{"id":"...",...}}`, every column of the
//!    table in the schema's order. Tables come in [`TABLES`] order (foreign keys point only
//!    to earlier tables), rows in primary-key order (byte-wise on both backends, so an
//!    export of an imported database has the same row lines). Values are `null`, a JSON
//!    integer (INTEGER / BIGINT columns), a JSON string (TEXT columns: ids, RFC 3339
//!    times, JSON texts) or, for the BLOB / BYTEA columns (token and key hashes), a string
//!    of lowercase hex digits. No column is REAL.
//! 3. A trailer, `{"end":{"users":2,...}}`: the number of rows of every table, so that a
//!    truncated file is refused.
//!
//! The export reads one consistent snapshot (a read transaction), so it may run while the
//! server does. The import writes into an empty database only (every table empty after
//! migrating it), in one transaction: on any error (a malformed line, an unknown table or
//! column, a value of the wrong type, a constraint violation, a count that disagrees with
//! the trailer) nothing is written. Values are restored exactly (ids, seqs, times), and
//! each room's `last_seq` is set to the exported one after the messages are in (SQLite's
//! `messages_take_seq` trigger moves it on every inserted message).
//!
//! What is not in the file: `_sqlx_migrations` (each backend has its own), the
//! [`EPHEMERAL_TABLES`] (state that is worthless minutes later, such as SignalR resume
//! tickets), the search index (derived from the messages: [`is_derived_table`]; rebuilt
//! after the import), the signing key and the attachment bytes (both in the data directory or the
//! S3 bucket, not in the database).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, Write as _};
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use futures_util::TryStreamExt as _;
use serde_json::{Map, Value};

use super::postgres::PostgresStore;
use super::sqlite::SqliteStore;
use super::Database as _;
use crate::config::DatabaseLocation;

/// The `format` of the header line.
pub const FORMAT: &str = "palaver-export";

/// The version of the file format: which tables and columns ([`TABLES`]) a file holds.
/// Version 2 added `users.last_seen_at`; version 3 the table `numeric_ids` (a file of an
/// earlier version has no rows of it: its users get numbers again when first needed);
/// version 4 the tables `two_factor`, `recovery_codes` and `identities`; version 5 the
/// table `message_mentions`, the columns `messages.mentions` and `rooms.room_mentions`,
/// and the tables `notification_settings`, `push_subscriptions` and `vapid_keys` (a file
/// of an earlier version has no rows of them: no settings, no subscriptions, and a VAPID
/// key pair is made on first use).
pub const FORMAT_VERSION: i64 = 5;

/// `(version, table, column)`: the columns format `version` added. A row of a file of
/// an earlier version has none of them; they are imported as NULL.
pub const ADDED_COLUMNS: &[(i64, &str, &str)] = &[
    (2, "users", "last_seen_at"),
    (4, "users", "email_verified_at"),
    (5, "messages", "mentions"),
    (5, "rooms", "room_mentions"),
];

/// Rows per INSERT statement on import (15 columns at most: far below either backend's
/// limit on bound parameters).
const BATCH_ROWS: usize = 100;

/// The storage class of a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TEXT: a JSON string.
    Text,
    /// INTEGER (SQLite), BIGINT (PostgreSQL): a JSON integer.
    Integer,
    /// BLOB (SQLite), BYTEA (PostgreSQL): a JSON string of lowercase hex digits.
    Blob,
}

/// A table of the schema, as the transfer sees it.
#[derive(Debug)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// Its primary key's columns, in the key's order.
    pub key: &'static [&'static str],
    /// Every column, in the schema's order, with its kind.
    pub columns: &'static [(&'static str, Kind)],
}

use Kind::{Blob, Integer, Text};

/// Tables of the schema that are deliberately not transferred: short-lived state that a
/// copy must not carry (a restored or moved install starts without it, and nothing is
/// lost but a resume that falls back to a full resync). The schema check ignores them;
/// the export skips them and the import leaves them empty.
///
/// - `resume_tickets`: SignalR resume tickets (`SessionStore::save_resume_ticket`), valid
///   for minutes and single use.
/// - `email_tokens`: the tokens of mailed links (verification, e-mail change, password
///   reset), valid for minutes or hours and single use; a moved install's users ask for
///   new links.
pub const EPHEMERAL_TABLES: &[&str] = &["resume_tickets", "oidc_tickets", "email_tokens"];

/// Tables derived from the others, which the export skips, the import leaves empty and
/// the store rebuilds: the message search index (`migrations/*/…_search.sql`; on SQLite
/// an FTS5 table with its shadow tables `message_search_*`).
pub fn is_derived_table(name: &str) -> bool {
    name == "search_index_state" || name == "message_search" || name.starts_with("message_search_")
}

/// Every table of the schema, each after the tables its foreign keys point to (so that
/// inserting in this order satisfies them). `_sqlx_migrations` and the
/// [`EPHEMERAL_TABLES`] are not among them.
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("username", Text),
            ("email", Text),
            ("password_hash", Text),
            ("created_at", Text),
            ("role", Text),
            ("display_name", Text),
            ("first_name", Text),
            ("last_name", Text),
            ("bio", Text),
            ("location", Text),
            ("website", Text),
            ("avatar_url", Text),
            ("settings", Text),
            ("updated_at", Text),
            ("disabled_at", Text),
            ("deleted_at", Text),
            ("last_seen_at", Text),
            ("email_verified_at", Text),
        ],
    },
    Table {
        name: "sessions",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("refresh_token_hash", Blob),
            ("device_name", Text),
            ("ip", Text),
            ("created_at", Text),
            ("last_used_at", Text),
            ("expires_at", Text),
            ("revoked_at", Text),
            ("previous_token_hash", Blob),
            ("rotated_at", Text),
            ("revoked_reason", Text),
        ],
    },
    Table {
        name: "spent_refresh_tokens",
        key: &["token_hash"],
        columns: &[
            ("token_hash", Blob),
            ("session_id", Text),
            ("spent_at", Text),
        ],
    },
    Table {
        name: "api_keys",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("name", Text),
            ("secret_hash", Blob),
            ("created_at", Text),
            ("expires_at", Text),
            ("last_used_at", Text),
            ("revoked_at", Text),
        ],
    },
    Table {
        name: "blocks",
        key: &["blocker_id", "blocked_id"],
        columns: &[
            ("blocker_id", Text),
            ("blocked_id", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "rooms",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("name", Text),
            ("topic", Text),
            ("visibility", Text),
            ("created_by", Text),
            ("created_at", Text),
            ("last_seq", Integer),
            ("kind", Text),
            ("dm_key", Text),
            ("updated_at", Text),
            ("room_mentions", Text),
        ],
    },
    Table {
        name: "room_members",
        key: &["room_id", "user_id"],
        columns: &[
            ("room_id", Text),
            ("user_id", Text),
            ("role", Text),
            ("joined_at", Text),
            ("last_read_seq", Integer),
        ],
    },
    Table {
        name: "room_bans",
        key: &["room_id", "user_id"],
        columns: &[
            ("room_id", Text),
            ("user_id", Text),
            ("banned_by", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "invitations",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("room_id", Text),
            ("inviter_id", Text),
            ("invitee_id", Text),
            ("created_at", Text),
            ("responded_at", Text),
            ("status", Text),
        ],
    },
    Table {
        name: "attachments",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("uploader_id", Text),
            ("filename", Text),
            ("content_type", Text),
            ("size", Integer),
            ("storage_key", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "messages",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("room_id", Text),
            ("seq", Integer),
            ("sender_id", Text),
            ("content", Text),
            ("client_id", Text),
            ("created_at", Text),
            ("reply_to", Text),
            ("attachment_id", Text),
            ("edited_at", Text),
            ("deleted_at", Text),
            ("updated_seq", Integer),
            ("call_log", Text),
            ("message_type", Text),
            ("mentions", Text),
        ],
    },
    Table {
        name: "message_mentions",
        key: &["message_id", "user_id"],
        columns: &[
            ("message_id", Text),
            ("user_id", Text),
            ("room_id", Text),
            ("seq", Integer),
        ],
    },
    Table {
        name: "message_edits",
        key: &["message_id", "version"],
        columns: &[
            ("message_id", Text),
            ("version", Integer),
            ("content", Text),
            ("written_at", Text),
        ],
    },
    Table {
        name: "reactions",
        key: &["message_id", "emoji", "user_id"],
        columns: &[
            ("message_id", Text),
            ("user_id", Text),
            ("emoji", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "message_reports",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("room_id", Text),
            ("message_id", Text),
            ("reporter_id", Text),
            ("reason", Text),
            ("content", Text),
            ("status", Text),
            ("created_at", Text),
            ("resolved_by", Text),
            ("resolved_at", Text),
        ],
    },
    Table {
        name: "two_factor",
        key: &["user_id"],
        columns: &[
            ("user_id", Text),
            ("secret", Blob),
            ("enabled_at", Text),
            ("last_step", Integer),
            ("created_at", Text),
        ],
    },
    Table {
        name: "recovery_codes",
        key: &["user_id", "code_hash"],
        columns: &[("user_id", Text), ("code_hash", Blob), ("used_at", Text)],
    },
    Table {
        name: "numeric_ids",
        key: &["kind", "id"],
        columns: &[("kind", Text), ("id", Text), ("n", Integer)],
    },
    Table {
        name: "identities",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("provider", Text),
            ("subject", Text),
            ("email", Text),
            ("created_at", Text),
        ],
    },
    Table {
        name: "notification_settings",
        key: &["room_id", "user_id"],
        columns: &[
            ("room_id", Text),
            ("user_id", Text),
            ("level", Text),
            ("muted_until", Text),
            ("updated_at", Text),
        ],
    },
    Table {
        name: "push_subscriptions",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("user_id", Text),
            ("session_id", Text),
            ("endpoint", Text),
            ("p256dh", Text),
            ("auth", Text),
            ("user_agent", Text),
            ("created_at", Text),
        ],
    },
    // The VAPID private key is a secret, and it is exported all the same (the file is
    // owner-only and already holds two-factor secrets): every browser's push subscription
    // is bound to the public key, so a moved install with a new key pair would have to
    // have every device subscribe again.
    Table {
        name: "vapid_keys",
        key: &["id"],
        columns: &[
            ("id", Integer),
            ("private_key", Blob),
            ("public_key", Blob),
            ("created_at", Text),
        ],
    },
];

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The migrations this call applied, `(version, description)`, in order; empty when
    /// the database was up to date.
    pub applied: Vec<(i64, String)>,
    /// The last migration applied to the database now.
    pub schema_version: i64,
}

/// What [`export`] wrote or [`import`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The database's backend (for an import, the target's), `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The last migration applied to that database.
    pub schema_version: i64,
    /// Rows per table, in [`TABLES`] order.
    pub rows: Vec<(&'static str, u64)>,
}

impl Summary {
    /// The number of rows in all tables.
    pub fn total(&self) -> u64 {
        self.rows.iter().map(|(_, n)| n).sum()
    }
}

/// An opened database: the store (which applied pending migrations when it opened).
enum Opened {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Opened {
    /// Opens (creating a missing SQLite file and its directory, private) and migrates.
    async fn open(location: &DatabaseLocation<'_>) -> anyhow::Result<Opened> {
        if let DatabaseLocation::Sqlite(path) = location {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                super::create_private_dir(dir)
                    .with_context(|| format!("creating data directory {}", dir.display()))?;
            }
        }
        Ok(match location {
            DatabaseLocation::Sqlite(path) => Opened::Sqlite(SqliteStore::open(path).await?),
            DatabaseLocation::Postgres(url) => Opened::Postgres(
                PostgresStore::connect(url)
                    .await
                    .context("opening the PostgreSQL database of database_url")?,
            ),
        })
    }

    fn backend(&self) -> &'static str {
        match self {
            Opened::Sqlite(_) => "sqlite",
            Opened::Postgres(_) => "postgres",
        }
    }

    async fn close(self) {
        match self {
            Opened::Sqlite(db) => db.close().await,
            Opened::Postgres(db) => db.close().await,
        }
    }

    /// The migrations applied, `(version, description)`, in order.
    async fn applied(&self) -> anyhow::Result<Vec<(i64, String)>> {
        const SQL: &str =
            "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version";
        Ok(match self {
            Opened::Sqlite(db) => sqlx::query_as(SQL).fetch_all(db.writer_pool()).await?,
            Opened::Postgres(db) => sqlx::query_as(SQL).fetch_all(db.pool()).await?,
        })
    }

    async fn schema_version(&self) -> anyhow::Result<i64> {
        Ok(self.applied().await?.last().map_or(0, |(v, _)| *v))
    }

    /// Checks that the database has exactly the tables and columns of [`TABLES`] (plus
    /// `_sqlx_migrations` and the [`EPHEMERAL_TABLES`]), so that a copy of them is a copy
    /// of everything worth copying.
    async fn check_schema(&self) -> anyhow::Result<()> {
        let columns: Vec<(String, String)> = match self {
            Opened::Sqlite(db) => sqlx::query_as(
                "SELECT m.name, c.name FROM sqlite_master AS m, pragma_table_info(m.name) AS c \
                     WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'",
            )
            .fetch_all(db.writer_pool())
            .await?,
            Opened::Postgres(db) => {
                sqlx::query_as(
                    "SELECT c.table_name::text, c.column_name::text \
                     FROM information_schema.columns AS c \
                     JOIN information_schema.tables AS t \
                       ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                     WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'",
                )
                .fetch_all(db.pool())
                .await?
            }
        };
        let mut found: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (table, column) in columns {
            found.entry(table).or_default().push(column);
        }
        found.remove("_sqlx_migrations");
        for ephemeral in EPHEMERAL_TABLES {
            found.remove(*ephemeral);
        }
        found.retain(|table, _| !is_derived_table(table));
        for table in TABLES {
            let Some(mut have) = found.remove(table.name) else {
                bail!("the database has no table {}", table.name);
            };
            have.sort();
            let mut want: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
            want.sort_unstable();
            if have != want {
                bail!(
                    "table {} has the columns {have:?}, this version of palaver expects {want:?}",
                    table.name
                );
            }
        }
        if let Some(extra) = found.keys().next() {
            bail!("the database has a table this version of palaver does not know: {extra}");
        }
        Ok(())
    }
}

/// Applies the pending migrations to the database at `location` (creating the SQLite
/// file if it does not exist; a PostgreSQL database must exist).
///
/// # Errors
/// The database cannot be opened, or a migration fails (the database is then left at the
/// last migration that succeeded).
pub async fn migrate(location: &DatabaseLocation<'_>) -> anyhow::Result<Migrated> {
    let before = applied_before(location).await?;
    let db = Opened::open(location).await?;
    let after = db.applied().await;
    let backend = db.backend();
    db.close().await;
    let after = after?;
    let schema_version = after.last().map_or(0, |(v, _)| *v);
    Ok(Migrated {
        backend,
        applied: after
            .into_iter()
            .filter(|(v, _)| !before.contains(v))
            .collect(),
        schema_version,
    })
}

/// The versions of the migrations applied to the database at `location` before this
/// process opens it (none if it or its migrations table does not exist yet).
async fn applied_before(location: &DatabaseLocation<'_>) -> anyhow::Result<Vec<i64>> {
    use sqlx::Connection as _;
    const EXISTS_SQLITE: &str =
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";
    const EXISTS_PG: &str = "SELECT count(*) FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'";
    const VERSIONS: &str = "SELECT version FROM _sqlx_migrations WHERE success";
    match location {
        DatabaseLocation::Sqlite(path) => {
            if !path.exists() {
                return Ok(Vec::new());
            }
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .read_only(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .with_context(|| format!("opening database {}", path.display()))?;
            let exists: i64 = sqlx::query_scalar(EXISTS_SQLITE)
                .fetch_one(&mut conn)
                .await?;
            let versions = if exists > 0 {
                sqlx::query_scalar(VERSIONS).fetch_all(&mut conn).await?
            } else {
                Vec::new()
            };
            conn.close().await?;
            Ok(versions)
        }
        DatabaseLocation::Postgres(url) => {
            let mut conn = sqlx::PgConnection::connect(url)
                .await
                .context("connecting to PostgreSQL")?;
            let exists: i64 = sqlx::query_scalar(EXISTS_PG).fetch_one(&mut conn).await?;
            let versions = if exists > 0 {
                sqlx::query_scalar(VERSIONS).fetch_all(&mut conn).await?
            } else {
                Vec::new()
            };
            conn.close().await?;
            Ok(versions)
        }
    }
}

/// Writes every row of the database at `location` to the new file `out` (created
/// readable by its owner only, 0600 on Unix: it holds password and token hashes and every
/// message), in the format of the [module docs](self). The database is migrated first
/// if it is behind.
///
/// # Errors
/// `out` exists or cannot be written (a partly written file is removed), the SQLite file
/// does not exist, the database cannot be opened or read, or its tables differ from
/// [`TABLES`].
pub async fn export(location: &DatabaseLocation<'_>, out: &Path) -> anyhow::Result<Summary> {
    if let DatabaseLocation::Sqlite(path) = location {
        if !path.exists() {
            bail!("there is no database at {}", path.display());
        }
    }
    let db = Opened::open(location).await?;
    let file = create_new_private(out)?;
    let result = export_to(&db, std::io::BufWriter::new(file)).await;
    db.close().await;
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result.with_context(|| format!("exporting to {}", out.display()))
}

/// Creates `path`, which must not exist, writable and readable by its owner only.
fn create_new_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).with_context(|| {
        format!(
            "creating {} (it must not exist: export never overwrites a file)",
            path.display()
        )
    })
}

async fn export_to(
    db: &Opened,
    mut out: std::io::BufWriter<std::fs::File>,
) -> anyhow::Result<Summary> {
    db.check_schema().await?;
    let schema_version = db.schema_version().await?;
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the time")?;
    let mut header = Map::new();
    header.insert("format".into(), FORMAT.into());
    header.insert("version".into(), FORMAT_VERSION.into());
    header.insert("backend".into(), db.backend().into());
    header.insert("schema_version".into(), schema_version.into());
    header.insert("exported_at".into(), now.into());
    writeln!(out, "{}", Value::Object(header))?;
    let mut rows = Vec::with_capacity(TABLES.len());
    match db {
        Opened::Sqlite(db) => {
            // One read transaction: one snapshot of every table.
            let mut tx = db.writer_pool().begin().await?;
            for table in TABLES {
                let mut n = 0;
                let sql = select_all(table);
                let mut stream = sqlx::query(&sql).fetch(&mut *tx);
                while let Some(row) = stream.try_next().await? {
                    write_row(&mut out, table, row_json(&row, table)?)?;
                    n += 1;
                }
                rows.push((table.name, n));
            }
            tx.rollback().await?;
        }
        Opened::Postgres(db) => {
            let mut tx = db.pool().begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            for table in TABLES {
                let mut n = 0;
                let sql = select_all(table);
                let mut stream = sqlx::query(&sql).fetch(&mut *tx);
                while let Some(row) = stream.try_next().await? {
                    write_row(&mut out, table, row_json(&row, table)?)?;
                    n += 1;
                }
                rows.push((table.name, n));
            }
            tx.rollback().await?;
        }
    }
    let counts: Map<String, Value> = rows
        .iter()
        .map(|(name, n)| ((*name).to_owned(), Value::from(*n)))
        .collect();
    let mut end = Map::new();
    end.insert("end".into(), Value::Object(counts));
    writeln!(out, "{}", Value::Object(end))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(Summary {
        backend: db.backend(),
        schema_version,
        rows,
    })
}

/// `SELECT <columns> FROM <table> ORDER BY <key>`.
fn select_all(table: &Table) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        table.name,
        table.key.join(", ")
    )
}

fn write_row(
    out: &mut impl std::io::Write,
    table: &Table,
    row: Map<String, Value>,
) -> anyhow::Result<()> {
    let mut line = Map::new();
    line.insert("table".into(), table.name.into());
    line.insert("row".into(), Value::Object(row));
    writeln!(out, "{}", Value::Object(line))?;
    Ok(())
}

/// A row of `table`, read by [`select_all`], as a JSON object in column order.
fn row_json<R>(row: &R, table: &Table) -> anyhow::Result<Map<String, Value>>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database>,
    String: sqlx::Type<R::Database>,
    i64: sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Type<R::Database>,
{
    let mut object = Map::new();
    for (i, (column, kind)) in table.columns.iter().enumerate() {
        let read = |e: sqlx::Error| anyhow!("reading {}.{column}: {e}", table.name);
        let value = match kind {
            Text => row
                .try_get::<Option<String>, _>(i)
                .map_err(read)?
                .map_or(Value::Null, Value::String),
            Integer => row
                .try_get::<Option<i64>, _>(i)
                .map_err(read)?
                .map_or(Value::Null, Value::from),
            Blob => row
                .try_get::<Option<Vec<u8>>, _>(i)
                .map_err(read)?
                .map_or(Value::Null, |bytes| Value::String(hex(&bytes))),
        };
        object.insert((*column).to_owned(), value);
    }
    Ok(object)
}

/// `bytes` as lowercase hex digits.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The bytes of a string of hex digits (either case), `None` if it is not one.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()
        })
        .collect()
}

/// One column's value, typed for binding.
#[derive(Debug, Clone)]
enum Val {
    Text(Option<String>),
    Integer(Option<i64>),
    Blob(Option<Vec<u8>>),
}

/// Reads the file `input` (as [`export`] writes it) into the empty database at
/// `location`, in one transaction.
///
/// # Errors
/// The file cannot be read or is not an export of this format version (a malformed line,
/// an unknown table or column, a missing column, a value of the wrong kind, tables out of
/// order, no trailer or one whose counts disagree); the database cannot be opened, its
/// tables differ from [`TABLES`], or it is not empty; or a row violates a constraint.
/// Nothing is written then.
pub async fn import(location: &DatabaseLocation<'_>, input: &Path) -> anyhow::Result<Summary> {
    let file =
        std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = match lines.next() {
        Some(line) => line.with_context(|| format!("reading {}", input.display()))?,
        None => bail!("{} is empty", input.display()),
    };
    let version = check_header(&header).with_context(|| format!("{}, line 1", input.display()))?;
    let db = Opened::open(location).await?;
    let result = import_from(&db, &mut lines, version).await;
    db.close().await;
    result.with_context(|| format!("importing {}", input.display()))
}

/// Checks the header line: format and version (1 to [`FORMAT_VERSION`]); returns the
/// version.
fn check_header(line: &str) -> anyhow::Result<i64> {
    let header: Value = serde_json::from_str(line).context("not JSON")?;
    if header.get("format").and_then(Value::as_str) != Some(FORMAT) {
        bail!("not a palaver export (its first line has no \"format\":\"{FORMAT}\")");
    }
    match header.get("version").and_then(Value::as_i64) {
        Some(version @ 1..=FORMAT_VERSION) => Ok(version),
        other => bail!(
            "export format version {other:?}: this version of palaver reads versions 1 to \
             {FORMAT_VERSION}"
        ),
    }
}

async fn import_from(
    db: &Opened,
    lines: &mut std::io::Lines<std::io::BufReader<std::fs::File>>,
    version: i64,
) -> anyhow::Result<Summary> {
    db.check_schema().await?;
    let schema_version = db.schema_version().await?;
    let rows = match db {
        Opened::Sqlite(db) => {
            let mut tx = db.writer_pool().begin().await?;
            let rows = copy_in(lines, &mut SqliteSink(&mut tx), version).await?;
            sqlx::query(UNBUILT_SEARCH_INDEX).execute(&mut *tx).await?;
            tx.commit().await?;
            db.ensure_search_index().await?;
            rows
        }
        Opened::Postgres(db) => {
            let mut tx = db.pool().begin().await?;
            let rows = copy_in(lines, &mut PgSink(&mut tx), version).await?;
            sqlx::query(UNBUILT_SEARCH_INDEX).execute(&mut *tx).await?;
            tx.commit().await?;
            db.ensure_search_index().await?;
            rows
        }
    };
    Ok(Summary {
        backend: db.backend(),
        schema_version,
        rows,
    })
}

/// Marks the search index as never built, so that it is built from the imported messages
/// (which the generic copy does not index).
const UNBUILT_SEARCH_INDEX: &str = "UPDATE search_index_state SET version = 0";

/// Where [`copy_in`] writes: one backend's open transaction.
#[async_trait::async_trait]
trait Sink: Send {
    /// Whether `table` has no row.
    async fn is_empty(&mut self, table: &Table) -> anyhow::Result<bool>;
    /// Inserts `rows` (each every column of `table`, in order).
    async fn insert(&mut self, table: &Table, rows: Vec<Vec<Val>>) -> anyhow::Result<()>;
    /// Sets room `id`'s `last_seq`.
    async fn set_last_seq(&mut self, id: String, last_seq: i64) -> anyhow::Result<()>;
}

/// `INSERT INTO <table> (<columns>) VALUES (...), ...` for `rows` rows, with `?` (SQLite)
/// or `$n` (PostgreSQL) placeholders.
fn insert_sql(table: &Table, rows: usize, numbered: bool) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| *c).collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) VALUES ",
        table.name,
        columns.join(", ")
    );
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns.len() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            if numbered {
                sql.push_str(&format!("${n}"));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Implements [`Sink`] for one backend's transaction type.
macro_rules! sink {
    ($name:ident, $db:ty, $numbered:expr, $set_last_seq:expr) => {
        struct $name<'a, 'c>(&'a mut sqlx::Transaction<'c, $db>);

        #[async_trait::async_trait]
        impl Sink for $name<'_, '_> {
            async fn is_empty(&mut self, table: &Table) -> anyhow::Result<bool> {
                let sql = format!("SELECT 1 FROM {} LIMIT 1", table.name);
                let row = sqlx::query(&sql).fetch_optional(&mut **self.0).await?;
                Ok(row.is_none())
            }

            async fn insert(&mut self, table: &Table, rows: Vec<Vec<Val>>) -> anyhow::Result<()> {
                let sql = insert_sql(table, rows.len(), $numbered);
                let mut query = sqlx::query(&sql);
                for value in rows.into_iter().flatten() {
                    query = match value {
                        Val::Text(v) => query.bind(v),
                        Val::Integer(v) => query.bind(v),
                        Val::Blob(v) => query.bind(v),
                    };
                }
                query.execute(&mut **self.0).await?;
                Ok(())
            }

            async fn set_last_seq(&mut self, id: String, last_seq: i64) -> anyhow::Result<()> {
                sqlx::query($set_last_seq)
                    .bind(last_seq)
                    .bind(id)
                    .execute(&mut **self.0)
                    .await?;
                Ok(())
            }
        }
    };
}

sink!(
    SqliteSink,
    sqlx::Sqlite,
    false,
    "UPDATE rooms SET last_seq = ? WHERE id = ?"
);
sink!(
    PgSink,
    sqlx::Postgres,
    true,
    "UPDATE rooms SET last_seq = $1 WHERE id = $2"
);

/// Refuses a non-empty target, then inserts the rows of `lines` (after the header) and
/// checks them against the trailer. Returns the rows per table.
async fn copy_in(
    lines: &mut std::io::Lines<std::io::BufReader<std::fs::File>>,
    sink: &mut dyn Sink,
    version: i64,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    for table in TABLES {
        if !sink.is_empty(table).await? {
            bail!(
                "the target database is not empty (table {} has rows): import only into a \
                 new, empty database",
                table.name
            );
        }
    }
    let mut counts = vec![0u64; TABLES.len()];
    let mut current = 0;
    let mut batch: Vec<Vec<Val>> = Vec::new();
    let mut last_seqs: Vec<(String, i64)> = Vec::new();
    let mut trailer = None;
    let mut number = 1;
    for line in lines.by_ref() {
        number += 1;
        let line = line.with_context(|| format!("reading line {number}"))?;
        if trailer.is_some() {
            if line.trim().is_empty() {
                continue;
            }
            bail!("line {number}: a line after the trailer");
        }
        let mut object = match serde_json::from_str::<Value>(&line) {
            Ok(Value::Object(object)) => object,
            Ok(_) => bail!("line {number}: not a JSON object"),
            Err(e) => bail!("line {number}: not JSON: {e}"),
        };
        if let Some(end) = object.remove("end") {
            trailer = Some((number, end));
            continue;
        }
        let (index, values) =
            parse_row(object, version).with_context(|| format!("line {number}"))?;
        if index < current {
            bail!(
                "line {number}: a row of {} after rows of {}: the tables are out of order",
                TABLES[index].name,
                TABLES[current].name
            );
        }
        if index != current || batch.len() == BATCH_ROWS {
            if !batch.is_empty() {
                sink.insert(&TABLES[current], std::mem::take(&mut batch))
                    .await
                    .with_context(|| {
                        format!(
                            "storing rows of {} before line {number}",
                            TABLES[current].name
                        )
                    })?;
            }
            current = index;
        }
        if TABLES[index].name == "rooms" {
            if let (Val::Text(Some(id)), Val::Integer(Some(last_seq))) = (&values[0], &values[6]) {
                last_seqs.push((id.clone(), *last_seq));
            }
        }
        counts[index] += 1;
        batch.push(values);
    }
    if !batch.is_empty() {
        sink.insert(&TABLES[current], batch)
            .await
            .with_context(|| format!("storing rows of {}", TABLES[current].name))?;
    }
    let Some((number, end)) = trailer else {
        bail!("the file ends without its trailer line ({{\"end\":...}}): is it truncated?");
    };
    check_trailer(&end, &counts).with_context(|| format!("line {number} (the trailer)"))?;
    for (id, last_seq) in last_seqs {
        sink.set_last_seq(id, last_seq).await?;
    }
    Ok(TABLES.iter().map(|t| t.name).zip(counts).collect())
}

/// The table index and the values (in column order) of a row line.
fn parse_row(mut object: Map<String, Value>, version: i64) -> anyhow::Result<(usize, Vec<Val>)> {
    let table_name = match object.remove("table") {
        Some(Value::String(name)) => name,
        _ => bail!("no \"table\" string"),
    };
    let Some(index) = TABLES.iter().position(|t| t.name == table_name) else {
        bail!("unknown table {table_name:?}");
    };
    let table = &TABLES[index];
    let mut row = match object.remove("row") {
        Some(Value::Object(row)) => row,
        _ => bail!("no \"row\" object"),
    };
    if let Some(key) = object.keys().next() {
        bail!("unknown key {key:?} (a row line has \"table\" and \"row\")");
    }
    let mut values = Vec::with_capacity(table.columns.len());
    for (column, kind) in table.columns {
        let Some(value) = row.remove(*column) else {
            let added_since = ADDED_COLUMNS
                .iter()
                .any(|(v, t, c)| version < *v && *t == table_name && c == column);
            if added_since {
                values.push(match kind {
                    Text => Val::Text(None),
                    Integer => Val::Integer(None),
                    Blob => Val::Blob(None),
                });
                continue;
            }
            bail!("no column {column} in the row of {table_name}");
        };
        let bad = || anyhow!("{table_name}.{column}: {value} is not a {kind:?} value");
        values.push(match (kind, &value) {
            (Text, Value::Null) => Val::Text(None),
            (Text, Value::String(s)) => Val::Text(Some(s.clone())),
            (Integer, Value::Null) => Val::Integer(None),
            (Integer, Value::Number(n)) => Val::Integer(Some(n.as_i64().ok_or_else(bad)?)),
            (Blob, Value::Null) => Val::Blob(None),
            (Blob, Value::String(s)) => Val::Blob(Some(unhex(s).ok_or_else(bad)?)),
            _ => return Err(bad()),
        });
    }
    if let Some(column) = row.keys().next() {
        bail!("unknown column {column:?} in table {table_name}");
    }
    Ok((index, values))
}

/// Checks the trailer's row counts against the rows read.
fn check_trailer(end: &Value, counts: &[u64]) -> anyhow::Result<()> {
    let Value::Object(end) = end else {
        bail!("\"end\" is not an object");
    };
    let mut expected: HashMap<&str, u64> = HashMap::new();
    for (name, n) in end {
        let Some(table) = TABLES.iter().find(|t| t.name == name) else {
            bail!("unknown table {name:?}");
        };
        let n = n
            .as_u64()
            .ok_or_else(|| anyhow!("the count of {name} is not a number"))?;
        expected.insert(table.name, n);
    }
    for (table, read) in TABLES.iter().zip(counts) {
        let want = expected.get(table.name).copied().unwrap_or(0);
        if want != *read {
            bail!(
                "the file holds {read} rows of {} but its trailer says {want}: is it truncated \
                 or edited?",
                table.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_non_hex() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&bytes)), Some(bytes));
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
        assert_eq!(unhex("0AFF"), Some(vec![0x0a, 0xff]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("+1"), None);
    }

    #[test]
    fn tables_come_after_the_tables_they_point_to() {
        let position = |name: &str| TABLES.iter().position(|t| t.name == name).unwrap();
        for (child, parents) in [
            ("sessions", &["users"][..]),
            ("spent_refresh_tokens", &["sessions"]),
            ("rooms", &["users"]),
            ("room_members", &["rooms", "users"]),
            ("room_bans", &["rooms", "users"]),
            ("invitations", &["rooms", "users"]),
            ("attachments", &["users"]),
            ("messages", &["rooms", "users", "attachments"]),
            ("message_edits", &["messages"]),
            ("reactions", &["messages", "users"]),
            ("message_reports", &["rooms", "messages", "users"]),
            ("notification_settings", &["room_members"]),
            ("push_subscriptions", &["users", "sessions"]),
        ] {
            for parent in parents {
                assert!(
                    position(parent) < position(child),
                    "{parent} before {child}"
                );
            }
        }
        for table in TABLES {
            for key in table.key {
                assert!(table.columns.iter().any(|(c, _)| c == key), "{key}");
            }
        }
    }

    #[test]
    fn ephemeral_tables_are_not_transferred() {
        for name in EPHEMERAL_TABLES {
            assert!(
                TABLES.iter().all(|t| t.name != *name),
                "{name} is ephemeral: not exported"
            );
            let line = format!(r#"{{"table":"{name}","row":{{}}}}"#);
            let Value::Object(o) = serde_json::from_str(&line).unwrap() else {
                unreachable!()
            };
            let err = parse_row(o, FORMAT_VERSION).unwrap_err().to_string();
            assert!(err.contains("unknown table"), "{name}: {err}");
        }
    }

    #[test]
    fn row_lines_name_a_known_table_and_every_column_with_its_kind() {
        let line = |s: &str| match serde_json::from_str(s).unwrap() {
            Value::Object(o) => parse_row(o, FORMAT_VERSION),
            _ => unreachable!(),
        };
        let ok = line(
            r#"{"table":"blocks","row":{"blocker_id":"a","blocked_id":"b","created_at":"t"}}"#,
        )
        .unwrap();
        assert_eq!(
            ok.0,
            TABLES.iter().position(|t| t.name == "blocks").unwrap()
        );
        for (bad, says) in [
            (r#"{"table":"nope","row":{}}"#, "unknown table"),
            (
                r#"{"table":"blocks","row":{"blocker_id":"a","blocked_id":"b","created_at":"t","x":1}}"#,
                "unknown column \"x\"",
            ),
            (
                r#"{"table":"blocks","row":{"blocker_id":"a","blocked_id":"b"}}"#,
                "no column created_at",
            ),
            (
                r#"{"table":"blocks","row":{"blocker_id":1,"blocked_id":"b","created_at":"t"}}"#,
                "blocks.blocker_id",
            ),
            (
                r#"{"table":"spent_refresh_tokens","row":{"token_hash":"xyz","session_id":"s","spent_at":"t"}}"#,
                "not a Blob",
            ),
        ] {
            let err = line(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn rows_of_an_earlier_format_version_lack_only_the_columns_added_since() {
        let user = |last_seen: &str| {
            let text = format!(
                r#"{{"table":"users","row":{{"id":"u1","username":"a","email":"a@x",
                "password_hash":"h","created_at":"t","role":"user","display_name":null,
                "first_name":null,"last_name":null,"bio":null,"location":null,"website":null,
                "avatar_url":null,"settings":"{{}}","updated_at":null,"disabled_at":null,
                "deleted_at":null{last_seen}}}}}"#
            );
            match serde_json::from_str(&text).unwrap() {
                Value::Object(o) => o,
                _ => unreachable!(),
            }
        };
        let (_, values) = parse_row(user(""), 1).expect("a version 1 row");
        assert!(matches!(values.last(), Some(Val::Text(None))));
        let err = parse_row(user(""), 2).unwrap_err().to_string();
        assert!(err.contains("no column last_seen_at"), "{err}");
        let (_, values) = parse_row(user(r#","last_seen_at":"t2""#), 2).unwrap();
        // ..., last_seen_at, email_verified_at (added in version 4: NULL before).
        assert!(matches!(&values[values.len() - 2], Val::Text(Some(t)) if t == "t2"));
        assert!(matches!(values.last(), Some(Val::Text(None))));
        let err = parse_row(user(r#","last_seen_at":"t2""#), 4)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column email_verified_at"), "{err}");
        let with_both = r#","last_seen_at":"t2","email_verified_at":"t3""#;
        let (_, values) = parse_row(user(with_both), 4).unwrap();
        assert!(matches!(values.last(), Some(Val::Text(Some(t))) if t == "t3"));
        assert!(check_header(r#"{"format":"palaver-export","version":1}"#).is_ok());
        assert!(check_header(r#"{"format":"palaver-export","version":4}"#).is_ok());
        assert!(check_header(r#"{"format":"palaver-export","version":5}"#).is_ok());
        assert!(check_header(r#"{"format":"palaver-export","version":6}"#).is_err());
    }
}
