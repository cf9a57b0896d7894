//! Keyed rate limiting with the sliding-window-counter algorithm, in memory or shared by
//! several nodes through Redis.
//!
//! # Backends
//!
//! [`RateLimiter`] is what callers hold. It is either
//!
//! - in this node's memory ([`RateLimiter::new`], a [`MemoryLimiter`]), when `redis_url`
//!   is unset: the behaviour of a single node, or
//! - in Redis ([`RateLimiter::shared`], see [`shared`]), when `redis_url` is set: every
//!   node using that Redis counts into the same budget. It runs the same algorithm, one
//!   Lua script per operation over one key per (limit, key), on Redis's clock. If Redis
//!   does not answer, it *fails open*: the event is allowed (a dead Redis must not stop
//!   chat).
//!
//! Its methods are `async` (the Redis round trip); for the memory backend they never
//! await. The rest of these docs describe the algorithm both follow and the memory
//! backend's bounds.
//!
//! # Algorithm
//!
//! This is the "sliding window" counter Cloudflare describes in *How we built rate
//! limiting capable of scaling to millions of domains* (Julien Desgats, 2017,
//! <https://blog.cloudflare.com/counting-things-a-lot-of-different-things/>).
//!
//! Time is cut into fixed windows of `window_secs` seconds, aligned to the moment the
//! [`MemoryLimiter`] was created (the same boundaries for every key). For each key the
//! limiter keeps only two counters: the events counted in the current window and in the
//! window just before it. The rate at a moment `elapsed` into the current window is
//! estimated by assuming the previous window's events were spread evenly over it, so only
//! the part of it that still overlaps the sliding window `(now - window, now]` counts:
//!
//! ```text
//! estimate = previous × (window − elapsed) / window + current
//! ```
//!
//! An event is allowed when the estimate *including it* is at most `max`, that is when
//! `previous × (window − elapsed) / window + current + 1 ≤ max`. The comparison is done
//! exactly in integer nanoseconds (no floating point). A refused event is not counted.
//!
//! # Guarantees
//!
//! For a [`Rule`] `{ max, window_secs }` with `max ≥ 1` and `window_secs ≥ 1`:
//!
//! - In a window whose predecessor holds no events, exactly `max` hits pass and the next
//!   is refused.
//! - **Lock-out bound.** Let `t` be the time of a key's last *counted* event (an allowed
//!   [`hit`](MemoryLimiter::hit) or any [`record`](MemoryLimiter::record); refused hits and
//!   [`check`](MemoryLimiter::check) count nothing). From the second window boundary after
//!   `t` on, both counters of the key are zero and it has its full budget again. That
//!   boundary lies in `(t + window, t + 2 × window]`, so a key is never refused at or after
//!   `t + 2 × window`, however far over the limit `record` pushed it.
//! - [`Limited::retry_after`] is a whole number of seconds, at least 1 and at most the
//!   window. It is the exact time (rounded up to the second) until one more event would be
//!   allowed, if nothing else is counted meanwhile — except that it is capped at one window.
//!   The true wait can exceed a window (up to two) when the current window is already full
//!   and the previous window's weight must also decay; a client that honours the capped
//!   value is then refused once more with a shorter `retry_after`, and the lock-out bound
//!   above still holds.
//!
//! A `max` of 0 or a `window_secs` of 0 disables the limiter: everything is allowed and
//! nothing is stored.
//!
//! # Memory
//!
//! A key costs O(1): its string plus 16 bytes of counters and the map's overhead (about
//! 40 bytes plus the key's heap allocation). Callers should bound key length (an IP address, a
//! validated user name). The keys are spread by hash over up to 16 shards, each a
//! `std::sync::Mutex<HashMap>`, and the total is capped:
//!
//! - Every 1024 counting operations on a shard, the shard is swept: keys with no counted
//!   event in the current or the previous window (whose counters are therefore zero, so
//!   forgetting them changes no decision) are removed.
//! - A shard never holds more than its share of `max_keys` ([`MemoryLimiter::with_max_keys`],
//!   default [`DEFAULT_MAX_KEYS`]), so [`MemoryLimiter::len`] never exceeds `max_keys`.
//!   When a new key would exceed it, the shard is swept; if still full, about an eighth of
//!   the shard (at least one key) is evicted, those with the lowest current estimate first
//!   (ties: the oldest last event first). A stale key's estimate decays to zero, so it goes
//!   first; keys at their limit are kept longest, so rotating through fresh keys (each
//!   with an estimate of 1) does not easily flush a limited key. Evicting a key forgets its
//!   count: that is the price of bounded memory.
//!
//! # Concurrency
//!
//! [`MemoryLimiter`] is `Send + Sync`; share it in an `Arc`. Its methods are synchronous
//! (they never block on anything but the lock) and hold one shard's lock for a
//! single lookup and update, or for a sweep or eviction, which scans that one shard.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub mod shared;

pub use shared::RedisLimiter;

use crate::redis_conn::RedisConn;
use std::sync::Arc;

/// Default cap on the keys one [`MemoryLimiter`] holds (over all shards), used by
/// [`MemoryLimiter::new`]: 65,536, a few megabytes with short keys.
pub const DEFAULT_MAX_KEYS: usize = 65_536;

/// Most shards a limiter uses; fewer when `max_keys` is smaller.
const SHARDS: usize = 16;

/// Counting operations on a shard between two sweeps of its stale keys.
const SWEEP_EVERY: u32 = 1024;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// A limit: at most `max` events per `window_secs` seconds, per key.
///
/// `max == 0` or `window_secs == 0` disables the limit (every event is allowed).
/// Serialized as `{ "max": 5, "window_secs": 900 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Events allowed per window; 0 disables the limit.
    pub max: u32,
    /// Window length in seconds; 0 disables the limit.
    pub window_secs: u64,
}

