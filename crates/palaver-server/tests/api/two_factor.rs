//! Two-factor codes (RFC 6238 TOTP and recovery codes) on password logins: setup with the
//! password again, nothing required until confirmed with a code, then every password
//! login (the REST login and seed 003's password routes) needs a code; each time step's
//! code and each recovery code work once; API keys are not affected; disabling needs a
//! code; wrong codes are rate limited.
//!
//! The codes are computed here with our own RFC 4226/6238 (HMAC-SHA-1 from the `hmac`
//! and `sha1` crates), not with the server's library, so both sides are checked against
//! the RFC.

use hmac::{Hmac, Mac};
use palaver_client::Client;
use serde_json::{json, Value};

use crate::helpers::{unique_name, TestServer};

const PASSWORD: &str = "vivid-otter-42";

/// RFC 4226 HOTP value of `counter` for `secret`, 6 digits.
fn hotp(secret: &[u8], counter: u64) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[19] & 0x0f);
    let binary = (u32::from(hash[offset]) & 0x7f) << 24
        | u32::from(hash[offset + 1]) << 16
        | u32::from(hash[offset + 2]) << 8
        | u32::from(hash[offset + 3]);
    format!("{:06}", binary % 1_000_000)
}

/// The current RFC 6238 time step (30 s).
fn step_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        / 30
}

/// RFC 4648 base32 (no padding) decoded.
fn base32(text: &str) -> Vec<u8> {
    const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in text.trim_end_matches('=').chars() {
        let index = ALPHABET
            .find(c.to_ascii_uppercase())
            .expect("a base32 digit");
        value = value << 5 | u32::try_from(index).unwrap();
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from(value >> bits & 0xff).unwrap());
        }
    }
    out
}

/// `method path` (from the server root) with `token` and a JSON body: status and JSON body (`null` if empty).
async fn call(
    server: &TestServer,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", server.base))
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
    };
    (status, body)
}

/// A login by password with `code`: status and body.
async fn login(server: &TestServer, username: &str, code: Option<&str>) -> (u16, Value) {
    let mut body = json!({"login": username, "password": PASSWORD});
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    call(
        server,
        None,
        reqwest::Method::POST,
        "/api/v1/auth/login",
        body,
    )
    .await
}

#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{:?}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{:?}", got.1);
}

/// A registered user: client, username, access token.
async fn user(server: &TestServer) -> (Client, String, String) {
    let username = unique_name("tf");
    let mut client = server.client();
    let auth = client
        .register(&username, &format!("{username}@example.com"), PASSWORD)
        .await
        .expect("register");
    (client, username, auth.access_token)
}

