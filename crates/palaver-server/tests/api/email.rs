//! E-mail (`[email]`, `docs/email.md`).
//!
//! - Without `[email]` (this module; the default suite): registration and the address
//!   change answer as they always have (`409 email_taken` included), and every e-mail
//!   route answers `409 email_disabled`.
//! - With it ([`smtp`], feature `smtp-tests`): each test starts a real SMTP server,
//!   Python's aiosmtpd (`.ci/run` installs it), on a free loopback port writing a
//!   Maildir, reads the delivered messages, takes the links out of them and drives the
//!   REST API with them.

use palaver_client::Client;
use serde_json::{json, Value};

use crate::helpers::{assert_api_error, unique_name, TestServer};

const PASSWORD: &str = "vivid-otter-42";

/// `POST`s `body` to `path` (with `token` as a bearer token when given) and returns the
/// status and JSON body (`null` for none).
async fn post(base: &str, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    send(
        reqwest::Client::new().post(format!("{base}{path}")),
        body,
        token,
    )
    .await
}

/// As [`post`], with `PUT`.
async fn put(base: &str, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    send(
        reqwest::Client::new().put(format!("{base}{path}")),
        body,
        token,
    )
    .await
}

async fn send(request: reqwest::RequestBuilder, body: Value, token: Option<&str>) -> (u16, Value) {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.json(&body).send().await.expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body read");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
    };
    (status, body)
}

/// Asserts `(status, body)` is the error `code` with `status`.
#[track_caller]
fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "status; body: {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "error.code; body: {}", got.1);
}

/// A logged-in user on a server without e-mail, with its address.
async fn user(server: &TestServer, prefix: &str) -> (Client, String) {
    let name = unique_name(prefix);
    let email = format!("{name}@example.com");
    let mut client = server.client();
    client
        .register(&name, &email, PASSWORD)
        .await
        .expect("register");
    (client, email)
}

#[tokio::test]
async fn without_email_registration_keeps_email_taken_and_the_email_routes_say_it_is_off() {
    let server = TestServer::spawn().await;
    let (_alice, alice_email) = user(&server, "alice").await;
    // The conflict is said: with no mail to tell the owner, it is the only explanation.
    let mut other = server.client();
    assert_api_error(
        other
            .register(&unique_name("bob"), &alice_email, PASSWORD)
            .await,
        409,
        "email_taken",
        Some("email"),
    );
    let base = &server.base;
    for (path, body) in [
        ("/api/v1/auth/verify-email", json!({"token": "x"})),
        (
            "/api/v1/auth/resend-verification",
            json!({"login": "alice"}),
        ),
        ("/api/v1/auth/password-reset", json!({"email": alice_email})),
        (
            "/api/v1/auth/password-reset/confirm",
            json!({"token": "x", "new_password": "another-otter-43"}),
        ),
    ] {
        assert_error(&post(base, path, body, None).await, 409, "email_disabled");
    }
}

#[tokio::test]
async fn without_email_an_address_change_is_immediate_and_needs_the_password() {
    let server = TestServer::spawn().await;
    let (alice, alice_email) = user(&server, "alice").await;
    let (_bob, bob_email) = user(&server, "bob").await;
    let token = alice.token.clone();
    let token = token.as_deref();
    let path = "/api/v1/users/me/email";
    let new_email = format!("{}@example.org", unique_name("alice"));
    assert_error(
        &put(
            &server.base,
            path,
            json!({"email": new_email, "password": "wrong-password-1"}),
            token,
        )
        .await,
        401,
        "invalid_credentials",
    );
    let taken = put(
        &server.base,
        path,
        json!({"email": bob_email, "password": PASSWORD}),
        token,
    )
    .await;
    assert_error(&taken, 409, "email_taken");
    assert_error(
        &put(
            &server.base,
            path,
            json!({"email": "not an address", "password": PASSWORD}),
            token,
        )
        .await,
        422,
        "validation_failed",
    );
    let (status, body) = put(
        &server.base,
        path,
        json!({"email": new_email.to_uppercase(), "password": PASSWORD}),
        token,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], new_email, "stored lower-cased");
    assert_eq!(alice.me().await.unwrap().email, new_email);
    // The new address logs in; the old one no longer does.
    let username = alice.user.as_ref().unwrap().username.clone();
    server.client().login(&new_email, PASSWORD).await.unwrap();
    server.client().login(&username, PASSWORD).await.unwrap();
    assert_api_error(
        server.client().login(&alice_email, PASSWORD).await,
        401,
        "invalid_credentials",
        None,
    );
    assert_error(
        &put(
            &server.base,
            path,
            json!({"email": new_email, "password": PASSWORD}),
            token,
        )
        .await,
        422,
        "validation_failed",
    );
}

