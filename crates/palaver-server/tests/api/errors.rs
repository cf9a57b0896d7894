//! Failure paths: every bad request gets the documented status and stable error code, in
//! the documented body shape, and a bad request never breaks the connection or loses data.

use std::time::Duration;

use palaver_client::{Client, ClientError, Socket};
use palaver_protocol::{ErrorCode, Visibility};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::helpers::{assert_api_error, unique_name, TestServer};

/// How long a test waits for a WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Asserts that `body` is exactly `{"error": {"code", "message", "field"?}}`: one top-level
/// key, a known code whose HTTP status is `status`, a non-empty message and, if present, a
/// non-empty string `field`.
#[track_caller]
fn assert_error_shape(status: u16, body: &Value) {
    let top = body
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {body}"));
    assert_eq!(
        top.keys().collect::<Vec<_>>(),
        vec!["error"],
        "error body has exactly one key, `error`: {body}"
    );
    let error = top["error"]
        .as_object()
        .unwrap_or_else(|| panic!("`error` is not an object: {body}"));
    for key in error.keys() {
        assert!(
            matches!(key.as_str(), "code" | "message" | "field"),
            "unexpected key {key:?} in {body}"
        );
    }
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`error.code` is not a string: {body}"));
    let code: ErrorCode = serde_json::from_value(json!(code))
        .unwrap_or_else(|_| panic!("`error.code` {code:?} is not a known code: {body}"));
    assert_eq!(
        code.http_status(),
        status,
        "HTTP status matches the code's status: {body}"
    );
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("`error.message` is not a string: {body}"));
    assert!(
        !message.trim().is_empty(),
        "`error.message` is empty: {body}"
    );
    if let Some(field) = error.get("field") {
        let field = field
            .as_str()
            .unwrap_or_else(|| panic!("`error.field` is not a string: {body}"));
        assert!(!field.is_empty(), "`error.field` is empty: {body}");
    }
}

/// Asserts a raw `(status, body)` answer is the error `code` with `status`, naming `field`
/// when one is given, in the standard shape.
#[track_caller]
fn assert_raw_error(got: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "status; body: {body}");
    assert_eq!(body["error"]["code"], code, "error.code; body: {body}");
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "error.field; body: {body}");
    }
    assert_error_shape(*got_status, body);
}

/// Asserts a WebSocket request failed with `code`, naming `field` when one is given.
#[track_caller]
fn assert_rejected<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    code: ErrorCode,
    field: Option<&str>,
) {
    match result {
        Err(ClientError::Rejected(detail)) => {
            assert_eq!(detail.code, code, "error code; detail: {detail:?}");
            assert!(!detail.message.is_empty(), "message; detail: {detail:?}");
            if let Some(field) = field {
                assert_eq!(detail.field.as_deref(), Some(field), "field; {detail:?}");
            }
        }
        other => panic!("expected a failed reply {code}, got {other:?}"),
    }
}

/// `POST /api/v1/auth/register` with a raw JSON value as body.
async fn register_raw(client: &Client, body: &Value) -> (u16, Value) {
    client
        .raw(
            "POST",
            "/api/v1/auth/register",
            Some(body.to_string().into_bytes()),
        )
        .await
        .expect("request completes")
}

/// A valid registration body for a fresh username.
fn valid_registration() -> Value {
    let name = unique_name("reg");
    json!({
        "username": name,
        "email": format!("{name}@example.com"),
        "password": "vivid-otter-42",
    })
}

/// Sends a ping and asserts it gets an ok reply (the connection is up and serving).
async fn assert_ping_ok(socket: &mut Socket) {
    let data = socket
        .request("ping", json!({}))
        .await
        .expect("ping gets an ok reply: the connection is still up");
    assert_eq!(data, json!({}));
}

/// Tries a WebSocket handshake with `request` and returns the HTTP response it was refused
/// with; panics if the upgrade succeeds or fails in another way.
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