/// Begins and confirms a setup for `token`'s user: the secret, the step confirmed with,
/// and the recovery codes.
pub(crate) async fn enable(server: &TestServer, token: &str) -> (Vec<u8>, u64, Vec<String>) {
    let (status, setup) = call(
        server,
        Some(token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{setup}");
    let secret = base32(setup["secret"].as_str().expect("secret"));
    let step = step_now();
    let (status, codes) = call(
        server,
        Some(token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor/confirm",
        json!({"code": hotp(&secret, step)}),
    )
    .await;
    assert_eq!(status, 200, "{codes}");
    let codes: Vec<String> = serde_json::from_value(codes["recovery_codes"].clone()).unwrap();
    (secret, step, codes)
}

#[tokio::test]
async fn a_setup_is_confirmed_by_a_code_then_every_password_login_needs_one_used_once() {
    // More wrong codes than the default 5 per 5 minutes are tried here on purpose.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.rate_limits.two_factor_failures_per_account.max = 100;
    })
    .await;
    let (_, username, token) = user(&server).await;
    let status = call(
        &server,
        Some(&token),
        reqwest::Method::GET,
        "/api/v1/users/me/two-factor",
        Value::Null,
    )
    .await;
    assert_eq!(
        status.1,
        json!({"enabled": false, "recovery_codes_left": 0})
    );

    // The password again, first.
    let wrong = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor",
        json!({"password": "not-the-password"}),
    )
    .await;
    assert_error(&wrong, 401, "invalid_credentials");
    let (code, setup) = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(code, 200, "{setup}");
    let secret = base32(setup["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20, "160-bit secret");
    let uri = setup["otpauth_uri"].as_str().unwrap();
    assert!(
        uri.starts_with(&format!("otpauth://totp/Palaver:{username}?")),
        "{uri}"
    );
    assert!(
        uri.contains(&format!("secret={}", setup["secret"].as_str().unwrap())),
        "{uri}"
    );
    let svg = setup["qr_svg"].as_str().unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("</svg>"),
        "an SVG document"
    );

    // Not confirmed: logins need no code yet; a wrong code does not confirm.
    assert_eq!(login(&server, &username, None).await.0, 200);
    let bad = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor/confirm",
        json!({"code": "000000"}),
    )
    .await;
    if hotp(&secret, step_now()) != "000000" {
        assert_error(&bad, 401, "invalid_two_factor_code");
    }
    let step = step_now();
    let (code, codes) = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor/confirm",
        json!({"code": hotp(&secret, step)}),
    )
    .await;
    assert_eq!(code, 200, "{codes}");
    let codes = codes["recovery_codes"].as_array().unwrap().clone();
    assert_eq!(codes.len(), 10);
    let status = call(
        &server,
        Some(&token),
        reqwest::Method::GET,
        "/api/v1/users/me/two-factor",
        Value::Null,
    )
    .await;
    assert_eq!(
        status.1,
        json!({"enabled": true, "recovery_codes_left": 10})
    );

    // Every password login needs a code now.
    assert_error(
        &login(&server, &username, None).await,
        401,
        "two_factor_required",
    );
    assert_error(
        &login(&server, &username, Some("12345")).await,
        401,
        "invalid_two_factor_code",
    );
    // The code that confirmed the setup is spent (its step), the next step's works once.
    assert_error(
        &login(&server, &username, Some(&hotp(&secret, step))).await,
        401,
        "invalid_two_factor_code",
    );
    let next = hotp(&secret, step + 1);
    let ok = login(&server, &username, Some(&next)).await;
    assert_eq!(ok.0, 200, "{:?}", ok.1);
    assert!(ok.1["access_token"].is_string());
    assert_error(
        &login(&server, &username, Some(&next)).await,
        401,
        "invalid_two_factor_code",
    );
    // A recovery code, however typed, works once.
    let recovery = codes[0].as_str().unwrap();
    let typed = recovery.to_uppercase().replace('-', " ");
    assert_eq!(login(&server, &username, Some(&typed)).await.0, 200);
    assert_error(
        &login(&server, &username, Some(recovery)).await,
        401,
        "invalid_two_factor_code",
    );
    let status = call(
        &server,
        Some(&token),
        reqwest::Method::GET,
        "/api/v1/users/me/two-factor",
        Value::Null,
    )
    .await;
    assert_eq!(status.1["recovery_codes_left"], 9);
    // Enabled: a second setup is refused until disabled.
    let again = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor",
        json!({"password": PASSWORD}),
    )
    .await;
    assert_error(&again, 409, "conflict");
}

#[tokio::test]
async fn api_keys_are_not_affected_and_disabling_needs_a_code() {
    let server = TestServer::spawn().await;
    let (client, username, token) = user(&server).await;
    let key = client.create_api_key("bot", None).await.expect("a key").key;
    let (_, _, codes) = enable(&server, &token).await;
    let by_key = Client::with_token(server.base.clone(), key);
    assert_eq!(by_key.me().await.expect("the key works").username, username);

    let wrong = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor/disable",
        json!({"code": "not-a-code"}),
    )
    .await;
    assert_error(&wrong, 401, "invalid_two_factor_code");
    let (status, body) = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor/disable",
        json!({"code": codes[3]}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        login(&server, &username, None).await.0,
        200,
        "no code needed again"
    );
    let twice = call(
        &server,
        Some(&token),
        reqwest::Method::POST,
        "/api/v1/users/me/two-factor/disable",
        json!({"code": codes[4]}),
    )
    .await;
    assert_error(&twice, 409, "conflict");
}

#[tokio::test]
async fn seed_003s_password_routes_need_the_code_too() {
    let server = TestServer::spawn().await;
    let username = unique_name("tf");
    let (status, body) = call(
        &server,
        None,
        reqwest::Method::POST,
        "/compat/signaling/register",
        json!({"Username": username, "Password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let key = body["APIKey"].as_str().unwrap().to_owned();
    let (secret, step, _) = enable(&server, &key).await;
    let regenerate = |code: Option<String>| {
        let mut body = json!({"Username": username, "Password": PASSWORD});
        if let Some(code) = code {
            body["Code"] = json!(code);
        }
        call(
            &server,
            None,
            reqwest::Method::POST,
            "/compat/signaling/regenerate",
            body,
        )
    };
    assert_error(&regenerate(None).await, 401, "two_factor_required");
    let (status, body) = regenerate(Some(hotp(&secret, step + 1))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn wrong_codes_are_rate_limited_per_account() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.rate_limits.two_factor_failures_per_account.max = 3;
    })
    .await;
    let (_, username, token) = user(&server).await;
    let (secret, step, _) = enable(&server, &token).await;
    for _ in 0..3 {
        assert_error(
            &login(&server, &username, Some("zzzzzz")).await,
            401,
            "invalid_two_factor_code",
        );
    }
    // Even the right code waits now.
    assert_error(
        &login(&server, &username, Some(&hotp(&secret, step + 1))).await,
        429,
        "rate_limited",
    );
}
