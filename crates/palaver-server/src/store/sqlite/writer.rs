//! Group commit: the task that stores new messages.
//!
//! Sending is the write that happens most. Instead of one transaction, and one fsync, per
//! message, one task takes every message waiting in its queue, inserts them all in one
//! transaction, commits once, and only then answers each sender (a durable ack: no
//! sender hears "ok" before its message is on disk). Nothing waits for a batch to fill:
//! whatever arrived while the previous commit was on disk forms the next batch, so an idle
//! server commits each message at once and a busy one commits many per fsync.
//!
//! A batch is inserted in a few multi-row statements (chunks of 1, 2, 4 … 512 rows, see
//! `chunk_sql`), each a single round trip to sqlx's worker thread, which assign each row
//! its room's next seq in queue order; the `messages_take_seq` trigger (migration 0006)
//! moves the room's counter with them. The queue is first in, first out, and the task is
//! the only one that inserts messages, so within a room, seq order is queue order. A
//! message may carry its own authorization (`NewMessage::member_only`): the sender must
//! be a member when the batch commits, checked by the insert itself.
//!
//! A message that fails on a constraint (the room or the sender is gone) fails alone: its
//! chunk is retried row by row, and SQLite rolls back the failed statement, not the
//! transaction. Any other failure (disk full, I/O) rolls back the whole batch and every
//! message in it gets [`StoreError::Unavailable`]; clients retry with the same
//! `client_id`.

use sqlx::sqlite::SqlitePool;
use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot};

use super::messages::{call_log_column, message_type_str};
use crate::store::{MessageRow, NewMessage, StoreError, StoreResult};

/// Messages that may wait for the writer before senders are made to wait.
const QUEUE: usize = 4096;
/// The most messages committed in one transaction.
const MAX_BATCH: usize = 512;

/// What a queued message becomes: the stored row and whether it is new (`false`: a
/// retried `client_id`, answered with the message stored the first time).
pub type Inserted = StoreResult<(MessageRow, bool)>;

enum Job {
    Insert(Box<NewMessage>, oneshot::Sender<Inserted>),
    /// Finish every job queued before this one, then stop and say so.
    Close(oneshot::Sender<()>),
}

/// The handle on the group-commit task.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Insert(m, _) => write!(f, "Insert({})", m.id),
            Job::Close(_) => f.write_str("Close"),
        }
    }
}

impl GroupCommit {
    /// Starts the task, which writes through `pool` (the single writer connection; other
    /// writes take turns with it between batches).
    pub(super) fn start(pool: SqlitePool) -> GroupCommit {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, queue));
        GroupCommit { jobs }
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
            .map_err(|_| StoreError::Unavailable("the store is closing".into()))?;
        Ok(crate::store::MessageSlot::new(move |message| {
            let (reply, committed) = oneshot::channel();
            permit.send(Job::Insert(Box::new(message), reply));
            crate::store::PendingMessage::new(committed)
        }))
    }

    /// Commits everything queued so far, then stops the task; later sends fail with
    /// [`StoreError::Unavailable`].
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

/// The task: batch, commit, answer; until closed.
async fn run(pool: SqlitePool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
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
            commit(&pool, &mut batch).await;
        }
        if let Some(done) = close {
            queue.close();
            while let Some(job) = queue.recv().await {
                match job {
                    Job::Insert(_, reply) => {
                        let _ = reply.send(Err(closing()));
                    }
                    Job::Close(done) => {
                        let _ = done.send(());
                    }
                }
            }
            let _ = done.send(());
            return;
        }
    }
}

/// Inserts `batch` in one transaction and answers each message; empties `batch`.
async fn commit(pool: &SqlitePool, batch: &mut Vec<(NewMessage, oneshot::Sender<Inserted>)>) {
    let size = batch.len();
    match insert_all(pool, batch).await {
        Ok(results) => {
            for ((_, reply), result) in batch.drain(..).zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, size, "group commit failed; the batch is rolled back");
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(StoreError::Unavailable(format!(
                    "the write failed and was rolled back ({e}); retry with the same client_id"
                ))));
            }
        }
    }
}

