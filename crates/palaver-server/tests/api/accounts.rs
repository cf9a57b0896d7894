//! Accounts and access: refresh rotation and reuse detection, logout, sessions, profiles,
//! user search, password change, account deletion, API keys, forged tokens, roles and
//! administration, blocks, rate limits, CORS and the WebSocket `Origin` check.
//!
//! Every test asserts the HTTP status and the stable `error.code` of the documented
//! behaviour (see the handler doc comments in `src/http/`).

use std::net::IpAddr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use palaver_client::{Client, ClientError, Socket};
use palaver_protocol::rest::{AuthResponse, CreatedApiKey, UpdateProfileRequest};
use palaver_protocol::ws::close_code;
use palaver_protocol::{Role, Visibility};
use palaver_server::config::Rule;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::helpers::{assert_api_error, unique_name, TestServer};

/// The password of every account these tests register.
const PASSWORD: &str = "vivid-otter-42";
/// The password of the bootstrapped administrator.
const ADMIN_PASSWORD: &str = "granite-heron-19";
/// How long a test waits for a WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a test waits for a plain HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);
/// An id that no user, session or key has (a well-formed UUIDv7).
const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Registers a fresh user whose name starts with `prefix`; returns the logged-in client
/// and the registration's token pair.
async fn register(server: &TestServer, prefix: &str) -> (Client, AuthResponse) {
    let name = unique_name(prefix);
    let mut client = server.client();
    let auth = client
        .register(&name, &format!("{name}@example.com"), PASSWORD)
        .await
        .expect("register");
    (client, auth)
}

/// Logs in as `login` with `password` in a new session.
async fn login(server: &TestServer, login: &str, password: &str) -> (Client, AuthResponse) {
    let mut client = server.client();
    let auth = client
        .login(login, password)
        .await
        .unwrap_or_else(|e| panic!("login as {login}: {e}"));
    (client, auth)
}

fn username(client: &Client) -> String {
    client.user.as_ref().expect("logged in").username.clone()
}

fn user_id(client: &Client) -> String {
    client.user.as_ref().expect("logged in").id.clone()
}

/// A client that authenticates with `token` (access token or API key) as a bearer token.
fn with_token(server: &TestServer, token: &str) -> Client {
    Client::with_token(server.base.clone(), token)
}

/// Asserts a request was refused as unauthenticated: `401 unauthorized`.
#[track_caller]
fn assert_unauthorized<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    assert_api_error(result, 401, "unauthorized", None);
}

/// Asserts a raw `(status, body)` answer is the error `code` with `status`.
#[track_caller]
fn assert_raw_error(got: &(u16, Value), status: u16, code: &str) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "status; body: {body}");
    assert_eq!(body["error"]["code"], code, "error.code; body: {body}");
}

/// Asserts the server closes `socket` with 4001 (the credential ended).
async fn assert_session_ended(socket: &mut Socket) {
    let frame = socket
        .wait_close()
        .await
        .expect("the server closes the WebSocket in time")
        .expect("the server sends a close frame");
    assert_eq!(
        u16::from(frame.code),
        close_code::SESSION_ENDED,
        "close code 4001 (session ended); frame: {frame:?}"
    );
}

/// Sends a ping and asserts it gets an ok reply (the connection is up and serving).
async fn assert_ping_ok(socket: &mut Socket) {
    let data = socket
        .request("ping", json!({}))
        .await
        .expect("ping gets an ok reply: the connection is still open");
    assert_eq!(data, json!({}));
}

/// Tries a WebSocket handshake with `request` and returns the HTTP status and body it was
/// refused with; panics if the upgrade succeeds or fails in another way.
async fn refused_handshake(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, Option<Vec<u8>>) {
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake answered in time");
    match result {
        Ok((_, response)) => panic!(
            "upgrade should have been refused, got {}",
            response.status()
        ),
        Err(WsError::Http(response)) => (response.status().as_u16(), response.body().clone()),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// Asserts a refused handshake had `status`, and that its body, when one arrived, is the
/// error `code`.
#[track_caller]
fn assert_handshake_refused(refusal: &(u16, Option<Vec<u8>>), status: u16, code: &str) {
    let (got, body) = refusal;
    assert_eq!(*got, status, "refused before the upgrade with {status}");
    if let Some(bytes) = body.as_ref().filter(|b| !b.is_empty()) {
        if let Ok(body) = serde_json::from_slice::<Value>(bytes) {
            assert_eq!(body["error"]["code"], code, "body: {body}");
        }
    }
}

/// A plain HTTP client with a request timeout, optionally bound to `local` (any
/// 127.0.0.0/8 address reaches the server on 127.0.0.1).
fn http_client(local: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .local_address(local)
        .build()
        .expect("build HTTP client")
}

/// `POST /api/v1/auth/login` with `http`.
async fn login_raw(
    http: &reqwest::Client,
    server: &TestServer,
    login: &str,
    password: &str,
) -> reqwest::Response {
    http.post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .expect("login request completes")
}

/// Asserts `resp` is `429 rate_limited` with a `Retry-After` of at least one second and
/// at most `max_secs`.
async fn assert_rate_limited(resp: reqwest::Response, max_secs: u64) {
    assert_eq!(resp.status(), 429, "429 Too Many Requests");
    let retry_after = resp
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .unwrap()
        .parse::<u64>()
        .expect("Retry-After is a number of seconds");
    assert!(
        (1..=max_secs).contains(&retry_after),
        "Retry-After {retry_after} is within 1..={max_secs}"
    );
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "rate_limited", "body: {body}");
}

/// The JSON claims of a JWT (its middle part).
fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url payload"))
        .expect("JSON payload")
}

/// `value` serialized and base64url-encoded without padding (a JWT part).
fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Creates an administrator with the command line (`palaver admin create-user --admin`)
/// in a fresh data directory, then starts a server on it; returns the server and the
/// logged-in administrator.
pub async fn server_with_admin() -> (TestServer, Client) {
    let data_dir = tempfile::tempdir().expect("tempdir");
    let output = crate::binary::palaver(
        &[
            "admin",
            "--data-dir",
            data_dir.path().to_str().unwrap(),
            "create-user",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--password",
            ADMIN_PASSWORD,
            "--admin",
        ],
        data_dir.path(),
        None,
    );
    crate::binary::assert_command_ok(&output);
    let server = TestServer::spawn_with(data_dir, |_| {}).await;
    let (admin, auth) = login(&server, "root", ADMIN_PASSWORD).await;
    assert_eq!(
        auth.user.role,
        Role::Admin,
        "the bootstrapped account is admin"
    );
    (server, admin)
}

