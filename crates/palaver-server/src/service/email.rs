//! What e-mail adds to accounts (`[email]`, `docs/email.md`): verifying an address,
//! resetting a forgotten password, changing the address, and registration that does not
//! tell whether an address is registered.
//!
//! Every mailed link carries a single-use token: 32 random bytes (base64url), stored only
//! as its SHA-256 hash with the account, its purpose and the address it was mailed to
//! ([`crate::store::EmailToken`]); verification links work for `email.verify_ttl_secs`
//! (24 hours by default), reset links for `email.reset_ttl_secs` (30 minutes). Follows
//! OWASP ASVS 5.0 V6.4 (authentication factor lifecycle and recovery) and the OWASP
//! Forgot Password cheat sheet: the same answer whether or not the account exists, a
//! reset mailed only to a verified address, every session ended by a reset.
//!
//! Without `[email]` every route here answers `409 email_disabled`, and registration and
//! e-mail change keep their immediate answers (`409 email_taken` included: with no mail
//! to tell the owner, hiding the conflict would leave the person registering without an
//! explanation, and usernames are public anyway).

use palaver_protocol::rest::{
    ChangeEmailRequest, CheckInbox, EmailVerified, PasswordResetConfirm, PasswordResetRequest,
    RegisterRequest, ResendVerificationRequest, VerifyEmailRequest,
};
use palaver_protocol::{ErrorCode, Role, User};
use sha2::{Digest, Sha256};

use super::accounts::ClientInfo;
use super::validate::{Email, Password};
use super::{now_plus, now_rfc3339, password_policy, Service};
use crate::auth::tokens::new_refresh_token;
use crate::auth::{password, Actor, Credential};
use crate::broker::DisconnectTarget;
use crate::email::{Mail, Mailer};
use crate::error::{AppError, AppResult};
use crate::store::{EmailPurpose, EmailToken, StoreError, TakenEmailToken, UserRow};

/// Longest token accepted, in characters (ours are 43).
const TOKEN_MAX_CHARS: usize = 128;

/// `409 email_disabled`.
fn email_disabled() -> AppError {
    AppError::new(
        ErrorCode::EmailDisabled,
        "this server does not send e-mail (no [email] configuration)",
    )
}

/// `400 invalid_token`.
fn invalid_token() -> AppError {
    AppError::new(
        ErrorCode::InvalidToken,
        "this link is not valid: it was already used, replaced, or is not for this",
    )
}

/// `410 token_expired`.
fn token_expired() -> AppError {
    AppError::new(
        ErrorCode::TokenExpired,
        "this link has expired: ask for a new one",
    )
}

/// The SHA-256 of a presented token, or `400 invalid_token` for one that cannot be ours.
fn token_hash(token: &str) -> AppResult<Vec<u8>> {
    let token = token.trim();
    if token.is_empty() || token.len() > TOKEN_MAX_CHARS {
        return Err(invalid_token());
    }
    Ok(Sha256::digest(token.as_bytes()).to_vec())
}

impl Service {
    /// The mailer, or `409 email_disabled`.
    fn mailer(&self) -> AppResult<&Mailer> {
        self.mailer.as_deref().ok_or_else(email_disabled)
    }

    /// Whether this server sends e-mail (`[email]` is set).
    pub fn email_enabled(&self) -> bool {
        self.mailer.is_some()
    }

    /// Counts one mail-sending request against `emails_per_ip` (the client's address) and
    /// `emails_per_address` (`address`: the normalised address or login it names,
    /// whether or not an account has it).
    ///
    /// # Errors
    /// `429 rate_limited`.
    async fn count_mail_request(&self, client: &ClientInfo, address: &str) -> AppResult<()> {
        if let Some(ip) = client.ip {
            self.rate
                .emails_per_ip
                .hit(&crate::net::address_key(ip))
                .await
                .map_err(|l| self.limited("emails_per_ip", l))?;
        }
        self.rate
            .emails_per_address
            .hit(address)
            .await
            .map_err(|l| self.limited("emails_per_address", l))
    }

