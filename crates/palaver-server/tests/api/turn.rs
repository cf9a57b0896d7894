//! TURN credentials against a real coturn: run with `--features turn-tests` and coturn's
//! `turnserver` on PATH (`.ci/run` installs it); never skipped when enabled, and a missing
//! `turnserver` fails the suite.
//!
//! Each test starts its own coturn on a free loopback UDP port, in the mode Palaver's
//! credentials are made for (`use-auth-secret`, `static-auth-secret`: the TURN REST API
//! scheme), and asks it for a relay with the minimal STUN/TURN client below (RFC 5389 and
//! RFC 5766 over UDP): an Allocate request, the 401 challenge with REALM and NONCE, and
//! the retry signed with MESSAGE-INTEGRITY under the long-term credential key
//! `MD5(username ":" realm ":" password)`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use md5::{Digest as _, Md5};
use palaver_client::Client;
use palaver_server::config::Secret;
use serde_json::Value;
use sha1::Sha1;
use tempfile::TempDir;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::helpers::TestServer;

/// The realm every test coturn runs with.
const REALM: &str = "palaver.test";

// Message types (RFC 5389 §6 and §18.1, RFC 5766 §13).
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ALLOCATE_REQUEST: u16 = 0x0003;
const ALLOCATE_SUCCESS: u16 = 0x0103;
const ALLOCATE_ERROR: u16 = 0x0113;

const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;

// Attribute types (RFC 5389 §18.2, RFC 5766 §14).
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_REALM: u16 = 0x0014;
const ATTR_NONCE: u16 = 0x0015;
const ATTR_XOR_RELAYED_ADDRESS: u16 = 0x0016;
const ATTR_REQUESTED_TRANSPORT: u16 = 0x0019;
const ATTR_FINGERPRINT: u16 = 0x8028;

/// REQUESTED-TRANSPORT's value for UDP: protocol 17 and three reserved bytes.
const TRANSPORT_UDP: [u8; 4] = [17, 0, 0, 0];

// ---------------------------------------------------------------------------------------
// The tests.

/// The client below against coturn alone, with credentials made here by the TURN REST API
/// formula: if this fails, the fault is in the test or the coturn setup, not in Palaver.
#[tokio::test]
async fn the_turn_client_is_allocated_a_relay_with_credentials_made_here() {
    let coturn = Coturn::start("made-here-secret").await;
    let username = format!("{}:someone", unix_now() + 600);
    let password = rest_credential("made-here-secret", &username);

    let outcome = allocate(coturn.addr, &username, &password).await;
    coturn.assert_relayed(&outcome);

    let wrong = rest_credential("not-the-secret", &username);
    let outcome = allocate(coturn.addr, &username, &wrong).await;
    coturn.assert_refused(&outcome, "a credential made with another secret");
}

#[tokio::test]
async fn issued_turn_credentials_open_a_relay_on_coturn() {
    let secret = "shared-turn-secret-1";
    let coturn = Coturn::start(secret).await;
    let (_server, alice) = palaver(&coturn, secret, 600).await;

    let issued = ice_servers(&alice, &coturn, 600).await;
    let outcome = allocate(coturn.addr, &issued.username, &issued.credential).await;
    coturn.assert_relayed(&outcome);
    assert_eq!(
        issued.credential,
        rest_credential(secret, &issued.username),
        "credential = base64(HMAC-SHA1(turn_secret, username))"
    );
}

