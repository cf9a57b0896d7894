//! Presence shared by every node on one Redis (`redis_url`): leases with a TTL, renewed by
//! the node that holds the connection (after Centrifuge's ZSET + HASH presence).
//!
//! # In Redis
//!
//! Keys start with [`KEY_PREFIX`] (`palaver:presence:`); times are milliseconds since the
//! Unix epoch on Redis's clock (`TIME`), so the nodes' clocks need not agree.
//!
//! - `l:<user_id>`, a ZSET: one member per open connection of the user on any node,
//!   `<node>:<conn>` (the node's random id, the hub's connection id), scored by when its
//!   lease expires. Expires itself twice the TTL after its last write.
//! - `u:<user_id>`, a HASH: `on` (`1` while the user is announced online, else `0`), `s`
//!   and `t` (the chosen status and status text), `ls` (last seen). Expires
//!   [`STATE_TTL`] after its last write; every renewal writes it.
//! - `leases`, a ZSET of every lease of the cluster, `<node>:<conn> <user_id>`, with the
//!   same scores: the sweep's index of what expires next.
//!
//! # Operations
//!
//! Each is one Lua script, atomic in Redis, so "was this the user's first connection, or
//! their last?" has one answer however many nodes ask at once, and each transition is
//! announced by exactly one node:
//!
//! - connect: adds the lease; the user goes online (`on` 0 → 1) unless already.
//! - disconnect: removes the lease; if no unexpired lease is left and `on` is 1, the user
//!   goes offline (`on` 1 → 0, `ls` set) and this node announces it.
//! - renewal, every `presence.lease_refresh_secs` by each node for all its connections:
//!   pushes each lease's expiry to `now + presence.lease_ttl_secs` (re-adding it if
//!   Redis lost it, when the user goes online again if it had to).
//! - sweep, on the same tick by every node: pops the leases that expired from `leases`,
//!   each popped by exactly one node; a user left with no unexpired lease and `on` 1 goes
//!   offline, announced by that node, with `ls` the expiry of their last lease. So a node
//!   killed without closing its connections has its users announced offline by another
//!   within `lease_ttl_secs + lease_refresh_secs`.
//!
//! The renewal and the changes of this node's connections exclude each other (a
//! read-write lock), so that a renewal never re-adds the lease of a connection that
//! closed meanwhile. The scripts name keys they compute (the sweep learns its users from
//! `leases`), so they need a standalone Redis (or one primary), not Redis Cluster.
//!
//! # Failures
//!
//! Calls go through `RedisConn::call_as`: bounded, backed off, logged, counted in
//! `palaver_presence_redis_errors_total`, never returned to clients. A connect or a
//! renewal that failed is made good by the next renewal (the lease is re-added and the
//! user announced online); a disconnect that failed leaves a lease that expires and is
//! swept (the user is announced offline late). While Redis does not answer, `get` says
//! online for users with a connection on this node, offline for others.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use palaver_protocol::ws::{PresenceInfo, PresenceStatus};
use redis::Script;

use super::{change, visible, Change, Presence};
use crate::config::PresenceConfig;
use crate::hub::ConnId;
use crate::redis_conn::{Caller, RedisConn};

/// The prefix of every presence key.
pub const KEY_PREFIX: &str = "palaver:presence:";

/// How long a user's `u:` hash (chosen status, last seen) outlives its last write.
pub const STATE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// Leases renewed per script call.
const RENEW_BATCH: usize = 500;

/// Expired leases popped per sweep call, and most calls per tick.
const SWEEP_BATCH: usize = 500;
const SWEEP_CALLS: usize = 20;

/// The Lua preamble: `now`, Redis's time in milliseconds.
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"
    };
}

