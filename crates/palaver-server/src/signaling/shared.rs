//! Calls every node can read: the registry of nodes that share a Redis (`redis_url`).
//!
//! With several nodes, the participants of one call may be connected to different nodes,
//! and any of them may change it (a join on node 1, a leave on node 2). So the calls are
//! not kept in a node's memory ([`super::Registry`]) but in Redis, and every change runs
//! the same synchronous state machine ([`Call`]) on a copy read from there, then writes it
//! back with a compare-and-set. The rules are therefore exactly those of a single node.
//!
//! # Keys (prefix `palaver:`)
//! - `call:{call_id}`: a hash, `v` (the call's version, from 1) and `s` (the [`Call`] as
//!   JSON). Deleted when the call ends.
//! - `call_of_room:{room_id}` and `call_of_conn:{conn}`: the call going on in a room, and
//!   the call a connection takes part in (at most one each).
//! - `calls_on_node:{n}`: the calls with a participant connected to node `n`.
//! - `call_deadlines`: a sorted set of the calls still ringing, scored by their ring
//!   deadline (Unix milliseconds).
//! - `nodes`: a sorted set of node numbers, scored by their last heartbeat (Unix
//!   milliseconds); `node_seq`: the counter that numbers nodes.
//!
//! # A change
//! A change reads `call:{id}` (version `v`), runs the state machine, and hands the result
//! to one Lua script ([`COMMIT`]) that, atomically: checks that the version is still `v`
//! (else the change is made again on a fresh read, up to [`TRIES`] times); checks that
//! each connection joining is in no call and, for a start, that the room has none (else
//! the request is refused with the call that holds them); writes version `v + 1` (or
//! deletes an ended call) and every index above; and `PUBLISH`es the change's events,
//! in order, as broker notes ([`crate::broker`]'s `shared_note`).
//!
//! Publishing from inside the commit is what keeps the order of one call's events across
//! nodes: Redis runs scripts one at a time and delivers a channel's messages to each
//! subscriber in the order they were published, so every node hears the events of a call
//! in the order its changes were committed, whichever node made them (the memory
//! registry keeps the same promise with its [`super::Batch`] turns). Every node delivers
//! these notes from its subscription, the committing one included. An `rtc.signal` is
//! published by the same script, with the version check and no write, so it is never
//! relayed to a participant who has left, nor ahead of an earlier change.
//!
//! Call log entries are stored by the node that made the change, after the commit; on
//! one node they keep the call's order, across nodes two entries of changes made within
//! a few milliseconds on different nodes (an answer and a hang-up) may be stored in
//! either order.
//!
//! # Nodes that die
//! Each node takes a number at start ([`SharedRegistry::connect`]: `INCR node_seq`),
//! carried in the high bits of its connection ids ([`crate::hub::node_of`]), and records
//! a heartbeat in `nodes` every few seconds (which also keeps `node_seq` above the
//! numbers in use, should Redis lose it). Every node sweeps (see
//! `service::calls::sweep`): the calls whose ring deadline has passed time out (whichever
//! node gets there first; the version check makes it happen once), and the participants
//! of a node whose heartbeat is older than [`NODE_LEASE_MS`] leave their calls
//! (`disconnected`), as if their connections had closed. Then the node is forgotten.
//!
//! Not handled: a node cut off from Redis for longer than the lease has its participants
//! taken out of their calls although their sockets are still open; those clients learn it
//! from their next call request (`not_found`). A Redis that loses its data (a restart
//! without persistence) ends every call without telling anyone. Redis Cluster is not
//! supported (the script touches keys of many slots).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context as _;
use palaver_protocol::ws::{CallJoined, SendSignal};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::call::{Call, EndBy, Joiner, LeaveReason, Moment, NewCall};
use super::{CallError, Effect, LogEntry, Target};
use crate::broker::{Envelope, Topic};
use crate::hub::{node_of, ConnId, MAX_NODE};

/// The prefix of every key.
pub const PREFIX: &str = "palaver:";

/// How long a node's heartbeat counts: a node not heard from for this long is dead, and
/// its participants leave their calls.
pub const NODE_LEASE_MS: i64 = 15_000;

/// How many times a change is made again after another node changed the call first.
pub const TRIES: usize = 16;

/// A node not heard from for this long is no longer looked at (its deployment is gone,
/// or it was cleared already); a ring deadline this far past is dropped. A room whose
/// call outlived all its nodes is freed by the next start in it
/// ([`SharedRegistry::end_if_orphaned`]).
pub const FORGOTTEN_AFTER_MS: i64 = 3_600_000;

/// How long a node waits for Redis at start to take its number.
const FIRST_CONTACT: Duration = Duration::from_secs(3);

/// Node numbers from `node_seq` stay below this; a node that cannot reach Redis at start
/// takes a random number at or above it.
const COUNTED_NODES: u32 = 1 << 23;

/// The commit of one change (see the module docs). `KEYS[1]` is the call's hash;
/// `ARGV[1]` the version the change was made on (`0`: the call must not exist). Then
/// operations, each a name and its arguments:
/// - `absent KEY`: the change needs `KEY` unset (checked before anything is written);
/// - `state VERSION JSON`: the call's new version and state; `drop`: delete the call;
/// - `set KEY VALUE`; `unset KEY VALUE` (only if `KEY` still holds `VALUE`);
/// - `sadd KEY MEMBER`; `srem KEY MEMBER`; `zadd KEY SCORE MEMBER`; `zrem KEY MEMBER`;
/// - `pub CHANNEL PAYLOAD`.
///
/// Returns `{'ok'}`, `{'moved'}` (the version is not `ARGV[1]`) or `{'busy', KEY, VALUE}`
/// (an `absent` key holds `VALUE`); nothing is written unless `ok`.
const COMMIT: &str = r"
local width = {absent = 2, state = 3, drop = 1, set = 3, unset = 3, sadd = 3, srem = 3,
               zadd = 4, zrem = 3, pub = 3}
local v = redis.call('HGET', KEYS[1], 'v') or '0'
if v ~= ARGV[1] then return {'moved'} end
local i = 2
while i <= #ARGV do
  local op = ARGV[i]
  if not width[op] then return redis.error_reply('unknown operation ' .. op) end
  if op == 'absent' then
    local held = redis.call('GET', ARGV[i + 1])
    if held then return {'busy', ARGV[i + 1], held} end
  end
  i = i + width[op]
