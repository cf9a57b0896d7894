//! Configuration, layered: built-in defaults → `palaver.toml` (if present) →
//! `PALAVER_*` environment variables → command-line flags. Later layers win.
//!
//! Environment variables map onto the TOML keys; nested tables use a double underscore:
//! `PALAVER_PORT=9000`, `PALAVER_DATA_DIR=/var/lib/palaver`,
//! `PALAVER_DATABASE_URL=postgres://palaver@db/palaver`,
//! `PALAVER_AUTH__ACCESS_TOKEN_TTL_SECS=600`, `PALAVER_LIMITS__MESSAGE_MAX_CHARS=2000`.
//!
//! Secrets (`auth.jwt_secret`, the `client_secret`s of `[[auth.oidc]]` and `[auth.github]`,
//! `database_url`, `redis_url` and `email.smtp_url`, which may hold a password, and
//! `push.vapid_private_key`) are
//! wrapped in
//! [`Secret`] so they never appear in logs or `Debug` output.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

pub use crate::ratelimit::Rule;

/// The whole server configuration. Every field has a default, so an empty file (or no
/// file) is a valid configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1`.
    pub host: IpAddr,
    /// TCP port; `0` binds a free port (the bound address is printed). Default `8080`.
    pub port: u16,
    /// Where the SQLite database and the generated signing key live (and attachments,
    /// unless `attachments.dir` or `attachments.s3` says otherwise). Default `./data`.
    pub data_dir: PathBuf,
    /// The database: unset (the default) for the SQLite file `<data_dir>/palaver.db`, or
    /// a PostgreSQL URL, `postgres://user:password@host:5432/database` (or
    /// `postgresql://...`; libpq's query parameters such as `?sslmode=require` apply).
    /// The PostgreSQL database must exist; Palaver creates its tables. Any other scheme
    /// stops the server at startup. See [`Config::database`].
    pub database_url: Option<Secret>,
    /// The Redis several nodes share: unset (the default) keeps everything in this
    /// node's memory; a `redis://[:password@]host:6379[/db]` URL (no TLS: `rediss://`
    /// is refused at startup) makes the rate limits shared by every node using it and adds `"redis"` to
    /// `/readyz`. A malformed URL stops the server at startup; an unreachable Redis does
    /// not (rate limits then allow everything, see [`crate::ratelimit`]).
    pub redis_url: Option<Secret>,
    /// On SIGTERM/Ctrl-C, how long to wait for WebSockets to take their close frame and
    /// in-flight requests to finish before closing the store and exiting. Seconds;
    /// default 10.
    pub shutdown_grace_secs: u64,
    /// The URL people reach this server at, e.g. `https://chat.example.com` (scheme,
    /// host, optional port; no path): the base of links the server hands out that must
    /// work outside the request they answer (links in e-mails, OpenID Connect redirect
    /// URIs). Default unset: `http://<host>:<port>` (see [`Config::public_base`]).
    pub public_url: Option<String>,
    pub auth: AuthConfig,
    pub limits: Limits,
    pub rate_limits: RateLimits,
    pub user_limits: UserLimits,
    pub cors: CorsConfig,
    pub attachments: AttachmentsConfig,
    pub rtc: RtcConfig,
    pub presence: PresenceConfig,
    pub signalr: SignalRConfig,
    pub log: LogConfig,
    /// E-mail (`[email]`): verification links, password reset, e-mail change. Default
    /// unset: e-mail is off, registration answers as it always has, and the e-mail routes
    /// answer `409 email_disabled` (see `docs/email.md`).
    pub email: Option<EmailConfig>,
    /// Web Push notifications (`[push]`, `docs/notifications.md`).
    pub push: PushConfig,
    /// Reverse proxies (addresses or CIDR networks, e.g. `["127.0.0.1", "10.0.0.0/8"]`)
    /// whose forwarding header names the client address; see [`crate::net`]. Default
    /// none: the TCP peer is the client. Env: `PALAVER_TRUSTED_PROXIES="10.0.0.1,
    /// 10.0.1.0/24"`.
    #[serde(deserialize_with = "crate::net::deserialize_nets")]
    pub trusted_proxies: Vec<crate::net::IpNet>,
    /// The header the trusted proxies write: `x-forwarded-for` (the default) or
    /// `forwarded` (RFC 7239). Only this one is read; set your proxy to overwrite or
    /// append to it.
    pub forwarded_header: crate::net::ForwardedHeader,
    /// Public channels every new account joins (by name), so that nobody lands in an
    /// empty app. A channel that does not exist yet is created by the first account that
    /// registers, which becomes its owner. Default `["general"]`; `[]` turns it off.
    /// Env: `PALAVER_DEFAULT_ROOMS="general, random"`.
    #[serde(deserialize_with = "deserialize_names")]
    pub default_rooms: Vec<String>,
}