#[tokio::test]
async fn a_tampered_turn_credential_is_refused() {
    let secret = "shared-turn-secret-2";
    let coturn = Coturn::start(secret).await;
    let (_server, alice) = palaver(&coturn, secret, 600).await;
    let issued = ice_servers(&alice, &coturn, 600).await;

    // The same username with one bit of the credential flipped.
    let mut mac = base64::engine::general_purpose::STANDARD
        .decode(&issued.credential)
        .expect("the credential is standard base64");
    mac[0] ^= 0x01;
    let tampered = base64::engine::general_purpose::STANDARD.encode(&mac);
    let outcome = allocate(coturn.addr, &issued.username, &tampered).await;
    coturn.assert_refused(&outcome, "the issued username with a tampered credential");

    // The issued credential under another user's id (same expiry).
    let (expiry, _) = issued.username.split_once(':').unwrap();
    let other = format!("{expiry}:{}", uuid::Uuid::now_v7());
    let outcome = allocate(coturn.addr, &other, &issued.credential).await;
    coturn.assert_refused(&outcome, "the issued credential with another user id");

    // The untouched pair still works: the refusals were for the tampering.
    let outcome = allocate(coturn.addr, &issued.username, &issued.credential).await;
    coturn.assert_relayed(&outcome);
}

#[tokio::test]
async fn expired_turn_credentials_are_refused() {
    // Two seconds rather than one, so that using them at once is safely before expiry
    // even on a slow machine.
    let ttl = 2;
    let secret = "shared-turn-secret-3";
    let coturn = Coturn::start(secret).await;
    let (_server, alice) = palaver(&coturn, secret, ttl).await;
    let issued = ice_servers(&alice, &coturn, ttl).await;

    let outcome = allocate(coturn.addr, &issued.username, &issued.credential).await;
    coturn.assert_relayed(&outcome);

    // coturn refuses a username whose timestamp is in the past.
    while unix_now() <= issued.expiry + 1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let outcome = allocate(coturn.addr, &issued.username, &issued.credential).await;
    coturn.assert_refused(&outcome, "credentials past their expiry");
}

#[tokio::test]
async fn turn_credentials_signed_with_another_secret_are_refused() {
    let coturn = Coturn::start("the-secret-coturn-has").await;
    let (_server, alice) = palaver(&coturn, "a-secret-palaver-has", 600).await;
    let issued = ice_servers(&alice, &coturn, 600).await;

    let outcome = allocate(coturn.addr, &issued.username, &issued.credential).await;
    coturn.assert_refused(
        &outcome,
        "credentials signed with a secret coturn does not have",
    );
}

// ---------------------------------------------------------------------------------------
// Palaver's side.

/// A Palaver whose TURN server is `coturn` (with `secret`, credentials valid `ttl_secs`) and
/// a registered user of it.
async fn palaver(coturn: &Coturn, secret: &str, ttl_secs: u64) -> (TestServer, Client) {
    let stun = coturn.stun_url();
    let turn = coturn.turn_url();
    let secret = Secret::new(secret);
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), move |c| {
        c.rtc.stun_urls = vec![stun];
        c.rtc.turn_urls = vec![turn];
        c.rtc.turn_secret = Some(secret);
        c.rtc.turn_ttl_secs = ttl_secs;
    })
    .await;
    let alice = server.user("alice").await;
    (server, alice)
}

/// TURN credentials as `GET /api/v1/rtc/ice-servers` hands them out.
struct Issued {
    username: String,
    credential: String,
    /// The Unix time in `username`.
    expiry: u64,
}

