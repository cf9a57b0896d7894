//! Issue 13, items 3, 4, 8, 11 and 16: login limits that hold in parallel and lock out
//! neither the owner nor the neighbours, client addresses behind trusted proxies, security
//! headers, revoking API keys on a password change, and what operators see (access log,
//! security events, `/metrics` in the classic text format).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use palaver_client::Client;
use palaver_protocol::ws::close_code;
use palaver_server::config::Rule;
use serde_json::{json, Value};

use crate::helpers::{unique_name, TestServer};

const PASSWORD: &str = "vivid-otter-42";
const WRONG: &str = "not-my-password-9";
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

fn http() -> reqwest::Client {
    http_from(None)
}

/// An HTTP client whose connections come from `local` (any 127.0.0.0/8 address works).
fn http_from(local: Option<IpAddr>) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .local_address(local)
        .build()
        .expect("build HTTP client")
}

/// Registers a user (password [`PASSWORD`]) and returns its username.
async fn register(server: &TestServer, prefix: &str) -> String {
    let name = unique_name(prefix);
    server
        .client()
        .register(&name, &format!("{name}@example.com"), PASSWORD)
        .await
        .expect("register");
    name
}

/// `POST /api/v1/auth/login`, with an `X-Forwarded-For` header when `forwarded_for` is
/// given; returns the status and body.
async fn login(
    http: &reqwest::Client,
    server: &TestServer,
    login: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Value) {
    let mut req = http
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"login": login, "password": password}));
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.expect("login request completes");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn metrics_text(server: &TestServer) -> String {
    let resp = http()
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().await.unwrap()
}

/// The value of the sample `name` (labels included, exactly as written), if any.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

// ---------------------------------------------------------------------------------------
// Item 3: the login limiter holds in parallel, per account, and spares the owner
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn parallel_wrong_logins_reach_the_password_check_at_most_max_times() {
    let server = TestServer::spawn().await; // login_failures_per_account: 5 per 15 min
    let name = register(&server, "burst").await;
    let http = http();
    let attempts = (0..200).map(|_| login(&http, &server, &name, WRONG, None));
    let answers = futures_util::future::join_all(attempts).await;
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, body) in &answers {
        *by_status.entry(*status).or_default() += 1;
        if *status == 429 {
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        }
    }
    let verified = by_status.get(&401).copied().unwrap_or(0);
    assert!(
        verified <= 5,
        "at most 5 attempts may reach the password check, got {by_status:?}"
    );
    assert_eq!(verified + by_status.get(&429).copied().unwrap_or(0), 200);
    // The counter agrees: no more than 5 password checks failed.
    let text = metrics_text(&server).await;
    let failed = sample(
        &text,
        "palaver_login_attempts_total{result=\"invalid_credentials\"}",
    )
    .unwrap_or(0.0);
    assert!(failed <= 5.0, "{failed} failed checks\n{text}");
    // And the right password is refused too now, from here.
    let (status, _) = login(&http, &server, &name, PASSWORD, None).await;
    assert_eq!(status, 429);
}

#[tokio::test]
async fn username_and_email_share_one_count() {
    // Only the account's own count can refuse here.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.rate_limits.login_failures_per_ip.max = 1000;
    })
    .await;
    let name = register(&server, "shared").await;
    let http = http();
    for attempt in 1..=5 {
        let (status, _) = login(&http, &server, &name, WRONG, None).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, body) = login(&http, &server, &format!("{name}@example.com"), WRONG, None).await;
    assert_eq!(
        status, 429,
        "the e-mail is the same account as the username: {body}"
    );
}