/// Asserts a refused handshake was `401`, and that its body, when one arrived with the
/// response, is the `unauthorized` error.
#[track_caller]
fn assert_handshake_unauthorized(refusal: &(u16, Option<Vec<u8>>)) {
    let (status, body) = refusal;
    assert_eq!(*status, 401, "refused before upgrade with 401");
    if let Some(bytes) = body.as_ref().filter(|b| !b.is_empty()) {
        if let Ok(body) = serde_json::from_slice::<Value>(bytes) {
            assert_eq!(body["error"]["code"], "unauthorized", "body: {body}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_username_is_409_username_taken() {
    let server = TestServer::spawn().await;
    let mut first = server.client();
    first
        .register("taken_name", "first@example.com", "vivid-otter-42")
        .await
        .unwrap();
    let mut second = server.client();
    let result = second
        .register("taken_name", "second@example.com", "vivid-otter-42")
        .await;
    assert_api_error(result, 409, "username_taken", Some("username"));
}

#[tokio::test]
async fn duplicate_email_differing_only_in_case_is_409_email_taken() {
    let server = TestServer::spawn().await;
    let mut first = server.client();
    first
        .register("bob_first", "Bob@Example.com", "vivid-otter-42")
        .await
        .unwrap();
    let mut second = server.client();
    let result = second
        .register("bob_second", "bob@example.com", "vivid-otter-42")
        .await;
    assert_api_error(result, 409, "email_taken", None);
}

#[tokio::test]
async fn username_too_short_too_long_uppercase_or_with_space_is_422_username() {
    let server = TestServer::spawn().await;
    let too_long = "a".repeat(33);
    for (i, bad) in ["ab", too_long.as_str(), "Alice", "al ice"]
        .into_iter()
        .enumerate()
    {
        let mut client = server.client();
        let result = client
            .register(bad, &format!("user{i}@example.com"), "vivid-otter-42")
            .await;
        assert_api_error(result, 422, "validation_failed", Some("username"));
    }
    // The bounds themselves are accepted.
    let mut client = server.client();
    client
        .register("abc", "three@example.com", "vivid-otter-42")
        .await
        .expect("3-character username is accepted");
    let mut client = server.client();
    client
        .register(&"b".repeat(32), "thirtytwo@example.com", "vivid-otter-42")
        .await
        .expect("32-character username is accepted");
}

#[tokio::test]
async fn malformed_email_is_422_email() {
    let server = TestServer::spawn().await;
    for (i, bad) in ["", "bob", "bob@", "@example.com", "a b@example.com"]
        .into_iter()
        .enumerate()
    {
        let mut client = server.client();
        let result = client
            .register(&format!("bad_email_{i}"), bad, "vivid-otter-42")
            .await;
        assert_api_error(result, 422, "validation_failed", Some("email"));
    }
}

#[tokio::test]
async fn password_of_7_or_129_chars_is_422_password() {
    let server = TestServer::spawn().await;
    for (i, bad) in ["x".repeat(7), "x".repeat(129)].into_iter().enumerate() {
        let mut client = server.client();
        let result = client
            .register(&format!("pw_user_{i}"), &format!("pw{i}@example.com"), &bad)
            .await;
        assert_api_error(result, 422, "validation_failed", Some("password"));
    }
}

#[tokio::test]
async fn password_of_8_and_128_chars_is_accepted() {
    let server = TestServer::spawn().await;
    for (i, good) in ["x".repeat(8), "y".repeat(128)].into_iter().enumerate() {
        let name = format!("pw_ok_{i}");
        let mut client = server.client();
        client
            .register(&name, &format!("{name}@example.com"), &good)
            .await
            .unwrap_or_else(|e| panic!("{}-char password refused: {e}", good.len()));
        // And the account works with it.
        let mut again = server.client();
        again.login(&name, &good).await.expect("login with it");
    }
}

#[tokio::test]
async fn missing_field_in_body_is_422_naming_the_field() {
    let server = TestServer::spawn().await;
    let client = server.client();
    let mut body = valid_registration();
    body.as_object_mut().unwrap().remove("password");
    let got = register_raw(&client, &body).await;
    assert_raw_error(&got, 422, "validation_failed", Some("password"));
}

#[tokio::test]
async fn wrong_field_type_is_422_naming_the_field() {
    let server = TestServer::spawn().await;
    let client = server.client();
    let mut body = valid_registration();
    body["username"] = json!(5);
    let got = register_raw(&client, &body).await;
    assert_raw_error(&got, 422, "validation_failed", Some("username"));
}

// ---------------------------------------------------------------------------------------
// Malformed JSON
// ---------------------------------------------------------------------------------------

/// Bodies that are not well-formed JSON, built around `valid` (a well-formed body of the
/// right shape): syntax errors, an empty body, a truncated document, trailing garbage.
fn malformed_bodies(valid: &Value) -> Vec<Vec<u8>> {
    let valid = valid.to_string();
    vec![
        b"{bad".to_vec(),
        Vec::new(),
        b"not json".to_vec(),
        valid.as_bytes()[..valid.len() - 1].to_vec(),
        format!("{valid} trailing").into_bytes(),
        format!("{valid}}}").into_bytes(),
        format!("{valid}{valid}").into_bytes(),
    ]
}

#[tokio::test]
async fn malformed_json_on_register_is_400_invalid_json() {
    let server = TestServer::spawn().await;
    let client = server.client();
    let valid = valid_registration();
    for body in malformed_bodies(&valid) {
        let got = client
            .raw("POST", "/api/v1/auth/register", Some(body.clone()))
            .await
            .unwrap();
        assert_raw_error(&got, 400, "invalid_json", None);
    }
    // Control: the same body, well-formed, registers (nothing above created the account).
    let got = register_raw(&client, &valid).await;
    assert_eq!(got.0, 201, "{}", got.1);
}

#[tokio::test]
async fn malformed_json_on_post_message_is_400_invalid_json() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let path = format!("/api/v1/rooms/{}/messages", room.id);
    for body in malformed_bodies(&json!({"content": "hi"})) {
        let got = alice.raw("POST", &path, Some(body)).await.unwrap();
        assert_raw_error(&got, 400, "invalid_json", None);
    }
    // Nothing was stored.
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert!(page.messages.is_empty(), "{:?}", page.messages);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json_even_when_its_prefix_has_the_wrong_shape() {
    // A body that is not JSON at all is `invalid_json`, whatever its well-formed prefix
    // looks like: the shape of a document is judged only once it is a document.
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let messages = format!("/api/v1/rooms/{}/messages", room.id);
    let cases: [(&str, &[u8]); 4] = [
        ("/api/v1/auth/register", br#"{"content": "hi"}}"#),
        ("/api/v1/auth/register", br#"{"username": 5, "email": "#),
        (&messages, br#"{"content": 5} trailing"#),
        (&messages, br#"{"text": "hi"} {"#),
    ];
    let mut wrong = Vec::new();
    for (path, body) in cases {
        let (status, json) = alice.raw("POST", path, Some(body.to_vec())).await.unwrap();
        assert_error_shape(status, &json);
        if status != 400 || json["error"]["code"] != "invalid_json" {
            wrong.push(format!(
                "POST {path} {:?} -> {status} {json}",
                String::from_utf8_lossy(body)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 400 invalid_json for each, got:\n{}",
        wrong.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Login and tokens
// ---------------------------------------------------------------------------------------

/// `POST /api/v1/auth/login` returning the status and the exact body bytes.
async fn login_bytes(server: &TestServer, login: &str, password: &str) -> (u16, Vec<u8>) {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"login": login, "password": password}))
        .send()
        .await
        .expect("login request completes");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_byte_identical_401_invalid_credentials() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let name = alice.user.as_ref().unwrap().username.clone();
    let email = alice.user.as_ref().unwrap().email.clone();

    // The account exists and its password works.
    let (ok_status, _) = login_bytes(&server, &name, "vivid-otter-42").await;
    assert_eq!(ok_status, 200);

    let wrong_password = login_bytes(&server, &name, "wrong-password").await;
    let wrong_password_by_email = login_bytes(&server, &email, "wrong-password").await;
    let unknown_user = login_bytes(&server, "nobody_here", "wrong-password").await;

    for (status, bytes) in [&wrong_password, &wrong_password_by_email, &unknown_user] {
        let body: Value = serde_json::from_slice(bytes).expect("JSON body");
        assert_raw_error(&(*status, body), 401, "invalid_credentials", None);
    }
    assert_eq!(
        String::from_utf8_lossy(&wrong_password.1),
        String::from_utf8_lossy(&unknown_user.1),
        "wrong password and unknown user are indistinguishable"
    );
    assert_eq!(wrong_password.1, unknown_user.1);
    assert_eq!(wrong_password.1, wrong_password_by_email.1);
}

#[tokio::test]
async fn me_without_token_is_401_unauthorized() {
    let server = TestServer::spawn().await;
    let got = server
        .client()
        .raw("GET", "/api/v1/users/me", None)
        .await
        .unwrap();
    assert_raw_error(&got, 401, "unauthorized", None);
}

#[tokio::test]
async fn me_with_garbage_token_is_401_unauthorized() {
    let server = TestServer::spawn().await;
    for garbage in ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"] {
        let mut client = server.client();
        client.token = Some(garbage.to_owned());
        let got = client.raw("GET", "/api/v1/users/me", None).await.unwrap();
        assert_raw_error(&got, 401, "unauthorized", None);
    }
}

#[tokio::test]
async fn me_with_altered_token_signature_is_401_unauthorized() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // The untouched token works.
    alice.me().await.expect("a valid token is accepted");

    let token = alice.token.clone().unwrap();
    let (signed, signature) = token.rsplit_once('.').expect("a JWT has three parts");
    // The first signature character carries six real bits: change it.
    let mut chars: Vec<char> = signature.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    let flipped: String = chars.into_iter().collect();
    // Bob's (valid) signature on Alice's claims.
    let bob_token = bob.token.clone().unwrap();
    let (_, bob_signature) = bob_token.rsplit_once('.').unwrap();

    for forged in [
        format!("{signed}.{flipped}"),
        format!("{signed}.{bob_signature}"),
        format!("{signed}."),
    ] {
        let mut client = server.client();
        client.token = Some(forged.clone());
        let got = client.raw("GET", "/api/v1/users/me", None).await.unwrap();
        assert_raw_error(&got, 401, "unauthorized", None);
    }
}

// ---------------------------------------------------------------------------------------
// Rooms
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn blank_or_101_char_room_name_is_422_name() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    for bad in [String::new(), "   ".to_owned(), "n".repeat(101)] {
        let result = alice.create_room(&bad, Visibility::Public, None).await;
        assert_api_error(result, 422, "validation_failed", Some("name"));
    }
    alice
        .create_room(&"n".repeat(100), Visibility::Public, None)
        .await
        .expect("100-character name is accepted");
}

#[tokio::test]
async fn unknown_visibility_is_422_visibility() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let body = json!({"name": "room", "visibility": "secret"});
    let got = alice
        .raw("POST", "/api/v1/rooms", Some(body.to_string().into_bytes()))
        .await
        .unwrap();
    assert_raw_error(&got, 422, "validation_failed", Some("visibility"));
    assert!(
        alice.my_rooms().await.unwrap().is_empty(),
        "no room created"
    );
}

#[tokio::test]
async fn joining_a_private_room_as_non_member_is_403_forbidden() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("private", Visibility::Private, None)
        .await
        .unwrap();
    assert_api_error(eve.join_room(&room.id).await, 403, "forbidden", None);
    assert!(
        eve.my_rooms().await.unwrap().is_empty(),
        "eve did not get in"
    );
}

#[tokio::test]
async fn joining_an_unknown_room_is_404_not_found() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let result = alice
        .join_room("00000000-0000-7000-8000-000000000000")
        .await;
    assert_api_error(result, 404, "not_found", None);
    assert_api_error(
        alice.join_room("no-such-room").await,
        404,
        "not_found",
        None,
    );
}

// ---------------------------------------------------------------------------------------
// Messages over REST
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn posting_to_a_room_you_are_not_in_is_403_not_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    for visibility in [Visibility::Public, Visibility::Private] {
        let room = alice.create_room("r", visibility, None).await.unwrap();
        let result = eve.send_message(&room.id, "let me in", None).await;
        assert_api_error(result, 403, "not_member", None);
        let page = alice.history(&room.id, None, None, None).await.unwrap();
        assert!(
            page.messages.is_empty(),
            "nothing stored: {:?}",
            page.messages
        );
    }
}

#[tokio::test]
async fn posting_to_an_unknown_room_is_404_not_found() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let result = alice
        .send_message("00000000-0000-7000-8000-000000000000", "hello?", None)
        .await;
    assert_api_error(result, 404, "not_found", None);
}

#[tokio::test]
async fn empty_blank_or_4001_char_content_is_422_content_but_4000_is_accepted() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    for bad in [String::new(), " \n\t ".to_owned(), "x".repeat(4001)] {
        let result = alice.send_message(&room.id, &bad, None).await;
        assert_api_error(result, 422, "validation_failed", Some("content"));
    }
    let longest = "y".repeat(4000);
    let m = alice
        .send_message(&room.id, &longest, None)
        .await
        .expect("4000-character content is accepted");
    assert_eq!(m.content, longest);
    assert_eq!(m.seq, 1, "refused sends did not consume a seq");
}