/// Fetches the ICE servers as `client`, checks them against what [`palaver`] configured,
/// and returns the TURN credentials.
async fn ice_servers(client: &Client, coturn: &Coturn, ttl_secs: u64) -> Issued {
    let before = unix_now();
    let body = client
        .get::<Value>("/api/v1/rtc/ice-servers")
        .await
        .expect("GET /api/v1/rtc/ice-servers");
    let after = unix_now();
    assert_eq!(body["ttl_secs"], ttl_secs, "ttl_secs; body: {body}");
    let servers = body["ice_servers"]
        .as_array()
        .unwrap_or_else(|| panic!("ice_servers is an array; body: {body}"));
    assert_eq!(
        servers.len(),
        2,
        "one STUN and one TURN entry; body: {body}"
    );

    let stun = servers
        .iter()
        .find(|s| s.get("username").is_none())
        .unwrap_or_else(|| panic!("a STUN entry without credentials; body: {body}"));
    assert_eq!(stun["urls"], serde_json::json!([coturn.stun_url()]));

    let turn = servers
        .iter()
        .find(|s| s.get("username").is_some())
        .unwrap_or_else(|| panic!("a TURN entry with credentials; body: {body}"));
    assert_eq!(
        turn["urls"],
        serde_json::json!([coturn.turn_url()]),
        "the configured TURN URLs; body: {body}"
    );
    let username = turn["username"].as_str().expect("username is a string");
    let credential = turn["credential"].as_str().expect("credential is a string");

    let user_id = &client.user.as_ref().expect("logged in").id;
    let (expiry, rest) = username
        .split_once(':')
        .unwrap_or_else(|| panic!("username {username:?} is <expiry>:<user_id>"));
    assert_eq!(rest, user_id, "username {username:?} ends with the user id");
    let expiry: u64 = expiry
        .parse()
        .unwrap_or_else(|_| panic!("username {username:?} starts with Unix seconds"));
    assert!(
        (before + ttl_secs..=after + ttl_secs + 1).contains(&expiry),
        "expiry {expiry} is now ({before}..={after}) plus {ttl_secs} s"
    );
    Issued {
        username: username.to_owned(),
        credential: credential.to_owned(),
        expiry,
    }
}