/// A list of names, as a TOML list or (from the environment) one comma-separated string.
fn deserialize_names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<String>),
        One(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::List(list) => list,
        Raw::One(one) => one
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 8080,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            redis_url: None,
            shutdown_grace_secs: 10,
            public_url: None,
            auth: AuthConfig::default(),
            limits: Limits::default(),
            rate_limits: RateLimits::default(),
            user_limits: UserLimits::default(),
            cors: CorsConfig::default(),
            attachments: AttachmentsConfig::default(),
            rtc: RtcConfig::default(),
            presence: PresenceConfig::default(),
            signalr: SignalRConfig::default(),
            log: LogConfig::default(),
            email: None,
            push: PushConfig::default(),
            trusted_proxies: Vec::new(),
            forwarded_header: crate::net::ForwardedHeader::default(),
            default_rooms: vec!["general".to_owned()],
        }
    }
}

/// Outgoing e-mail (`[email]`; `docs/email.md`). Links in mails start with
/// [`Config::public_base`], so set `public_url` with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmailConfig {
    /// The SMTP server, as a URL (it may hold a password, so it is never printed):
    /// `smtps://user:password@smtp.example.com:465` (TLS from the first byte, RFC 8314),
    /// `smtp://user:password@smtp.example.com:587?tls=required` (STARTTLS, RFC 3207,
    /// refused if the server does not offer it), or `smtp://127.0.0.1:25` (no TLS: only
    /// for a relay on the same machine or network). Certificates are checked against
    /// the Mozilla root store (webpki-roots). Percent-encode `@`, `:` and `/` in the user
    /// name and password. Env: `PALAVER_EMAIL__SMTP_URL`.
    pub smtp_url: Secret,
    /// The sender, an RFC 5322 mailbox: `Palaver <noreply@chat.example.com>` or
    /// `noreply@chat.example.com`.
    pub from: String,
    /// How long a verification link (registration, e-mail change) works, seconds.
    /// Default 86,400 (24 hours); at least 60.
    #[serde(default = "default_verify_ttl")]
    pub verify_ttl_secs: u64,
    /// How long a password reset link works, seconds. Default 1,800 (30 minutes); at
    /// least 60.
    #[serde(default = "default_reset_ttl")]
    pub reset_ttl_secs: u64,
}

fn default_verify_ttl() -> u64 {
    86_400
}

fn default_reset_ttl() -> u64 {
    1_800
}

/// Web Push (`[push]`; `docs/notifications.md`): direct messages and mentions pushed to
/// the browsers of members with no open socket (RFC 8030, encrypted with RFC 8291,
/// signed with VAPID, RFC 8292).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// Whether Web Push is on. Default true (nothing is sent until a browser subscribes).
    /// Off, the `/push/...` routes answer `409 push_disabled` and nothing is pushed.
    pub enabled: bool,
    /// The VAPID `sub` claim, how a push service reaches the operator: a `mailto:` or
    /// `https://` URL (RFC 8292 §2.1). Default unset: [`Config::public_base`].
    pub subject: Option<String>,
    /// The VAPID private key: a P-256 scalar, 32 bytes, base64url (as `web-push
    /// generate-vapid-keys` prints it). Default unset: a key pair is generated once and
    /// kept in the database, shared by every node on it. Changing the key ends every
    /// browser's subscription (they must subscribe again). Env:
    /// `PALAVER_PUSH__VAPID_PRIVATE_KEY`.
    pub vapid_private_key: Option<Secret>,
    /// How long a push service keeps an undelivered push (the `TTL` header, RFC 8030
    /// §5.2), seconds. Default 86,400 (a day).
    pub ttl_secs: u64,
    /// How long one delivery to a push service may take, seconds. Default 10.
    pub timeout_secs: u64,
    /// Most deliveries in flight at once on this node. Default 16.
    pub max_concurrent: usize,
    /// Subscriptions kept per account (the newest; one per browser). Default 10.
    pub max_subscriptions_per_user: usize,
    /// Whether pushes carry the start of the message's text (encrypted end to end: the
    /// push service cannot read it, the device shows it). Default true.
    pub preview: bool,
    /// Accept `http://` endpoints on loopback addresses (`127.0.0.0/8`, `::1`,
    /// `localhost`): for tests with a local push endpoint only. Default false: endpoints
    /// must be `https://` URLs with a host name.
    pub allow_loopback_http: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            subject: None,
            vapid_private_key: None,
            ttl_secs: 86_400,
            timeout_secs: 10,
            max_concurrent: 16,
            max_subscriptions_per_user: 10,
            preview: true,
            allow_loopback_http: false,
        }
    }
}

/// Calls and WebRTC: ringing, participant cap, signal bounds, and the ICE servers handed
/// to clients by `GET /api/v1/rtc/ice-servers` (see `docs/protocol.md`, "Calls").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RtcConfig {
    /// STUN server URLs (`stun:host:port`), handed to clients as one ICE server. Default
    /// none: a self-hosted server names no third party.
    pub stun_urls: Vec<String>,
    /// TURN server URLs (`turn:host:3478?transport=udp`, `turns:host:5349`), handed to
    /// clients with time-limited credentials when `turn_secret` is set.
    pub turn_urls: Vec<String>,
    /// The secret shared with the TURN server (coturn: `use-auth-secret`,
    /// `static-auth-secret=<the same value>`).
    pub turn_secret: Option<Secret>,
    /// How long issued TURN credentials are valid, seconds. Default 86,400 (one day).
    pub turn_ttl_secs: u64,
    /// How long a call rings before the users still being rung are told it was missed,
    /// seconds. Default 30.
    pub ring_timeout_secs: u64,
    /// Most participants (connections) in one call; calls are a mesh. Default 8.
    pub max_participants: usize,
    /// Largest SDP relayed in `rtc.signal`, bytes. Default 32 KiB.
    pub max_sdp_bytes: usize,
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            stun_urls: Vec::new(),
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl_secs: 86_400,
            ring_timeout_secs: 30,
            max_participants: 8,
            max_sdp_bytes: 32 * 1024,
        }
    }
}

