//! [`ApiKeyStore`] and [`BlockStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::users::{credential_state, user_from_row};
use super::{not_found_on_foreign_key, PostgresStore};
use crate::store::{ApiKeyRow, ApiKeyStore, BlockStore, CredentialState, StoreResult, UserRow};

fn api_key_from_row(row: &PgRow) -> Result<ApiKeyRow, sqlx::Error> {
    Ok(ApiKeyRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[async_trait]
impl ApiKeyStore for PostgresStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_api_key(&self, key: &ApiKeyRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, name, secret_hash, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.secret_hash)
        .bind(&key.created_at)
        .bind(&key.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn api_keys_for_user(&self, user_id: &str) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT * FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(api_key_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn api_key_state(
        &self,
        id: &str,
        now: &str,
    ) -> StoreResult<Option<(ApiKeyRow, CredentialState)>> {
        let row = sqlx::query(
            "SELECT k.*, u.role,
                    (k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > $2)
                     AND u.disabled_at IS NULL AND u.deleted_at IS NULL) AS active
             FROM api_keys k JOIN users u ON u.id = k.user_id WHERE k.id = $1",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((api_key_from_row(&r)?, credential_state(&r)?)))
            .transpose()
    }

    async fn touch_api_key(&self, id: &str, now: &str, stale_before: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_keys SET last_used_at = $2
             WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)",
        )
        .bind(id)
        .bind(now)
        .bind(stale_before)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn revoke_api_key(&self, user_id: &str, id: &str, at: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = $3
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn revoke_api_keys(&self, user_id: &str, at: &str) -> StoreResult<Vec<String>> {
        let ids = sqlx::query_scalar(
            "UPDATE api_keys SET revoked_at = $2
             WHERE user_id = $1 AND revoked_at IS NULL RETURNING id",
        )
        .bind(user_id)
        .bind(at)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }
}

#[async_trait]
impl BlockStore for PostgresStore {
    #[tracing::instrument(skip_all, err)]
    async fn block(&self, blocker: &str, blocked: &str, at: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(blocker)
        .bind(blocked)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(not_found_on_foreign_key)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn unblock(&self, blocker: &str, blocked: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(blocker)
            .bind(blocked)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn blocked_by(&self, blocker: &str) -> StoreResult<Vec<UserRow>> {
        let rows = sqlx::query(
            "SELECT u.* FROM blocks b JOIN users u ON u.id = b.blocked_id
             WHERE b.blocker_id = $1 ORDER BY b.created_at DESC, u.id",
        )
        .bind(blocker)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn is_blocked(&self, blocker: &str, blocked: &str) -> StoreResult<bool> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2)",
        )
        .bind(blocker)
        .bind(blocked)
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }
}
