//! The connection to the Redis that several nodes share (`redis_url`).
//!
//! One [`RedisConn`] per node wraps a `redis` [`ConnectionManager`]: one multiplexed
//! connection, opened lazily on first use (a node starts even while Redis is down) and
//! reopened by itself after an I/O error. The rate limits ([`crate::ratelimit`]), presence
//! ([`crate::presence::RedisPresence`]) and `/readyz` use it.
//!
//! Callers that must not wait on a sick Redis (the rate limits on every request, presence
//! on every connection) go through [`RedisConn::call`] or `RedisConn::call_as`: each call
//! is bounded by [`CALL_TIMEOUT`], and after a failure calls skip Redis for [`BACKOFF`]
//! (they fail at once, so the caller's fallback runs without a wait), after which the next
//! call tries again and so triggers the reconnection. Failures are logged at most once per
//! [`WARN_EVERY`] per caller and counted in `palaver_ratelimit_redis_errors_total` or
//! `palaver_presence_redis_errors_total`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::metrics::Metrics;

/// Longest a rate-limit call waits for Redis before allowing the event.
pub const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// Longest `/readyz` waits for Redis's answer to PING.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// After a failed call, how long calls skip Redis before trying again.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// At most one warning per this interval while Redis fails.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// A node's connection to the shared Redis; cheap to share in an [`Arc`].
pub struct RedisConn {
    conn: ConnectionManager,
    /// Prefix of every rate-limit key: `palaver:rl:` (tests use their own).
    rate_limit_prefix: String,
    metrics: Arc<Metrics>,
    /// Where the clock of `skip_until` starts.
    origin: Instant,
    /// Milliseconds after `origin` before which calls skip Redis (0: none).
    skip_until: AtomicU64,
    /// When the last failure warning was logged, per [`Caller`].
    last_warning: [Mutex<Option<Instant>>; 2],
}

/// Who calls Redis through [`RedisConn::call_as`]: picks the failure counter and warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The shared rate limits: they allow everything while Redis fails.
    RateLimit = 0,
    /// Presence: announcements wait until Redis is back.
    Presence = 1,
}

impl std::fmt::Debug for RedisConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("RedisConn")
            .field("rate_limit_prefix", &self.rate_limit_prefix)
            .finish_non_exhaustive()
    }
}

/// The key prefix of the rate limits in Redis.
pub const RATE_LIMIT_PREFIX: &str = "palaver:rl:";

impl RedisConn {
    /// A connection to the Redis at `url` (`redis://[:password@]host:port[/db]`), opened
    /// on first use; rate-limit keys start with [`RATE_LIMIT_PREFIX`].
    ///
    /// # Errors
    /// `url` is not a Redis URL this build supports (the message never shows the URL).
    pub fn new(url: &str, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        Self::with_prefix(url, RATE_LIMIT_PREFIX, metrics)
    }

    /// [`new`](Self::new) with rate-limit keys under `prefix` (tests isolate themselves
    /// with a random one).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_prefix(url: &str, prefix: &str, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("redis_url: {}", e.category()))
            .context("redis_url is not a usable redis:// URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            // Few quick retries: callers fall back rather than wait, and the next call
            // after the backoff starts a new reconnection anyway.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .context("setting up the Redis connection of redis_url")?;
        Ok(RedisConn {
            conn,
            rate_limit_prefix: prefix.to_owned(),
            metrics,
            origin: Instant::now(),
            skip_until: AtomicU64::new(0),
            last_warning: [Mutex::new(None), Mutex::new(None)],
        })
    }

    /// The prefix of every rate-limit key.
    pub fn rate_limit_prefix(&self) -> &str {
        &self.rate_limit_prefix
    }

    /// Whether Redis answers PING within [`PING_TIMEOUT`] (for `/readyz`). Always asks,
    /// even during the backoff, and a success ends the backoff.
    pub async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        let pinged = tokio::time::timeout(
            PING_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut conn),
        )
        .await;
        let ok = matches!(pinged, Ok(Ok(ref pong)) if pong == "PONG");
        if ok {
            self.skip_until.store(0, Ordering::Relaxed);
        }
        ok
    }

    /// Runs `op` on the connection, bounded by [`CALL_TIMEOUT`], for the rate limits (see
    /// [`call_as`](Self::call_as)).
    pub(crate) async fn call<T, F, Fut>(&self, what: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.call_as(Caller::RateLimit, what, op).await
    }

    /// Runs `op` on the connection for `caller`, bounded by [`CALL_TIMEOUT`]. `None` when
    /// Redis is in its backoff after a failure, times out or fails: then the failure is
    /// counted (`palaver_ratelimit_redis_errors_total` or
    /// `palaver_presence_redis_errors_total`), logged (at most once per [`WARN_EVERY`] per
    /// caller) and starts a [`BACKOFF`] for every caller.
    pub(crate) async fn call_as<T, F, Fut>(
        &self,
        caller: Caller,
        what: &'static str,
        op: F,
    ) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let failed = || match caller {
            Caller::RateLimit => self.metrics.ratelimit_redis_errors.inc(),
            Caller::Presence => self.metrics.presence_redis_errors.inc(),
        };
        let now_ms = self.millis();
        if now_ms < self.skip_until.load(Ordering::Relaxed) {
            failed();
            return None;
        }
        let error = match tokio::time::timeout(CALL_TIMEOUT, op(self.conn.clone())).await {
            Ok(Ok(value)) => return Some(value),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {CALL_TIMEOUT:?}"),
        };
        failed();
        self.skip_until.store(
            self.millis() + u64::try_from(BACKOFF.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let warn = match self.last_warning[caller as usize].lock() {
            Ok(mut last) => {
                let due = last.is_none_or(|at| at.elapsed() >= WARN_EVERY);
                if due {
                    *last = Some(Instant::now());
                }
                due
            }
            Err(_) => false,
        };
        if warn {
            match caller {
                Caller::RateLimit => tracing::warn!(
                    op = what,
                    error = %error,
                    "Redis (redis_url) is not answering: rate limits allow everything until it is back"
                ),
                Caller::Presence => tracing::warn!(
                    op = what,
                    error = %error,
                    "Redis (redis_url) is not answering: presence changes are not shared until it is back"
                ),
            }
        }
        None
    }

    /// Milliseconds since `origin`.
    fn millis(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bad_urls_are_refused_without_showing_them() {
        for url in [
            "rediss://:hunter2@example.com:6379",
            "postgres://:hunter2@example.com/db",
            "hunter2",
        ] {
            let e = RedisConn::new(url, Arc::new(Metrics::default())).unwrap_err();
            let text = format!("{e:#}");
            assert!(text.contains("redis_url"), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{url}: {text}");
        }
        let conn = RedisConn::new("redis://:hunter2@127.0.0.1:1", Arc::new(Metrics::default()))
            .expect("a valid URL connects lazily");
        assert!(!format!("{conn:?}").contains("hunter2"));
        assert_eq!(conn.rate_limit_prefix(), RATE_LIMIT_PREFIX);
    }
}
