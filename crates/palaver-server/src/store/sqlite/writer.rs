//! Group commit: the task that stores new messages.
//!
//! Sending is the write that happens most. Instead of one transaction, and one fsync, per
//! message, one task takes every message waiting in its queue, inserts them all in one
//! transaction, commits once, and only then answers each sender (a durable ack: no
//! sender hears "ok" before its message is on disk). Nothing waits for a batch to fill:
//! whatever arrived while the previous commit was on disk forms the next batch, so an idle
//! server commits each message at once and a busy one commits many per fsync.
//!
//! Each message is one statement, `INSERT … RETURNING`, whose seq is the room's counter
//! plus one; the `messages_take_seq` trigger (migration 0006) advances the counter in the
//! same statement. The queue is first in, first out, and the task is the only one that
//! inserts messages, so within a room, seq order is queue order.
//!
//! A statement that fails on a constraint (the room or the sender is gone) fails only its
//! own message: SQLite rolls back that statement, not the transaction. Any other failure
//! (disk full, I/O) rolls back the whole batch and every message in it gets
//! [`StoreError::Unavailable`]; clients retry with the same `client_id`.

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
async fn insert_all(
    pool: &SqlitePool,
    batch: &[(NewMessage, oneshot::Sender<Inserted>)],
) -> Result<Vec<Inserted>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let mut results = Vec::with_capacity(batch.len());
    for (m, _) in batch {
        let inserted = sqlx::query(
            "INSERT INTO messages (id, room_id, seq, sender_id, content, client_id, created_at,
                                   message_type, reply_to, attachment_id, call_log, updated_seq)
             VALUES (?1, ?2, (SELECT last_seq + 1 FROM rooms WHERE id = ?2), ?3, ?4, ?5, ?6,
                     ?7, ?8, ?9, ?10, (SELECT last_seq + 1 FROM rooms WHERE id = ?2))
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
        .fetch_optional(&mut *tx)
        .await;
        let result = match inserted {
            Ok(Some(row)) => Ok((
                MessageRow {
                    id: m.id.clone(),
                    room_id: m.room_id.clone(),
                    seq: row.try_get("seq")?,
                    sender_id: m.sender_id.clone(),
                    sender_username: row.try_get("username")?,
                    content: m.content.clone(),
                    client_id: m.client_id.clone(),
                    created_at: m.created_at.clone(),
                    message_type: m.message_type,
                    reply_to: m.reply_to.clone(),
                    attachment_id: m.attachment_id.clone(),
                    call: m.call.clone(),
                    edited_at: None,
                    deleted_at: None,
                    updated_seq: row.try_get("seq")?,
                },
                true,
            )),
            // The idempotency index matched: the message stored the first time.
            Ok(None) => match super::messages::message_by_client_id(&mut tx, m).await? {
                Some(existing) => Ok((existing, false)),
                None => Err(StoreError::NotFound),
            },
            // No room (its seq is NULL), no sender, or a value the schema refuses: this
            // message only.
            Err(sqlx::Error::Database(db))
                if db.is_foreign_key_violation()
                    || matches!(
                        db.kind(),
                        sqlx::error::ErrorKind::NotNullViolation
                            | sqlx::error::ErrorKind::CheckViolation
                    ) =>
            {
                Err(StoreError::NotFound)
            }
            Err(e) => return Err(e),
        };
        results.push(result);
    }
    tx.commit().await?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use palaver_protocol::{MessageType, Role, RoomKind, Visibility};

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
        }
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
                created_at: "2026-11-21T10:00:00.000Z".into(),
                disabled_at: None,
                deleted_at: None,
            })
            .await
            .unwrap();
        for room in ["r1", "r2"] {
            store
                .rooms
                .create_room(&NewRoom {
                    id: room.into(),
                    name: room.into(),
                    topic: None,
                    visibility: Visibility::Public,
                    kind: RoomKind::Channel,
                    created_by: "u1".into(),
                    created_at: "2026-11-21T10:00:00.000Z".into(),
                })
                .await
                .unwrap();
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
