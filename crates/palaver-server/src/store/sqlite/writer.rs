//! Group commit: the thread that stores new messages.
//!
//! Sending is the write that happens most. Instead of one transaction, and one fsync, per
//! message, one thread takes every message waiting in its queue, inserts them all in one
//! transaction, commits once, and only then answers each sender (a durable ack: no
//! sender hears "ok" before its message is on disk). Nothing waits for a batch to fill:
//! whatever arrived while the previous commit was on disk forms the next batch, so an idle
//! server commits each message at once and a busy one commits many per fsync.
//!
//! The writer is a plain OS thread (`palaver-writer`) that owns its own SQLite connection
//! (rusqlite over the same `libsqlite3-sys` build as sqlx) and keeps its statements
//! prepared: a message costs one `sqlite3_step`, with no await, no hop to another thread
//! and no statement lookup through an async driver. Senders talk to it over a bounded
//! channel and are answered on oneshot channels, so no async worker ever blocks on disk.
//!
//! Each message is one statement, `INSERT … RETURNING`, whose seq is the room's counter
//! plus one; the `messages_take_seq` trigger (migration 0006) advances the counter in the
//! same statement. The queue is first in, first out, and the thread is the only one that
//! inserts messages, so within a room, seq order is queue order. A retried `client_id`
//! (the `messages_idempotency` index) inserts nothing and is answered with the message
//! stored the first time, `created = false`.
//!
//! A statement that fails on a constraint (the room or the sender is gone) fails only its
//! own message: SQLite rolls back that statement, not the transaction. Any other failure
//! (disk full, I/O, the write lock not had within the busy timeout) rolls back the whole
//! batch and every message in it gets [`StoreError::Unavailable`]; clients retry with the
//! same `client_id`, which also makes a retry safe when a failed COMMIT did reach the disk.
//!
//! # The other writer
//!
//! Every other write (accounts, rooms, edits, reactions…) goes through sqlx's writer pool,
//! a second connection to the same file. SQLite lets one connection at a time hold the
//! write lock, so the two take turns; they must never fail instead of waiting:
//!
//! - Both connections have the same pragmas: WAL (persistent in the file; checked here),
//!   `synchronous = FULL` (a commit is on disk when it returns), `foreign_keys = ON`, the
//!   same busy timeout ([`super::BUSY_TIMEOUT`]) and autocheckpoint threshold
//!   ([`super::WAL_AUTOCHECKPOINT`]): whichever commits past it checkpoints, which does
//!   not take the write lock and so holds up neither writer. Only the message writer's
//!   page cache is larger (`CACHE_KIB`) and its temporary files are in memory: sizes and
//!   places, not semantics.
//! - A batch opens with `BEGIN IMMEDIATE`, taking the write lock before it reads anything,
//!   so a lock held by the other connection is waited for by the busy handler. Only after
//!   the whole timeout does the batch fail (`Unavailable`, and clients retry).
//! - The other connection's transactions also open with `BEGIN IMMEDIATE`
//!   ([`super::SqliteStore::begin_write`]). A deferred `BEGIN` that reads and then writes
//!   would get `SQLITE_BUSY_SNAPSHOT` ("database is locked") at once, not after waiting,
//!   whenever a batch committed between its read and its first write: in WAL mode a
//!   transaction cannot write on an outdated snapshot and the busy handler cannot help.
//!   Single statements outside a transaction take the write lock as they start and wait.
//! - A change that takes a seq (an edit, a deletion, a reaction) does so under the same
//!   write lock, so seqs stay gap-free and unique across the two connections.
//! - Readers (sqlx's read pool) see a message once its batch committed: a message is
//!   readable there as soon as its sender is answered.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::{ffi, params, Connection, OpenFlags, OptionalExtension as _};
use tokio::sync::{mpsc, oneshot};