/// Presence across nodes (`[presence]`): the leases each node keeps in Redis for its
/// connections. Used only with `redis_url` (see [`crate::presence::redis`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceConfig {
    /// How often each node renews the leases of its connections and sweeps the leases
    /// that other nodes stopped renewing. Seconds, at least 1; default 10.
    pub lease_refresh_secs: u64,
    /// How long a lease lasts unless renewed. Seconds, more than `lease_refresh_secs` (3
    /// times is advised, so two renewals may fail in a row); default 30. The users of a
    /// node that dies without closing its connections are announced offline by another
    /// node at most `lease_ttl_secs + lease_refresh_secs` later.
    pub lease_ttl_secs: u64,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            lease_refresh_secs: 10,
            lease_ttl_secs: 30,
        }
    }
}

/// The SignalR hubs (`[signalr]`, see `docs/signalr.md`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SignalRConfig {
    /// The room `/hubs/webrtc`'s `SendMessage` posts to (seed 000's broadcast), by id:
    /// its members receive `NewMessage`. When it is a public room, users connecting to
    /// `/hubs/webrtc` join it. Unset (the default): `SendMessage` answers `not_found`.
    /// Env: `PALAVER_SIGNALR__LOBBY_ROOM`.
    pub lobby_room: Option<String>,
}

/// Token settings, and the external sign-in providers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// HS256 signing key for access tokens (at least 32 bytes). When absent, a random key
    /// is generated on first start and kept in `<data_dir>/jwt.key` so tokens survive
    /// restarts.
    pub jwt_secret: Option<Secret>,
    /// Access token lifetime in seconds. Default 900 (15 minutes).
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds, renewed by each refresh. Default 2,592,000
    /// (30 days).
    pub refresh_token_ttl_secs: u64,
    /// How long after a refresh the refresh token it spent is still treated as a
    /// concurrent request (answered `409 refresh_conflict`) rather than a replay (which
    /// revokes the session, RFC 9700 §4.14.2). Seconds; default 10.
    pub refresh_grace_secs: u64,
    /// OpenID Connect providers people may sign in with (`[[auth.oidc]]`, one table per
    /// provider; see `docs/oidc.md`). Default none. Env: a list of inline tables,
    /// `PALAVER_AUTH__OIDC='[{id="keycloak", issuer="https://...", client_id="...",
    /// client_secret="..."}]'`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub oidc: Vec<OidcProviderConfig>,
    /// Sign-in with GitHub (`[auth.github]`, plain OAuth 2.0). Default unset: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github: Option<GithubConfig>,
}

/// One OpenID Connect provider (`[[auth.oidc]]`): anything that publishes discovery
/// (`<issuer>/.well-known/openid-configuration`, OpenID Connect Discovery 1.0), such as
/// Google, Microsoft Entra ID, Keycloak, Authentik or GitLab. Register Palaver there as a
/// confidential web client with the redirect URI
/// `<public_url>/api/v1/auth/oidc/<id>/callback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcProviderConfig {
    /// Palaver's name for the provider, in URLs and stored identities: 1–32 characters
    /// of `[a-z0-9_-]`, unique, not `github`. Changing it orphans the identities linked
    /// under the old one.
    pub id: String,
    /// The issuer URL, exactly as the provider's discovery document and ID tokens say
    /// it (e.g. `https://accounts.google.com`).
    pub issuer: String,
    pub client_id: String,
    /// The client secret (sent with HTTP Basic authentication, RFC 6749 §2.3.1).
    pub client_secret: Secret,
    /// The scopes asked for. Default `["openid", "email", "profile"]`; `openid` is added
    /// if missing.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// The button's label. Default: the id.
    #[serde(default)]
    pub display_name: Option<String>,
}

fn default_oidc_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
}

/// Sign-in with GitHub (`[auth.github]`): an OAuth app's credentials (GitHub, Settings,
/// Developer settings, OAuth Apps; callback URL
/// `<public_url>/api/v1/auth/oidc/github/callback`). The endpoints default to
/// github.com's; set them for GitHub Enterprise Server (or a test double).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GithubConfig {
    pub client_id: String,
    pub client_secret: Secret,
    /// The button's label. Default `GitHub`.
    #[serde(default = "default_github_name")]
    pub display_name: String,
    /// Default `https://github.com/login/oauth/authorize`.
    #[serde(default = "default_github_authorize_url")]
    pub authorize_url: String,
    /// Default `https://github.com/login/oauth/access_token`.
    #[serde(default = "default_github_token_url")]
    pub token_url: String,
    /// The REST API's base (`/user` and `/user/emails` are read there). Default
    /// `https://api.github.com`.
    #[serde(default = "default_github_api_url")]
    pub api_url: String,
}