#[tokio::test]
async fn empty_client_id_is_422_client_id() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let result = alice.send_message(&room.id, "hello", Some("")).await;
    assert_api_error(result, 422, "validation_failed", Some("client_id"));
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert!(
        page.messages.is_empty(),
        "nothing stored: {:?}",
        page.messages
    );
}

// ---------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn history_limit_0_101_or_not_a_number_is_422_limit() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    for limit in ["0", "101", "abc", "-1"] {
        let path = format!("/api/v1/rooms/{}/messages?limit={limit}", room.id);
        let got = alice.raw("GET", &path, None).await.unwrap();
        assert_raw_error(&got, 422, "validation_failed", Some("limit"));
    }
    // The bounds themselves are fine.
    for limit in [1, 100] {
        alice
            .history(&room.id, None, None, Some(limit))
            .await
            .unwrap_or_else(|e| panic!("limit={limit} refused: {e}"));
    }
}

#[tokio::test]
async fn history_of_a_room_you_are_not_in_is_403_not_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    alice
        .send_message(&room.id, "members only", None)
        .await
        .unwrap();
    let result = eve.history(&room.id, None, None, None).await;
    assert_api_error(result, 403, "not_member", None);
}

// ---------------------------------------------------------------------------------------
// Error body shape, routing, limits
// ---------------------------------------------------------------------------------------

