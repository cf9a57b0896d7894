//! Notifications (`docs/notifications.md`).
//!
//! - This module (the default suite): notification settings per room are a member's own
//!   (anyone else gets 404) and validated; push subscriptions are validated, idempotent
//!   per endpoint, listed and deleted per account; with `push.enabled = false` the push
//!   routes say `push_disabled`.
//! - [`push`] (feature `push-tests`): Web Push end to end against a local push service,
//!   `tests/push_endpoint.py` (Python; `.ci/run` installs its `http-ece`), which verifies
//!   each push's VAPID signature (RFC 8292) and decrypts its body (RFC 8291, aes128gcm)
//!   with the subscription keys the test made, as a browser would.

use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use palaver_client::Client;
use palaver_protocol::notifications::{
    NotificationLevel, NotificationSettings, PushSubscription, PushSubscriptions, VapidPublicKey,
};
use palaver_protocol::Visibility;
use serde_json::{json, Value};

use crate::helpers::{assert_api_error, TestServer};

/// base64url without padding.
fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A browser's subscription keys: the P-256 key pair and the auth secret.
struct Keys {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Keys {
    fn new() -> Keys {
        let secret = p256::SecretKey::random(&mut rand_core::OsRng);
        let mut auth = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut auth);
        Keys { secret, auth }
    }

    fn p256dh(&self) -> String {
        b64(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    fn subscription(&self, endpoint: &str) -> Value {
        json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": self.p256dh(), "auth": b64(&self.auth)},
        })
    }
}

/// `(status, body)` of `method path` with `body`, as `client`.
async fn call(client: &Client, method: &str, path: &str, body: Value) -> (u16, Value) {
    client
        .raw(method, path, Some(body.to_string().into_bytes()))
        .await
        .expect("request")
}