use super::messages::{
    call_log_column, call_log_from_column, message_type_from_str, message_type_str, MESSAGE_COLUMNS,
};
use crate::store::{MessageRow, NewMessage, StoreError, StoreResult};

/// Messages that may wait for the writer before senders are made to wait: room for a
/// whole batch to gather while the previous one is being committed.
const QUEUE: usize = 2 * MAX_BATCH;
/// The most messages committed in one transaction. Large, because a batch's cost is
/// mostly the index pages it dirties (three indexes lead with `room_id`: at least three
/// 4 KiB pages per room in the batch, written to the WAL at commit), so the more
/// messages per room a batch holds, the fewer bytes each message costs. A full batch
/// takes up to about 100 ms on a busy 2-core machine: how long another write may wait
/// for the lock, well within the busy timeout.
const MAX_BATCH: usize = 4096;
/// Prepared statements the writer keeps: begin, commit, rollback, insert, look-up.
const STATEMENT_CACHE: usize = 8;
/// The writer connection's page cache, in KiB (SQLite's negative `cache_size`): room
/// for every page a full batch dirties, so none spills to the WAL before COMMIT and the
/// index pages the next batch needs are still there (SQLite's default is 2 MiB).
const CACHE_KIB: i64 = 32 * 1024;
/// What the WAL file is cut back to after a checkpoint resets it, in bytes.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Inserts one message and takes its room's next seq (the trigger moves the counter). No
/// row back: the `(room_id, sender_id, client_id)` index matched, nothing was stored.
const INSERT: &str =
    "INSERT INTO messages (id, room_id, seq, sender_id, content, client_id, created_at,
                           message_type, reply_to, attachment_id, call_log, updated_seq)
     VALUES (?1, ?2, (SELECT last_seq + 1 FROM rooms WHERE id = ?2), ?3, ?4, ?5, ?6,
             ?7, ?8, ?9, ?10, (SELECT last_seq + 1 FROM rooms WHERE id = ?2))
     ON CONFLICT (room_id, sender_id, client_id) WHERE client_id IS NOT NULL
     DO NOTHING
     RETURNING seq, (SELECT username FROM users WHERE id = sender_id) AS username";

/// What a queued message becomes: the stored row and whether it is new (`false`: a
/// retried `client_id`, answered with the message stored the first time).
pub type Inserted = StoreResult<(MessageRow, bool)>;

/// Where a queued message's answer goes.
type Reply = oneshot::Sender<Inserted>;

enum Job {
    Insert(Box<NewMessage>, Reply),
    /// Finish every job queued before this one, close the connection, then say so.
    Close(oneshot::Sender<()>),
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Insert(m, _) => write!(f, "Insert({})", m.id),
            Job::Close(_) => f.write_str("Close"),
        }
    }
}

/// The handle on the writer thread; clones share it.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
    counters: Arc<Counters>,
}

/// What the group-commit writer did since the store opened (for benchmarks and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed: one fsync each.
    pub commits: u64,
    /// Messages answered by those commits: stored, resolved to the row a retried
    /// `client_id` stored before, or failed alone (no room, no sender).
    pub messages: u64,
    /// Batches rolled back whole (every message in them answered `Unavailable`).
    pub failed_batches: u64,
}

/// The shared counters behind [`WriterStats`].
#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    messages: AtomicU64,
    failed_batches: AtomicU64,
}