/// One request of the shape test: method, path, body, who sends it, the expected code.
type ErrorCase<'a> = (&'a str, &'a str, Option<Vec<u8>>, &'a Client, &'a str);

#[tokio::test]
async fn every_error_body_has_exactly_the_documented_shape() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.http_body_max_bytes = 1024;
    })
    .await;
    let anon = server.client();
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let private = alice
        .create_room("private", Visibility::Private, None)
        .await
        .unwrap();
    let alice_name = alice.user.as_ref().unwrap().username.clone();
    let messages = format!("/api/v1/rooms/{}/messages", private.id);
    let big = json!({"username": "x".repeat(4096)})
        .to_string()
        .into_bytes();

    let join_private = format!("/api/v1/rooms/{}/join", private.id);
    let bad_limit = format!("{messages}?limit=0");
    let mut dup = valid_registration();
    dup["username"] = json!(alice_name);
    let cases: Vec<ErrorCase> = vec![
        (
            "POST",
            "/api/v1/auth/register",
            Some(b"{bad".to_vec()),
            &anon,
            "invalid_json",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            Some(b"{}".to_vec()),
            &anon,
            "validation_failed",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            Some(dup.to_string().into_bytes()),
            &anon,
            "username_taken",
        ),
        (
            "POST",
            "/api/v1/auth/register",
            Some(big),
            &anon,
            "payload_too_large",
        ),
        (
            "POST",
            "/api/v1/auth/login",
            Some(
                json!({"login": alice_name, "password": "nope-nope"})
                    .to_string()
                    .into_bytes(),
            ),
            &anon,
            "invalid_credentials",
        ),
        ("GET", "/api/v1/users/me", None, &anon, "unauthorized"),
        ("GET", "/api/v1/rooms", None, &anon, "unauthorized"),
        ("POST", &join_private, None, &eve, "forbidden"),
        (
            "POST",
            "/api/v1/rooms/does-not-exist/join",
            None,
            &eve,
            "not_found",
        ),
        (
            "POST",
            &messages,
            Some(br#"{"content": "hi"}"#.to_vec()),
            &eve,
            "not_member",
        ),
        ("GET", &messages, None, &eve, "not_member"),
        ("GET", &bad_limit, None, &alice, "validation_failed"),
        ("GET", "/api/v1/no/such/route", None, &alice, "not_found"),
        ("GET", "/nope", None, &anon, "not_found"),
        (
            "DELETE",
            "/api/v1/auth/login",
            None,
            &anon,
            "method_not_allowed",
        ),
        ("PUT", "/api/v1/rooms", None, &alice, "method_not_allowed"),
    ];
    for (method, path, body, client, code) in cases {
        let (status, json) = client.raw(method, path, body).await.unwrap();
        assert_eq!(
            json["error"]["code"], code,
            "{method} {path}: {status} {json}"
        );
        assert_error_shape(status, &json);
    }
}