impl Rule {
    /// Whether this rule allows everything (`max == 0` or `window_secs == 0`).
    pub fn is_disabled(&self) -> bool {
        self.max == 0 || self.window_secs == 0
    }
}

/// Outcome when over the limit: how long until one more event would be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds (never a fraction), at least 1 and at most the rule's window; meant
    /// for an HTTP `Retry-After` header. See the [module docs](self) for when it is a
    /// lower bound rather than exact.
    pub retry_after: Duration,
}

/// A keyed rate limiter, in memory or shared through Redis (see the
/// [module docs](self)). `Send + Sync`; share it in an `Arc`.
#[derive(Debug)]
pub struct RateLimiter {
    backend: Backend,
}

/// Where a [`RateLimiter`] counts.
#[derive(Debug)]
enum Backend {
    Memory(MemoryLimiter),
    Redis(RedisLimiter),
}

impl RateLimiter {
    /// A limiter enforcing `rule` per key in this node's memory, holding at most
    /// [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(rule: Rule) -> Self {
        RateLimiter {
            backend: Backend::Memory(MemoryLimiter::new(rule)),
        }
    }

    /// A limiter enforcing `rule` per key in Redis, shared with every node using the same
    /// Redis and `name` (its keys are `<prefix><name>:<key>`, the prefix
    /// `palaver:rl:`).
    pub fn shared(rule: Rule, name: &str, redis: Arc<RedisConn>) -> Self {
        RateLimiter {
            backend: Backend::Redis(RedisLimiter::new(rule, name, redis)),
        }
    }

    /// [`shared`](Self::shared) when `redis` is given, else [`new`](Self::new).
    pub fn shared_or_local(rule: Rule, name: &str, redis: Option<&Arc<RedisConn>>) -> Self {
        match redis {
            Some(redis) => Self::shared(rule, name, Arc::clone(redis)),
            None => Self::new(rule),
        }
    }

    /// The rule this limiter enforces.
    pub fn rule(&self) -> Rule {
        match &self.backend {
            Backend::Memory(m) => m.rule(),
            Backend::Redis(r) => r.rule(),
        }
    }

    /// Counts one event for `key` if allowed; returns `Err(Limited)` (and counts nothing)
    /// if the key is at its limit. See [`MemoryLimiter::hit`]; in Redis, allowed if Redis
    /// does not answer.
    ///
    /// # Errors
    /// [`Limited`] when one more event would exceed the rule.
    pub async fn hit(&self, key: &str) -> Result<(), Limited> {
        match &self.backend {
            Backend::Memory(m) => m.hit(key),
            Backend::Redis(r) => r.hit(key).await,
        }
    }

    /// What [`hit`](Self::hit) would return now, without counting. See
    /// [`MemoryLimiter::check`].
    ///
    /// # Errors
    /// [`Limited`] when one more event would exceed the rule.
    pub async fn check(&self, key: &str) -> Result<(), Limited> {
        match &self.backend {
            Backend::Memory(m) => m.check(key),
            Backend::Redis(r) => r.check(key).await,
        }
    }

    /// Counts one event for `key` unconditionally. See [`MemoryLimiter::record`].
    pub async fn record(&self, key: &str) {
        match &self.backend {
            Backend::Memory(m) => m.record(key),
            Backend::Redis(r) => r.record(key).await,
        }
    }

    /// Takes back one event counted by an allowed [`hit`](Self::hit). See
    /// [`MemoryLimiter::unhit`].
    pub async fn unhit(&self, key: &str) {
        match &self.backend {
            Backend::Memory(m) => m.unhit(key),
            Backend::Redis(r) => r.unhit(key).await,
        }
    }

    /// Forgets `key`: its next event starts from zero. See [`MemoryLimiter::reset`].
    pub async fn reset(&self, key: &str) {
        match &self.backend {
            Backend::Memory(m) => m.reset(key),
            Backend::Redis(r) => r.reset(key).await,
        }
    }
}

/// What the limiter keeps for one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Nanoseconds from the limiter's origin to this key's last counted event. Its window
    /// (`last / window`) is the window `curr` counts.
    last: u64,
    /// Events counted in the window before `last`'s.
    prev: u32,
    /// Events counted in `last`'s window.
    curr: u32,
}

/// One shard's keys.
#[derive(Default)]
struct Shard {
    keys: HashMap<Box<str>, Entry>,
    /// Counting operations since the last sweep.
    ops: u32,
}

/// The parts of the limiter's configuration the per-shard code needs, in nanoseconds.
#[derive(Clone, Copy)]
struct Window {
    /// Window length in nanoseconds (at least one second's worth).
    len: u128,
    /// The rule's `max` (at least 1).
    max: u128,
    /// The rule's window in whole seconds (at least 1).
    secs: u64,
}

/// What one call does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Count the event if allowed.
    Hit,
    /// Only decide.
    Check,
    /// Count the event unconditionally.
    Record,
}

/// A keyed sliding-window-counter rate limiter; see the [module docs](self) for the
/// algorithm, its guarantees and its memory bounds.
pub struct MemoryLimiter {
    rule: Rule,
    /// `None` when the rule is disabled.
    window: Option<Window>,
    /// Where window 0 starts.
    origin: Instant,
    /// Keys one shard may hold.
    max_keys_per_shard: usize,
    /// Picks a key's shard.
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

impl fmt::Debug for MemoryLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryLimiter")
            .field("rule", &self.rule)
            .field("max_keys", &(self.max_keys_per_shard * self.shards.len()))
            .finish_non_exhaustive()
    }
}

