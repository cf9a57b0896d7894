//! [`MessageStore`] and [`AttachmentStore`] on PostgreSQL: seq allocation, idempotent inserts,
//! history pages, edits, tombstones, reactions, attachment metadata and access.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{lock_room, PostgresStore};
use palaver_protocol::{CallLog, Mentions, MessageType};

use crate::store::{
    AttachmentRow, AttachmentStore, EditRow, MessageRow, MessageStore, NewMessage, PageQuery,
    PendingMessage, ReactionRow, StoreError, StoreResult,
};

/// Columns of a message row with its sender's username, for `FROM messages m`.
pub(super) const MESSAGE_COLUMNS: &str =
    "m.id, m.room_id, m.seq, m.sender_id, u.username AS sender_username, \
     m.content, m.client_id, m.created_at, m.message_type, m.reply_to, m.attachment_id, m.call_log, \
     m.edited_at, m.deleted_at, m.updated_seq, m.mentions";

pub(super) fn message_from_row(row: &PgRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        seq: row.try_get("seq")?,
        sender_id: row.try_get("sender_id")?,
        sender_username: row.try_get("sender_username")?,
        content: row.try_get("content")?,
        client_id: row.try_get("client_id")?,
        created_at: row.try_get("created_at")?,
        message_type: match row.try_get::<String, _>("message_type")?.as_str() {
            "attachment" => MessageType::Attachment,
            "call" => MessageType::Call,
            _ => MessageType::Text,
        },
        reply_to: row.try_get("reply_to")?,
        attachment_id: row.try_get("attachment_id")?,
        call: call_log_from_column(row.try_get("call_log")?),
        edited_at: row.try_get("edited_at")?,
        deleted_at: row.try_get("deleted_at")?,
        updated_seq: row.try_get("updated_seq")?,
        mentions: crate::store::mentions_from_column(row.try_get("mentions")?),
    })
}

/// Takes the room's next seq for a change to `message_id` and records it as the message's
/// `updated_seq`. Runs inside the change's transaction, which locked the room first (see
/// [`lock_room`]); the seq is then the room's until that transaction ends.
async fn next_change_seq(
    conn: &mut sqlx::PgConnection,
    room_id: &str,
    message_id: &str,
) -> Result<i64, StoreError> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
    )
    .bind(room_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    sqlx::query("UPDATE messages SET updated_seq = $3 WHERE room_id = $1 AND id = $2")
        .bind(room_id)
        .bind(message_id)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    Ok(seq)
}

pub(super) fn message_type_str(t: MessageType) -> &'static str {
    match t {
        MessageType::Text => "text",
        MessageType::Attachment => "attachment",
        MessageType::Call => "call",
    }
}

/// The `call_log` column (JSON) of a call message; `None` for other messages.
fn call_log_from_column(raw: Option<String>) -> Option<CallLog> {
    let raw = raw?;
    match serde_json::from_str(&raw) {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::error!(error = %e, "unreadable call_log column");
            None
        }
    }
}

/// The `call_log` column for `call`: JSON, or NULL.
pub(super) fn call_log_column(call: Option<&CallLog>) -> Option<String> {
    call.and_then(|c| serde_json::to_string(c).ok())
}

/// Reads one message of a room inside a transaction.
async fn message_in(
    conn: &mut sqlx::PgConnection,
    room_id: &str,
    message_id: &str,
) -> Result<Option<MessageRow>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
         WHERE m.room_id = $1 AND m.id = $2"
    ))
    .bind(room_id)
    .bind(message_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(message_from_row).transpose()
}

#[async_trait]
impl MessageStore for PostgresStore {
    async fn queue_message(&self, message: NewMessage) -> StoreResult<PendingMessage> {
        Ok(PendingMessage::new(self.group_commit.queue(message).await?))
    }

    async fn reserve_message(&self) -> StoreResult<crate::store::MessageSlot> {
        self.group_commit.reserve().await
    }