// ---------------------------------------------------------------------------------------
// Refresh tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refresh_returns_a_new_pair_whose_access_token_works() {
    let server = TestServer::spawn().await;
    let (client, first) = register(&server, "fresh").await;

    let mut refreshed = server.client();
    let second = refreshed
        .refresh(&first.refresh_token)
        .await
        .expect("refresh succeeds");
    // (The access token may equal the old one when both are issued in the same second:
    // its claims have no `jti` and second-resolution times.)
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "a new refresh token"
    );
    assert_eq!(second.token_type, "Bearer");
    assert!(second.expires_in > 0);
    assert_eq!(second.user.id, user_id(&client));
    assert_eq!(
        jwt_claims(&second.access_token)["sid"],
        jwt_claims(&first.access_token)["sid"],
        "the new access token belongs to the same session"
    );

    let me = refreshed.me().await.expect("the new access token works");
    assert_eq!(me.id, user_id(&client));
    // And the new refresh token can be spent in turn.
    let third = server
        .client()
        .refresh(&second.refresh_token)
        .await
        .expect("the new refresh token works");
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_after_the_grace_window_revokes_the_session() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.auth.refresh_grace_secs = 0;
    })
    .await;
    let (_client, first) = register(&server, "reuse").await;
    let mut current = server.client();
    let newest = current.refresh(&first.refresh_token).await.unwrap();
    current.me().await.expect("the newest access token works");
    let mut socket = current.connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    // The spent token comes back: a replay.
    let replay = server.client().refresh(&first.refresh_token).await;
    assert_api_error(replay, 401, "refresh_token_reused", None);

    // The whole session is revoked: its newest tokens die, its WebSocket closes.
    assert_unauthorized(current.me().await);
    assert_unauthorized(server.client().refresh(&newest.refresh_token).await);
    assert_session_ended(&mut socket).await;
}

#[tokio::test]
async fn a_refresh_token_spent_two_rotations_ago_is_still_detected_as_reuse() {
    // RFC 9700 §4.14.2: any spent refresh token presented again is a replay, not only
    // the most recently spent one. An attacker who refreshed twice with a stolen token
    // must lose the session when the victim presents theirs.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.auth.refresh_grace_secs = 0;
    })
    .await;
    let (_client, first) = register(&server, "reuse2").await;
    let mut current = server.client();
    let second = current.refresh(&first.refresh_token).await.unwrap();
    let third = current.refresh(&second.refresh_token).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let replay = server.client().refresh(&first.refresh_token).await;
    assert_api_error(replay, 401, "refresh_token_reused", None);
    assert_unauthorized(current.me().await);
    assert_unauthorized(server.client().refresh(&third.refresh_token).await);
}

#[tokio::test]
async fn reusing_a_just_spent_refresh_token_within_the_grace_window_is_409_and_keeps_the_session() {
    let server = TestServer::spawn().await; // default grace: 10 s
    let (_client, first) = register(&server, "grace").await;
    let mut current = server.client();
    let newest = current.refresh(&first.refresh_token).await.unwrap();

    let again = server.client().refresh(&first.refresh_token).await;
    assert_api_error(again, 409, "refresh_conflict", None);

    // Nothing was revoked: the pair the first refresh returned still works.
    current
        .me()
        .await
        .expect("the new access token still works");
    let mut next = server.client();
    next.refresh(&newest.refresh_token)
        .await
        .expect("the new refresh token still works");
    next.me().await.expect("and its access token works");
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_leave_exactly_one_live_pair() {
    let server = TestServer::spawn().await;
    let (client, first) = register(&server, "race").await;
    let mut token = first.refresh_token.clone();
    for round in 0..5 {
        let mut a = server.client();
        let mut b = server.client();
        let (ra, rb) = tokio::join!(a.refresh(&token), b.refresh(&token));
        let (winner, loser) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            (Ok(_), Ok(_)) => panic!("round {round}: both concurrent refreshes succeeded"),
            (Err(x), Err(y)) => panic!("round {round}: both refreshes failed: {x:?} / {y:?}"),
        };
        assert_api_error(Err::<(), _>(loser), 409, "refresh_conflict", None);
        // The spent token stays spent (within the grace window: a conflict, no new pair).
        let again = server.client().refresh(&token).await;
        assert_api_error(again, 409, "refresh_conflict", None);
        // The winner's pair is the session's only live one.
        with_token(&server, &winner.access_token)
            .me()
            .await
            .unwrap_or_else(|e| panic!("round {round}: the winner's access token: {e}"));
        token = winner.refresh_token;
    }
    let mut last = server.client();
    last.refresh(&token)
        .await
        .expect("the last winner's refresh token works");
    let sessions = client.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1, "still one session: {sessions:?}");
}

// ---------------------------------------------------------------------------------------
// Logout and sessions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn logout_ends_only_the_current_session_and_closes_its_websockets() {
    let server = TestServer::spawn().await;
    let (first, first_auth) = register(&server, "bye").await;
    let (second, second_auth) = login(&server, &username(&first), PASSWORD).await;
    let mut first_ws = first.connect().await.unwrap();
    let mut second_ws = second.connect().await.unwrap();

    let (status, _) = first
        .raw("POST", "/api/v1/auth/logout", None)
        .await
        .unwrap();
    assert_eq!(status, 204, "logout answers 204 No Content");

    assert_unauthorized(first.me().await);
    assert_unauthorized(server.client().refresh(&first_auth.refresh_token).await);
    assert_session_ended(&mut first_ws).await;

    // The other session of the same user is untouched.
    second.me().await.expect("the other session still works");
    assert_ping_ok(&mut second_ws).await;
    let quiet = second_ws
        .try_next_event(Duration::from_millis(300))
        .await
        .expect("the other WebSocket stays open");
    assert!(quiet.is_none(), "nothing arrives on it: {quiet:?}");
    server
        .client()
        .refresh(&second_auth.refresh_token)
        .await
        .expect("the other session's refresh token still works");
}

