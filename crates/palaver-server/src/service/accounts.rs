//! Accounts and access: register, log in, refresh, log out, authenticate a request,
//! change the password, delete the account.
//!
//! Follows OWASP ASVS 5.0 chapters 6 (authentication), 7 (session management) and 9
//! (tokens), RFC 8725 for JWTs and RFC 9700 §4.14 for refresh token rotation.

use palaver_protocol::rest::{
    AuthResponse, ChangePasswordRequest, DeleteAccountRequest, LoginRequest, RefreshRequest,
    RegisterRequest,
};
use palaver_protocol::ws::{close_code, Event, MemberLeft};
use palaver_protocol::{ErrorCode, PublicUser, Role, User};
use sha2::{Digest, Sha256};

use super::validate::{Email, Password, Username};
use super::{new_id, now_plus, now_rfc3339, password_policy, Service};
use crate::auth::tokens::new_refresh_token;
use crate::auth::{api_keys, password, Actor, Credential};
use crate::broker::{DisconnectTarget, Envelope, Membership};
use crate::config::RateLimits;
use crate::error::{AppError, AppResult};
use crate::hub::CloseReason;
use crate::ratelimit::{Limited, RateLimiter};
use crate::redis_conn::RedisConn;
use crate::store::{NewSession, Rotation, UserRow};
use std::sync::Arc;

/// Where a request comes from, recorded on sessions and used for rate limits.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// From the `User-Agent` header, truncated.
    pub device_name: Option<String>,
    /// The client address (see [`crate::net::client_addr`]).
    pub ip: Option<std::net::IpAddr>,
}

/// How many of an account's most recent login addresses count as familiar.
const FAMILIAR_ADDRESSES: i64 = 200;

/// The rate limiters of the login and registration paths (see [`RateLimits`]).
pub struct LoginLimiters {
    failures_per_ip: RateLimiter,
    failures_per_account: RateLimiter,
    failures_per_account_global: RateLimiter,
    pub(crate) registrations_per_ip: RateLimiter,
    /// With `[email]`: requests that may send a mail, per client address.
    pub(crate) emails_per_ip: RateLimiter,
    /// With `[email]`: requests that may send a mail, per address or login named.
    pub(crate) emails_per_address: RateLimiter,
    pub(crate) two_factor_failures: RateLimiter,
}

impl LoginLimiters {
    /// Limiters with the configured rules, in Redis when `redis` is given (shared by the
    /// nodes), else in memory.
    pub fn new(rules: &RateLimits, redis: Option<&Arc<RedisConn>>) -> Self {
        let limiter = |rule, name| RateLimiter::shared_or_local(rule, name, redis);
        LoginLimiters {
            failures_per_ip: limiter(rules.login_failures_per_ip, "login_failures_per_ip"),
            failures_per_account: limiter(
                rules.login_failures_per_account,
                "login_failures_per_account",
            ),
            failures_per_account_global: limiter(
                rules.login_failures_per_account_global,
                "login_failures_per_account_global",
            ),
            emails_per_ip: limiter(rules.emails_per_ip, "emails_per_ip"),
            emails_per_address: limiter(rules.emails_per_address, "emails_per_address"),
            registrations_per_ip: limiter(rules.registrations_per_ip, "registrations_per_ip"),
            two_factor_failures: limiter(
                rules.two_factor_failures_per_account,
                "two_factor_failures_per_account",
            ),
        }
    }
}

impl Service {
    /// `429 rate_limited` for limit `name` (counted in `palaver_rate_limited_total`).
    pub(crate) fn limited(&self, name: &str, l: Limited) -> AppError {
        self.metrics
            .rate_limited
            .get_or_create(&crate::metrics::Metrics::label("limit", name))
            .inc();
        AppError::rate_limited(l.retry_after.as_secs_f64().ceil() as u64)
    }
}

