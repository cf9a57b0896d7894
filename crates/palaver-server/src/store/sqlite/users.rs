//! [`UserStore`] and [`SessionStore`] on SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{unique_violation_on, SqliteStore};
use crate::store::{NewSession, SessionStore, StoreError, StoreResult, UserRow, UserStore};

fn user_from_row(row: &SqliteRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl UserStore for SqliteStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_user(&self, user: &UserRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, username, email, password_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.created_at)
        .execute(&self.writer)
        .await
        .map_err(|e| {
            if unique_violation_on(&e, "users.username") {
                StoreError::Conflict("username")
            } else if unique_violation_on(&e, "users.email") {
                StoreError::Conflict("email")
            } else {
                StoreError::Database(e)
            }
        })?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = ?1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<UserRow>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = ?1 OR email = ?1 LIMIT 1")
            .bind(login)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_token_hash, device_name, ip,
                                   created_at, last_used_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.refresh_token_hash)
        .bind(&s.device_name)
        .bind(&s.ip)
        .bind(&s.created_at)
        .bind(&s.expires_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