#[tokio::test]
async fn an_attack_from_elsewhere_does_not_lock_the_owner_out_of_a_familiar_network() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.rate_limits.login_failures_per_account_global = Rule {
            max: 10,
            window_secs: 900,
        };
    })
    .await;
    let name = register(&server, "owner").await;
    let http = http();
    // The owner has logged in from home before: that network is familiar.
    let home = "198.51.100.7";
    let (status, _) = login(&http, &server, &name, PASSWORD, Some(home)).await;
    assert_eq!(status, 200);

    // An attacker guesses from many networks until the account-wide limit refuses them.
    let mut refused_account_wide = false;
    for net in 1..=6 {
        for _ in 0..5 {
            let attacker = format!("203.0.{net}.9");
            let (status, _) = login(&http, &server, &name, WRONG, Some(&attacker)).await;
            assert!(status == 401 || status == 429, "{status}");
        }
        // A seventh network never guessed before is refused at once.
        let fresh = format!("192.0.{net}.1");
        let (status, _) = login(&http, &server, &name, PASSWORD, Some(&fresh)).await;
        refused_account_wide |= status == 429;
    }
    assert!(
        refused_account_wide,
        "the account-wide limit applies to unfamiliar networks"
    );
    let text = metrics_text(&server).await;
    assert!(
        sample(
            &text,
            "palaver_rate_limited_total{limit=\"login_failures_per_account_global\"}"
        )
        .is_some(),
        "{text}"
    );

    // The owner, at home (another address of the same /24 too), still gets in.
    let (status, body) = login(&http, &server, &name, PASSWORD, Some(home)).await;
    assert_eq!(status, 200, "the owner at a familiar network: {body}");
    let (status, body) = login(&http, &server, &name, PASSWORD, Some("198.51.100.8")).await;
    assert_eq!(status, 200, "same /24: {body}");
}

// ---------------------------------------------------------------------------------------
// Item 4: per-IP limits, trusted proxies
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn one_user_s_typos_do_not_lock_out_another_user_at_the_same_address() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "typo").await;
    let bob = register(&server, "neighbour").await;
    let office = http_from(Some(IpAddr::from([127, 0, 0, 1])));
    for attempt in 1..=5 {
        let (status, _) = login(&office, &server, &alice, WRONG, None).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, _) = login(&office, &server, &alice, PASSWORD, None).await;
    assert_eq!(status, 429, "alice is limited at this address");
    let (status, body) = login(&office, &server, &bob, PASSWORD, None).await;
    assert_eq!(status, 200, "bob at the same address logs in: {body}");
}

#[tokio::test]
async fn the_per_address_budget_across_accounts_stops_credential_stuffing() {
    // The default budget is large: ten accounts failing once each from one address are
    // all answered.
    let server = TestServer::spawn().await;
    for i in 0..10 {
        let (status, _) = login(&http(), &server, &format!("someone{i}"), WRONG, None).await;
        assert_eq!(status, 401, "account {i}");
    }
    // And it does stop stuffing once spent.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.rate_limits.login_failures_per_ip = Rule {
            max: 8,
            window_secs: 900,
        };
    })
    .await;
    let http = http();
    let mut statuses = Vec::new();
    for i in 0..10 {
        let (status, _) = login(&http, &server, &format!("victim{i}"), WRONG, None).await;
        statuses.push(status);
    }
    assert_eq!(&statuses[..8], &[401; 8], "{statuses:?}");
    assert_eq!(&statuses[8..], &[429; 2], "{statuses:?}");
}