impl MemoryLimiter {
    /// A limiter enforcing `rule` per key, holding at most [`DEFAULT_MAX_KEYS`] keys.
    pub fn new(rule: Rule) -> Self {
        Self::with_max_keys(rule, DEFAULT_MAX_KEYS)
    }

    /// A limiter enforcing `rule` per key that never holds more than `max_keys` keys
    /// (at least 1), evicting as described in the [module docs](self).
    pub fn with_max_keys(rule: Rule, max_keys: usize) -> Self {
        Self::with_origin(rule, max_keys, Instant::now())
    }

    /// [`with_max_keys`](Self::with_max_keys) with window 0 starting at `origin`
    /// (tests inject time relative to it).
    fn with_origin(rule: Rule, max_keys: usize, origin: Instant) -> Self {
        let max_keys = max_keys.max(1);
        let shards = max_keys.min(SHARDS);
        let window = (!rule.is_disabled()).then(|| Window {
            len: u128::from(rule.window_secs) * NANOS_PER_SEC,
            max: u128::from(rule.max),
            secs: rule.window_secs,
        });
        MemoryLimiter {
            rule,
            window,
            origin,
            max_keys_per_shard: max_keys / shards,
            hasher: RandomState::new(),
            shards: (0..shards).map(|_| Mutex::default()).collect(),
        }
    }

    /// The rule this limiter enforces.
    pub fn rule(&self) -> Rule {
        self.rule
    }

    /// Counts one event for `key` if allowed; returns `Err(Limited)` (and counts nothing)
    /// if the key is at its limit.
    ///
    /// # Errors
    /// [`Limited`] when one more event would exceed the rule.
    pub fn hit(&self, key: &str) -> Result<(), Limited> {
        self.hit_at(key, Instant::now())
    }

    /// Whether `key` is currently at its limit, without counting anything (e.g. to refuse
    /// a login attempt before checking the password when failures are already at the
    /// limit). Returns what [`hit`](Self::hit) would return now, without its effect.
    ///
    /// # Errors
    /// [`Limited`] when one more event would exceed the rule.
    pub fn check(&self, key: &str) -> Result<(), Limited> {
        self.check_at(key, Instant::now())
    }

    /// Counts one event for `key` unconditionally, even past the limit (e.g. to record a
    /// failed login after the fact). Counts saturate at `u32::MAX`.
    pub fn record(&self, key: &str) {
        self.record_at(key, Instant::now());
    }

    /// Takes back one event counted for `key` by an allowed [`hit`](Self::hit) (a refund,
    /// e.g. for a login attempt counted before the password was checked that turned out
    /// right). Decrements the current window's count, or if that is zero the previous
    /// window's; never below zero, and nothing once both windows have passed. Counting
    /// first and refunding after is what makes a limit hold under concurrency: `check`
    /// then `record` lets every request that checks before the first records through.
    pub fn unhit(&self, key: &str) {
        self.unhit_at(key, Instant::now());
    }

    /// [`unhit`](Self::unhit) at time `now`.
    pub(crate) fn unhit_at(&self, key: &str, now: Instant) {
        let Some(w) = self.window else {
            return;
        };
        let now = now.saturating_duration_since(self.origin).as_nanos();
        let mut shard = self.lock_shard(key);
        let Some(entry) = shard.keys.get_mut(key) else {
            return;
        };
        let now = now.max(u128::from(entry.last));
        let own = u128::from(entry.last) / w.len;
        let now_window = now / w.len;
        if own == now_window {
            if entry.curr > 0 {
                entry.curr -= 1;
            } else {
                entry.prev = entry.prev.saturating_sub(1);
            }
        } else if own + 1 == now_window {
            // `curr` is the previous window's count as seen from now.
            entry.curr = entry.curr.saturating_sub(1);
        }
    }

    /// Forgets `key` (e.g. after a successful login): its next event starts from zero.
    pub fn reset(&self, key: &str) {
        self.lock_shard(key).keys.remove(key);
    }

    /// Number of keys held, including stale ones not yet swept (for tests and metrics).
    /// Never more than the limiter's `max_keys`.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).keys.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| lock(s).keys.is_empty())
    }

    /// [`hit`](Self::hit) at time `now`.
    pub(crate) fn hit_at(&self, key: &str, now: Instant) -> Result<(), Limited> {
        self.apply(key, now, Op::Hit)
    }

    /// [`check`](Self::check) at time `now`.
    pub(crate) fn check_at(&self, key: &str, now: Instant) -> Result<(), Limited> {
        self.apply(key, now, Op::Check)
    }

    /// [`record`](Self::record) at time `now`.
    pub(crate) fn record_at(&self, key: &str, now: Instant) {
        // Recording never refuses.
        let _ = self.apply(key, now, Op::Record);
    }

    /// The shard holding `key`, locked.
    fn lock_shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        // The modulo keeps the index below `shards.len()` (≤ 16), so it fits a usize.
        let index = (self.hasher.hash_one(key) % self.shards.len() as u64) as usize;
        lock(&self.shards[index])
    }

    /// Decides, and counts when `op` says so, one event for `key` at `now`.
    fn apply(&self, key: &str, now: Instant, op: Op) -> Result<(), Limited> {
        let Some(w) = self.window else {
            return Ok(());
        };
        let now = now.saturating_duration_since(self.origin).as_nanos();
        let mut shard = self.lock_shard(key);
        if let Some(entry) = shard.keys.get_mut(key) {
            // Instants read on different threads may reach the lock out of order: never
            // let time run backwards for a key.
            let now = now.max(u128::from(entry.last));
            let (prev, curr) = entry.counts_at(now / w.len, w);
            let decision = w.decide(prev, curr, now % w.len);
            let count = match op {
                Op::Check => false,
                Op::Hit => decision.is_ok(),
                Op::Record => true,
            };
            if !count {
                return decision;
            }
            *entry = Entry {
                last: saturate(now),
                prev,
                curr: curr.saturating_add(1),
            };
        } else {
            // An absent key has both counters at zero; `max ≥ 1`, so it is allowed.
            let decision = w.decide(0, 0, now % w.len);
            if op == Op::Check || (op == Op::Hit && decision.is_err()) {
                return decision;
            }
            shard.make_room(self.max_keys_per_shard, now, w);
            shard.keys.insert(
                key.into(),
                Entry {
                    last: saturate(now),
                    prev: 0,
                    curr: 1,
                },
            );
        }
        shard.ops += 1;
        if shard.ops >= SWEEP_EVERY {
            shard.sweep(now / w.len, w);
        }
        Ok(())
    }
}

