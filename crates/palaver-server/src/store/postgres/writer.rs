//! Group commit on PostgreSQL: the task that stores new messages.
//!
//! As on SQLite (`store/sqlite/writer.rs`): one task takes every message waiting in its
//! queue, stores them all in one transaction, commits once, and only then answers each
//! sender (a durable ack). Nothing waits for a batch to fill.
//!
//! One batch, in one transaction:
//! 1. The rooms of the batch are locked in ascending id order (the deadlock rule, see
//!    [`super`]) and their `last_seq` read: `SELECT ... ORDER BY id FOR NO KEY UPDATE`.
//!    Under those locks no one else takes a seq of these rooms, and every other write
//!    that changes their membership waits, so what the next reads find holds until the
//!    commit.
//! 2. A few reads decide each message without a failing statement (in PostgreSQL a
//!    failed statement aborts the transaction): whether its sender is a member (for
//!    [`NewMessage::member_only`]), whether its `client_id` is stored already, whether
//!    its sender and attachment exist.
//! 3. The accepted messages are inserted with one multi-row statement (`UNNEST` of one
//!    array per column), each with its room's next seq in queue order, and each room's
//!    `last_seq` is moved to its last new seq with one more.
//!
//! A message refused in step 2 fails alone, with the error SQLite gives it
//! ([`StoreError::NotFound`]; a retried `client_id` is answered with the stored message).
//! Should the insert still fail on one row (a constraint the reads did not foresee), the
//! transaction is rolled back and the batch is done again with one savepoint per message,
//! so that only that message fails. Any other failure rolls back the whole batch and every
//! message in it gets [`StoreError::Unavailable`]; clients retry with the same
//! `client_id`.

use std::collections::{HashMap, HashSet};

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Row as _;
use tokio::sync::{mpsc, oneshot};

use super::messages::{call_log_column, message_from_row, message_type_str, MESSAGE_COLUMNS};
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

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Insert(m, _) => write!(f, "Insert({})", m.id),
            Job::Close(_) => f.write_str("Close"),
        }
    }
}

