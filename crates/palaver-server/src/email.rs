//! Outgoing e-mail (`[email]`, `docs/email.md`): the few mails Palaver sends, composed as
//! plain text (RFC 5322, UTF-8, quoted-printable where needed) and delivered by SMTP
//! (RFC 5321) through `lettre`, with TLS from the first byte (`smtps://`, RFC 8314) or
//! STARTTLS (`smtp://...?tls=required`, RFC 3207).
//!
//! Requests never wait for the SMTP server: [`Mailer::send`] queues the composed message
//! (bounded, [`QUEUE`]) and one task delivers the queue in order. A failure is logged
//! (recipient domain and error, never the token or the SMTP URL) and not retried; the
//! request that caused it was already answered, the same way whatever happens here, so
//! the answer tells nothing about the address. The user asks for a new link.
//!
//! Links are `<public base>/#verify-email=<token>` (registration and e-mail change alike)
//! and `#reset-password=<token>`: the token rides in the URL fragment, which browsers never
//! send to a server (so it stays out of access logs and `Referer`), and the page posts it
//! to the API (`POST /api/v1/auth/verify-email`, `/auth/password-reset/confirm`). A link
//! does nothing by being fetched, so mail scanners that follow links cannot spend it.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::EmailConfig;

/// Most composed mails waiting for the SMTP server; past this, new ones are dropped (and
/// logged): a burst that large means the SMTP server is down or far too slow.
pub const QUEUE: usize = 256;

/// How long one SMTP delivery may take (connect, TLS, dialogue), after which it fails.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Shortest link lifetime accepted in `[email]`, seconds.
const MIN_TTL_SECS: u64 = 60;

/// One of the mails Palaver sends; [`Mailer::compose`] turns it into a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mail {
    /// The link that proves a new account's address (or an existing account's, asked for
    /// again). `token` is the link's secret; `ttl_secs` how long it works.
    VerifyAccount {
        username: String,
        token: String,
        ttl_secs: u64,
    },
    /// The link that makes this address the account's (an e-mail change).
    ChangeEmail {
        username: String,
        token: String,
        ttl_secs: u64,
    },
    /// The link that sets a new password.
    PasswordReset {
        username: String,
        token: String,
        ttl_secs: u64,
    },
    /// To an address that already has an account: someone tried to register with it.
    RegistrationAttempt,
    /// To an address that already has an account: someone tried to move their account to
    /// it.
    ChangeAttempt,
    /// To an account's previous address: its address is now `new_address`.
    EmailChanged {
        username: String,
        new_address: String,
    },
}

