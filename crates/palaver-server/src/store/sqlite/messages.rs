//! [`MessageStore`] on SQLite: seq allocation, idempotent inserts, history pages.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::SqliteStore;
use crate::store::{MessageRow, MessageStore, NewMessage, PageQuery, StoreError, StoreResult};

/// Columns of a message row with its sender's username, for `FROM messages m`.
const MESSAGE_COLUMNS: &str =
    "m.id, m.room_id, m.seq, m.sender_id, u.username AS sender_username, \
     m.content, m.client_id, m.created_at";

fn message_from_row(row: &SqliteRow) -> Result<MessageRow, sqlx::Error> {
    Ok(MessageRow {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        seq: row.try_get("seq")?,
        sender_id: row.try_get("sender_id")?,
        sender_username: row.try_get("sender_username")?,
        content: row.try_get("content")?,
        client_id: row.try_get("client_id")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl MessageStore for SqliteStore {
    #[tracing::instrument(skip_all, fields(room_id = %m.room_id), err)]
    async fn insert_message(&self, m: &NewMessage) -> StoreResult<(MessageRow, bool)> {
        // The writer pool has one connection, so this transaction is the only writer:
        // the existence check and the insert cannot race with another send.
        let mut tx = self.writer.begin().await?;
        if let Some(client_id) = &m.client_id {
            let existing = sqlx::query(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN users u ON u.id = m.sender_id
                 WHERE m.room_id = ?1 AND m.sender_id = ?2 AND m.client_id = ?3"
            ))
            .bind(&m.room_id)
            .bind(&m.sender_id)
            .bind(client_id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = existing {
                tx.rollback().await?;
                return Ok((message_from_row(&row)?, false));
            }
        }
        let seq: i64 = sqlx::query_scalar(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )
        .bind(&m.room_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let sender_username: String =
            sqlx::query_scalar("SELECT username FROM users WHERE id = ?1")
                .bind(&m.sender_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "INSERT INTO messages (id, room_id, seq, sender_id, content, client_id, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&m.id)
        .bind(&m.room_id)
        .bind(seq)
        .bind(&m.sender_id)
        .bind(&m.content)
        .bind(&m.client_id)
        .bind(&m.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            MessageRow {
                id: m.id.clone(),
                room_id: m.room_id.clone(),
                seq,
                sender_id: m.sender_id.clone(),
                sender_username,
                content: m.content.clone(),
                client_id: m.client_id.clone(),
                created_at: m.created_at.clone(),
            },
            true,
        ))
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
             WHERE m.room_id = ?1 AND m.seq > ?2 AND m.seq < ?3
             ORDER BY m.seq {} LIMIT ?4",
            if forward { "ASC" } else { "DESC" }
        );
        let rows = sqlx::query(&sql)
            .bind(room_id)
            .bind(page.after.unwrap_or(0))
            .bind(page.before.unwrap_or(i64::MAX))
            .bind(page.limit + 1)
            .fetch_all(&self.reader)
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
}
