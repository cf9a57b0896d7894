//! Input validated at the edge into newtypes: once a value is a [`Username`], it is known
//! to be well-formed. Every failure is `422 validation_failed` naming the field.
//! Lengths are counted in Unicode scalar values, with bounds from [`Limits`].

use crate::config::Limits;
use crate::error::{AppError, AppResult};

/// 3–32 (configurable) characters of `[a-z0-9_.-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates a username as given (no case folding: `Alice` is refused).
    pub fn parse(raw: &str, limits: &Limits) -> AppResult<Username> {
        let n = raw.chars().count();
        let charset_ok = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
        if n < limits.username_min_chars || n > limits.username_max_chars || !charset_ok {
            return Err(AppError::validation(
                "username",
                format!(
                    "username must be {}-{} characters of a-z, 0-9, '_', '.' or '-'",
                    limits.username_min_chars, limits.username_max_chars
                ),
            ));
        }
        Ok(Username(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address (RFC 5322 addr-spec, as checked by the `email_address` crate),
/// at most 254 characters (RFC 5321), lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates and lower-cases an email address.
    pub fn parse(raw: &str) -> AppResult<Email> {
        let trimmed = raw.trim();
        let valid = trimmed.len() <= 254
            && email_address::EmailAddress::parse_with_options(
                trimmed,
                email_address::Options::default()
                    .without_display_text()
                    .without_domain_literal(),
            )
            .is_ok()
            && trimmed
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.contains('.'));
        if !valid {
            return Err(AppError::validation(
                "email",
                "email must be a valid address like name@example.com",
            ));
        }
        Ok(Email(trimmed.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// 8–128 (configurable) characters. Never logged.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks the length of a new password (any characters are allowed, per OWASP ASVS).
    pub fn parse(raw: &str, limits: &Limits) -> AppResult<Password> {
        let n = raw.chars().count();
        if n < limits.password_min_chars || n > limits.password_max_chars {
            return Err(AppError::validation(
                "password",
                format!(
                    "password must be {}-{} characters",
                    limits.password_min_chars, limits.password_max_chars
                ),
            ));
        }
        Ok(Password(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// 1–100 (configurable) characters after trimming surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

impl RoomName {
    pub fn parse(raw: &str, limits: &Limits) -> AppResult<RoomName> {
        let trimmed = raw.trim();
        let n = trimmed.chars().count();
        if n == 0 || n > limits.room_name_max_chars || trimmed.chars().any(char::is_control) {
            return Err(AppError::validation(
                "name",
                format!(
                    "name must be 1-{} characters with no control characters",
                    limits.room_name_max_chars
                ),
            ));
        }
        Ok(RoomName(trimmed.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An optional room topic, at most `room_topic_max_chars`; blank becomes `None`.
pub fn parse_topic(raw: Option<&str>, limits: &Limits) -> AppResult<Option<String>> {
    let Some(trimmed) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    if trimmed.chars().count() > limits.room_topic_max_chars {
        return Err(AppError::validation(
            "topic",
            format!(
                "topic must be at most {} characters",
                limits.room_topic_max_chars
            ),
        ));
    }
    Ok(Some(trimmed.to_owned()))
}

/// Message text: 1–4000 (configurable) characters, not only whitespace. Stored as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content(String);

impl Content {
    pub fn parse(raw: &str, limits: &Limits) -> AppResult<Content> {
        let n = raw.chars().count();
        if n == 0 || n > limits.message_max_chars || raw.trim().is_empty() {
            return Err(AppError::validation(
                "content",
                format!(
                    "content must be 1-{} characters and not only whitespace",
                    limits.message_max_chars
                ),
            ));
        }
        Ok(Content(raw.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An optional idempotency key: 1–128 (configurable) printable characters.
pub fn parse_client_id(raw: Option<&str>, limits: &Limits) -> AppResult<Option<String>> {
    let Some(raw) = raw else { return Ok(None) };
    let n = raw.chars().count();
    if n == 0 || n > limits.client_id_max_chars || raw.chars().any(char::is_control) {
        return Err(AppError::validation(
            "client_id",
            format!(
                "client_id must be 1-{} printable characters",
                limits.client_id_max_chars
            ),
        ));
    }
    Ok(Some(raw.to_owned()))
}

/// A reaction: exactly one emoji (one grapheme, any skin tone), as listed by Unicode's
/// emoji data (via the `emojis` crate). Returned as given.
pub fn parse_emoji(raw: &str) -> AppResult<String> {
    if raw.is_empty() || raw.len() > 64 || emojis::get(raw).is_none() {
        return Err(AppError::validation(
            "emoji",
            "emoji must be a single emoji",
        ));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn field(e: AppError) -> String {
        e.field.unwrap()
    }

    #[test]
    fn usernames() {
        let l = limits();
        assert!(Username::parse("alice_01.x-y", &l).is_ok());
        assert!(Username::parse("abc", &l).is_ok());
        assert_eq!(field(Username::parse("ab", &l).unwrap_err()), "username");
        assert!(Username::parse(&"a".repeat(33), &l).is_err());
        assert!(Username::parse(&"a".repeat(32), &l).is_ok());
        assert!(Username::parse("Alice", &l).is_err());
        assert!(Username::parse("al ice", &l).is_err());
        assert!(Username::parse("ålice", &l).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("Bob@Example.COM").unwrap().as_str(),
            "bob@example.com"
        );
        for bad in [
            "",
            "bob",
            "bob@",
            "@example.com",
            "bob@localhost",
            "a b@example.com",
        ] {
            assert_eq!(field(Email::parse(bad).unwrap_err()), "email", "{bad:?}");
        }
    }

    #[test]
    fn passwords_count_characters_not_bytes() {
        let l = limits();
        assert!(Password::parse("12345678", &l).is_ok());
        assert!(Password::parse("1234567", &l).is_err());
        assert!(Password::parse("ééééééé", &l).is_err(), "7 chars, 14 bytes");
        assert!(Password::parse(&"x".repeat(128), &l).is_ok());
        assert_eq!(
            field(Password::parse(&"x".repeat(129), &l).unwrap_err()),
            "password"
        );
    }

    #[test]
    fn room_names_are_trimmed_and_bounded() {
        let l = limits();
        assert_eq!(
            RoomName::parse("  general ", &l).unwrap().into_inner(),
            "general"
        );
        assert!(RoomName::parse("   ", &l).is_err());
        assert!(RoomName::parse(&"n".repeat(100), &l).is_ok());
        assert_eq!(
            field(RoomName::parse(&"n".repeat(101), &l).unwrap_err()),
            "name"
        );
    }

    #[test]
    fn content_bounds() {
        let l = limits();
        assert!(Content::parse("hi", &l).is_ok());
        assert!(Content::parse("", &l).is_err());
        assert!(Content::parse(" \n ", &l).is_err());
        assert!(Content::parse(&"😀".repeat(4000), &l).is_ok());
        assert_eq!(
            field(Content::parse(&"x".repeat(4001), &l).unwrap_err()),
            "content"
        );
    }

    #[test]
    fn emojis_are_single_graphemes() {
        for ok in ["👍", "❤️", "👍🏽", "🇫🇷", "👨‍👩‍👧"] {
            assert!(parse_emoji(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "👍👍", "👍 ", ":+1:", "hello"] {
            assert_eq!(field(parse_emoji(bad).unwrap_err()), "emoji", "{bad:?}");
        }
    }

    #[test]
    fn client_ids() {
        let l = limits();
        assert_eq!(parse_client_id(None, &l).unwrap(), None);
        assert!(parse_client_id(Some(""), &l).is_err());
        assert!(parse_client_id(Some(&"c".repeat(129)), &l).is_err());
        assert_eq!(
            parse_client_id(Some("abc-1"), &l).unwrap().as_deref(),
            Some("abc-1")
        );
    }
}
