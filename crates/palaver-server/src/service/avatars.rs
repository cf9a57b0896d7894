//! Profile pictures: `PUT /api/v1/users/me/avatar` stores an image (PNG, JPEG, WebP or
//! GIF, sniffed from its bytes, at most [`AVATAR_MAX_BYTES`]) in the attachment storage
//! (the data directory or S3) and points the profile's `avatar_url` at
//! `/api/v1/users/{user_id}/avatar?v=<version>` (a path on this server; a new version on
//! each upload, so caches never show an old picture). `GET` on that path serves it to
//! any signed-in user; `DELETE /api/v1/users/me/avatar` clears `avatar_url`.
//!
//! The stored file is found from the user's own `avatar_url` (its `v`), never from the
//! request, so a path cannot name another file. A replaced or removed picture's file is
//! left in storage (the file store has no delete yet).

use palaver_protocol::{ErrorCode, User};

use super::attachments::sniff;
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};

/// Largest picture accepted, in bytes (1 MiB).
pub const AVATAR_MAX_BYTES: usize = 1024 * 1024;

/// Picture types accepted (as sniffed from the bytes).
pub const AVATAR_TYPES: &[&str] = &["image/png", "image/jpeg", "image/webp", "image/gif"];

/// The `avatar_url` of `user_id`'s uploaded picture of version `version`.
fn avatar_path(user_id: &str, version: &str) -> String {
    format!("/api/v1/users/{user_id}/avatar?v={version}")
}

/// The storage key of `user_id`'s uploaded picture, from their `avatar_url`; `None` when
/// it is not a picture uploaded here.
fn storage_key(user_id: &str, avatar_url: Option<&str>) -> Option<String> {
    let version = avatar_url?.strip_prefix(&avatar_path(user_id, ""))?;
    (version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("avatar-{version}"))
}

impl Service {
    /// Stores `bytes` as the caller's picture and returns their profile, whose
    /// `avatar_url` now names it.
    ///
    /// # Errors
    /// `413 payload_too_large` over [`AVATAR_MAX_BYTES`]; `422 validation_failed`
    /// (`file` empty); `415 unsupported_media_type` unless PNG, JPEG, WebP or GIF.
    pub async fn set_avatar(&self, actor: &Actor, bytes: &[u8]) -> AppResult<User> {
        if bytes.len() > AVATAR_MAX_BYTES {
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("pictures are limited to {AVATAR_MAX_BYTES} bytes"),
            ));
        }
        if bytes.is_empty() {
            return Err(AppError::validation("file", "the file is empty"));
        }
        let content_type = sniff(bytes);
        if !AVATAR_TYPES.contains(&content_type.as_str()) {
            return Err(AppError::new(
                ErrorCode::UnsupportedMediaType,
                format!("a picture must be PNG, JPEG, WebP or GIF, not {content_type}"),
            ));
        }
        let user = self.live_user(&actor.user_id).await?;
        let version = uuid::Uuid::now_v7().simple().to_string();
        self.files
            .put(&format!("avatar-{version}"), bytes)
            .await
            .map_err(AppError::internal)?;
        let mut profile = user.profile.clone();
        profile.avatar_url = Some(avatar_path(&user.id, &version));
        let row = self
            .store
            .users
            .update_profile(&user.id, &profile, &user.settings, &now_rfc3339())
            .await?;
        Ok(super::accounts::user_to_wire(&row))
    }

    /// Clears the caller's picture (`avatar_url` becomes `null`).
    ///
    /// # Errors
    /// `401` if the account is gone.
    pub async fn delete_avatar(&self, actor: &Actor) -> AppResult<User> {
        let user = self.live_user(&actor.user_id).await?;
        let mut profile = user.profile.clone();
        profile.avatar_url = None;
        let row = self
            .store
            .users
            .update_profile(&user.id, &profile, &user.settings, &now_rfc3339())
            .await?;
        Ok(super::accounts::user_to_wire(&row))
    }

    /// `user_id`'s uploaded picture: its type and bytes.
    ///
    /// # Errors
    /// `404 not_found` for an unknown or deleted user, or one without an uploaded picture.
    pub async fn avatar(&self, user_id: &str) -> AppResult<(String, Vec<u8>)> {
        let not_found = || AppError::not_found("avatar");
        let user = self
            .store
            .users
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or_else(not_found)?;
        let key =
            storage_key(&user.id, user.profile.avatar_url.as_deref()).ok_or_else(not_found)?;
        let bytes = self.files.get(&key).await.map_err(|_| not_found())?;
        Ok((sniff(&bytes), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_users_uploaded_versions_name_a_file() {
        let v = "0123456789abcdef0123456789abcdef";
        let mine = avatar_path("u1", v);
        assert_eq!(storage_key("u1", Some(&mine)), Some(format!("avatar-{v}")));
        assert_eq!(storage_key("u2", Some(&mine)), None);
        assert_eq!(storage_key("u1", Some("https://example.com/a.png")), None);
        assert_eq!(
            storage_key("u1", Some(&avatar_path("u1", "../../etc"))),
            None
        );
        assert_eq!(storage_key("u1", None), None);
    }
}