/// What [`Service::register`] did.
#[derive(Debug)]
pub enum Registered {
    /// Without e-mail: the account exists and is logged in.
    LoggedIn(Box<AuthResponse>),
    /// With e-mail: a mail went out (a verification link, or to the owner of a taken
    /// address); no session.
    CheckInbox(palaver_protocol::rest::CheckInbox),
}

/// The owner's view of a stored user.
pub fn user_to_wire(row: &UserRow) -> User {
    User {
        id: row.id.clone(),
        username: row.username.clone(),
        email: row.email.clone(),
        email_verified: row.email_verified_at.is_some(),
        role: row.role,
        display_name: row.profile.display_name.clone(),
        first_name: row.profile.first_name.clone(),
        last_name: row.profile.last_name.clone(),
        bio: row.profile.bio.clone(),
        location: row.profile.location.clone(),
        website: row.profile.website.clone(),
        avatar_url: row.profile.avatar_url.clone(),
        settings: serde_json::from_str(&row.settings)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default())),
        created_at: row.created_at.clone(),
    }
}

/// What others see of a stored user.
pub fn public_user(row: &UserRow) -> PublicUser {
    PublicUser {
        id: row.id.clone(),
        username: row.username.clone(),
        display_name: row.profile.display_name.clone(),
        bio: row.profile.bio.clone(),
        location: row.profile.location.clone(),
        website: row.profile.website.clone(),
        avatar_url: row.profile.avatar_url.clone(),
        role: row.role,
        created_at: row.created_at.clone(),
    }
}

/// The close sent to WebSockets whose credential ended.
pub(crate) const SESSION_ENDED: CloseReason = CloseReason {
    code: close_code::SESSION_ENDED,
    reason: "session ended",
};

impl Service {
    /// Creates an account (role `user`). Without e-mail it is logged in at once:
    /// [`Registered::LoggedIn`]. With e-mail (`[email]`) it is created unverified and
    /// mailed a verification link, or, if the address is taken, nothing is created and
    /// the address's owner is told: both [`Registered::CheckInbox`], alike (see
    /// `docs/email.md`, "The enumeration decision").
    ///
    /// # Errors
    /// `422 validation_failed` (username, email, password — including the password policy),
    /// `409 username_taken`, `409 email_taken` (only without e-mail), `429 rate_limited`
    /// (registration attempts per IP; with e-mail also `emails_per_ip`,
    /// `emails_per_address`). The password is hashed before the uniqueness check, so a
    /// taken and a free email take the same time.
    #[tracing::instrument(skip_all)]
    pub async fn register(
        &self,
        req: RegisterRequest,
        client: ClientInfo,
    ) -> AppResult<Registered> {
        // Every attempt counts, failed ones too: this also slows probing for registered
        // emails through `email_taken`.
        if let Some(ip) = client.ip {
            self.rate
                .registrations_per_ip
                .hit(&crate::net::address_key(ip))
                .await
                .map_err(|l| self.limited("registrations_per_ip", l))?;
        }
        if self.email_enabled() {
            return Ok(Registered::CheckInbox(
                self.register_by_email(req, &client).await?,
            ));
        }
        let user = self.new_user(req, Role::User).await?;
        Ok(Registered::LoggedIn(Box::new(
            self.start_session(&user, client).await?,
        )))
    }

    /// Validates and stores a new account (also used by `palaver admin create-user`).
    ///
    /// # Errors
    /// As [`Service::register`], without the rate limit.
    pub async fn new_user(&self, req: RegisterRequest, role: Role) -> AppResult<UserRow> {
        let username = Username::parse(&req.username, &self.limits)?;
        let email = Email::parse(&req.email)?;
        let password = Password::parse(&req.password, &self.limits)?;
        password_policy::check_new_password(
            &req.password,
            username.as_str(),
            email.as_str(),
            &self.limits,
            "password",
        )?;
        let password_hash = password::hash(password.into_inner())
            .await
            .map_err(AppError::internal)?;
        let user = UserRow {
            id: new_id(),
            username: username.as_str().to_owned(),
            email: email.as_str().to_owned(),
            password_hash,
            role,
            profile: Default::default(),
            settings: "{}".into(),
            created_at: now_rfc3339(),
            disabled_at: None,
            deleted_at: None,
            email_verified_at: None,
        };
        self.store.users.create_user(&user).await?;
        tracing::info!(user_id = %user.id, role = role.as_str(), "registered");
        self.join_default_rooms(&user.id).await;
        Ok(user)
    }

