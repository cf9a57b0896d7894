//! Authentication: who is calling.
//!
//! - [`password`]: argon2id hashing off the async runtime.
//! - [`tokens`]: access JWTs (HS256, pinned) and opaque refresh tokens.
//! - [`api_keys`]: the format of API keys (`plv_<id>_<secret>`) and their checking.
//! - [`Actor`]: the authenticated caller, extracted from `Authorization: Bearer <token>`
//!   (an access token or an API key) or `X-API-Key` on REST routes (the WebSocket also
//!   accepts an `access_token` query parameter, see `gateway/`).
//! - [`load_or_create_signing_key`]: the HS256 key from config, or generated once and kept
//!   in the data directory.

pub mod api_keys;
pub mod password;
pub mod tokens;

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use palaver_protocol::Role;

use crate::config::Config;
use crate::error::AppError;
use crate::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: String,
    /// The account's global role at the time of the request.
    pub role: Role,
    /// What the caller authenticated with.
    pub credential: Credential,
}

/// The credential behind a request: a login session (via its access token) or an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session id (the `sid` claim of the access token).
    Session(String),
    /// An API key id.
    ApiKey(String),
}

impl Credential {
    /// The session id, for session credentials.
    pub fn session_id(&self) -> Option<&str> {
        match self {
            Credential::Session(id) => Some(id),
            Credential::ApiKey(_) => None,
        }
    }

    /// A key naming this credential in the hub's index (`session:<id>` or `api_key:<id>`),
    /// so that revoking it can close its WebSockets.
    pub fn hub_key(&self) -> String {
        match self {
            Credential::Session(id) => format!("session:{id}"),
            Credential::ApiKey(id) => format!("api_key:{id}"),
        }
    }
}

/// The token in an `Authorization: Bearer <token>` header (scheme case-insensitive,
/// RFC 6750 §2.1), if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The credential a request presents: a bearer token (access token or API key), or else
/// an `X-API-Key` header.
pub fn presented_credential(headers: &HeaderMap) -> Option<&str> {
    bearer_token(headers).or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

impl FromRequestParts<AppState> for Actor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Actor, AppError> {
        let token = presented_credential(&parts.headers)
            .ok_or_else(|| AppError::unauthorized("missing bearer token or API key"))?;
        state.service.authenticate(token).await
    }
}

/// The HS256 signing key: `auth.jwt_secret` if configured (at least 32 bytes), otherwise
/// the key in `<data_dir>/jwt.key`, generated (256 random bits, file mode 0600) on first
/// start so tokens survive restarts.
///
/// # Errors
/// A configured secret shorter than 32 bytes, or the key file cannot be read or written.
pub fn load_or_create_signing_key(config: &Config) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = &config.auth.jwt_secret {
        let bytes = secret.expose().as_bytes();
        anyhow::ensure!(
            bytes.len() >= 32,
            "auth.jwt_secret must be at least 32 bytes (RFC 7518 §3.2)"
        );
        return Ok(bytes.to_vec());
    }
    let path = config.data_dir.join("jwt.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let key = URL_SAFE_NO_PAD
                .decode(text.trim())
                .with_context(|| format!("{} is not a valid key file", path.display()))?;
            anyhow::ensure!(
                key.len() >= 32,
                "{} holds a key that is too short",
                path.display()
            );
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key_file(&path),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn create_key_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text = tokens::random_token(32);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(URL_SAFE_NO_PAD.decode(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn bearer_token_parses_scheme_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("bearer abc.def"));
        assert_eq!(bearer_token(&h), Some("abc.def"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), None);
    }

    #[test]
    fn generated_key_is_kept_across_loads() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        let first = load_or_create_signing_key(&config).unwrap();
        let second = load_or_create_signing_key(&config).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(first, second);
    }

    #[test]
    fn short_configured_secret_is_refused() {
        let mut config = Config::default();
        config.auth.jwt_secret = Some(crate::config::Secret::new("short"));
        assert!(load_or_create_signing_key(&config).is_err());
    }
}
