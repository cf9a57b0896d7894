//! [`ReportStore`] on PostgreSQL: members' reports of messages.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{not_found_on_foreign_key, PostgresStore};
use crate::store::{NewReport, ReportRow, ReportStore, StoreError, StoreResult};

/// Columns of a report row, for `FROM message_reports p JOIN rooms r JOIN messages m
/// JOIN users a (author) JOIN users u (reporter)`.
const REPORT_SELECT: &str = "SELECT p.id, p.room_id, r.name AS room_name,
         (r.visibility = 'public' AND r.kind = 'channel') AS public_channel,
         p.message_id, m.sender_id AS author_id, a.username AS author_username, p.content,
         p.reporter_id, u.username AS reporter_username, p.reason, p.status, p.created_at,
         p.resolved_by, p.resolved_at
     FROM message_reports p
     JOIN rooms r ON r.id = p.room_id
     JOIN messages m ON m.id = p.message_id
     JOIN users a ON a.id = m.sender_id
     JOIN users u ON u.id = p.reporter_id";

fn report_from_row(row: &PgRow) -> Result<ReportRow, sqlx::Error> {
    Ok(ReportRow {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        room_name: row.try_get("room_name")?,
        public_channel: row.try_get("public_channel")?,
        message_id: row.try_get("message_id")?,
        author_id: row.try_get("author_id")?,
        author_username: row.try_get("author_username")?,
        content: row.try_get("content")?,
        reporter_id: row.try_get("reporter_id")?,
        reporter_username: row.try_get("reporter_username")?,
        reason: row.try_get("reason")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
        resolved_by: row.try_get("resolved_by")?,
        resolved_at: row.try_get("resolved_at")?,
    })
}

#[async_trait]
impl ReportStore for PostgresStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_report(&self, report: &NewReport) -> StoreResult<ReportRow> {
        let mut tx = self.pool.begin().await?;
        // The room's row first (the deadlock rule): the insert's foreign-key checks would
        // lock the message before the room, the reverse of `delete_room`'s cascade. A key
        // share lock: it does not wait for, nor hold up, the room's seqs.
        sqlx::query("SELECT 1 FROM rooms WHERE id = $1 FOR KEY SHARE")
            .bind(&report.room_id)
            .execute(&mut *tx)
            .await?;
        let inserted = sqlx::query(
            "INSERT INTO message_reports
                 (id, room_id, message_id, reporter_id, reason, content, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (message_id, reporter_id) DO NOTHING",
        )
        .bind(&report.id)
        .bind(&report.room_id)
        .bind(&report.message_id)
        .bind(&report.reporter_id)
        .bind(&report.reason)
        .bind(&report.content)
        .bind(&report.created_at)
        .execute(&mut *tx)
        .await
        .map_err(not_found_on_foreign_key)?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict("report"));
        }
        let row = sqlx::query(&format!("{REPORT_SELECT} WHERE p.id = $1"))
            .bind(&report.id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report_from_row(&row)?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn reports(
        &self,
        status: Option<&str>,
        public_only: bool,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<ReportRow>> {
        let rows = sqlx::query(&format!(
            "{REPORT_SELECT}
             WHERE ($1 IS NULL OR p.status = $1)
               AND (NOT $2 OR (r.visibility = 'public' AND r.kind = 'channel'))
               AND ($3 IS NULL OR p.id > $3)
             ORDER BY p.id LIMIT $4"
        ))
        .bind(status)
        .bind(public_only)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(report_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn report(&self, id: &str) -> StoreResult<Option<ReportRow>> {
        let row = sqlx::query(&format!("{REPORT_SELECT} WHERE p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(report_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn resolve_report(&self, id: &str, by: &str, at: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE message_reports SET status = 'resolved', resolved_by = $2, resolved_at = $3
             WHERE id = $1 AND status = 'open'",
        )
        .bind(id)
        .bind(by)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