impl Window {
    /// `previous × (window − elapsed) + current × window`: the estimate scaled by the
    /// window length in nanoseconds, so it compares exactly with `max × window`.
    fn weighted(&self, prev: u32, curr: u128, elapsed: u128) -> u128 {
        u128::from(prev) * (self.len - elapsed) + curr * self.len
    }

    /// Whether one more event is allowed with these counters, `elapsed` nanoseconds into
    /// the current window; if not, how long to wait.
    fn decide(&self, prev: u32, curr: u32, elapsed: u128) -> Result<(), Limited> {
        if self.weighted(prev, u128::from(curr) + 1, elapsed) <= self.max * self.len {
            return Ok(());
        }
        let wait = self.wait(prev, curr, elapsed);
        let secs = wait.div_ceil(NANOS_PER_SEC).clamp(1, u128::from(self.secs));
        Err(Limited {
            // Clamped to `self.secs`, a u64.
            retry_after: Duration::from_secs(secs as u64),
        })
    }

    /// Exact nanoseconds from `elapsed` into the current window until one more event is
    /// allowed, if nothing is counted meanwhile (0 if allowed now). At most two windows.
    fn wait(&self, prev: u32, curr: u32, elapsed: u128) -> u128 {
        let (w, max, p, c) = (self.len, self.max, u128::from(prev), u128::from(curr));
        // The first e in a window with `weight × (w − e) ≤ budget`: w − ⌊budget / weight⌋,
        // or 0 when nothing weighs.
        let first = |budget: u128, weight: u128| {
            budget
                .checked_div(weight)
                .map_or(0, |span| w.saturating_sub(span))
        };
        // Later in this window: p × (w − e) ≤ (max − c − 1) × w.
        if c < max {
            let first_here = first((max - c - 1) * w, p);
            if first_here < w {
                return first_here.saturating_sub(elapsed);
            }
        }
        // In the next window, where this window's `c` becomes the previous count:
        // c × (w − e) ≤ (max − 1) × w. Always some e ≤ w (at w both counts are 0).
        let first_next = first((max - 1) * w, c);
        w - elapsed + first_next
    }
}

impl Entry {
    /// The key's (previous, current) counters as seen from window `now_window`.
    fn counts_at(&self, now_window: u128, w: Window) -> (u32, u32) {
        let own = u128::from(self.last) / w.len;
        if own >= now_window {
            (self.prev, self.curr)
        } else if own + 1 == now_window {
            (self.curr, 0)
        } else {
            (0, 0)
        }
    }

    /// Whether the counters are zero from window `now_window` on, so forgetting the key
    /// changes no decision.
    fn is_stale(&self, now_window: u128, w: Window) -> bool {
        u128::from(self.last) / w.len + 1 < now_window
    }
}

impl Shard {
    /// Removes the keys whose counters have decayed to zero.
    fn sweep(&mut self, now_window: u128, w: Window) {
        self.ops = 0;
        self.keys.retain(|_, e| !e.is_stale(now_window, w));
    }

