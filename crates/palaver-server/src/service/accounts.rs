//! Accounts: register, log in, read one's profile.

use palaver_protocol::rest::{AuthResponse, LoginRequest, RegisterRequest};
use palaver_protocol::{ErrorCode, User};

use super::validate::{Email, Password, Username};
use super::{new_id, now_rfc3339, rfc3339, Service};
use crate::auth::tokens::new_refresh_token;
use crate::auth::{password, Actor};
use crate::error::{AppError, AppResult};
use crate::store::{NewSession, UserRow};

/// Where a login comes from, recorded on its session.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// From the `User-Agent` header, truncated.
    pub device_name: Option<String>,
    /// The peer address.
    pub ip: Option<String>,
}

/// The public profile of a stored user.
pub fn user_to_wire(row: &UserRow) -> User {
    User {
        id: row.id.clone(),
        username: row.username.clone(),
        email: row.email.clone(),
        created_at: row.created_at.clone(),
    }
}

impl Service {
    /// Creates an account and logs it in.
    ///
    /// # Errors
    /// `422 validation_failed` (username, email, password), `409 username_taken` or
    /// `409 email_taken`.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        req: RegisterRequest,
        client: ClientInfo,
    ) -> AppResult<AuthResponse> {
        let username = Username::parse(&req.username, &self.limits)?;
        let email = Email::parse(&req.email)?;
        let password = Password::parse(&req.password, &self.limits)?;
        let password_hash = password::hash(password.into_inner())
            .await
            .map_err(AppError::internal)?;
        let user = UserRow {
            id: new_id(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            password_hash,
            created_at: now_rfc3339(),
        };
        self.store.users.create_user(&user).await?;
        tracing::info!(user_id = %user.id, "registered");
        self.start_session(&user, client).await
    }

    /// Logs in with a username or email and a password.
    ///
    /// # Errors
    /// `401 invalid_credentials`, identical (and taking the same time) whether or not the
    /// account exists.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, req: LoginRequest, client: ClientInfo) -> AppResult<AuthResponse> {
        let login = req.login.trim().to_lowercase();
        let user = if login.is_empty() || login.len() > 254 {
            None
        } else {
            self.store.users.user_by_login(&login).await?
        };
        let verified =
            password::verify(req.password, user.as_ref().map(|u| u.password_hash.clone())).await;
        match user {
            Some(user) if verified => self.start_session(&user, client).await,
            _ => Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "wrong login or password",
            )),
        }
    }

    /// The caller's own profile.
    ///
    /// # Errors
    /// `401 unauthorized` if the account no longer exists.
    pub async fn me(&self, actor: &Actor) -> AppResult<User> {
        let user = self
            .store
            .users
            .user_by_id(&actor.user_id)
            .await?
            .ok_or_else(|| AppError::unauthorized("account no longer exists"))?;
        Ok(user_to_wire(&user))
    }

    /// Records a session for `user` and issues its token pair.
    async fn start_session(&self, user: &UserRow, client: ClientInfo) -> AppResult<AuthResponse> {
        let (refresh_token, refresh_token_hash) = new_refresh_token();
        let now = time::OffsetDateTime::now_utc();
        let session = NewSession {
            id: new_id(),
            user_id: user.id.clone(),
            refresh_token_hash,
            device_name: client.device_name,
            ip: client.ip,
            created_at: rfc3339(now),
            expires_at: rfc3339(now + time::Duration::seconds(self.refresh_ttl_secs as i64)),
        };
        self.store.sessions.create_session(&session).await?;
        let access_token = self
            .tokens
            .issue(&user.id, &session.id)
            .map_err(AppError::internal)?;
        Ok(AuthResponse {
            user: user_to_wire(user),
            access_token,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in: self.tokens.ttl_secs(),
        })
    }
}