#[cfg(feature = "smtp-tests")]
mod smtp {
    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::sync::Mutex;
    use std::time::Duration;

    use palaver_protocol::ws::close_code;
    use palaver_server::config::{EmailConfig, Rule, Secret};
    use serde_json::json;
    use tempfile::TempDir;

    use super::{assert_error, post, put, PASSWORD};
    use crate::helpers::{test_database_url, unique_name, TestServer};

    /// The base of links the test servers hand out (`public_url`).
    const SITE: &str = "https://chat.example.test";

    /// How long a test waits for a mail to arrive.
    const MAIL_TIMEOUT: Duration = Duration::from_secs(15);

    /// A real SMTP server: `python3 -m aiosmtpd` with its Maildir handler, on a free
    /// loopback port; killed when dropped.
    struct Smtp {
        child: Child,
        port: u16,
        /// The Maildir (`<dir>/box/new/` holds the delivered messages).
        dir: TempDir,
        /// Messages already handed out by [`Smtp::next_mail_to`].
        seen: Mutex<HashSet<PathBuf>>,
    }

    /// One delivered message.
    #[derive(Debug, Clone)]
    struct Mail {
        to: String,
        subject: String,
        /// The body, its quoted-printable decoded.
        body: String,
    }

    impl Mail {
        /// The token of the link `<SITE>/#<action>=<token>` in the body.
        #[track_caller]
        fn token(&self, action: &str) -> String {
            let prefix = format!("{SITE}/#{action}=");
            let at = self
                .body
                .find(&prefix)
                .unwrap_or_else(|| panic!("a {prefix} link in {self:?}"));
            self.body[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect()
        }
    }