end
i = 2
while i <= #ARGV do
  local op, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'state' then redis.call('HSET', KEYS[1], 'v', a, 's', b)
  elseif op == 'drop' then redis.call('DEL', KEYS[1])
  elseif op == 'set' then redis.call('SET', a, b)
  elseif op == 'unset' then
    if redis.call('GET', a) == b then redis.call('DEL', a) end
  elseif op == 'sadd' then redis.call('SADD', a, b)
  elseif op == 'srem' then redis.call('SREM', a, b)
  elseif op == 'zadd' then redis.call('ZADD', a, b, ARGV[i + 3])
  elseif op == 'zrem' then redis.call('ZREM', a, b)
  elseif op == 'pub' then redis.call('PUBLISH', a, b)
  end
  i = i + width[op]
end
return {'ok'}
";

/// Forgets a dead node once it holds no call: `KEYS[1]` is `nodes`, `KEYS[2]` the node's
/// `calls_on_node`; `ARGV[1]` the node, `ARGV[2]` the oldest heartbeat still alive.
/// Returns 1 if the node was forgotten (a node heard from since is kept).
const FORGET_NODE: &str = r"
local beat = redis.call('ZSCORE', KEYS[1], ARGV[1])
if beat and tonumber(beat) < tonumber(ARGV[2]) and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 1
end
return 0
";

/// A node's heartbeat: `KEYS[1]` is `nodes`, `KEYS[2]` `node_seq`; `ARGV[1]` the node,
/// `ARGV[2]` now (Unix milliseconds), `ARGV[3]` the node's number if it came from
/// `node_seq` (else 0). Records the heartbeat, and raises `node_seq` to the node's number
/// if it is lower: after a Redis that lost its data, a node starting later does not take
/// a live node's number.
const HEARTBEAT: &str = r"
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
local counted = tonumber(ARGV[3])
if counted > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') < counted then
  redis.call('SET', KEYS[2], counted)
end
return 1
";

/// One write of a commit (see [`COMMIT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Absent(String),
    State { version: u64, json: String },
    Drop,
    Set(String, String),
    Unset(String, String),
    Sadd(String, String),
    Srem(String, String),
    Zadd(String, i64, String),
    Zrem(String, String),
    Pub(String, Vec<u8>),
}

/// What a commit found.
#[derive(Debug)]
enum Outcome {
    Done,
    /// The call changed since it was read: read again.
    Moved,
    /// `key` (a connection's or the room's) is held by call `holder`.
    Busy {
        key: String,
        holder: String,
    },
}

/// The calls of every node that shares this Redis (see the module docs).
pub struct SharedRegistry {
    conn: ConnectionManager,
    /// The key prefix: [`PREFIX`] (tests use their own).
    prefix: String,
    /// This node's number.
    node: u32,
    commit: redis::Script,
    forget_node: redis::Script,
    heartbeat: redis::Script,
}