/// The handle on the group-commit task.
#[derive(Clone, Debug)]
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the task, which writes through `pool` (one connection at a time).
    pub(super) fn start(pool: PgPool) -> GroupCommit {
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
            .map_err(|_| closing())?;
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
async fn run(pool: PgPool, mut queue: mpsc::Receiver<Job>) {
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

/// Stores `batch` in one transaction and answers each message; empties `batch`.
async fn commit(pool: &PgPool, batch: &mut Vec<(NewMessage, oneshot::Sender<Inserted>)>) {
    let size = batch.len();
    let messages: Vec<&NewMessage> = batch.iter().map(|(m, _)| m).collect();
    let mut outcome = insert_all(pool, &messages, false).await;
    if matches!(&outcome, Err(e) if is_row_error(e)) {
        tracing::warn!(
            size,
            "a message of the batch failed on a constraint; one by one"
        );
        outcome = insert_all(pool, &messages, true).await;
    }
    drop(messages);
    match outcome {
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

/// A failure of one row's values (an integrity constraint, SQLSTATE class 23, or a value
/// PostgreSQL refuses, class 22), rather than of the database.
fn is_row_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("23") || code.starts_with("22")),
        _ => false,
    }
}

/// Whether any text of `m` holds a NUL character, which PostgreSQL's `text` cannot
/// store (binding it fails the statement, and with it the transaction).
fn has_nul(m: &NewMessage) -> bool {
    let texts = [
        Some(&m.id),
        Some(&m.room_id),
        Some(&m.sender_id),
        Some(&m.content),
        m.client_id.as_ref(),
        Some(&m.created_at),
        m.reply_to.as_ref(),
        m.attachment_id.as_ref(),
    ];
    texts.into_iter().flatten().any(|t| t.contains('\0'))
        || call_log_column(m.call.as_ref()).is_some_and(|c| c.contains('\0'))
}

/// What became of one message of the batch, before the insert.
enum Decision {
    /// Refused: [`StoreError::NotFound`], nothing stored.
    Refused,
    /// A retry of a message stored by an earlier batch: answered with it.
    Stored(Box<MessageRow>),
    /// A retry of the message at this index of the batch (same room, sender and
    /// `client_id`), which is to be stored: answered with it once it is (with
    /// [`StoreError::NotFound`] if its insert fails after all).
    Repeat(usize),
    /// To insert, as its room's next seq; the sender's username.
    Insert(String),
}

/// One transaction for `batch`: `Err` means nothing of it was committed. With `careful`,
/// each message is inserted under its own savepoint, so that one failing on a constraint
/// fails alone.
async fn insert_all(
    pool: &PgPool,
    batch: &[&NewMessage],
    careful: bool,
) -> Result<Vec<Inserted>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let usable: Vec<&NewMessage> = batch.iter().copied().filter(|m| !has_nul(m)).collect();

    // 1. Lock the rooms, in id order, and read their counters.
    let mut room_ids: Vec<&str> = usable.iter().map(|m| m.room_id.as_str()).collect();
    room_ids.sort_unstable();
    room_ids.dedup();
    let mut rooms: HashMap<String, (i64, bool)> = HashMap::with_capacity(room_ids.len());
    for row in sqlx::query(
        "SELECT id, last_seq, kind = 'dm' AS dm FROM rooms WHERE id = ANY($1)
         ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(&room_ids)
    .fetch_all(&mut *tx)
    .await?
    {
        rooms.insert(
            row.try_get("id")?,
            (row.try_get("last_seq")?, row.try_get("dm")?),
        );
    }
    let usable: Vec<&NewMessage> = usable
        .into_iter()
        .filter(|m| rooms.contains_key(&m.room_id))
        .collect();

    // 2. What decides each message.
    let members = memberships(&mut tx, &usable).await?;
    let stored = stored_client_ids(&mut tx, &usable).await?;
    let senders: Vec<&str> = usable.iter().map(|m| m.sender_id.as_str()).collect();
    let mut usernames: HashMap<String, String> = HashMap::new();
    for row in sqlx::query("SELECT id, username FROM users WHERE id = ANY($1)")
        .bind(&senders)
        .fetch_all(&mut *tx)
        .await?
    {
        usernames.insert(row.try_get("id")?, row.try_get("username")?);
    }
    let wanted: Vec<&str> = usable
        .iter()
        .filter_map(|m| m.attachment_id.as_deref())
        .collect();
    let attachments: HashSet<String> = if wanted.is_empty() {
        HashSet::new()
    } else {
        sqlx::query_scalar("SELECT id FROM attachments WHERE id = ANY($1)")
            .bind(&wanted)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect()
    };

    let mut in_batch: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut decisions = Vec::with_capacity(batch.len());
    for (i, m) in batch.iter().enumerate() {
        let Some(&(_, dm)) = rooms.get(&m.room_id).filter(|_| !has_nul(m)) else {
            decisions.push(Decision::Refused);
            continue;
        };
        if m.member_only && (dm || !members.contains(&(m.room_id.clone(), m.sender_id.clone()))) {
            decisions.push(Decision::Refused);
            continue;
        }
        let key = m
            .client_id
            .as_deref()
            .map(|client_id| (m.room_id.as_str(), m.sender_id.as_str(), client_id));
        if let Some(key @ (_, _, client_id)) = key {
            let first_time =
                stored.get(&(m.room_id.clone(), m.sender_id.clone(), client_id.to_owned()));
            if let Some(row) = first_time {
                decisions.push(if m.member_only {
                    Decision::Refused
                } else {
                    Decision::Stored(Box::new(row.clone()))
                });
                continue;
            }
            // Stored earlier in this batch (a repeat of a refused message is tried
            // afresh).
            if let Some(&first) = in_batch.get(&key) {
                decisions.push(if m.member_only {
                    Decision::Refused
                } else {
                    Decision::Repeat(first)
                });
                continue;
            }
        }
        let attachment_ok = m
            .attachment_id
            .as_ref()
            .is_none_or(|a| attachments.contains(a));
        match usernames.get(&m.sender_id) {
            Some(username) if attachment_ok => {
                if let Some(key) = key {
                    in_batch.insert(key, i);
                }
                decisions.push(Decision::Insert(username.clone()));
            }
            _ => decisions.push(Decision::Refused),
        }
    }

    // 3. Insert, with seqs in queue order, and move the counters.
    let mut counters: HashMap<&str, i64> = rooms
        .iter()
        .map(|(id, &(last_seq, _))| (id.as_str(), last_seq))
        .collect();
    let mut results: Vec<Option<Inserted>> = batch.iter().map(|_| None).collect();
    let to_insert: Vec<(usize, &str)> = decisions
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match d {
            Decision::Insert(username) => Some((i, username.as_str())),
            _ => None,
        })
        .collect();
    if careful {
        for &(i, username) in &to_insert {
            let m = batch[i];
            let counter = counters.entry(m.room_id.as_str()).or_default();
            let seq = *counter + 1;
            sqlx::query("SAVEPOINT palaver_message")
                .execute(&mut *tx)
                .await?;
            match insert_rows(&mut tx, &[(m, seq)]).await {
                Ok(()) => {
                    *counter = seq;
                    results[i] = Some(Ok((new_row(m, seq, username.to_owned()), true)));
                }
                Err(e) if is_row_error(&e) => {
                    tracing::warn!(error = %e, "a message failed on a constraint");
                    sqlx::query("ROLLBACK TO SAVEPOINT palaver_message")
                        .execute(&mut *tx)
                        .await?;
                    results[i] = Some(Err(StoreError::NotFound));
                }
                Err(e) => return Err(e),
            }
        }
    } else {
        let mut rows = Vec::with_capacity(to_insert.len());
        for &(i, username) in &to_insert {
            let m = batch[i];
            let counter = counters.entry(m.room_id.as_str()).or_default();
            *counter += 1;
            rows.push((m, *counter));
            results[i] = Some(Ok((new_row(m, *counter, username.to_owned()), true)));
        }
        if !rows.is_empty() {
            insert_rows(&mut tx, &rows).await?;
        }
    }
    let moved: Vec<(&str, i64)> = counters
        .iter()
        .filter(|(id, &seq)| rooms.get(**id).is_some_and(|&(last, _)| seq != last))
        .map(|(id, &seq)| (*id, seq))
        .collect();
    if !moved.is_empty() {
        let (ids, seqs): (Vec<&str>, Vec<i64>) = moved.into_iter().unzip();
        sqlx::query(
            "UPDATE rooms SET last_seq = v.last_seq
             FROM UNNEST($1::text[], $2::int8[]) AS v(id, last_seq) WHERE rooms.id = v.id",
        )
        .bind(&ids)
        .bind(&seqs)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;

    for (i, decision) in decisions.into_iter().enumerate() {
        match decision {
            Decision::Refused => results[i] = Some(Err(StoreError::NotFound)),
            Decision::Stored(row) => results[i] = Some(Ok((*row, false))),
            Decision::Repeat(first) => {
                results[i] = Some(match &results[first] {
                    Some(Ok((row, _))) => Ok((row.clone(), false)),
                    _ => Err(StoreError::NotFound),
                });
            }
            Decision::Insert(_) => {}
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or(Err(StoreError::NotFound)))
        .collect())
}

/// The `(room, sender)` pairs of the `member_only` messages of `batch` whose sender is a
/// member of the room.
async fn memberships(
    tx: &mut PgConnection,
    batch: &[&NewMessage],
) -> Result<HashSet<(String, String)>, sqlx::Error> {
    let (rooms, senders): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .filter(|m| m.member_only)
        .map(|m| (m.room_id.as_str(), m.sender_id.as_str()))
        .unzip();
    if rooms.is_empty() {
        return Ok(HashSet::new());
    }
    sqlx::query_as(
        "SELECT m.room_id, m.user_id FROM room_members m
         JOIN UNNEST($1::text[], $2::text[]) AS v(room_id, user_id)
           ON m.room_id = v.room_id AND m.user_id = v.user_id",
    )
    .bind(&rooms)
    .bind(&senders)
    .fetch_all(&mut *tx)
    .await
    .map(|pairs| pairs.into_iter().collect())
}

/// The messages already stored under the `client_id`s of `batch`, by `(room, sender,
/// client_id)`.
async fn stored_client_ids(
    tx: &mut PgConnection,
    batch: &[&NewMessage],
) -> Result<HashMap<(String, String, String), MessageRow>, sqlx::Error> {
    let mut rooms = Vec::new();
    let mut senders = Vec::new();
    let mut client_ids = Vec::new();
    for m in batch {
        if let Some(c) = &m.client_id {
            rooms.push(m.room_id.as_str());
            senders.push(m.sender_id.as_str());
            client_ids.push(c.as_str());
        }
    }
    if rooms.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         JOIN UNNEST($1::text[], $2::text[], $3::text[]) AS v(room_id, sender_id, client_id)
           ON m.room_id = v.room_id AND m.sender_id = v.sender_id
          AND m.client_id = v.client_id"
    ))
    .bind(&rooms)
    .bind(&senders)
    .bind(&client_ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut stored = HashMap::with_capacity(rows.len());
    for row in &rows {
        let message = message_from_row(row)?;
        if let Some(c) = message.client_id.clone() {
            stored.insert(
                (message.room_id.clone(), message.sender_id.clone(), c),
                message,
            );
        }
    }
    Ok(stored)
}

