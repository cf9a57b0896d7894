//! The caller's credentials: login sessions (list, end) and API keys (create, list,
//! revoke). Every call is scoped to the caller: an id that belongs to someone else is
//! answered exactly like one that does not exist (`404 not_found`).

use palaver_protocol::rest::{ApiKeyInfo, CreateApiKeyRequest, CreatedApiKey, SessionInfo};
use palaver_protocol::ErrorCode;

use super::{now_rfc3339, parse_rfc3339, Service};
use crate::auth::{api_keys, Actor, Credential};
use crate::broker::DisconnectTarget;
use crate::error::{AppError, AppResult};
use crate::store::ApiKeyRow;

/// Longest API key name, in characters.
const API_KEY_NAME_MAX: usize = 100;
/// Most live API keys one user may hold.
const API_KEYS_PER_USER: usize = 50;

fn key_info(row: &ApiKeyRow) -> ApiKeyInfo {
    ApiKeyInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        prefix: api_keys::display_prefix(&row.id),
        created_at: row.created_at.clone(),
        expires_at: row.expires_at.clone(),
        last_used_at: row.last_used_at.clone(),
    }
}

impl Service {
    /// Whether the credential `actor` authenticated with is still live: not revoked or
    /// expired, its account neither disabled nor deleted. A WebSocket asks this again
    /// once it is registered with the hub, because a revocation committed between its
    /// authentication and its registration closed only the sockets registered then.
    ///
    /// # Errors
    /// Store failures only.
    pub async fn credential_active(&self, actor: &Actor) -> AppResult<bool> {
        let now = now_rfc3339();
        let state = match &actor.credential {
            Credential::Session(id) => self.store.sessions.session_state(id, &now).await?,
            Credential::ApiKey(id) => self
                .store
                .api_keys
                .api_key_state(id, &now)
                .await?
                .map(|(_, state)| state),
        };
        Ok(state.is_some_and(|s| s.active && s.user_id == actor.user_id))
    }

    /// The caller's live sessions, newest first; `current` marks the caller's own.
    pub async fn sessions(&self, actor: &Actor) -> AppResult<Vec<SessionInfo>> {
        let rows = self
            .store
            .sessions
            .sessions_for_user(&actor.user_id, &now_rfc3339())
            .await?;
        Ok(rows
            .into_iter()
            .map(|s| SessionInfo {
                current: actor.credential.session_id() == Some(s.id.as_str()),
                id: s.id,
                device_name: s.device_name,
                ip: s.ip,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
            })
            .collect())
    }

    /// Ends one of the caller's sessions (refresh token dead, access tokens refused at
    /// once, WebSockets closed with 4001).
    ///
    /// # Errors
    /// `404 not_found` if the caller has no live session with that id.
    pub async fn end_session(&self, actor: &Actor, session_id: &str) -> AppResult<()> {
        let ended = self
            .store
            .sessions
            .revoke_session(&actor.user_id, session_id, "logout", &now_rfc3339())
            .await?;
        if !ended {
            return Err(AppError::not_found("session"));
        }
        tracing::warn!(user_id = %actor.user_id, %session_id, "session revoked");
        self.end_connections(DisconnectTarget::Credential(
            Credential::Session(session_id.to_owned()).hub_key(),
        ))
        .await;
        Ok(())
    }

    /// Creates an API key for the caller; the answer is the only time the key is shown.
    ///
    /// # Errors
    /// `422 validation_failed` (`name` 1–100 characters, `expires_at` an RFC 3339 time in
    /// the future); `409 conflict` past 50 live keys.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        req: CreateApiKeyRequest,
    ) -> AppResult<CreatedApiKey> {
        let name = req.name.trim();
        if name.is_empty()
            || name.chars().count() > API_KEY_NAME_MAX
            || name.chars().any(char::is_control)
        {
            return Err(AppError::validation(
                "name",
                format!("name must be 1-{API_KEY_NAME_MAX} characters"),
            ));
        }
        let now = now_rfc3339();
        let expires_at = match req.expires_at.as_deref() {
            None => None,
            Some(raw) => {
                let t = parse_rfc3339(raw).ok_or_else(|| {
                    AppError::validation("expires_at", "expires_at must be an RFC 3339 time")
                })?;
                if t <= now {
                    return Err(AppError::validation(
                        "expires_at",
                        "expires_at must be in the future",
                    ));
                }
                Some(t)
            }
        };
        let live = self
            .store
            .api_keys
            .api_keys_for_user(&actor.user_id)
            .await?;
        if live.len() >= API_KEYS_PER_USER {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("at most {API_KEYS_PER_USER} API keys; revoke one first"),
            ));
        }
        let (id, key, secret_hash) = api_keys::mint();
        let row = ApiKeyRow {
            id,
            user_id: actor.user_id.clone(),
            name: name.to_owned(),
            secret_hash,
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        self.store.api_keys.create_api_key(&row).await?;
        Ok(CreatedApiKey {
            info: key_info(&row),
            key,
        })
    }

    /// The caller's API keys (never their secrets), newest first.
    pub async fn api_keys(&self, actor: &Actor) -> AppResult<Vec<ApiKeyInfo>> {
        let rows = self
            .store
            .api_keys
            .api_keys_for_user(&actor.user_id)
            .await?;
        Ok(rows.iter().map(key_info).collect())
    }

    /// Revokes one of the caller's API keys; requests and WebSockets using it stop at once.
    ///
    /// # Errors
    /// `404 not_found` if the caller has no live key with that id.
    pub async fn revoke_api_key(&self, actor: &Actor, key_id: &str) -> AppResult<()> {
        let revoked = self
            .store
            .api_keys
            .revoke_api_key(&actor.user_id, key_id, &now_rfc3339())
            .await?;
        if !revoked {
            return Err(AppError::not_found("API key"));
        }
        tracing::warn!(user_id = %actor.user_id, %key_id, "API key revoked");
        self.end_connections(DisconnectTarget::Credential(
            Credential::ApiKey(key_id.to_owned()).hub_key(),
        ))
        .await;
        Ok(())
    }
}