    #[tracing::instrument(skip_all, fields(room_id), err)]
    async fn messages_page(
        &self,
        room_id: &str,
        page: PageQuery,
    ) -> StoreResult<(Vec<MessageRow>, bool)> {
        // Fetch one extra row to learn whether more exist in the paging direction.
        let forward = page.after.is_some() && page.before.is_none();
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.room_id = $1 AND m.seq > $2 AND m.seq < $3
             ORDER BY m.seq {} LIMIT $4",
            if forward { "ASC" } else { "DESC" }
        );
        let rows = sqlx::query(&sql)
            .bind(room_id)
            .bind(page.after.unwrap_or(0))
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(page.limit + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = messages.len() as i64 > page.limit;
        messages.truncate(page.limit as usize);
        if !forward {
            messages.reverse();
        }
        Ok((messages, has_more))
    }

    #[tracing::instrument(skip_all, err)]
    async fn message(&self, room_id: &str, message_id: &str) -> StoreResult<Option<MessageRow>> {
        let mut conn = self.pool.acquire().await?;
        Ok(message_in(&mut conn, room_id, message_id).await?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn message_position(&self, message_id: &str) -> StoreResult<Option<(String, i64)>> {
        let row =
            sqlx::query_as::<_, (String, i64)>("SELECT room_id, seq FROM messages WHERE id = $1")
                .bind(message_id)
                .fetch_optional(&self.pool)
                .await;
        match row.map_err(StoreError::from) {
            Ok(row) => Ok(row),
            // A NUL in the id (which PostgreSQL text cannot hold) matches no message.
            Err(StoreError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(skip_all, err)]
    async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: &str,
        mentions: &Mentions,
        mentioned: &[String],
        at: &str,
    ) -> StoreResult<MessageRow> {
        let mut tx = self.pool.begin().await?;
        // The room's lock first (the deadlock rule); it also serialises concurrent edits
        // of one message, which would otherwise pick the same version.
        lock_room(&mut tx, room_id).await?;
        let current = message_in(&mut tx, room_id, message_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM message_edits WHERE message_id = $1",
        )
        .bind(message_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO message_edits (message_id, version, content, written_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(message_id)
        .bind(version)
        .bind(&current.content)
        .bind(current.edited_at.as_deref().unwrap_or(&current.created_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE messages SET content = $2, edited_at = $3, mentions = $4 WHERE id = $1",
        )
        .bind(message_id)
        .bind(content)
        .bind(at)
        .bind(crate::store::mentions_column(mentions))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM message_mentions WHERE message_id = $1")
            .bind(message_id)
            .execute(&mut *tx)
            .await?;
        super::writer::insert_mentions(&mut tx, &[(message_id, room_id, current.seq, mentioned)])
            .await?;
        super::search::unindex_message(&mut tx, message_id).await?;
        if current.deleted_at.is_none() && crate::search::is_indexed(current.message_type) {
            super::search::index_messages(&mut tx, &[(message_id, content)]).await?;
        }
        next_change_seq(&mut tx, room_id, message_id).await?;
        let updated = message_in(&mut tx, room_id, message_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(updated)
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_message(
        &self,
        room_id: &str,
        message_id: &str,
        at: &str,
    ) -> StoreResult<MessageRow> {
        let mut tx = self.pool.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let done = sqlx::query(
            "UPDATE messages SET content = '', mentions = NULL, deleted_at = COALESCE(deleted_at, $3)
             WHERE room_id = $1 AND id = $2",
        )
        .bind(room_id)
        .bind(message_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        next_change_seq(&mut tx, room_id, message_id).await?;
        super::search::unindex_message(&mut tx, message_id).await?;
        for table in ["reactions", "message_edits", "message_mentions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE message_id = $1"))
                .bind(message_id)
                .execute(&mut *tx)
                .await?;
        }
        let tombstone = message_in(&mut tx, room_id, message_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await?;
        Ok(tombstone)
    }

    #[tracing::instrument(skip_all, err)]
    async fn edits(&self, message_id: &str) -> StoreResult<Vec<EditRow>> {
        let rows = sqlx::query(
            "SELECT version, content, written_at FROM message_edits
             WHERE message_id = $1 ORDER BY version",
        )
        .bind(message_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(EditRow {
                    version: r.try_get("version")?,
                    content: r.try_get("content")?,
                    written_at: r.try_get("written_at")?,
                })
            })
            .collect()
    }

    #[tracing::instrument(skip_all, err)]
    async fn add_reaction(
        &self,
        room_id: &str,
        message_id: &str,
        user_id: &str,
        emoji: &str,
        at: &str,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let done = sqlx::query(
            "INSERT INTO reactions (message_id, user_id, emoji, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .bind(message_id)
        .bind(user_id)
        .bind(emoji)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let seq = next_change_seq(&mut tx, room_id, message_id).await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    #[tracing::instrument(skip_all, err)]
    async fn remove_reaction(
        &self,
        room_id: &str,
        message_id: &str,
        user_id: &str,
        emoji: &str,
    ) -> StoreResult<Option<i64>> {
        let mut tx = self.pool.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let done = sqlx::query(
            "DELETE FROM reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
        )
        .bind(message_id)
        .bind(user_id)
        .bind(emoji)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let seq = next_change_seq(&mut tx, room_id, message_id).await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    #[tracing::instrument(skip_all, err)]
    async fn changes_since(
        &self,
        room_id: &str,
        since: i64,
        limit: i64,
    ) -> StoreResult<(Vec<MessageRow>, i64)> {
        // One snapshot for both statements. Seqs are taken under the room's lock, so
        // seq order is commit order: a snapshot that sees `last_seq` sees every change up
        // to it.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM rooms WHERE id = $1")
            .bind(room_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
             WHERE m.room_id = $1 AND m.updated_seq > $2 ORDER BY m.updated_seq LIMIT $3"
        ))
        .bind(room_id)
        .bind(since)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let rows = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()?;
        Ok((rows, last_seq))
    }

    #[tracing::instrument(skip_all, err)]
    async fn reactions(&self, message_ids: &[String]) -> StoreResult<Vec<ReactionRow>> {
        if message_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT message_id, emoji, user_id FROM reactions WHERE message_id = ANY($1)
             ORDER BY created_at, emoji, user_id",
        )
        .bind(message_ids)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReactionRow {
                    message_id: r.try_get("message_id")?,
                    emoji: r.try_get("emoji")?,
                    user_id: r.try_get("user_id")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl AttachmentStore for PostgresStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_attachment(&self, a: &AttachmentRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO attachments (id, uploader_id, filename, content_type, size, storage_key,
                                      created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&a.id)
        .bind(&a.uploader_id)
        .bind(&a.filename)
        .bind(&a.content_type)
        .bind(a.size)
        .bind(&a.storage_key)
        .bind(&a.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn attachment(&self, id: &str) -> StoreResult<Option<AttachmentRow>> {
        let row = sqlx::query("SELECT * FROM attachments WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(AttachmentRow {
                id: r.try_get("id")?,
                uploader_id: r.try_get("uploader_id")?,
                filename: r.try_get("filename")?,
                content_type: r.try_get("content_type")?,
                size: r.try_get("size")?,
                storage_key: r.try_get("storage_key")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn may_download(&self, id: &str, user_id: &str) -> StoreResult<bool> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (
                 SELECT 1 FROM attachments a WHERE a.id = $1 AND (a.uploader_id = $2 OR EXISTS (
                     SELECT 1 FROM messages m JOIN room_members rm ON rm.room_id = m.room_id
                     WHERE m.attachment_id = a.id AND m.deleted_at IS NULL
                       AND rm.user_id = $2)))",
        )
        .bind(id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }
}