fn default_github_name() -> String {
    "GitHub".into()
}
fn default_github_authorize_url() -> String {
    "https://github.com/login/oauth/authorize".into()
}
fn default_github_token_url() -> String {
    "https://github.com/login/oauth/access_token".into()
}
fn default_github_api_url() -> String {
    "https://api.github.com".into()
}

impl AuthConfig {
    /// Checks the sign-in providers: ids well-formed and unique, URLs absolute `http(s)`.
    ///
    /// # Errors
    /// The first problem, naming the provider (never its secret).
    pub fn check_sign_in_providers(&self) -> anyhow::Result<()> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.oidc {
            let well_formed = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id.chars().all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-')
                });
            anyhow::ensure!(
                well_formed,
                "auth.oidc: id {:?} must be 1-32 characters of a-z, 0-9, '_' or '-'",
                p.id
            );
            anyhow::ensure!(
                p.id != "github",
                "auth.oidc: id \"github\" is reserved for [auth.github]"
            );
            anyhow::ensure!(seen.insert(&p.id), "auth.oidc: id {:?} is used twice", p.id);
            check_url(&format!("auth.oidc {:?} issuer", p.id), &p.issuer)?;
            anyhow::ensure!(
                !p.client_id.is_empty(),
                "auth.oidc {:?}: client_id is empty",
                p.id
            );
        }
        if let Some(g) = &self.github {
            check_url("auth.github.authorize_url", &g.authorize_url)?;
            check_url("auth.github.token_url", &g.token_url)?;
            check_url("auth.github.api_url", &g.api_url)?;
            anyhow::ensure!(!g.client_id.is_empty(), "auth.github: client_id is empty");
        }
        Ok(())
    }
}

/// Checks that `value` is an absolute `http` or `https` URL.
fn check_url(what: &str, value: &str) -> anyhow::Result<()> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Ok(()),
        _ => anyhow::bail!("{what}: {value:?} is not an http(s) URL"),
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: None,
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            refresh_grace_secs: 10,
            oidc: Vec::new(),
            github: None,
        }
    }
}

/// Input and transport limits. Lengths are in Unicode scalar values (characters) unless
/// the name says bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    pub username_min_chars: usize,
    pub username_max_chars: usize,
    pub password_min_chars: usize,
    pub password_max_chars: usize,
    pub room_name_max_chars: usize,
    pub room_topic_max_chars: usize,
    pub message_max_chars: usize,
    pub client_id_max_chars: usize,
    /// Largest accepted REST request body, in bytes. Larger → 413 `payload_too_large`.
    pub http_body_max_bytes: usize,
    /// Largest accepted WebSocket message, in bytes. Larger → close code 1009.
    pub ws_frame_max_bytes: usize,
    /// Frames that may wait in one connection's outbound queue before it is disconnected
    /// as a slow consumer.
    pub ws_outbound_queue_frames: usize,
    /// Bytes of events that may wait in one connection's outbound queue before it is
    /// disconnected as a slow consumer. Default 4 MiB.
    pub ws_outbound_queue_bytes: usize,
    /// Seconds between the server's WebSocket pings.
    pub ws_ping_interval_secs: u64,
    /// Seconds a connection may stay silent (no frame, no pong) after a ping before the
    /// server closes it with 4002.
    pub ws_pong_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            username_min_chars: 3,
            username_max_chars: 32,
            password_min_chars: 8,
            password_max_chars: 128,
            room_name_max_chars: 100,
            room_topic_max_chars: 1000,
            message_max_chars: 4000,
            client_id_max_chars: 128,
            http_body_max_bytes: 1024 * 1024,
            ws_frame_max_bytes: 64 * 1024,
            ws_outbound_queue_frames: 1024,
            ws_outbound_queue_bytes: 4 * 1024 * 1024,
            ws_ping_interval_secs: 25,
            ws_pong_timeout_secs: 20,
        }
    }
}