/// Inserts `rows` (each message with its seq) with one statement.
async fn insert_rows(
    tx: &mut PgConnection,
    rows: &[(&NewMessage, i64)],
) -> Result<(), sqlx::Error> {
    let n = rows.len();
    let mut ids = Vec::with_capacity(n);
    let mut rooms = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(n);
    let mut contents = Vec::with_capacity(n);
    let mut client_ids = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(n);
    let mut attachments = Vec::with_capacity(n);
    let mut calls = Vec::with_capacity(n);
    let mut mentions = Vec::with_capacity(n);
    for &(m, seq) in rows {
        ids.push(m.id.as_str());
        rooms.push(m.room_id.as_str());
        seqs.push(seq);
        senders.push(m.sender_id.as_str());
        contents.push(m.content.as_str());
        client_ids.push(m.client_id.as_deref());
        created.push(m.created_at.as_str());
        types.push(message_type_str(m.message_type));
        replies.push(m.reply_to.as_deref());
        attachments.push(m.attachment_id.as_deref());
        calls.push(call_log_column(m.call.as_ref()));
        mentions.push(crate::store::mentions_column(&m.mentions));
    }
    sqlx::query(
        "INSERT INTO messages (id, room_id, seq, sender_id, content, client_id, created_at,
                               message_type, reply_to, attachment_id, call_log, updated_seq,
                               mentions)
         SELECT id, room_id, seq, sender_id, content, client_id, created_at,
                message_type, reply_to, attachment_id, call_log, seq, mentions
         FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
              AS v(id, room_id, seq, sender_id, content, client_id, created_at,
                   message_type, reply_to, attachment_id, call_log, mentions)",
    )
    .bind(&ids)
    .bind(&rooms)
    .bind(&seqs)
    .bind(&senders)
    .bind(&contents)
    .bind(&client_ids)
    .bind(&created)
    .bind(&types)
    .bind(&replies)
    .bind(&attachments)
    .bind(&calls)
    .bind(&mentions)
    .execute(&mut *tx)
    .await?;
    // Their words, in the same transaction: a message is searchable once committed.
    let indexed: Vec<(&str, &str)> = rows
        .iter()
        .filter(|(m, _)| crate::search::is_indexed(m.message_type))
        .map(|(m, _)| (m.id.as_str(), m.content.as_str()))
        .collect();
    super::search::index_messages(&mut *tx, &indexed).await?;
    // Whom they notify, with their seqs, for the mention counts.
    let notified: Vec<(&str, &str, i64, &[String])> = rows
        .iter()
        .filter(|(m, _)| !m.mentioned.is_empty())
        .map(|(m, seq)| {
            (
                m.id.as_str(),
                m.room_id.as_str(),
                *seq,
                m.mentioned.as_slice(),
            )
        })
        .collect();
    insert_mentions(&mut *tx, &notified).await?;
    Ok(())
}