#[tokio::test]
async fn unknown_route_is_404_not_found_json() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    for path in ["/api/v1/nothing-here", "/api/v2/rooms", "/favicon.ico"] {
        let resp = reqwest::Client::new()
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/json"),
            "{path}: content-type {content_type:?}"
        );
        let got = alice.raw("GET", path, None).await.unwrap();
        assert_raw_error(&got, 404, "not_found", None);
    }
}

#[tokio::test]
async fn wrong_method_is_405_method_not_allowed() {
    let server = TestServer::spawn().await;
    let client = server.client();
    for (method, path) in [
        ("DELETE", "/api/v1/auth/login"),
        ("GET", "/api/v1/auth/register"),
        ("PUT", "/api/v1/users/me"),
    ] {
        let got = client.raw(method, path, None).await.unwrap();
        assert_raw_error(&got, 405, "method_not_allowed", None);
    }
}

#[tokio::test]
async fn body_over_the_configured_limit_is_413_payload_too_large() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.http_body_max_bytes = 1024;
    })
    .await;
    let client = server.client();
    let name = unique_name("big");
    // Well-formed and otherwise valid (apart from its size): 4 KiB.
    let envelope = json!({
        "username": name,
        "email": format!("{name}@example.com"),
        "password": "",
    })
    .to_string();
    let pad = 4096 - envelope.len();
    let body = json!({
        "username": name,
        "email": format!("{name}@example.com"),
        "password": "p".repeat(pad),
    })
    .to_string();
    assert_eq!(body.len(), 4096);
    let got = client
        .raw("POST", "/api/v1/auth/register", Some(body.into_bytes()))
        .await
        .unwrap();
    assert_raw_error(&got, 413, "payload_too_large", None);

    // A body under the limit is read (and then judged on its content).
    let small = valid_registration();
    let got = register_raw(&client, &small).await;
    assert_eq!(got.0, 201, "{}", got.1);
}

