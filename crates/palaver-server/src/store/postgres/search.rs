//! [`SearchStore`] on PostgreSQL: a `tsvector` (configuration `simple`) of the words
//! [`crate::search::index_text`] folds, per message in `message_search` with a GIN index,
//! kept by the message writes in their own transactions (see
//! `migrations/postgres/0008_search.sql`).

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::Row as _;

use super::messages::{message_from_row, MESSAGE_COLUMNS};
use super::PostgresStore;
use crate::search::{index_text, SearchQuery, INDEX_VERSION};
use crate::store::{SearchFilter, SearchHit, SearchStore, StoreResult};

/// Indexes `messages` (`(message id, content)`, stored in this transaction); a message
/// without words is left out, one indexed already gets its words replaced.
pub(super) async fn index_messages(
    conn: &mut PgConnection,
    messages: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let (ids, texts): (Vec<&str>, Vec<String>) = messages
        .iter()
        .map(|(id, content)| (*id, index_text(content)))
        .filter(|(_, words)| !words.is_empty())
        .unzip();
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO message_search (message_id, words)
         SELECT id, to_tsvector('simple', words) FROM UNNEST($1::text[], $2::text[]) AS v(id, words)
         ON CONFLICT (message_id) DO UPDATE SET words = EXCLUDED.words",
    )
    .bind(&ids)
    .bind(&texts)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes `message_id`'s words from the index (an edit re-adds them; a delete does not).
pub(super) async fn unindex_message(
    conn: &mut PgConnection,
    message_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM message_search WHERE message_id = $1")
        .bind(message_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Rebuilds the whole index from the messages, in one transaction, if it was built with
/// an older [`INDEX_VERSION`] (or never). Nodes starting together take turns on the
/// state row's lock; the second finds the work done. Returns how many messages were
/// indexed (0 if nothing was to do).
pub(crate) async fn ensure_index(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let version: i64 = sqlx::query_scalar("SELECT version FROM search_index_state WHERE id = 1")
        .fetch_one(pool)
        .await?;
    if version >= INDEX_VERSION {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    let version: i64 =
        sqlx::query_scalar("SELECT version FROM search_index_state WHERE id = 1 FOR UPDATE")
            .fetch_one(&mut *tx)
            .await?;
    if version >= INDEX_VERSION {
        return Ok(0);
    }
    sqlx::query("DELETE FROM message_search")
        .execute(&mut *tx)
        .await?;
    let mut after = String::new();
    let mut indexed = 0u64;
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, content FROM messages
             WHERE id > $1 AND deleted_at IS NULL AND message_type <> 'call'
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
    sqlx::query("UPDATE search_index_state SET version = $1 WHERE id = 1")
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
impl SearchStore for PostgresStore {
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
            "rank DESC, m.created_at DESC, m.id DESC"
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS}, r.name AS room_name,
                    ts_rank_cd(s.words, q)::float8 AS rank
             FROM to_tsquery('simple', $2) AS q
             JOIN message_search s ON s.words @@ q
             JOIN messages m ON m.id = s.message_id
             JOIN room_members me ON me.room_id = m.room_id AND me.user_id = $1
             JOIN rooms r ON r.id = m.room_id
             JOIN users u ON u.id = m.sender_id
             WHERE m.deleted_at IS NULL
               AND ($3::text IS NULL OR m.room_id = $3)
               AND ($4::text IS NULL OR m.sender_id = $4)
               AND ($5::text IS NULL OR m.created_at < $5)
               AND ($6::text IS NULL OR m.created_at > $6)
               AND ($7::bool IS NULL OR (m.attachment_id IS NOT NULL) = $7)
             ORDER BY {order}
             LIMIT $8 OFFSET $9"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .bind(query.pg_tsquery())
            .bind(&filter.room_id)
            .bind(&filter.sender_id)
            .bind(&filter.before)
            .bind(&filter.after)
            .bind(filter.has_attachment)
            .bind(limit + 1)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let mut hits = rows
            .iter()
            .map(|row| {
                Ok(SearchHit {
                    message: message_from_row(row)?,
                    room_name: row.try_get("room_name")?,
                    rank: row.try_get("rank")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let more = hits.len() as i64 > limit;
        hits.truncate(limit as usize);
        Ok((hits, more))
    }
}
