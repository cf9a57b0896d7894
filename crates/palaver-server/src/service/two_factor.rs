//! Two-factor codes for password logins: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30-second
//! steps, one step of clock skew either way) through `totp-rs`, with the setup's QR code
//! rendered by the server as SVG (`qrcode`), and 10 single-use recovery codes shown once
//! and stored as SHA-256 hashes (OWASP ASVS 5.0 V6.5).
//!
//! - Setup: [`Service::begin_two_factor`] (password again) hands out a secret, its
//!   `otpauth://` URI and QR code; nothing changes at login until
//!   [`Service::confirm_two_factor`] gets a code made with it, which enables the codes
//!   and returns the recovery codes.
//! - Login: [`Service::check_two_factor`], called by every password check
//!   ([`Service::check_login`]) once the password is right: a code is required, each
//!   time step's code is accepted once (RFC 6238 §5.2), a recovery code once. API keys and
//!   single sign-on are not password logins and are not affected.
//! - Wrong codes count against `rate_limits.two_factor_failures_per_account`; a right
//!   one refunds its count.
//! - [`Service::disable_two_factor`] needs a current code or a recovery code.
//!
//! The secret is kept in the database as it is (an authenticator needs it back): the
//! data directory or database holds it as it holds password hashes.

use palaver_protocol::rest::{RecoveryCodes, TwoFactorSetup, TwoFactorStatus};
use palaver_protocol::ErrorCode;
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use totp_rs::{Algorithm, Secret, TOTP};

use super::{now_rfc3339, Service};
use crate::auth::{password, Actor};
use crate::error::{AppError, AppResult};
use crate::store::UserRow;

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds of a time step.
pub const STEP_SECS: u64 = 30;
/// Bytes of a shared secret (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes made at once.
pub const RECOVERY_CODES: usize = 10;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Palaver";

/// The generator for `secret` labelled `account`.
fn generator(secret: &[u8], account: &str) -> AppResult<TOTP> {
    TOTP::new(
        Algorithm::SHA1,
        DIGITS,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some(ISSUER.to_owned()),
        account.to_owned(),
    )
    .map_err(AppError::internal)
}

/// The current time step (seconds since the Unix epoch / [`STEP_SECS`]).
fn current_step() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp() / STEP_SECS.cast_signed()
}

