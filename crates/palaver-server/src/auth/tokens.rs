//! Access tokens (JWT, RFC 7519) and refresh tokens.
//!
//! Access tokens follow RFC 8725 (JWT BCP): the algorithm is pinned to HS256 on both
//! sides (a token naming any other `alg`, including `none`, is rejected); they are
//! explicitly typed `at+jwt` (RFC 8725 §3.11, RFC 9068), and a JWT of any other `typ` is
//! refused; `iss`, `aud`, `exp`, `nbf` and `sub` are required and checked. Claims: `sub`
//! (user id), `sid` (session id), `jti` (unique), `iat`, `nbf`, `exp` (seconds since the epoch),
//! `iss` = `aud` = `"palaver"`.
//!
//! Refresh tokens are opaque: 256 random bits, base64url without padding; the server keeps
//! only their SHA-256 (RFC 9700 §4.14 recommends sender-constraining or rotation; rotation
//! arrives with `/auth/refresh`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Issuer and audience of every access token.
const ISSUER: &str = "palaver";
/// The JOSE `typ` of access tokens (RFC 9068 §2.1).
const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Session id.
    pub sid: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Not valid before, seconds since the epoch.
    pub nbf: u64,
    /// Expires at, seconds since the epoch.
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// A unique id for this token (RFC 9068 §2.2), so no two tokens are the same string.
    #[serde(default)]
    pub jti: String,
}

/// Signs and verifies access tokens with one HS256 key.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Access token lifetime, seconds.
    ttl_secs: u64,
}

impl TokenIssuer {
    /// A token issuer with a raw HS256 `secret` (≥ 32 bytes) and a lifetime in seconds.
    pub fn new(secret: &[u8], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        TokenIssuer {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl_secs,
        }
    }

    /// Lifetime of the tokens this issuer signs, in seconds.
    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    /// A signed access token for `user_id` in session `session_id`.
    ///
    /// # Errors
    /// Only if signing fails (it does not with HS256 and a valid key).
    pub fn issue(&self, user_id: &str, session_id: &str) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now,
            nbf: now,
            exp: now + self.ttl_secs,
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            jti: uuid::Uuid::now_v7().simple().to_string(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(ACCESS_TOKEN_TYPE.into());
        Ok(jsonwebtoken::encode(&header, &claims, &self.encoding)?)
    }

    /// The claims of `token` if it is ours, unexpired and well-formed; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(ACCESS_TOKEN_TYPE) {
            return None;
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// A new refresh token and its SHA-256 hash (what the store keeps).
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let token = random_token(32);
    let hash = Sha256::digest(token.as_bytes()).to_vec();
    (token, hash)
}

/// `bytes` random bytes from the OS, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(&[7u8; 32], 900)
    }

    #[test]
    fn issued_token_verifies_with_its_claims() {
        let t = issuer().issue("user-1", "sess-1").unwrap();
        let c = issuer().verify(&t).expect("valid");
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.sid, "sess-1");
        assert_eq!(c.exp - c.iat, 900);
    }

    #[test]
    fn token_signed_with_another_key_is_rejected() {
        let other = TokenIssuer::new(&[8u8; 32], 900).issue("u", "s").unwrap();
        assert!(issuer().verify(&other).is_none());
    }

    #[test]
    fn alg_none_token_is_rejected() {
        // header {"alg":"none","typ":"JWT"}, payload with valid-looking claims, no signature
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"at+jwt"}"#);
        let payload = URL_SAFE_NO_PAD.encode(
            br#"{"sub":"u","sid":"s","iat":1,"nbf":1,"exp":99999999999,"iss":"palaver","aud":"palaver"}"#,
        );
        assert!(issuer().verify(&format!("{header}.{payload}.")).is_none());
    }

    /// Signs `claims` with the test key and the given `typ`.
    fn sign(claims: &Claims, typ: &str) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(&[7u8; 32])).unwrap()
    }

    fn claims() -> Claims {
        let now = jsonwebtoken::get_current_timestamp();
        Claims {
            sub: "u".into(),
            sid: "s".into(),
            iat: now,
            nbf: now,
            exp: now + 600,
            iss: ISSUER.into(),
            aud: ISSUER.into(),
            jti: "j".into(),
        }
    }

    #[test]
    fn well_formed_claims_verify() {
        assert!(issuer().verify(&sign(&claims(), "at+jwt")).is_some());
    }

    #[test]
    fn expired_token_is_rejected() {
        let mut c = claims();
        c.exp = jsonwebtoken::get_current_timestamp() - 60;
        assert!(issuer().verify(&sign(&c, "at+jwt")).is_none());
    }

    #[test]
    fn not_yet_valid_token_is_rejected() {
        let mut c = claims();
        c.nbf = jsonwebtoken::get_current_timestamp() + 600;
        assert!(issuer().verify(&sign(&c, "at+jwt")).is_none());
    }

    #[test]
    fn wrong_audience_or_issuer_is_rejected() {
        let mut c = claims();
        c.aud = "someone-else".into();
        assert!(issuer().verify(&sign(&c, "at+jwt")).is_none());
        let mut c = claims();
        c.iss = "someone-else".into();
        assert!(issuer().verify(&sign(&c, "at+jwt")).is_none());
    }

    #[test]
    fn token_of_another_type_is_rejected() {
        assert!(issuer().verify(&sign(&claims(), "JWT")).is_none());
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let t = issuer().issue("user-1", "sess-1").unwrap();
        let mut parts: Vec<String> = t.split('.').map(String::from).collect();
        let mut c = claims();
        c.sub = "admin".into();
        parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        assert!(issuer().verify(&parts.join(".")).is_none());
    }

    #[test]
    fn refresh_tokens_are_256_bit_and_hashed() {
        let (t, h) = new_refresh_token();
        assert_eq!(URL_SAFE_NO_PAD.decode(&t).unwrap().len(), 32);
        assert_eq!(h.len(), 32);
        assert_ne!(new_refresh_token().0, t);
    }
}