/// `base64(HMAC-SHA1(secret, username))`: the TURN REST API password for `username`.
fn rest_credential(secret: &str, username: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha1(secret.as_bytes(), username.as_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---------------------------------------------------------------------------------------
// coturn.

/// A `turnserver` on 127.0.0.1, killed on drop; its log is kept in its temporary directory.
struct Coturn {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Coturn {
    /// Starts coturn with the TURN REST API secret `secret` on a free UDP port and waits
    /// until it answers a STUN Binding request. Panics if `turnserver` is not on PATH.
    async fn start(secret: &str) -> Coturn {
        // A port found free may be taken before coturn binds it: then try another.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("find a free UDP port")
                .port();
            let log = File::create(dir.path().join("turnserver.log")).expect("create log");
            let child = Command::new("turnserver")
                .arg("-n") // no configuration file: only the options below
                .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
                .args(["--listening-port", &port.to_string()])
                .args(["--use-auth-secret", "--static-auth-secret", secret])
                .args(["--realm", REALM])
                .args([
                    "--no-tcp",
                    "--no-tls",
                    "--no-dtls",
                    "--no-cli",
                    "--no-rfc5780",
                ])
                .arg("--userdb")
                .arg(dir.path().join("turndb"))
                .arg("--pidfile")
                .arg(dir.path().join("turnserver.pid"))
                .args(["--log-file", "stdout", "--simple-log"])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        panic!(
                            "`turnserver` (coturn) is not on PATH: the turn-tests suite runs \
                             against a real coturn; install it (Debian: `apt-get install \
                             coturn`) or run `.ci/run`"
                        )
                    }
                    panic!("start turnserver: {e}")
                });
            let mut coturn = Coturn {
                child,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                dir,
            };
            if coturn.wait_ready().await {
                return coturn;
            }
            eprintln!(
                "turnserver on port {port} exited; trying another port. Log:\n{}",
                coturn.log_tail()
            );
        }
        panic!("turnserver did not start in three tries");
    }

    /// Waits until coturn answers a Binding request: `false` if it exited first.
    async fn wait_ready(&mut self) -> bool {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().expect("poll turnserver").is_some() {
                return false;
            }
            let transaction = transaction_id();
            let request = encode(BINDING_REQUEST, &transaction, &[], None);
            let answer = transact(
                &socket,
                self.addr,
                &request,
                &transaction,
                1,
                Duration::from_millis(200),
            )
            .await;
            if let Some(answer) = answer {
                assert_eq!(answer.kind, BINDING_SUCCESS, "Binding answer");
                return true;
            }
        }
        panic!(
            "turnserver did not answer a STUN Binding request on {} within 20 s; log:\n{}",
            self.addr,
            self.log_tail()
        );
    }

    fn stun_url(&self) -> String {
        format!("stun:{}", self.addr)
    }

    fn turn_url(&self) -> String {
        format!("turn:{}?transport=udp", self.addr)
    }

    /// The last lines of coturn's log, for failure messages.
    fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("turnserver.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    #[track_caller]
    fn assert_relayed(&self, outcome: &Allocation) {
        match outcome {
            Allocation::Relayed(relayed) => {
                assert_eq!(
                    relayed.ip(),
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    "relay address"
                );
                assert_ne!(relayed.port(), 0, "relay port");
            }
            Allocation::Refused { code, reason } => panic!(
                "coturn refused the allocation: {code} {reason}; coturn log:\n{}",
                self.log_tail()
            ),
        }
    }

    #[track_caller]
    fn assert_refused(&self, outcome: &Allocation, what: &str) {
        assert!(
            matches!(outcome, Allocation::Refused { code: 401, .. }),
            "{what}: expected 401 Unauthorized, got {outcome:?}; coturn log:\n{}",
            self.log_tail()
        );
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// A minimal STUN/TURN client.

/// How an Allocate request with long-term credentials ended.
#[derive(Debug)]
enum Allocation {
    /// Allocate success: the XOR-RELAYED-ADDRESS.
    Relayed(SocketAddr),
    /// Allocate error: ERROR-CODE's code and reason phrase.
    Refused { code: u16, reason: String },
}

/// Asks the TURN server at `server` for a UDP relay as `username` with `password`, from a
/// new socket (a new 5-tuple, so every call is a new allocation): the first request is
/// challenged (401 with REALM and NONCE), the second carries the credentials.
async fn allocate(server: SocketAddr, username: &str, password: &str) -> Allocation {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
    let transaction = transaction_id();
    let request = encode(
        ALLOCATE_REQUEST,
        &transaction,
        &[(ATTR_REQUESTED_TRANSPORT, &TRANSPORT_UDP)],
        None,
    );
    let challenge = exchange(&socket, server, &request, &transaction).await;
    assert_eq!(
        challenge.kind, ALLOCATE_ERROR,
        "an unauthenticated Allocate is an error"
    );
    assert_eq!(challenge.error_code().0, 401, "the challenge is a 401");
    let realm = challenge
        .attribute(ATTR_REALM)
        .expect("the challenge has a REALM")
        .to_vec();
    assert_eq!(realm, REALM.as_bytes(), "the challenge's REALM");
    let mut nonce = challenge
        .attribute(ATTR_NONCE)
        .expect("the challenge has a NONCE")
        .to_vec();
    let key = long_term_key(username, REALM, password);

    // A 438 Stale Nonce is answered once more with its fresh NONCE.
    for _ in 0..2 {
        let transaction = transaction_id();
        let request = encode(
            ALLOCATE_REQUEST,
            &transaction,
            &[
                (ATTR_REQUESTED_TRANSPORT, &TRANSPORT_UDP),
                (ATTR_USERNAME, username.as_bytes()),
                (ATTR_REALM, &realm),
                (ATTR_NONCE, &nonce),
            ],
            Some(&key),
        );
        let answer = exchange(&socket, server, &request, &transaction).await;
        match answer.kind {
            ALLOCATE_SUCCESS => {
                assert!(
                    answer.integrity_is_valid(&key),
                    "the success response carries a MESSAGE-INTEGRITY made with our key"
                );
                let relayed = answer
                    .attribute(ATTR_XOR_RELAYED_ADDRESS)
                    .expect("the success response has an XOR-RELAYED-ADDRESS");
                return Allocation::Relayed(xor_address(relayed, &transaction));
            }
            ALLOCATE_ERROR => {
                let (code, reason) = answer.error_code();
                if code == 438 {
                    nonce = answer
                        .attribute(ATTR_NONCE)
                        .expect("a 438 has a NONCE")
                        .to_vec();
                    continue;
                }
                return Allocation::Refused { code, reason };
            }
            other => panic!("unexpected answer to Allocate: type {other:#06x}"),
        }
    }
    panic!("coturn answered 438 Stale Nonce twice in a row");
}

/// Sends `request` and returns the answer, retransmitting over a few seconds (RFC 5389
/// §7.2.1); panics without one.
async fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    transaction: &[u8; 12],
) -> Message {
    transact(
        socket,
        server,
        request,
        transaction,
        6,
        Duration::from_millis(250),
    )
    .await
    .unwrap_or_else(|| panic!("no answer from the TURN server at {server}"))
}

/// Sends `request` up to `tries` times, waiting `wait` (doubled each time, up to 2 s) for
/// the answer with the same transaction id.
async fn transact(
    socket: &UdpSocket,
    server: SocketAddr,
    request: &[u8],
    transaction: &[u8; 12],
    tries: u32,
    wait: Duration,
) -> Option<Message> {
    let mut buf = vec![0u8; 2048];
    let mut wait = wait;
    for _ in 0..tries {
        socket.send_to(request, server).await.expect("send UDP");
        let deadline = Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
                Err(_) => break,
                // An ICMP error reported on the socket: coturn is not listening (yet).
                Ok(Err(_)) => {
                    tokio::time::sleep_until(deadline).await;
                    break;
                }
                Ok(Ok((n, from))) => {
                    if from != server {
                        continue;
                    }
                    if let Some(message) = Message::decode(&buf[..n]) {
                        if &message.transaction == transaction {
                            return Some(message);
                        }
                    }
                }
            }
        }
        wait = (wait * 2).min(Duration::from_secs(2));
    }
    None
}