/// Connect. KEYS: the user's leases, the user's state, `leases`. ARGV: the lease
/// (`node:conn`), the user id, the lease TTL and the state TTL in ms. Returns `{on
/// before (0|1), s, t, ls}` (`''` for none).
static CONNECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local ttl = tonumber(ARGV[3])
local exp = now + ttl
redis.call('ZADD', KEYS[1], exp, ARGV[1])
if redis.call('PTTL', KEYS[1]) < 2 * ttl then redis.call('PEXPIRE', KEYS[1], 2 * ttl) end
redis.call('ZADD', KEYS[3], exp, ARGV[1] .. ' ' .. ARGV[2])
local h = redis.call('HMGET', KEYS[2], 'on', 's', 't', 'ls')
if h[1] ~= '1' then redis.call('HSET', KEYS[2], 'on', '1') end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return {h[1] == '1' and 1 or 0, h[2] or '', h[3] or '', h[4] or ''}
"
    ))
});

/// Disconnect. KEYS as [`CONNECT`]. ARGV: the lease, the user id, the time of the
/// disconnection and the state TTL in ms. Returns `{went offline (0|1), s, t, ls before}`.
static DISCONNECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1] .. ' ' .. ARGV[2])
local h = redis.call('HMGET', KEYS[2], 'on', 's', 't', 'ls')
local last = 0
if h[1] == '1' and redis.call('ZCOUNT', KEYS[1], string.format('(%d', now), '+inf') == 0 then
  redis.call('HSET', KEYS[2], 'on', '0', 'ls', ARGV[3])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
  last = 1
end
return {last, h[2] or '', h[3] or '', h[4] or ''}
"
    ))
});

/// Set the chosen status. KEYS: the user's state. ARGV: the status, the text (`''`:
/// none), the state TTL in ms. Returns `{on, s, t, ls}` as they were before.
static SET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local h = redis.call('HMGET', KEYS[1], 'on', 's', 't', 'ls')
redis.call('HSET', KEYS[1], 's', ARGV[1])
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 't') else redis.call('HSET', KEYS[1], 't', ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {h[1] == '1' and 1 or 0, h[2] or '', h[3] or '', h[4] or ''}
",
    )
});

/// Renew leases. KEYS: `leases`. ARGV: the key prefix, the lease TTL and the state TTL
/// in ms, then pairs of lease and user id. Returns, flat, `{user, s, t, ls}` for each user
/// who was not online (whose lease Redis had lost): they are online now.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local ttl = tonumber(ARGV[2])
local exp = now + ttl
local out = {}
for i = 4, #ARGV, 2 do
  local lease, user = ARGV[i], ARGV[i + 1]
  local lk, uk = ARGV[1] .. 'l:' .. user, ARGV[1] .. 'u:' .. user
  redis.call('ZADD', lk, exp, lease)
  if redis.call('PTTL', lk) < 2 * ttl then redis.call('PEXPIRE', lk, 2 * ttl) end
  redis.call('ZADD', KEYS[1], exp, lease .. ' ' .. user)
  local h = redis.call('HMGET', uk, 'on', 's', 't', 'ls')
  if h[1] ~= '1' then
    redis.call('HSET', uk, 'on', '1')
    out[#out + 1] = user
    out[#out + 1] = h[2] or ''
    out[#out + 1] = h[3] or ''
    out[#out + 1] = h[4] or ''
  end
  redis.call('PEXPIRE', uk, ARGV[3])
end
return out
"
    ))
});

