//! The password policy for new passwords (registration and password changes), following
//! NIST SP 800-63B §3.1.1.2 ("Password Verifiers") and OWASP ASVS 5.0 V6.2 ("Password
//! Security"):
//!
//! - **Length** between [`Limits::password_min_chars`] and [`Limits::password_max_chars`]
//!   (8–128 by default), counted in Unicode code points, not bytes. Every character is
//!   allowed, spaces included, and the password is never truncated or trimmed before it is
//!   hashed: what the user typed is what is checked and stored.
//! - **No composition rules**: no required mix of upper case, digits or symbols, which
//!   both standards advise against.
//! - **Not context-specific**: a password that equals the username, the email address or
//!   the email's local part (the part before the `@`) is refused, ignoring case and
//!   surrounding white space.
//! - **Not a common password**: a password on a list of the 10,000 most common passwords
//!   is refused, ignoring case and surrounding white space.
//!
//! The list is `data/common-passwords.txt`, compiled into the binary with
//! [`include_str!`]: one lower-case entry per line, most common first. It is the top
//! 10,000 of the `passwords` frequency list of the `zxcvbn` crate 3.1.1 (MIT), which comes
//! from Dropbox's zxcvbn and was counted from Xato's 10-million-password corpus. Its
//! provenance, licence and the command that derived it are in
//! `data/COMMON-PASSWORDS-LICENSE.md`.
//!
//! Error messages are `422 validation_failed` naming the caller's field, and never repeat
//! the password.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::config::Limits;
use crate::error::{AppError, AppResult};

/// The shipped list of common passwords, one lower-case entry per line.
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords.txt");

/// The common-password list as a set, built on first use.
fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Checks a new password against the policy. `field` names the input field in the error
/// ("password" or "new_password").
///
/// `username` and `email` are the account's (for a registration, the ones submitted with
/// the password); an empty one is not compared.
///
/// # Errors
/// `422 validation_failed` naming `field` if the password is too short or too long, equals
/// the username, the email or the email's local part, or is a common password.
pub fn check_new_password(
    password: &str,
    username: &str,
    email: &str,
    limits: &Limits,
    field: &str,
) -> AppResult<()> {
    let label = field.replace('_', " ");

    let n = password.chars().count();
    if n < limits.password_min_chars || n > limits.password_max_chars {
        return Err(AppError::validation(
            field,
            format!(
                "{label} must be between {} and {} characters long",
                limits.password_min_chars, limits.password_max_chars
            ),
        ));
    }

    if matches_identity(password, username, email) {
        return Err(AppError::validation(
            field,
            format!("{label} must not be the same as your username or email address"),
        ));
    }

    if is_common(password) {
        return Err(AppError::validation(
            field,
            format!(
                "{label} is one of the most commonly used passwords and easy to guess; \
                 choose a different one"
            ),
        ));
    }

    Ok(())
}

/// Whether `password` is on the shipped common-password list (case-insensitive; white
/// space around the password is ignored too).
pub fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    let set = common_passwords();
    set.contains(lower.as_str()) || set.contains(lower.trim())
}