#[tokio::test]
async fn sessions_list_shows_every_login_with_current_only_for_the_callers() {
    let server = TestServer::spawn().await;
    let (laptop, _) = register(&server, "multi").await;
    let (phone, _) = login(&server, &username(&laptop), PASSWORD).await;

    let from_laptop = laptop.sessions().await.unwrap();
    let from_phone = phone.sessions().await.unwrap();
    assert_eq!(from_laptop.len(), 2, "{from_laptop:?}");
    assert_eq!(from_phone.len(), 2, "{from_phone:?}");
    let current = |list: &[palaver_protocol::rest::SessionInfo]| {
        let cur: Vec<_> = list.iter().filter(|s| s.current).collect();
        assert_eq!(cur.len(), 1, "exactly one current session: {list:?}");
        cur[0].id.clone()
    };
    let laptop_id = current(&from_laptop);
    let phone_id = current(&from_phone);
    assert_ne!(laptop_id, phone_id);
    let mut ids: Vec<_> = from_laptop.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    let mut expected = vec![laptop_id, phone_id];
    expected.sort();
    assert_eq!(ids, expected, "both logins are listed");
    for s in &from_laptop {
        assert_eq!(s.ip.as_deref(), Some("127.0.0.1"), "{s:?}");
    }
    // Newest first: the phone logged in after the laptop registered.
    assert!(!from_laptop[0].current && from_laptop[1].current);
}

#[tokio::test]
async fn ending_another_of_ones_own_sessions_revokes_it_at_once() {
    let server = TestServer::spawn().await;
    let (laptop, _) = register(&server, "end").await;
    let (phone, phone_auth) = login(&server, &username(&laptop), PASSWORD).await;
    let mut phone_ws = phone.connect().await.unwrap();
    let phone_id = phone
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.current)
        .unwrap()
        .id;

    let (status, _) = laptop
        .raw(
            "DELETE",
            &format!("/api/v1/users/me/sessions/{phone_id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_unauthorized(phone.me().await);
    assert_unauthorized(server.client().refresh(&phone_auth.refresh_token).await);
    assert_session_ended(&mut phone_ws).await;
    laptop.me().await.expect("the caller's session still works");
    let left = laptop.sessions().await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].current);

    // It is gone: ending it again is 404.
    assert_api_error(laptop.end_session(&phone_id).await, 404, "not_found", None);
}

