//! Blocking: a user blocks another so that the blocked user cannot open a direct
//! conversation with, invite, or call the blocker. [`Service::is_blocked`] is the check
//! those features call.

use palaver_protocol::PublicUser;

use super::accounts::public_user;
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};

impl Service {
    /// The caller blocks `user_id` (idempotent).
    ///
    /// # Errors
    /// `422 validation_failed` (`user_id`) for blocking oneself; `404 not_found` for an
    /// unknown or deleted user.
    pub async fn block(&self, actor: &Actor, user_id: &str) -> AppResult<PublicUser> {
        if user_id == actor.user_id {
            return Err(AppError::validation("user_id", "you cannot block yourself"));
        }
        let target = self
            .store
            .users
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or_else(|| AppError::not_found("user"))?;
        self.store
            .blocks
            .block(&actor.user_id, user_id, &now_rfc3339())
            .await?;
        Ok(public_user(&target))
    }

    /// The caller lifts a block.
    ///
    /// # Errors
    /// `404 not_found` if the caller had not blocked `user_id`.
    pub async fn unblock(&self, actor: &Actor, user_id: &str) -> AppResult<()> {
        if !self.store.blocks.unblock(&actor.user_id, user_id).await? {
            return Err(AppError::not_found("block"));
        }
        Ok(())
    }

    /// The users the caller has blocked, most recent first.
    pub async fn blocked_users(&self, actor: &Actor) -> AppResult<Vec<PublicUser>> {
        let rows = self.store.blocks.blocked_by(&actor.user_id).await?;
        Ok(rows.iter().map(public_user).collect())
    }

    /// Whether `blocker` has blocked `other` (for DMs, invitations and calls).
    pub async fn is_blocked(&self, blocker: &str, other: &str) -> AppResult<bool> {
        Ok(self.store.blocks.is_blocked(blocker, other).await?)
    }
}