// ---------------------------------------------------------------------------------------
// WebSocket: authentication before upgrade
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn websocket_without_token_is_refused_with_401_before_upgrade() {
    let server = TestServer::spawn().await;
    let request = server.client().ws_url().into_client_request().unwrap();
    let refusal = refused_handshake(request).await;
    assert_handshake_unauthorized(&refusal);
}

#[tokio::test]
async fn websocket_with_bad_bearer_token_is_refused_with_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let token = alice.token.clone().unwrap();
    let (signed, _) = token.rsplit_once('.').unwrap();
    for bad in ["garbage".to_owned(), format!("{signed}.AAAA")] {
        let mut request = server.client().ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {bad}").parse().unwrap());
        let refusal = refused_handshake(request).await;
        assert_handshake_unauthorized(&refusal);
    }
}

#[tokio::test]
async fn websocket_with_garbage_access_token_query_is_refused_with_401() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let url = format!("{}?access_token=garbage", alice.ws_url());
    let refusal = refused_handshake(url.into_client_request().unwrap()).await;
    assert_handshake_unauthorized(&refusal);

    // Control: the same query parameter with a real token is accepted.
    let url = format!(
        "{}?access_token={}",
        alice.ws_url(),
        alice.token.as_ref().unwrap()
    );
    let mut socket = Socket::open(url.into_client_request().unwrap())
        .await
        .expect("a valid access_token query parameter is accepted");
    assert_ping_ok(&mut socket).await;
}

// ---------------------------------------------------------------------------------------
// WebSocket: bad frames
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn non_json_frame_gets_invalid_json_error_event_and_connection_stays_up() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    for bad in ["not json", "{\"id\": 1, \"type\": \"ping\"", ""] {
        ws.send_text(bad).await.unwrap();
        let event = ws.next_event().await.unwrap();
        assert_eq!(event["type"], "error", "answer to {bad:?}: {event}");
        assert_eq!(event["data"]["code"], "invalid_json", "{event}");
        assert!(
            event["data"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{event}"
        );
        assert_ping_ok(&mut ws).await;
    }
}

#[tokio::test]
async fn unknown_type_with_id_gets_failed_reply_with_same_id_and_unknown_type() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    for id in [json!("req-42"), json!(4242)] {
        let frame = json!({"id": id, "type": "bogus.kind", "data": {}});
        ws.send_text(frame.to_string()).await.unwrap();
        let reply = ws.wait_reply(&id).await.unwrap();
        assert_eq!(reply.id, id);
        assert!(!reply.ok, "{reply:?}");
        assert!(reply.data.is_none(), "{reply:?}");
        let error = reply.error.expect("a failed reply carries an error");
        assert_eq!(error.code, ErrorCode::UnknownType, "{error:?}");
        assert!(!error.message.is_empty());
    }
    // Through the client's request path too.
    assert_rejected(
        ws.request("no.such.thing", json!({})).await,
        ErrorCode::UnknownType,
        None,
    );
    assert_ping_ok(&mut ws).await;
    assert!(
        ws.try_next_event(Duration::from_millis(200))
            .await
            .unwrap()
            .is_none(),
        "no stray frames"
    );
}