/// The statements of one batch; `Err` means nothing of the batch was committed.
///
/// The batch goes in as few statements as it can: chunks of a power-of-two size (so that
/// at most [`CHUNK_SIZES`] statements are ever prepared), each one multi-row `INSERT …
/// SELECT` that assigns the seqs itself (see [`chunk_sql`]). A chunk that fails on a
/// constraint is retried row by row, so that only the bad message fails. A `client_id`
/// repeated inside the batch is answered after its first occurrence is stored.
async fn insert_all(
    pool: &SqlitePool,
    batch: &[(NewMessage, oneshot::Sender<Inserted>)],
) -> Result<Vec<Inserted>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut results: Vec<Option<Inserted>> = batch.iter().map(|_| None).collect();
    let mut seen = std::collections::HashSet::new();
    let (mut firsts, mut repeats) = (Vec::with_capacity(batch.len()), Vec::new());
    for (i, (m, _)) in batch.iter().enumerate() {
        let key = m.client_id.as_ref().map(|c| (&m.room_id, &m.sender_id, c));
        if key.is_some_and(|key| !seen.insert(key)) {
            repeats.push(i);
        } else {
            firsts.push(i);
        }
    }
    let mut rest = &firsts[..];
    while !rest.is_empty() {
        let size = chunk_size(rest.len());
        let (chunk, tail) = rest.split_at(size);
        insert_chunk(&mut tx, batch, chunk, &mut results).await?;
        rest = tail;
    }
    for i in repeats {
        results[i] = Some(insert_one(&mut tx, &batch[i].0).await?);
    }
    // The words of the messages stored just now (not those answered from an earlier
    // send), in the same transaction: a message is searchable once it is committed.
    let stored: Vec<(&str, &str)> = results
        .iter()
        .filter_map(|r| match r {
            Some(Ok((row, true))) if crate::search::is_indexed(row.message_type) => {
                Some((row.id.as_str(), row.content.as_str()))
            }
            _ => None,
        })
        .collect();
    super::search::index_messages(&mut tx, &stored).await?;
    // Whom they notify, with their seqs, for the mention counts.
    let notified: Vec<(&str, &str, i64, &[String])> = results
        .iter()
        .zip(batch)
        .filter_map(|(r, (m, _))| match r {
            Some(Ok((row, true))) if !m.mentioned.is_empty() => Some((
                row.id.as_str(),
                row.room_id.as_str(),
                row.seq,
                m.mentioned.as_slice(),
            )),
            _ => None,
        })
        .collect();
    insert_mentions(&mut tx, &notified).await?;
    tx.commit().await?;
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(StoreError::NotFound)))
        .collect())
}

/// Stores who each message notifies: `(message id, room id, seq, user ids)`, one row per
/// user who is a member of the room when it commits (one kicked, banned or gone since the
/// mentions were resolved is skipped).
pub(super) async fn insert_mentions(
    tx: &mut sqlx::SqliteConnection,
    messages: &[(&str, &str, i64, &[String])],
) -> Result<(), sqlx::Error> {
    for (message_id, room_id, seq, users) in messages {
        for chunk in users.chunks(200) {
            let values = vec!["(?, ?, ?, ?)"; chunk.len()].join(", ");
            let sql = format!(
                "INSERT INTO message_mentions (message_id, user_id, room_id, seq)
                 SELECT v.column1, v.column2, v.column3, v.column4 FROM (VALUES {values}) AS v
                 WHERE EXISTS (SELECT 1 FROM room_members m
                               WHERE m.room_id = v.column3 AND m.user_id = v.column2)
                 ON CONFLICT DO NOTHING"
            );
            let mut query = sqlx::query(&sql);
            for user in chunk {
                query = query.bind(*message_id).bind(user).bind(*room_id).bind(*seq);
            }
            query.execute(&mut *tx).await?;
        }
    }
    Ok(())
}

/// The largest chunk: 512 rows × 13 parameters stays far below SQLite's limit (32,766).
const MAX_CHUNK: usize = 512;
/// Chunk sizes are the powers of two up to [`MAX_CHUNK`]: 1, 2, 4, … 512.
const CHUNK_SIZES: usize = MAX_CHUNK.trailing_zeros() as usize + 1;

/// The largest power of two that is at most `left` and [`MAX_CHUNK`] (`left` ≥ 1).
fn chunk_size(left: usize) -> usize {
    let fits = left.clamp(1, MAX_CHUNK);
    1 << (usize::BITS - 1 - fits.leading_zeros())
}