    /// Makes room for one more key under `cap`: sweeps, then if still full evicts about an
    /// eighth of the keys (at least one), lowest estimate at `now` first, ties oldest first.
    fn make_room(&mut self, cap: usize, now: u128, w: Window) {
        if self.keys.len() < cap {
            return;
        }
        self.sweep(now / w.len, w);
        if self.keys.len() < cap {
            return;
        }
        let evict = (self.keys.len() + 1 - cap + cap / 8).min(self.keys.len());
        let score = |e: &Entry| {
            let now = now.max(u128::from(e.last));
            let (prev, curr) = e.counts_at(now / w.len, w);
            (w.weighted(prev, u128::from(curr), now % w.len), e.last)
        };
        let mut scores: Vec<(u128, u64)> = self.keys.values().map(score).collect();
        let (_, &mut threshold, _) = scores.select_nth_unstable(evict - 1);
        let below = scores.iter().filter(|s| **s < threshold).count();
        // Fewer than `evict` score strictly below the threshold; take ties to make it exact.
        let mut ties = evict - below;
        self.keys.retain(|_, e| {
            let s = score(e);
            if s < threshold {
                false
            } else if s == threshold && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// Locks a shard. A panic while it was held cannot leave it inconsistent (every update is
/// a single map operation), so a poisoned lock is used as is.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Nanoseconds as a u64 (saturating after 584 years).
fn saturate(nanos: u128) -> u64 {
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: Rule = Rule {
        max: 5,
        window_secs: 900,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// A limiter whose window 0 starts at the returned instant.
    fn limiter(rule: Rule, max_keys: usize) -> (MemoryLimiter, Instant) {
        let t0 = Instant::now();
        (MemoryLimiter::with_origin(rule, max_keys, t0), t0)
    }

    fn retry_after(r: Result<(), Limited>) -> Duration {
        r.expect_err("expected to be limited").retry_after
    }

    #[test]
    fn five_hits_pass_and_the_sixth_is_refused() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for i in 0..5 {
            assert_eq!(rl.hit_at("alice", t0 + secs(i)), Ok(()), "hit {i}");
        }
        let limited = retry_after(rl.hit_at("alice", t0 + secs(5)));
        assert!(limited >= secs(1) && limited <= secs(900), "{limited:?}");
        assert_eq!(rl.len(), 1);
    }

    #[test]
    fn full_budget_again_after_two_quiet_windows() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        assert!(rl.hit_at("alice", t0).is_err());
        // A full window plus the overlap (another window) later, everything has decayed.
        let later = t0 + secs(1800);
        for i in 0..5 {
            assert_eq!(rl.hit_at("alice", later), Ok(()), "hit {i}");
        }
        assert!(rl.hit_at("alice", later).is_err());
    }

    #[test]
    fn previous_window_is_weighted_by_its_overlap() {
        // The worked example of the Cloudflare post: 42 events in the previous minute, 18
        // in the current one, 15 s into it: 42 × 45/60 + 18 = 49.5; one more makes 50.5.
        let rule = Rule {
            max: 50,
            window_secs: 60,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        for _ in 0..42 {
            rl.record_at("ip", t0 + secs(30));
        }
        for _ in 0..18 {
            rl.record_at("ip", t0 + secs(60));
        }
        let at = t0 + secs(75);
        // 42 × (60 − e)/60 + 19 ≤ 50 from e = 60 − 60 × 31/42 = 15.714… s: 0.714 s away,
        // which rounds up to 1 s.
        assert_eq!(retry_after(rl.hit_at("ip", at)), secs(1));
        let exact = secs(60) - Duration::from_nanos(60_000_000_000 * 31 / 42);
        assert!(rl
            .check_at("ip", t0 + secs(60) + exact - Duration::from_nanos(1))
            .is_err());
        assert_eq!(rl.check_at("ip", t0 + secs(60) + exact), Ok(()));
        // Halfway through the window only 21 of the 42 still count: 21 + 18 = 39, so 11
        // more pass.
        let half = t0 + secs(90);
        for i in 0..11 {
            assert_eq!(rl.hit_at("ip", half), Ok(()), "hit {i}");
        }
        assert!(rl.hit_at("ip", half).is_err());
    }

    #[test]
    fn retry_after_is_whole_seconds_capped_at_the_window_and_honest_otherwise() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        // The exact wait is 900 s to the boundary, then until 5 × (900 − e)/900 + 1 ≤ 5,
        // e = 180 s: 1080 s in all, capped at the window.
        assert_eq!(retry_after(rl.hit_at("alice", t0)), secs(900));
        // Honouring it, the client is refused once more, now with the exact remainder.
        assert_eq!(retry_after(rl.hit_at("alice", t0 + secs(900))), secs(180));
        assert!(rl
            .hit_at("alice", t0 + secs(1080) - Duration::from_nanos(1))
            .is_err());
        assert_eq!(rl.hit_at("alice", t0 + secs(1080)), Ok(()));
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let rule = Rule {
            max: 2,
            window_secs: 10,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        rl.hit_at("k", t0 + secs(5)).unwrap();
        rl.hit_at("k", t0 + secs(5)).unwrap();
        // Window 1 starts at 10 s: 2 × (10 − e)/10 + 1 ≤ 2 from e = 5 s.
        let just_before = t0 + secs(15) - Duration::from_nanos(1);
        assert_eq!(retry_after(rl.hit_at("k", just_before)), secs(1));
        assert_eq!(rl.hit_at("k", t0 + secs(15)), Ok(()));
    }

    #[test]
    fn following_retry_after_always_leads_to_an_allowed_event_within_two_windows() {
        let rules = [
            LOGIN,
            Rule {
                max: 1,
                window_secs: 1,
            },
            Rule {
                max: 3,
                window_secs: 7,
            },
            Rule {
                max: 100,
                window_secs: 60,
            },
        ];
        for rule in rules {
            let w = rule.window_secs * 1_000_000_000;
            // Last event at many offsets into a window, with counts at, and far over, max.
            for step in 0..40u64 {
                for extra in [0u32, 1, 7, 1000] {
                    let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
                    let last = t0 + Duration::from_nanos(w + w * step / 40 + step);
                    for _ in 0..rule.max + extra {
                        rl.record_at("k", last);
                    }
                    let deadline = last + secs(2 * rule.window_secs);
                    let mut now = last;
                    let mut tries = 0;
                    while let Err(l) = rl.hit_at("k", now) {
                        assert!(l.retry_after >= secs(1), "{rule:?}");
                        assert!(l.retry_after <= secs(rule.window_secs), "{rule:?}");
                        assert_eq!(l.retry_after.subsec_nanos(), 0);
                        now += l.retry_after;
                        tries += 1;
                        assert!(tries <= 3, "{rule:?} step {step} extra {extra}");
                    }
                    // Rounding to whole seconds may overshoot the exact time slightly.
                    assert!(
                        now <= deadline + secs(1),
                        "{rule:?} step {step} extra {extra}"
                    );
                    // The documented bound itself: allowed at last + 2 windows.
                    let rl2 = MemoryLimiter::with_origin(rule, DEFAULT_MAX_KEYS, t0);
                    for _ in 0..rule.max + extra {
                        rl2.record_at("k", last);
                    }
                    assert_eq!(rl2.check_at("k", deadline), Ok(()), "{rule:?} step {step}");
                }
            }
        }
    }

    #[test]
    fn lockout_never_exceeds_two_windows_after_the_last_counted_event() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        // 50 failures recorded at the very start of window 1. In window 2 they still weigh
        // 50 × (900 − e)/900, and one more is allowed once that is ≤ 4: from e = 828 s.
        for _ in 0..50 {
            rl.record_at("k", t0 + secs(900));
        }
        let free = t0 + secs(1800 + 828);
        // Refused hits in between count nothing and do not extend the lock-out.
        for s in (900..2628).step_by(30) {
            assert!(rl.hit_at("k", t0 + secs(s)).is_err(), "at {s}");
        }
        assert!(rl.hit_at("k", free - Duration::from_nanos(1)).is_err());
        assert_eq!(rl.hit_at("k", free), Ok(()));
        assert!(free <= t0 + secs(900 + 1800));

        // The bound is reached exactly with max = 1 and the event at a window's start.
        let rule = Rule {
            max: 1,
            window_secs: 900,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        rl.record_at("k", t0 + secs(900));
        let deadline = t0 + secs(900 + 1800);
        assert!(rl.hit_at("k", deadline - Duration::from_nanos(1)).is_err());
        assert_eq!(rl.hit_at("k", deadline), Ok(()));
    }

    #[test]
    fn different_keys_are_independent() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        assert!(rl.hit_at("alice", t0).is_err());
        for i in 0..5 {
            assert_eq!(rl.hit_at("bob", t0), Ok(()), "bob hit {i}");
        }
        assert!(rl.hit_at("bob", t0).is_err());
        assert_eq!(rl.check_at("carol", t0), Ok(()));
        assert_eq!(rl.len(), 2);
    }

    #[test]
    fn check_never_changes_counts() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..100 {
            assert_eq!(rl.check_at("new", t0), Ok(()));
        }
        assert!(rl.is_empty(), "check must not insert keys");
        for _ in 0..4 {
            rl.hit_at("alice", t0).unwrap();
        }
        for _ in 0..100 {
            assert_eq!(rl.check_at("alice", t0), Ok(()));
        }
        rl.hit_at("alice", t0).unwrap();
        let refused = rl.hit_at("alice", t0 + secs(1));
        for _ in 0..100 {
            assert_eq!(rl.check_at("alice", t0 + secs(1)), refused);
        }
        // Still exactly at the limit: it frees at the same moment as without the checks.
        assert_eq!(rl.hit_at("alice", t0 + secs(1080)), Ok(()));
    }

    #[test]
    fn refused_hits_count_nothing() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        for _ in 0..1000 {
            assert!(rl.hit_at("alice", t0 + secs(10)).is_err());
        }
        assert_eq!(rl.hit_at("alice", t0 + secs(1080)), Ok(()));
    }

    #[test]
    fn the_login_flow_check_then_record_failures() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for i in 0..5 {
            assert_eq!(rl.check_at("alice", t0 + secs(i)), Ok(()), "attempt {i}");
            rl.record_at("alice", t0 + secs(i)); // the password was wrong
        }
        assert!(rl.check_at("alice", t0 + secs(5)).is_err());
        rl.reset("alice"); // a later success forgets the failures
        assert_eq!(rl.check_at("alice", t0 + secs(6)), Ok(()));
        assert!(rl.is_empty());
    }