impl GroupCommit {
    /// Opens a second read-write connection to the migrated database at `path` and starts
    /// the writer thread that owns it. `busy_timeout` is how long a batch waits for the
    /// write lock while the other connection holds it.
    ///
    /// # Errors
    /// The thread cannot be started, the file cannot be opened read-write, it is not in
    /// WAL mode, or a statement does not prepare (the schema is not migrated).
    pub(super) async fn start(path: &Path, busy_timeout: Duration) -> anyhow::Result<GroupCommit> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let (opened, open_result) = oneshot::channel();
        let path = path.to_owned();
        let thread_counters = counters.clone();
        std::thread::Builder::new()
            .name("palaver-writer".into())
            .spawn(
                move || match Writer::open(&path, busy_timeout, thread_counters) {
                    Ok(writer) => {
                        let _ = opened.send(Ok(()));
                        writer.run(queue);
                    }
                    Err(e) => {
                        let _ = opened.send(Err(e));
                    }
                },
            )
            .context("starting the writer thread")?;
        open_result
            .await
            .context("the writer thread stopped while opening")??;
        Ok(GroupCommit { jobs, counters })
    }

    /// What the writer did so far.
    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            commits: self.counters.commits.load(Ordering::Relaxed),
            messages: self.counters.messages.load(Ordering::Relaxed),
            failed_batches: self.counters.failed_batches.load(Ordering::Relaxed),
        }
    }

    /// Queues `message` and returns at once (or when the queue has room); the receiver
    /// resolves after the commit that includes it.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] once the store is closing.
    pub(super) async fn queue(
        &self,
        message: NewMessage,
    ) -> StoreResult<oneshot::Receiver<Inserted>> {
        let (reply, committed) = oneshot::channel();
        self.jobs
            .send(Job::Insert(Box::new(message), reply))
            .await
            .map_err(|_| closing())?;
        Ok(committed)
    }

    /// Reserves a place in the queue (waiting while it is full); queuing into it never
    /// waits.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] once the store is closing.
    pub(super) async fn reserve(&self) -> StoreResult<crate::store::MessageSlot> {
        let permit = self
            .jobs
            .clone()
            .reserve_owned()
            .await
            .map_err(|_| closing())?;
        Ok(crate::store::MessageSlot::new(move |message| {
            let (reply, committed) = oneshot::channel();
            permit.send(Job::Insert(Box::new(message), reply));
            crate::store::PendingMessage::new(committed)
        }))
    }

    /// Commits everything queued so far, then stops the thread and closes its connection;
    /// returns once it is closed. Later sends fail with [`StoreError::Unavailable`].
    pub(super) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).await.is_ok() {
            let _ = closed.await;
        }
    }
}

fn closing() -> StoreError {
    StoreError::Unavailable("the store is closing".into())
}

/// What the statements of a batch decided for one message; final once COMMIT returned.
#[derive(Debug)]
enum Outcome {
    /// Stored with this seq; the sender's username is joined in.
    New { seq: i64, username: String },
    /// A retried `client_id`: the message stored the first time (boxed: retries are rare,
    /// and every outcome of a batch is as large as the largest).
    Existing(Box<MessageRow>),
    /// Failed alone (a constraint: no room, no sender); the rest of the batch stands.
    Failed(StoreError),
}

/// The writer thread's state: its connection, and what it reports.
struct Writer {
    conn: Connection,
    /// Where the connection leads, for logs.
    path: PathBuf,
    /// The look-up of a retried `client_id` (built from [`MESSAGE_COLUMNS`] once).
    select_existing: String,
    counters: Arc<Counters>,
}

