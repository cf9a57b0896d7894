//! [`IdentityStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{foreign_key_violation, unique_violation_on, PostgresStore};
use crate::store::{IdentityRow, IdentityStore, StoreError, StoreResult, Unlink, UserRow};

fn identity_from_row(row: &PgRow) -> Result<IdentityRow, sqlx::Error> {
    Ok(IdentityRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        provider: row.try_get("provider")?,
        subject: row.try_get("subject")?,
        email: row.try_get("email")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Maps the errors of inserting a user or an identity.
fn insert_error(e: sqlx::Error) -> StoreError {
    if unique_violation_on(&e, "users_username_key") {
        StoreError::Conflict("username")
    } else if unique_violation_on(&e, "users_email_key") {
        StoreError::Conflict("email")
    } else if unique_violation_on(&e, "identities_provider_subject_key") {
        StoreError::Conflict("identity")
    } else if foreign_key_violation(&e) {
        StoreError::NotFound
    } else {
        StoreError::Database(e)
    }
}

const INSERT_IDENTITY: &str =
    "INSERT INTO identities (id, user_id, provider, subject, email, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)";

#[async_trait]
impl IdentityStore for PostgresStore {
    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn create_user_with_identity(
        &self,
        user: &UserRow,
        identity: &IdentityRow,
    ) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, role, settings, created_at,
                                email_verified_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(user.role.as_str())
        .bind(&user.settings)
        .bind(&user.created_at)
        .bind(&user.email_verified_at)
        .execute(&mut *tx)
        .await
        .map_err(insert_error)?;
        sqlx::query(INSERT_IDENTITY)
            .bind(&identity.id)
            .bind(&identity.user_id)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .bind(&identity.email)
            .bind(&identity.created_at)
            .execute(&mut *tx)
            .await
            .map_err(insert_error)?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn create_identity(&self, identity: &IdentityRow) -> StoreResult<()> {
        sqlx::query(INSERT_IDENTITY)
            .bind(&identity.id)
            .bind(&identity.user_id)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .bind(&identity.email)
            .bind(&identity.created_at)
            .execute(&self.pool)
            .await
            .map_err(insert_error)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn identity(&self, provider: &str, subject: &str) -> StoreResult<Option<IdentityRow>> {
        let row = sqlx::query("SELECT * FROM identities WHERE provider = $1 AND subject = $2")
            .bind(provider)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(identity_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn identities_for_user(&self, user_id: &str) -> StoreResult<Vec<IdentityRow>> {
        let rows =
            sqlx::query("SELECT * FROM identities WHERE user_id = $1 ORDER BY created_at, id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(identity_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_identity(&self, user_id: &str, id: &str) -> StoreResult<Unlink> {
        // The user's row lock serializes concurrent unlinks of one account, so two of them
        // cannot each see the other's identity and remove both.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let done = sqlx::query(
            "DELETE FROM identities WHERE id = $1 AND user_id = $2 AND (
                 EXISTS (SELECT 1 FROM users WHERE id = $2 AND password_hash <> '')
                 OR EXISTS (SELECT 1 FROM identities o WHERE o.user_id = $2 AND o.id <> $1))",
        )
        .bind(id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let outcome = if done.rows_affected() == 1 {
            Unlink::Removed
        } else {
            let exists = sqlx::query("SELECT 1 FROM identities WHERE id = $1 AND user_id = $2")
                .bind(id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_some() {
                Unlink::LastSignIn
            } else {
                Unlink::NotFound
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    #[tracing::instrument(skip_all, err)]
    async fn save_ticket(
        &self,
        ticket_hash: &[u8],
        kind: &str,
        payload: &str,
        expires_at: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO oidc_tickets (ticket_hash, kind, payload, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (ticket_hash) DO UPDATE
             SET kind = EXCLUDED.kind, payload = EXCLUDED.payload,
                 expires_at = EXCLUDED.expires_at",
        )
        .bind(ticket_hash)
        .bind(kind)
        .bind(payload)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn take_ticket(
        &self,
        ticket_hash: &[u8],
        kind: &str,
        now: &str,
    ) -> StoreResult<Option<String>> {
        // One statement: of concurrent takes, only the one that deletes the row gets it.
        let row = sqlx::query(
            "DELETE FROM oidc_tickets WHERE ticket_hash = $1 AND kind = $2
             RETURNING payload, expires_at",
        )
        .bind(ticket_hash)
        .bind(kind)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: String = row.try_get("expires_at")?;
        let payload: String = row.try_get("payload")?;
        Ok((expires_at.as_str() > now).then_some(payload))
    }

    #[tracing::instrument(skip_all, err)]
    async fn purge_tickets(&self, now: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM oidc_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
