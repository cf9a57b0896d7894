//! [`SearchStore`] on SQLite: an FTS5 index (`message_search`, contentless, keyed by
//! `message_search_docs.doc_id`) of the words [`crate::search::index_text`] folds, kept by
//! the message writes in their own transactions (see `migrations/sqlite/0015_search.sql`).

use async_trait::async_trait;
use sqlx::{Row as _, SqliteConnection, SqlitePool};

use super::messages::{message_from_row, MESSAGE_COLUMNS};
use super::SqliteStore;
use crate::search::{index_text, SearchQuery, INDEX_VERSION};
use crate::store::{SearchFilter, SearchHit, SearchStore, StoreResult};

/// Rows per INSERT when indexing many messages (2 parameters each).
const CHUNK: usize = 256;

/// Indexes `messages` (`(message id, content)`, stored in this transaction and not yet
/// indexed); a message without words is left out.
pub(super) async fn index_messages(
    conn: &mut SqliteConnection,
    messages: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let texts: Vec<(&str, String)> = messages
        .iter()
        .map(|(id, content)| (*id, index_text(content)))
        .filter(|(_, words)| !words.is_empty())
        .collect();
    for chunk in texts.chunks(CHUNK) {
        let values = vec!["(?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO message_search_docs (message_id) VALUES {values}
             RETURNING doc_id, message_id"
        );
        let mut docs = sqlx::query(&sql);
        for (id, _) in chunk {
            docs = docs.bind(*id);
        }
        let rows = docs.fetch_all(&mut *conn).await?;
        let mut doc_ids = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            doc_ids.insert(
                row.try_get::<String, _>("message_id")?,
                row.try_get::<i64, _>("doc_id")?,
            );
        }
        let values = vec!["(?, ?)"; chunk.len()].join(", ");
        let sql = format!("INSERT INTO message_search (rowid, words) VALUES {values}");
        let mut words = sqlx::query(&sql);
        for (id, text) in chunk {
            words = words.bind(doc_ids.get(*id).copied()).bind(text.as_str());
        }
        words.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Removes `message_id`'s words from the index (an edit re-adds them; a delete does not).
pub(super) async fn unindex_message(
    conn: &mut SqliteConnection,
    message_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM message_search_docs WHERE message_id = ?1")
        .bind(message_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Rebuilds the whole index from the messages, in one transaction, if it was built with
/// an older [`INDEX_VERSION`] (or never, after the migration or an import). Returns how
/// many messages were indexed (0 if nothing was to do).
pub(crate) async fn ensure_index(writer: &SqlitePool) -> Result<u64, sqlx::Error> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM search_index_state WHERE id = 1")
        .fetch_one(writer)
        .await?;
    if version >= INDEX_VERSION {
        return Ok(0);
    }
    let mut tx = writer.begin().await?;
    sqlx::query("DELETE FROM message_search_docs")
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO message_search (message_search) VALUES ('delete-all')")
        .execute(&mut *tx)
        .await?;
    let mut after = String::new();
    let mut indexed = 0u64;
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, content FROM messages
             WHERE id > ?1 AND deleted_at IS NULL AND message_type <> 'call'
             ORDER BY id LIMIT 1000",
        )
        .bind(&after)
        .fetch_all(&mut *tx)
        .await?;
        let Some((last, _)) = rows.last() else { break };
        after = last.clone();
        let batch: Vec<(&str, &str)> = rows.iter().map(|(i, c)| (i.as_str(), c.as_str())).collect();
        index_messages(&mut tx, &batch).await?;
        indexed += rows.len() as u64;
    }
    sqlx::query("UPDATE search_index_state SET version = ?1 WHERE id = 1")
        .bind(INDEX_VERSION)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if indexed > 0 {
        tracing::info!(
            messages = indexed,
            version = INDEX_VERSION,
            "search index rebuilt"
        );
    }
    Ok(indexed)
}

#[async_trait]
impl SearchStore for SqliteStore {
    #[tracing::instrument(skip_all, err)]
    async fn search_messages(
        &self,
        user_id: &str,
        query: &SearchQuery,
        filter: &SearchFilter,
        offset: i64,
        limit: i64,
    ) -> StoreResult<(Vec<SearchHit>, bool)> {
        let order = if filter.newest_first {
            "m.created_at DESC, m.id DESC"
        } else {
            "rank ASC, m.created_at DESC, m.id DESC"
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, r.name AS room_name, bm25(message_search) AS rank
             FROM message_search
             JOIN message_search_docs d ON d.doc_id = message_search.rowid
             JOIN messages m ON m.id = d.message_id
             JOIN room_members me ON me.room_id = m.room_id AND me.user_id = ?1
             JOIN rooms r ON r.id = m.room_id
             JOIN users u ON u.id = m.sender_id
             WHERE message_search MATCH ?2
               AND m.deleted_at IS NULL
               AND (?3 IS NULL OR m.room_id = ?3)
               AND (?4 IS NULL OR m.sender_id = ?4)
               AND (?5 IS NULL OR m.created_at < ?5)
               AND (?6 IS NULL OR m.created_at > ?6)
               AND (?7 IS NULL OR (m.attachment_id IS NOT NULL) = ?7)
             ORDER BY {order}
             LIMIT ?8 OFFSET ?9"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(query.fts5_match())
            .bind(&filter.room_id)
            .bind(&filter.sender_id)
            .bind(&filter.before)
            .bind(&filter.after)
            .bind(filter.has_attachment)
            .bind(limit + 1)
            .bind(offset)
            .fetch_all(&self.reader)
            .await?;
        let mut hits = rows
            .iter()
            .map(|row| {
                Ok(SearchHit {
                    message: message_from_row(row)?,
                    room_name: row.try_get("room_name")?,
                    rank: -row.try_get::<f64, _>("rank")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let more = hits.len() as i64 > limit;
        hits.truncate(limit as usize);
        Ok((hits, more))
    }
}