/// The `ip` the caller's current session recorded.
async fn session_ip(server: &TestServer, auth: &Value) -> String {
    let token = auth["access_token"].as_str().unwrap();
    let sessions = Client::with_token(server.base.clone(), token)
        .sessions()
        .await
        .unwrap();
    let current = sessions
        .iter()
        .find(|s| s.current)
        .expect("current session");
    current.ip.clone().unwrap_or_default()
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    // No trusted proxies: the header is the client's word, ignored.
    let server = TestServer::spawn().await;
    let name = register(&server, "direct").await;
    let (status, auth) = login(&http(), &server, &name, PASSWORD, Some("203.0.113.5")).await;
    assert_eq!(status, 200);
    assert_eq!(session_ip(&server, &auth).await, "127.0.0.1");

    // Behind a trusted proxy: the right-most untrusted address is the client.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let name = register(&server, "proxied").await;
    let forged_then_real = "6.6.6.6, 203.0.113.5, 127.0.0.9";
    let (status, auth) = login(&http(), &server, &name, PASSWORD, Some(forged_then_real)).await;
    assert_eq!(status, 200);
    assert_eq!(session_ip(&server, &auth).await, "203.0.113.5");
    // Limits count the forwarded address: failures from one client do not limit another
    // behind the same proxy.
    let other = register(&server, "other").await;
    for _ in 0..5 {
        login(&http(), &server, &name, WRONG, Some("203.0.113.5")).await;
    }
    let (status, _) = login(&http(), &server, &name, PASSWORD, Some("203.0.113.5")).await;
    assert_eq!(status, 429);
    let (status, _) = login(&http(), &server, &name, PASSWORD, Some("198.51.100.1")).await;
    assert_eq!(status, 200, "the same account from another client network");
    let (status, _) = login(&http(), &server, &other, PASSWORD, Some("203.0.113.5")).await;
    assert_eq!(status, 200);

    // RFC 7239 `Forwarded`, when configured.
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.forwarded_header = palaver_server::net::ForwardedHeader::Forwarded;
    })
    .await;
    let name = register(&server, "rfc7239").await;
    let resp = http()
        .post(format!("{}/api/v1/auth/login", server.base))
        .header("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")
        .header("x-forwarded-for", "6.6.6.6")
        .json(&json!({"login": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let auth: Value = resp.json().await.unwrap();
    assert_eq!(session_ip(&server, &auth).await, "2001:db8::7");
}

#[tokio::test]
async fn the_request_budget_counts_the_forwarded_client() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        c.rate_limits.requests_per_ip = Rule {
            max: 3,
            window_secs: 60,
        };
    })
    .await;
    let url = format!("{}/api/v1/rooms/public", server.base);
    let get = |xff: &'static str| http().get(&url).header("x-forwarded-for", xff).send();
    for _ in 0..3 {
        assert_eq!(get("203.0.113.1").await.unwrap().status(), 401);
    }
    assert_eq!(get("203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(
        get("203.0.113.2").await.unwrap().status(),
        401,
        "another client behind the same proxy is served"
    );
}

// ---------------------------------------------------------------------------------------
// Item 8: headers
// ---------------------------------------------------------------------------------------

#[track_caller]
fn assert_header(resp: &reqwest::Response, name: &str, want: &str) {
    let got = resp.headers().get(name).map(|v| v.to_str().unwrap());
    assert_eq!(got, Some(want), "{name} on {}", resp.url());
}