/// Stores who each message notifies: `(message id, room id, seq, user ids)`, one row per
/// user who is a member of the room when it commits (one kicked, banned or gone since the
/// mentions were resolved is skipped).
pub(super) async fn insert_mentions(
    tx: &mut PgConnection,
    messages: &[(&str, &str, i64, &[String])],
) -> Result<(), sqlx::Error> {
    let (mut ids, mut users, mut rooms, mut seqs) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (message_id, room_id, seq, mentioned) in messages {
        for user in *mentioned {
            ids.push(*message_id);
            users.push(user.as_str());
            rooms.push(*room_id);
            seqs.push(*seq);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO message_mentions (message_id, user_id, room_id, seq)
         SELECT v.message_id, v.user_id, v.room_id, v.seq
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
              AS v(message_id, user_id, room_id, seq)
         WHERE EXISTS (SELECT 1 FROM room_members m
                       WHERE m.room_id = v.room_id AND m.user_id = v.user_id)
         ON CONFLICT DO NOTHING",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&rooms)
    .bind(&seqs)
    .execute(&mut *tx)
    .await?;
    Ok(())
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
    use crate::store::conformance::{add_room, add_user, last_seq, message, postgres, run};
    use crate::store::{Store, StoreError};

    /// What PostgreSQL refuses and SQLite would store (a NUL in a text), and a clash the
    /// reads before the insert do not foresee (two messages with one id), fail alone:
    /// the first before any statement, the second through the one-by-one retry.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_message_postgres_cannot_store_fails_alone() {
        run(postgres().await, |store: Store| async move {
            add_user(&store, "u1", "alice").await;
            add_room(&store, "r1", "u1").await;
            let first = message("r1", "u1", "one", None);
            let mut same_id = message("r1", "u1", "same id", None);
            same_id.id = first.id.clone();
            let queued = [
                first,
                message("r1", "u1", "nul \0 inside", None),
                message("r1", "u1", "two", Some("c\0")),
                message("r1", "u1", "three", None),
                same_id,
                message("r1", "u1", "four", None),
            ];
            let mut pending = Vec::new();
            for m in queued {
                pending.push(store.messages.queue_message(m).await.unwrap());
            }
            let mut outcomes = Vec::new();
            for p in pending {
                outcomes.push(p.committed().await.map(|(row, _)| (row.content, row.seq)));
            }
            assert_eq!(outcomes[0].as_ref().unwrap(), &("one".to_owned(), 1));
            assert_eq!(outcomes[3].as_ref().unwrap(), &("three".to_owned(), 2));
            assert_eq!(outcomes[5].as_ref().unwrap(), &("four".to_owned(), 3));
            for i in [1, 2, 4] {
                assert!(
                    matches!(outcomes[i], Err(StoreError::NotFound)),
                    "{i}: {:?}",
                    outcomes[i]
                );
            }
            assert_eq!(last_seq(&store, "r1").await, 3);
        })
        .await;
    }
}