/// The message and what to log about it.
type Job = (Message, &'static str, String);

/// Composes and sends mail for one node. Built once at startup from `[email]`.
pub struct Mailer {
    from: Mailbox,
    /// The base of links ([`crate::config::Config::public_base`]), without a trailing `/`.
    base: String,
    /// How long verification and e-mail change links work, seconds.
    pub verify_ttl_secs: u64,
    /// How long password reset links work, seconds.
    pub reset_ttl_secs: u64,
    queue: mpsc::Sender<Job>,
    /// Set by [`Mailer::close`]: the task delivers what is queued, then ends.
    closing: watch::Sender<bool>,
    /// The delivering task; taken by [`Mailer::close`].
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks `config` and starts the delivering task (needs a Tokio runtime). Nothing is
    /// sent and no connection is made until the first mail.
    ///
    /// # Errors
    /// `smtp_url` is not an `smtp://` or `smtps://` URL lettre accepts (the message never
    /// holds the URL: it may hold a password), `from` is not a mailbox, or a TTL is under
    /// 60 seconds.
    pub fn new(config: &EmailConfig, base: String) -> anyhow::Result<Mailer> {
        let from: Mailbox = config.from.parse().with_context(|| {
            format!(
                "email.from {:?} is not an address like `Palaver <noreply@chat.example.com>`",
                config.from
            )
        })?;
        for (name, ttl) in [
            ("verify_ttl_secs", config.verify_ttl_secs),
            ("reset_ttl_secs", config.reset_ttl_secs),
        ] {
            anyhow::ensure!(
                ttl >= MIN_TTL_SECS,
                "email.{name} must be at least {MIN_TTL_SECS} seconds"
            );
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(config.smtp_url.expose())
            .map_err(|e| {
                anyhow::anyhow!(
                    "email.smtp_url is not a usable SMTP URL (smtps://user:password@host:465, \
                     smtp://user:password@host:587?tls=required or smtp://host:25): {}",
                    redact(&e.to_string(), config.smtp_url.expose())
                )
            })?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        let (queue, jobs) = mpsc::channel(QUEUE);
        let (closing, closed) = watch::channel(false);
        let worker = tokio::spawn(deliver(transport, jobs, closed));
        Ok(Mailer {
            from,
            base: base.trim_end_matches('/').to_owned(),
            verify_ttl_secs: config.verify_ttl_secs,
            reset_ttl_secs: config.reset_ttl_secs,
            queue,
            closing,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// The message for `mail` to `to` (an address already validated by the caller):
    /// plain text, a subject that says what it is, the sender of `email.from`.
    ///
    /// # Errors
    /// `to` is not an address lettre accepts.
    pub fn compose(&self, to: &str, mail: &Mail) -> anyhow::Result<Message> {
        let to: Mailbox = to.parse().context("recipient address")?;
        let (subject, body) = self.text(mail);
        // RFC 5322 §3.6.4: unique, on the sender's domain.
        let message_id = format!(
            "<{}@{}>",
            uuid::Uuid::now_v7().simple(),
            self.from.email.domain()
        );
        Message::builder()
            .message_id(Some(message_id))
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .context("composing the message")
    }

    /// Composes `mail` to `to` and queues it for delivery; never waits for the SMTP
    /// server. A mail that cannot be composed or queued is logged and dropped.
    pub fn send(&self, to: &str, mail: Mail) {
        let kind = kind(&mail);
        let domain = to.rsplit_once('@').map_or("", |(_, d)| d).to_owned();
        let message = match self.compose(to, &mail) {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(kind, %domain, error = %format!("{e:#}"), "e-mail not composed");
                return;
            }
        };
        if self
            .queue
            .try_send((message, kind, domain.clone()))
            .is_err()
        {
            tracing::error!(kind, %domain, "e-mail dropped: the outgoing queue is full");
        }
    }

    /// Stops taking mail and waits up to `within` for the mail already queued to be
    /// delivered (at shutdown). Mail still queued after that is lost.
    pub async fn close(&self, within: Duration) {
        let _ = self.closing.send(true);
        let worker = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(mut worker) = worker {
            if tokio::time::timeout(within, &mut worker).await.is_err() {
                tracing::warn!("e-mail still queued at the shutdown deadline: not sent");
                worker.abort();
            }
        }
    }

    /// `<base>/#<action>=<token>`.
    fn link(&self, action: &str, token: &str) -> String {
        format!("{}/#{action}={token}", self.base)
    }

    /// The subject and body of `mail`.
    fn text(&self, mail: &Mail) -> (String, String) {
        let site = &self.base;
        match mail {
            Mail::VerifyAccount {
                username,
                token,
                ttl_secs,
            } => (
                "Confirm your e-mail address for Palaver".into(),
                format!(
                    "Hello {username},\n\n\
                     Confirm that this is your e-mail address by opening this link:\n\n\
                     {link}\n\n\
                     The link works once, for {ttl}. Until you use it you cannot log in.\n\n\
                     If you did not create an account at {site}, ignore this mail: \
                     without the link the account is never activated.\n",
                    link = self.link("verify-email", token),
                    ttl = duration(*ttl_secs),
                ),
            ),
            Mail::ChangeEmail {
                username,
                token,
                ttl_secs,
            } => (
                "Confirm your new e-mail address for Palaver".into(),
                format!(
                    "Hello {username},\n\n\
                     You asked to change the e-mail address of your Palaver account at \
                     {site} to this one. Confirm it by opening this link:\n\n\
                     {link}\n\n\
                     The link works once, for {ttl}. Until you use it, your account keeps \
                     its old address.\n\n\
                     If you did not ask for this, ignore this mail.\n",
                    link = self.link("verify-email", token),
                    ttl = duration(*ttl_secs),
                ),
            ),
            Mail::PasswordReset {
                username,
                token,
                ttl_secs,
            } => (
                "Reset your Palaver password".into(),
                format!(
                    "Hello {username},\n\n\
                     Someone (hopefully you) asked to reset the password of your Palaver \
                     account at {site}. Choose a new password by opening this link:\n\n\
                     {link}\n\n\
                     The link works once, for {ttl}. Setting a new password logs out every \
                     device logged in to your account.\n\n\
                     If you did not ask for this, ignore this mail: your password stays \
                     as it is.\n",
                    link = self.link("reset-password", token),
                    ttl = duration(*ttl_secs),
                ),
            ),
            Mail::RegistrationAttempt => (
                "Someone tried to register with your e-mail address".into(),
                format!(
                    "Hello,\n\n\
                     Someone tried to create a Palaver account at {site} with this e-mail \
                     address. It already belongs to your account, so no new account was \
                     created.\n\n\
                     If it was you: you already have an account. Log in, or reset your \
                     password if you have forgotten it.\n\
                     If it was not you: nothing changed; you can ignore this mail.\n"
                ),
            ),
            Mail::ChangeAttempt => (
                "Someone tried to use your e-mail address".into(),
                format!(
                    "Hello,\n\n\
                     Someone tried to change the e-mail address of their Palaver account \
                     at {site} to this one. It already belongs to your account, so \
                     nothing changed.\n\n\
                     You can ignore this mail.\n"
                ),
            ),
            Mail::EmailChanged {
                username,
                new_address,
            } => (
                "Your Palaver e-mail address was changed".into(),
                format!(
                    "Hello {username},\n\n\
                     The e-mail address of your Palaver account at {site} is now \
                     {new_address}; mail about your account goes there from now on.\n\n\
                     If you did not do this, someone else may have your password: reset \
                     it from the new address's owner, or ask the administrator of {site} \
                     for help.\n"
                ),
            ),
        }
    }
}

/// The name a mail is logged under.
fn kind(mail: &Mail) -> &'static str {
    match mail {
        Mail::VerifyAccount { .. } => "verify_account",
        Mail::ChangeEmail { .. } => "change_email",
        Mail::PasswordReset { .. } => "password_reset",
        Mail::RegistrationAttempt => "registration_attempt",
        Mail::ChangeAttempt => "change_attempt",
        Mail::EmailChanged { .. } => "email_changed",
    }
}

/// `secs` in words: "30 minutes", "24 hours", "90 seconds".
fn duration(secs: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if secs.is_multiple_of(3600) {
        plural(secs / 3600, "hour")
    } else if secs.is_multiple_of(60) {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

/// `text` with `secret` and its password part (if any) replaced: an error message must
/// never carry the SMTP URL or its password.
fn redact(text: &str, secret: &str) -> String {
    let mut out = text.replace(secret, "[redacted]");
    if let Ok(url) = url::Url::parse(secret) {
        if let Some(password) = url.password().filter(|p| !p.is_empty()) {
            out = out.replace(password, "[redacted]");
        }
    }
    out
}

/// Delivers queued mail, one at a time, until `closing` turns true (then what is queued
/// still goes out) or the mailer is dropped.
async fn deliver(
    transport: AsyncSmtpTransport<Tokio1Executor>,
    mut jobs: mpsc::Receiver<Job>,
    mut closing: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            job = jobs.recv() => {
                let Some((message, kind, domain)) = job else { break };
                match transport.send(message).await {
                    Ok(_) => tracing::info!(kind, %domain, "e-mail sent"),
                    Err(e) => tracing::error!(kind, %domain, error = %e, "e-mail not sent"),
                }
            }
            // Closed: no new mail; the queued ones are still received, then `None`.
            _ = closing.changed() => jobs.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn config(url: &str, from: &str) -> EmailConfig {
        EmailConfig {
            smtp_url: Secret::new(url),
            from: from.into(),
            verify_ttl_secs: 86_400,
            reset_ttl_secs: 1_800,
        }
    }

    fn mailer() -> Mailer {
        Mailer::new(
            &config(
                "smtp://127.0.0.1:2525",
                "Palaver <noreply@chat.example.com>",
            ),
            "https://chat.example.com/".into(),
        )
        .unwrap()
    }

    /// The message as sent, its body's quoted-printable decoded (`=XX` and soft breaks).
    fn text_of(message: &Message) -> String {
        let raw = String::from_utf8(message.formatted()).unwrap();
        let joined = raw.replace("=\r\n", "");
        let mut out = Vec::new();
        let bytes = joined.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'=' && i + 2 < bytes.len() {
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

    #[tokio::test]
    async fn a_reset_mail_has_a_clear_subject_and_a_link_with_the_token_in_the_fragment() {
        let m = mailer();
        let message = m
            .compose(
                "alice@example.com",
                &Mail::PasswordReset {
                    username: "alice".into(),
                    token: "tok_123".into(),
                    ttl_secs: 1800,
                },
            )
            .unwrap();
        let text = text_of(&message);
        assert!(
            text.contains("Subject: Reset your Palaver password"),
            "{text}"
        );
        assert!(text.contains("To: alice@example.com"), "{text}");
        assert!(
            text.contains("From: Palaver <noreply@chat.example.com>"),
            "{text}"
        );
        assert!(text.contains("Message-ID: <"), "{text}");
        assert!(
            text.contains("https://chat.example.com/#reset-password=tok_123"),
            "{text}"
        );
        assert!(text.contains("30 minutes"), "{text}");
    }

    #[tokio::test]
    async fn every_mail_composes() {
        let m = mailer();
        for mail in [
            Mail::VerifyAccount {
                username: "a".into(),
                token: "t".into(),
                ttl_secs: 86_400,
            },
            Mail::ChangeEmail {
                username: "a".into(),
                token: "t".into(),
                ttl_secs: 90,
            },
            Mail::RegistrationAttempt,
            Mail::ChangeAttempt,
            Mail::EmailChanged {
                username: "a".into(),
                new_address: "new@example.com".into(),
            },
        ] {
            let text = text_of(&m.compose("x@example.com", &mail).unwrap());
            assert!(text.contains("Subject: "), "{text}");
        }
        assert!(m.compose("not an address", &Mail::ChangeAttempt).is_err());
    }

    #[tokio::test]
    async fn bad_settings_stop_the_start_without_printing_the_url() {
        let e = Mailer::new(
            &config("ftp://user:hunter2@example.com", "noreply@example.com"),
            String::new(),
        )
        .unwrap_err();
        let said = format!("{e:#}");
        assert!(said.contains("email.smtp_url"), "{said}");
        assert!(!said.contains("hunter2"), "{said}");
        let e = Mailer::new(&config("smtp://127.0.0.1:25", "nobody"), String::new()).unwrap_err();
        assert!(format!("{e:#}").contains("email.from"), "{e:#}");
        let short = EmailConfig {
            reset_ttl_secs: 59,
            ..config("smtp://127.0.0.1:25", "noreply@example.com")
        };
        let e = Mailer::new(&short, String::new()).unwrap_err();
        assert!(format!("{e:#}").contains("reset_ttl_secs"), "{e:#}");
    }

    #[test]
    fn durations_read_as_words() {
        assert_eq!(duration(1800), "30 minutes");
        assert_eq!(duration(86_400), "24 hours");
        assert_eq!(duration(3600), "1 hour");
        assert_eq!(duration(90), "90 seconds");
    }

    #[test]
    fn redaction_hides_the_url_and_its_password() {
        assert_eq!(
            redact("bad smtp://u:pw@h and pw", "smtp://u:pw@h"),
            "bad [redacted] and [redacted]"
        );
    }
}