impl Writer {
    /// Opens the connection with the pragmas the sqlx pools have, and prepares the
    /// statements once so that a schema that does not fit fails at open, not at the first
    /// message.
    fn open(path: &Path, busy_timeout: Duration, counters: Arc<Counters>) -> anyhow::Result<Self> {
        let conn = Connection::open_with_flags(
            path,
            // No CREATE: sqlx created and migrated the file. NO_MUTEX: only this thread
            // ever uses the connection.
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening {} for the message writer", path.display()))?;
        conn.busy_timeout(busy_timeout)?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        anyhow::ensure!(
            mode.eq_ignore_ascii_case("wal"),
            "the database is in journal mode {mode}, not WAL"
        );
        // The first three as on sqlx's connections; the rest are sizes, not semantics.
        // `temp_store = MEMORY` keeps each INSERT's statement journal (the undo log that
        // lets a constraint failure roll back only that statement) in memory: by default
        // it moves to a temporary file once it outgrows 64 KiB, and every page the batch
        // then touches costs a write system call.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA cache_size = -{CACHE_KIB};
             PRAGMA wal_autocheckpoint = {};
             PRAGMA journal_size_limit = {WAL_SIZE_LIMIT};
             PRAGMA temp_store = MEMORY;",
            super::WAL_AUTOCHECKPOINT
        ))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let select_existing = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.room_id = ?1 AND m.sender_id = ?2 AND m.client_id = ?3"
        );
        for sql in [
            "BEGIN IMMEDIATE",
            "COMMIT",
            "ROLLBACK",
            INSERT,
            select_existing.as_str(),
        ] {
            conn.prepare_cached(sql)
                .with_context(|| format!("preparing the message writer's {sql:.40}…"))?;
        }
        Ok(Writer {
            conn,
            path: path.to_owned(),
            select_existing,
            counters,
        })
    }

    /// Batch, commit, answer; until closed, or until every handle is gone.
    fn run(self, mut queue: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = queue.blocking_recv() {
            let mut close = None;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Insert(message, reply) => batch.push((*message, reply)),
                    Job::Close(done) => {
                        close = Some(done);
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            if let Some(done) = close {
                queue.close();
                let mut closers = vec![done];
                while let Some(job) = queue.blocking_recv() {
                    match job {
                        Job::Insert(_, reply) => {
                            let _ = reply.send(Err(closing()));
                        }
                        Job::Close(done) => closers.push(done),
                    }
                }
                self.close();
                for done in closers {
                    let _ = done.send(());
                }
                return;
            }
        }
        self.close();
    }

    /// Closes the connection (finalising the cached statements first).
    fn close(self) {
        if let Err((_, e)) = self.conn.close() {
            tracing::error!(error = %e, path = %self.path.display(), "closing the message writer's connection");
        }
    }

    /// Inserts `batch` in one transaction and answers each message; empties `batch`.
    fn commit(&self, batch: &mut Vec<(NewMessage, Reply)>) {
        let size = batch.len();
        match self.insert_all(batch) {
            Ok(outcomes) => {
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .messages
                    .fetch_add(size as u64, Ordering::Relaxed);
                for ((message, reply), outcome) in batch.drain(..).zip(outcomes) {
                    let _ = reply.send(match outcome {
                        Outcome::New { seq, username } => {
                            Ok((new_row(message, seq, username), true))
                        }
                        Outcome::Existing(row) => Ok((*row, false)),
                        Outcome::Failed(e) => Err(e),
                    });
                }
            }
            Err(e) => {
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, size, "group commit failed; the batch is rolled back");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(StoreError::Unavailable(format!(
                        "the write failed and was rolled back ({e}); retry with the same client_id"
                    ))));
                }
            }
        }
    }

    /// The transaction of one batch; `Err` means nothing of it was committed (or, after a
    /// failed COMMIT, that it may have been: the idempotency index makes retries safe).
    fn insert_all(&self, batch: &[(NewMessage, Reply)]) -> rusqlite::Result<Vec<Outcome>> {
        self.conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        let done = batch
            .iter()
            .map(|(message, _)| self.insert(message))
            .collect::<rusqlite::Result<Vec<_>>>()
            .and_then(|outcomes| {
                self.conn.prepare_cached("COMMIT")?.execute([])?;
                Ok(outcomes)
            });
        if done.is_err() && !self.conn.is_autocommit() {
            if let Err(e) = self
                .conn
                .prepare_cached("ROLLBACK")
                .and_then(|mut rollback| rollback.execute([]))
            {
                tracing::error!(error = %e, "rolling back a failed group commit");
            }
        }
        done
    }

    /// One message's statement, inside the batch's transaction.
    fn insert(&self, m: &NewMessage) -> rusqlite::Result<Outcome> {
        let inserted = self
            .conn
            .prepare_cached(INSERT)?
            .query_row(
                params![
                    m.id,
                    m.room_id,
                    m.sender_id,
                    m.content,
                    m.client_id,
                    m.created_at,
                    message_type_str(m.message_type),
                    m.reply_to,
                    m.attachment_id,
                    call_log_column(m.call.as_ref()),
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional();
        match inserted {
            Ok(Some((seq, username))) => Ok(Outcome::New { seq, username }),
            // The idempotency index matched: the message stored the first time.
            Ok(None) => Ok(match self.existing(m)? {
                Some(existing) => Outcome::Existing(Box::new(existing)),
                None => Outcome::Failed(StoreError::NotFound),
            }),
            // No room (its seq is NULL), no sender, or a value the schema refuses: this
            // message only.
            Err(e) if fails_alone(&e) => Ok(Outcome::Failed(StoreError::NotFound)),
            Err(e) => Err(e),
        }
    }

    /// The message that `m`'s sender already stored in `m`'s room under `m.client_id`.
    fn existing(&self, m: &NewMessage) -> rusqlite::Result<Option<MessageRow>> {
        self.conn
            .prepare_cached(&self.select_existing)?
            .query_row(
                params![m.room_id, m.sender_id, m.client_id],
                message_from_row,
            )
            .optional()
    }
}

/// Whether `e` is a constraint that SQLite enforced by rolling back only the statement,
/// and that means the message cannot be stored (the same kinds the sqlx version
/// classified: foreign key, NOT NULL, CHECK).
fn fails_alone(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(failure, _)
            if matches!(
                failure.extended_code,
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY
                    | ffi::SQLITE_CONSTRAINT_NOTNULL
                    | ffi::SQLITE_CONSTRAINT_CHECK
            )
    )
}