/// The statement that inserts `rows` messages (a power of two up to [`MAX_CHUNK`]).
///
/// SQLite evaluates an `INSERT … SELECT` into a table with a trigger in full before it
/// inserts a row, so a per-row `last_seq + 1` would give every row of a room the same
/// seq. Here each row's seq is the room's `last_seq` plus its rank among the rows of the
/// same room that pass the filters (`ROW_NUMBER() OVER (PARTITION BY room)` in queue
/// order), so seqs stay gap-free; rows are inserted in queue order and the
/// `messages_take_seq` trigger leaves `last_seq` at each room's highest. The filters drop
/// a row whose room is gone, whose `client_id` is already stored, or whose sender must
/// be a member and is not ([`NewMessage::member_only`]); such rows return nothing.
fn chunk_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        (0..CHUNK_SIZES)
            .map(|k| {
                let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; 1 << k].join(", ");
                format!(
                    "INSERT INTO messages (id, room_id, seq, sender_id, content, client_id,
                                           created_at, message_type, reply_to,
                                           attachment_id, call_log, updated_seq, mentions)
                     SELECT id, room_id, seq, sender_id, content, client_id, created_at,
                            message_type, reply_to, attachment_id, call_log, seq, mentions
                     FROM (SELECT v.column1 AS id, v.column2 AS room_id,
                                  v.column3 AS sender_id, v.column4 AS content,
                                  v.column5 AS client_id, v.column6 AS created_at,
                                  v.column7 AS message_type, v.column8 AS reply_to,
                                  v.column9 AS attachment_id, v.column10 AS call_log,
                                  v.column12 AS n, v.column13 AS mentions,
                                  r.last_seq + ROW_NUMBER()
                                      OVER (PARTITION BY v.column2 ORDER BY v.column12)
                                      AS seq
                           FROM (VALUES {values}) AS v JOIN rooms r ON r.id = v.column2
                           WHERE (v.column11 = 0
                                  OR (r.kind <> 'dm' AND EXISTS (
                                      SELECT 1 FROM room_members m
                                      WHERE m.room_id = v.column2
                                        AND m.user_id = v.column3)))
                             AND (v.column5 IS NULL OR NOT EXISTS (
                                  SELECT 1 FROM messages x
                                  WHERE x.room_id = v.column2 AND x.sender_id = v.column3
                                    AND x.client_id = v.column5)))
                     ORDER BY n
                     RETURNING id, seq,
                               (SELECT username FROM users WHERE id = sender_id) AS username"
                )
            })
            .collect()
    });
    &all[rows.trailing_zeros() as usize]
}