/// Rate limits, each `{max, window_secs}` (sliding window; `max = 0` disables one).
/// Exceeding one answers `429 rate_limited` with `Retry-After`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    /// Failed logins from one client address (an IPv4 address or an IPv6 /64) across all
    /// accounts, against credential stuffing. Default 100 per 15 minutes: generous, since
    /// many users may share an address (an office, a reverse proxy not listed in
    /// `trusted_proxies`); one user's typos never lock out the others.
    pub login_failures_per_ip: Rule,
    /// Failed logins for one account from one network (its IPv4 /24 or IPv6 /64).
    /// Default 5 per 15 minutes.
    pub login_failures_per_account: Rule,
    /// Failed logins for one account from networks it has never logged in from, all
    /// together, against distributed guessing. Default 100 per 15 minutes. Logins from a
    /// network the account has had a session from are never refused by it, so an attacker
    /// cannot lock the owner out.
    pub login_failures_per_account_global: Rule,
    /// Registrations from one IP address. Default 20 per hour.
    pub registrations_per_ip: Rule,
    /// All REST requests from one IP address. Default 1200 per minute.
    pub requests_per_ip: Rule,
    /// Wrong two-factor codes (and wrong passwords when starting a two-factor setup) for
    /// one account, from anywhere; a right code refunds its count. Default 5 per 5
    /// minutes.
    pub two_factor_failures_per_account: Rule,
    /// With `[email]`: requests that may send a mail (registration, resending a
    /// verification link, password reset, e-mail change) from one IP address. Default 20
    /// per hour.
    pub emails_per_ip: Rule,
    /// With `[email]`: such requests naming one address or login, counted whether or
    /// not an account has it (so a refusal tells nothing about the address). Default 5
    /// per hour.
    pub emails_per_address: Rule,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            login_failures_per_ip: Rule {
                max: 100,
                window_secs: 900,
            },
            login_failures_per_account: Rule {
                max: 5,
                window_secs: 900,
            },
            login_failures_per_account_global: Rule {
                max: 100,
                window_secs: 900,
            },
            registrations_per_ip: Rule {
                max: 20,
                window_secs: 3600,
            },
            requests_per_ip: Rule {
                max: 1200,
                window_secs: 60,
            },
            two_factor_failures_per_account: Rule {
                max: 5,
                window_secs: 300,
            },
            emails_per_ip: Rule {
                max: 20,
                window_secs: 3600,
            },
            emails_per_address: Rule {
                max: 5,
                window_secs: 3600,
            },
        }
    }
}

/// Per-account limits on live actions (`[user_limits]`), counted per user id across all
/// of the user's connections, API keys and REST calls. Each is `{max, window_secs}`: at
/// most `max` actions in any `window_secs` seconds (a sliding window, so a burst of `max`
/// passes at once and then about `max / window_secs` per second); `max = 0` disables one.
/// A refused action is answered `rate_limited` with `retry_after_secs` (REST: `429` and
/// `Retry-After`); a WebSocket stays open. The defaults are far above what a person
/// typing does; lift them for bots that post in bulk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UserLimits {
    /// Messages sent and edited, and reactions added or removed (over the WebSocket and
    /// REST), all rooms together. Default 60 per 10 s.
    pub messages: Rule,
    /// `call.start` requests (each may ring every member of a room). Default 10 per 60 s.
    pub call_starts: Rule,
    /// Typing notices relayed (`active` true or false, all rooms together; the 2 s
    /// per-room throttle of `active: true` comes first and is free). Default 30 per 10 s.
    pub typing: Rule,
    /// Presence changes (`presence.set`). Default 30 per 60 s.
    pub presence: Rule,
    /// Invitations sent (to anyone, any room). Default 60 per 10 minutes.
    pub invitations: Rule,
    /// Rooms created. Default 20 per hour.
    pub room_creations: Rule,
    /// Most WebSocket connections one user may hold open at once (all devices and API
    /// keys together); one more is refused. Default 20; 0 disables the cap.
    pub sockets: usize,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            messages: Rule {
                max: 60,
                window_secs: 10,
            },
            call_starts: Rule {
                max: 10,
                window_secs: 60,
            },
            typing: Rule {
                max: 30,
                window_secs: 10,
            },
            presence: Rule {
                max: 30,
                window_secs: 60,
            },
            invitations: Rule {
                max: 60,
                window_secs: 600,
            },
            room_creations: Rule {
                max: 20,
                window_secs: 3600,
            },
            sockets: 20,
        }
    }
}

impl UserLimits {
    /// Every limit disabled (`max = 0`, no socket cap): for benchmarks and load tests
    /// whose clients send far faster than people.
    pub fn disabled() -> Self {
        let off = Rule {
            max: 0,
            window_secs: 1,
        };
        UserLimits {
            messages: off,
            call_starts: off,
            typing: off,
            presence: off,
            invitations: off,
            room_creations: off,
            sockets: 0,
        }
    }
}

/// Cross-origin access for browsers (CORS, and the WebSocket `Origin` check).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsConfig {
    /// Origins (`scheme://host[:port]`) whose pages may call the API and open WebSockets.
    /// Empty (the default): only same-origin pages and non-browser clients.
    pub allowed_origins: Vec<String>,
}

/// Uploaded files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AttachmentsConfig {
    /// Where files are kept; default `<data_dir>/attachments`.
    pub dir: Option<PathBuf>,
    /// Largest upload, in bytes; larger → `413 payload_too_large`, nothing stored.
    /// Default 10 MiB.
    pub max_bytes: usize,
    /// Media types accepted, as sniffed from the bytes (the client's claim is ignored);
    /// others → `415 unsupported_media_type`.
    pub allowed_types: Vec<String>,
    /// Keep files in an S3-compatible bucket instead of `dir`.
    pub s3: Option<S3Config>,
}

