//! API keys for bots and devices: `plv_<id>_<secret>`.
//!
//! `plv_` makes a leaked key easy to recognise (and to scan for); `<id>` is the key's id
//! (32 hex digits) so the server finds the row without comparing secrets; `<secret>` is
//! 256 random bits, base64url. Only SHA-256 of the secret is stored, and it is compared in
//! constant time (`subtle`), per OWASP ASVS 5.0 V6.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

use super::tokens::random_token;

/// The recognisable start of every key.
pub const PREFIX: &str = "plv_";

/// A freshly minted key: `(id, full key, SHA-256 of the secret)`.
pub fn mint() -> (String, String, Vec<u8>) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let secret = random_token(32);
    let hash = Sha256::digest(secret.as_bytes()).to_vec();
    (id.clone(), format!("{PREFIX}{id}_{secret}"), hash)
}

/// The display prefix of key `id`: `plv_<id>`.
pub fn display_prefix(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// Splits a presented key into `(id, secret)`, or `None` if it is not shaped like a key.
pub fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let id_ok = id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (id_ok && !secret.is_empty()).then_some((id, secret))
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    let hash = Sha256::digest(secret.as_bytes());
    hash[..].ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_key_parses_and_matches_its_hash() {
        let (id, key, hash) = mint();
        assert!(key.starts_with("plv_"));
        let (pid, secret) = parse(&key).unwrap();
        assert_eq!(pid, id);
        assert!(secret_matches(secret, &hash));
        assert!(!secret_matches("other", &hash));
        assert_eq!(display_prefix(&id), format!("plv_{id}"));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        for bad in [
            "",
            "plv_",
            "plv_abc_def",
            "xyz_0123456789abcdef0123456789abcdef_s",
            "eyJhbGciOi.x.y",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        assert!(parse("plv_0123456789abcdef0123456789abcdef_").is_none());
    }
}