#[tokio::test]
async fn unknown_type_without_id_gets_unknown_type_error_event() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    ws.send_text(json!({"type": "bogus.kind", "data": {}}).to_string())
        .await
        .unwrap();
    let event = ws.next_event().await.unwrap();
    assert_eq!(event["type"], "error", "{event}");
    assert_eq!(event["data"]["code"], "unknown_type", "{event}");
    assert!(event.get("id").is_none(), "an event carries no id: {event}");
    assert_ping_ok(&mut ws).await;
}

#[tokio::test]
async fn message_send_without_room_id_fails_validation_naming_room_id() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    let result = ws.request("message.send", json!({"content": "hi"})).await;
    assert_rejected(result, ErrorCode::ValidationFailed, Some("room_id"));
    assert_ping_ok(&mut ws).await;
}

#[tokio::test]
async fn message_send_to_a_room_you_are_not_in_fails_not_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let mut ws = eve.connect().await.unwrap();
    let result = ws.send_message(&room.id, "let me in", None).await;
    assert_rejected(result, ErrorCode::NotMember, None);
    assert_ping_ok(&mut ws).await;
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert!(
        page.messages.is_empty(),
        "nothing stored: {:?}",
        page.messages
    );
}

#[tokio::test]
async fn message_send_with_too_long_content_fails_validation_naming_content() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let mut ws = alice.connect().await.unwrap();
    let result = ws.send_message(&room.id, &"x".repeat(4001), None).await;
    assert_rejected(result, ErrorCode::ValidationFailed, Some("content"));
    let m = ws
        .send_message(&room.id, &"x".repeat(4000), None)
        .await
        .expect("4000 characters are accepted");
    assert_eq!(m.seq, 1);
}

#[tokio::test]
async fn frame_over_the_size_limit_closes_with_1009() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.ws_frame_max_bytes = 1024;
    })
    .await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    assert_ping_ok(&mut ws).await;

    let envelope = json!({"id": "big", "type": "ping", "data": {"pad": ""}}).to_string();
    let pad = "p".repeat(2048 - envelope.len());
    let frame = json!({"id": "big", "type": "ping", "data": {"pad": pad}}).to_string();
    assert_eq!(frame.len(), 2048);
    ws.send_text(frame).await.unwrap();
    let close = ws
        .wait_close()
        .await
        .expect("the server closes the connection")
        .expect("with a close frame");
    assert_eq!(u16::from(close.code), 1009, "close: {close:?}");
}

#[tokio::test]
async fn frame_just_under_the_size_limit_is_accepted() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.ws_frame_max_bytes = 1024;
    })
    .await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let mut ws = alice.connect().await.unwrap();

    let build = |content: &str| {
        json!({
            "id": "near-limit",
            "type": "message.send",
            "data": {"room_id": room.id, "content": content},
        })
        .to_string()
    };
    let content = "c".repeat(1000 - build("").len());
    let frame = build(&content);
    assert_eq!(frame.len(), 1000);
    ws.send_text(frame).await.unwrap();
    let reply = ws.wait_reply(&json!("near-limit")).await.unwrap();
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.data.as_ref().unwrap()["content"], content.as_str());
    assert_ping_ok(&mut ws).await;
}