/// An S3-compatible bucket (`[attachments.s3]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Config {
    /// The service URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000` (MinIO).
    pub endpoint: String,
    pub bucket: String,
    /// Default `us-east-1`.
    #[serde(default = "default_region")]
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Address the bucket as `endpoint/bucket` (true, the default; what MinIO and most
    /// self-hosted stores want) or as `bucket.endpoint` (false; AWS virtual-host style).
    #[serde(default = "default_true")]
    pub path_style: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_true() -> bool {
    true
}

impl Default for AttachmentsConfig {
    fn default() -> Self {
        AttachmentsConfig {
            dir: None,
            max_bytes: 10 * 1024 * 1024,
            allowed_types: [
                "image/png",
                "image/jpeg",
                "image/gif",
                "image/webp",
                "application/pdf",
                "text/plain",
                "audio/mpeg",
                "audio/ogg",
                "audio/x-wav",
                "video/mp4",
                "video/webm",
                "application/zip",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            s3: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    /// A `tracing` target filter, e.g. `info` or `palaver_server=debug,info`.
    /// `RUST_LOG`, when set, takes precedence.
    pub level: String,
    /// `text` (human-readable, the default) or `json` (one JSON object per line).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// A secret string that prints as `[redacted]`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used, never to log.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Values given on the command line; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<LogOverrides>,
}

/// Logging values given on the command line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LogOverrides {
    pub format: LogFormat,
}

impl Config {
    /// `public_url` without a trailing `/`, or `http://<host>:<port>` when unset (an IPv6
    /// host in brackets).
    pub fn public_base(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", std::net::SocketAddr::new(self.host, self.port)),
        }
    }

    /// Loads the layered configuration. `file` is the TOML file to read if it exists
    /// (`palaver.toml` in the working directory by default); a missing file is not an
    /// error, a malformed one is.
    ///
    /// # Errors
    /// A malformed file, a key in the file that Palaver does not know (the message names
    /// it and the nearest valid key, e.g. `unknown key "prot" in palaver.toml; did you
    /// mean "port"?`), an unparseable environment value, or a flag of the wrong type,
    /// with the offending key in the message.
    pub fn load(file: &Path, overrides: &Overrides) -> Result<Config, Box<figment::Error>> {
        let config: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("PALAVER_").split("__"))
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(Box::new)?;
        let in_file =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::file(file));
        if let Some(key) = unknown_keys(&in_file).into_iter().next() {
            return Err(Box::new(figment::Error::from(format!(
                "unknown key {key:?} in {}{}",
                file.display(),
                suggestion(&key)
            ))));
        }
        Ok(config)
    }

    /// `PALAVER_*` environment variables that name no configuration key, each as a
    /// sentence naming the nearest valid key, for the server to log as warnings. They are
    /// not refused, because other tools share the prefix (the web tests' `PALAVER_BIN`).
    pub fn unknown_env_keys() -> Vec<String> {
        let env = Figment::from(Serialized::defaults(Config::default()))
            .merge(Env::prefixed("PALAVER_").split("__"));
        unknown_keys(&env)
            .into_iter()
            .map(|key| {
                let var = format!("PALAVER_{}", key.replace('.', "__").to_uppercase());
                format!(
                    "ignoring {var}: no configuration key {key:?}{}",
                    suggestion(&key)
                )
            })
            .collect()
    }

    /// Where attachments are stored.
    pub fn attachments_dir(&self) -> PathBuf {
        self.attachments
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("attachments"))
    }

    /// The SQLite database file inside the data directory.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("palaver.db")
    }

    /// Which database `database_url` names: the SQLite file in the data directory when
    /// it is unset, PostgreSQL for a `postgres://` or `postgresql://` URL.
    ///
    /// # Errors
    /// Any other value (the message names its scheme, never the URL, which may hold a
    /// password).
    pub fn database(&self) -> anyhow::Result<DatabaseLocation<'_>> {
        let Some(url) = &self.database_url else {
            return Ok(DatabaseLocation::Sqlite(self.database_path()));
        };
        let url = url.expose();
        match url.split_once("://") {
            Some(("postgres" | "postgresql", _)) => Ok(DatabaseLocation::Postgres(url)),
            Some((scheme, _)) if !scheme.is_empty() && !scheme.contains(['@', '/', ' ']) => {
                anyhow::bail!(
                    "database_url: unsupported scheme {scheme:?}: use a postgres:// or \
                     postgresql:// URL for PostgreSQL, or leave it unset for SQLite in data_dir"
                )
            }
            _ => anyhow::bail!(
                "database_url is not a URL: use postgres://user:password@host:port/database \
                 for PostgreSQL, or leave it unset for SQLite in data_dir"
            ),
        }
    }
}

/// Where the data lives, from [`Config::database`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation<'a> {
    /// The SQLite file at this path.
    Sqlite(PathBuf),
    /// The PostgreSQL database at this URL (may hold a password: do not log it).
    Postgres(&'a str),
}

/// The dotted paths of the keys in `figment` that [`Config`] does not read.
fn unknown_keys(figment: &Figment) -> Vec<String> {
    let Ok(value) = figment.extract::<figment::value::Value>() else {
        return Vec::new();
    };
    let mut unknown = Vec::new();
    // The value already deserialized as a `Config` in `load`; only the ignored paths
    // matter here.
    let _ = serde_ignored::deserialize(&value, |path| unknown.push(path.to_string()))
        .map(|_: Config| ());
    unknown
}

/// `; did you mean "<key>"?` for the valid key nearest to `key` (Jaro–Winkler similarity
/// of at least 0.8 over the dotted paths of every key), or nothing.
fn suggestion(key: &str) -> String {
    let mut known = Vec::new();
    if let Ok(value) = serde_json::to_value(Config::default()) {
        key_paths(&value, String::new(), &mut known);
    }
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, k)) if score >= 0.8 => format!("; did you mean {k:?}?"),
        _ => String::new(),
    }
}

