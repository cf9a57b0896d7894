//! Web Push (`[push]`, `docs/notifications.md`): new direct messages and mentions, pushed
//! to the browsers of members who have no socket open anywhere.
//!
//! - Transport: RFC 8030, one `POST` to the subscription's endpoint with `TTL`
//!   (`push.ttl_secs`) and `Urgency: high`, through reqwest (rustls), redirects off, with
//!   a timeout (`push.timeout_secs`) and a resolver that refuses private and loopback
//!   addresses (an endpoint is a URL a user gave us).
//! - Encryption: RFC 8291 (`Content-Encoding: aes128gcm`, RFC 8188) with the browser's
//!   `p256dh` key and `auth` secret, by the `web-push-native` crate (RustCrypto p256,
//!   hkdf, aes-gcm). The push service sees the endpoint, the sizes and the times, never
//!   the content.
//! - Authentication: VAPID, RFC 8292: `Authorization: vapid t=<JWT>, k=<public key>`, the
//!   JWT signed ES256 with the server's key pair ([`VapidKey`]), `aud` the endpoint's
//!   origin, `exp` 12 hours ahead, `sub` `push.subject` (default `public_url`).
//!
//! [`Pusher::notify`] never waits: it queues the message (bounded, [`QUEUE`]; a full queue
//! drops it, logged and counted) and one task delivers the queue, at most
//! `push.max_concurrent` messages at once, each to at most [`PER_MESSAGE`] endpoints at
//! once. Who gets a push is decided there ([`deliver`]): members other than the sender,
//! for a DM or when mentioned, whose level for the room is not `none`, who have not muted
//! it, and who have no socket open (presence, cluster-wide); their subscriptions of live
//! sessions. A push service answering 404 or 410 ends the subscription (it is deleted);
//! other failures are logged (the endpoint's host and the status, never the URL, which is
//! a capability) and counted in `palaver_push_notifications_total{result="failed"}`; none
//! is retried.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use futures_util::StreamExt as _;
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use palaver_protocol::notifications::PushNotification;
use palaver_protocol::{Message, RoomKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use crate::config::PushConfig;
use crate::metrics::Metrics;
use crate::presence::Presence;
use crate::store::{NotificationLevel, PushSubscriptionRow, Store, VapidKeyRow};

/// Most messages waiting for delivery; past this, new ones are dropped (and logged).
pub const QUEUE: usize = 1024;

/// Most endpoints one message is delivered to at once.
pub const PER_MESSAGE: usize = 4;

/// The most characters of a message's text a push carries (`…` added when cut).
pub const PREVIEW_CHARS: usize = 200;

/// How long a VAPID token is valid (RFC 8292 §2: at most 24 hours).
const VAPID_TOKEN_SECS: u64 = 12 * 3600;

/// Longest endpoint URL accepted.
pub const MAX_ENDPOINT_CHARS: usize = 2048;

/// base64url, padding optional, trailing bits tolerated: what browsers and libraries
/// give for `p256dh` and `auth`.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Decodes base64url (padding optional).
pub fn decode_b64url(s: &str) -> Option<Vec<u8>> {
    B64.decode(s).ok()
}

/// Encodes as base64url without padding.
pub fn encode_b64url(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Checks a subscription's keys (RFC 8291 §2, §3.2): `p256dh` must decode to an
/// uncompressed point on P-256 (65 bytes, `0x04 || X || Y`), `auth` to 16 bytes. Returns
/// both re-encoded canonically (base64url without padding).
///
/// # Errors
/// `(field, message)` naming the key at fault (`keys.p256dh` or `keys.auth`).
pub fn check_keys(p256dh: &str, auth: &str) -> Result<(String, String), (&'static str, String)> {
    let point = decode_b64url(p256dh).ok_or(("keys.p256dh", "p256dh must be base64url".into()))?;
    if point.len() != 65 || point[0] != 4 || p256::PublicKey::from_sec1_bytes(&point).is_err() {
        return Err((
            "keys.p256dh",
            "p256dh must be an uncompressed P-256 public key (65 bytes)".into(),
        ));
    }
    let secret = decode_b64url(auth).ok_or(("keys.auth", "auth must be base64url".into()))?;
    if secret.len() != 16 {
        return Err(("keys.auth", "auth must be 16 bytes".into()));
    }
    Ok((encode_b64url(&point), encode_b64url(&secret)))
}

/// Checks a subscription's endpoint: an `https://` URL (at most [`MAX_ENDPOINT_CHARS`])
/// whose host is a domain name with a dot, not `localhost`, not an IP address, without
/// user or password. With `allow_loopback_http` (`push.allow_loopback_http`, for tests),
/// `http://` and `https://` URLs on loopback addresses or `localhost` pass too.
///
/// # Errors
/// A message for the client saying what is wrong.
pub fn check_endpoint(raw: &str, allow_loopback_http: bool) -> Result<url::Url, &'static str> {
    if raw.chars().count() > MAX_ENDPOINT_CHARS {
        return Err("endpoint must be at most 2048 characters");
    }
    let url = url::Url::parse(raw).map_err(|_| "endpoint must be an absolute URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("endpoint must not carry a user name or password");
    }
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if allow_loopback_http && loopback && matches!(url.scheme(), "http" | "https") {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err("endpoint must be an https:// URL");
    }
    match url.host() {
        Some(url::Host::Domain(d))
            if d.contains('.') && !d.ends_with(".localhost") && !d.ends_with('.') =>
        {
            Ok(url)
        }
        Some(url::Host::Domain(_)) | None => {
            Err("endpoint must name a push service by its domain name")
        }
        Some(_) => Err("endpoint must name a push service by its domain name, not an IP address"),
    }
}

/// The server's VAPID key pair (RFC 8292): ECDSA P-256, signing ES256 JWTs.
#[derive(Clone)]
pub struct VapidKey {
    signing: p256::ecdsa::SigningKey,
    /// The uncompressed public point, 65 bytes.
    public: Vec<u8>,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random key pair, as a row to store.
    pub fn generate(created_at: String) -> VapidKeyRow {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        VapidKeyRow {
            private_key: secret.to_bytes().to_vec(),
            public_key: secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            created_at,
        }
    }

    /// The key pair of the private scalar `private_key` (32 bytes, big-endian).
    ///
    /// # Errors
    /// Not 32 bytes, or not a valid P-256 scalar (zero, or not below the group order).
    pub fn from_private(private_key: &[u8]) -> anyhow::Result<VapidKey> {
        anyhow::ensure!(
            private_key.len() == 32,
            "a VAPID private key is a P-256 scalar of 32 bytes, not {}",
            private_key.len()
        );
        let secret = p256::SecretKey::from_slice(private_key)
            .map_err(|_| anyhow::anyhow!("a VAPID private key is a P-256 scalar of 32 bytes"))?;
        Ok(VapidKey {
            public: secret
                .public_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            signing: p256::ecdsa::SigningKey::from(&secret),
        })
    }

    /// The public key, base64url without padding: the `applicationServerKey` browsers
    /// subscribe with, and the `k` of the `Authorization` header.
    pub fn public_key(&self) -> String {
        encode_b64url(&self.public)
    }

    /// The `Authorization` header value for a push to an endpoint of origin `aud`
    /// (`https://host[:port]`): `vapid t=<ES256 JWT {aud, exp, sub}>, k=<public key>`
    /// (RFC 8292 §3), `exp` being `exp_unix` (seconds since the epoch).
    pub fn authorization(&self, aud: &str, sub: &str, exp_unix: u64) -> String {
        let header = encode_b64url(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": aud, "exp": exp_unix, "sub": sub });
        let signed = format!("{header}.{}", encode_b64url(claims.to_string().as_bytes()));
        let signature: p256::ecdsa::Signature = self.signing.sign(signed.as_bytes());
        format!(
            "vapid t={signed}.{}, k={}",
            encode_b64url(&signature.to_bytes()),
            self.public_key()
        )
    }
}

/// A committed message to notify of.
#[derive(Debug)]
struct Job {
    message: Message,
    /// The users the message mentions (members or not: checked at delivery).
    mentioned: Vec<String>,
}

/// What [`deliver`] needs, shared by its tasks.
struct Inner {
    store: Store,
    presence: Arc<dyn Presence>,
    metrics: Arc<Metrics>,
    http: reqwest::Client,
    vapid: VapidKey,
    subject: String,
    ttl: Duration,
    preview: bool,
    allow_loopback_http: bool,
}

/// Delivers Web Push for one node. Built once at startup from `[push]`.
pub struct Pusher {
    inner: Arc<Inner>,
    max_subscriptions: usize,
    queue: mpsc::Sender<Job>,
    /// Set by [`Pusher::close`]: the task delivers what is queued, then ends.
    closing: watch::Sender<bool>,
    /// The delivering task; taken by [`Pusher::close`].
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("vapid", &self.inner.vapid)
            .field("subject", &self.inner.subject)
            .finish_non_exhaustive()
    }
}

impl Pusher {
    /// Checks `config`, loads the VAPID key pair (`push.vapid_private_key`, else the one
    /// in the database, created there by the first node that needs one) and starts the
    /// delivering task (needs a Tokio runtime). `public_base` is the default `sub`.
    ///
    /// # Errors
    /// A `vapid_private_key` that is not a base64url P-256 scalar, a `subject` that is not
    /// a `mailto:` or `https://` (or `http://`) URL, a zero `max_concurrent`, or the
    /// database failed.
    pub async fn start(
        config: &PushConfig,
        public_base: String,
        store: Store,
        presence: Arc<dyn Presence>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Pusher> {
        let vapid = match &config.vapid_private_key {
            Some(key) => {
                let bytes = decode_b64url(key.expose().trim())
                    .context("push.vapid_private_key must be base64url")?;
                VapidKey::from_private(&bytes).context("push.vapid_private_key")?
            }
            None => {
                let row = match store.notifications.vapid_key().await? {
                    Some(row) => row,
                    None => {
                        store
                            .notifications
                            .create_vapid_key(&VapidKey::generate(crate::service::now_rfc3339()))
                            .await?
                    }
                };
                VapidKey::from_private(&row.private_key).context("the stored VAPID key")?
            }
        };
        let subject = config.subject.clone().unwrap_or(public_base);
        anyhow::ensure!(
            ["mailto:", "https://", "http://"]
                .iter()
                .any(|p| subject.starts_with(p)),
            "push.subject must be a mailto: or https:// URL (RFC 8292 §2.1), got {subject:?}"
        );
        anyhow::ensure!(
            config.max_concurrent > 0,
            "push.max_concurrent must be at least 1"
        );
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .connect_timeout(Duration::from_secs(config.timeout_secs.clamp(1, 5)))
            .user_agent(concat!("palaver/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PublicOnly {
                allow_loopback: config.allow_loopback_http,
            }))
            .build()
            .context("building the Web Push HTTP client")?;
        let inner = Arc::new(Inner {
            store,
            presence,
            metrics,
            http,
            vapid,
            subject,
            ttl: Duration::from_secs(config.ttl_secs),
            preview: config.preview,
            allow_loopback_http: config.allow_loopback_http,
        });
        let (queue, jobs) = mpsc::channel(QUEUE);
        let (closing, closed) = watch::channel(false);
        let worker = tokio::spawn(run(
            inner.clone(),
            jobs,
            closed,
            Arc::new(Semaphore::new(config.max_concurrent)),
        ));
        Ok(Pusher {
            inner,
            max_subscriptions: config.max_subscriptions_per_user.max(1),
            queue,
            closing,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The VAPID public key, base64url without padding.
    pub fn public_key(&self) -> String {
        self.inner.vapid.public_key()
    }

    /// Whether `http://` loopback endpoints are accepted (`push.allow_loopback_http`).
    pub fn allows_loopback_http(&self) -> bool {
        self.inner.allow_loopback_http
    }

    /// Subscriptions kept per account (`push.max_subscriptions_per_user`).
    pub fn max_subscriptions(&self) -> usize {
        self.max_subscriptions
    }

    /// Queues `message` (committed, new) for delivery to those it concerns: the other
    /// member of a DM, and `mentioned`. Never waits; a full queue drops it (logged,
    /// counted as `dropped`).
    pub fn notify(&self, message: &Message, mentioned: Vec<String>) {
        let job = Job {
            message: message.clone(),
            mentioned,
        };
        if self.queue.try_send(job).is_err() {
            self.inner.count("dropped");
            tracing::warn!(room_id = %message.room_id, "push dropped: the delivery queue is full");
        }
    }

    /// Stops taking messages and waits up to `within` for what is queued or in flight to
    /// be delivered (at shutdown); what is left after that is dropped.
    pub async fn close(&self, within: Duration) {
        let _ = self.closing.send(true);
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(mut worker) = worker {
            if tokio::time::timeout(within, &mut worker).await.is_err() {
                tracing::warn!("Web Push still delivering at the shutdown deadline");
                worker.abort();
            }
        }
    }
}

impl Inner {
    fn count(&self, result: &str) {
        self.metrics
            .push_notifications
            .get_or_create(&Metrics::label("result", result))
            .inc();
    }
}

/// The delivering task: takes jobs off the queue, each under a permit of `permits`, until
/// closed; then delivers what is still queued and waits for every delivery.
async fn run(
    inner: Arc<Inner>,
    mut jobs: mpsc::Receiver<Job>,
    mut closed: watch::Receiver<bool>,
    permits: Arc<Semaphore>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            job = jobs.recv() => {
                let Some(job) = job else { break };
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let inner = inner.clone();
                tasks.spawn(async move {
                    deliver(&inner, job).await;
                    drop(permit);
                });
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = closed.changed() => break,
        }
    }
    jobs.close();
    while let Ok(job) = jobs.try_recv() {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let inner = inner.clone();
        tasks.spawn(async move {
            deliver(&inner, job).await;
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Delivers one message: to whom (see the module docs), then one push per subscription.
/// Failures are logged, never returned.
async fn deliver(inner: &Inner, job: Job) {
    if let Err(e) = try_deliver(inner, &job).await {
        inner.count("failed");
        tracing::warn!(room_id = %job.message.room_id, error = %e, "push delivery failed");
    }
}

async fn try_deliver(inner: &Inner, job: &Job) -> anyhow::Result<()> {
    let message = &job.message;
    let Some(room) = inner.store.rooms.room_by_id(&message.room_id).await? else {
        return Ok(());
    };
    let dm = room.kind == RoomKind::Dm;
    let mentioned: HashSet<&str> = job.mentioned.iter().map(String::as_str).collect();
    if !dm && mentioned.is_empty() {
        return Ok(());
    }
    let sender = message.sender.id.as_str();
    let candidates: Vec<String> = inner
        .store
        .rooms
        .members(&room.id)
        .await?
        .into_iter()
        .map(|m| m.user_id)
        .filter(|u| u != sender && (dm || mentioned.contains(u.as_str())))
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let settings: HashMap<String, _> = inner
        .store
        .notifications
        .notification_settings_of(&room.id, &candidates)
        .await?
        .into_iter()
        .map(|s| (s.user_id.clone(), s))
        .collect();
    let now = crate::service::now_rfc3339();
    let mut recipients = Vec::new();
    for user in candidates {
        if let Some(s) = settings.get(&user) {
            // DMs at any level but none; mentions at all or mentions.
            if s.level == NotificationLevel::None {
                continue;
            }
            if s.muted_until.as_deref().is_some_and(|t| t > now.as_str()) {
                continue;
            }
        }
        // A mention by someone the recipient blocked is not pushed (a DM from them
        // cannot be sent at all).
        if !dm && inner.store.blocks.is_blocked(&user, sender).await? {
            continue;
        }
        if inner.presence.is_connected(&user).await {
            continue;
        }
        recipients.push(user);
    }
    if recipients.is_empty() {
        return Ok(());
    }
    let targets = inner
        .store
        .notifications
        .push_targets(&recipients, &now)
        .await?;
    let body = if inner.preview {
        preview(&message.content)
    } else {
        String::new()
    };
    let payload = |user: &str| PushNotification {
        kind: "message".into(),
        room_id: room.id.clone(),
        room_name: room.name.clone(),
        room_kind: room.kind,
        message_id: message.id.clone(),
        seq: message.seq,
        sender: message.sender.clone(),
        body: body.clone(),
        mention: mentioned.contains(user),
    };
    futures_util::stream::iter(targets)
        .for_each_concurrent(PER_MESSAGE, |target| {
            let json = serde_json::to_vec(&payload(&target.user_id)).unwrap_or_default();
            async move {
                let result = send(inner, &target, json).await;
                inner.count(result);
            }
        })
        .await;
    Ok(())
}

/// The start of `text`, at most [`PREVIEW_CHARS`] characters (`…` added when cut).
fn preview(text: &str) -> String {
    let mut chars = text.char_indices();
    match chars.nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// One push to `target`; returns the outcome for the counter: `delivered`, `gone` (404 or
/// 410: the subscription is deleted) or `failed`.
async fn send(inner: &Inner, target: &PushSubscriptionRow, payload: Vec<u8>) -> &'static str {
    let host = url::Url::parse(&target.endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    match try_send(inner, target, payload).await {
        Ok(status) if (200..300).contains(&status) => "delivered",
        Ok(status @ (404 | 410)) => {
            tracing::info!(%host, status, "push subscription gone: deleting it");
            if let Err(e) = inner
                .store
                .notifications
                .delete_gone_subscription(&target.id, &target.endpoint)
                .await
            {
                tracing::warn!(error = %e, "deleting a gone push subscription");
            }
            "gone"
        }
        Ok(status) => {
            tracing::warn!(%host, status, "push refused by the push service");
            "failed"
        }
        Err(e) => {
            tracing::warn!(%host, error = %format!("{e:#}"), "push not delivered");
            "failed"
        }
    }
}

/// Encrypts `payload` for `target`, signs, posts; returns the HTTP status.
async fn try_send(
    inner: &Inner,
    target: &PushSubscriptionRow,
    payload: Vec<u8>,
) -> anyhow::Result<u16> {
    let endpoint = check_endpoint(&target.endpoint, inner.allow_loopback_http)
        .map_err(|e| anyhow::anyhow!("stored endpoint refused: {e}"))?;
    let point = decode_b64url(&target.p256dh).context("p256dh")?;
    let ua_public = p256::PublicKey::from_sec1_bytes(&point).context("p256dh")?;
    let auth: [u8; 16] = decode_b64url(&target.auth)
        .context("auth")?
        .try_into()
        .map_err(|_| anyhow::anyhow!("auth is not 16 bytes"))?;
    let uri: axum::http::Uri = endpoint.as_str().parse().context("endpoint")?;
    let mut request =
        web_push_native::WebPushBuilder::new(uri, ua_public, web_push_native::Auth::from(auth))
            .with_valid_duration(inner.ttl)
            .build(payload)
            .map_err(|e| anyhow::anyhow!("encrypting: {e}"))?;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + VAPID_TOKEN_SECS;
    let aud = endpoint.origin().ascii_serialization();
    let headers = request.headers_mut();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        inner
            .vapid
            .authorization(&aud, &inner.subject, exp)
            .parse()
            .context("Authorization")?,
    );
    headers.insert("urgency", reqwest::header::HeaderValue::from_static("high"));
    let request = reqwest::Request::try_from(request).context("building the request")?;
    let response = inner.http.execute(request).await?;
    Ok(response.status().as_u16())
}

/// Resolves push services' host names to public addresses only: an endpoint is a URL a
/// user gave, and must not make the server post to its own network (loopback, private,
/// link-local, unique-local addresses are dropped; loopback is kept with
/// `push.allow_loopback_http`).
struct PublicOnly {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| public(a.ip()) || (allow_loopback && a.ip().is_loopback()))
                .collect();
            if addrs.is_empty() {
                return Err(format!("{host} has no public address").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address.
fn public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space, RFC 6598
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if let Some(v4) = v6.to_ipv4_mapped() {
                return public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local, RFC 4193
                || (first & 0xffc0) == 0xfe80) // link local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_on_a_domain_unless_loopback_is_allowed() {
        assert!(check_endpoint("https://fcm.googleapis.com/fcm/send/abc", false).is_ok());
        assert!(check_endpoint(
            "https://updates.push.services.mozilla.com/wpush/v2/x",
            false
        )
        .is_ok());
        for bad in [
            "http://fcm.googleapis.com/x",
            "https://127.0.0.1/x",
            "https://[::1]/x",
            "https://10.0.0.1/x",
            "https://localhost/x",
            "https://intranet/x",
            "https://a.localhost/x",
            "https://user:pw@push.example.com/x",
            "ftp://push.example.com/x",
            "not a url",
        ] {
            assert!(check_endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://127.0.0.1:9999/push/1", true).is_ok());
        assert!(check_endpoint("http://localhost:9999/push/1", true).is_ok());
        assert!(check_endpoint("http://10.0.0.1/x", true).is_err());
        let long = format!(
            "https://push.example.com/{}",
            "a".repeat(MAX_ENDPOINT_CHARS)
        );
        assert!(check_endpoint(&long, false).is_err());
    }

    #[test]
    fn keys_must_be_a_p256_point_and_16_bytes() {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let point = secret.public_key().to_encoded_point(false);
        let p256dh = encode_b64url(point.as_bytes());
        let auth = encode_b64url(&[7u8; 16]);
        let (p, a) = check_keys(&p256dh, &format!("{auth}==")).expect("valid keys");
        assert_eq!((p.as_str(), a.as_str()), (p256dh.as_str(), auth.as_str()));
        let compressed = encode_b64url(secret.public_key().to_encoded_point(true).as_bytes());
        assert_eq!(check_keys(&compressed, &auth).unwrap_err().0, "keys.p256dh");
        let mut off_curve = point.as_bytes().to_vec();
        off_curve[64] ^= 1;
        assert_eq!(
            check_keys(&encode_b64url(&off_curve), &auth).unwrap_err().0,
            "keys.p256dh"
        );
        assert_eq!(check_keys("%%%", &auth).unwrap_err().0, "keys.p256dh");
        assert_eq!(
            check_keys(&p256dh, &encode_b64url(&[1u8; 15]))
                .unwrap_err()
                .0,
            "keys.auth"
        );
    }

    #[test]
    fn vapid_tokens_verify_with_the_public_key() {
        use p256::ecdsa::signature::Verifier as _;
        let row = VapidKey::generate("t".into());
        let key = VapidKey::from_private(&row.private_key).unwrap();
        assert_eq!(key.public_key(), encode_b64url(&row.public_key));
        let header = key.authorization("https://push.example.com", "mailto:ops@example.com", 42);
        let (t, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, key.public_key());
        let (signed, signature) = t.rsplit_once('.').unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&decode_b64url(signed.split_once('.').unwrap().1).unwrap())
                .unwrap();
        assert_eq!(claims["aud"], "https://push.example.com");
        assert_eq!(claims["exp"], 42);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
        let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&row.public_key).unwrap();
        let signature =
            p256::ecdsa::Signature::from_slice(&decode_b64url(signature).unwrap()).unwrap();
        assert!(verifying.verify(signed.as_bytes(), &signature).is_ok());
        assert!(VapidKey::from_private(&[0u8; 32]).is_err());
        assert!(VapidKey::from_private(&[1u8; 31]).is_err());
    }

    #[test]
    fn previews_are_cut_at_a_character_boundary() {
        assert_eq!(preview("short"), "short");
        let long = "é".repeat(PREVIEW_CHARS + 5);
        let cut = preview(&long);
        assert_eq!(cut.chars().count(), PREVIEW_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn only_public_addresses_resolve() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "100.64.0.1",
            "::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!public(private.parse().unwrap()), "{private}");
        }
        for open in ["8.8.8.8", "142.250.0.1", "2001:4860:4860::8888"] {
            assert!(public(open.parse().unwrap()), "{open}");
        }
    }
}