#[tokio::test]
async fn ending_a_session_of_another_user_is_404_and_leaves_it_alive() {
    let server = TestServer::spawn().await;
    let (alice, _) = register(&server, "alice").await;
    let (mallory, _) = register(&server, "mallory").await;
    let alice_session = alice.sessions().await.unwrap()[0].id.clone();

    assert_api_error(
        mallory.end_session(&alice_session).await,
        404,
        "not_found",
        None,
    );
    assert_api_error(
        mallory.end_session(UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );
    alice.me().await.expect("alice's session still works");
    assert_eq!(alice.sessions().await.unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------
// Profiles and search
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn profile_patch_sets_given_fields_keeps_absent_ones_and_null_clears() {
    let server = TestServer::spawn().await;
    let alice = server.user("prof").await;

    let set = alice
        .update_profile(&UpdateProfileRequest {
            display_name: Some(Some("Alice A.".into())),
            first_name: Some(Some("Alice".into())),
            bio: Some(Some("Likes otters".into())),
            website: Some(Some("https://alice.example.com/".into())),
            settings: Some(json!({"theme": "dark", "n": 3})),
            ..Default::default()
        })
        .await
        .expect("valid profile update");
    assert_eq!(set.display_name.as_deref(), Some("Alice A."));
    assert_eq!(set.first_name.as_deref(), Some("Alice"));
    assert_eq!(set.bio.as_deref(), Some("Likes otters"));
    assert_eq!(set.website.as_deref(), Some("https://alice.example.com/"));
    assert_eq!(set.settings, json!({"theme": "dark", "n": 3}));
    assert_eq!(set.location, None);

    // Absent fields are kept.
    let located = alice
        .update_profile(&UpdateProfileRequest {
            location: Some(Some("Lisbon".into())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(located.location.as_deref(), Some("Lisbon"));
    assert_eq!(located.display_name.as_deref(), Some("Alice A."));
    assert_eq!(located.bio.as_deref(), Some("Likes otters"));
    assert_eq!(located.settings, json!({"theme": "dark", "n": 3}));

    // `null` clears, on the wire as JSON null.
    let (status, cleared) = alice
        .raw(
            "PATCH",
            "/api/v1/users/me",
            Some(
                json!({"bio": null, "website": null})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["bio"], Value::Null);
    assert_eq!(cleared["website"], Value::Null);
    assert_eq!(cleared["display_name"], "Alice A.");
    assert_eq!(cleared["location"], "Lisbon");

    let me = alice.me().await.unwrap();
    assert_eq!(me.bio, None);
    assert_eq!(me.website, None);
    assert_eq!(me.first_name.as_deref(), Some("Alice"));
    assert_eq!(me.location.as_deref(), Some("Lisbon"));
}

#[tokio::test]
async fn profile_patch_refuses_a_javascript_website_a_long_bio_and_non_object_settings() {
    let server = TestServer::spawn().await;
    let alice = server.user("badprof").await;
    let before = alice.me().await.unwrap();

    let result = alice
        .update_profile(&UpdateProfileRequest {
            website: Some(Some("javascript:alert(1)".into())),
            ..Default::default()
        })
        .await;
    assert_api_error(result, 422, "validation_failed", Some("website"));

    let result = alice
        .update_profile(&UpdateProfileRequest {
            bio: Some(Some("b".repeat(501))),
            ..Default::default()
        })
        .await;
    assert_api_error(result, 422, "validation_failed", Some("bio"));
    // 500 is the bound and is accepted.
    alice
        .update_profile(&UpdateProfileRequest {
            bio: Some(Some("b".repeat(500))),
            ..Default::default()
        })
        .await
        .expect("a 500-character bio is accepted");

    for bad in [json!("dark"), json!([1, 2]), json!(7)] {
        let result = alice
            .update_profile(&UpdateProfileRequest {
                settings: Some(bad.clone()),
                ..Default::default()
            })
            .await;
        assert_api_error(result, 422, "validation_failed", Some("settings"));
    }

    let after = alice.me().await.unwrap();
    assert_eq!(
        after.website, before.website,
        "a refused update changes nothing"
    );
    assert_eq!(after.settings, before.settings);
}

#[tokio::test]
async fn public_profile_shows_public_fields_but_no_email_settings_or_names() {
    let server = TestServer::spawn().await;
    let alice = server.user("pub").await;
    let bob = server.user("viewer").await;
    alice
        .update_profile(&UpdateProfileRequest {
            display_name: Some(Some("Alice".into())),
            first_name: Some(Some("Alicia".into())),
            last_name: Some(Some("Secret".into())),
            bio: Some(Some("hello".into())),
            settings: Some(json!({"private": true})),
            ..Default::default()
        })
        .await
        .unwrap();

    let (status, body) = bob
        .raw("GET", &format!("/api/v1/users/{}", user_id(&alice)), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], user_id(&alice).as_str());
    assert_eq!(body["username"], username(&alice).as_str());
    assert_eq!(body["display_name"], "Alice");
    assert_eq!(body["bio"], "hello");
    assert_eq!(body["role"], "user");
    for private in [
        "email",
        "settings",
        "first_name",
        "last_name",
        "password_hash",
    ] {
        assert!(
            body.get(private).is_none(),
            "public profile leaks {private}: {body}"
        );
    }
    let text = body.to_string();
    assert!(!text.contains("@example.com"), "no email anywhere: {text}");
    assert!(!text.contains("Secret"), "no last name anywhere: {text}");

    let typed = bob.user(&user_id(&alice)).await.unwrap();
    assert_eq!(typed.username, username(&alice));

    assert_api_error(bob.user(UNKNOWN_ID).await, 404, "not_found", None);
    // Anonymous callers may not read profiles.
    assert_unauthorized(server.client().user(&user_id(&alice)).await);
}

#[tokio::test]
async fn user_search_returns_prefix_matches_in_username_order_paged_with_next() {
    let server = TestServer::spawn().await;
    let searcher = server.user("searcher").await;
    let prefix = unique_name("find");
    // Registered out of order; one name only contains the prefix.
    for suffix in ["c", "a", "d", "b"] {
        let name = format!("{prefix}_{suffix}");
        server
            .client()
            .register(&name, &format!("{name}@example.com"), PASSWORD)
            .await
            .unwrap();
    }
    let decoy = format!("x{prefix}");
    server
        .client()
        .register(&decoy, &format!("{decoy}@example.com"), PASSWORD)
        .await
        .unwrap();

    let page1 = searcher.search_users(&prefix, None, Some(3)).await.unwrap();
    let names = |p: &palaver_protocol::rest::UserList| {
        p.users
            .iter()
            .map(|u| u.username.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&page1),
        vec![
            format!("{prefix}_a"),
            format!("{prefix}_b"),
            format!("{prefix}_c")
        ]
    );
    let next = page1.next.clone().expect("a next cursor: more remain");
    let page2 = searcher
        .search_users(&prefix, Some(&next), Some(3))
        .await
        .unwrap();
    assert_eq!(names(&page2), vec![format!("{prefix}_d")]);
    assert_eq!(page2.next, None, "last page");

    // Upper-case query matches too (usernames are lower-case).
    let upper = searcher
        .search_users(&prefix.to_uppercase(), None, None)
        .await
        .unwrap();
    assert_eq!(upper.users.len(), 4, "{:?}", names(&upper));
    // Search results are public profiles.
    let (status, raw) = searcher
        .raw("GET", &format!("/api/v1/users?q={prefix}"), None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(raw["users"][0].get("email").is_none(), "{raw}");

    assert_api_error(
        searcher.search_users(&prefix, None, Some(0)).await,
        422,
        "validation_failed",
        Some("limit"),
    );
    assert_api_error(
        searcher.search_users(&prefix, None, Some(101)).await,
        422,
        "validation_failed",
        Some("limit"),
    );
}

// ---------------------------------------------------------------------------------------
// Password change
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn changing_the_password_with_a_wrong_current_password_is_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("pw").await;
    let result = alice
        .change_password("not-my-password-9", "quartz-lemur-58")
        .await;
    assert_api_error(result, 401, "invalid_credentials", None);
    // Nothing changed.
    login(&server, &username(&alice), PASSWORD).await;
}

#[tokio::test]
async fn changing_to_a_common_password_is_422_new_password() {
    let server = TestServer::spawn().await;
    let alice = server.user("pwc").await;
    for common in ["password1", "qwertyuiop"] {
        let result = alice.change_password(PASSWORD, common).await;
        assert_api_error(result, 422, "validation_failed", Some("new_password"));
    }
    let result = alice.change_password(PASSWORD, "short").await;
    assert_api_error(result, 422, "validation_failed", Some("new_password"));
    alice.me().await.expect("the session still works");
    login(&server, &username(&alice), PASSWORD).await;
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_keeps_the_current_one() {
    let server = TestServer::spawn().await;
    let (here, _) = register(&server, "pwchg").await;
    let (other, other_auth) = login(&server, &username(&here), PASSWORD).await;
    let mut here_ws = here.connect().await.unwrap();
    let mut other_ws = other.connect().await.unwrap();

    let (status, _) = here
        .raw(
            "PUT",
            "/api/v1/users/me/password",
            Some(
                json!({"current_password": PASSWORD, "new_password": "quartz-lemur-58"})
                    .to_string()
                    .into_bytes(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 204, "password change answers 204");

    assert_unauthorized(other.me().await);
    assert_unauthorized(server.client().refresh(&other_auth.refresh_token).await);
    assert_session_ended(&mut other_ws).await;

    here.me().await.expect("the current session keeps working");
    assert_ping_ok(&mut here_ws).await;

    login(&server, &username(&here), "quartz-lemur-58").await;
    let old = server.client().login(&username(&here), PASSWORD).await;
    assert_api_error(old, 401, "invalid_credentials", None);
}

// ---------------------------------------------------------------------------------------
// Account deletion
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn deleting_the_account_with_a_wrong_password_is_401_and_deletes_nothing() {
    let server = TestServer::spawn().await;
    let alice = server.user("keep").await;
    let result = alice.delete_account("not-my-password-9").await;
    assert_api_error(result, 401, "invalid_credentials", None);
    alice.me().await.expect("the account still exists");
}

#[tokio::test]
async fn deleting_the_account_ends_every_credential_but_keeps_its_messages() {
    let server = TestServer::spawn().await;
    let alice = server.user("leaver").await;
    let bob = server.user("stayer").await;
    let alice_name = username(&alice);
    let alice_id = user_id(&alice);
    let alice_email = format!("{alice_name}@example.com");
    let room = alice
        .create_room("farewell", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let sent = alice
        .send_message(&room.id, "goodbye all", None)
        .await
        .unwrap();
    let key = alice.create_api_key("bot", None).await.unwrap();
    let mut session_ws = alice.connect().await.unwrap();
    let mut key_ws = server
        .client()
        .connect_with(&[("x-api-key", &key.key)])
        .await
        .unwrap();

    let (status, _) = alice
        .raw(
            "DELETE",
            "/api/v1/users/me",
            Some(json!({"password": PASSWORD}).to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 204, "deletion answers 204");

    assert_unauthorized(alice.me().await);
    assert_session_ended(&mut session_ws).await;
    assert_session_ended(&mut key_ws).await;
    assert_unauthorized(with_token(&server, &key.key).me().await);
    for login in [alice_name.as_str(), alice_email.as_str()] {
        let result = server.client().login(login, PASSWORD).await;
        assert_api_error(result, 401, "invalid_credentials", None);
    }

    // The message stays, attributed to a placeholder.
    let history = bob.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(history.messages.len(), 1);
    let kept = &history.messages[0];
    assert_eq!(kept.id, sent.id);
    assert_eq!(kept.content, "goodbye all");
    assert_eq!(kept.sender.id, alice_id);
    assert!(
        kept.sender.username.starts_with("deleted-"),
        "sender shown as deleted-…: {:?}",
        kept.sender
    );
    assert_ne!(kept.sender.username, alice_name);
    // The account is no longer found by its name.
    let found = bob.search_users(&alice_name, None, None).await.unwrap();
    assert!(found.users.is_empty(), "{:?}", found.users);

    // The email is free again.
    let mut again = server.client();
    again
        .register(&unique_name("returner"), &alice_email, PASSWORD)
        .await
        .expect("a new account may register with the deleted account's email");
}

// ---------------------------------------------------------------------------------------
// API keys
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn creating_an_api_key_answers_201_with_the_key_and_lists_never_show_it() {
    let server = TestServer::spawn().await;
    let alice = server.user("keys").await;
    let (status, body) = alice
        .raw(
            "POST",
            "/api/v1/users/me/api-keys",
            Some(json!({"name": "ci bot"}).to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let created: CreatedApiKey = serde_json::from_value(body).unwrap();
    assert!(created.key.starts_with("plv_"), "{}", created.key);
    assert!(created
        .key
        .starts_with(&format!("{}_", created.info.prefix)));
    assert_eq!(created.info.name, "ci bot");
    // `plv_<id>_<secret>`; the secret (base64url) may itself contain `_`.
    let secret = created.key[created.info.prefix.len() + 1..].to_owned();
    assert!(secret.len() >= 32, "a long secret: {secret}");

    let (status, list) = alice
        .raw("GET", "/api/v1/users/me/api-keys", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let keys = list["api_keys"].as_array().expect("api_keys array");
    assert_eq!(keys.len(), 1, "{list}");
    assert_eq!(keys[0]["id"], created.info.id.as_str());
    assert!(keys[0].get("key").is_none(), "no key in the list: {list}");
    assert!(
        !list.to_string().contains(&secret),
        "the secret never appears in the list: {list}"
    );
    assert_eq!(alice.api_keys().await.unwrap(), vec![created.info.clone()]);
}

#[tokio::test]
async fn an_api_key_authenticates_rest_and_websocket_as_bearer_header_and_query() {
    let server = TestServer::spawn().await;
    let alice = server.user("bot").await;
    let key = alice.create_api_key("bot", None).await.unwrap().key;

    let me = with_token(&server, &key)
        .me()
        .await
        .expect("Authorization: Bearer <key>");
    assert_eq!(me.id, user_id(&alice));

    let resp = http_client(None)
        .get(format!("{}/api/v1/users/me", server.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "X-API-Key: <key>");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], user_id(&alice).as_str());

    let anonymous = server.client();
    for mut socket in [
        anonymous.connect_with(&[("x-api-key", &key)]).await,
        anonymous.connect_with_token(&key).await,
        anonymous.connect_with_query_token(&key).await,
    ]
    .into_iter()
    .map(|s| s.expect("a WebSocket opened with the API key"))
    {
        assert_eq!(socket.ready["user"]["id"], user_id(&alice).as_str());
        assert_ping_ok(&mut socket).await;
    }
}

#[tokio::test]
async fn revoking_an_api_key_stops_it_at_once_and_closes_its_websockets() {
    let server = TestServer::spawn().await;
    let alice = server.user("revoke").await;
    let created = alice.create_api_key("bot", None).await.unwrap();
    let mut key_ws = server
        .client()
        .connect_with(&[("x-api-key", &created.key)])
        .await
        .unwrap();
    let mut session_ws = alice.connect().await.unwrap();

    let (status, _) = alice
        .raw(
            "DELETE",
            &format!("/api/v1/users/me/api-keys/{}", created.info.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert_unauthorized(with_token(&server, &created.key).me().await);
    assert_session_ended(&mut key_ws).await;
    // The owner's session is not affected.
    alice.me().await.unwrap();
    assert_ping_ok(&mut session_ws).await;
    // A revoked key cannot open a WebSocket either.
    let request = server
        .client()
        .ws_request(None, &[("x-api-key", &created.key)])
        .unwrap();
    assert_handshake_refused(&refused_handshake(request).await, 401, "unauthorized");
    // Revoking it again: it is no longer a live key.
    assert_api_error(
        alice.revoke_api_key(&created.info.id).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn logging_out_with_an_api_key_revokes_that_key() {
    let server = TestServer::spawn().await;
    let alice = server.user("keyout").await;
    let key = alice.create_api_key("bot", None).await.unwrap().key;
    let bot = with_token(&server, &key);
    bot.logout().await.expect("logout with an API key: 204");
    assert_unauthorized(bot.me().await);
    alice
        .me()
        .await
        .expect("the owner's session is not affected");
}

#[tokio::test]
async fn another_user_cannot_revoke_ones_api_key() {
    let server = TestServer::spawn().await;
    let alice = server.user("owner").await;
    let mallory = server.user("mallory").await;
    let created = alice.create_api_key("bot", None).await.unwrap();
    assert_api_error(
        mallory.revoke_api_key(&created.info.id).await,
        404,
        "not_found",
        None,
    );
    assert!(mallory.api_keys().await.unwrap().is_empty());
    with_token(&server, &created.key)
        .me()
        .await
        .expect("the key still works");
}

#[tokio::test]
async fn an_api_key_expiring_in_the_past_is_422_expires_at() {
    let server = TestServer::spawn().await;
    let alice = server.user("expiry").await;
    let result = alice
        .create_api_key("old", Some("2001-01-01T00:00:00Z"))
        .await;
    assert_api_error(result, 422, "validation_failed", Some("expires_at"));
    let result = alice.create_api_key("bad", Some("next tuesday")).await;
    assert_api_error(result, 422, "validation_failed", Some("expires_at"));
    assert!(
        alice.api_keys().await.unwrap().is_empty(),
        "nothing created"
    );
    // A future expiry is fine.
    let ok = alice
        .create_api_key("new", Some("2999-01-01T00:00:00Z"))
        .await
        .expect("future expiry accepted");
    assert!(ok.info.expires_at.is_some());
}

#[tokio::test]
async fn an_api_key_with_a_tampered_secret_is_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("tamper").await;
    let key = alice.create_api_key("bot", None).await.unwrap().key;
    with_token(&server, &key).me().await.expect("genuine key");

    let last = key.chars().last().unwrap();
    let swapped = if last == 'A' { 'B' } else { 'A' };
    let tampered = format!("{}{swapped}", &key[..key.len() - 1]);
    assert_unauthorized(with_token(&server, &tampered).me().await);
    let truncated = &key[..key.len() - 1];
    assert_unauthorized(with_token(&server, truncated).me().await);
    let resp = http_client(None)
        .get(format!("{}/api/v1/users/me", server.base))
        .header("x-api-key", &tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401, "tampered X-API-Key");
}

// ---------------------------------------------------------------------------------------
// Forged and misused tokens
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_alg_none_token_is_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("algnone").await;
    let token = alice.token.clone().unwrap();
    alice.me().await.expect("the genuine token works");
    let claims = jwt_claims(&token);
    for header in [
        json!({"alg": "none", "typ": "at+jwt"}),
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None", "typ": "at+jwt"}),
    ] {
        let forged = format!("{}.{}.", b64_json(&header), b64_json(&claims));
        assert_unauthorized(with_token(&server, &forged).me().await);
        // Also with the genuine signature left on.
        let signature = token.rsplit('.').next().unwrap();
        let forged = format!("{}.{}.{signature}", b64_json(&header), b64_json(&claims));
        assert_unauthorized(with_token(&server, &forged).me().await);
    }
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("otherkey").await;
    let claims = jwt_claims(alice.token.as_deref().unwrap());
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(&[42u8; 32]),
    )
    .unwrap();
    assert_eq!(jwt_claims(&forged), claims, "same claims, other key");
    assert_unauthorized(with_token(&server, &forged).me().await);
    alice.me().await.expect("the genuine token works");
}

#[tokio::test]
async fn a_token_with_an_altered_payload_is_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("altered").await;
    let bob = server.user("victim").await;
    let token = alice.token.clone().unwrap();
    let parts: Vec<&str> = token.split('.').collect();

    // A longer lifetime: nothing but the signature can catch this.
    let mut claims = jwt_claims(&token);
    claims["exp"] = json!(claims["exp"].as_u64().unwrap() + 3600);
    let forged = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
    assert_unauthorized(with_token(&server, &forged).me().await);

    // Someone else's identity.
    let mut claims = jwt_claims(&token);
    claims["sub"] = json!(user_id(&bob));
    claims["sid"] = jwt_claims(bob.token.as_deref().unwrap())["sid"].clone();
    let forged = format!("{}.{}.{}", parts[0], b64_json(&claims), parts[2]);
    assert_unauthorized(with_token(&server, &forged).me().await);

    alice.me().await.expect("the genuine token works");
}

#[tokio::test]
async fn a_refresh_token_used_as_a_bearer_access_token_is_401() {
    let server = TestServer::spawn().await;
    let (alice, auth) = register(&server, "rtbearer").await;
    assert_unauthorized(with_token(&server, &auth.refresh_token).me().await);
    let request = server
        .client()
        .ws_request(
            None,
            &[("authorization", &format!("Bearer {}", auth.refresh_token))],
        )
        .unwrap();
    assert_handshake_refused(&refused_handshake(request).await, 401, "unauthorized");
    alice.me().await.expect("the access token works");
    // Trying it did not spend or revoke it.
    server
        .client()
        .refresh(&auth.refresh_token)
        .await
        .expect("the refresh token still refreshes");
}

// ---------------------------------------------------------------------------------------
// Roles and administration
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_normal_user_gets_403_forbidden_on_admin_routes() {
    let server = TestServer::spawn().await;
    let alice = server.user("plain").await;
    let bob = server.user("target").await;
    assert_api_error(alice.admin_users("").await, 403, "forbidden", None);
    assert_api_error(
        alice.admin_set_role(&user_id(&alice), Role::Admin).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        alice.admin_disable(&user_id(&bob)).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        alice.admin_enable(&user_id(&bob)).await,
        403,
        "forbidden",
        None,
    );
    assert_eq!(alice.me().await.unwrap().role, Role::User, "no promotion");
    bob.me().await.expect("bob was not disabled");
    assert_unauthorized(server.client().admin_users("").await);
}

#[tokio::test]
async fn an_admin_lists_users_and_sets_roles_but_cannot_demote_themself() {
    let (server, admin) = server_with_admin().await;
    let alice = server.user("promoted").await;

    let list = admin.admin_users("").await.expect("admin lists users");
    let names: Vec<_> = list.users.iter().map(|u| u.user.username.clone()).collect();
    assert!(names.contains(&"root".to_string()), "{names:?}");
    assert!(names.contains(&username(&alice)), "{names:?}");
    let listed = list
        .users
        .iter()
        .find(|u| u.user.id == user_id(&alice))
        .unwrap();
    assert_eq!(
        listed.user.email,
        format!("{}@example.com", username(&alice)),
        "admins see emails"
    );
    assert_eq!(listed.disabled_at, None);
    let filtered = admin.admin_users(&username(&alice)).await.unwrap();
    assert_eq!(filtered.users.len(), 1);

    let set = admin
        .admin_set_role(&user_id(&alice), Role::Moderator)
        .await
        .expect("set role");
    assert_eq!(set.user.role, Role::Moderator);
    assert_eq!(set.user.id, user_id(&alice));
    assert_eq!(
        alice.me().await.unwrap().role,
        Role::Moderator,
        "the user sees the new role at once"
    );
    // A moderator is still not an admin.
    assert_api_error(alice.admin_users("").await, 403, "forbidden", None);

    assert_api_error(
        admin.admin_set_role(&user_id(&admin), Role::User).await,
        409,
        "conflict",
        None,
    );
    assert_api_error(
        admin
            .admin_set_role(&user_id(&admin), Role::Moderator)
            .await,
        409,
        "conflict",
        None,
    );
    assert_eq!(admin.me().await.unwrap().role, Role::Admin, "still admin");
    assert_api_error(
        admin.admin_set_role(UNKNOWN_ID, Role::Moderator).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn disabling_an_account_ends_its_access_until_it_is_enabled_again() {
    let (server, admin) = server_with_admin().await;
    let alice = server.user("disabled").await;
    let key = alice.create_api_key("bot", None).await.unwrap().key;
    let mut ws = alice.connect().await.unwrap();

    let disabled = admin.admin_disable(&user_id(&alice)).await.unwrap();
    assert!(disabled.disabled_at.is_some(), "{disabled:?}");
    assert_unauthorized(alice.me().await);
    assert_unauthorized(with_token(&server, &key).me().await);
    assert_session_ended(&mut ws).await;
    let result = server.client().login(&username(&alice), PASSWORD).await;
    assert_api_error(result, 403, "account_disabled", None);
    // A wrong password still says only "wrong credentials".
    let result = server
        .client()
        .login(&username(&alice), "not-my-password-9")
        .await;
    assert_api_error(result, 401, "invalid_credentials", None);
    // Disabled accounts are still listed for admins.
    let listed = admin.admin_users(&username(&alice)).await.unwrap();
    assert!(listed.users[0].disabled_at.is_some());
    // Admins cannot disable themselves.
    assert_api_error(
        admin.admin_disable(&user_id(&admin)).await,
        409,
        "conflict",
        None,
    );

    let enabled = admin.admin_enable(&user_id(&alice)).await.unwrap();
    assert_eq!(enabled.disabled_at, None);
    let (again, _) = login(&server, &username(&alice), PASSWORD).await;
    again.me().await.expect("logins work again");
}

// ---------------------------------------------------------------------------------------
// Blocks
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn blocking_a_user_is_idempotent_listed_and_undone_by_delete() {
    let server = TestServer::spawn().await;
    let alice = server.user("blocker").await;
    let bob = server.user("blocked").await;

    let blocked = alice.block(&user_id(&bob)).await.expect("block: 200");
    assert_eq!(blocked.id, user_id(&bob));
    assert_eq!(blocked.username, username(&bob));
    let list = alice.blocks().await.unwrap();
    assert_eq!(list, vec![blocked.clone()]);

    let again = alice.block(&user_id(&bob)).await.expect("blocking again");
    assert_eq!(again, blocked);
    assert_eq!(alice.blocks().await.unwrap().len(), 1, "still one block");
    assert!(bob.blocks().await.unwrap().is_empty(), "blocks are one-way");

    let (status, _) = alice
        .raw(
            "DELETE",
            &format!("/api/v1/users/me/blocks/{}", user_id(&bob)),
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    assert!(alice.blocks().await.unwrap().is_empty());
    assert_api_error(alice.unblock(&user_id(&bob)).await, 404, "not_found", None);
}

#[tokio::test]
async fn blocking_oneself_is_422_and_an_unknown_user_404() {
    let server = TestServer::spawn().await;
    let alice = server.user("selfish").await;
    assert_api_error(
        alice.block(&user_id(&alice)).await,
        422,
        "validation_failed",
        Some("user_id"),
    );
    assert_api_error(alice.block(UNKNOWN_ID).await, 404, "not_found", None);
    assert!(alice.blocks().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Ids of other users
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn ids_of_another_users_sessions_and_api_keys_are_answered_404() {
    let server = TestServer::spawn().await;
    let alice = server.user("victim").await;
    let mallory = server.user("mallory").await;
    let session = alice.sessions().await.unwrap()[0].id.clone();
    let key = alice.create_api_key("bot", None).await.unwrap();

    let got = mallory
        .raw(
            "DELETE",
            &format!("/api/v1/users/me/sessions/{session}"),
            None,
        )
        .await
        .unwrap();
    assert_raw_error(&got, 404, "not_found");
    let got = mallory
        .raw(
            "DELETE",
            &format!("/api/v1/users/me/api-keys/{}", key.info.id),
            None,
        )
        .await
        .unwrap();
    assert_raw_error(&got, 404, "not_found");
    // Exactly as for ids that do not exist at all.
    let got = mallory
        .raw(
            "DELETE",
            &format!("/api/v1/users/me/api-keys/{UNKNOWN_ID}"),
            None,
        )
        .await
        .unwrap();
    assert_raw_error(&got, 404, "not_found");

    alice.me().await.expect("alice's session survives");
    with_token(&server, &key.key)
        .me()
        .await
        .expect("alice's key survives");
    assert!(mallory
        .sessions()
        .await
        .unwrap()
        .iter()
        .all(|s| s.id != session));
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn five_failed_logins_lock_the_account_from_that_address_but_not_from_another() {
    let server = TestServer::spawn().await; // default login limits: 5 per 15 minutes
    let alice = server.user("locked").await;
    let name = username(&alice);
    let local = http_client(Some(IpAddr::from([127, 0, 0, 1])));
    for attempt in 1..=5 {
        let resp = login_raw(&local, &server, &name, "not-my-password-9").await;
        assert_eq!(resp.status(), 401, "failed attempt {attempt}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
    // The sixth attempt is refused before the password is checked, even the right one.
    let resp = login_raw(&local, &server, &name, PASSWORD).await;
    assert_rate_limited(resp, 900).await;

    // From another network (the count is per account and IPv4 /24) the account still
    // logs in.
    let elsewhere = http_client(Some(IpAddr::from([127, 0, 1, 2])));
    let resp = login_raw(&elsewhere, &server, &name, PASSWORD).await;
    assert_eq!(resp.status(), 200, "login from 127.0.1.2");
    let auth: AuthResponse = resp.json().await.unwrap();
    assert_eq!(auth.user.username, name);
    let sessions = alice.sessions().await.unwrap();
    assert!(
        sessions
            .iter()
            .any(|s| s.ip.as_deref() == Some("127.0.1.2")),
        "{sessions:?}"
    );
}

#[tokio::test]
async fn registrations_beyond_the_per_ip_limit_are_429() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.rate_limits.registrations_per_ip = Rule {
            max: 2,
            window_secs: 3600,
        };
    })
    .await;
    server.user("first").await;
    server.user("second").await;
    let name = unique_name("third");
    let resp = http_client(None)
        .post(format!("{}/api/v1/auth/register", server.base))
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_rate_limited(resp, 3600).await;
    // Another address may still register.
    let mut other = Client::with_http(
        server.base.clone(),
        http_client(Some(IpAddr::from([127, 0, 0, 2]))),
    );
    other
        .register(&name, &format!("{name}@example.com"), PASSWORD)
        .await
        .expect("registration from another address");
}

#[tokio::test]
async fn requests_beyond_the_per_ip_budget_are_429_with_retry_after() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.rate_limits.requests_per_ip = Rule {
            max: 5,
            window_secs: 60,
        };
    })
    .await;
    let http = http_client(Some(IpAddr::from([127, 0, 0, 1])));
    let url = format!("{}/api/v1/rooms/public", server.base);
    for i in 1..=5 {
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(
            resp.status(),
            401,
            "request {i} is served (unauthenticated)"
        );
    }
    let resp = http.get(&url).send().await.unwrap();
    assert_rate_limited(resp, 60).await;
    // The budget is per address.
    let other = http_client(Some(IpAddr::from([127, 0, 0, 2])));
    let resp = other.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401, "another address is still served");
}

// ---------------------------------------------------------------------------------------
// CORS and the WebSocket Origin check
// ---------------------------------------------------------------------------------------

const ALLOWED_ORIGIN: &str = "https://app.example.org";
const EVIL_ORIGIN: &str = "https://evil.example";

async fn server_with_cors() -> TestServer {
    TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.cors.allowed_origins = vec![ALLOWED_ORIGIN.into()];
    })
    .await
}

/// An OPTIONS preflight for `GET /api/v1/users/me` with `Authorization` from `origin`.
async fn preflight(server: &TestServer, origin: &str) -> reqwest::Response {
    http_client(None)
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/users/me", server.base),
        )
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("preflight completes")
}

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin_is_allowed_and_others_get_no_allow_origin() {
    let server = server_with_cors().await;

    let resp = preflight(&server, ALLOWED_ORIGIN).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some(ALLOWED_ORIGIN)
    );
    let allowed_headers = resp
        .headers()
        .get("access-control-allow-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );

    let resp = preflight(&server, EVIL_ORIGIN).await;
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "no allow-origin for a foreign origin: {:?}",
        resp.headers()
    );

    // Actual requests: the allowed origin is echoed, a foreign one is not.
    let alice = server.user("cors").await;
    for (origin, echoed) in [(ALLOWED_ORIGIN, true), (EVIL_ORIGIN, false)] {
        let resp = http_client(None)
            .get(format!("{}/api/v1/users/me", server.base))
            .bearer_auth(alice.token.as_deref().unwrap())
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let header = resp
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(header.is_some(), echoed, "{origin}: {header:?}");
        if echoed {
            assert_eq!(header.as_deref(), Some(origin));
        }
    }
}

#[tokio::test]
async fn websocket_from_a_foreign_or_null_origin_is_403_before_the_upgrade() {
    let server = server_with_cors().await;
    let alice = server.user("origin").await;
    for origin in [EVIL_ORIGIN, "null", "http://app.example.org"] {
        let request = alice.ws_request(None, &[("origin", origin)]).unwrap();
        let refusal = refused_handshake(request).await;
        assert_handshake_refused(&refusal, 403, "forbidden");
    }
    // The same with a query-string token (what a browser page would use).
    let token = alice.token.clone().unwrap();
    let request = server
        .client()
        .ws_request(Some(&token), &[("origin", EVIL_ORIGIN)])
        .unwrap();
    assert_handshake_refused(&refused_handshake(request).await, 403, "forbidden");
}

#[tokio::test]
async fn websocket_from_the_allowed_origin_its_own_origin_or_no_origin_connects() {
    let server = server_with_cors().await;
    let alice = server.user("origin_ok").await;
    let own_origin = server.base.clone();
    for headers in [
        vec![("origin", ALLOWED_ORIGIN)],
        vec![("origin", own_origin.as_str())],
        vec![],
    ] {
        let mut socket = alice
            .connect_with(&headers)
            .await
            .unwrap_or_else(|e| panic!("{headers:?}: {e}"));
        assert_ping_ok(&mut socket).await;
    }
}

/// Deleting an account tells the members of each of its rooms that the user left
/// (`member.left`), as leaving would.
#[tokio::test]
async fn deleting_the_account_tells_its_rooms_the_user_left() {
    let server = TestServer::spawn().await;
    let alice = server.user("leaver").await;
    let bob = server.user("stayer").await;
    let alice_id = user_id(&alice);
    let room = alice
        .create_room(&unique_name("farewell"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let (status, _) = alice
        .raw(
            "DELETE",
            "/api/v1/users/me",
            Some(json!({"password": PASSWORD}).to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let left = tokio::time::timeout(Duration::from_secs(10), bob_ws.next_event_of("member.left"))
        .await
        .expect("member.left in time")
        .unwrap();
    assert_eq!(left["data"]["room_id"], room.id.as_str());
    assert_eq!(left["data"]["user_id"], alice_id.as_str());
    let members = bob.members(&room.id).await.unwrap();
    assert!(members.iter().all(|m| m.user_id != alice_id));
}