    /// Logs in with a username or email and a password.
    ///
    /// Before the password is checked the attempt is counted, atomically, against three
    /// limits (see [`RateLimits`]); if any is at its limit the attempt is refused with
    /// `429 rate_limited` (and counts nothing). A correct password refunds the counts, so
    /// only failures stay counted — and however many attempts run in parallel, at most
    /// `max` of them reach the password check.
    ///
    /// - `login_failures_per_ip`: the client address (IPv4 address or IPv6 /64), across
    ///   accounts — a large budget against credential stuffing.
    /// - `login_failures_per_account`: the account (by id, so its username and e-mail
    ///   share one count) from the client's network (IPv4 /24, IPv6 /64).
    /// - `login_failures_per_account_global`: the account from every *unfamiliar* network
    ///   together, where familiar means the account has had a session (a successful login)
    ///   from that network. The owner at a familiar network is never refused by it, so an
    ///   attacker elsewhere cannot lock them out.
    ///
    /// An unknown login is keyed by the normalized login text instead of an account id and
    /// takes the same steps (and the same time).
    ///
    /// # Errors
    /// `401 invalid_credentials`, identical (and taking the same time) whether or not the
    /// account exists; `403 account_disabled` (only after a correct password);
    /// `403 email_not_verified` (with e-mail, only after a correct password: a new
    /// verification link is mailed); `429 rate_limited`.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, req: LoginRequest, client: ClientInfo) -> AppResult<AuthResponse> {
        let user = self.check_login(req, &client).await?;
        self.require_verified(&user).await?;
        self.start_session(&user, client).await
    }

    /// Checks a login and password as [`Service::login`] does (same rate limits, same
    /// errors, same time for unknown accounts) without starting a session: for routes
    /// that authenticate each request by password (seed 003's `/compat/signaling/`).
    ///
    /// # Errors
    /// As [`Service::login`].
    pub async fn check_login(&self, req: LoginRequest, client: &ClientInfo) -> AppResult<UserRow> {
        let login = req.login.trim().to_lowercase();
        let user = if login.is_empty() || login.len() > 254 {
            None
        } else {
            self.store.users.user_by_login(&login).await?
        };
        // The account's count is keyed by its id; an unknown login by its text (prefixed,
        // so it can never collide with an id).
        let account = match &user {
            Some(u) => format!("id:{}", u.id),
            None => format!("login:{login}"),
        };
        let addr = client.ip.map(crate::net::address_key).unwrap_or_default();
        let network = client.ip.map(crate::net::network_key).unwrap_or_default();
        // Whether the account knows this network. Asked for unknown logins too (of an id
        // no account has), so both cost the same query.
        let familiar = match client.ip {
            Some(_) => {
                let owner = user.as_ref().map_or("", |u| u.id.as_str());
                self.store
                    .sessions
                    .session_ips(owner, FAMILIAR_ADDRESSES)
                    .await?
                    .iter()
                    .filter_map(|known| known.parse::<std::net::IpAddr>().ok())
                    .any(|known| crate::net::network_key(known) == network)
            }
            None => false,
        };
        let account_network = format!("{account}\u{0}{network}");
        let mut counted: Vec<(&RateLimiter, &str)> = Vec::with_capacity(3);
        let mut limits = vec![
            (
                &self.rate.failures_per_account,
                account_network.as_str(),
                "login_failures_per_account",
            ),
            (
                &self.rate.failures_per_ip,
                addr.as_str(),
                "login_failures_per_ip",
            ),
        ];
        if !familiar {
            limits.push((
                &self.rate.failures_per_account_global,
                account.as_str(),
                "login_failures_per_account_global",
            ));
        }
        for (limiter, key, name) in limits {
            if let Err(l) = limiter.hit(key).await {
                for (limiter, key) in &counted {
                    limiter.unhit(key).await;
                }
                tracing::warn!(
                    user_id = user.as_ref().map(|u| u.id.as_str()),
                    client = %client.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    limit = name,
                    "login refused: too many failed attempts"
                );
                self.count_login("rate_limited");
                return Err(self.limited(name, l));
            }
            counted.push((limiter, key));
        }

        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let verified = password::verify(req.password, stored).await;
        match user {
            Some(user) if verified => {
                for (limiter, key) in &counted {
                    limiter.unhit(key).await;
                }
                if user.disabled_at.is_some() {
                    self.count_login("account_disabled");
                    return Err(AppError::new(
                        ErrorCode::AccountDisabled,
                        "this account is disabled",
                    ));
                }
                self.rate.failures_per_account.reset(&account_network).await;
                if let Err(e) = self.check_two_factor(&user, req.code.as_deref()).await {
                    self.count_login(e.code.as_str());
                    return Err(e);
                }
                self.count_login("success");
                Ok(user)
            }
            user => {
                tracing::warn!(
                    user_id = user.as_ref().map(|u| u.id.as_str()),
                    known_account = user.is_some(),
                    client = %client.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                    "login failed: wrong login or password"
                );
                self.count_login("invalid_credentials");
                Err(AppError::new(
                    ErrorCode::InvalidCredentials,
                    "wrong login or password",
                ))
            }
        }
    }

    /// Counts one login attempt by outcome in `palaver_login_attempts_total`.
    fn count_login(&self, result: &str) {
        self.metrics
            .login_attempts
            .get_or_create(&crate::metrics::Metrics::label("result", result))
            .inc();
    }

    /// Exchanges a refresh token for a new access and refresh pair; the presented token is
    /// spent. Presenting a spent token again after the grace window revokes its whole
    /// session (reuse detection, RFC 9700 §4.14.2) and closes its WebSockets.
    ///
    /// # Errors
    /// `401 unauthorized` (unknown, expired or revoked), `401 refresh_token_reused`,
    /// `409 refresh_conflict` (spent by a concurrent refresh within the grace window).
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, req: RefreshRequest) -> AppResult<AuthResponse> {
        let old_hash = Sha256::digest(req.refresh_token.trim().as_bytes()).to_vec();
        let (refresh_token, new_hash) = new_refresh_token();
        let outcome = self
            .store
            .sessions
            .rotate_refresh(
                &old_hash,
                &new_hash,
                &now_rfc3339(),
                &now_plus(self.auth.refresh_token_ttl_secs as i64),
                &now_plus(-(self.auth.refresh_grace_secs as i64)),
                &now_plus(-(self.auth.refresh_token_ttl_secs as i64)),
            )
            .await?;
        match outcome {
            Rotation::Rotated {
                session_id,
                user_id,
            } => {
                let user = self
                    .store
                    .users
                    .user_by_id(&user_id)
                    .await?
                    .ok_or_else(|| AppError::unauthorized("account no longer exists"))?;
                let access_token = self
                    .tokens
                    .issue(&user.id, &session_id)
                    .map_err(AppError::internal)?;
                Ok(AuthResponse {
                    user: user_to_wire(&user),
                    access_token,
                    refresh_token,
                    token_type: "Bearer".into(),
                    expires_in: self.tokens.ttl_secs(),
                })
            }
            Rotation::WithinGrace => Err(AppError::new(
                ErrorCode::RefreshConflict,
                "this refresh token was just used by another request; use the tokens it returned",
            )),
            Rotation::Reused {
                session_id,
                user_id,
            } => {
                tracing::warn!(%user_id, %session_id, "refresh token reuse: session revoked");
                self.end_connections(DisconnectTarget::Credential(
                    Credential::Session(session_id).hub_key(),
                ))
                .await;
                Err(AppError::new(
                    ErrorCode::RefreshTokenReused,
                    "this refresh token was already used: the session has been ended",
                ))
            }
            Rotation::Unknown => Err(AppError::unauthorized("invalid or expired refresh token")),
        }
    }

    /// Ends the caller's current session: its refresh token dies, its access tokens stop
    /// working at once, and its WebSockets close with 4001. With an API key, revokes that
    /// key.
    pub async fn logout(&self, actor: &Actor) -> AppResult<()> {
        match &actor.credential {
            Credential::Session(id) => {
                self.end_session(actor, id).await?;
            }
            Credential::ApiKey(id) => {
                self.revoke_api_key(actor, id).await?;
            }
        }
        Ok(())
    }

    /// The caller behind a presented credential: an access token (whose session must be
    /// live) or an API key (`plv_...`, not revoked or expired). Either way the account must
    /// be neither disabled nor deleted; this is checked on every request, so revocation
    /// takes effect at once.
    ///
    /// # Errors
    /// `401 unauthorized` for anything else.
    pub async fn authenticate(&self, token: &str) -> AppResult<Actor> {
        let refused = || AppError::unauthorized("invalid or expired credentials");
        let now = now_rfc3339();
        if let Some((key_id, secret)) = api_keys::parse(token) {
            let (key, state) = self
                .store
                .api_keys
                .api_key_state(key_id, &now)
                .await?
                .ok_or_else(refused)?;
            if !api_keys::secret_matches(secret, &key.secret_hash) || !state.active {
                return Err(refused());
            }
            if let Err(e) = self
                .store
                .api_keys
                .touch_api_key(&key.id, &now, &now_plus(-60))
                .await
            {
                tracing::warn!(error = %e, "recording API key use");
            }
            return Ok(Actor {
                user_id: state.user_id,
                role: state.role,
                credential: Credential::ApiKey(key.id),
            });
        }
        let claims = self.tokens.verify(token).ok_or_else(refused)?;
        let state = self
            .store
            .sessions
            .session_state(&claims.sid, &now)
            .await?
            .ok_or_else(refused)?;
        if !state.active || state.user_id != claims.sub {
            return Err(refused());
        }
        Ok(Actor {
            user_id: state.user_id,
            role: state.role,
            credential: Credential::Session(claims.sid),
        })
    }

    /// The caller's own profile.
    ///
    /// # Errors
    /// `401 unauthorized` if the account no longer exists.
    pub async fn me(&self, actor: &Actor) -> AppResult<User> {
        Ok(user_to_wire(&self.live_user(&actor.user_id).await?))
    }

    /// Changes the caller's password and ends every other session (and its WebSockets);
    /// with `revoke_api_keys`, also revokes every API key of the account (closing their
    /// WebSockets).
    ///
    /// # Errors
    /// `401 invalid_credentials` for a wrong current password; `422 validation_failed`
    /// (`new_password`) for one that breaks the policy.
    pub async fn change_password(
        &self,
        actor: &Actor,
        req: ChangePasswordRequest,
    ) -> AppResult<()> {
        let user = self.live_user(&actor.user_id).await?;
        if !password::verify(req.current_password, Some(user.password_hash.clone())).await {
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the current password is wrong",
            ));
        }
        Password::parse(&req.new_password, &self.limits).map_err(|e| AppError {
            field: Some("new_password".into()),
            ..e
        })?;
        password_policy::check_new_password(
            &req.new_password,
            &user.username,
            &user.email,
            &self.limits,
            "new_password",
        )?;
        let hash = password::hash(req.new_password)
            .await
            .map_err(AppError::internal)?;
        let now = now_rfc3339();
        self.store
            .users
            .update_password(&user.id, &hash, &now)
            .await?;
        // Reset links already mailed stop working.
        self.store
            .users
            .spend_email_tokens(&user.id, crate::store::EmailPurpose::Reset, &now)
            .await?;
        let ended = self
            .store
            .sessions
            .revoke_sessions(
                &user.id,
                actor.credential.session_id(),
                "password_changed",
                &now,
            )
            .await?;
        let ended_sessions = ended.len();
        for id in ended {
            self.end_connections(DisconnectTarget::Credential(
                Credential::Session(id).hub_key(),
            ))
            .await;
        }
        let mut revoked_keys = 0;
        if req.revoke_api_keys {
            let keys = self.store.api_keys.revoke_api_keys(&user.id, &now).await?;
            revoked_keys = keys.len();
            for id in keys {
                self.end_connections(DisconnectTarget::Credential(
                    Credential::ApiKey(id).hub_key(),
                ))
                .await;
            }
        }
        tracing::warn!(
            user_id = %user.id,
            ended_sessions,
            revoked_keys,
            "password changed: other sessions revoked"
        );
        Ok(())
    }

    /// Deletes the caller's account after checking the password: sessions, keys and
    /// WebSockets end at once; messages stay in their rooms, attributed to
    /// `deleted-<id prefix>`.
    ///
    /// # Errors
    /// `401 invalid_credentials` for a wrong password.
    pub async fn delete_account(&self, actor: &Actor, req: DeleteAccountRequest) -> AppResult<()> {
        let user = self.live_user(&actor.user_id).await?;
        if !password::verify(req.password, Some(user.password_hash.clone())).await {
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the password is wrong",
            ));
        }
        let deleted_username = format!("deleted-{}", user.id.replace('-', ""));
        // The rooms whose members are told the user left (the deletion removes the
        // memberships).
        let rooms = self.store.rooms.rooms_for_user(&user.id).await?;
        self.store
            .users
            .delete_user(&user.id, &deleted_username, &now_rfc3339())
            .await?;
        tracing::info!(user_id = %user.id, "account deleted");
        self.end_connections(DisconnectTarget::User(user.id.clone()))
            .await;
        for room in rooms {
            let _order = self.room_order(&room.room.id).await;
            let event = Event::MemberLeft(MemberLeft {
                room_id: room.room.id.clone(),
                user_id: user.id.clone(),
                reason: "left".to_owned(),
            });
            let membership = Membership::Left {
                user_id: user.id.clone(),
            };
            self.publish(Envelope::room(&room.room.id, event).membership(membership))
                .await;
        }
        Ok(())
    }

    /// A user that exists and is not deleted, or `401` (for the caller's own account).
    pub(crate) async fn live_user(&self, user_id: &str) -> AppResult<UserRow> {
        self.store
            .users
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or_else(|| AppError::unauthorized("account no longer exists"))
    }

    /// Closes the WebSockets `target` names, on every node.
    pub(crate) async fn end_connections(&self, target: DisconnectTarget) {
        if let Err(e) = self.broker.disconnect(target, SESSION_ENDED).await {
            tracing::error!(error = %e, "closing connections of an ended credential");
        }
    }

    /// Records a session for `user` and issues its token pair.
    pub(crate) async fn start_session(
        &self,
        user: &UserRow,
        client: ClientInfo,
    ) -> AppResult<AuthResponse> {
        let (refresh_token, refresh_token_hash) = new_refresh_token();
        let session = NewSession {
            id: new_id(),
            user_id: user.id.clone(),
            refresh_token_hash,
            device_name: client.device_name,
            ip: client.ip.map(|ip| ip.to_string()),
            created_at: now_rfc3339(),
            expires_at: now_plus(self.auth.refresh_token_ttl_secs as i64),
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