/// Whether `password`, trimmed and lower-cased, equals the username, the email address or
/// the email's local part, each trimmed and lower-cased. Empty values never match.
fn matches_identity(password: &str, username: &str, email: &str) -> bool {
    let candidate = password.trim().to_lowercase();
    if candidate.is_empty() {
        return false;
    }
    let email = email.trim();
    let local_part = email.rsplit_once('@').map(|(local, _)| local);
    [Some(username), Some(email), local_part]
        .into_iter()
        .flatten()
        .map(|value| value.trim().to_lowercase())
        .any(|value| !value.is_empty() && value == candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "alice_smith";
    const EMAIL: &str = "Bob.Jones1987@Example.com";

    fn check(password: &str) -> AppResult<()> {
        check_new_password(password, USER, EMAIL, &Limits::default(), "password")
    }

    fn field(e: AppError) -> String {
        e.field.expect("validation errors name a field")
    }

    #[test]
    fn list_is_large_lower_case_trimmed_and_unique() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.len() >= 3000, "only {} entries", lines.len());
        assert!(lines.len() <= 10_000, "{} entries", lines.len());
        assert_eq!(
            common_passwords().len(),
            lines.len(),
            "duplicates or blanks"
        );
        for line in lines {
            assert!(!line.is_empty());
            assert_eq!(line, line.trim(), "untrimmed entry");
            assert_eq!(line, line.to_lowercase(), "entry not lower-case");
        }
    }

    #[test]
    fn common_passwords_are_rejected() {
        for pw in [
            "password",
            "12345678",
            "qwertyuiop",
            "iloveyou",
            "password1",
        ] {
            assert!(is_common(pw), "{pw} should be on the list");
            let e = check(pw).unwrap_err();
            assert_eq!(e.code, palaver_protocol::ErrorCode::ValidationFailed);
            assert_eq!(field(e), "password");
        }
    }

    #[test]
    fn common_check_ignores_case_and_surrounding_space() {
        assert!(is_common("PassWord"));
        assert!(is_common("QWERTYUIOP"));
        assert!(is_common(" password "));
        assert!(check("PASSWORD").is_err());
        assert!(check("  Password1  ").is_err());
    }

    #[test]
    fn random_looking_long_password_is_accepted() {
        assert!(!is_common("vT7#qLm2-Wx9!zRk4pB"));
        assert!(check("vT7#qLm2-Wx9!zRk4pB").is_ok());
        assert!(check("correct horse battery staple").is_ok());
    }

    #[test]
    fn password_equal_to_username_is_rejected() {
        assert_eq!(field(check("alice_smith").unwrap_err()), "password");
        assert!(check("Alice_Smith").is_err());
        assert!(check("  ALICE_SMITH \t").is_err());
        assert!(check("alice_smith2").is_ok(), "only equality is refused");
    }

    #[test]
    fn password_equal_to_email_or_local_part_is_rejected() {
        assert!(check("bob.jones1987@example.com").is_err());
        assert!(check("BOB.JONES1987@EXAMPLE.COM").is_err());
        assert!(check("bob.jones1987").is_err());
        assert!(check("Bob.Jones1987").is_err());
        assert!(check(" bob.jones1987 ").is_err());
        assert!(
            check("example.com").is_ok(),
            "the domain alone is not refused"
        );
    }

    #[test]
    fn empty_identity_values_are_not_compared() {
        let l = Limits::default();
        assert!(check_new_password("        ", "", "", &l, "password").is_ok());
        assert!(check_new_password("vT7#qLm2-Wx9", "", "", &l, "password").is_ok());
    }

    #[test]
    fn length_bounds_use_default_limits() {
        let e = check("tq8#vzk").unwrap_err();
        assert_eq!(field(e), "password");
        assert!(check("tq8#vzk2").is_ok());
        assert!(check(&"x".repeat(128)).is_ok());
        let e = check(&"x".repeat(129)).unwrap_err();
        assert_eq!(field(e), "password");
    }

    #[test]
    fn length_counts_code_points_not_bytes() {
        let eight = "éééééééé";
        assert_eq!(eight.len(), 16);
        assert!(!is_common(eight));
        assert!(check(eight).is_ok());
        assert!(check("ééééééé").is_err(), "7 characters, 14 bytes");
        assert!(check(&"é".repeat(128)).is_ok(), "256 bytes");
        assert!(check(&"é".repeat(129)).is_err());
    }

    #[test]
    fn length_bounds_come_from_config() {
        let l = Limits {
            password_min_chars: 12,
            password_max_chars: 16,
            ..Limits::default()
        };
        assert!(check_new_password("vT7#qLm2-Wx", USER, EMAIL, &l, "password").is_err());
        assert!(check_new_password("vT7#qLm2-Wx9", USER, EMAIL, &l, "password").is_ok());
        assert!(check_new_password("vT7#qLm2-Wx9!zRk4", USER, EMAIL, &l, "password").is_err());
    }

    #[test]
    fn errors_name_the_given_field() {
        let l = Limits::default();
        for pw in ["short", "alice_smith", "bob.jones1987", "password"] {
            let e = check_new_password(pw, USER, EMAIL, &l, "new_password").unwrap_err();
            assert_eq!(field(e), "new_password", "for {pw:?}");
        }
    }

    #[test]
    fn errors_do_not_echo_the_password() {
        let l = Limits::default();
        for pw in [
            "s3cr",
            "alice_smith",
            "bob.jones1987",
            "sunshine",
            &"z".repeat(200),
        ] {
            let e = check_new_password(pw, USER, EMAIL, &l, "password").unwrap_err();
            assert!(!e.message.contains(pw), "message {:?} echoes it", e.message);
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn messages_are_human_readable() {
        let l = Limits::default();
        let e = check_new_password("short", USER, EMAIL, &l, "new_password").unwrap_err();
        assert_eq!(
            e.message,
            "new password must be between 8 and 128 characters long"
        );
    }
}