    #[test]
    fn record_past_the_limit_keeps_the_key_limited() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..20 {
            rl.record_at("alice", t0 + secs(100));
        }
        assert!(rl.check_at("alice", t0 + secs(100)).is_err());
        // In the next window the 20 still weigh: 20 × (900 − e)/900 + 1 ≤ 5 from
        // e = 720 s, i.e. at 1620 s.
        assert!(rl.check_at("alice", t0 + secs(900)).is_err());
        assert!(rl.check_at("alice", t0 + secs(1500)).is_err());
        assert!(rl
            .check_at("alice", t0 + secs(1620) - Duration::from_nanos(1))
            .is_err());
        assert_eq!(rl.check_at("alice", t0 + secs(1620)), Ok(()));
        // Recording more while limited extends it (it is a counted event).
        rl.record_at("alice", t0 + secs(1620));
        assert!(rl.check_at("alice", t0 + secs(1620)).is_err());
    }

    #[test]
    fn record_saturates_instead_of_overflowing() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        rl.record_at("k", t0);
        {
            let mut shard = rl.lock_shard("k");
            shard.keys.get_mut("k").unwrap().curr = u32::MAX;
        }
        rl.record_at("k", t0);
        assert!(rl.check_at("k", t0 + secs(1000)).is_err());
        assert_eq!(rl.check_at("k", t0 + secs(1800)), Ok(()));
    }

    #[test]
    fn unhit_refunds_an_allowed_hit() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        assert!(rl.hit_at("alice", t0).is_err());
        rl.unhit_at("alice", t0);
        assert_eq!(rl.hit_at("alice", t0), Ok(()), "the refunded slot is free");
        assert!(rl.hit_at("alice", t0).is_err());
        // Never below zero; unknown keys are a no-op.
        for _ in 0..10 {
            rl.unhit_at("alice", t0);
        }
        rl.unhit_at("nobody", t0);
        assert!(rl.is_empty() || rl.len() == 1);
        for i in 0..5 {
            assert_eq!(rl.hit_at("alice", t0), Ok(()), "hit {i} after refunds");
        }
        assert!(rl.hit_at("alice", t0).is_err());
    }

    #[test]
    fn unhit_in_the_next_window_refunds_the_previous_window() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0 + secs(899)).unwrap();
        }
        // Just after the boundary the previous window weighs almost fully.
        let next = t0 + secs(900);
        assert!(rl.hit_at("alice", next).is_err());
        rl.unhit_at("alice", next);
        assert_eq!(rl.hit_at("alice", next), Ok(()));
        assert!(rl.hit_at("alice", next).is_err());
        // Two windows later there is nothing left to refund, and nothing breaks.
        rl.unhit_at("alice", t0 + secs(2700));
        for _ in 0..5 {
            rl.hit_at("alice", t0 + secs(2700)).unwrap();
        }
    }

    #[test]
    fn reset_forgets_the_key() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        rl.hit_at("bob", t0).unwrap();
        assert!(rl.hit_at("alice", t0).is_err());
        rl.reset("alice");
        rl.reset("nobody");
        assert_eq!(rl.len(), 1);
        for _ in 0..5 {
            rl.hit_at("alice", t0).unwrap();
        }
        assert!(rl.hit_at("alice", t0).is_err());
    }

    #[test]
    fn zero_max_or_zero_window_disables_the_limiter() {
        for rule in [
            Rule {
                max: 0,
                window_secs: 900,
            },
            Rule {
                max: 5,
                window_secs: 0,
            },
        ] {
            assert!(rule.is_disabled());
            let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
            for _ in 0..1000 {
                assert_eq!(rl.hit_at("k", t0), Ok(()));
                rl.record_at("k", t0);
            }
            assert_eq!(rl.check_at("k", t0), Ok(()));
            assert!(rl.is_empty());
            assert_eq!(rl.hit("k"), Ok(()));
        }
        assert!(!LOGIN.is_disabled());
    }

    #[test]
    fn max_of_one_and_a_one_second_window() {
        let rule = Rule {
            max: 1,
            window_secs: 1,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        rl.hit_at("k", t0).unwrap();
        assert_eq!(retry_after(rl.hit_at("k", t0)), secs(1));
        // At the next boundary the previous hit weighs fully: still refused until it has
        // decayed completely, at the second boundary.
        assert!(rl.hit_at("k", t0 + secs(1)).is_err());
        assert_eq!(rl.hit_at("k", t0 + secs(2)), Ok(()));
    }

    #[test]
    fn huge_rule_values_do_not_overflow() {
        let rule = Rule {
            max: u32::MAX,
            window_secs: u64::MAX,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        rl.hit_at("k", t0).unwrap();
        rl.record_at("k", t0 + secs(1_000_000));
        assert_eq!(rl.check_at("k", t0 + secs(1_000_000)), Ok(()));
        let rule = Rule {
            max: 1,
            window_secs: u64::MAX,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        rl.hit_at("k", t0).unwrap();
        assert_eq!(retry_after(rl.hit_at("k", t0)), secs(u64::MAX));
    }

    #[test]
    fn times_before_the_origin_or_out_of_order_are_tolerated() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        let later = t0 + secs(1000);
        for _ in 0..5 {
            rl.hit_at("k", later).unwrap();
        }
        // An instant read earlier on another thread reaching the lock late.
        assert!(rl.hit_at("k", t0 + secs(899)).is_err());
        assert!(rl.hit_at("k", t0).is_err());
        assert_eq!(
            rl.hit_at("j", t0.checked_sub(secs(1)).unwrap_or(t0)),
            Ok(())
        );
    }

    #[test]
    fn memory_stays_bounded_under_100k_rotating_keys() {
        let (rl, t0) = limiter(LOGIN, 64);
        for i in 0..100_000u64 {
            let key = format!("attacker-{i}");
            // All within one window: nothing is stale, so only eviction bounds memory.
            rl.hit_at(&key, t0 + Duration::from_millis(i)).unwrap();
            if i % 1000 == 0 {
                assert!(rl.len() <= 64, "len {} after {i}", rl.len());
            }
        }
        assert!(rl.len() <= 64);
        assert!(
            rl.len() >= 32,
            "eviction removes only a fraction: {}",
            rl.len()
        );
    }

    #[test]
    fn max_keys_is_a_hard_total_cap() {
        for max_keys in [0usize, 1, 3, 16, 17, 100, 1000] {
            let (rl, t0) = limiter(LOGIN, max_keys);
            for i in 0..5_000 {
                rl.hit_at(&format!("k{i}"), t0).unwrap();
            }
            assert!(
                rl.len() <= max_keys.max(1),
                "max_keys {max_keys}: len {}",
                rl.len()
            );
            assert!(!rl.is_empty());
        }
    }

    #[test]
    fn eviction_keeps_limited_keys_over_fresh_ones() {
        let (rl, t0) = limiter(LOGIN, 256);
        for _ in 0..5 {
            rl.hit_at("victim", t0).unwrap();
        }
        for i in 0..100_000u64 {
            rl.hit_at(&format!("flood-{i}"), t0 + secs(1)).unwrap();
        }
        assert!(rl.len() <= 256);
        assert!(
            rl.hit_at("victim", t0 + secs(2)).is_err(),
            "victim was evicted"
        );
    }

    #[test]
    fn eviction_prefers_stale_then_oldest() {
        // Drive one shard directly, with chosen caps, to make the choice visible.
        let (rl, _) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        let w = rl.window.unwrap();
        let mut shard = Shard::default();
        let sec = 1_000_000_000u64;
        // A stale key (two windows ago), a key at its limit, and fresh single-event keys.
        shard.keys.insert(
            "stale".into(),
            Entry {
                last: 0,
                prev: 0,
                curr: 5,
            },
        );
        shard.keys.insert(
            "limited".into(),
            Entry {
                last: 1800 * sec,
                prev: 0,
                curr: 5,
            },
        );
        for i in 0..14u64 {
            shard.keys.insert(
                format!("fresh-{i}").into(),
                Entry {
                    last: (1800 + i) * sec,
                    prev: 0,
                    curr: 1,
                },
            );
        }
        let now = u128::from(1900 * sec);
        // Room for 16: not full yet, nothing happens.
        shard.make_room(17, now, w);
        assert_eq!(shard.keys.len(), 16);
        // Full at 16: the sweep frees the stale key and that is enough.
        shard.make_room(16, now, w);
        assert_eq!(shard.keys.len(), 15);
        assert!(!shard.keys.contains_key("stale"));
        // Full at 8: evict 15 + 1 − 8 + 1 = 9 of the 14 fresh keys, oldest first.
        shard.make_room(8, now, w);
        assert_eq!(shard.keys.len(), 6);
        assert!(shard.keys.contains_key("limited"));
        for i in 0..9 {
            assert!(
                !shard.keys.contains_key(format!("fresh-{i}").as_str()),
                "{i}"
            );
        }
        for i in 9..14 {
            assert!(
                shard.keys.contains_key(format!("fresh-{i}").as_str()),
                "{i}"
            );
        }
    }

    #[test]
    fn stale_keys_are_swept_periodically() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        for i in 0..20_000 {
            rl.hit_at(&format!("old-{i}"), t0).unwrap();
        }
        assert_eq!(rl.len(), 20_000);
        // Two windows later the old keys are stale; enough operations on every shard
        // (about 1250 each) pass a sweep, which drops them.
        let later = t0 + secs(1800);
        for i in 0..20_000 {
            rl.hit_at(&format!("new-{i}"), later).unwrap();
        }
        assert_eq!(rl.len(), 20_000);
    }

    #[test]
    fn sweeping_never_forgets_a_key_that_still_counts() {
        let (rl, t0) = limiter(LOGIN, DEFAULT_MAX_KEYS);
        // At its limit at the end of window 0; in window 1 it still weighs.
        for _ in 0..5 {
            rl.hit_at("victim", t0 + secs(899)).unwrap();
        }
        for i in 0..40_000 {
            rl.hit_at(&format!("other-{i}"), t0 + secs(900)).unwrap();
        }
        assert!(rl.hit_at("victim", t0 + secs(900)).is_err());
    }

    #[test]
    fn decide_agrees_with_the_exact_wait() {
        // For many states, the event is refused one nanosecond before `wait` and allowed at
        // it (when nothing is counted in between).
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        for _ in 0..20_000 {
            let max = 1 + next(10) as u32;
            let secs = 1 + next(100);
            let rule = Rule {
                max,
                window_secs: secs,
            };
            let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
            let w = rl.window.unwrap();
            let start = next(secs * 1_000_000_000);
            let (prev, curr) = (
                next(3 * u64::from(max)) as u32,
                next(2 * u64::from(max)) as u32,
            );
            // Window 1 holds `prev`, window 2 `curr`, both recorded at `start` into them.
            for _ in 0..prev {
                rl.record_at("k", t0 + Duration::from_nanos(w.len as u64 + start / 2));
            }
            for _ in 0..curr {
                rl.record_at("k", t0 + Duration::from_nanos(2 * w.len as u64 + start / 2));
            }
            let now = t0 + Duration::from_nanos(2 * w.len as u64 + start);
            let wait = w.wait(prev, curr, u128::from(start));
            match rl.check_at("k", now) {
                Ok(()) => assert_eq!(wait, 0, "{rule:?} {prev} {curr} {start}"),
                Err(l) => {
                    assert!(wait > 0 && wait <= 2 * w.len);
                    let at = now + Duration::from_nanos(wait as u64);
                    assert!(rl.check_at("k", at - Duration::from_nanos(1)).is_err());
                    assert_eq!(rl.check_at("k", at), Ok(()), "{rule:?} {prev} {curr}");
                    let expected = wait.div_ceil(NANOS_PER_SEC).clamp(1, u128::from(secs));
                    assert_eq!(l.retry_after, Duration::from_secs(expected as u64));
                }
            }
        }
    }

    #[test]
    fn concurrent_hits_on_one_key_allow_exactly_max() {
        let rule = Rule {
            max: 50,
            window_secs: 60,
        };
        let (rl, t0) = limiter(rule, DEFAULT_MAX_KEYS);
        let allowed = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..100 {
                        if rl.hit_at("shared", t0 + secs(1)).is_ok() {
                            allowed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        let _ = rl.hit_at(&format!("{:?}", std::thread::current().id()), t0);
                    }
                });
            }
        });
        assert_eq!(allowed.into_inner(), 50);
    }

    #[test]
    fn real_clock_api_works() {
        let rl = MemoryLimiter::new(LOGIN);
        assert!(rl.is_empty());
        for _ in 0..5 {
            rl.hit("alice").unwrap();
        }
        let limited = rl.check("alice").unwrap_err();
        assert!(limited.retry_after >= secs(1) && limited.retry_after <= secs(900));
        assert!(rl.hit("alice").is_err());
        rl.record("bob");
        assert_eq!(rl.len(), 2);
        rl.reset("alice");
        assert_eq!(rl.check("alice"), Ok(()));
        assert_eq!(rl.rule(), LOGIN);
        assert!(format!("{rl:?}").contains("max_keys: 65536"));
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MemoryLimiter>();
    }

    #[test]
    fn rule_serializes_as_max_and_window_secs() {
        let rule: Rule = serde_json::from_str(r#"{"max":5,"window_secs":900}"#).unwrap();
        assert_eq!(rule, LOGIN);
        assert_eq!(
            serde_json::to_string(&LOGIN).unwrap(),
            r#"{"max":5,"window_secs":900}"#
        );
    }
}