    impl Smtp {
        async fn start() -> Smtp {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new("python3")
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(dir.path().join("box"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3 -m aiosmtpd (pip install aiosmtpd)");
            let smtp = Smtp {
                child,
                port,
                dir,
                seen: Mutex::default(),
            };
            for _ in 0..150 {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    return smtp;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("aiosmtpd did not listen on 127.0.0.1:{port}");
        }

        fn url(&self) -> String {
            format!("smtp://127.0.0.1:{}", self.port)
        }

        /// Every delivered message, in delivery order (the Maildir's `Q` counter).
        fn delivered(&self) -> Vec<(PathBuf, Mail)> {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join("box").join("new")) else {
                return Vec::new();
            };
            let mut found: Vec<(u64, PathBuf)> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .map(|path| {
                    let name = path.file_name().unwrap().to_string_lossy().into_owned();
                    let q = name
                        .split_once('Q')
                        .and_then(|(_, rest)| {
                            rest.split(|c: char| !c.is_ascii_digit())
                                .next()?
                                .parse()
                                .ok()
                        })
                        .unwrap_or(u64::MAX);
                    (q, path)
                })
                .collect();
            found.sort();
            found
                .into_iter()
                .map(|(_, path)| {
                    let raw = std::fs::read_to_string(&path).unwrap();
                    let mail = parse(&raw);
                    (path, mail)
                })
                .collect()
        }

        /// The oldest message to `to` not handed out before; waits for it.
        async fn next_mail_to(&self, to: &str) -> Mail {
            let deadline = tokio::time::Instant::now() + MAIL_TIMEOUT;
            loop {
                for (path, mail) in self.delivered() {
                    if mail.to.eq_ignore_ascii_case(to) && self.seen.lock().unwrap().insert(path) {
                        return mail;
                    }
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no mail to {to} within {MAIL_TIMEOUT:?}; delivered: {:?}",
                    self.delivered()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }

        /// Asserts no mail to `to` arrived that was not handed out yet. Call it once a
        /// mail caused after whatever could have mailed `to` has arrived: the server
        /// delivers in order, so such a mail would be there already.
        fn assert_no_unseen_mail_to(&self, to: &str) {
            let seen = self.seen.lock().unwrap().clone();
            let stray: Vec<Mail> = self
                .delivered()
                .into_iter()
                .filter(|(path, mail)| !seen.contains(path) && mail.to.eq_ignore_ascii_case(to))
                .map(|(_, mail)| mail)
                .collect();
            assert!(stray.is_empty(), "no mail to {to}, got {stray:?}");
        }
    }

    impl Drop for Smtp {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// The recipient (aiosmtpd's `X-RcptTo`), subject and decoded body of a message.
    fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let header = |name: &str| {
            head.lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        let body = if header("Content-Transfer-Encoding").eq_ignore_ascii_case("quoted-printable") {
            decode_quoted_printable(body)
        } else {
            body.to_owned()
        };
        Mail {
            to: header("X-RcptTo"),
            subject: header("Subject"),
            body,
        }
    }

    /// RFC 2045 §6.7: soft line breaks and `=XX`.
    fn decode_quoted_printable(text: &str) -> String {
        let joined = text.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 3 <= bytes.len() {
                if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }

    /// A server that mails through `smtp`, with links on [`SITE`].
    async fn server(smtp: &Smtp) -> TestServer {
        let url = smtp.url();
        TestServer::spawn_with(tempfile::tempdir().unwrap(), move |c| {
            c.public_url = Some(SITE.into());
            c.email = Some(EmailConfig {
                smtp_url: Secret::new(url),
                from: "Palaver <noreply@chat.example.test>".into(),
                verify_ttl_secs: 86_400,
                reset_ttl_secs: 1_800,
            });
            // Every test client comes from 127.0.0.1.
            c.rate_limits.emails_per_ip = Rule {
                max: 100_000,
                window_secs: 60,
            };
        })
        .await
    }

    /// Makes every unused e-mail token of the server's database expired.
    async fn expire_tokens(server: &TestServer) {
        use sqlx::Connection as _;
        let sql = "UPDATE email_tokens SET expires_at = '2000-01-01T00:00:00.000Z' \
                   WHERE used_at IS NULL";
        match test_database_url(server.data_dir.path()) {
            Some((url, _)) => {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query(sql).execute(&mut conn).await.unwrap();
            }
            None => {
                let path: &Path = server.data_dir.path();
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path.join("palaver.db"))
                    .busy_timeout(Duration::from_secs(5));
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                let done = sqlx::query(sql).execute(&mut conn).await.unwrap();
                assert!(done.rows_affected() > 0, "a token to expire");
                conn.close().await.unwrap();
            }
        }
    }

    /// Registers `username` with `email` (202) and returns the verification link's token.
    async fn register(server: &TestServer, smtp: &Smtp, username: &str, email: &str) -> String {
        let got = post(
            &server.base,
            "/api/v1/auth/register",
            json!({"username": username, "email": email, "password": PASSWORD}),
            None,
        )
        .await;
        assert_eq!(got, (202, json!({"status": "check_your_inbox"})));
        let mail = smtp.next_mail_to(email).await;
        assert_eq!(mail.subject, "Confirm your e-mail address for Palaver");
        assert!(mail.body.contains(username), "{mail:?}");
        mail.token("verify-email")
    }

    /// A registered, verified user: `(username, email)`.
    async fn verified(server: &TestServer, smtp: &Smtp, prefix: &str) -> (String, String) {
        let username = unique_name(prefix);
        let email = format!("{username}@example.com");
        let token = register(server, smtp, &username, &email).await;
        let got = post(
            &server.base,
            "/api/v1/auth/verify-email",
            json!({"token": token}),
            None,
        )
        .await;
        assert_eq!(got.0, 200, "{}", got.1);
        (username, email)
    }

    #[tokio::test]
    async fn a_registration_link_verifies_once_and_then_the_account_logs_in() {
        let smtp = Smtp::start().await;
        let server = server(&smtp).await;
        let username = unique_name("ada");
        let email = format!("{username}@example.com");
        let token = register(&server, &smtp, &username, &email).await;
        assert_eq!(token.len(), 43, "256 bits, base64url");

        // Not before the address is verified: refused after the password, and a new
        // link is mailed.
        let login = json!({"login": username, "password": PASSWORD});
        assert_error(
            &post(&server.base, "/api/v1/auth/login", login.clone(), None).await,
            403,
            "email_not_verified",
        );
        let again = smtp.next_mail_to(&email).await;
        assert_ne!(again.token("verify-email"), token);
        // A wrong password is still just a wrong password.
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/login",
                json!({"login": username, "password": "wrong-password-1"}),
                None,
            )
            .await,
            401,
            "invalid_credentials",
        );

        let verify = |token: String| {
            let base = server.base.clone();
            async move {
                post(
                    &base,
                    "/api/v1/auth/verify-email",
                    json!({"token": token}),
                    None,
                )
                .await
            }
        };
        assert_eq!(
            verify(token.clone()).await,
            (200, json!({"status": "verified", "email": email}))
        );
        assert_error(&verify(token).await, 400, "invalid_token");
        assert_error(&verify("not-a-token".into()).await, 400, "invalid_token");
        assert_error(&verify(String::new()).await, 400, "invalid_token");
        // The second link still verifies (the address already is).
        assert_eq!(verify(again.token("verify-email")).await.0, 200);

        let mut client = server.client();
        let auth = client.login(&username, PASSWORD).await.unwrap();
        assert_eq!(auth.user.email, email);
        // Asking for a link again: nothing is sent to a verified address.
        let resend = post(
            &server.base,
            "/api/v1/auth/resend-verification",
            json!({"login": email}),
            None,
        )
        .await;
        assert_eq!(resend, (202, json!({"status": "check_your_inbox"})));
        // A mail requested after it has arrived (inside `verified`).
        verified(&server, &smtp, "control").await;
        smtp.assert_no_unseen_mail_to(&email);
    }

    #[tokio::test]
    async fn a_taken_address_is_answered_alike_and_its_owner_is_told_and_no_account_is_made() {
        let smtp = Smtp::start().await;
        let server = server(&smtp).await;
        let (alice, alice_email) = verified(&server, &smtp, "alice").await;
        let intruder = unique_name("mallory");
        let got = post(
            &server.base,
            "/api/v1/auth/register",
            json!({"username": intruder, "email": alice_email.to_uppercase(), "password": PASSWORD}),
            None,
        )
        .await;
        assert_eq!(got, (202, json!({"status": "check_your_inbox"})));
        let told = smtp.next_mail_to(&alice_email).await;
        assert_eq!(
            told.subject,
            "Someone tried to register with your e-mail address"
        );
        assert!(!told.body.contains('#'), "no link: {told:?}");
        // No account: its username is free, its login fails.
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/login",
                json!({"login": intruder, "password": PASSWORD}),
                None,
            )
            .await,
            401,
            "invalid_credentials",
        );
        let free = format!("{intruder}@example.com");
        register(&server, &smtp, &intruder, &free).await;
        // Usernames are public: a taken one is said.
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/register",
                json!({"username": alice, "email": "someone-new@example.com", "password": PASSWORD}),
                None,
            )
            .await,
            409,
            "username_taken",
        );
        // Even when the address is taken too.
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/register",
                json!({"username": alice, "email": alice_email, "password": PASSWORD}),
                None,
            )
            .await,
            409,
            "username_taken",
        );
    }

    #[tokio::test]
    async fn expired_links_are_refused_and_a_new_one_works() {
        let smtp = Smtp::start().await;
        let server = server(&smtp).await;
        let username = unique_name("bea");
        let email = format!("{username}@example.com");
        let token = register(&server, &smtp, &username, &email).await;
        expire_tokens(&server).await;
        let verify = |token: String| {
            let base = server.base.clone();
            async move {
                post(
                    &base,
                    "/api/v1/auth/verify-email",
                    json!({"token": token}),
                    None,
                )
                .await
            }
        };
        assert_error(&verify(token).await, 410, "token_expired");
        let resend = post(
            &server.base,
            "/api/v1/auth/resend-verification",
            json!({"login": username}),
            None,
        )
        .await;
        assert_eq!(resend, (202, json!({"status": "check_your_inbox"})));
        let fresh = smtp.next_mail_to(&email).await.token("verify-email");
        assert_eq!(verify(fresh).await.0, 200);

        // A reset link expires too (30 minutes by default).
        let got = post(
            &server.base,
            "/api/v1/auth/password-reset",
            json!({"email": email}),
            None,
        )
        .await;
        assert_eq!(got.0, 202);
        let mail = smtp.next_mail_to(&email).await;
        assert_eq!(mail.subject, "Reset your Palaver password");
        assert!(mail.body.contains("30 minutes"), "{mail:?}");
        let reset = mail.token("reset-password");
        expire_tokens(&server).await;
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/password-reset/confirm",
                json!({"token": reset, "new_password": "brand-new-otter-77"}),
                None,
            )
            .await,
            410,
            "token_expired",
        );
        server.client().login(&username, PASSWORD).await.unwrap();
    }

    #[tokio::test]
    async fn a_reset_goes_only_to_verified_addresses_and_ends_every_session_and_socket() {
        let smtp = Smtp::start().await;
        let server = server(&smtp).await;
        let (alice, alice_email) = verified(&server, &smtp, "alice").await;
        // An unverified account and an unknown address get the same answer, and no mail.
        let unverified = unique_name("una");
        let unverified_email = format!("{unverified}@example.com");
        register(&server, &smtp, &unverified, &unverified_email).await;
        for email in [unverified_email.as_str(), "nobody-here@example.com"] {
            let got = post(
                &server.base,
                "/api/v1/auth/password-reset",
                json!({"email": email}),
                None,
            )
            .await;
            assert_eq!(got, (202, json!({"status": "check_your_inbox"})));
        }
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/password-reset",
                json!({"email": "not an address"}),
                None,
            )
            .await,
            422,
            "validation_failed",
        );

        // Alice is logged in on two devices, one with a WebSocket open.
        let mut phone = server.client();
        phone.login(&alice, PASSWORD).await.unwrap();
        let mut laptop = server.client();
        laptop.login(&alice_email, PASSWORD).await.unwrap();
        let mut socket = laptop.connect().await.unwrap();

        let got = post(
            &server.base,
            "/api/v1/auth/password-reset",
            json!({"email": alice_email}),
            None,
        )
        .await;
        assert_eq!(got.0, 202);
        // Alice's mail was asked for after the two requests above: had they mailed, it
        // would be there already.
        let mail = smtp.next_mail_to(&alice_email).await;
        smtp.assert_no_unseen_mail_to(&unverified_email);
        smtp.assert_no_unseen_mail_to("nobody-here@example.com");
        let token = mail.token("reset-password");
        let confirm = |password: &str| {
            let base = server.base.clone();
            let body = json!({"token": token, "new_password": password});
            async move { post(&base, "/api/v1/auth/password-reset/confirm", body, None).await }
        };
        // The password policy applies, and a refused password leaves the link usable.
        let weak = confirm("short").await;
        assert_error(&weak, 422, "validation_failed");
        assert_eq!(weak.1["error"]["field"], "new_password");
        let same_as_name = confirm(&alice).await;
        assert_error(&same_as_name, 422, "validation_failed");
        assert_eq!(
            confirm("brand-new-otter-77").await,
            (204, serde_json::Value::Null)
        );
        assert_error(&confirm("another-otter-88").await, 400, "invalid_token");

        // Every session ended: the socket closes with 4001, the tokens stop working.
        let frame = tokio::time::timeout(Duration::from_secs(10), socket.wait_close())
            .await
            .expect("the server closes the WebSocket in time")
            .expect("a close frame")
            .expect("a close frame");
        assert_eq!(u16::from(frame.code), close_code::SESSION_ENDED);
        for client in [&phone, &laptop] {
            assert!(client.me().await.is_err(), "the session ended");
        }
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/login",
                json!({"login": alice, "password": PASSWORD}),
                None,
            )
            .await,
            401,
            "invalid_credentials",
        );
        server
            .client()
            .login(&alice, "brand-new-otter-77")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn links_are_bound_to_their_account_and_purpose() {
        let smtp = Smtp::start().await;
        let server = server(&smtp).await;
        let (alice, alice_email) = verified(&server, &smtp, "alice").await;
        let (bob, bob_email) = verified(&server, &smtp, "bob").await;
        for email in [&alice_email, &bob_email] {
            let got = post(
                &server.base,
                "/api/v1/auth/password-reset",
                json!({"email": email}),
                None,
            )
            .await;
            assert_eq!(got.0, 202);
        }
        let alice_token = smtp
            .next_mail_to(&alice_email)
            .await
            .token("reset-password");
        let bob_mail = smtp.next_mail_to(&bob_email).await;
        let bob_token = bob_mail.token("reset-password");
        assert_ne!(alice_token, bob_token);
        // A reset token is not a verification token.
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/verify-email",
                json!({"token": alice_token}),
                None,
            )
            .await,
            400,
            "invalid_token",
        );
        // Alice's link changes Alice's password only.
        let got = post(
            &server.base,
            "/api/v1/auth/password-reset/confirm",
            json!({"token": alice_token, "new_password": "alices-new-otter-1"}),
            None,
        )
        .await;
        assert_eq!(got.0, 204, "{}", got.1);
        server
            .client()
            .login(&alice, "alices-new-otter-1")
            .await
            .unwrap();
        server.client().login(&bob, PASSWORD).await.unwrap();
        // Bob's link, mailed before, still works for Bob.
        let got = post(
            &server.base,
            "/api/v1/auth/password-reset/confirm",
            json!({"token": bob_token, "new_password": "bobs-new-otter-2"}),
            None,
        )
        .await;
        assert_eq!(got.0, 204, "{}", got.1);
        server
            .client()
            .login(&bob, "bobs-new-otter-2")
            .await
            .unwrap();
        server
            .client()
            .login(&alice, "alices-new-otter-1")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_address_change_waits_for_the_new_address_and_kills_links_to_the_old() {
        let smtp = Smtp::start().await;
        let server = server(&smtp).await;
        let (alice, alice_email) = verified(&server, &smtp, "alice").await;
        let (_bob, bob_email) = verified(&server, &smtp, "bob").await;
        let mut client = server.client();
        client.login(&alice, PASSWORD).await.unwrap();
        let token = client.token.clone();
        let token = token.as_deref();
        // A reset link mailed to the old address before the change.
        post(
            &server.base,
            "/api/v1/auth/password-reset",
            json!({"email": alice_email}),
            None,
        )
        .await;
        let old_reset = smtp
            .next_mail_to(&alice_email)
            .await
            .token("reset-password");

        let path = "/api/v1/users/me/email";
        // To Bob's address: the same answer, and Bob is told.
        let got = put(
            &server.base,
            path,
            json!({"email": bob_email, "password": PASSWORD}),
            token,
        )
        .await;
        assert_eq!(got, (202, json!({"status": "check_your_inbox"})));
        let told = smtp.next_mail_to(&bob_email).await;
        assert_eq!(told.subject, "Someone tried to use your e-mail address");

        let new_email = format!("{}@example.org", unique_name("alice"));
        let got = put(
            &server.base,
            path,
            json!({"email": new_email, "password": PASSWORD}),
            token,
        )
        .await;
        assert_eq!(got, (202, json!({"status": "check_your_inbox"})));
        let mail = smtp.next_mail_to(&new_email).await;
        assert_eq!(mail.subject, "Confirm your new e-mail address for Palaver");
        // Until the link is used, the old address is the account's.
        assert_eq!(client.me().await.unwrap().email, alice_email);
        server.client().login(&alice_email, PASSWORD).await.unwrap();
        assert!(server.client().login(&new_email, PASSWORD).await.is_err());

        let got = post(
            &server.base,
            "/api/v1/auth/verify-email",
            json!({"token": mail.token("verify-email")}),
            None,
        )
        .await;
        assert_eq!(
            got,
            (200, json!({"status": "verified", "email": new_email}))
        );
        assert_eq!(client.me().await.unwrap().email, new_email);
        server.client().login(&new_email, PASSWORD).await.unwrap();
        let notice = smtp.next_mail_to(&alice_email).await;
        assert_eq!(notice.subject, "Your Palaver e-mail address was changed");
        assert!(notice.body.contains(&new_email), "{notice:?}");
        // The reset link mailed to the old address is dead.
        assert_error(
            &post(
                &server.base,
                "/api/v1/auth/password-reset/confirm",
                json!({"token": old_reset, "new_password": "brand-new-otter-77"}),
                None,
            )
            .await,
            400,
            "invalid_token",
        );
    }

    #[tokio::test]
    async fn mail_requests_are_limited_per_address_whether_or_not_it_is_registered() {
        let smtp = Smtp::start().await;
        let url = smtp.url();
        let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), move |c| {
            c.public_url = Some(SITE.into());
            c.email = Some(EmailConfig {
                smtp_url: Secret::new(url),
                from: "noreply@chat.example.test".into(),
                verify_ttl_secs: 86_400,
                reset_ttl_secs: 1_800,
            });
            c.rate_limits.emails_per_address = Rule {
                max: 2,
                window_secs: 3600,
            };
        })
        .await;
        for email in ["nobody-1@example.com", "nobody-2@example.com"] {
            for _ in 0..2 {
                let got = post(
                    &server.base,
                    "/api/v1/auth/password-reset",
                    json!({"email": email}),
                    None,
                )
                .await;
                assert_eq!(got.0, 202);
            }
            let got = post(
                &server.base,
                "/api/v1/auth/password-reset",
                json!({"email": email}),
                None,
            )
            .await;
            assert_error(&got, 429, "rate_limited");
        }
    }
}