/// Sweep. KEYS: `leases`. ARGV: the key prefix, the most leases to pop, the state TTL in
/// ms. Pops the expired leases; returns, flat, `{popped, then {user, s, t, ls before, ls}
/// for each user who went offline}`.
static SWEEP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        now_ms!(),
        r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {#due / 2}
for i = 1, #due, 2 do
  local entry, exp = due[i], tonumber(due[i + 1])
  redis.call('ZREM', KEYS[1], entry)
  local sp = string.find(entry, ' ', 1, true)
  if sp then
    local lease, user = string.sub(entry, 1, sp - 1), string.sub(entry, sp + 1)
    local lk, uk = ARGV[1] .. 'l:' .. user, ARGV[1] .. 'u:' .. user
    local score = redis.call('ZSCORE', lk, lease)
    if score and tonumber(score) > now then
      -- Renewed: it stays indexed under its new expiry.
      redis.call('ZADD', KEYS[1], score, entry)
    else
      if score then redis.call('ZREM', lk, lease) end
      if redis.call('ZCOUNT', lk, string.format('(%d', now), '+inf') == 0 then
        local h = redis.call('HMGET', uk, 'on', 's', 't', 'ls')
        if h[1] == '1' then
          local last = exp
          local later = redis.call('ZREVRANGEBYSCORE', lk, now, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
          if later[2] and tonumber(later[2]) > last then last = tonumber(later[2]) end
          redis.call('HSET', uk, 'on', '0', 'ls', string.format('%d', last))
          redis.call('PEXPIRE', uk, ARGV[3])
          out[#out + 1] = user
          out[#out + 1] = h[2] or ''
          out[#out + 1] = h[3] or ''
          out[#out + 1] = h[4] or ''
          out[#out + 1] = string.format('%d', last)
        end
      end
    end
  end
end
return out
"
    ))
});

/// A user's state as Redis holds it.
struct Stored {
    chosen: Option<PresenceStatus>,
    status_text: Option<String>,
    last_seen: Option<String>,
}

impl Stored {
    /// From the `s`, `t` and `ls` fields (`''` or absent: none).
    fn parse(s: &str, t: &str, ls: &str) -> Stored {
        Stored {
            chosen: parse_status(s),
            status_text: (!t.is_empty()).then(|| t.to_owned()),
            last_seen: ls.parse().ok().and_then(rfc3339_of_ms),
        }
    }

    /// What others see, `online` or not.
    fn visible(&self, user_id: &str, online: bool) -> PresenceInfo {
        visible(
            user_id,
            online,
            self.chosen,
            self.status_text.as_deref(),
            self.last_seen.as_deref(),
        )
    }
}

/// A chosen status as stored in `s`.
fn status_str(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "online",
        PresenceStatus::Away => "away",
        PresenceStatus::Dnd => "dnd",
        PresenceStatus::Offline => "offline",
        PresenceStatus::Invisible => "invisible",
    }
}

/// The chosen status stored in `s`, if any.
fn parse_status(s: &str) -> Option<PresenceStatus> {
    Some(match s {
        "online" => PresenceStatus::Online,
        "away" => PresenceStatus::Away,
        "dnd" => PresenceStatus::Dnd,
        "offline" => PresenceStatus::Offline,
        "invisible" => PresenceStatus::Invisible,
        _ => return None,
    })
}

/// Milliseconds since the Unix epoch as RFC 3339 UTC (see [`crate::service::rfc3339`]).
fn rfc3339_of_ms(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .map(crate::service::rfc3339)
}

/// An RFC 3339 time in milliseconds since the Unix epoch.
fn ms_of_rfc3339(at: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Milliseconds in `d`, saturated.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Presence in the Redis every node shares; see the [module docs](self).
pub struct RedisPresence {
    redis: Arc<RedisConn>,
    /// [`KEY_PREFIX`], or a test's own.
    prefix: String,
    /// This node's id in lease names (a UUIDv7, new at every start).
    node: String,
    /// How often this node renews its leases and sweeps.
    refresh_every: Duration,
    lease_ttl: Duration,
    /// This node's connections that hold a lease: the renewal's list.
    local: Mutex<HashMap<ConnId, String>>,
    /// Held shared by connects and disconnects, exclusively by the renewal.
    gate: tokio::sync::RwLock<()>,
}

impl std::fmt::Debug for RedisPresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPresence")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl RedisPresence {
    /// Presence in `redis` with the lease timing of `config`, keys under [`KEY_PREFIX`].
    ///
    /// # Errors
    /// `lease_refresh_secs` is 0, or `lease_ttl_secs` is not more than it.
    pub fn new(redis: Arc<RedisConn>, config: &PresenceConfig) -> anyhow::Result<Self> {
        if config.lease_refresh_secs == 0 || config.lease_ttl_secs <= config.lease_refresh_secs {
            anyhow::bail!(
                "presence.lease_ttl_secs ({}) must be more than presence.lease_refresh_secs \
                 ({}), which must be at least 1 (3 times more is advised)",
                config.lease_ttl_secs,
                config.lease_refresh_secs
            );
        }
        Ok(Self::with_timing(
            redis,
            KEY_PREFIX,
            Duration::from_secs(config.lease_refresh_secs),
            Duration::from_secs(config.lease_ttl_secs),
        ))
    }

    /// Presence with keys under `prefix`, renewing every `refresh_every` leases of
    /// `lease_ttl` (tests use their own prefix and short times).
    pub fn with_timing(
        redis: Arc<RedisConn>,
        prefix: &str,
        refresh_every: Duration,
        lease_ttl: Duration,
    ) -> Self {
        RedisPresence {
            redis,
            prefix: prefix.to_owned(),
            node: uuid::Uuid::now_v7().to_string(),
            refresh_every,
            lease_ttl,
            local: Mutex::default(),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    fn leases_key(&self, user_id: &str) -> String {
        format!("{}l:{user_id}", self.prefix)
    }

    fn state_key(&self, user_id: &str) -> String {
        format!("{}u:{user_id}", self.prefix)
    }

    fn index_key(&self) -> String {
        format!("{}leases", self.prefix)
    }

    /// The lease name of this node's connection `conn`.
    fn lease(&self, conn: ConnId) -> String {
        format!("{}:{conn}", self.node)
    }

    /// Renews every lease of this node; returns the users who went online again.
    async fn renew(&self) -> Vec<Change> {
        let _gate = self.gate.write().await;
        let leases: Vec<(String, String)> = self
            .local
            .lock()
            .expect("presence lock poisoned")
            .iter()
            .map(|(conn, user)| (self.lease(*conn), user.clone()))
            .collect();
        let mut changes = Vec::new();
        for chunk in leases.chunks(RENEW_BATCH) {
            let mut call = RENEW.prepare_invoke();
            call.key(self.index_key())
                .arg(&self.prefix)
                .arg(ms(self.lease_ttl))
                .arg(ms(STATE_TTL));
            for (lease, user) in chunk {
                call.arg(lease).arg(user);
            }
            let Some(back) = self
                .redis
                .call_as(
                    Caller::Presence,
                    "presence renewal",
                    |mut conn| async move { call.invoke_async::<Vec<String>>(&mut conn).await },
                )
                .await
            else {
                break;
            };
            for user in back.chunks_exact(4) {
                let stored = Stored::parse(&user[1], &user[2], &user[3]);
                let before = stored.visible(&user[0], false);
                changes.extend(change(&before, stored.visible(&user[0], true), false));
            }
        }
        changes
    }

    /// Pops the expired leases of every node; returns the users who went offline.
    async fn sweep(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        for _ in 0..SWEEP_CALLS {
            let index = self.index_key();
            let prefix = self.prefix.clone();
            let Some(back) = self
                .redis
                .call_as(Caller::Presence, "presence sweep", |mut conn| async move {
                    SWEEP
                        .key(index)
                        .arg(prefix)
                        .arg(SWEEP_BATCH)
                        .arg(ms(STATE_TTL))
                        .invoke_async::<Vec<String>>(&mut conn)
                        .await
                })
                .await
            else {
                break;
            };
            let popped: usize = back.first().and_then(|n| n.parse().ok()).unwrap_or(0);
            for user in back.get(1..).unwrap_or_default().chunks_exact(5) {
                let stored = Stored::parse(&user[1], &user[2], &user[3]);
                let before = stored.visible(&user[0], true);
                let after = Stored {
                    last_seen: user[4].parse().ok().and_then(rfc3339_of_ms),
                    ..stored
                };
                changes.extend(change(&before, after.visible(&user[0], false), true));
            }
            if popped < SWEEP_BATCH {
                break;
            }
        }
        changes
    }
}

#[async_trait]
impl Presence for RedisPresence {
    async fn connected(&self, user_id: &str, conn: ConnId) -> Option<Change> {
        let _gate = self.gate.read().await;
        self.local
            .lock()
            .expect("presence lock poisoned")
            .insert(conn, user_id.to_owned());
        let keys = (
            self.leases_key(user_id),
            self.state_key(user_id),
            self.index_key(),
        );
        let args = (self.lease(conn), user_id.to_owned());
        let ttl = ms(self.lease_ttl);
        let (was, s, t, ls) = self
            .redis
            .call_as(Caller::Presence, "presence connect", |mut c| async move {
                CONNECT
                    .key(keys.0)
                    .key(keys.1)
                    .key(keys.2)
                    .arg(args.0)
                    .arg(args.1)
                    .arg(ttl)
                    .arg(ms(STATE_TTL))
                    .invoke_async::<(i64, String, String, String)>(&mut c)
                    .await
            })
            .await?;
        let stored = Stored::parse(&s, &t, &ls);
        change(
            &stored.visible(user_id, was == 1),
            stored.visible(user_id, true),
            false,
        )
    }

    async fn disconnected(&self, user_id: &str, conn: ConnId, at: &str) -> Option<Change> {
        let _gate = self.gate.read().await;
        self.local
            .lock()
            .expect("presence lock poisoned")
            .remove(&conn);
        let keys = (
            self.leases_key(user_id),
            self.state_key(user_id),
            self.index_key(),
        );
        let at_ms = ms_of_rfc3339(at).unwrap_or_else(|| {
            i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis(),
            )
            .unwrap_or(i64::MAX)
        });
        let args = (self.lease(conn), user_id.to_owned());
        let (last, s, t, ls) = self
            .redis
            .call_as(
                Caller::Presence,
                "presence disconnect",
                |mut c| async move {
                    DISCONNECT
                        .key(keys.0)
                        .key(keys.1)
                        .key(keys.2)
                        .arg(args.0)
                        .arg(args.1)
                        .arg(at_ms)
                        .arg(ms(STATE_TTL))
                        .invoke_async::<(i64, String, String, String)>(&mut c)
                        .await
                },
            )
            .await?;
        if last != 1 {
            return None;
        }
        let stored = Stored::parse(&s, &t, &ls);
        let before = stored.visible(user_id, true);
        let after = Stored {
            last_seen: rfc3339_of_ms(at_ms),
            ..stored
        };
        change(&before, after.visible(user_id, false), true)
    }

    async fn set(
        &self,
        user_id: &str,
        status: PresenceStatus,
        status_text: Option<String>,
    ) -> Option<Change> {
        let key = self.state_key(user_id);
        let text = status_text.clone().unwrap_or_default();
        let (on, s, t, ls) = self
            .redis
            .call_as(Caller::Presence, "presence set", |mut conn| async move {
                SET.key(key)
                    .arg(status_str(status))
                    .arg(text)
                    .arg(ms(STATE_TTL))
                    .invoke_async::<(i64, String, String, String)>(&mut conn)
                    .await
            })
            .await?;
        let before = Stored::parse(&s, &t, &ls);
        let after = Stored {
            chosen: Some(status),
            status_text,
            last_seen: before.last_seen.clone(),
        };
        change(
            &before.visible(user_id, on == 1),
            after.visible(user_id, on == 1),
            false,
        )
    }

    async fn get(&self, user_id: &str) -> PresenceInfo {
        let key = self.state_key(user_id);
        let got = self
            .redis
            .call_as(Caller::Presence, "presence get", |mut conn| async move {
                redis::cmd("HMGET")
                    .arg(key)
                    .arg("on")
                    .arg("s")
                    .arg("t")
                    .arg("ls")
                    .query_async::<Vec<Option<String>>>(&mut conn)
                    .await
            })
            .await;
        match got.as_deref() {
            Some([on, s, t, ls]) => {
                let field = |f: &Option<String>| f.clone().unwrap_or_default();
                Stored::parse(&field(s), &field(t), &field(ls))
                    .visible(user_id, on.as_deref() == Some("1"))
            }
            // Redis does not answer: this node's own connections are all it knows.
            _ => {
                let here = self
                    .local
                    .lock()
                    .expect("presence lock poisoned")
                    .values()
                    .any(|u| u == user_id);
                visible(user_id, here, None, None, None)
            }
        }
    }

    async fn is_connected(&self, user_id: &str) -> bool {
        let key = self.state_key(user_id);
        let on = self
            .redis
            .call_as(
                Caller::Presence,
                "presence is_connected",
                |mut conn| async move {
                    redis::cmd("HGET")
                        .arg(key)
                        .arg("on")
                        .query_async::<Option<String>>(&mut conn)
                        .await
                },
            )
            .await;
        match on {
            Some(on) => on.as_deref() == Some("1"),
            // Redis does not answer: this node's own connections are all it knows.
            None => self
                .local
                .lock()
                .expect("presence lock poisoned")
                .values()
                .any(|u| u == user_id),
        }
    }

    fn tick_every(&self) -> Option<Duration> {
        Some(self.refresh_every)
    }

    async fn tick(&self) -> Vec<Change> {
        let mut changes = self.renew().await;
        changes.extend(self.sweep().await);
        changes
    }
}

#[cfg(test)]
mod tests {
    //! Against a real Redis: the machine's at 127.0.0.1:6379 (`PALAVER_TEST_REDIS_URL`
    //! overrides it), each test under its own random key prefix, several presences on one
    //! prefix standing for several nodes.

    use super::*;
    use crate::metrics::Metrics;

    fn redis_url() -> String {
        std::env::var("PALAVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// `n` nodes sharing a fresh prefix, renewing every 100 ms leases of 1 s.
    fn nodes(n: usize) -> Vec<RedisPresence> {
        let prefix = format!("palaver:test:{}:presence:", uuid::Uuid::now_v7());
        (0..n)
            .map(|_| {
                let conn = RedisConn::new(&redis_url(), Arc::new(Metrics::default())).unwrap();
                RedisPresence::with_timing(
                    Arc::new(conn),
                    &prefix,
                    Duration::from_millis(100),
                    Duration::from_secs(1),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn only_the_first_connection_and_the_last_disconnection_cluster_wide_change_anything() {
        let nodes = nodes(2);
        let online = nodes[0].connected("a", 1).await.expect("first connection");
        assert_eq!(online.info.status, PresenceStatus::Online);
        assert!(!online.went_offline);
        assert!(
            nodes[1].connected("a", 1).await.is_none(),
            "same conn id, other node"
        );
        assert!(nodes[0].connected("a", 2).await.is_none());
        assert_eq!(nodes[1].get("a").await.status, PresenceStatus::Online);
        assert!(
            nodes[1].is_connected("a").await,
            "connected on the other node"
        );
        assert!(!nodes[1].is_connected("nobody").await);
        assert!(nodes[0]
            .disconnected("a", 1, "2026-11-21T10:00:00.000Z")
            .await
            .is_none());
        assert!(nodes[1]
            .disconnected("a", 1, "2026-11-21T10:00:01.000Z")
            .await
            .is_none());
        let gone = nodes[0]
            .disconnected("a", 2, "2026-11-21T10:00:02.000Z")
            .await
            .expect("the last connection");
        assert!(gone.went_offline);
        assert_eq!(gone.info.status, PresenceStatus::Offline);
        assert_eq!(
            gone.info.last_seen.as_deref(),
            Some("2026-11-21T10:00:02.000Z")
        );
        let seen = nodes[1].get("a").await;
        assert!(!nodes[1].is_connected("a").await);
        assert_eq!(seen.status, PresenceStatus::Offline);
        assert_eq!(seen.last_seen.as_deref(), Some("2026-11-21T10:00:02.000Z"));
        assert_eq!(nodes[0].get("nobody").await.status, PresenceStatus::Offline);
    }

    #[tokio::test]
    async fn a_chosen_status_is_shared_and_invisible_looks_offline() {
        let nodes = nodes(2);
        nodes[0].connected("a", 1).await;
        let dnd = nodes[1]
            .set("a", PresenceStatus::Dnd, Some("focus".into()))
            .await
            .expect("visible change");
        assert_eq!(
            (dnd.info.status, dnd.info.status_text.as_deref()),
            (PresenceStatus::Dnd, Some("focus"))
        );
        assert_eq!(nodes[0].get("a").await, dnd.info);
        let hidden = nodes[0]
            .set("a", PresenceStatus::Invisible, Some("x".into()))
            .await
            .unwrap();
        assert_eq!(hidden.info.status, PresenceStatus::Offline);
        assert_eq!(
            hidden.info.status_text, None,
            "no text leaks while invisible"
        );
        assert!(
            nodes[1].connected("a", 7).await.is_none(),
            "an invisible user's connection shows nothing"
        );
        assert!(nodes[1]
            .set("a", PresenceStatus::Invisible, None)
            .await
            .is_none());
    }

    #[tokio::test]
    async fn a_dead_nodes_users_are_swept_offline_once_and_live_leases_are_kept() {
        let nodes = nodes(3);
        nodes[0].connected("a", 1).await.expect("a online");
        nodes[0].connected("b", 2).await.expect("b online");
        nodes[1].connected("b", 1).await;
        // Node 0 dies: it renews nothing from now on. Node 1 keeps renewing.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut swept = Vec::new();
        while swept.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "never swept");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (one, two) = tokio::join!(nodes[1].tick(), nodes[2].tick());
            swept.extend(one);
            swept.extend(two);
        }
        // A few more rounds: nothing is announced twice.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (one, two) = tokio::join!(nodes[1].tick(), nodes[2].tick());
            swept.extend(one);
            swept.extend(two);
        }
        assert_eq!(swept.len(), 1, "{swept:?}");
        assert_eq!(swept[0].info.user_id, "a");
        assert!(swept[0].went_offline);
        assert_eq!(swept[0].info.status, PresenceStatus::Offline);
        assert!(swept[0].info.last_seen.is_some());
        assert_eq!(nodes[2].get("a").await.status, PresenceStatus::Offline);
        assert_eq!(
            nodes[2].get("b").await.status,
            PresenceStatus::Online,
            "b keeps the lease node 1 renews"
        );
    }

    #[tokio::test]
    async fn a_lease_redis_lost_is_renewed_and_its_user_announced_again() {
        let nodes = nodes(1);
        let node = &nodes[0];
        node.connected("a", 1).await.expect("online");
        // Redis loses every key (a restart without persistence).
        let leases = node.leases_key("a");
        let state = node.state_key("a");
        node.redis
            .call_as(Caller::Presence, "test", |mut conn| async move {
                redis::cmd("DEL")
                    .arg(leases)
                    .arg(state)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await
            .unwrap();
        assert_eq!(node.get("a").await.status, PresenceStatus::Offline);
        let back = node.tick().await;
        assert_eq!(back.len(), 1, "{back:?}");
        assert_eq!(back[0].info.status, PresenceStatus::Online);
        assert_eq!(node.get("a").await.status, PresenceStatus::Online);
        assert!(node.tick().await.is_empty(), "announced once");
    }
}