/// Inserts the messages `chunk` (indexes into `batch`) with one statement, or row by row
/// if that statement fails on a constraint, and sets their `results`.
async fn insert_chunk(
    tx: &mut sqlx::SqliteConnection,
    batch: &[(NewMessage, oneshot::Sender<Inserted>)],
    chunk: &[usize],
    results: &mut [Option<Inserted>],
) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query(chunk_sql(chunk.len()));
    for (n, &i) in chunk.iter().enumerate() {
        let m = &batch[i].0;
        query = query
            .bind(&m.id)
            .bind(&m.room_id)
            .bind(&m.sender_id)
            .bind(&m.content)
            .bind(&m.client_id)
            .bind(&m.created_at)
            .bind(message_type_str(m.message_type))
            .bind(&m.reply_to)
            .bind(&m.attachment_id)
            .bind(call_log_column(m.call.as_ref()))
            .bind(m.member_only)
            .bind(n as i64)
            .bind(crate::store::mentions_column(&m.mentions));
    }
    let rows = match query.fetch_all(&mut *tx).await {
        Ok(rows) => rows,
        // SQLite rolled back this statement only: retry its rows one by one, so that
        // only the bad one fails (a uniqueness clash is answered there too).
        Err(sqlx::Error::Database(db))
            if is_row_error(&*db) || db.kind() == sqlx::error::ErrorKind::UniqueViolation =>
        {
            for &i in chunk {
                results[i] = Some(insert_one(tx, &batch[i].0).await?);
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut stored = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get("id")?;
        stored.insert(id, (row.try_get("seq")?, row.try_get("username")?));
    }
    for &i in chunk {
        let m = &batch[i].0;
        results[i] = Some(match stored.remove(&m.id) {
            Some((seq, username)) => Ok((new_row(m, seq, username), true)),
            None if m.member_only => Err(StoreError::NotFound),
            None => existing(tx, m).await?,
        });
    }
    Ok(())
}

/// Inserts one message with its own statement.
async fn insert_one(
    tx: &mut sqlx::SqliteConnection,
    m: &NewMessage,
) -> Result<Inserted, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO messages (id, room_id, seq, sender_id, content, client_id, created_at,
                               message_type, reply_to, attachment_id, call_log, updated_seq,
                               mentions)
         SELECT ?1, ?2, (SELECT last_seq + 1 FROM rooms WHERE id = ?2), ?3, ?4, ?5, ?6,
                ?7, ?8, ?9, ?10, (SELECT last_seq + 1 FROM rooms WHERE id = ?2), ?12
         WHERE ?11 = 0 OR EXISTS (SELECT 1 FROM room_members m JOIN rooms r ON r.id = m.room_id
                                  WHERE m.room_id = ?2 AND m.user_id = ?3
                                    AND r.kind <> 'dm')
         ON CONFLICT (room_id, sender_id, client_id) WHERE client_id IS NOT NULL
         DO NOTHING
         RETURNING seq, (SELECT username FROM users WHERE id = sender_id) AS username",
    )
    .bind(&m.id)
    .bind(&m.room_id)
    .bind(&m.sender_id)
    .bind(&m.content)
    .bind(&m.client_id)
    .bind(&m.created_at)
    .bind(message_type_str(m.message_type))
    .bind(&m.reply_to)
    .bind(&m.attachment_id)
    .bind(call_log_column(m.call.as_ref()))
    .bind(m.member_only)
    .bind(crate::store::mentions_column(&m.mentions))
    .fetch_optional(&mut *tx)
    .await;
    Ok(match inserted {
        Ok(Some(row)) => Ok((
            new_row(m, row.try_get("seq")?, row.try_get("username")?),
            true,
        )),
        Ok(None) if m.member_only => Err(StoreError::NotFound),
        // The idempotency index matched: the message stored the first time.
        Ok(None) => existing(tx, m).await?,
        // No room (its seq is NULL), no sender, or a value the schema refuses: this
        // message only.
        Err(sqlx::Error::Database(db)) if is_row_error(&*db) => Err(StoreError::NotFound),
        Err(e) => return Err(e),
    })
}

/// A failure of one row (a missing room or sender, a value the schema refuses), after
/// which SQLite has rolled back the statement, not the transaction.
fn is_row_error(db: &dyn sqlx::error::DatabaseError) -> bool {
    db.is_foreign_key_violation()
        || matches!(
            db.kind(),
            sqlx::error::ErrorKind::NotNullViolation | sqlx::error::ErrorKind::CheckViolation
        )
}

/// The message stored the first time under `m`'s `client_id`, or `NotFound`.
async fn existing(
    tx: &mut sqlx::SqliteConnection,
    m: &NewMessage,
) -> Result<Inserted, sqlx::Error> {
    Ok(match super::messages::message_by_client_id(tx, m).await? {
        Some(row) => Ok((row, false)),
        None => Err(StoreError::NotFound),
    })
}

/// The row of `m`, just stored with `seq`.
fn new_row(m: &NewMessage, seq: i64, sender_username: String) -> MessageRow {
    MessageRow {
        id: m.id.clone(),
        room_id: m.room_id.clone(),
        seq,
        sender_id: m.sender_id.clone(),
        sender_username,
        content: m.content.clone(),
        client_id: m.client_id.clone(),
        created_at: m.created_at.clone(),
        message_type: m.message_type,
        reply_to: m.reply_to.clone(),
        attachment_id: m.attachment_id.clone(),
        call: m.call.clone(),
        edited_at: None,
        deleted_at: None,
        updated_seq: seq,
        mentions: m.mentions.clone(),
    }
}

#[cfg(test)]
mod tests {
    use palaver_protocol::{MemberRole, MessageType, Role, RoomKind, Visibility};

    use super::super::SqliteStore;
    use crate::store::{NewMessage, NewRoom, PendingMessage, StoreError, UserRow};