#[tokio::test]
async fn notification_settings_are_a_members_own_and_go_with_the_membership() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("general", Visibility::Public, None)
        .await
        .unwrap();
    let path = format!("/api/v1/rooms/{}/notifications", room.id);

    // A member who never set anything: everything, not muted.
    let got: NotificationSettings = alice.get(&path).await.unwrap();
    assert_eq!(got.level, NotificationLevel::All);
    assert_eq!(got.muted_until, None);

    // Someone else, and a room that does not exist: 404, the same answer.
    assert_api_error(
        bob.get::<NotificationSettings>(&path).await,
        404,
        "not_found",
        None,
    );
    assert_api_error(
        bob.put::<_, NotificationSettings>(&path, Some(&json!({"level": "none"})))
            .await,
        404,
        "not_found",
        None,
    );
    assert_api_error(
        alice
            .get::<NotificationSettings>(
                "/api/v1/rooms/00000000-0000-7000-8000-000000000000/notifications",
            )
            .await,
        404,
        "not_found",
        None,
    );

    // Set: the time comes back in UTC.
    let set: NotificationSettings = alice
        .put(
            &path,
            Some(&json!({"level": "mentions", "muted_until": "2031-01-02T09:30:00+01:00"})),
        )
        .await
        .unwrap();
    assert_eq!(set.level, NotificationLevel::Mentions);
    assert_eq!(set.muted_until.as_deref(), Some("2031-01-02T08:30:00.000Z"));
    assert_eq!(alice.get::<NotificationSettings>(&path).await.unwrap(), set);

    // Validation.
    let (status, body) = call(&alice, "PUT", &path, json!({"level": "loud"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(body["error"]["field"], "level");
    let (status, body) = call(
        &alice,
        "PUT",
        &path,
        json!({"level": "all", "muted_until": "tomorrow"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("validation_failed"))
    );
    assert_eq!(body["error"]["field"], "muted_until");
    assert_eq!(
        alice.get::<NotificationSettings>(&path).await.unwrap(),
        set,
        "a refused update changes nothing"
    );

    // Bob joins: his own settings, untouched by Alice's.
    bob.join_room(&room.id).await.unwrap();
    let bobs: NotificationSettings = bob.get(&path).await.unwrap();
    assert_eq!(bobs.level, NotificationLevel::All);
    let _: NotificationSettings = bob
        .put(&path, Some(&json!({"level": "none", "muted_until": null})))
        .await
        .unwrap();
    // Leaving takes the settings along: back to the defaults after joining again.
    bob.leave_room(&room.id).await.unwrap();
    assert_api_error(
        bob.get::<NotificationSettings>(&path).await,
        404,
        "not_found",
        None,
    );
    bob.join_room(&room.id).await.unwrap();
    assert_eq!(
        bob.get::<NotificationSettings>(&path).await.unwrap().level,
        NotificationLevel::All
    );
}

#[tokio::test]
async fn push_subscriptions_are_validated_idempotent_per_endpoint_and_each_accounts_own() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;

    let key: VapidPublicKey = alice.get("/api/v1/push/vapid-public-key").await.unwrap();
    let point = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&key.public_key)
            .expect("base64url")
    };
    assert!(
        p256::PublicKey::from_sec1_bytes(&point).is_ok() && point.len() == 65 && point[0] == 4,
        "an uncompressed P-256 point"
    );
    let again: VapidPublicKey = bob.get("/api/v1/push/vapid-public-key").await.unwrap();
    assert_eq!(again, key, "one key pair for the server");

    let keys = Keys::new();
    let endpoint = "https://push.example.test/wpush/v2/abc";
    let (status, first) = call(
        &alice,
        "POST",
        "/api/v1/push/subscriptions",
        keys.subscription(endpoint),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["endpoint"], endpoint);
    // The same endpoint again (the browser re-sends it at every start): the same one.
    let newer = Keys::new();
    let (status, second) = call(
        &alice,
        "POST",
        "/api/v1/push/subscriptions",
        newer.subscription(endpoint),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["id"], first["id"]);
    let mine: PushSubscriptions = alice.get("/api/v1/push/subscriptions").await.unwrap();
    assert_eq!(mine.subscriptions.len(), 1);
    let bobs: PushSubscriptions = bob.get("/api/v1/push/subscriptions").await.unwrap();
    assert!(bobs.subscriptions.is_empty(), "each account sees its own");

    // Refused: what a push service would not be, and keys that are not keys.
    let good = keys.subscription("https://push.example.test/x");
    let mut compressed = good.clone();
    compressed["keys"]["p256dh"] = json!(b64(keys
        .secret
        .public_key()
        .to_encoded_point(true)
        .as_bytes()));
    let mut off_curve = good.clone();
    let mut point = keys
        .secret
        .public_key()
        .to_encoded_point(false)
        .as_bytes()
        .to_vec();
    point[64] ^= 1;
    off_curve["keys"]["p256dh"] = json!(b64(&point));
    let mut short_auth = good.clone();
    short_auth["keys"]["auth"] = json!(b64(&[1u8; 15]));
    let mut not_base64 = good.clone();
    not_base64["keys"]["auth"] = json!("not base64!");
    let mut no_keys = good.clone();
    no_keys.as_object_mut().unwrap().remove("keys");
    for (body, field) in [
        (keys.subscription("http://push.example.test/x"), "endpoint"),
        (keys.subscription("https://127.0.0.1/x"), "endpoint"),
        (keys.subscription("https://localhost/x"), "endpoint"),
        (keys.subscription("https://intranet/x"), "endpoint"),
        (keys.subscription("not a url"), "endpoint"),
        (compressed, "keys.p256dh"),
        (off_curve, "keys.p256dh"),
        (short_auth, "keys.auth"),
        (not_base64, "keys.auth"),
        (no_keys, "keys"),
    ] {
        let (status, answer) = call(&alice, "POST", "/api/v1/push/subscriptions", body).await;
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["error"]["code"], "validation_failed");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }

    // Bob subscribes the same browser (he signed in on it): it is his now.
    let (status, bobs_one) = call(
        &bob,
        "POST",
        "/api/v1/push/subscriptions",
        keys.subscription(endpoint),
    )
    .await;
    assert_eq!(status, 201, "{bobs_one}");
    assert_ne!(bobs_one["id"], first["id"]);
    let mine: PushSubscriptions = alice.get("/api/v1/push/subscriptions").await.unwrap();
    assert!(mine.subscriptions.is_empty(), "moved to Bob");

    // Alice cannot delete Bob's; Bob can, once.
    let path = format!(
        "/api/v1/push/subscriptions/{}",
        bobs_one["id"].as_str().unwrap()
    );
    assert_api_error(
        alice
            .send_empty::<()>(reqwest::Method::DELETE, &path, None)
            .await,
        404,
        "not_found",
        None,
    );
    bob.send_empty::<()>(reqwest::Method::DELETE, &path, None)
        .await
        .unwrap();
    assert_api_error(
        bob.send_empty::<()>(reqwest::Method::DELETE, &path, None)
            .await,
        404,
        "not_found",
        None,
    );
    let bobs: PushSubscriptions = bob.get("/api/v1/push/subscriptions").await.unwrap();
    assert!(bobs.subscriptions.is_empty());
}

