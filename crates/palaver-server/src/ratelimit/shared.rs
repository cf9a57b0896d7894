//! The Redis backend of [`RateLimiter`](super::RateLimiter): the same sliding-window
//! counter as [`MemoryLimiter`](super::MemoryLimiter), with its state in Redis so every
//! node using that Redis shares one budget per key.
//!
//! # In Redis
//!
//! One hash per (limit, key), named `<prefix><limit>:<key>` (prefix `palaver:rl:`), with
//! the fields `l` (the last counted event, milliseconds since the Unix epoch on Redis's
//! clock), `p` and `c` (the previous and current window's counts, as in memory). It
//! expires two windows after its last counted event, when its counts have decayed to
//! zero (the lock-out bound of the [module docs](super)), so Redis holds only live keys.
//!
//! Each operation is one Lua script (run with EVALSHA, loaded on first use), atomic in
//! Redis, so concurrent nodes never lose a count. Time is Redis's (`TIME`), so the nodes'
//! clocks need not agree; windows are aligned to the Unix epoch. Decisions are those of
//! the memory backend at millisecond rather than nanosecond resolution; the Lua numbers
//! are doubles, exact while `count × window in ms` stays below 2^53 (e.g. 4 billion
//! events in a 25-day window). Windows longer than [`MAX_WINDOW_SECS`] are shortened to
//! it.
//!
//! # Failing open
//!
//! When Redis does not answer within [`crate::redis_conn::CALL_TIMEOUT`] (or is in the
//! backoff after a failure, see [`crate::redis_conn`]), every operation allows: `hit` and
//! `check` return `Ok(())`, `record`, `unhit` and `reset` do nothing.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::{Limited, Rule, Window, NANOS_PER_SEC};
use crate::redis_conn::RedisConn;

/// Longest window kept in Redis: about ten years (longer rules are shortened to it).
pub const MAX_WINDOW_SECS: u64 = 315_360_000;

/// `hit`, `check` and `record`. KEYS[1]: the key. ARGV: the operation (0 hit, 1 check,
/// 2 record), the window and the TTL in milliseconds, the rule's `max`. Returns
/// `{allowed (0|1), previous count, current count, elapsed ms into the window}` as seen
/// before counting.
static APPLY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, w, ttl, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'l', 'p', 'c')
local prev, curr = 0, 0
local last = tonumber(h[1])
if last then
  -- Never let time run backwards for a key (a failover to a replica with a slower clock).
  if now < last then now = last end
  local own, cur = math.floor(last / w), math.floor(now / w)
  if own >= cur then
    prev, curr = tonumber(h[2]) or 0, tonumber(h[3]) or 0
  elseif own + 1 == cur then
    prev = tonumber(h[3]) or 0
  end
end
local e = now % w
local allowed = prev * (w - e) + (curr + 1) * w <= max * w
if op == 2 or (op == 0 and allowed) then
  redis.call('HSET', KEYS[1], 'l', now, 'p', prev, 'c', math.min(curr + 1, 4294967295))
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return {allowed and 1 or 0, prev, curr, e}
",
    )
});

/// `unhit`. KEYS[1]: the key. ARGV[1]: the window in milliseconds. Decrements the current
/// window's count, or if that is zero the previous one's, never below zero; nothing once
/// both windows have passed. Returns 1 if the key was there, else 0.
static UNHIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'l', 'p', 'c')
local last = tonumber(h[1])
if not last then return 0 end
if now < last then now = last end
local own, cur = math.floor(last / w), math.floor(now / w)
local prev, curr = tonumber(h[2]) or 0, tonumber(h[3]) or 0
if own == cur then
  if curr > 0 then curr = curr - 1 elseif prev > 0 then prev = prev - 1 end
elseif own + 1 == cur then
  -- The stored current count is the previous window's as seen from now.
  if curr > 0 then curr = curr - 1 end
else
  return 0
end
redis.call('HSET', KEYS[1], 'p', prev, 'c', curr)
return 1
",
    )
});

/// What one [`APPLY`] call does.
#[derive(Clone, Copy)]
enum Op {
    Hit = 0,
    Check = 1,
    Record = 2,
}

/// A keyed sliding-window-counter rate limiter whose counts live in Redis; see the
/// [module docs](self).
pub struct RedisLimiter {
    rule: Rule,
    /// `None` when the rule is disabled (nothing is sent to Redis then).
    window: Option<Window>,
    /// The window in milliseconds (at most [`MAX_WINDOW_SECS`] seconds).
    window_ms: u64,
    /// `<prefix><limit>:`, to which the key is appended.
    key_prefix: String,
    redis: Arc<RedisConn>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("rule", &self.rule)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter enforcing `rule` per key under `<prefix><name>:` in `redis`.
    pub fn new(rule: Rule, name: &str, redis: Arc<RedisConn>) -> Self {
        let secs = rule.window_secs.min(MAX_WINDOW_SECS);
        let window = (!rule.is_disabled()).then(|| Window {
            len: u128::from(secs) * NANOS_PER_SEC,
            max: u128::from(rule.max),
            secs,
        });
        RedisLimiter {
            rule,
            window,
            window_ms: secs * 1000,
            key_prefix: format!("{}{name}:", redis.rate_limit_prefix()),
            redis,
        }
    }