    fn message(room_id: &str, sender_id: &str, n: usize, client_id: Option<&str>) -> NewMessage {
        NewMessage {
            id: uuid::Uuid::now_v7().to_string(),
            room_id: room_id.into(),
            sender_id: sender_id.into(),
            content: format!("message {n}"),
            client_id: client_id.map(str::to_owned),
            created_at: "2026-11-21T10:00:00.000Z".into(),
            message_type: MessageType::Text,
            reply_to: None,
            attachment_id: None,
            call: None,
            member_only: false,
            mentions: Default::default(),
            mentioned: Vec::new(),
        }
    }

    async fn add_user(store: &crate::store::Store, id: &str, username: &str) {
        store
            .users
            .create_user(&UserRow {
                id: id.into(),
                username: username.into(),
                email: format!("{username}@example.com"),
                password_hash: "x".into(),
                role: Role::User,
                profile: Default::default(),
                settings: "{}".into(),
                created_at: "2026-11-21T10:00:00.000Z".into(),
                disabled_at: None,
                deleted_at: None,
                email_verified_at: None,
            })
            .await
            .unwrap();
    }

    async fn add_room(store: &crate::store::Store, id: &str, kind: RoomKind) {
        store
            .rooms
            .create_room(&NewRoom {
                id: id.into(),
                name: id.into(),
                topic: None,
                visibility: Visibility::Public,
                kind,
                created_by: "u1".into(),
                created_at: "2026-11-21T10:00:00.000Z".into(),
            })
            .await
            .unwrap();
    }

    /// The send fast path's authorization inside the insert: in one batch, a member's
    /// messages are stored, a non-member's and those to a DM fail alone with `NotFound`
    /// and store nothing, and the member's seqs have no gap where the refused ones were.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn member_only_messages_of_non_members_fail_alone_and_leave_no_seq_gap() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("palaver.db"))
            .await
            .unwrap();
        let store = db.store();
        add_user(&store, "u1", "alice").await;
        add_user(&store, "u2", "bob").await;
        add_room(&store, "r1", RoomKind::Channel).await;
        add_room(&store, "dm", RoomKind::Dm).await;
        for room in ["r1", "dm"] {
            store
                .rooms
                .add_member(room, "u1", MemberRole::Member, "2026-11-21T10:00:00.000Z")
                .await
                .unwrap();
        }
        let mut pending = Vec::new();
        for n in 0..40 {
            let (room, sender) = match n % 4 {
                1 => ("r1", "u2"),
                3 if n % 8 == 3 => ("dm", "u1"),
                _ => ("r1", "u1"),
            };
            let mut m = message(room, sender, n, Some(&format!("c{n}")));
            m.member_only = true;
            pending.push((room, sender, store.messages.queue_message(m).await.unwrap()));
        }
        let mut next_seq = 1;
        for (room, sender, p) in pending {
            let result = p.committed().await;
            if room == "r1" && sender == "u1" {
                let (row, created) = result.unwrap();
                assert!(created);
                assert_eq!(row.seq, next_seq, "a member's message after refused ones");
                next_seq += 1;
            } else {
                assert!(
                    matches!(result, Err(StoreError::NotFound)),
                    "{sender} in {room}: {result:?}"
                );
            }
        }
        let r1 = store.rooms.room_by_id("r1").await.unwrap().unwrap();
        assert_eq!(r1.last_seq, next_seq - 1);
        let dm = store.rooms.room_by_id("dm").await.unwrap().unwrap();
        assert_eq!(dm.last_seq, 0, "nothing was stored in the DM");
        // Without `member_only` the caller has checked: the DM message is stored.
        let m = message("dm", "u1", 99, None);
        let (row, _) = store
            .messages
            .queue_message(m)
            .await
            .unwrap()
            .committed()
            .await
            .unwrap();
        assert_eq!(row.seq, 1);
    }

    /// Many messages queued at once land in few transactions, yet each room's seqs are
    /// gap-free in queue order, a retried `client_id` resolves to the first message, and a
    /// message to a missing room fails alone without taking its batch down.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_keeps_queue_order_per_room_and_fails_only_the_bad_message() {
        let dir = tempfile::tempdir().unwrap();
        let db = SqliteStore::open(&dir.path().join("palaver.db"))
            .await
            .unwrap();
        let store = db.store();
        add_user(&store, "u1", "alice").await;
        for room in ["r1", "r2"] {
            add_room(&store, room, RoomKind::Channel).await;
        }
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
        let mut next_seq = std::collections::HashMap::from([("r1", 1), ("r2", 1)]);
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
}