/// The row of a message just stored: what was sent, with its seq and sender's username.
fn new_row(m: NewMessage, seq: i64, sender_username: String) -> MessageRow {
    MessageRow {
        id: m.id,
        room_id: m.room_id,
        seq,
        sender_id: m.sender_id,
        sender_username,
        content: m.content,
        client_id: m.client_id,
        created_at: m.created_at,
        message_type: m.message_type,
        reply_to: m.reply_to,
        attachment_id: m.attachment_id,
        call: m.call,
        edited_at: None,
        deleted_at: None,
        updated_seq: seq,
    }
}

/// A row of [`MESSAGE_COLUMNS`].
fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: row.get("id")?,
        room_id: row.get("room_id")?,
        seq: row.get("seq")?,
        sender_id: row.get("sender_id")?,
        sender_username: row.get("sender_username")?,
        content: row.get("content")?,
        client_id: row.get("client_id")?,
        created_at: row.get("created_at")?,
        message_type: message_type_from_str(&row.get::<_, String>("message_type")?),
        reply_to: row.get("reply_to")?,
        attachment_id: row.get("attachment_id")?,
        call: call_log_from_column(row.get("call_log")?),
        edited_at: row.get("edited_at")?,
        deleted_at: row.get("deleted_at")?,
        updated_seq: row.get("updated_seq")?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use palaver_protocol::{MessageType, Role, RoomKind, Visibility};
    use tokio::sync::oneshot;

    use super::super::{SqliteStore, BUSY_TIMEOUT};
    use super::{Counters, Inserted, NewMessage, Writer};
    use crate::store::{NewRoom, PendingMessage, Store, StoreError, UserRow};

    const AT: &str = "2026-11-21T10:00:00.000Z";

    fn message(room_id: &str, sender_id: &str, n: usize, client_id: Option<&str>) -> NewMessage {
        NewMessage {
            id: uuid::Uuid::now_v7().to_string(),
            room_id: room_id.into(),
            sender_id: sender_id.into(),
            content: format!("message {n}"),
            client_id: client_id.map(str::to_owned),
            created_at: AT.into(),
            message_type: MessageType::Text,
            reply_to: None,
            attachment_id: None,
            call: None,
        }
    }

    /// A fresh database in `dir` with user `u1` ("alice") and the public channels `rooms`.
    async fn open_with(dir: &tempfile::TempDir, rooms: &[&str]) -> (SqliteStore, Store) {
        let db = SqliteStore::open(&dir.path().join("palaver.db"))
            .await
            .unwrap();
        let store = db.store();
        store
            .users
            .create_user(&UserRow {
                id: "u1".into(),
                username: "alice".into(),
                email: "alice@example.com".into(),
                password_hash: "x".into(),
                role: Role::User,
                profile: Default::default(),
                settings: "{}".into(),
                created_at: AT.into(),
                disabled_at: None,
                deleted_at: None,
            })
            .await
            .unwrap();
        for room in rooms {
            store
                .rooms
                .create_room(&NewRoom {
                    id: (*room).into(),
                    name: (*room).into(),
                    topic: None,
                    visibility: Visibility::Public,
                    kind: RoomKind::Channel,
                    created_by: "u1".into(),
                    created_at: AT.into(),
                })
                .await
                .unwrap();
        }
        (db, store)
    }

    /// Commits `messages` as exactly one batch on a writer of its own (a second writer
    /// connection beside the store's, as the store's own writer is beside sqlx's), and
    /// returns each message's answer and the writer's counters.
    fn one_batch(
        dir: &tempfile::TempDir,
        messages: Vec<NewMessage>,
    ) -> (Vec<Inserted>, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let writer = Writer::open(
            &dir.path().join("palaver.db"),
            BUSY_TIMEOUT,
            counters.clone(),
        )
        .unwrap();
        let (mut batch, mut answers) = (Vec::new(), Vec::new());
        for m in messages {
            let (reply, answer) = oneshot::channel();
            batch.push((m, reply));
            answers.push(answer);
        }
        writer.commit(&mut batch);
        writer.close();
        let answers = answers
            .into_iter()
            .map(|mut a| {
                a.try_recv()
                    .expect("every message of the batch is answered")
            })
            .collect();
        (answers, counters)
    }

    /// Many messages queued at once land in few transactions, yet each room's seqs are
    /// gap-free in queue order, a retried `client_id` resolves to the first message, and a
    /// message to a missing room fails alone without taking its batch down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_keeps_queue_order_per_room_and_fails_only_the_bad_message() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = open_with(&dir, &["r1", "r2"]).await;
        // Queue everything before awaiting any commit: one or a few batches.
        let mut pending: Vec<(&str, usize, PendingMessage)> = Vec::new();
        for n in 0..300 {
            let room = if n % 3 == 0 { "r2" } else { "r1" };
            let client_id = format!("c{n}");
            let m = message(room, "u1", n, Some(&client_id));
            pending.push((room, n, store.messages.queue_message(m).await.unwrap()));
            if n == 150 {
                let bad = message("no-such-room", "u1", n, None);
                pending.push(("none", n, store.messages.queue_message(bad).await.unwrap()));
                // A retry of message 10 (room r1), in the same batch as new messages.
                let retry = message("r1", "u1", 10, Some("c10"));
                pending.push((
                    "retry",
                    10,
                    store.messages.queue_message(retry).await.unwrap(),
                ));
            }
        }
        let mut next_seq = HashMap::from([("r1", 1), ("r2", 1)]);
        let mut first_of_10 = None;
        for (room, n, p) in pending {
            let result = p.committed().await;
            match room {
                "none" => assert!(
                    matches!(result, Err(StoreError::NotFound)),
                    "a message to a missing room: {result:?}"
                ),
                "retry" => {
                    let (row, created) = result.unwrap();
                    assert!(!created, "a retried client_id stored a second message");
                    assert_eq!(Some(&row.id), first_of_10.as_ref(), "the retry's answer");
                }
                room => {
                    let (row, created) = result.unwrap();
                    assert!(created);
                    assert_eq!(row.content, format!("message {n}"));
                    assert_eq!(row.sender_username, "alice");
                    let expected = next_seq.get_mut(room).unwrap();
                    assert_eq!(row.seq, *expected, "seq of message {n} in {room}");
                    *expected += 1;
                    if n == 10 {
                        first_of_10 = Some(row.id.clone());
                    }
                }
            }
        }
        // The room counters moved with the messages (a later change takes the next seq).
        let r1 = store.rooms.room_by_id("r1").await.unwrap().unwrap();
        assert_eq!(r1.last_seq, 200);
        // Close commits what is queued, then refuses.
        db.group_commit.close().await;
        let late = store
            .messages
            .queue_message(message("r1", "u1", 999, None))
            .await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
    }

    /// Two sends with one `client_id` in the same transaction store one message: the
    /// second is answered with the first (`created = false`) and takes no seq, and so is a
    /// retry of a message committed by an earlier batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_duplicate_client_id_within_a_batch_stores_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = open_with(&dir, &["r1"]).await;
        let (earlier, _) = one_batch(&dir, vec![message("r1", "u1", 0, Some("c0"))]);
        let (earlier, _) = earlier.into_iter().next().unwrap().unwrap();

        let first = message("r1", "u1", 1, Some("c1"));
        let first_id = first.id.clone();
        let (answers, counters) = one_batch(
            &dir,
            vec![
                first,
                message("r1", "u1", 2, Some("c1")),
                message("r1", "u1", 3, Some("c0")),
                message("r1", "u1", 4, Some("c4")),
            ],
        );
        assert_eq!(counters.commits.load(super::Ordering::Relaxed), 1);
        let mut answers = answers.into_iter().map(Result::unwrap);
        let (row, created) = answers.next().unwrap();
        assert!(created);
        assert_eq!((row.id.as_str(), row.seq), (first_id.as_str(), 2));
        let (dup, created) = answers.next().unwrap();
        assert!(
            !created,
            "the duplicate in the batch stored a second message"
        );
        assert_eq!(dup, row, "the duplicate is answered with the first message");
        let (retry, created) = answers.next().unwrap();
        assert!(!created);
        assert_eq!(retry, earlier, "a retry of an earlier batch's message");
        let (next, created) = answers.next().unwrap();
        assert!(created);
        assert_eq!(next.seq, 3, "duplicates take no seq");

        let (page, _) = store
            .messages
            .messages_page(
                "r1",
                crate::store::PageQuery {
                    before: None,
                    after: None,
                    limit: 10,
                },
            )
            .await
            .unwrap();
        let contents: Vec<_> = page.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["message 0", "message 1", "message 4"]);
    }

    /// A message to a room deleted a moment before fails with `NotFound`, alone: the
    /// other messages of its transaction are committed with gap-free seqs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_to_a_deleted_room_fails_alone_in_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = open_with(&dir, &["r1", "gone"]).await;
        assert!(store.rooms.delete_room("gone").await.unwrap());
        let (answers, counters) = one_batch(
            &dir,
            vec![
                message("r1", "u1", 0, Some("c0")),
                message("gone", "u1", 1, Some("c1")),
                message("r1", "u1", 2, None),
                message("gone", "u1", 3, None),
                message("r1", "u1", 4, Some("c4")),
            ],
        );
        assert_eq!(counters.commits.load(super::Ordering::Relaxed), 1);
        assert_eq!(counters.failed_batches.load(super::Ordering::Relaxed), 0);
        let mut seqs = Vec::new();
        for (n, answer) in answers.into_iter().enumerate() {
            if n % 2 == 1 {
                assert!(
                    matches!(answer, Err(StoreError::NotFound)),
                    "message {n} to the deleted room: {answer:?}"
                );
            } else {
                let (row, created) = answer.unwrap();
                assert!(created);
                assert_eq!(row.content, format!("message {n}"));
                let read = store.messages.message("r1", &row.id).await.unwrap();
                assert_eq!(read.as_ref(), Some(&row), "message {n} is stored");
                seqs.push(row.seq);
            }
        }
        assert_eq!(seqs, [1, 2, 3]);
    }

    /// Closing commits every message queued before the close (none is dropped or failed),
    /// then refuses new ones; the messages are in the database afterwards.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_commits_everything_queued_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, store) = open_with(&dir, &["r1", "r2"]).await;
        let mut pending = Vec::new();
        for n in 0..3000 {
            let room = if n % 2 == 0 { "r1" } else { "r2" };
            pending.push(
                store
                    .messages
                    .queue_message(message(room, "u1", n, None))
                    .await
                    .unwrap(),
            );
        }
        // Nothing awaited yet: most of the 3,000 are still queued when Close arrives.
        db.group_commit.close().await;
        let mut stored = 0;
        for p in pending {
            let (_, created) = p.committed().await.expect("a message queued before close");
            assert!(created);
            stored += 1;
        }
        assert_eq!(stored, 3000);
        assert_eq!(db.writer_stats().messages, 3000);
        for room in ["r1", "r2"] {
            let row = store.rooms.room_by_id(room).await.unwrap().unwrap();
            assert_eq!(row.last_seq, 1500, "{room}");
        }
        let late = store
            .messages
            .queue_message(message("r1", "u1", 0, None))
            .await;
        assert!(matches!(late, Err(StoreError::Unavailable(_))), "{late:?}");
        // A second close (another handle) returns at once.
        db.group_commit.close().await;
    }

    /// The ack comes after COMMIT: the message is already visible to the sqlx read pool
    /// (another connection) when its sender hears of it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_acknowledged_message_is_readable_through_the_read_pool_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = open_with(&dir, &["r1"]).await;
        for n in 0..50 {
            let (row, created) = store
                .messages
                .queue_message(message("r1", "u1", n, Some(&format!("c{n}"))))
                .await
                .unwrap()
                .committed()
                .await
                .unwrap();
            assert!(created);
            let read = store.messages.message("r1", &row.id).await.unwrap();
            assert_eq!(read, Some(row), "message {n} read back right after its ack");
        }
    }

    /// Writes on the sqlx writer connection (edits: a transaction that reads, then writes
    /// and takes a seq) running while the message writer commits batches wait for the
    /// lock instead of failing with SQLITE_BUSY, and every seq of the room, a message's
    /// or an edit's, is taken exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_writes_interleave_with_batches_without_busy_errors_or_seq_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, store) = open_with(&dir, &["r1"]).await;
        let (first, _) = store
            .messages
            .queue_message(message("r1", "u1", 0, None))
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        let sender = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for burst in 0..20 {
                    let mut pending = Vec::new();
                    for n in 0..100 {
                        let m = message("r1", "u1", burst * 100 + n, None);
                        pending.push(store.messages.queue_message(m).await.unwrap());
                    }
                    for p in pending {
                        seqs.push(p.committed().await.unwrap().0.seq);
                    }
                }
                seqs
            })
        };
        let editor = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for n in 0..100 {
                    let edited = store
                        .messages
                        .edit_message("r1", &first.id, &format!("edit {n}"), AT)
                        .await
                        .unwrap_or_else(|e| panic!("edit {n} failed: {e}"));
                    seqs.push(edited.updated_seq);
                }
                seqs
            })
        };
        let mut seqs = sender.await.unwrap();
        seqs.extend(editor.await.unwrap());
        seqs.push(first.seq);
        seqs.sort_unstable();
        let expected: Vec<i64> = (1..=2101).collect();
        assert_eq!(seqs, expected, "every seq taken once, none skipped");
    }
}
