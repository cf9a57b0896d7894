//! Administration: list accounts, set global roles, disable and re-enable accounts.
//! Every call requires the caller's role to be `admin` (`403 forbidden` otherwise).

use palaver_protocol::rest::{AdminUser, AdminUserList};
use palaver_protocol::{ErrorCode, Role};

use super::accounts::user_to_wire;
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::DisconnectTarget;
use crate::error::{AppError, AppResult};
use crate::store::UserRow;

/// Largest page of the admin user list.
const PAGE_MAX: i64 = 200;

fn admin_view(row: &UserRow) -> AdminUser {
    AdminUser {
        user: user_to_wire(row),
        disabled_at: row.disabled_at.clone(),
    }
}

impl Service {
    fn require_admin(&self, actor: &Actor) -> AppResult<()> {
        if actor.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::new(ErrorCode::Forbidden, "administrators only"))
        }
    }

    /// Accounts (disabled ones included, deleted ones not) whose username starts with
    /// `q`, by username, paged by the `after` cursor.
    ///
    /// # Errors
    /// `403 forbidden`; `422 validation_failed` for a `limit` outside 1..=200.
    pub async fn admin_users(
        &self,
        actor: &Actor,
        q: &str,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<AdminUserList> {
        self.require_admin(actor)?;
        let limit = limit.unwrap_or(50);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be between 1 and {PAGE_MAX}"),
            ));
        }
        let rows = self
            .store
            .users
            .search_users(&q.trim().to_lowercase(), after, limit + 1, true)
            .await?;
        let has_more = rows.len() as i64 > limit;
        let users: Vec<AdminUser> = rows.iter().take(limit as usize).map(admin_view).collect();
        let next = if has_more {
            users.last().map(|u| u.user.username.clone())
        } else {
            None
        };
        Ok(AdminUserList { users, next })
    }

    /// Sets a user's global role.
    ///
    /// # Errors
    /// `403 forbidden`; `404 not_found`; `409 conflict` when an admin would demote
    /// themself (so the last admin cannot lock everyone out by accident).
    pub async fn set_role(&self, actor: &Actor, user_id: &str, role: Role) -> AppResult<AdminUser> {
        self.require_admin(actor)?;
        if user_id == actor.user_id && role != Role::Admin {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "administrators cannot demote themselves",
            ));
        }
        if !self.store.users.set_role(user_id, role).await? {
            return Err(AppError::not_found("user"));
        }
        tracing::info!(admin = %actor.user_id, %user_id, role = role.as_str(), "role set");
        self.admin_user(user_id).await
    }

    /// Disables (`true`) or re-enables (`false`) an account. Disabling ends every session
    /// and closes every WebSocket of the account; its API keys stop working while it is
    /// disabled.
    ///
    /// # Errors
    /// `403 forbidden`; `404 not_found`; `409 conflict` when an admin would disable
    /// themself.
    pub async fn set_disabled(
        &self,
        actor: &Actor,
        user_id: &str,
        disabled: bool,
    ) -> AppResult<AdminUser> {
        self.require_admin(actor)?;
        if disabled && user_id == actor.user_id {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "administrators cannot disable themselves",
            ));
        }
        let at = disabled.then(now_rfc3339);
        if !self
            .store
            .users
            .set_disabled(user_id, at.as_deref())
            .await?
        {
            return Err(AppError::not_found("user"));
        }
        tracing::warn!(admin = %actor.user_id, %user_id, disabled, "account state set");
        if disabled {
            self.end_connections(DisconnectTarget::User(user_id.to_owned()))
                .await;
        }
        self.admin_user(user_id).await
    }

    /// Sets the role of the account with username `username` (for the command line).
    ///
    /// # Errors
    /// `404 not_found`.
    pub async fn set_role_by_username(&self, username: &str, role: Role) -> AppResult<()> {
        let user = self
            .store
            .users
            .user_by_login(&username.to_lowercase())
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        self.store.users.set_role(&user.id, role).await?;
        Ok(())
    }

    async fn admin_user(&self, user_id: &str) -> AppResult<AdminUser> {
        let row = self
            .store
            .users
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        Ok(admin_view(&row))
    }
}
