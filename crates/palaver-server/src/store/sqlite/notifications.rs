//! [`NotificationStore`] on SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{foreign_key_violation, SqliteStore};
use crate::store::{
    NotificationLevel, NotificationSettingsRow, NotificationStore, PushSubscriptionRow, StoreError,
    StoreResult, VapidKeyRow,
};

fn settings_from_row(row: &SqliteRow) -> Result<NotificationSettingsRow, sqlx::Error> {
    let level: String = row.try_get("level")?;
    Ok(NotificationSettingsRow {
        room_id: row.try_get("room_id")?,
        user_id: row.try_get("user_id")?,
        level: NotificationLevel::parse(&level)
            .ok_or_else(|| sqlx::Error::Decode(format!("notification level {level:?}").into()))?,
        muted_until: row.try_get("muted_until")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn subscription_from_row(row: &SqliteRow) -> Result<PushSubscriptionRow, sqlx::Error> {
    Ok(PushSubscriptionRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        session_id: row.try_get("session_id")?,
        endpoint: row.try_get("endpoint")?,
        p256dh: row.try_get("p256dh")?,
        auth: row.try_get("auth")?,
        user_agent: row.try_get("user_agent")?,
        created_at: row.try_get("created_at")?,
    })
}

fn vapid_from_row(row: &SqliteRow) -> Result<VapidKeyRow, sqlx::Error> {
    Ok(VapidKeyRow {
        private_key: row.try_get("private_key")?,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A FOREIGN KEY violation is [`StoreError::NotFound`].
fn write_error(e: sqlx::Error) -> StoreError {
    if foreign_key_violation(&e) {
        StoreError::NotFound
    } else {
        StoreError::Database(e)
    }
}

/// `ids` as a JSON array, for `json_each`.
fn json_ids(ids: &[String]) -> StoreResult<String> {
    serde_json::to_string(ids).map_err(|e| StoreError::Unavailable(format!("encoding ids: {e}")))
}

#[async_trait]
impl NotificationStore for SqliteStore {
    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn set_notification_settings(
        &self,
        settings: &NotificationSettingsRow,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO notification_settings (room_id, user_id, level, muted_until, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (room_id, user_id) DO UPDATE SET
                 level = excluded.level,
                 muted_until = excluded.muted_until,
                 updated_at = excluded.updated_at",
        )
        .bind(&settings.room_id)
        .bind(&settings.user_id)
        .bind(settings.level.as_str())
        .bind(&settings.muted_until)
        .bind(&settings.updated_at)
        .execute(&self.writer)
        .await
        .map_err(write_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn notification_settings(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<NotificationSettingsRow>> {
        let row =
            sqlx::query("SELECT * FROM notification_settings WHERE room_id = ?1 AND user_id = ?2")
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.as_ref().map(settings_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn notification_settings_of(
        &self,
        room_id: &str,
        user_ids: &[String],
    ) -> StoreResult<Vec<NotificationSettingsRow>> {
        let rows = sqlx::query(
            "SELECT * FROM notification_settings
             WHERE room_id = ?1 AND user_id IN (SELECT value FROM json_each(?2))",
        )
        .bind(room_id)
        .bind(json_ids(user_ids)?)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(settings_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn save_push_subscription(
        &self,
        subscription: &PushSubscriptionRow,
        keep: usize,
    ) -> StoreResult<(PushSubscriptionRow, bool)> {
        let mut tx = self.writer.begin().await?;
        // SET expressions read the row as it was: a row of the same user keeps its id and
        // created_at; a row of another user becomes the new subscription.
        let row = sqlx::query(
            "INSERT INTO push_subscriptions
                 (id, user_id, session_id, endpoint, p256dh, auth, user_agent, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (endpoint) DO UPDATE SET
                 id = CASE WHEN push_subscriptions.user_id = excluded.user_id
                           THEN push_subscriptions.id ELSE excluded.id END,
                 created_at = CASE WHEN push_subscriptions.user_id = excluded.user_id
                           THEN push_subscriptions.created_at ELSE excluded.created_at END,
                 user_id = excluded.user_id,
                 session_id = excluded.session_id,
                 p256dh = excluded.p256dh,
                 auth = excluded.auth,
                 user_agent = excluded.user_agent
             RETURNING *",
        )
        .bind(&subscription.id)
        .bind(&subscription.user_id)
        .bind(&subscription.session_id)
        .bind(&subscription.endpoint)
        .bind(&subscription.p256dh)
        .bind(&subscription.auth)
        .bind(&subscription.user_agent)
        .bind(&subscription.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(write_error)?;
        let stored = subscription_from_row(&row)?;
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE user_id = ?1 AND id NOT IN (
                 SELECT id FROM push_subscriptions WHERE user_id = ?1
                 ORDER BY created_at DESC, id DESC LIMIT ?2)",
        )
        .bind(&subscription.user_id)
        .bind(i64::try_from(keep).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let new = stored.id == subscription.id;
        Ok((stored, new))
    }

    #[tracing::instrument(skip_all, err)]
    async fn push_subscriptions(&self, user_id: &str) -> StoreResult<Vec<PushSubscriptionRow>> {
        let rows = sqlx::query(
            "SELECT * FROM push_subscriptions WHERE user_id = ?1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(subscription_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn push_targets(
        &self,
        user_ids: &[String],
        now: &str,
    ) -> StoreResult<Vec<PushSubscriptionRow>> {
        let rows = sqlx::query(
            "SELECT p.* FROM push_subscriptions AS p
             LEFT JOIN sessions AS s ON s.id = p.session_id
             WHERE p.user_id IN (SELECT value FROM json_each(?1))
               AND (p.session_id IS NULL OR (s.revoked_at IS NULL AND s.expires_at > ?2))",
        )
        .bind(json_ids(user_ids)?)
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(subscription_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_push_subscription(&self, user_id: &str, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE id = ?1 AND user_id = ?2")
            .bind(id)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_gone_subscription(&self, id: &str, endpoint: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM push_subscriptions WHERE id = ?1 AND endpoint = ?2")
            .bind(id)
            .bind(endpoint)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all, err)]
    async fn vapid_key(&self) -> StoreResult<Option<VapidKeyRow>> {
        let row = sqlx::query("SELECT * FROM vapid_keys WHERE id = 1")
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(vapid_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_vapid_key(&self, key: &VapidKeyRow) -> StoreResult<VapidKeyRow> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO vapid_keys (id, private_key, public_key, created_at)
             VALUES (1, ?1, ?2, ?3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&key.private_key)
        .bind(&key.public_key)
        .bind(&key.created_at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query("SELECT * FROM vapid_keys WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(vapid_from_row(&row)?)
    }
}