    /// Stores a new token of `purpose` for `user`, for `address`, and mails it there.
    async fn mail_token(
        &self,
        mailer: &Mailer,
        user: &UserRow,
        purpose: EmailPurpose,
        address: &str,
    ) -> AppResult<()> {
        let ttl_secs = match purpose {
            EmailPurpose::Reset => mailer.reset_ttl_secs,
            EmailPurpose::Verify | EmailPurpose::ChangeEmail => mailer.verify_ttl_secs,
        };
        let (token, hash) = new_refresh_token();
        let row = EmailToken {
            user_id: user.id.clone(),
            purpose,
            address: address.to_owned(),
            created_at: now_rfc3339(),
            expires_at: now_plus(ttl_secs as i64),
        };
        self.store.users.create_email_token(&hash, &row).await?;
        let username = user.username.clone();
        let mail = match purpose {
            EmailPurpose::Verify => Mail::VerifyAccount {
                username,
                token,
                ttl_secs,
            },
            EmailPurpose::ChangeEmail => Mail::ChangeEmail {
                username,
                token,
                ttl_secs,
            },
            EmailPurpose::Reset => Mail::PasswordReset {
                username,
                token,
                ttl_secs,
            },
        };
        mailer.send(address, mail);
        Ok(())
    }

    /// Registration when the server sends e-mail: validates as [`Service::new_user`]
    /// does, then either creates the account unverified and mails it a verification
    /// link, or, if the address is taken, creates nothing and mails the address's owner
    /// that someone tried. Both take the same steps up to the insert (the password is
    /// hashed either way) and answer the same.
    ///
    /// # Errors
    /// `409 username_taken` (usernames are public), `422 validation_failed`,
    /// `429 rate_limited` (`registrations_per_ip` by the caller's [`Service::register`],
    /// then `emails_per_ip`, `emails_per_address`).
    pub(crate) async fn register_by_email(
        &self,
        req: RegisterRequest,
        client: &ClientInfo,
    ) -> AppResult<CheckInbox> {
        let mailer = self.mailer()?;
        let email = Email::parse(&req.email)?;
        let username = req.username.clone();
        self.count_mail_request(client, email.as_str()).await?;
        match self.new_user(req, Role::User).await {
            Ok(user) => {
                self.mail_token(mailer, &user, EmailPurpose::Verify, &user.email)
                    .await?;
                Ok(CheckInbox::new())
            }
            Err(e) if e.code == ErrorCode::EmailTaken => {
                // A taken username is said (usernames are public), even when the address
                // is taken too.
                if self.store.users.user_by_login(&username).await?.is_some() {
                    return Err(AppError::from(StoreError::Conflict("username")));
                }
                tracing::info!("registration with a registered address: owner told by mail");
                mailer.send(email.as_str(), Mail::RegistrationAttempt);
                Ok(CheckInbox::new())
            }
            Err(e) => Err(e),
        }
    }

    /// After a correct password, with e-mail on: an account whose address is not verified
    /// is refused and mailed a fresh verification link (within `emails_per_address`; a
    /// refused mail is only logged).
    ///
    /// # Errors
    /// `403 email_not_verified`.
    pub(crate) async fn require_verified(&self, user: &UserRow) -> AppResult<()> {
        let Some(mailer) = self.mailer.as_deref() else {
            return Ok(());
        };
        if user.email_verified_at.is_some() {
            return Ok(());
        }
        if self.rate.emails_per_address.hit(&user.email).await.is_ok() {
            self.mail_token(mailer, user, EmailPurpose::Verify, &user.email)
                .await?;
        } else {
            tracing::info!(user_id = %user.id, "verification mail not sent: emails_per_address");
        }
        Err(AppError::new(
            ErrorCode::EmailNotVerified,
            "confirm your e-mail address first: a link was mailed to it",
        ))
    }

    /// Mails a new verification link to the account `req.login` names (username or
    /// address), if it exists, is live, and its address is not verified; answers the same
    /// either way.
    ///
    /// # Errors
    /// `409 email_disabled`; `429 rate_limited` (`emails_per_ip`, `emails_per_address`
    /// keyed by the login text).
    pub async fn resend_verification(
        &self,
        req: ResendVerificationRequest,
        client: ClientInfo,
    ) -> AppResult<CheckInbox> {
        let mailer = self.mailer()?;
        let login = req.login.trim().to_lowercase();
        self.count_mail_request(&client, &login).await?;
        if login.is_empty() || login.len() > 254 {
            return Ok(CheckInbox::new());
        }
        let user = self.store.users.user_by_login(&login).await?;
        if let Some(user) = user.filter(|u| u.disabled_at.is_none()) {
            if user.email_verified_at.is_none() {
                self.mail_token(mailer, &user, EmailPurpose::Verify, &user.email)
                    .await?;
            }
        }
        Ok(CheckInbox::new())
    }