/// A decoded STUN message.
struct Message {
    kind: u16,
    transaction: [u8; 12],
    /// (type, value, offset of the attribute's header in `raw`).
    attributes: Vec<(u16, Vec<u8>, usize)>,
    raw: Vec<u8>,
}

impl Message {
    /// Parses a STUN message (RFC 5389 §6); `None` for anything else.
    fn decode(bytes: &[u8]) -> Option<Message> {
        if bytes.len() < HEADER_LEN
            || bytes[0] & 0xC0 != 0
            || bytes[4..8] != MAGIC_COOKIE.to_be_bytes()
        {
            return None;
        }
        let length = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
        if HEADER_LEN + length != bytes.len() || length % 4 != 0 {
            return None;
        }
        let mut attributes = Vec::new();
        let mut at = HEADER_LEN;
        while at + 4 <= bytes.len() {
            let kind = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
            let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
            let value = bytes.get(at + 4..at + 4 + len)?.to_vec();
            attributes.push((kind, value, at));
            at += 4 + padded(len);
        }
        Some(Message {
            kind: u16::from_be_bytes([bytes[0], bytes[1]]),
            transaction: bytes[8..20].try_into().unwrap(),
            attributes,
            raw: bytes.to_vec(),
        })
    }

    /// The first attribute of type `kind`.
    fn attribute(&self, kind: u16) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(k, _, _)| *k == kind)
            .map(|(_, v, _)| v.as_slice())
    }

    /// ERROR-CODE (RFC 5389 §15.6): the code (class × 100 + number) and reason phrase.
    fn error_code(&self) -> (u16, String) {
        let value = self
            .attribute(ATTR_ERROR_CODE)
            .expect("an error response has an ERROR-CODE");
        assert!(value.len() >= 4, "ERROR-CODE is at least 4 bytes");
        let code = u16::from(value[2] & 0x07) * 100 + u16::from(value[3]);
        (code, String::from_utf8_lossy(&value[4..]).into_owned())
    }

    /// Whether MESSAGE-INTEGRITY is present and is the HMAC-SHA1, under `key`, of the
    /// message before it with the length field counting up to its end (§15.4).
    fn integrity_is_valid(&self, key: &[u8]) -> bool {
        let Some((_, mac, at)) = self
            .attributes
            .iter()
            .find(|(k, _, _)| *k == ATTR_MESSAGE_INTEGRITY)
        else {
            return false;
        };
        let mut signed = self.raw[..*at].to_vec();
        set_length(&mut signed, *at - HEADER_LEN + 24);
        hmac_sha1(key, &signed).as_slice() == mac.as_slice()
    }
}