/// Every key path under `value` (tables and their keys), dotted.
fn key_paths(value: &serde_json::Value, prefix: String, out: &mut Vec<String>) {
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            key_paths(v, path, out);
        }
    }
}

#[cfg(test)]
// figment's Jail API returns its large error type by value; that is its design, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "palaver.toml",
                "port = 9000\ndata_dir = \"/from/file\"\n[limits]\nmessage_max_chars = 10\n",
            )?;
            jail.set_env("PALAVER_DATA_DIR", "/from/env");
            jail.set_env("PALAVER_LIMITS__USERNAME_MAX_CHARS", "20");
            let flags = Overrides {
                port: Some(0),
                ..Overrides::default()
            };
            let c = Config::load(Path::new("palaver.toml"), &flags).expect("config loads");
            assert_eq!(c.port, 0, "flag beats file");
            assert_eq!(c.data_dir, PathBuf::from("/from/env"), "env beats file");
            assert_eq!(c.limits.message_max_chars, 10, "file beats default");
            assert_eq!(c.limits.username_max_chars, 20, "nested env key");
            assert_eq!(c.host, IpAddr::V4(Ipv4Addr::LOCALHOST), "default kept");
            Ok(())
        });
    }

    #[test]
    fn an_unknown_key_is_refused_with_the_nearest_valid_one() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("palaver.toml", "prot = 9001\n")?;
            let e = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("\"prot\""), "{text}");
            assert!(text.contains("did you mean \"port\""), "{text}");
            jail.create_file("palaver.toml", "[limits]\nmessage_max_char = 9\n")?;
            let text = Config::load(Path::new("palaver.toml"), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("\"limits.message_max_char\"")
                    && text.contains("did you mean \"limits.message_max_chars\""),
                "{text}"
            );
            jail.create_file(
                "palaver.toml",
                "[rate_limits.requests_per_ip]\nmax = 1\nwindow = 5\n",
            )?;
            let text = Config::load(Path::new("palaver.toml"), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(
                text.contains("\"rate_limits.requests_per_ip.window\""),
                "{text}"
            );
            jail.create_file(
                "palaver.toml",
                "port = 9001\n[limits]\nmessage_max_chars = 9\n",
            )?;
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.port, 9001, "known keys still load");
            Ok(())
        });
    }

    #[test]
    fn unknown_environment_keys_are_reported_not_refused() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("PALAVER_PROT", "9001");
            jail.set_env("PALAVER_PORT", "9002");
            let c = Config::load(Path::new("absent.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.port, 9002);
            // The environment may hold other PALAVER_* variables (CI's own, say): look
            // only at these two.
            let warnings = Config::unknown_env_keys();
            assert!(
                warnings
                    .iter()
                    .any(|w| w.contains("PALAVER_PROT") && w.contains("did you mean \"port\"")),
                "{warnings:?}"
            );
            assert!(
                !warnings.iter().any(|w| w.contains("PALAVER_PORT")),
                "{warnings:?}"
            );
            Ok(())
        });
    }

    #[test]
    fn missing_file_gives_defaults() {
        figment::Jail::expect_with(|_jail| {
            let c = Config::load(Path::new("absent.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.port, 8080);
            assert_eq!(c.data_dir, PathBuf::from("./data"));
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_come_from_a_list_or_an_environment_string() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "palaver.toml",
                "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\nforwarded_header = \"forwarded\"\n",
            )?;
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.trusted_proxies.len(), 2);
            assert_eq!(c.forwarded_header, crate::net::ForwardedHeader::Forwarded);
            jail.set_env("PALAVER_TRUSTED_PROXIES", "192.0.2.1, 2001:db8::/32");
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            let nets: Vec<String> = c.trusted_proxies.iter().map(|n| n.to_string()).collect();
            assert_eq!(nets, ["192.0.2.1/32", "2001:db8::/32"]);
            jail.set_env("PALAVER_TRUSTED_PROXIES", "10.0.0.0/33");
            let e = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap_err();
            assert!(e.to_string().contains("10.0.0.0/33"), "{e}");
            Ok(())
        });
        let c = Config::default();
        assert!(
            c.trusted_proxies.is_empty(),
            "no proxy is trusted by default"
        );
    }

    #[test]
    fn the_database_is_sqlite_unless_a_postgres_url_is_given() {
        let mut c = Config::default();
        assert_eq!(
            c.database().unwrap(),
            DatabaseLocation::Sqlite(PathBuf::from("./data/palaver.db"))
        );
        for url in [
            "postgres://palaver:hunter2@db:5432/palaver",
            "postgresql://localhost/palaver?sslmode=require",
        ] {
            c.database_url = Some(Secret::new(url));
            assert_eq!(c.database().unwrap(), DatabaseLocation::Postgres(url));
        }
        for (url, says) in [
            (
                "mysql://root:hunter2@db/palaver",
                "unsupported scheme \"mysql\"",
            ),
            (
                "sqlite://./data/palaver.db",
                "unsupported scheme \"sqlite\"",
            ),
            ("db.example.com:hunter2", "not a URL"),
            ("", "not a URL"),
        ] {
            c.database_url = Some(Secret::new(url));
            let e = c.database().unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("hunter2"), "the error shows the password: {e}");
        }
        figment::Jail::expect_with(|jail| {
            jail.set_env("PALAVER_DATABASE_URL", "postgres://from-env/palaver");
            let c = Config::load(Path::new("absent.toml"), &Overrides::default()).unwrap();
            assert_eq!(
                c.database().unwrap(),
                DatabaseLocation::Postgres("postgres://from-env/palaver")
            );
            assert!(
                !format!("{c:?}").contains("from-env"),
                "the URL is a secret"
            );
            let flags = Overrides {
                database_url: Some(Secret::new("postgres://from-flag/palaver")),
                ..Overrides::default()
            };
            let c = Config::load(Path::new("absent.toml"), &flags).unwrap();
            assert_eq!(
                c.database().unwrap(),
                DatabaseLocation::Postgres("postgres://from-flag/palaver"),
                "flag beats env"
            );
            Ok(())
        });
    }

    #[test]
    fn redis_url_comes_from_file_env_or_flag_and_is_a_secret() {
        assert!(Config::default().redis_url.is_none(), "unset by default");
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "palaver.toml",
                r#"redis_url = "redis://:hunter2@file:6379""#,
            )?;
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            assert_eq!(
                c.redis_url.as_ref().map(Secret::expose),
                Some("redis://:hunter2@file:6379")
            );
            assert!(!format!("{c:?}").contains("hunter2"), "the URL is a secret");
            jail.set_env("PALAVER_REDIS_URL", "redis://env:6379");
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            assert_eq!(
                c.redis_url.as_ref().map(Secret::expose),
                Some("redis://env:6379"),
                "env beats file"
            );
            let flags = Overrides {
                redis_url: Some(Secret::new("redis://flag:6379")),
                ..Overrides::default()
            };
            let c = Config::load(Path::new("palaver.toml"), &flags).unwrap();
            assert_eq!(
                c.redis_url.as_ref().map(Secret::expose),
                Some("redis://flag:6379"),
                "flag beats env"
            );
            Ok(())
        });
    }

    #[test]
    fn sign_in_providers_load_from_a_file_or_the_environment_and_hide_their_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "palaver.toml",
                r#"
                [[auth.oidc]]
                id = "keycloak"
                issuer = "https://sso.example.com/realms/main"
                client_id = "palaver"
                client_secret = "kc-hunter2"
                display_name = "Company SSO"

                [[auth.oidc]]
                id = "google"
                issuer = "https://accounts.google.com"
                client_id = "123.apps.googleusercontent.com"
                client_secret = "g-hunter2"
                scopes = ["openid", "email"]

                [auth.github]
                client_id = "Iv1.abc"
                client_secret = "gh-hunter2"
                "#,
            )?;
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.auth.oidc.len(), 2);
            assert_eq!(c.auth.oidc[0].display_name.as_deref(), Some("Company SSO"));
            assert_eq!(c.auth.oidc[0].scopes, ["openid", "email", "profile"]);
            assert_eq!(c.auth.oidc[1].scopes, ["openid", "email"]);
            let github = c.auth.github.as_ref().unwrap();
            assert_eq!(github.api_url, "https://api.github.com");
            assert_eq!(github.display_name, "GitHub");
            c.auth.check_sign_in_providers().unwrap();
            let printed = format!("{c:?}");
            assert!(
                !printed.contains("hunter2"),
                "a secret is printed: {printed}"
            );

            jail.set_env(
                "PALAVER_AUTH__OIDC",
                r#"[{id="local", issuer="http://127.0.0.1:9999", client_id="c", client_secret="s"}]"#,
            );
            let c = Config::load(Path::new("palaver.toml"), &Overrides::default()).unwrap();
            assert_eq!(c.auth.oidc.len(), 1, "env beats file");
            assert_eq!(c.auth.oidc[0].id, "local");
            assert_eq!(c.auth.oidc[0].client_secret.expose(), "s");
            Ok(())
        });
    }

    #[test]
    fn malformed_sign_in_providers_are_refused_by_name() {
        let provider = |id: &str, issuer: &str| OidcProviderConfig {
            id: id.into(),
            issuer: issuer.into(),
            client_id: "c".into(),
            client_secret: Secret::new("s3cret-value"),
            scopes: default_oidc_scopes(),
            display_name: None,
        };
        for (providers, says) in [
            (vec![provider("Bad Id", "https://a")], "Bad Id"),
            (vec![provider("github", "https://a")], "reserved"),
            (
                vec![provider("a", "https://a"), provider("a", "https://b")],
                "used twice",
            ),
            (vec![provider("a", "not a url")], "not an http(s) URL"),
            (vec![provider("a", "ftp://x")], "not an http(s) URL"),
        ] {
            let auth = AuthConfig {
                oidc: providers,
                ..AuthConfig::default()
            };
            let e = auth.check_sign_in_providers().unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }

    #[test]
    fn secret_does_not_print() {
        let s = Secret::new("hunter2hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
    }
}