// ---------------------------------------------------------------------------------------
// Errors lose nothing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn nothing_is_lost_after_a_batch_of_bad_requests() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let mut ws = alice.connect().await.unwrap();

    let mut sent = Vec::new();
    sent.push(
        alice
            .send_message(&room.id, "first", Some("c-1"))
            .await
            .unwrap(),
    );
    sent.push(ws.send_message(&room.id, "second", None).await.unwrap());
    sent.push(alice.send_message(&room.id, "third", None).await.unwrap());

    // REST: malformed, invalid, unauthorized, forbidden.
    let path = format!("/api/v1/rooms/{}/messages", room.id);
    let (status, _) = alice
        .raw("POST", &path, Some(b"{bad".to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 400);
    for bad in ["", "   ", &"x".repeat(4001)] {
        assert_api_error(
            alice.send_message(&room.id, bad, None).await,
            422,
            "validation_failed",
            Some("content"),
        );
    }
    assert_api_error(
        eve.send_message(&room.id, "intruder", None).await,
        403,
        "not_member",
        None,
    );
    let (status, _) = server
        .client()
        .raw("POST", &path, Some(br#"{"content": "anon"}"#.to_vec()))
        .await
        .unwrap();
    assert_eq!(status, 401);
    // A retried client_id with different content is still the original.
    let retry = alice
        .send_message(&room.id, "changed", Some("c-1"))
        .await
        .unwrap();
    assert_eq!(retry, sent[0]);

    // WebSocket: garbage, unknown types, invalid sends.
    ws.send_text("{{{{").await.unwrap();
    ws.send_text(json!({"type": "nope"}).to_string())
        .await
        .unwrap();
    assert_rejected(
        ws.request("message.send", json!({"content": "no room"}))
            .await,
        ErrorCode::ValidationFailed,
        Some("room_id"),
    );
    assert_rejected(
        ws.send_message(&room.id, " ", None).await,
        ErrorCode::ValidationFailed,
        Some("content"),
    );
    assert_rejected(
        ws.send_message(&room.id, "hi", Some("")).await,
        ErrorCode::ValidationFailed,
        Some("client_id"),
    );
    assert_ping_ok(&mut ws).await;

    let page = alice
        .history(&room.id, None, None, Some(100))
        .await
        .unwrap();
    assert_eq!(
        page.messages, sent,
        "exactly the earlier messages, in order"
    );
    assert!(!page.has_more);

    // And the room carries on without a gap in seq.
    let next = ws.send_message(&room.id, "fourth", None).await.unwrap();
    assert_eq!(next.seq, 4);

    // The live stream saw only the accepted messages (plus the two error events).
    let mut created = Vec::new();
    let mut errors = Vec::new();
    while let Some(event) = ws.try_next_event(Duration::from_millis(300)).await.unwrap() {
        match event["type"].as_str() {
            Some("message.created") => created.push(event["data"]["seq"].as_i64().unwrap()),
            Some("error") => errors.push(event["data"]["code"].as_str().unwrap().to_owned()),
            _ => {}
        }
    }
    assert_eq!(created, vec![1, 2, 3, 4]);
    assert_eq!(errors, vec!["invalid_json", "unknown_type"]);
}

/// The NUL character (U+0000), which PostgreSQL cannot store, becomes U+FFFD in a JSON
/// body, a WebSocket request and a query string, and the requests succeed as they would
/// without it; in a path (`%00` in a room id) it names nothing: `404`, never a `500`. A
/// backslash followed by `u0000` is ordinary text and is kept.
#[tokio::test]
async fn the_nul_character_becomes_the_replacement_character_everywhere() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room(&unique_name("nul"), Visibility::Public, None)
        .await
        .unwrap();
    let path = format!("/api/v1/rooms/{}/messages", room.id);
    let body = br#"{"content": "before\u0000after"}"#.to_vec();
    let (status, message) = alice.raw("POST", &path, Some(body)).await.unwrap();
    assert_eq!(status, 201, "{message}");
    assert_eq!(message["content"], "before\u{FFFD}after");

    let mut ws = alice.connect().await.unwrap();
    let sent = ws
        .request(
            "message.send",
            json!({"room_id": room.id, "content": "a\u{0}b"}),
        )
        .await
        .unwrap();
    assert_eq!(sent["content"], "a\u{FFFD}b", "{sent}");

    let got = alice
        .raw(
            "GET",
            &format!("/api/v1/rooms/{}%00/messages", room.id),
            None,
        )
        .await
        .unwrap();
    assert_raw_error(&got, 404, "not_found", None);
    let (status, page) = alice
        .raw("GET", "/api/v1/rooms/public?q=a%00b", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{page}");

    let kept = alice
        .send_message(&room.id, r"a literal \u0000", None)
        .await
        .unwrap();
    assert_eq!(kept.content, r"a literal \u0000");
    let history = alice.history(&room.id, None, None, None).await.unwrap();
    let contents: Vec<&str> = history
        .messages
        .iter()
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(
        contents,
        ["before\u{FFFD}after", "a\u{FFFD}b", r"a literal \u0000"]
    );
}
