//! Profiles: editing one's own, reading others', finding users by username prefix.

use palaver_protocol::rest::{UpdateProfileRequest, UserList};
use palaver_protocol::{PublicUser, User};

use super::accounts::{public_user, user_to_wire};
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::store::Profile;

/// Longest display, first and last name, in characters.
const NAME_MAX: usize = 64;
/// Longest bio, in characters.
const BIO_MAX: usize = 500;
/// Longest location, in characters.
const LOCATION_MAX: usize = 100;
/// Longest website or avatar URL, in characters.
const URL_MAX: usize = 500;
/// Largest settings object, serialized, in bytes.
const SETTINGS_MAX_BYTES: usize = 16 * 1024;
/// Largest page of a user search.
const SEARCH_MAX: i64 = 100;

/// Applies one `PATCH` field: absent keeps `current`, `null` or blank clears it, a value
/// is trimmed and checked against `max` characters.
fn patch_text(
    field: &str,
    patch: Option<Option<String>>,
    current: Option<String>,
    max: usize,
) -> AppResult<Option<String>> {
    let Some(new) = patch else {
        return Ok(current);
    };
    let Some(value) = new.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max || value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::validation(
            field,
            format!("{field} must be at most {max} characters, without control characters"),
        ));
    }
    Ok(Some(value))
}

/// As [`patch_text`], and the value must be an absolute `http` or `https` URL.
fn patch_url(
    field: &str,
    patch: Option<Option<String>>,
    current: Option<String>,
) -> AppResult<Option<String>> {
    // Only a new value is checked: the current one may be a path on this server (an
    // uploaded picture, see `avatars.rs`).
    if patch.is_none() {
        return Ok(current);
    }
    let value = patch_text(field, patch, current, URL_MAX)?;
    if let Some(v) = &value {
        let ok = url::Url::parse(v)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if !ok {
            return Err(AppError::validation(
                field,
                format!("{field} must be an http or https URL"),
            ));
        }
    }
    Ok(value)
}

impl Service {
    /// Updates the caller's profile fields and settings (`PATCH` semantics: absent fields
    /// are kept, `null` clears).
    ///
    /// # Errors
    /// `422 validation_failed` naming the field: names over 64 characters, bio over 500,
    /// location over 100, a website or avatar URL that is not `http(s)`, settings that are
    /// not a JSON object or exceed 16 KiB.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        req: UpdateProfileRequest,
    ) -> AppResult<User> {
        let user = self.live_user(&actor.user_id).await?;
        let p = user.profile;
        let profile = Profile {
            display_name: patch_text("display_name", req.display_name, p.display_name, NAME_MAX)?,
            first_name: patch_text("first_name", req.first_name, p.first_name, NAME_MAX)?,
            last_name: patch_text("last_name", req.last_name, p.last_name, NAME_MAX)?,
            bio: patch_text("bio", req.bio, p.bio, BIO_MAX)?,
            location: patch_text("location", req.location, p.location, LOCATION_MAX)?,
            website: patch_url("website", req.website, p.website)?,
            avatar_url: patch_url("avatar_url", req.avatar_url, p.avatar_url)?,
        };
        let settings = match req.settings {
            None => user.settings,
            Some(value) => {
                if !value.is_object() {
                    return Err(AppError::validation(
                        "settings",
                        "settings must be a JSON object",
                    ));
                }
                let text = value.to_string();
                if text.len() > SETTINGS_MAX_BYTES {
                    return Err(AppError::validation(
                        "settings",
                        format!("settings must be at most {SETTINGS_MAX_BYTES} bytes"),
                    ));
                }
                text
            }
        };
        let row = self
            .store
            .users
            .update_profile(&user.id, &profile, &settings, &now_rfc3339())
            .await?;
        Ok(user_to_wire(&row))
    }

    /// Another user's public profile. Deleted accounts show their scrubbed placeholder.
    ///
    /// # Errors
    /// `404 not_found` for an unknown id.
    pub async fn public_profile(&self, user_id: &str) -> AppResult<PublicUser> {
        let user = self
            .store
            .users
            .user_by_id(user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        Ok(public_user(&user))
    }

    /// Active users whose username starts with `q` (lower-cased), by username; `after` is
    /// the `next` cursor of the previous page.
    ///
    /// # Errors
    /// `422 validation_failed` for a `limit` outside 1..=100.
    pub async fn search_users(
        &self,
        q: &str,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<UserList> {
        let limit = limit.unwrap_or(20);
        if !(1..=SEARCH_MAX).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be between 1 and {SEARCH_MAX}"),
            ));
        }
        let q = q.trim().to_lowercase();
        let rows = self
            .store
            .users
            .search_users(&q, after, limit + 1, false)
            .await?;
        let has_more = rows.len() as i64 > limit;
        let users: Vec<PublicUser> = rows.iter().take(limit as usize).map(public_user).collect();
        let next = if has_more {
            users.last().map(|u| u.username.clone())
        } else {
            None
        };
        Ok(UserList { users, next })
    }
}
