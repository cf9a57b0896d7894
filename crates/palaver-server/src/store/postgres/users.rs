//! [`UserStore`] and [`SessionStore`] on PostgreSQL.

use async_trait::async_trait;
use palaver_protocol::Role;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{not_found_on_foreign_key, unique_violation_on, PostgresStore};
use crate::store::{
    CredentialState, EmailPurpose, EmailToken, NewSession, NumericKind, Profile, ResumeTicket,
    Rotation, SessionRow, SessionStore, StoreError, StoreResult, TakenEmailToken, TwoFactorRow,
    UserRow, UserStore,
};

/// Reads a user row (all columns of `users`).
pub(super) fn user_from_row(row: &PgRow) -> Result<UserRow, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(UserRow {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        role: Role::parse(&role).unwrap_or(Role::User),
        profile: Profile {
            display_name: row.try_get("display_name")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            bio: row.try_get("bio")?,
            location: row.try_get("location")?,
            website: row.try_get("website")?,
            avatar_url: row.try_get("avatar_url")?,
        },
        settings: row.try_get("settings")?,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
        deleted_at: row.try_get("deleted_at")?,
        email_verified_at: row.try_get("email_verified_at")?,
    })
}

fn session_from_row(row: &PgRow) -> Result<SessionRow, sqlx::Error> {
    Ok(SessionRow {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        device_name: row.try_get("device_name")?,
        ip: row.try_get("ip")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait]
impl UserStore for PostgresStore {
    #[tracing::instrument(skip_all, err(level = "info"))]
    async fn create_user(&self, user: &UserRow) -> StoreResult<()> {
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
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if unique_violation_on(&e, "users_username_key") {
                StoreError::Conflict("username")
            } else if unique_violation_on(&e, "users_email_key") {
                StoreError::Conflict("email")
            } else {
                StoreError::Database(e)
            }
        })?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<UserRow>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<UserRow>> {
        let row = sqlx::query(
            "SELECT * FROM users WHERE (username = $1 OR email = $1) AND deleted_at IS NULL
             LIMIT 1",
        )
        .bind(login)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn search_users(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: i64,
        include_disabled: bool,
    ) -> StoreResult<Vec<UserRow>> {
        // A range scan on the username index (byte order, "C" collation):
        // prefix <= username < prefix || U+10FFFF.
        let upper = format!("{prefix}\u{10FFFF}");
        let rows = sqlx::query(
            "SELECT * FROM users
             WHERE username >= $1 AND username < $2 AND username > $3
               AND deleted_at IS NULL AND ($4 OR disabled_at IS NULL)
             ORDER BY username LIMIT $5",
        )
        .bind(prefix)
        .bind(upper)
        .bind(after.unwrap_or(""))
        .bind(include_disabled)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_profile(
        &self,
        id: &str,
        p: &Profile,
        settings: &str,
        updated_at: &str,
    ) -> StoreResult<UserRow> {
        let row = sqlx::query(
            "UPDATE users SET display_name = $2, first_name = $3, last_name = $4, bio = $5,
                 location = $6, website = $7, avatar_url = $8, settings = $9, updated_at = $10
             WHERE id = $1 AND deleted_at IS NULL RETURNING *",
        )
        .bind(id)
        .bind(&p.display_name)
        .bind(&p.first_name)
        .bind(&p.last_name)
        .bind(&p.bio)
        .bind(&p.location)
        .bind(&p.website)
        .bind(&p.avatar_url)
        .bind(settings)
        .bind(updated_at)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        Ok(user_from_row(&row)?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_password(&self, id: &str, password_hash: &str, at: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(password_hash)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn set_role(&self, id: &str, role: Role) -> StoreResult<bool> {
        let done = sqlx::query("UPDATE users SET role = $2 WHERE id = $1 AND deleted_at IS NULL")
            .bind(id)
            .bind(role.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn set_disabled(&self, id: &str, disabled_at: Option<&str>) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE users SET disabled_at = $2 WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .bind(disabled_at)
                .execute(&mut *tx)
                .await?;
        if let Some(at) = disabled_at {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2, revoked_reason = 'account_disabled'
                 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_user(&self, id: &str, deleted_username: &str, at: &str) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        // The memberships go: lock their rooms first, in id order (the deadlock rule), so
        // that a message batch that checks this user's membership runs wholly before or
        // wholly after.
        sqlx::query(
            "SELECT id FROM rooms
             WHERE id IN (SELECT room_id FROM room_members WHERE user_id = $1)
             ORDER BY id FOR NO KEY UPDATE",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE users SET username = $2, email = $1 || '@deleted.invalid', password_hash = '',
                 display_name = NULL, first_name = NULL, last_name = NULL, bio = NULL,
                 location = NULL, website = NULL, avatar_url = NULL, settings = '{}',
                 updated_at = $3, deleted_at = $3, last_seen_at = NULL
             WHERE id = $1",
        )
        .bind(id)
        .bind(deleted_username)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = 'account_deleted'
             WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM room_members WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM identities WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM push_subscriptions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM resume_tickets WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM two_factor WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM email_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn set_last_seen(&self, id: &str, at: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE users SET last_seen_at = $2
             WHERE id = $1 AND deleted_at IS NULL AND (last_seen_at IS NULL OR last_seen_at < $2)",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn last_seen(&self, id: &str) -> StoreResult<Option<String>> {
        let found: Option<Option<String>> = sqlx::query_scalar(
            "SELECT last_seen_at FROM users WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.flatten())
    }

    async fn numeric_id(&self, kind: NumericKind, id: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT n FROM numeric_ids WHERE kind = $1 AND id = $2")
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn id_of_number(&self, kind: NumericKind, n: i64) -> StoreResult<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM numeric_ids WHERE kind = $1 AND n = $2")
                .bind(kind.as_str())
                .bind(n)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn assign_number(
        &self,
        kind: NumericKind,
        id: &str,
        n: Option<i64>,
    ) -> StoreResult<Option<i64>> {
        // A conflict on either key inserts nothing. Without a given number, a concurrent
        // assignment to another id may take the one computed here: then try again.
        for _ in 0..16 {
            sqlx::query(
                "INSERT INTO numeric_ids (kind, id, n)
                 SELECT $1, $2, COALESCE($3, (SELECT COALESCE(MAX(n), 0) + 1
                                            FROM numeric_ids WHERE kind = $1))
                 ON CONFLICT DO NOTHING",
            )
            .bind(kind.as_str())
            .bind(id)
            .bind(n)
            .execute(&self.pool)
            .await?;
            let assigned: Option<i64> =
                sqlx::query_scalar("SELECT n FROM numeric_ids WHERE kind = $1 AND id = $2")
                    .bind(kind.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            if assigned.is_some() || n.is_some() {
                return Ok(assigned);
            }
        }
        Err(StoreError::Conflict("numeric id"))
    }

    async fn two_factor(&self, user_id: &str) -> StoreResult<Option<TwoFactorRow>> {
        let row =
            sqlx::query("SELECT secret, enabled_at, last_step FROM two_factor WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(TwoFactorRow {
                secret: row.try_get("secret")?,
                enabled_at: row.try_get("enabled_at")?,
                last_step: row.try_get("last_step")?,
            })
        })
        .transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn begin_two_factor(&self, user_id: &str, secret: &[u8], at: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO two_factor (user_id, secret, enabled_at, last_step, created_at)
             VALUES ($1, $2, NULL, 0, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret,
                 created_at = excluded.created_at
             WHERE two_factor.enabled_at IS NULL",
        )
        .bind(user_id)
        .bind(secret)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(not_found_on_foreign_key)?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn enable_two_factor(
        &self,
        user_id: &str,
        secret: &[u8],
        step: i64,
        recovery_hashes: &[Vec<u8>],
        at: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let enabled = sqlx::query(
            "UPDATE two_factor SET enabled_at = $3, last_step = $4
             WHERE user_id = $1 AND secret = $2 AND enabled_at IS NULL",
        )
        .bind(user_id)
        .bind(secret)
        .bind(at)
        .bind(step)
        .execute(&mut *tx)
        .await?;
        if enabled.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, err)]
    async fn use_two_factor_step(&self, user_id: &str, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE two_factor SET last_step = $2
             WHERE user_id = $1 AND enabled_at IS NOT NULL AND last_step < $2",
        )
        .bind(user_id)
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn use_recovery_code(
        &self,
        user_id: &str,
        code_hash: &[u8],
        at: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3
             WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_codes_left(&self, user_id: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn disable_two_factor(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let removed: Option<Option<String>> =
            sqlx::query_scalar("DELETE FROM two_factor WHERE user_id = $1 RETURNING enabled_at")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(matches!(removed, Some(Some(_))))
    }
    #[tracing::instrument(skip_all, err)]
    async fn create_email_token(&self, token_hash: &[u8], token: &EmailToken) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO email_tokens (token_hash, user_id, purpose, address, created_at,
                                       expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(token_hash)
        .bind(&token.user_id)
        .bind(token.purpose.as_str())
        .bind(&token.address)
        .bind(&token.created_at)
        .bind(&token.expires_at)
        .execute(&self.pool)
        .await
        .map_err(not_found_on_foreign_key)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn take_email_token(
        &self,
        token_hash: &[u8],
        purpose: EmailPurpose,
        now: &str,
    ) -> StoreResult<TakenEmailToken> {
        // One statement: of concurrent takes, only the one whose update matches gets it.
        let row = sqlx::query(
            "UPDATE email_tokens SET used_at = $3
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
             RETURNING user_id, address, created_at, expires_at",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(TakenEmailToken::Taken(EmailToken {
                user_id: row.try_get("user_id")?,
                purpose,
                address: row.try_get("address")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            }));
        }
        let expired: Option<String> = sqlx::query_scalar(
            "SELECT expires_at FROM email_tokens
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match expired {
            Some(_) => TakenEmailToken::Expired,
            None => TakenEmailToken::Unknown,
        })
    }

    #[tracing::instrument(skip_all, err)]
    async fn email_token(
        &self,
        token_hash: &[u8],
        purpose: EmailPurpose,
        now: &str,
    ) -> StoreResult<TakenEmailToken> {
        let row = sqlx::query(
            "SELECT user_id, address, created_at, expires_at FROM email_tokens
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL",
        )
        .bind(token_hash)
        .bind(purpose.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(TakenEmailToken::Unknown);
        };
        let token = EmailToken {
            user_id: row.try_get("user_id")?,
            purpose,
            address: row.try_get("address")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        };
        Ok(if token.expires_at.as_str() > now {
            TakenEmailToken::Taken(token)
        } else {
            TakenEmailToken::Expired
        })
    }

    #[tracing::instrument(skip_all, err)]
    async fn spend_email_tokens(
        &self,
        user_id: &str,
        purpose: EmailPurpose,
        at: &str,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE email_tokens SET used_at = $3
             WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(purpose.as_str())
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    #[tracing::instrument(skip_all, err)]
    async fn verify_email(&self, id: &str, address: &str, at: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $3)
             WHERE id = $1 AND email = $2 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(address)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    #[tracing::instrument(skip_all, err)]
    async fn set_email(
        &self,
        id: &str,
        email: &str,
        verified_at: Option<&str>,
        at: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE users SET email = $2, email_verified_at = $3, updated_at = $4
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(email)
        .bind(verified_at)
        .bind(at)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if unique_violation_on(&e, "users_email_key") {
                StoreError::Conflict("email")
            } else {
                StoreError::Database(e)
            }
        })?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_session(&self, s: &NewSession) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, user_id, refresh_token_hash, device_name, ip,
                                   created_at, last_used_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(&s.refresh_token_hash)
        .bind(&s.device_name)
        .bind(&s.ip)
        .bind(&s.created_at)
        .bind(&s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn session_state(&self, id: &str, now: &str) -> StoreResult<Option<CredentialState>> {
        let row = sqlx::query(
            "SELECT s.user_id, u.role,
                    (s.revoked_at IS NULL AND s.expires_at > $2
                     AND u.disabled_at IS NULL AND u.deleted_at IS NULL) AS active
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
        )
        .bind(id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| credential_state(&r)).transpose()
    }

    #[tracing::instrument(skip_all, err)]
    async fn rotate_refresh(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: &str,
        expires_at: &str,
        grace_cutoff: &str,
        forget_before: &str,
    ) -> StoreResult<Rotation> {
        // Of two concurrent refreshes with the same token exactly one rotates: the second
        // UPDATE waits for the first's row lock, then re-checks its WHERE against the
        // committed row (whose hash is now the new one) and matches nothing; its next
        // statement sees the spent token the first one recorded.
        let mut tx = self.pool.begin().await?;
        let rotated = sqlx::query(
            "UPDATE sessions SET previous_token_hash = refresh_token_hash,
                 refresh_token_hash = $2, rotated_at = $3, last_used_at = $3, expires_at = $4
             WHERE refresh_token_hash = $1 AND revoked_at IS NULL AND expires_at > $3
               AND user_id IN (SELECT id FROM users
                               WHERE disabled_at IS NULL AND deleted_at IS NULL)
             RETURNING id, user_id",
        )
        .bind(old_hash)
        .bind(new_hash)
        .bind(now)
        .bind(expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = rotated {
            let session_id: String = row.try_get("id")?;
            // Remember the spent token; forget ones spent before `forget_before` (they
            // have expired by then and are refused as unknown anyway).
            sqlx::query(
                "INSERT INTO spent_refresh_tokens (token_hash, session_id, spent_at)
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(old_hash)
            .bind(&session_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM spent_refresh_tokens WHERE session_id = $1 AND spent_at < $2")
                .bind(&session_id)
                .bind(forget_before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Rotation::Rotated {
                session_id,
                user_id: row.try_get("user_id")?,
            });
        }
        let spent = sqlx::query(
            "SELECT s.id, s.user_id, s.rotated_at,
                    (s.previous_token_hash = t.token_hash) AS latest
             FROM spent_refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.token_hash = $1 AND s.revoked_at IS NULL",
        )
        .bind(old_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = spent else {
            tx.rollback().await?;
            return Ok(Rotation::Unknown);
        };
        let session_id: String = row.try_get("id")?;
        let user_id: String = row.try_get("user_id")?;
        let rotated_at: Option<String> = row.try_get("rotated_at")?;
        // NULL (no previous hash) reads as false, as on SQLite.
        let latest: Option<bool> = row.try_get("latest")?;
        // Only the token spent by the latest rotation can be a concurrent request.
        if latest == Some(true) && rotated_at.as_deref().is_some_and(|t| t > grace_cutoff) {
            tx.rollback().await?;
            return Ok(Rotation::WithinGrace);
        }
        sqlx::query(
            "UPDATE sessions SET revoked_at = $2, revoked_reason = 'refresh_token_reused'
             WHERE id = $1",
        )
        .bind(&session_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Rotation::Reused {
            session_id,
            user_id,
        })
    }

    #[tracing::instrument(skip_all, err)]
    async fn sessions_for_user(&self, user_id: &str, now: &str) -> StoreResult<Vec<SessionRow>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2
             ORDER BY created_at DESC, id DESC",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(session_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn revoke_session(
        &self,
        user_id: &str,
        id: &str,
        reason: &str,
        at: &str,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET revoked_at = $3, revoked_reason = $4
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
        )
        .bind(id)
        .bind(user_id)
        .bind(at)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn revoke_sessions(
        &self,
        user_id: &str,
        keep: Option<&str>,
        reason: &str,
        at: &str,
    ) -> StoreResult<Vec<String>> {
        let ids = sqlx::query_scalar(
            "UPDATE sessions SET revoked_at = $3, revoked_reason = $4
             WHERE user_id = $1 AND id IS DISTINCT FROM $2 AND revoked_at IS NULL
             RETURNING id",
        )
        .bind(user_id)
        .bind(keep)
        .bind(at)
        .bind(reason)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    #[tracing::instrument(skip_all, err)]
    async fn session_ips(&self, user_id: &str, limit: i64) -> StoreResult<Vec<String>> {
        let ips = sqlx::query_scalar(
            "SELECT ip FROM sessions WHERE user_id = $1 AND ip IS NOT NULL
             GROUP BY ip ORDER BY MAX(created_at) DESC LIMIT $2",
        )
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ips)
    }

    #[tracing::instrument(skip_all, err)]
    async fn save_resume_ticket(
        &self,
        ticket_hash: &[u8],
        ticket: &ResumeTicket,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO resume_tickets (ticket_hash, user_id, hub, positions, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (ticket_hash) DO UPDATE SET user_id = excluded.user_id,
                 hub = excluded.hub, positions = excluded.positions,
                 expires_at = excluded.expires_at",
        )
        .bind(ticket_hash)
        .bind(&ticket.user_id)
        .bind(&ticket.hub)
        .bind(&ticket.positions)
        .bind(&ticket.expires_at)
        .execute(&self.pool)
        .await
        .map_err(not_found_on_foreign_key)?;
        Ok(())
    }

    #[tracing::instrument(skip_all, err)]
    async fn take_resume_ticket(
        &self,
        ticket_hash: &[u8],
        now: &str,
    ) -> StoreResult<Option<ResumeTicket>> {
        // One statement: of concurrent takes, only the one that deletes the row gets it.
        let row = sqlx::query(
            "DELETE FROM resume_tickets WHERE ticket_hash = $1
             RETURNING user_id, hub, positions, expires_at",
        )
        .bind(ticket_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let ticket = ResumeTicket {
            user_id: row.try_get("user_id")?,
            hub: row.try_get("hub")?,
            positions: row.try_get("positions")?,
            expires_at: row.try_get("expires_at")?,
        };
        Ok((ticket.expires_at.as_str() > now).then_some(ticket))
    }

    #[tracing::instrument(skip_all, err)]
    async fn purge_resume_tickets(&self, now: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM resume_tickets WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

/// Reads `user_id`, `role`, `active` columns.
pub(super) fn credential_state(row: &PgRow) -> StoreResult<CredentialState> {
    let role: String = row.try_get("role")?;
    Ok(CredentialState {
        user_id: row.try_get("user_id")?,
        role: Role::parse(&role).unwrap_or(Role::User),
        active: row.try_get("active")?,
    })
}