/// A STUN message of type `kind` with `attributes`, then MESSAGE-INTEGRITY under `key`
/// when one is given, then FINGERPRINT.
fn encode(
    kind: u16,
    transaction: &[u8; 12],
    attributes: &[(u16, &[u8])],
    key: Option<&[u8]>,
) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(&kind.to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    buf.extend_from_slice(transaction);
    for (kind, value) in attributes {
        push_attribute(&mut buf, *kind, value);
    }
    if let Some(key) = key {
        // The length covers MESSAGE-INTEGRITY (4 + 20 bytes) but not what follows it.
        let length = buf.len() - HEADER_LEN + 24;
        set_length(&mut buf, length);
        let mac = hmac_sha1(key, &buf);
        push_attribute(&mut buf, ATTR_MESSAGE_INTEGRITY, &mac);
    }
    // FINGERPRINT (§15.5): CRC-32 of the message before it, length counting it, XORed.
    let length = buf.len() - HEADER_LEN + 8;
    set_length(&mut buf, length);
    let crc = crc32fast::hash(&buf) ^ 0x5354_554E;
    push_attribute(&mut buf, ATTR_FINGERPRINT, &crc.to_be_bytes());
    buf
}

fn push_attribute(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).expect("attribute fits");
    buf.extend_from_slice(&kind.to_be_bytes());
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + padded(value.len()) - value.len(), 0);
}

fn set_length(buf: &mut [u8], length: usize) {
    let length = u16::try_from(length).expect("message fits");
    buf[2..4].copy_from_slice(&length.to_be_bytes());
}

/// `len` rounded up to a multiple of 4.
fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// An XOR-…-ADDRESS value (RFC 5389 §15.2).
fn xor_address(value: &[u8], transaction: &[u8; 12]) -> SocketAddr {
    assert!(value.len() >= 8, "an address attribute is at least 8 bytes");
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let port = u16::from_be_bytes([value[2] ^ cookie[0], value[3] ^ cookie[1]]);
    match value[1] {
        0x01 => {
            let mut ip = [0u8; 4];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = value[4 + i] ^ cookie[i];
            }
            SocketAddr::from((Ipv4Addr::from(ip), port))
        }
        0x02 => {
            assert_eq!(value.len(), 20, "an IPv6 address attribute is 20 bytes");
            let mask: Vec<u8> = cookie.iter().chain(transaction).copied().collect();
            let mut ip = [0u8; 16];
            for (i, b) in ip.iter_mut().enumerate() {
                *b = value[4 + i] ^ mask[i];
            }
            SocketAddr::from((Ipv6Addr::from(ip), port))
        }
        family => panic!("unknown address family {family:#04x}"),
    }
}

/// The long-term credential key (RFC 5389 §15.4): `MD5(username ":" realm ":" password)`.
fn long_term_key(username: &str, realm: &str, password: &str) -> Vec<u8> {
    Md5::digest(format!("{username}:{realm}:{password}")).to_vec()
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A fresh 96-bit transaction id (the random tail of a UUIDv7).
fn transaction_id() -> [u8; 12] {
    uuid::Uuid::now_v7().as_bytes()[4..16].try_into().unwrap()
}