#[tokio::test]
async fn only_the_newest_subscriptions_of_an_account_are_kept() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
        config.push.max_subscriptions_per_user = 2;
    })
    .await;
    let alice = server.user("alice").await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let created: PushSubscription = alice
            .post(
                "/api/v1/push/subscriptions",
                &Keys::new().subscription(&format!("https://push.example.test/{n}")),
            )
            .await
            .unwrap();
        ids.push(created.id);
        // Distinct creation times (milliseconds).
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let mine: PushSubscriptions = alice.get("/api/v1/push/subscriptions").await.unwrap();
    let kept: Vec<&str> = mine.subscriptions.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(kept, [ids[1].as_str(), ids[2].as_str()]);
}

#[tokio::test]
async fn with_push_disabled_the_push_routes_say_so() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
        config.push.enabled = false;
    })
    .await;
    let alice = server.user("alice").await;
    assert_api_error(
        alice
            .get::<VapidPublicKey>("/api/v1/push/vapid-public-key")
            .await,
        409,
        "push_disabled",
        None,
    );
    let (status, body) = call(
        &alice,
        "POST",
        "/api/v1/push/subscriptions",
        Keys::new().subscription("https://push.example.test/x"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("push_disabled"))
    );
    // Settings still work: clients may use them for what they show.
    let room = alice
        .create_room("quiet", Visibility::Public, None)
        .await
        .unwrap();
    let _: NotificationSettings = alice
        .put(
            &format!("/api/v1/rooms/{}/notifications", room.id),
            Some(&json!({"level": "none"})),
        )
        .await
        .unwrap();
}

/// Web Push end to end, against `tests/push_endpoint.py`.
#[cfg(feature = "push-tests")]
mod push {
    use std::io::BufRead as _;
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use palaver_client::Client;
    use palaver_protocol::notifications::{PushSubscriptions, VapidPublicKey};
    use palaver_protocol::Visibility;
    use serde_json::{json, Value};

    use super::{b64, Keys};
    use crate::helpers::TestServer;

    async fn my_id(client: &Client) -> String {
        client.me().await.expect("me").id
    }

    /// How long a test waits for a push to arrive.
    const PUSH_TIMEOUT: Duration = Duration::from_secs(20);

    /// The VAPID `sub` the test servers use.
    const SUBJECT: &str = "mailto:ops@example.test";

    /// The local push service: `python3 tests/push_endpoint.py`, killed when dropped.
    struct Endpoint {
        child: Child,
        base: String,
        http: reqwest::Client,
    }

    impl Drop for Endpoint {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Endpoint {
        fn start() -> Endpoint {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/push_endpoint.py");
            let mut child = Command::new("python3")
                .arg(script)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("python3 tests/push_endpoint.py (pip install http-ece cryptography)");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .expect("the push endpoint prints its port");
            let port: u16 = line
                .trim()
                .strip_prefix("listening ")
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| {
                    panic!("push_endpoint.py said {line:?} (is http-ece installed?)")
                });
            Endpoint {
                child,
                base: format!("http://127.0.0.1:{port}"),
                http: reqwest::Client::new(),
            }
        }

        /// A new browser: its keys, given to the endpoint; `kind` is `push`, `gone` or
        /// `missing` (how the endpoint answers). Returns the subscription JSON.
        async fn device(&self, kind: &str, name: &str) -> Value {
            let keys = Keys::new();
            let status = self
                .http
                .post(format!("{}/_keys/{name}", self.base))
                .json(&json!({
                    "private_key": b64(&keys.secret.to_bytes()),
                    "auth": b64(&keys.auth),
                }))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 204);
            keys.subscription(&format!("{}/{kind}/{name}", self.base))
        }