impl std::fmt::Debug for SharedRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        f.debug_struct("SharedRegistry")
            .field("prefix", &self.prefix)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl SharedRegistry {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`) with keys
    /// under `prefix` ([`PREFIX`]), takes this node's number (`INCR node_seq`, so numbers
    /// are unique among the nodes sharing this Redis, between 1 and 2^23 - 1) and records
    /// its first heartbeat. When Redis does not answer within a few seconds the node takes
    /// a random number of 2^23 or more (unlikely to collide with another's) and starts
    /// anyway: calls fail with `503 unavailable` until Redis is back.
    ///
    /// # Errors
    /// `url` is not a Redis URL (the message never shows it: it may hold a password).
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<SharedRegistry> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis_url: {}", e.category()))?;
        // A request waits at most a few seconds for a sick Redis, then gets 503.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .context("setting up the Redis connection of redis_url")?;
        let mut registry = SharedRegistry {
            conn,
            prefix: prefix.to_owned(),
            node: 0,
            commit: redis::Script::new(COMMIT),
            forget_node: redis::Script::new(FORGET_NODE),
            heartbeat: redis::Script::new(HEARTBEAT),
        };
        let mut conn = registry.conn.clone();
        let counted = tokio::time::timeout(
            FIRST_CONTACT,
            redis::cmd("INCR")
                .arg(registry.key("node_seq"))
                .query_async::<u64>(&mut conn),
        )
        .await;
        registry.node = match counted {
            Ok(Ok(n)) => {
                // 1 ..= COUNTED_NODES - 1, wrapping after that many starts.
                let span = u64::from(COUNTED_NODES - 1);
                u32::try_from((n.saturating_sub(1)) % span + 1).unwrap_or(1)
            }
            _ => {
                let random = rand_core::RngCore::next_u32(&mut rand_core::OsRng);
                let n = COUNTED_NODES + random % COUNTED_NODES;
                tracing::warn!(
                    node = n,
                    "Redis did not answer at start: this node took a random number; calls \
                     are unavailable until Redis answers"
                );
                n
            }
        }
        .min(MAX_NODE);
        registry.heartbeat(unix_ms()).await;
        Ok(registry)
    }

    /// This node's number (in its connection ids' high bits).
    pub fn node(&self) -> u32 {
        self.node
    }

    /// Call `call_id`.
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::Unavailable`] when Redis fails.
    pub async fn call(&self, call_id: &str) -> Result<Call, CallError> {
        self.load(call_id)
            .await?
            .map(|(_, call)| call)
            .ok_or(CallError::NotFound)
    }

    /// Starts a call (see [`super::Registry::start`]: the same checks in the same order,
    /// and `admit` runs once they have passed). A start that loses a race for the room or
    /// the connection to another node's change is refused like one that came second,
    /// after `admit` ran.
    ///
    /// # Errors
    /// [`CallError::ConnectionBusy`], [`CallError::RoomBusy`], then `admit`'s;
    /// [`CallError::Unavailable`].
    pub async fn start<E: From<CallError>>(
        &self,
        new: NewCall,
        now: &Moment,
        admit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(CallJoined, Vec<LogEntry>), E> {
        let conn_key = self.conn_key(new.host.conn);
        let room_key = self.room_key(&new.room_id);
        let (by_conn, by_room): (Option<String>, Option<String>) = self
            .query(redis::cmd("MGET").arg(&conn_key).arg(&room_key))
            .await?;
        if let Some(call_id) = by_conn {
            return Err(CallError::ConnectionBusy { call_id }.into());
        }
        if let Some(call_id) = by_room {
            return Err(CallError::RoomBusy { call_id }.into());
        }
        admit()?;
        let (call, reply, effects) = Call::start(new, now);
        let id = call.id().to_owned();
        let mut ops = vec![
            Op::Absent(room_key.clone()),
            Op::Set(room_key.clone(), id.clone()),
        ];
        ops.extend(self.plan(None, &call, 0)?);
        let logs = publishes(&effects, &mut ops)?;
        match self.run_commit(&id, 0, &ops).await? {
            Outcome::Done => Ok((reply, logs)),
            Outcome::Busy { key, holder } if key == room_key => {
                Err(CallError::RoomBusy { call_id: holder }.into())
            }
            Outcome::Busy { holder, .. } => {
                Err(CallError::ConnectionBusy { call_id: holder }.into())
            }
            // A fresh UUIDv7 is never taken.
            Outcome::Moved => Err(CallError::Unavailable.into()),
        }
    }

    /// `call.accept` (see [`Call::accept`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::ConnectionBusy`] when the connection is in
    /// this or another call; [`CallError::Full`]; [`CallError::Unavailable`].
    pub async fn accept(
        &self,
        call_id: &str,
        joiner: Joiner,
        max_participants: usize,
        now: &Moment,
    ) -> Result<(CallJoined, Vec<LogEntry>), CallError> {
        self.change(call_id, |call| {
            call.accept(joiner.clone(), max_participants, now)
        })
        .await
    }

    /// `call.decline` (see [`Call::decline`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::NotRinging`]; [`CallError::Unavailable`].
    pub async fn decline(
        &self,
        call_id: &str,
        user_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Vec<LogEntry>, CallError> {
        self.change(call_id, |call| Ok(((), call.decline(user_id, conn, now)?)))
            .await
            .map(|((), logs)| logs)
    }

    /// `call.leave`: connection `conn` leaves call `call_id`.
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`;
    /// [`CallError::Unavailable`].
    pub async fn leave(
        &self,
        call_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Vec<LogEntry>, CallError> {
        self.change(call_id, |call| {
            Ok(((), call.leave(conn, LeaveReason::Left, now)?))
        })
        .await
        .map(|((), logs)| logs)
    }

    /// Connection `conn` closed: it leaves its call, if any (`disconnected`). `None` when
    /// it was in none (or Redis failed: logged).
    pub async fn disconnect(&self, conn: ConnId, now: &Moment) -> Option<Vec<LogEntry>> {
        let call_id: Option<String> = self
            .query(redis::cmd("GET").arg(self.conn_key(conn)))
            .await
            .ok()?;
        self.change(&call_id?, |call| {
            Ok(((), call.leave(conn, LeaveReason::Disconnected, now)?))
        })
        .await
        .ok()
        .map(|((), logs)| logs)
    }

    /// `call.end` (see [`Call::end`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::NotHost`]; [`CallError::Unavailable`].
    pub async fn end(
        &self,
        call_id: &str,
        by: EndBy,
        now: &Moment,
    ) -> Result<Vec<LogEntry>, CallError> {
        self.change(call_id, |call| Ok(((), call.end(by, now)?)))
            .await
            .map(|((), logs)| logs)
    }

    /// Connection `conn` hangs up call `call_id` (see [`Call::hang_up`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`;
    /// [`CallError::Unavailable`].
    pub async fn hang_up(
        &self,
        call_id: &str,
        conn: ConnId,
        now: &Moment,
    ) -> Result<Vec<LogEntry>, CallError> {
        self.change(call_id, |call| Ok(((), call.hang_up(conn, now)?)))
            .await
            .map(|((), logs)| logs)
    }

    /// The call connection `conn` takes part in, if any.
    ///
    /// # Errors
    /// [`CallError::Unavailable`].
    pub async fn call_of(&self, conn: ConnId) -> Result<Option<String>, CallError> {
        self.query(redis::cmd("GET").arg(self.conn_key(conn))).await
    }

    /// The call going on in room `room_id`, if any.
    ///
    /// # Errors
    /// [`CallError::Unavailable`].
    pub async fn call_in_room(&self, room_id: &str) -> Result<Option<String>, CallError> {
        self.query(redis::cmd("GET").arg(self.room_key(room_id)))
            .await
    }

    /// The participant ids of `user_id` in call `call_id` other than `conn`'s own (see
    /// [`Call::participants_of_user`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`] unless `conn` is a participant of `call_id`;
    /// [`CallError::Unavailable`].
    pub async fn participants_of_user(
        &self,
        conn: ConnId,
        call_id: &str,
        user_id: &str,
    ) -> Result<Vec<String>, CallError> {
        self.call(call_id)
            .await?
            .participants_of_user(conn, user_id)
    }

    /// Room `room_id` was deleted: its call, if any, ends.
    pub async fn close_room(&self, room_id: &str, now: &Moment) -> Option<Vec<LogEntry>> {
        let call_id = self.call_of_room(room_id).await?;
        self.change(&call_id, |call| Ok(((), call.close_room(now))))
            .await
            .ok()
            .map(|((), logs)| logs)
    }

    /// `user_id` is no longer a member of `room_id`: they leave its call, if any.
    pub async fn remove_user(
        &self,
        room_id: &str,
        user_id: &str,
        now: &Moment,
    ) -> Option<Vec<LogEntry>> {
        let call_id = self.call_of_room(room_id).await?;
        self.change(&call_id, |call| Ok(((), call.remove_user(user_id, now))))
            .await
            .ok()
            .map(|((), logs)| logs)
    }

    /// The user of participant `to`, for a signal from `conn` in `call_id`.
    ///
    /// # Errors
    /// As [`Call::signal_recipient`]; [`CallError::Unavailable`].
    pub async fn signal_recipient(
        &self,
        conn: ConnId,
        call_id: &str,
        to: &str,
    ) -> Result<String, CallError> {
        let call = self.call(call_id).await?;
        call.signal_recipient(conn, to).map(str::to_owned)
    }

    /// `rtc.signal` from `conn` (see [`Call::relay`]), checked against the call as it is
    /// when Redis publishes it: both ends must still be participants.
    ///
    /// # Errors
    /// As [`Call::relay`]; [`CallError::Unavailable`].
    pub async fn relay(&self, conn: ConnId, signal: SendSignal) -> Result<(), CallError> {
        for _ in 0..TRIES {
            let (version, call) = self
                .load(&signal.call_id)
                .await?
                .ok_or(CallError::NotFound)?;
            let effects = call.relay(conn, signal.clone())?;
            let mut ops = Vec::new();
            publishes(&effects, &mut ops)?;
            match self.run_commit(call.id(), version, &ops).await? {
                Outcome::Done => return Ok(()),
                Outcome::Moved => continue,
                Outcome::Busy { .. } => return Err(CallError::Unavailable),
            }
        }
        Err(self.gave_up(&signal.call_id))
    }

    /// Records that this node is alive now (`now_ms`, Unix milliseconds), and keeps
    /// `node_seq` at or above its number (see [`HEARTBEAT`]). A failure is logged (the
    /// next heartbeat tries again).
    pub async fn heartbeat(&self, now_ms: i64) {
        let counted = if self.node < COUNTED_NODES {
            self.node
        } else {
            0
        };
        let mut conn = self.conn.clone();
        let beat = self
            .heartbeat
            .key(self.key("nodes"))
            .key(self.key("node_seq"))
            .arg(self.node)
            .arg(now_ms)
            .arg(counted)
            .invoke_async::<i64>(&mut conn)
            .await;
        if let Err(e) = beat {
            tracing::warn!(node = self.node, error = %e, "recording this node's heartbeat in Redis");
        }
    }

    /// Up to `limit` calls whose ring deadline is at or before `now_ms` (and not more than
    /// [`FORGOTTEN_AFTER_MS`] before), earliest first.
    ///
    /// # Errors
    /// [`CallError::Unavailable`].
    pub async fn due_calls(&self, now_ms: i64, limit: usize) -> Result<Vec<String>, CallError> {
        self.query(
            redis::cmd("ZRANGEBYSCORE")
                .arg(self.key("call_deadlines"))
                .arg(format!("({}", now_ms - FORGOTTEN_AFTER_MS))
                .arg(now_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(limit),
        )
        .await
    }

    /// The ring timer for call `call_id` (see [`Call::ring_timeout`]).
    ///
    /// # Errors
    /// [`CallError::NotFound`]; [`CallError::Unavailable`].
    pub async fn ring_timeout(
        &self,
        call_id: &str,
        now: &Moment,
    ) -> Result<Vec<LogEntry>, CallError> {
        self.change(call_id, |call| Ok(((), call.ring_timeout(now))))
            .await
            .map(|((), logs)| logs)
    }

    /// Forgets the ring deadline of `call_id`, a call that no longer exists.
    pub async fn forget_deadline(&self, call_id: &str) {
        let _: Result<i64, _> = self
            .query(
                redis::cmd("ZREM")
                    .arg(self.key("call_deadlines"))
                    .arg(call_id),
            )
            .await;
    }

    /// The other nodes whose last heartbeat is older than [`NODE_LEASE_MS`] before
    /// `now_ms`. First drops the nodes and ring deadlines older than
    /// [`FORGOTTEN_AFTER_MS`].
    ///
    /// # Errors
    /// [`CallError::Unavailable`].
    pub async fn dead_nodes(&self, now_ms: i64) -> Result<Vec<u32>, CallError> {
        let forgotten = format!("({}", now_ms - FORGOTTEN_AFTER_MS);
        let mut pipe = redis::pipe();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(self.key("nodes"))
            .arg("-inf")
            .arg(&forgotten)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.key("call_deadlines"))
            .arg("-inf")
            .arg(&forgotten)
            .ignore()
            .cmd("ZRANGEBYSCORE")
            .arg(self.key("nodes"))
            .arg("-inf")
            .arg(format!("({}", now_ms - NODE_LEASE_MS));
        let mut conn = self.conn.clone();
        let (nodes,): (Vec<u32>,) = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(nodes.into_iter().filter(|n| *n != self.node).collect())
    }

    /// Ends call `call_id` if none of its participants is on a live node (all their nodes
    /// are gone, say the whole deployment restarted while Redis kept its data): they
    /// leave (`disconnected`), and so the call ends. Returns its call log entries, or
    /// `None` when a participant's node is alive or the call is gone.
    ///
    /// # Errors
    /// [`CallError::Unavailable`].
    pub async fn end_if_orphaned(
        &self,
        call_id: &str,
        now: &Moment,
    ) -> Result<Option<Vec<LogEntry>>, CallError> {
        let call = match self.call(call_id).await {
            Ok(call) => call,
            Err(CallError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let nodes: BTreeSet<u32> = call.conns().into_iter().map(node_of).collect();
        for node in &nodes {
            if self.is_alive(*node, now.at).await? {
                return Ok(None);
            }
        }
        let ended = self
            .change(call_id, |call| {
                let mut effects = Vec::new();
                for conn in call.conns() {
                    if nodes.contains(&node_of(conn)) && !call.is_over() {
                        effects.extend(call.leave(conn, LeaveReason::Disconnected, now)?);
                    }
                }
                Ok(((), effects))
            })
            .await;
        match ended {
            Ok(((), logs)) => Ok(Some(logs)),
            Err(CallError::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether node `node` was heard from within the lease before `now_ms` (this node
    /// always is).
    async fn is_alive(&self, node: u32, now_ms: i64) -> Result<bool, CallError> {
        if node == self.node {
            return Ok(true);
        }
        let beat: Option<f64> = self
            .query(redis::cmd("ZSCORE").arg(self.key("nodes")).arg(node))
            .await?;
        // Unix milliseconds are exact in an f64 until the year 287,000.
        #[allow(clippy::cast_precision_loss)]
        let oldest_alive = (now_ms - NODE_LEASE_MS) as f64;
        Ok(beat.is_some_and(|b| b >= oldest_alive))
    }

    /// The calls with a participant on node `node`.
    ///
    /// # Errors
    /// [`CallError::Unavailable`].
    pub async fn calls_on_node(&self, node: u32) -> Result<Vec<String>, CallError> {
        self.query(redis::cmd("SMEMBERS").arg(self.node_key(node)))
            .await
    }

    /// Node `node` is dead: its participants leave call `call_id` (`disconnected`), as if
    /// their connections had closed. A call with none of them left is taken off the
    /// node's list.
    ///
    /// # Errors
    /// [`CallError::Unavailable`]. A call that no longer exists is not an error.
    pub async fn leave_node(
        &self,
        call_id: &str,
        node: u32,
        now: &Moment,
    ) -> Result<Vec<LogEntry>, CallError> {
        let left = self
            .change(call_id, |call| {
                let mut effects = Vec::new();
                for conn in call.conns() {
                    if node_of(conn) == node && !call.is_over() {
                        effects.extend(call.leave(conn, LeaveReason::Disconnected, now)?);
                    }
                }
                Ok(((), effects))
            })
            .await;
        match left {
            Ok(((), logs)) if !logs.is_empty() => Ok(logs),
            Ok(_) | Err(CallError::NotFound) => {
                // Nothing of the node's was left in the call (or no call): an entry that
                // a change elsewhere has not cleared.
                let _: i64 = self
                    .query(redis::cmd("SREM").arg(self.node_key(node)).arg(call_id))
                    .await?;
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets dead node `node` if it holds no call any more and has not been heard from
    /// since `now_ms` minus the lease. Returns whether it was forgotten.
    pub async fn forget_node(&self, node: u32, now_ms: i64) -> bool {
        let mut conn = self.conn.clone();
        self.forget_node
            .key(self.key("nodes"))
            .key(self.node_key(node))
            .arg(node)
            .arg(now_ms - NODE_LEASE_MS)
            .invoke_async::<i64>(&mut conn)
            .await
            .is_ok_and(|n| n == 1)
    }

    /// Runs `f` on call `call_id` as read from Redis and commits the result (see the
    /// module docs), again on a fresh read when another change came first. A change that
    /// has no effect and leaves the call as it was writes nothing. Returns `f`'s value and
    /// the call log entries to store; the events are published by the commit.
    async fn change<T>(
        &self,
        call_id: &str,
        mut f: impl FnMut(&mut Call) -> Result<(T, Vec<Effect>), CallError>,
    ) -> Result<(T, Vec<LogEntry>), CallError> {
        for _ in 0..TRIES {
            let (version, before) = self.load(call_id).await?.ok_or(CallError::NotFound)?;
            let mut after = before.clone();
            let (value, effects) = f(&mut after)?;
            if effects.is_empty() && same(&before, &after) {
                return Ok((value, Vec::new()));
            }
            let mut ops = self.plan(Some(&before), &after, version)?;
            let logs = publishes(&effects, &mut ops)?;
            match self.run_commit(call_id, version, &ops).await? {
                Outcome::Done => return Ok((value, logs)),
                Outcome::Moved => continue,
                Outcome::Busy { holder, .. } => {
                    return Err(CallError::ConnectionBusy { call_id: holder })
                }
            }
        }
        Err(self.gave_up(call_id))
    }

    /// The writes that take the call from `before` (none: a new call) at `version` to
    /// `after`: its new state (or its deletion), and the indexes of its connections,
    /// nodes, room and ring deadline.
    fn plan(
        &self,
        before: Option<&Call>,
        after: &Call,
        version: u64,
    ) -> Result<Vec<Op>, CallError> {
        let id = after.id().to_owned();
        let old = before.map(Call::conns).unwrap_or_default();
        let new = after.conns();
        let mut ops = Vec::new();
        for conn in new.iter().filter(|c| !old.contains(c)) {
            ops.push(Op::Absent(self.conn_key(*conn)));
            ops.push(Op::Set(self.conn_key(*conn), id.clone()));
        }
        for conn in old.iter().filter(|c| !new.contains(c)) {
            ops.push(Op::Unset(self.conn_key(*conn), id.clone()));
        }
        let old_nodes: BTreeSet<u32> = old.iter().map(|c| node_of(*c)).collect();
        let new_nodes: BTreeSet<u32> = new.iter().map(|c| node_of(*c)).collect();
        for node in new_nodes.difference(&old_nodes) {
            ops.push(Op::Sadd(self.node_key(*node), id.clone()));
        }
        for node in old_nodes.difference(&new_nodes) {
            ops.push(Op::Srem(self.node_key(*node), id.clone()));
        }
        let deadlines = self.key("call_deadlines");
        if after.is_over() {
            ops.push(Op::Drop);
            ops.push(Op::Unset(self.room_key(after.room_id()), id.clone()));
            ops.push(Op::Zrem(deadlines, id));
        } else {
            let json = serde_json::to_string(after).map_err(|e| {
                tracing::error!(error = %e, "encoding a call");
                CallError::Unavailable
            })?;
            ops.push(Op::State {
                version: version + 1,
                json,
            });
            match after.ring_deadline() {
                Some(deadline) if after.is_ringing() => {
                    ops.push(Op::Zadd(deadlines, deadline, id));
                }
                _ => ops.push(Op::Zrem(deadlines, id)),
            }
        }
        Ok(ops)
    }

    /// Runs [`COMMIT`] for call `call_id` made on `version`.
    async fn run_commit(
        &self,
        call_id: &str,
        version: u64,
        ops: &[Op],
    ) -> Result<Outcome, CallError> {
        let mut invocation = self.commit.key(self.call_key(call_id));
        invocation.arg(version);
        for op in ops {
            match op {
                Op::Absent(key) => invocation.arg("absent").arg(key),
                Op::State { version, json } => invocation.arg("state").arg(version).arg(json),
                Op::Drop => invocation.arg("drop"),
                Op::Set(key, value) => invocation.arg("set").arg(key).arg(value),
                Op::Unset(key, value) => invocation.arg("unset").arg(key).arg(value),
                Op::Sadd(key, member) => invocation.arg("sadd").arg(key).arg(member),
                Op::Srem(key, member) => invocation.arg("srem").arg(key).arg(member),
                Op::Zadd(key, score, member) => {
                    invocation.arg("zadd").arg(key).arg(score).arg(member)
                }
                Op::Zrem(key, member) => invocation.arg("zrem").arg(key).arg(member),
                Op::Pub(channel, payload) => invocation.arg("pub").arg(channel).arg(payload),
            };
        }
        let mut conn = self.conn.clone();
        let reply: Vec<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        match reply.as_slice() {
            [ok] if ok == "ok" => Ok(Outcome::Done),
            [moved] if moved == "moved" => Ok(Outcome::Moved),
            [busy, key, holder] if busy == "busy" => Ok(Outcome::Busy {
                key: key.clone(),
                holder: holder.clone(),
            }),
            other => {
                tracing::error!(reply = ?other, "an unexpected answer from the call commit");
                Err(CallError::Unavailable)
            }
        }
    }

    /// Call `call_id` and its version, if it exists.
    async fn load(&self, call_id: &str) -> Result<Option<(u64, Call)>, CallError> {
        let (version, state): (Option<u64>, Option<String>) = self
            .query(
                redis::cmd("HMGET")
                    .arg(self.call_key(call_id))
                    .arg("v")
                    .arg("s"),
            )
            .await?;
        let (Some(version), Some(state)) = (version, state) else {
            return Ok(None);
        };
        let call = serde_json::from_str(&state).map_err(|e| {
            tracing::error!(error = %e, call_id, "a call in Redis is unreadable");
            CallError::Unavailable
        })?;
        Ok(Some((version, call)))
    }

    /// The call going on in `room_id` (`None` also when Redis fails: logged).
    async fn call_of_room(&self, room_id: &str) -> Option<String> {
        self.query(redis::cmd("GET").arg(self.room_key(room_id)))
            .await
            .ok()
            .flatten()
    }

    /// Runs `cmd`; a failure is logged and becomes [`CallError::Unavailable`].
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, CallError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))
    }

    /// The error after [`TRIES`] changes all lost to others.
    fn gave_up(&self, call_id: &str) -> CallError {
        tracing::warn!(
            call_id,
            tries = TRIES,
            "a call change kept losing to others"
        );
        CallError::Unavailable
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn call_key(&self, call_id: &str) -> String {
        format!("{}call:{call_id}", self.prefix)
    }

    fn room_key(&self, room_id: &str) -> String {
        format!("{}call_of_room:{room_id}", self.prefix)
    }

    fn conn_key(&self, conn: ConnId) -> String {
        format!("{}call_of_conn:{conn}", self.prefix)
    }

    fn node_key(&self, node: u32) -> String {
        format!("{}calls_on_node:{node}", self.prefix)
    }
}

/// Adds a `pub` to `ops` for each event of `effects`, in order, and returns the call log
/// entries among them.
fn publishes(effects: &[Effect], ops: &mut Vec<Op>) -> Result<Vec<LogEntry>, CallError> {
    let mut logs = Vec::new();
    for effect in effects {
        match effect {
            Effect::Publish {
                target,
                event,
                skip_conn,
            } => {
                let topic = match target {
                    Target::Connection(conn) => Topic::Connection(*conn),
                    Target::User(user_id) => Topic::User(user_id.clone()),
                    Target::Room(room_id) => Topic::Room(room_id.clone()),
                };
                let envelope = Envelope {
                    topic,
                    event: event.clone(),
                    seq: None,
                    membership: None,
                    ephemeral: false,
                    skip_user: None,
                    skip_conn: *skip_conn,
                };
                let (channel, payload) = crate::broker::shared_note(&envelope).map_err(|e| {
                    tracing::error!(error = %e, "encoding a call event");
                    CallError::Unavailable
                })?;
                ops.push(Op::Pub(channel, payload));
            }
            Effect::Log(entry) => logs.push(entry.clone()),
        }
    }
    Ok(logs)
}

/// Whether two copies of a call are the same.
fn same(a: &Call, b: &Call) -> bool {
    match (serde_json::to_value(a), serde_json::to_value(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Logs a Redis failure; [`CallError::Unavailable`].
fn unavailable(e: &redis::RedisError) -> CallError {
    tracing::warn!(error = %e, "the shared call state (Redis) failed");
    CallError::Unavailable
}

/// Now in Unix milliseconds.
pub fn unix_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    //! Against a real Redis: the machine's at 127.0.0.1:6379 (`PALAVER_TEST_REDIS_URL`
    //! overrides it), each test under its own random key prefix, removed at the end. The
    //! test nodes take numbers far above those of real nodes (whose connections the
    //! events published here would otherwise be addressed to).

    use std::sync::Arc;

    use palaver_protocol::ws::IceCandidate;
    use palaver_protocol::{CallKind, CallLogEvent};

    use super::*;
    use crate::hub::COUNTER_BITS;

    fn redis_url() -> String {
        std::env::var("PALAVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// Nodes sharing one fresh prefix.
    struct Nodes {
        prefix: String,
    }

    impl Nodes {
        async fn new() -> Nodes {
            let prefix = format!("palaver:test:{}:", uuid::Uuid::now_v7());
            let client = redis::Client::open(redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let high = 6_000_000 + rand_core::RngCore::next_u32(&mut rand_core::OsRng) % 2_000_000;
            let () = redis::cmd("SET")
                .arg(format!("{prefix}node_seq"))
                .arg(high)
                .query_async(&mut conn)
                .await
                .unwrap();
            Nodes { prefix }
        }

        async fn node(&self) -> SharedRegistry {
            SharedRegistry::connect(&redis_url(), &self.prefix)
                .await
                .unwrap()
        }

        /// Deletes every key of the prefix.
        async fn remove(self) {
            let client = redis::Client::open(redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query_async(&mut conn)
                .await
                .unwrap();
            if !keys.is_empty() {
                let _: i64 = redis::cmd("DEL")
                    .arg(keys)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
        }
    }

    /// Connection `n` of `node`.
    fn conn(node: &SharedRegistry, n: u64) -> ConnId {
        (u64::from(node.node()) << COUNTER_BITS) | n
    }

    fn now() -> Moment {
        Moment {
            at: unix_ms(),
            rfc3339: crate::service::now_rfc3339(),
        }
    }

    fn joiner(user: &str, conn: ConnId) -> Joiner {
        Joiner {
            participant_id: format!("p-{user}-{conn}"),
            user_id: user.to_owned(),
            username: user.to_owned(),
            conn,
        }
    }

    fn new_call(room_id: &str, host: Joiner, ringing: &[&str], ring_for: Duration) -> NewCall {
        NewCall {
            call_id: uuid::Uuid::now_v7().to_string(),
            room_id: room_id.into(),
            kind: CallKind::Audio,
            host,
            ringing: ringing.iter().map(|u| (*u).to_owned()).collect(),
            ring_for,
            offer: None,
        }
    }

    /// Starts a call on `node`, admitted; its id.
    async fn start(node: &SharedRegistry, new: NewCall) -> String {
        let (joined, logs) = node
            .start::<CallError>(new, &now(), || Ok(()))
            .await
            .expect("started");
        assert!(matches!(&logs[..], [entry] if entry.log.event == CallLogEvent::Started));
        joined.call.call_id
    }

    fn events(logs: &[LogEntry]) -> Vec<CallLogEvent> {
        logs.iter().map(|l| l.log.event).collect()
    }

    #[tokio::test]
    async fn nodes_take_distinct_numbers_even_after_redis_lost_the_counter() {
        let nodes = Nodes::new().await;
        let (a, b) = (nodes.node().await, nodes.node().await);
        assert_ne!(a.node(), b.node());
        assert!(a.node() > 0 && b.node() < COUNTED_NODES);

        // The counter is lost (a Redis restarted without its data): the live nodes'
        // heartbeats put it back above their numbers.
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 = redis::cmd("DEL")
            .arg(format!("{}node_seq", nodes.prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        a.heartbeat(unix_ms()).await;
        b.heartbeat(unix_ms()).await;
        let c = nodes.node().await;
        assert!(
            c.node() > a.node().max(b.node()),
            "{} after {} and {}",
            c.node(),
            a.node(),
            b.node()
        );
        nodes.remove().await;
    }

    #[tokio::test]
    async fn a_call_started_on_one_node_is_joined_left_and_ended_on_another() {
        let nodes = Nodes::new().await;
        let (a, b) = (nodes.node().await, nodes.node().await);
        let (alice, bob, carol) = (conn(&a, 1), conn(&b, 1), conn(&b, 2));
        let call_id = start(
            &a,
            new_call(
                "r1",
                joiner("alice", alice),
                &["bob"],
                Duration::from_secs(30),
            ),
        )
        .await;

        // Node b sees it, and its rules: one call per room and per connection.
        let (joined, logs) = b
            .accept(&call_id, joiner("bob", bob), 8, &now())
            .await
            .unwrap();
        assert_eq!(joined.call.participants.len(), 2);
        assert_eq!(events(&logs), [CallLogEvent::Answered]);
        let busy_room = b
            .start::<CallError>(
                new_call("r1", joiner("carol", carol), &[], Duration::from_secs(30)),
                &now(),
                || Ok(()),
            )
            .await;
        assert_eq!(
            busy_room.unwrap_err(),
            CallError::RoomBusy {
                call_id: call_id.clone()
            }
        );
        let busy_conn = a
            .start::<CallError>(
                new_call("r2", joiner("bob", bob), &[], Duration::from_secs(30)),
                &now(),
                || panic!("a refused start is not admitted"),
            )
            .await;
        assert_eq!(
            busy_conn.unwrap_err(),
            CallError::ConnectionBusy {
                call_id: call_id.clone()
            }
        );
        assert_eq!(
            a.accept(&call_id, joiner("bob", bob), 8, &now())
                .await
                .unwrap_err(),
            CallError::ConnectionBusy {
                call_id: call_id.clone()
            }
        );
        assert_eq!(
            a.calls_on_node(a.node()).await.unwrap(),
            std::slice::from_ref(&call_id)
        );
        assert_eq!(
            b.calls_on_node(b.node()).await.unwrap(),
            std::slice::from_ref(&call_id)
        );

        // Signals need both ends in the call.
        let signal = SendSignal {
            call_id: call_id.clone(),
            to: format!("p-alice-{alice}"),
            description: None,
            candidate: Some(IceCandidate {
                candidate: "candidate:1 1 udp 1 192.0.2.1 5000 typ host".into(),
                sdp_mid: None,
                sdp_m_line_index: None,
                username_fragment: None,
            }),
        };
        assert_eq!(
            b.signal_recipient(bob, &call_id, &signal.to).await.unwrap(),
            "alice"
        );
        b.relay(bob, signal.clone()).await.unwrap();
        assert_eq!(
            b.relay(carol, signal.clone()).await.unwrap_err(),
            CallError::NotFound
        );

        // Alice leaves on node a: node b's Bob is host; he leaves by disconnecting.
        assert!(a.leave(&call_id, alice, &now()).await.unwrap().is_empty());
        assert_eq!(
            a.calls_on_node(a.node()).await.unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(b.call(&call_id).await.unwrap().conns(), [bob]);
        let logs = a
            .disconnect(bob, &now())
            .await
            .expect("bob was in the call");
        assert_eq!(events(&logs), [CallLogEvent::Ended]);
        assert_eq!(b.call(&call_id).await.unwrap_err(), CallError::NotFound);
        assert!(b.disconnect(bob, &now()).await.is_none());
        assert_eq!(b.relay(bob, signal).await.unwrap_err(), CallError::NotFound);

        // The room and the connections are free again.
        let again = start(
            &b,
            new_call(
                "r1",
                joiner("bob", bob),
                &["alice"],
                Duration::from_secs(30),
            ),
        )
        .await;
        let logs = a.close_room("r1", &now()).await.expect("r1 had a call");
        assert!(logs.is_empty(), "no log entry when the room is gone");
        assert_eq!(a.call(&again).await.unwrap_err(), CallError::NotFound);
        nodes.remove().await;
    }

    /// Many nodes accepting into one call at once: the compare-and-set lets exactly as
    /// many in as the cap allows, and the call and its indexes agree.
    #[tokio::test]
    async fn a_call_is_found_by_connection_and_user_and_hung_up_on_another_node() {
        let nodes = Nodes::new().await;
        let (a, b) = (nodes.node().await, nodes.node().await);
        let (alice, bob, carol) = (conn(&a, 1), conn(&b, 1), conn(&b, 2));
        let call_id = start(
            &a,
            new_call(
                "r1",
                joiner("alice", alice),
                &["bob"],
                Duration::from_secs(30),
            ),
        )
        .await;
        b.accept(&call_id, joiner("bob", bob), 8, &now())
            .await
            .unwrap();

        // Either node finds each connection's call, and the participants of a user.
        assert_eq!(b.call_of(alice).await.unwrap(), Some(call_id.clone()));
        assert_eq!(a.call_of(bob).await.unwrap(), Some(call_id.clone()));
        assert_eq!(a.call_of(carol).await.unwrap(), None);
        assert_eq!(
            a.participants_of_user(alice, &call_id, "bob")
                .await
                .unwrap(),
            [format!("p-bob-{bob}")]
        );
        assert_eq!(
            b.participants_of_user(carol, &call_id, "bob")
                .await
                .unwrap_err(),
            CallError::NotFound,
            "carol is not in the call"
        );
        assert_eq!(
            b.hang_up(&call_id, carol, &now()).await.unwrap_err(),
            CallError::NotFound
        );

        // Bob, on node b, hangs up the call node a started: it ends for both.
        let logs = b.hang_up(&call_id, bob, &now()).await.unwrap();
        assert_eq!(events(&logs), [CallLogEvent::Ended]);
        assert_eq!(a.call(&call_id).await.unwrap_err(), CallError::NotFound);
        assert_eq!(a.call_of(alice).await.unwrap(), None);
        assert_eq!(a.call_of(bob).await.unwrap(), None);
        nodes.remove().await;
    }

    #[tokio::test]
    async fn concurrent_joins_from_many_nodes_respect_the_cap() {
        let nodes = Nodes::new().await;
        let host = nodes.node().await;
        let call_id = start(
            &host,
            new_call(
                "r",
                joiner("host", conn(&host, 1)),
                &[],
                Duration::from_secs(30),
            ),
        )
        .await;
        let mut others = Vec::new();
        for _ in 0..6 {
            others.push(Arc::new(nodes.node().await));
        }
        let tasks: Vec<_> = others
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let node = Arc::clone(node);
                let call_id = call_id.clone();
                tokio::spawn(async move {
                    let me = conn(&node, 1);
                    node.accept(&call_id, joiner(&format!("u{i}"), me), 4, &now())
                        .await
                        .map(|_| me)
                })
            })
            .collect();
        let mut joined = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(me) => joined.push(me),
                Err(e) => assert_eq!(e, CallError::Full { max: 4 }),
            }
        }
        assert_eq!(joined.len(), 3, "the host and three others");
        let call = host.call(&call_id).await.unwrap();
        assert_eq!(call.conns().len(), 4);
        for me in &joined {
            assert!(call.conns().contains(me));
        }
        for node in &others {
            let listed = node.calls_on_node(node.node()).await.unwrap();
            assert_eq!(
                listed.len(),
                usize::from(call.conns().contains(&conn(node, 1)))
            );
        }
        nodes.remove().await;
    }

    #[tokio::test]
    async fn a_due_ring_deadline_times_the_call_out_once() {
        let nodes = Nodes::new().await;
        let (a, b) = (nodes.node().await, nodes.node().await);
        let call_id = start(
            &a,
            new_call("r", joiner("alice", conn(&a, 1)), &["bob"], Duration::ZERO),
        )
        .await;
        let due = b.due_calls(unix_ms() + 1, 10).await.unwrap();
        assert_eq!(due, std::slice::from_ref(&call_id));
        let (at_a, at_b) = (now(), now());
        let (first, second) = tokio::join!(
            a.ring_timeout(&call_id, &at_a),
            b.ring_timeout(&call_id, &at_b)
        );
        let mut logs: Vec<CallLogEvent> = Vec::new();
        for outcome in [first, second] {
            match outcome {
                Ok(entries) => logs.extend(events(&entries)),
                Err(e) => assert_eq!(e, CallError::NotFound, "the other node ended it"),
            }
        }
        assert_eq!(logs, [CallLogEvent::Missed], "timed out once");
        assert!(b.due_calls(unix_ms() + 1, 10).await.unwrap().is_empty());
        nodes.remove().await;
    }

    #[tokio::test]
    async fn a_dead_nodes_participants_leave_and_the_node_is_forgotten() {
        let nodes = Nodes::new().await;
        let (alive, dead) = (nodes.node().await, nodes.node().await);
        let call_id = start(
            &alive,
            new_call(
                "r",
                joiner("alice", conn(&alive, 1)),
                &[],
                Duration::from_secs(30),
            ),
        )
        .await;
        for n in 1..=2 {
            dead.accept(&call_id, joiner("bob", conn(&dead, n)), 8, &now())
                .await
                .unwrap();
        }
        let now = now();
        assert!(alive.dead_nodes(now.at).await.unwrap().is_empty());
        // The dead node's last heartbeat was longer ago than the lease.
        dead.heartbeat(now.at - NODE_LEASE_MS - 1).await;
        assert_eq!(alive.dead_nodes(now.at).await.unwrap(), [dead.node()]);
        assert!(
            !alive.forget_node(dead.node(), now.at).await,
            "it holds a call"
        );
        assert_eq!(
            alive.calls_on_node(dead.node()).await.unwrap(),
            std::slice::from_ref(&call_id)
        );

        let logs = alive.leave_node(&call_id, dead.node(), &now).await.unwrap();
        assert!(logs.is_empty(), "the call goes on");
        assert_eq!(
            alive.call(&call_id).await.unwrap().conns(),
            [conn(&alive, 1)]
        );
        assert!(alive.calls_on_node(dead.node()).await.unwrap().is_empty());
        assert!(alive.forget_node(dead.node(), now.at).await);
        assert!(alive.dead_nodes(now.at).await.unwrap().is_empty());
        // Its connections are free (were it to come back).
        dead.heartbeat(now.at).await;
        let _ = start(
            &dead,
            new_call(
                "r2",
                joiner("bob", conn(&dead, 1)),
                &[],
                Duration::from_secs(30),
            ),
        )
        .await;
        nodes.remove().await;
    }

    #[tokio::test]
    async fn a_call_whose_nodes_are_all_dead_is_ended_by_the_next_start_in_its_room() {
        let nodes = Nodes::new().await;
        let (gone, starter) = (nodes.node().await, nodes.node().await);
        let call_id = start(
            &gone,
            new_call(
                "r",
                joiner("alice", conn(&gone, 1)),
                &["bob"],
                Duration::from_secs(30),
            ),
        )
        .await;
        let now = now();
        assert_eq!(starter.end_if_orphaned(&call_id, &now).await.unwrap(), None);
        gone.heartbeat(now.at - NODE_LEASE_MS - 1).await;
        let logs = starter
            .end_if_orphaned(&call_id, &now)
            .await
            .unwrap()
            .expect("orphaned");
        assert_eq!(events(&logs), [CallLogEvent::Missed]);
        let _ = start(
            &starter,
            new_call(
                "r",
                joiner("carol", conn(&starter, 1)),
                &[],
                Duration::from_secs(30),
            ),
        )
        .await;
        nodes.remove().await;
    }

    /// The events of a change are published by its commit, to the channel of the node of
    /// each participant, in the order of the changes.
    #[tokio::test]
    async fn events_are_published_to_the_participants_node_in_commit_order() {
        let nodes = Nodes::new().await;
        let (a, b) = (nodes.node().await, nodes.node().await);
        let client = redis::Client::open(redis_url()).unwrap();
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub
            .subscribe(format!("{PREFIX}node:{}", a.node()))
            .await
            .unwrap();
        let host = conn(&a, 1);
        let call_id = start(
            &a,
            new_call("r", joiner("alice", host), &[], Duration::from_secs(30)),
        )
        .await;
        for n in 1..=3 {
            b.accept(&call_id, joiner(&format!("u{n}"), conn(&b, n)), 8, &now())
                .await
                .unwrap();
        }
        b.leave(&call_id, conn(&b, 2), &now()).await.unwrap();
        let mut messages = pubsub.into_on_message();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let message = tokio::time::timeout(
                Duration::from_secs(10),
                futures_util::StreamExt::next(&mut messages),
            )
            .await
            .expect("published")
            .expect("a message");
            let note: serde_json::Value =
                serde_json::from_slice(message.get_payload_bytes()).unwrap();
            assert_eq!(note["topic"]["to"], "connection", "{note}");
            assert_eq!(note["topic"]["id"], host, "{note}");
            seen.push(note["event"]["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            seen,
            [
                "call.participant_joined",
                "call.participant_joined",
                "call.participant_joined",
                "call.participant_left"
            ]
        );
        nodes.remove().await;
    }
}