#[tokio::test]
async fn token_responses_are_never_cached_and_api_json_is_not_sniffed() {
    let server = TestServer::spawn().await;
    let http = http();
    let name = unique_name("headers");
    let resp = http
        .post(format!("{}/api/v1/auth/register", server.base))
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_header(&resp, "cache-control", "no-store");
    assert_header(&resp, "x-content-type-options", "nosniff");
    assert_header(&resp, "referrer-policy", "no-referrer");
    let registered: Value = resp.json().await.unwrap();

    let resp = http
        .post(format!("{}/api/v1/auth/login", server.base))
        .json(&json!({"login": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_header(&resp, "cache-control", "no-store");
    let resp = http
        .post(format!("{}/api/v1/auth/refresh", server.base))
        .json(&json!({"refresh_token": registered["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_header(&resp, "cache-control", "no-store");
    let token = registered["access_token"].as_str().unwrap();
    let resp = http
        .post(format!("{}/api/v1/users/me/api-keys", server.base))
        .bearer_auth(token)
        .json(&json!({"name": "bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_header(&resp, "cache-control", "no-store");

    // Every API answer, errors included.
    for (path, status) in [
        ("/api/v1/users/me", 401),
        ("/api/v1/nothing-here", 404),
        ("/healthz", 200),
    ] {
        let resp = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{path}");
        assert_header(&resp, "x-content-type-options", "nosniff");
        assert_header(&resp, "referrer-policy", "no-referrer");
    }
    // The web client keeps its own policy.
    let resp = http.get(format!("{}/", server.base)).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("style-src 'self';"), "{csp}");
}

#[tokio::test]
async fn the_reference_page_has_a_policy_cannot_be_framed_and_still_loads() {
    let server = TestServer::spawn().await;
    let http = http();
    let resp = http
        .get(format!("{}/api/docs/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_header(&resp, "x-frame-options", "DENY");
    assert_header(&resp, "x-content-type-options", "nosniff");
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("'unsafe-eval'"), "{csp}");
    let html = resp.text().await.unwrap();

    // The policy allows only scripts from this origin: the page must have no inline
    // script, and every script and stylesheet it names must load from here.
    let mut names = Vec::new();
    for tag in html.split('<').skip(1) {
        let attr = |name: &str| {
            tag.split_once(&format!("{name}=\""))
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(v, _)| v.to_owned())
        };
        if tag.starts_with("script") {
            let src = attr("src").unwrap_or_else(|| panic!("inline script: <{tag}"));
            names.push((src, "javascript"));
        } else if tag.starts_with("link") && tag.contains("stylesheet") {
            names.push((attr("href").expect("stylesheet href"), "css"));
        } else {
            assert!(!tag.starts_with("style"), "inline style element: <{tag}");
        }
    }
    assert!(
        names
            .iter()
            .any(|(n, _)| n.contains("swagger-initializer.js")),
        "{html}"
    );
    for (name, kind) in names {
        let url = format!("{}/api/docs/{}", server.base, name.trim_start_matches("./"));
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains(kind), "{url}: {ct}");
        // Its configuration points at this server's document, which loads under the policy
        // (connect-src 'self').
        if name.contains("swagger-initializer") {
            let js = resp.text().await.unwrap();
            assert!(js.contains("/api/v1/openapi.json"), "{js}");
        }
    }
    let resp = http
        .get(format!("{}/api/v1/openapi.json", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

// ---------------------------------------------------------------------------------------
// Item 11: revoking API keys on a password change
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_password_change_revokes_api_keys_only_when_asked() {
    let server = TestServer::spawn().await;
    let mut owner = server.user("keys").await;
    let key = owner.create_api_key("bot", None).await.unwrap().key;
    let bot = Client::with_token(server.base.clone(), key.clone());

    // Without the flag (the API's default) the key keeps working.
    owner
        .change_password(PASSWORD, "quartz-lemur-58")
        .await
        .unwrap();
    bot.me()
        .await
        .expect("the key survives a plain password change");
    let mut socket = bot.connect_with_token(&key).await.unwrap();

    // With it, the key dies at once and its WebSocket closes with 4001.
    let name = owner.user.as_ref().unwrap().username.clone();
    owner.login(&name, "quartz-lemur-58").await.unwrap();
    owner
        .change_password_with("quartz-lemur-58", "amber-heron-73", true)
        .await
        .unwrap();
    let err = bot.me().await.expect_err("the key is revoked");
    assert!(err.to_string().contains("401"), "{err}");
    let frame = socket
        .wait_close()
        .await
        .expect("closed in time")
        .expect("a close frame");
    assert_eq!(u16::from(frame.code), close_code::SESSION_ENDED);
    assert!(owner.api_keys().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Item 16: metrics and logs
// ---------------------------------------------------------------------------------------

/// Checks `text` against the classic Prometheus text format 0.0.4 strictly, as the Go
/// `expfmt` parser and `promtool check metrics` read it, and returns the samples by name.
///
/// Every line is `# HELP name text`, `# TYPE name type` or `name{labels} value`; a family
/// has at most one HELP and one TYPE, both before its samples, and its samples are
/// contiguous; a counter's name ends in `_total` and its samples carry exactly that name;
/// a histogram's samples are `_bucket` (with `le`, ending at `+Inf`), `_sum` and `_count`;
/// names and label names are valid; label values are quoted and escaped; values are
/// floats.
fn parse_classic(text: &str) -> HashMap<String, Vec<(String, f64)>> {
    fn valid_name(n: &str) -> bool {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped: HashSet<String> = HashSet::new();
    let mut done: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    assert!(text.ends_with('\n'), "the text ends with a newline");
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        assert!(!line.is_empty(), "empty line; {}", at());
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("{}", at()));
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap();
            assert!(
                keyword == "HELP" || keyword == "TYPE",
                "only HELP and TYPE comments expected; {}",
                at()
            );
            let name = parts.next().unwrap_or_else(|| panic!("{}", at()));
            assert!(valid_name(name), "{}", at());
            assert!(!done.contains(name), "family {name} reopened; {}", at());
            if current.as_deref() != Some(name) {
                if let Some(prev) = current.take() {
                    done.insert(prev);
                }
                current = Some(name.to_owned());
            }
            if keyword == "TYPE" {
                let kind = parts.next().unwrap_or_else(|| panic!("{}", at()));
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{}",
                    at()
                );
                assert!(!samples.contains_key(name), "TYPE after samples; {}", at());
                assert!(
                    types.insert(name.to_owned(), kind.to_owned()).is_none(),
                    "second TYPE; {}",
                    at()
                );
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter without _total; {}", at());
                }
            } else {
                assert!(helped.insert(name.to_owned()), "second HELP; {}", at());
                assert!(
                    !types.contains_key(name),
                    "HELP after TYPE is allowed but we write HELP first; {}",
                    at()
                );
            }
            continue;
        }
        // A sample: name, optional {labels}, value.
        let (head, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value; {}", at())),
        };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => {
                let labels = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels; {}", at()));
                (name, labels)
            }
            None => (head, ""),
        };
        assert!(valid_name(name), "{}", at());
        // Labels: name="value" pairs, comma-separated.
        let mut rest = labels;
        let mut label_names = Vec::new();
        while !rest.is_empty() {
            let (label, after) = rest
                .split_once("=\"")
                .unwrap_or_else(|| panic!("label; {}", at()));
            assert!(valid_name(label) && !label.contains(':'), "{}", at());
            label_names.push(label.to_owned());
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        let (_, c) = chars.next().unwrap_or_else(|| panic!("{}", at()));
                        assert!(matches!(c, '\\' | '"' | 'n'), "escape; {}", at());
                    }
                    Some((i, '"')) => break i,
                    Some(_) => {}
                    None => panic!("unterminated label value; {}", at()),
                }
            };
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        let unique: HashSet<_> = label_names.iter().collect();
        assert_eq!(unique.len(), label_names.len(), "repeated label; {}", at());
        // The family this sample belongs to.
        let family = current
            .clone()
            .unwrap_or_else(|| panic!("sample without TYPE; {}", at()));
        let kind = types
            .get(&family)
            .unwrap_or_else(|| panic!("no TYPE for {family}; {}", at()));
        match kind.as_str() {
            "histogram" => {
                let suffix = name.strip_prefix(family.as_str()).unwrap_or("?");
                assert!(["_bucket", "_sum", "_count"].contains(&suffix), "{}", at());
                assert_eq!(
                    suffix == "_bucket",
                    label_names.iter().any(|l| l == "le"),
                    "le only on buckets; {}",
                    at()
                );
            }
            _ => assert_eq!(name, family, "sample of another family; {}", at()),
        }
        samples
            .entry(name.to_owned())
            .or_default()
            .push((labels.to_owned(), value));
    }
    for family in types.keys() {
        assert!(helped.contains(family), "{family} has no HELP");
    }
    // Histograms end their buckets at +Inf, equal to _count.
    for (family, kind) in &types {
        if kind != "histogram" {
            continue;
        }
        let buckets = samples
            .get(&format!("{family}_bucket"))
            .cloned()
            .unwrap_or_default();
        let counts = samples
            .get(&format!("{family}_count"))
            .cloned()
            .unwrap_or_default();
        let infs: Vec<_> = buckets
            .iter()
            .filter(|(l, _)| l.contains("le=\"+Inf\""))
            .collect();
        assert_eq!(infs.len(), counts.len(), "{family}: one +Inf per series");
    }
    samples
}

#[tokio::test]
async fn metrics_parse_strictly_with_process_and_http_request_metrics() {
    let server = TestServer::spawn().await;
    let alice = server.user("metrics").await;
    let room = alice
        .create_room("r", palaver_protocol::Visibility::Public, None)
        .await
        .unwrap();
    alice.get_room(&room.id).await.unwrap();
    alice.get_room(&room.id).await.unwrap();
    let _ = http()
        .get(format!("{}/no/such/path?token=secret", server.base))
        .send()
        .await;
    let text = metrics_text(&server).await;
    let samples = parse_classic(&text);

    let requests = &samples["palaver_http_requests_total"];
    let room_gets: f64 = requests
        .iter()
        .filter(|(l, _)| {
            l.contains("method=\"GET\"")
                && l.contains("route=\"/api/v1/rooms/{room_id}\"")
                && l.contains("status=\"200\"")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(room_gets, 2.0, "{requests:?}");
    assert!(
        requests
            .iter()
            .any(|(l, _)| l.contains("route=\"unmatched\"")),
        "{requests:?}"
    );
    // Route templates only: never a raw id, path or query.
    for (labels, _) in requests {
        assert!(!labels.contains(&room.id), "{labels}");
        assert!(
            !labels.contains("secret") && !labels.contains("/no/such"),
            "{labels}"
        );
    }
    assert!(samples
        .get("palaver_http_request_duration_seconds_count")
        .is_some_and(|s| s
            .iter()
            .any(|(l, v)| l.contains("/api/v1/rooms/{room_id}") && *v == 2.0)));
    if cfg!(target_os = "linux") {
        for name in [
            "process_resident_memory_bytes",
            "process_cpu_seconds_total",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            let value = samples
                .get(name)
                .unwrap_or_else(|| panic!("{name}\n{text}"))[0]
                .1;
            assert!(value > 0.0, "{name} = {value}");
        }
    }
    // Still the old samples, under their names.
    assert!(samples.contains_key("palaver_messages_in_total"));
    assert!(samples.contains_key("palaver_connections"));
}

/// The JSON log lines in `log`.
fn log_lines(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test]
async fn operators_see_requests_security_events_and_no_false_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("palaver.toml"),
        "[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let log = dir.path().join("palaver.log");
    let (mut child, base) = crate::helpers::spawn_palaver(dir.path(), &log);
    let run = async {
        let name = unique_name("ops");
        let email = format!("{name}@example.com");
        let mut me = Client::new(base.clone());
        let auth = me.register(&name, &email, PASSWORD).await.unwrap();
        // A taken e-mail is the user's mistake, not the server's.
        let taken = Client::new(base.clone())
            .register(&unique_name("other"), &email, PASSWORD)
            .await;
        assert!(taken.is_err());
        // A failed login, a lockout, a refused Origin and a revocation.
        for _ in 0..6 {
            let _ = Client::new(base.clone()).login(&name, WRONG).await;
        }
        let origin = http()
            .get(format!("{base}/api/v1/ws"))
            .bearer_auth(&auth.access_token)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(origin.status(), 403);
        let key = me.create_api_key("bot", None).await.unwrap();
        me.revoke_api_key(&key.info.id).await.unwrap();
        // Wait until the last request's access line is written.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let lines = log_lines(&log);
            if lines.iter().any(|l| {
                l["fields"]["route"] == "/api/v1/users/me/api-keys/{key_id}"
                    && l["fields"]["status"] == 204
            }) {
                break (lines, auth);
            }
            assert!(tokio::time::Instant::now() < deadline, "no access line");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (lines, auth) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("in time");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();

    let has = |level: &str, message: &str| {
        lines.iter().any(|l| {
            l["level"] == level
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(message))
        })
    };
    assert!(
        !lines.iter().any(|l| l["level"] == "ERROR"),
        "no ERROR lines:\n{text}"
    );
    // The access log: method, route template, status, duration.
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "palaver_server::access")
        .collect();
    assert!(access.iter().all(|l| l["level"] == "INFO"));
    assert!(
        access.iter().any(|l| l["fields"]["method"] == "POST"
            && l["fields"]["route"] == "/api/v1/auth/register"
            && l["fields"]["status"] == 409
            && l["fields"]["duration_ms"].is_number()),
        "{text}"
    );
    assert!(has("WARN", "login failed"), "{text}");
    assert!(has("WARN", "login refused"), "{text}");
    assert!(
        has("WARN", "live connection refused: Origin not allowed"),
        "{text}"
    );
    assert!(has("WARN", "API key revoked"), "{text}");
    // No secrets: neither tokens nor passwords.
    assert!(!text.contains(&auth.access_token), "{text}");
    assert!(!text.contains(&auth.refresh_token));
    assert!(!text.contains(PASSWORD) && !text.contains(WRONG));
}