    /// Uses a verification link: a registration (or login) link marks the account's
    /// address verified; an e-mail change link makes its address the account's, verified,
    /// and tells the previous address. Either way the token is spent. Does not log in.
    ///
    /// # Errors
    /// `409 email_disabled`; `400 invalid_token` (unknown, used, or bound to an address
    /// the account no longer has); `410 token_expired`; `409 email_taken` (an e-mail
    /// change to an address another account took meanwhile).
    pub async fn verify_email(&self, req: VerifyEmailRequest) -> AppResult<EmailVerified> {
        let mailer = self.mailer()?;
        let hash = token_hash(&req.token)?;
        let now = now_rfc3339();
        let users = &self.store.users;
        let mut expired = false;
        for purpose in [EmailPurpose::Verify, EmailPurpose::ChangeEmail] {
            let token = match users.take_email_token(&hash, purpose, &now).await? {
                TakenEmailToken::Taken(token) => token,
                TakenEmailToken::Expired => {
                    expired = true;
                    continue;
                }
                TakenEmailToken::Unknown => continue,
            };
            let user = users
                .user_by_id(&token.user_id)
                .await?
                .filter(|u| u.deleted_at.is_none() && u.disabled_at.is_none())
                .ok_or_else(invalid_token)?;
            if purpose == EmailPurpose::Verify {
                if !users.verify_email(&user.id, &token.address, &now).await? {
                    return Err(invalid_token());
                }
                tracing::info!(user_id = %user.id, "e-mail address verified");
            } else {
                // `409 email_taken` if another account took the address meanwhile.
                if !users
                    .set_email(&user.id, &token.address, Some(&now), &now)
                    .await?
                {
                    return Err(invalid_token());
                }
                // Links mailed to the old address, or for other pending changes, die.
                for purpose in [
                    EmailPurpose::ChangeEmail,
                    EmailPurpose::Reset,
                    EmailPurpose::Verify,
                ] {
                    users.spend_email_tokens(&user.id, purpose, &now).await?;
                }
                tracing::warn!(user_id = %user.id, "e-mail address changed");
                mailer.send(
                    &user.email,
                    Mail::EmailChanged {
                        username: user.username.clone(),
                        new_address: token.address.clone(),
                    },
                );
            }
            return Ok(EmailVerified {
                status: "verified".into(),
                email: token.address,
            });
        }
        Err(if expired {
            token_expired()
        } else {
            invalid_token()
        })
    }

    /// Mails a password reset link to `req.email` if it is the verified address of a
    /// live, enabled account; answers the same either way.
    ///
    /// # Errors
    /// `409 email_disabled`; `422 validation_failed` (`email` not an address);
    /// `429 rate_limited` (`emails_per_ip`, `emails_per_address`).
    pub async fn request_password_reset(
        &self,
        req: PasswordResetRequest,
        client: ClientInfo,
    ) -> AppResult<CheckInbox> {
        let mailer = self.mailer()?;
        let email = Email::parse(&req.email)?;
        self.count_mail_request(&client, email.as_str()).await?;
        let user = self.store.users.user_by_login(email.as_str()).await?;
        match user {
            Some(user)
                if user.email == email.as_str()
                    && user.disabled_at.is_none()
                    && user.email_verified_at.is_some() =>
            {
                self.mail_token(mailer, &user, EmailPurpose::Reset, &user.email)
                    .await?;
            }
            _ => tracing::info!("password reset for no verified address: nothing mailed"),
        }
        Ok(CheckInbox::new())
    }

