//! ICE servers for WebRTC clients, with time-limited TURN credentials in the shared-secret
//! scheme of coturn's `use-auth-secret` ("A REST API for Access to TURN Services",
//! draft-uberti-behave-turn-rest-00; see `docs/protocol.md`, "ICE servers and TURN
//! credentials"). The TURN server checks them with the same secret
//! (`static-auth-secret`), without asking Palaver.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use palaver_protocol::rest::{IceServer, IceServers};

use crate::config::RtcConfig;

/// The body of `GET /api/v1/rtc/ice-servers` for `user_id` at `now_unix` (Unix seconds):
/// - `{urls: rtc.stun_urls}`, when STUN URLs are configured;
/// - `{urls: rtc.turn_urls, username, credential}`, when TURN URLs and `rtc.turn_secret`
///   are configured: username `<expiry>:<user_id>` with `expiry = now_unix +
///   rtc.turn_ttl_secs`, credential [`turn_credential`] of it;
///
/// and `ttl_secs: rtc.turn_ttl_secs`. The list is empty when nothing is configured.
pub fn ice_servers(rtc: &RtcConfig, user_id: &str, now_unix: i64) -> IceServers {
    let mut ice_servers = Vec::new();
    if !rtc.stun_urls.is_empty() {
        ice_servers.push(IceServer {
            urls: rtc.stun_urls.clone(),
            username: None,
            credential: None,
        });
    }
    if let (false, Some(secret)) = (rtc.turn_urls.is_empty(), &rtc.turn_secret) {
        let ttl = i64::try_from(rtc.turn_ttl_secs).unwrap_or(i64::MAX);
        let expiry = now_unix.saturating_add(ttl);
        let username = format!("{expiry}:{user_id}");
        ice_servers.push(IceServer {
            urls: rtc.turn_urls.clone(),
            credential: Some(turn_credential(secret.expose(), &username)),
            username: Some(username),
        });
    }
    IceServers {
        ice_servers,
        ttl_secs: rtc.turn_ttl_secs,
    }
}

/// base64(HMAC-SHA1(secret, username)): the TURN password of coturn's `use-auth-secret`
/// (draft-uberti-behave-turn-rest-00 §2.2), in standard base64 with padding.
pub fn turn_credential(secret: &str, username: &str) -> String {
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    /// The credential matches an independent computation (Python's `hmac` module:
    /// `base64.b64encode(hmac.new(b"north-wind-secret", b"1700000000:0190a1b2-user",
    /// hashlib.sha1).digest())`).
    #[test]
    fn turn_credential_is_base64_hmac_sha1_of_the_username() {
        assert_eq!(
            turn_credential("north-wind-secret", "1700000000:0190a1b2-user"),
            "a9p+lYmNRIxHABCLU34njqHl7YQ="
        );
    }

    #[test]
    fn turn_servers_get_a_username_expiring_after_the_ttl() {
        let rtc = RtcConfig {
            stun_urls: vec!["stun:stun.example:3478".into()],
            turn_urls: vec!["turn:turn.example:3478?transport=udp".into()],
            turn_secret: Some(Secret::new("north-wind-secret")),
            turn_ttl_secs: 600,
            ..RtcConfig::default()
        };
        let servers = ice_servers(&rtc, "0190a1b2-user", 1_699_999_400);
        assert_eq!(servers.ttl_secs, 600);
        assert_eq!(servers.ice_servers.len(), 2);
        let stun = &servers.ice_servers[0];
        assert_eq!(stun.urls, rtc.stun_urls);
        assert!(stun.username.is_none() && stun.credential.is_none());
        let turn = &servers.ice_servers[1];
        assert_eq!(turn.urls, rtc.turn_urls);
        assert_eq!(turn.username.as_deref(), Some("1700000000:0190a1b2-user"));
        assert_eq!(
            turn.credential.as_deref(),
            Some("a9p+lYmNRIxHABCLU34njqHl7YQ=")
        );
    }

    #[test]
    fn turn_urls_without_a_secret_and_no_urls_give_no_turn_server() {
        let no_secret = RtcConfig {
            turn_urls: vec!["turn:turn.example:3478".into()],
            ..RtcConfig::default()
        };
        assert!(ice_servers(&no_secret, "u", 0).ice_servers.is_empty());
        let no_urls = RtcConfig {
            turn_secret: Some(Secret::new("s")),
            ..RtcConfig::default()
        };
        assert!(ice_servers(&no_urls, "u", 0).ice_servers.is_empty());
    }
}
