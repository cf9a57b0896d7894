//! Extractors that turn malformed requests into Palaver errors instead of axum's plain
//! text rejections.
//!
//! - [`ApiJson`]: a JSON body. Not JSON → `400 invalid_json`; JSON of the wrong shape
//!   (missing field, wrong type, unknown enum value) → `422 validation_failed` naming the
//!   field; over the body limit → `413 payload_too_large`.
//! - [`Params`]: the query string, with typed accessors that name the bad parameter.
//! - [`ClientAddr`], [`client_info`]: the client address, and the device name and address
//!   recorded on a session.

use std::net::IpAddr;

use axum::body::Bytes;
use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use palaver_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::service::accounts::ClientInfo;

/// A JSON request body of type `T` (the `Content-Type` is not required to say so).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, AppError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                AppError::new(ErrorCode::PayloadTooLarge, "request body is too large")
            } else {
                AppError::new(ErrorCode::BadRequest, "could not read the request body")
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses `bytes` as a `T`, classifying failures as `invalid_json` (not JSON at all,
/// checked over the whole body first) or `validation_failed` (wrong shape, with the
/// field's dotted path).
///
/// The NUL character (U+0000, `\u0000` in JSON) becomes U+FFFD in every string (see
/// [`replace_nul`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AppError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}")))?;
    if has_nul(bytes) {
        replace_nul(&mut value);
    }
    from_value(value)
}

/// Whether the JSON text `json` has a string holding the NUL character: the escape
/// `\u0000` (a raw NUL is not valid JSON) after an even number of backslashes (`\\u0000`
/// is a backslash and the text `u0000`).
pub fn has_nul(json: &[u8]) -> bool {
    let mut from = 0;
    while let Some(at) = json[from..].windows(6).position(|w| w == b"\\u0000") {
        let at = from + at;
        let before = json[..at].iter().rev().take_while(|&&b| b == b'\\').count();
        if before % 2 == 0 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Replaces the NUL character with U+FFFD (the replacement character) in every string
/// and key of `value`, as the WHATWG HTML and URL standards do with NUL in input.
/// PostgreSQL cannot store NUL in text, and no text Palaver keeps needs one; replacing it
/// rather than refusing the request keeps requests that are valid by the API's schema
/// valid on every backend.
pub fn replace_nul(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, v)| (k.replace('\0', "\u{FFFD}"), v))
                    .collect();
            }
            map.values_mut().for_each(replace_nul);
        }
        _ => {}
    }
}

/// Interprets an already-parsed JSON value as a `T` (for WebSocket request `data`);
/// failures are `validation_failed` naming the field.
///
/// Every request body is a JSON object: anything else is refused naming `body` (serde
/// would otherwise read an array as a struct's fields in order). A number with a zero
/// fraction (`2.0`) is an integer, as in JSON Schema, so it fills an integer field.
pub fn from_value<T: DeserializeOwned>(mut value: serde_json::Value) -> Result<T, AppError> {
    if !value.is_object() {
        return Err(AppError::validation("body", "body: expected a JSON object"));
    }
    integral_floats_to_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        shape_error(e.into_inner(), &path)
    })
}

/// Rewrites numbers like `2.0` (a zero fraction, within `i64`) as integers, in place.
fn integral_floats_to_integers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64() {
                // The bounds are exact powers of two, so the comparison is exact.
                if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

fn shape_error(e: serde_json::Error, path: &str) -> AppError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            AppError::new(ErrorCode::InvalidJson, format!("malformed JSON: {e}"))
        }
        Category::Data => {
            let text = e.to_string();
            // serde reports a missing field at its parent's path, naming it in backticks.
            let field = match text.strip_prefix("missing field `") {
                Some(rest) => {
                    let name = rest.split('`').next().unwrap_or_default();
                    if path.is_empty() || path == "." {
                        name.to_owned()
                    } else {
                        format!("{path}.{name}")
                    }
                }
                None if path.is_empty() || path == "." => "body".to_owned(),
                None => path.to_owned(),
            };
            let message = text.split(" at line ").next().unwrap_or(&text).to_owned();
            AppError::validation(field.clone(), format!("{field}: {message}"))
        }
    }
}

/// The query string as name → value (the last value wins for a repeated name).
/// A malformed query string → `400 bad_request`.
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| {
                // NUL becomes U+FFFD, as in bodies (see `replace_nul`).
                let fix = |s: String| {
                    if s.contains('\0') {
                        s.replace('\0', "\u{FFFD}")
                    } else {
                        s
                    }
                };
                Params(q.into_iter().map(|(k, v)| (fix(k), fix(v))).collect())
            })
            .map_err(|_| AppError::new(ErrorCode::BadRequest, "malformed query string"))
    }
}

impl Params {
    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The integer value of `name`, if present; `422 validation_failed` naming it if it
    /// is not an integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, AppError> {
        self.get(name)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| AppError::validation(name, format!("{name} must be an integer")))
            })
            .transpose()
    }
}

/// The client address of a request: the TCP peer, or behind a trusted proxy the address
/// it forwards (see [`crate::net`]). Set by the router's middleware; extracting it where
/// the middleware did not run (no connection info) is `500 internal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .ok_or_else(|| AppError::internal("no client address on the request"))
    }
}

impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ClientAddr>().copied())
    }
}

/// The session metadata of a request: `User-Agent` (at most 200 characters) and the
/// client address.
pub fn client_info(headers: &HeaderMap, client: ClientAddr) -> ClientInfo {
    ClientInfo {
        device_name: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect()),
        ip: Some(client.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for bad in [
            &b"{"[..],
            b"not json",
            b"",
            b"{\"name\": \"x\"} trailing",
            b"{\"wrong\": 1}}",
            b"{\"name\": 5, \"inner\": ",
        ] {
            let e = parse_json::<Body>(bad).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::InvalidJson,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn shape_errors_name_the_field() {
        let e = parse_json::<Body>(b"{}").unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::ValidationFailed, Some("name"))
        );
        let e = parse_json::<Body>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
        let e = parse_json::<Body>(br#"{"name": "x", "inner": {"n": 300}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.n"));
        let e = parse_json::<Body>(b"[]").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
    }

    #[test]
    fn a_body_must_be_an_object() {
        // serde alone reads `["x"]` as `Body { name: "x" }`.
        for bad in [&br#"["x"]"#[..], b"[null, null]", b"\"x\"", b"5", b"null"] {
            let e = parse_json::<Body>(bad).unwrap_err();
            assert_eq!(
                (e.code, e.field.as_deref()),
                (ErrorCode::ValidationFailed, Some("body")),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_nul_becomes_the_replacement_character_and_an_escaped_backslash_stays() {
        let v: serde_json::Value =
            parse_json(br#"{"content": "a\u0000b", "k\u0000": ["\\\u0000"]}"#).unwrap();
        assert_eq!(v["content"], "a\u{FFFD}b");
        assert_eq!(v["k\u{FFFD}"][0], "\\\u{FFFD}");
        // `\\u0000` is a backslash, then the text "u0000".
        assert!(!has_nul(br#"{"content": "\\u0000"}"#));
        let kept: serde_json::Value = parse_json(br#"{"content": "\\u0000"}"#).unwrap();
        assert_eq!(kept["content"], "\\u0000");
    }

    #[test]
    fn integral_floats_fill_integer_fields() {
        let body: Body = parse_json(br#"{"name": "x", "inner": {"n": 7.0}}"#).unwrap();
        assert_eq!(body.inner.unwrap().n, 7);
        let e = parse_json::<Body>(br#"{"name": "x", "inner": {"n": 7.5}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.n"));
    }
}