    /// Uses a reset link: sets the new password, spends every reset link of the account,
    /// ends every session of the account (their WebSockets close with 4001; API keys
    /// stay). The password is checked before the token is spent, so a refused password
    /// leaves the link usable.
    ///
    /// # Errors
    /// `409 email_disabled`; `400 invalid_token` (unknown, used, or mailed to an address
    /// the account no longer has); `410 token_expired`; `422 validation_failed`
    /// (`new_password`, including the password policy).
    pub async fn confirm_password_reset(&self, req: PasswordResetConfirm) -> AppResult<()> {
        self.mailer()?;
        let hash = token_hash(&req.token)?;
        let users = &self.store.users;
        let now = now_rfc3339();
        let token = match users.email_token(&hash, EmailPurpose::Reset, &now).await? {
            TakenEmailToken::Taken(token) => token,
            TakenEmailToken::Expired => return Err(token_expired()),
            TakenEmailToken::Unknown => return Err(invalid_token()),
        };
        let user = users
            .user_by_id(&token.user_id)
            .await?
            .filter(|u| {
                u.deleted_at.is_none() && u.disabled_at.is_none() && u.email == token.address
            })
            .ok_or_else(invalid_token)?;
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
        let password_hash = password::hash(req.new_password)
            .await
            .map_err(AppError::internal)?;
        // Spent here, once: of concurrent confirmations only one goes on.
        match users
            .take_email_token(&hash, EmailPurpose::Reset, &now)
            .await?
        {
            TakenEmailToken::Taken(_) => {}
            TakenEmailToken::Expired => return Err(token_expired()),
            TakenEmailToken::Unknown => return Err(invalid_token()),
        }
        users
            .update_password(&user.id, &password_hash, &now)
            .await?;
        users
            .spend_email_tokens(&user.id, EmailPurpose::Reset, &now)
            .await?;
        let ended = self
            .store
            .sessions
            .revoke_sessions(&user.id, None, "password_reset", &now)
            .await?;
        let ended_sessions = ended.len();
        for id in ended {
            self.end_connections(DisconnectTarget::Credential(
                Credential::Session(id).hub_key(),
            ))
            .await;
        }
        tracing::warn!(
            user_id = %user.id,
            ended_sessions,
            "password reset by e-mail: every session revoked"
        );
        Ok(())
    }

    /// Changes the caller's address after checking the password. Without e-mail: at once
    /// (unverified). With e-mail: nothing changes yet; the new address is mailed a link
    /// (or, if another account has it, its owner is told someone tried), and the old
    /// address stays the account's until the link is used ([`Service::verify_email`]).
    ///
    /// # Errors
    /// `401 invalid_credentials` (wrong password); `422 validation_failed` (`email`, also
    /// when it is already the account's); `409 email_taken` (only without e-mail);
    /// `429 rate_limited` (with e-mail: `emails_per_ip`, `emails_per_address`).
    pub async fn change_email(
        &self,
        actor: &Actor,
        req: ChangeEmailRequest,
        client: ClientInfo,
    ) -> AppResult<EmailChange> {
        let user = self.live_user(&actor.user_id).await?;
        if !password::verify(req.password, Some(user.password_hash.clone())).await {
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the password is wrong",
            ));
        }
        let email = Email::parse(&req.email)?;
        if email.as_str() == user.email {
            return Err(AppError::validation(
                "email",
                "that is already your address",
            ));
        }
        let now = now_rfc3339();
        let Some(mailer) = self.mailer.as_deref() else {
            self.store
                .users
                .set_email(&user.id, email.as_str(), None, &now)
                .await?;
            tracing::warn!(user_id = %user.id, "e-mail address changed");
            return Ok(EmailChange::Changed(Box::new(self.me(actor).await?)));
        };
        self.count_mail_request(&client, email.as_str()).await?;
        match self.store.users.user_by_login(email.as_str()).await? {
            Some(owner) if owner.id != user.id => {
                mailer.send(email.as_str(), Mail::ChangeAttempt);
            }
            _ => {
                self.mail_token(mailer, &user, EmailPurpose::ChangeEmail, email.as_str())
                    .await?;
            }
        }
        Ok(EmailChange::Pending(CheckInbox::new()))
    }
}

/// What [`Service::change_email`] did.
#[derive(Debug)]
pub enum EmailChange {
    /// Without e-mail: changed; the caller's profile.
    Changed(Box<User>),
    /// With e-mail: a link went to the new address (or its owner was told).
    Pending(CheckInbox),
}