    /// The rule this limiter enforces.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Counts one event for `key` if allowed (see [`super::RateLimiter::hit`]).
    ///
    /// # Errors
    /// [`Limited`] when one more event would exceed the rule.
    pub async fn hit(&self, key: &str) -> Result<(), Limited> {
        self.apply(key, Op::Hit).await
    }

    /// Whether one more event would be allowed, counting nothing.
    ///
    /// # Errors
    /// [`Limited`] when one more event would exceed the rule.
    pub async fn check(&self, key: &str) -> Result<(), Limited> {
        self.apply(key, Op::Check).await
    }

    /// Counts one event for `key` unconditionally.
    pub async fn record(&self, key: &str) {
        // Recording never refuses.
        let _ = self.apply(key, Op::Record).await;
    }

    /// Takes back one event counted by an allowed [`hit`](Self::hit).
    pub async fn unhit(&self, key: &str) {
        if self.window.is_none() {
            return;
        }
        let redis_key = self.key(key);
        let window_ms = self.window_ms;
        self.redis
            .call("unhit", |mut conn| async move {
                UNHIT
                    .key(redis_key)
                    .arg(window_ms)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
    }

    /// Forgets `key`: its next event starts from zero.
    pub async fn reset(&self, key: &str) {
        if self.window.is_none() {
            return;
        }
        let redis_key = self.key(key);
        self.redis
            .call("reset", |mut conn| async move {
                redis::cmd("DEL")
                    .arg(redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await;
    }

    /// The Redis key of `key`.
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.key_prefix)
    }

    /// Runs [`APPLY`] for `key`; allows when Redis does not answer.
    async fn apply(&self, key: &str, op: Op) -> Result<(), Limited> {
        let Some(w) = self.window else {
            return Ok(());
        };
        let redis_key = self.key(key);
        let (window_ms, max) = (self.window_ms, self.rule.max);
        let answer = self
            .redis
            .call("rate limit", |mut conn| async move {
                APPLY
                    .key(redis_key)
                    .arg(op as u8)
                    .arg(window_ms)
                    .arg(window_ms.saturating_mul(2))
                    .arg(max)
                    .invoke_async::<(i64, i64, i64, i64)>(&mut conn)
                    .await
            })
            .await;
        let Some((allowed, prev, curr, elapsed_ms)) = answer else {
            return Ok(());
        };
        if allowed == 1 {
            return Ok(());
        }
        let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
        let elapsed = u128::try_from(elapsed_ms.max(0)).unwrap_or(0) * 1_000_000;
        let elapsed = elapsed.min(w.len - 1);
        match w.decide(count(prev), count(curr), elapsed) {
            Err(limited) => Err(limited),
            // Redis's double arithmetic refused where the exact one allows (a rounding
            // at the very edge): the shortest honest wait.
            Ok(()) => Err(Limited {
                retry_after: Duration::from_secs(1),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real Redis: the machine's at 127.0.0.1:6379 (`PALAVER_TEST_REDIS_URL`
    //! overrides it), each test under its own random key prefix; the failure test starts a
    //! private `redis-server` it can kill.

    use super::super::RateLimiter;
    use super::*;
    use crate::metrics::Metrics;

    fn redis_url() -> String {
        std::env::var("PALAVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// A connection to `url` whose keys no other test uses, and its metrics.
    fn conn_to(url: &str) -> (Arc<RedisConn>, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let prefix = format!("palaver:test:{}:", uuid::Uuid::now_v7());
        let conn = RedisConn::with_prefix(url, &prefix, metrics.clone()).unwrap();
        (Arc::new(conn), metrics)
    }

    /// Two "nodes": two connections sharing one prefix.
    fn two_nodes(rule: Rule) -> (RateLimiter, RateLimiter) {
        let prefix = format!("palaver:test:{}:", uuid::Uuid::now_v7());
        let node = || {
            let conn = RedisConn::with_prefix(&redis_url(), &prefix, Arc::new(Metrics::default()))
                .unwrap();
            RateLimiter::shared(rule, "login", Arc::new(conn))
        };
        (node(), node())
    }

    const LOGIN: Rule = Rule {
        max: 5,
        window_secs: 900,
    };

    #[tokio::test]
    async fn two_nodes_share_one_budget() {
        let (a, b) = two_nodes(LOGIN);
        for i in 0..5 {
            let node = if i % 2 == 0 { &a } else { &b };
            assert_eq!(node.hit("alice").await, Ok(()), "hit {i}");
        }
        for node in [&a, &b] {
            let limited = node.hit("alice").await.expect_err("over the shared limit");
            assert!(
                limited.retry_after >= Duration::from_secs(1)
                    && limited.retry_after <= Duration::from_secs(900),
                "{limited:?}"
            );
            assert_eq!(limited.retry_after.subsec_nanos(), 0);
        }
        // Other keys are independent, on either node.
        assert_eq!(b.hit("bob").await, Ok(()));
        assert_eq!(a.check("carol").await, Ok(()));
    }

    #[tokio::test]
    async fn the_window_passing_lets_hits_through_again() {
        let rule = Rule {
            max: 2,
            window_secs: 1,
        };
        let (a, b) = two_nodes(rule);
        a.hit("k").await.unwrap();
        b.hit("k").await.unwrap();
        assert!(a.hit("k").await.is_err());
        // The lock-out bound: never refused two windows after the last counted event.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(b.hit("k").await, Ok(()));
        assert_eq!(a.hit("k").await, Ok(()));
    }

    #[tokio::test]
    async fn the_key_expires_from_redis_after_two_windows() {
        let (conn, _) = conn_to(&redis_url());
        let rl = RateLimiter::shared(
            Rule {
                max: 3,
                window_secs: 1,
            },
            "ttl",
            conn.clone(),
        );
        rl.hit("k").await.unwrap();
        let key = format!("{}ttl:k", conn.rate_limit_prefix());
        let client = redis::Client::open(redis_url()).unwrap();
        let mut plain = client.get_multiplexed_async_connection().await.unwrap();
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut plain)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 2000, "ttl {ttl}");
    }

    #[tokio::test]
    async fn unhit_reset_check_and_record_behave_as_in_memory() {
        let (a, b) = two_nodes(LOGIN);
        for _ in 0..5 {
            a.hit("alice").await.unwrap();
        }
        assert!(b.hit("alice").await.is_err());
        // A refund frees one slot, on any node.
        b.unhit("alice").await;
        assert_eq!(a.hit("alice").await, Ok(()), "the refunded slot is free");
        assert!(b.hit("alice").await.is_err());
        // Never below zero; unknown keys are a no-op.
        for _ in 0..10 {
            a.unhit("alice").await;
        }
        a.unhit("nobody").await;
        for i in 0..5 {
            assert_eq!(b.hit("alice").await, Ok(()), "hit {i} after refunds");
        }
        assert!(a.hit("alice").await.is_err());
        // Reset forgets the key.
        b.reset("alice").await;
        b.reset("nobody").await;
        for _ in 0..5 {
            a.hit("alice").await.unwrap();
        }
        assert!(a.hit("alice").await.is_err());
        // Check never counts; record counts even past the limit.
        for _ in 0..20 {
            assert_eq!(a.check("dave").await, Ok(()));
        }
        for _ in 0..4 {
            b.record("dave").await;
        }
        assert_eq!(a.check("dave").await, Ok(()));
        b.record("dave").await;
        assert!(a.check("dave").await.is_err());
        for _ in 0..10 {
            b.record("dave").await;
        }
        assert!(a.hit("dave").await.is_err());
        // A disabled rule allows everything without asking Redis.
        let (off, _) = two_nodes(Rule {
            max: 0,
            window_secs: 900,
        });
        for _ in 0..10 {
            assert_eq!(off.hit("k").await, Ok(()));
        }
        assert_eq!(a.rule(), LOGIN);
    }

    /// A private `redis-server` on a free port, killed on drop.
    struct PrivateRedis {
        port: u16,
        child: std::process::Child,
    }

    impl PrivateRedis {
        fn start_on(port: u16) -> PrivateRedis {
            let child = std::process::Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--bind", "127.0.0.1"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("redis-server is on PATH");
            PrivateRedis { port, child }
        }

        fn start() -> PrivateRedis {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            Self::start_on(port)
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}", self.port)
        }

        async fn wait_until_up(&self) {
            let client = redis::Client::open(self.url()).unwrap();
            for _ in 0..100 {
                if client.get_multiplexed_async_connection().await.is_ok() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("redis-server on port {} did not start", self.port);
        }

        fn kill(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Drop for PrivateRedis {
        fn drop(&mut self) {
            self.kill();
        }
    }

    #[tokio::test]
    async fn a_dead_redis_allows_everything_and_limits_return_with_it() {
        let mut server = PrivateRedis::start();
        server.wait_until_up().await;
        let (conn, metrics) = conn_to(&server.url());
        let rule = Rule {
            max: 1,
            window_secs: 900,
        };
        let rl = RateLimiter::shared(rule, "dead", conn.clone());
        rl.hit("k").await.unwrap();
        assert!(rl.hit("k").await.is_err());
        assert!(conn.ping().await);

        server.kill();
        for _ in 0..5 {
            assert_eq!(rl.hit("k").await, Ok(()), "fails open");
        }
        rl.record("k").await;
        rl.unhit("k").await;
        rl.reset("k").await;
        assert!(!conn.ping().await);
        assert!(metrics.ratelimit_redis_errors.get() >= 5);
        assert!(metrics
            .render()
            .contains("palaver_ratelimit_redis_errors_total"));

        let server = PrivateRedis::start_on(server.port);
        server.wait_until_up().await;
        // The connection comes back by itself (after the backoff); the data did not
        // survive (no persistence), so the key starts afresh.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            rl.reset("k").await;
            if rl.hit("k").await.is_ok() && rl.hit("k").await.is_err() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "limits did not apply again after Redis came back"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(conn.ping().await);
    }
}