        /// What reached device `name` so far.
        async fn received(&self, name: &str) -> Vec<Value> {
            self.http
                .get(format!("{}/_received/{name}", self.base))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        }

        /// Waits until `n` pushes reached device `name`; returns them.
        async fn wait_for(&self, name: &str, n: usize) -> Vec<Value> {
            let deadline = tokio::time::Instant::now() + PUSH_TIMEOUT;
            loop {
                let got = self.received(name).await;
                if got.len() >= n {
                    return got;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{n} pushes to {name} within {PUSH_TIMEOUT:?}; got {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// The decrypted JSON of a push that passed every check.
        #[track_caller]
        fn payload(entry: &Value) -> Value {
            assert_eq!(
                entry["error"],
                Value::Null,
                "the push passed the checks: {entry}"
            );
            serde_json::from_str(entry["plaintext"].as_str().unwrap()).unwrap()
        }
    }

    /// A server that may push to the loopback endpoint, delivering one message at a time
    /// (so a push to one device proves every earlier message was handled).
    async fn server() -> TestServer {
        TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
            config.push.allow_loopback_http = true;
            config.push.subject = Some(SUBJECT.into());
            config.push.max_concurrent = 1;
        })
        .await
    }

    async fn subscribe(client: &Client, subscription: &Value) {
        let (status, body) = client
            .raw(
                "POST",
                "/api/v1/push/subscriptions",
                Some(subscription.to_string().into_bytes()),
            )
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
    }

    /// Waits until `user_id`'s presence, as `watcher` reads it, is `status`.
    async fn wait_presence(watcher: &Client, user_id: &str, status: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info: Value = watcher
                .get(&format!("/api/v1/users/{user_id}/presence"))
                .await
                .unwrap();
            if info["status"] == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "presence {status}: {info}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn a_dm_to_a_user_without_a_socket_is_pushed_signed_and_encrypted() {
        let push = Endpoint::start();
        let server = server().await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let (alice_id, bob_id) = (my_id(&alice).await, my_id(&bob).await);
        subscribe(&bob, &push.device("push", "bob-laptop").await).await;
        subscribe(&alice, &push.device("push", "alice-phone").await).await;
        let vapid: VapidPublicKey = bob.get("/api/v1/push/vapid-public-key").await.unwrap();

        let dm = alice.open_dm(&bob_id).await.unwrap();
        let text = format!("hello Bob, {}", "long ".repeat(60));
        let sent = alice.send_message(&dm.id, &text, None).await.unwrap();

        let got = push.wait_for("bob-laptop", 1).await;
        let entry = &got[0];
        let payload = Endpoint::payload(entry);
        assert_eq!(payload["type"], "message");
        assert_eq!(payload["room_id"], dm.id.as_str());
        assert_eq!(payload["room_kind"], "dm");
        assert_eq!(payload["message_id"], sent.id.as_str());
        assert_eq!(payload["seq"], sent.seq);
        assert_eq!(payload["sender"]["id"], alice_id.as_str());
        assert_eq!(payload["sender"]["username"], sent.sender.username.as_str());
        assert_eq!(payload["mention"], false);
        let body = payload["body"].as_str().unwrap();
        assert!(body.starts_with("hello Bob, long long"), "{body}");
        assert_eq!(body.chars().count(), 201, "200 characters and the ellipsis");
        assert!(body.ends_with('…'));
        // Signed by the key browsers subscribe with, for the endpoint's origin (checked
        // by the endpoint), with the configured contact; sent as RFC 8030 says.
        assert_eq!(entry["k"], vapid.public_key.as_str());
        assert_eq!(entry["claims"]["sub"], SUBJECT);
        assert_eq!(entry["headers"]["content-encoding"], "aes128gcm");
        assert_eq!(entry["headers"]["ttl"], "86400");
        assert_eq!(entry["headers"]["urgency"], "high");

        // The sender's own devices get nothing: a later DM from Bob reaches Alice only,
        // and is Alice's first push.
        bob.send_message(&dm.id, "hi Alice", None).await.unwrap();
        let got = push.wait_for("alice-phone", 1).await;
        assert_eq!(Endpoint::payload(&got[0])["body"], "hi Alice");
        assert_eq!(push.received("bob-laptop").await.len(), 1);
    }

    #[tokio::test]
    async fn no_push_to_an_open_socket_a_muted_room_level_none_or_a_plain_room_message() {
        let push = Endpoint::start();
        let server = server().await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let carol = server.user("carol").await;
        let (bob_id, carol_id) = (my_id(&bob).await, my_id(&carol).await);
        subscribe(&bob, &push.device("push", "bob").await).await;
        subscribe(&carol, &push.device("push", "carol").await).await;
        let dm = alice.open_dm(&bob_id).await.unwrap();
        let to_carol = alice.open_dm(&carol_id).await.unwrap();
        let settings = format!("/api/v1/rooms/{}/notifications", dm.id);

        // From here on, at least one thing forbids a push to Bob until the end: level
        // none, then a mute, then an open socket.
        let _: Value = bob
            .put(&settings, Some(&json!({"level": "none"})))
            .await
            .unwrap();
        alice
            .send_message(&dm.id, "level none", None)
            .await
            .unwrap();
        let _: Value = bob
            .put(
                &settings,
                Some(&json!({"level": "all", "muted_until": "2999-01-01T00:00:00Z"})),
            )
            .await
            .unwrap();
        alice.send_message(&dm.id, "muted", None).await.unwrap();
        let socket = bob.connect().await.unwrap();
        wait_presence(&alice, &bob_id, "online").await;
        let _: Value = bob
            .put(
                &settings,
                Some(&json!({"level": "mentions", "muted_until": null})),
            )
            .await
            .unwrap();
        alice
            .send_message(&dm.id, "socket open", None)
            .await
            .unwrap();
        // A plain message in a room they share: never pushed.
        let room = alice
            .create_room("general", Visibility::Public, None)
            .await
            .unwrap();
        bob.join_room(&room.id).await.unwrap();
        alice
            .send_message(&room.id, "plain room message", None)
            .await
            .unwrap();

        // One message at a time: once Carol has hers, every message before it was handled.
        alice
            .send_message(&to_carol.id, "barrier", None)
            .await
            .unwrap();
        push.wait_for("carol", 1).await;
        assert!(push.received("bob").await.is_empty(), "nothing reached Bob");

        // Socket closed, not muted, level mentions: the next DM is pushed, and only it.
        socket.close().await.unwrap();
        wait_presence(&alice, &bob_id, "offline").await;
        alice.send_message(&dm.id, "now", None).await.unwrap();
        let got = push.wait_for("bob", 1).await;
        assert_eq!(Endpoint::payload(&got[0])["body"], "now");
        alice
            .send_message(&to_carol.id, "barrier 2", None)
            .await
            .unwrap();
        push.wait_for("carol", 2).await;
        assert_eq!(push.received("bob").await.len(), 1);
    }

    #[tokio::test]
    async fn subscriptions_the_push_service_says_are_gone_are_deleted() {
        let push = Endpoint::start();
        let server = server().await;
        let alice = server.user("alice").await;
        let bob = server.user("bob").await;
        let bob_id = my_id(&bob).await;
        subscribe(&bob, &push.device("gone", "old-phone").await).await;
        subscribe(&bob, &push.device("missing", "old-laptop").await).await;
        let live = push.device("push", "laptop").await;
        subscribe(&bob, &live).await;
        let dm = alice.open_dm(&bob_id).await.unwrap();
        alice
            .send_message(&dm.id, "still there?", None)
            .await
            .unwrap();

        push.wait_for("laptop", 1).await;
        assert_eq!(push.wait_for("old-phone", 1).await[0]["status"], 410);
        assert_eq!(push.wait_for("old-laptop", 1).await[0]["status"], 404);
        let deadline = tokio::time::Instant::now() + PUSH_TIMEOUT;
        loop {
            let left: PushSubscriptions = bob.get("/api/v1/push/subscriptions").await.unwrap();
            let endpoints: Vec<&str> = left
                .subscriptions
                .iter()
                .map(|s| s.endpoint.as_str())
                .collect();
            if endpoints == [live["endpoint"].as_str().unwrap()] {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the 404 and 410 subscriptions are deleted: {endpoints:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The next DM goes to the live one only.
        alice.send_message(&dm.id, "again", None).await.unwrap();
        push.wait_for("laptop", 2).await;
        assert_eq!(push.received("old-phone").await.len(), 1);
        assert_eq!(push.received("old-laptop").await.len(), 1);
    }
}