/// The time step (now, one before or one after) whose code is `code`, if any.
fn matching_step(totp: &TOTP, code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut found = None;
    for step in [now - 1, now, now + 1] {
        let Ok(at) = u64::try_from(step) else {
            continue;
        };
        let expected = totp.generate(at * STEP_SECS);
        // Every candidate is compared, in constant time.
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

/// The canonical form of a recovery code as typed: lower case, without spaces or dashes.
fn normalize_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// SHA-256 of a recovery code's canonical form.
fn recovery_hash(code: &str) -> Vec<u8> {
    Sha256::digest(normalize_recovery(code).as_bytes()).to_vec()
}

/// A new recovery code: 10 characters of the RFC 4648 base32 alphabet (50 bits), shown as
/// `xxxxx-xxxxx`.
fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 10];
    OsRng.fill_bytes(&mut bytes);
    let chars: String = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

impl Service {
    /// Whether the caller has two-factor codes enabled, and how many recovery codes are
    /// left.
    ///
    /// # Errors
    /// `500 internal` if the store fails.
    pub async fn two_factor_status(&self, actor: &Actor) -> AppResult<TwoFactorStatus> {
        let enabled = self
            .store
            .users
            .two_factor(&actor.user_id)
            .await?
            .is_some_and(|row| row.enabled_at.is_some());
        let recovery_codes_left = if enabled {
            self.store.users.recovery_codes_left(&actor.user_id).await?
        } else {
            0
        };
        Ok(TwoFactorStatus {
            enabled,
            recovery_codes_left,
        })
    }

    /// Starts a setup after checking the caller's password again: a new secret (any
    /// earlier unconfirmed one is replaced), its `otpauth://` URI and its QR code as SVG.
    ///
    /// # Errors
    /// `401 invalid_credentials` (wrong password, or an account without one);
    /// `409 conflict` (already enabled: disable first); `429 rate_limited`.
    pub async fn begin_two_factor(
        &self,
        actor: &Actor,
        current_password: String,
    ) -> AppResult<TwoFactorSetup> {
        let user = self.live_user(&actor.user_id).await?;
        let key = format!("id:{}", user.id);
        self.rate
            .two_factor_failures
            .hit(&key)
            .await
            .map_err(|l| self.limited("two_factor_failures_per_account", l))?;
        if !password::verify(current_password, Some(user.password_hash.clone())).await {
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the password is wrong",
            ));
        }
        self.rate.two_factor_failures.unhit(&key).await;
        let mut secret = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut secret);
        if !self
            .store
            .users
            .begin_two_factor(&user.id, &secret, &now_rfc3339())
            .await?
        {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "two-factor codes are enabled already: disable them first",
            ));
        }
        let totp = generator(&secret, &user.username)?;
        let otpauth_uri = totp.get_url();
        let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
            .map_err(AppError::internal)?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(TwoFactorSetup {
            secret: Secret::Raw(secret).to_encoded().to_string(),
            otpauth_uri,
            qr_svg,
        })
    }

    /// Confirms the setup with a code made from its secret: two-factor codes are enabled
    /// from now on, and the answer holds the recovery codes (the only time they are
    /// shown).
    ///
    /// # Errors
    /// `409 conflict` (no setup begun, or enabled already); `401 invalid_two_factor_code`;
    /// `429 rate_limited`.
    pub async fn confirm_two_factor(&self, actor: &Actor, code: &str) -> AppResult<RecoveryCodes> {
        let user = self.live_user(&actor.user_id).await?;
        let row = self
            .store
            .users
            .two_factor(&user.id)
            .await?
            .filter(|row| row.enabled_at.is_none())
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::Conflict,
                    "no two-factor setup is waiting for a code: begin one first",
                )
            })?;
        let key = format!("id:{}", user.id);
        self.rate
            .two_factor_failures
            .hit(&key)
            .await
            .map_err(|l| self.limited("two_factor_failures_per_account", l))?;
        let totp = generator(&row.secret, &user.username)?;
        let step = matching_step(&totp, code, current_step()).ok_or_else(wrong_code)?;
        self.rate.two_factor_failures.unhit(&key).await;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| recovery_hash(c)).collect();
        if !self
            .store
            .users
            .enable_two_factor(&user.id, &row.secret, step, &hashes, &now_rfc3339())
            .await?
        {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "the setup changed meanwhile: begin again",
            ));
        }
        tracing::warn!(user_id = %user.id, "two-factor codes enabled");
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// Turns two-factor codes off, given a current code or a recovery code.
    ///
    /// # Errors
    /// `409 conflict` (not enabled); `401 invalid_two_factor_code`; `429 rate_limited`.
    pub async fn disable_two_factor(&self, actor: &Actor, code: &str) -> AppResult<()> {
        let user = self.live_user(&actor.user_id).await?;
        if !self.two_factor_status(actor).await?.enabled {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "two-factor codes are not enabled",
            ));
        }
        self.check_two_factor(&user, Some(code)).await?;
        self.store.users.disable_two_factor(&user.id).await?;
        tracing::warn!(user_id = %user.id, "two-factor codes disabled");
        Ok(())
    }

    /// The second factor of a password login of `user` whose password was right: nothing
    /// if two-factor codes are not enabled; else `code` must be a current TOTP code not
    /// used before, or an unused recovery code (used up here).
    ///
    /// # Errors
    /// `401 two_factor_required` (no code); `401 invalid_two_factor_code`;
    /// `429 rate_limited` (`rate_limits.two_factor_failures_per_account`).
    pub async fn check_two_factor(&self, user: &UserRow, code: Option<&str>) -> AppResult<()> {
        let Some(row) = self
            .store
            .users
            .two_factor(&user.id)
            .await?
            .filter(|row| row.enabled_at.is_some())
        else {
            return Ok(());
        };
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Err(AppError::new(
                ErrorCode::TwoFactorRequired,
                "this account needs a two-factor code: send the login again with `code`",
            ));
        };
        let key = format!("id:{}", user.id);
        self.rate
            .two_factor_failures
            .hit(&key)
            .await
            .map_err(|l| self.limited("two_factor_failures_per_account", l))?;
        let totp = generator(&row.secret, &user.username)?;
        let accepted = match matching_step(&totp, code, current_step()) {
            Some(step) => self.store.users.use_two_factor_step(&user.id, step).await?,
            None => {
                self.store
                    .users
                    .use_recovery_code(&user.id, &recovery_hash(code), &now_rfc3339())
                    .await?
            }
        };
        if !accepted {
            tracing::warn!(user_id = %user.id, "two-factor code refused");
            return Err(wrong_code());
        }
        self.rate.two_factor_failures.unhit(&key).await;
        Ok(())
    }
}

fn wrong_code() -> AppError {
    AppError::new(
        ErrorCode::InvalidTwoFactorCode,
        "the two-factor code is wrong, expired or already used",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 test vectors (8 digits there; 6 digits here are their
    /// last six, as RFC 4226 truncation gives).
    #[test]
    fn codes_follow_rfc_6238_test_vectors() {
        let totp = generator(b"12345678901234567890", "alice").unwrap();
        for (time, eight) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp.generate(time), eight[2..], "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_the_neighbouring_ones_only() {
        let totp = generator(b"12345678901234567890", "alice").unwrap();
        let now = 1_234_567_890 / 30;
        let at = |step: i64| totp.generate(u64::try_from(step).unwrap() * 30);
        assert_eq!(matching_step(&totp, &at(now), now), Some(now));
        assert_eq!(matching_step(&totp, &at(now - 1), now), Some(now - 1));
        assert_eq!(matching_step(&totp, &at(now + 1), now), Some(now + 1));
        assert_eq!(matching_step(&totp, &at(now - 2), now), None);
        assert_eq!(
            matching_step(&totp, &format!(" {} ", at(now)), now),
            Some(now)
        );
        for bad in ["", "12345", "1234567", "abcdef", "12 345"] {
            assert_eq!(matching_step(&totp, bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn recovery_codes_are_random_and_match_however_typed() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert_ne!(code, new_recovery_code());
        let typed = code.to_uppercase().replace('-', " ");
        assert_eq!(recovery_hash(&typed), recovery_hash(&code));
        assert_ne!(recovery_hash(&new_recovery_code()), recovery_hash(&code));
    }

    #[test]
    fn the_setup_uri_is_the_key_uri_format() {
        let totp = generator(b"12345678901234567890", "alice").unwrap();
        let uri = totp.get_url();
        assert!(uri.starts_with("otpauth://totp/Palaver:alice?"), "{uri}");
        assert!(
            uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{uri}"
        );
        assert!(uri.contains("issuer=Palaver"), "{uri}");
    }
}
