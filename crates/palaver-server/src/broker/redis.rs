//! The multi-node broker: envelopes travel between nodes over Redis pub/sub.
//!
//! A node delivers what it publishes to its own hub at once, exactly as
//! [`MemoryBroker`](super::MemoryBroker) does, then queues it for Redis with its node id,
//! and every other node hands it to its hub. One task publishes the queue in order, many
//! notes per round trip, over one connection (the `redis` crate's `ConnectionManager`,
//! which reconnects by itself), so the envelopes of one node reach every other node in
//! the order they were published, and no publisher waits for Redis.
//!
//! Channels (prefix `palaver:`): `room:{id}` for a room's events, `user:{id}` for one
//! user's, `users` for an event to a list of users (presence) and `control` for
//! disconnects and repair notes. Every node hears `users`, `control` and every user's
//! channel (`PSUBSCRIBE palaver:user:*`); a room's channel only while it serves the room:
//! it subscribes when the room's first local connection comes ([`Hub::watch_rooms`]) and
//! unsubscribes [`LINGER`] after the last one went. A join or a leave also goes to the
//! user's channel, so a join on node A reaches the user's connections on node B even if
//! B served no one in that room (B then subscribes to it).
//!
//! Room changes, local and remote alike, reach the hub through a [`Sequencer`], which
//! delivers each room's changes in seq order, once, and reads from the database what
//! Redis lost: a gap in a room's seqs, a subscription that broke and came back (every
//! room with local connections is read again), or notes another node reports it could
//! not publish (a `repair` note on `control` once it can publish again).
//!
//! A [`Topic::Connection`] envelope (a call event or signal for one participant) goes to
//! the channel `node:{n}` of the node that holds the connection, which every node
//! subscribes to for itself: connection ids carry their node's number
//! ([`crate::hub::node_of`]); one for this node is only delivered here. `skip_conn`
//! crosses too. Call events are published by Redis itself, from the script that commits
//! the call's change ([`crate::signaling::shared`]), with notes made by [`shared_note`]:
//! every node delivers those, this one included, in the order Redis ran the commits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use async_trait::async_trait;
use futures_util::StreamExt as _;
use palaver_protocol::ws::Event;
use serde::{Deserialize, Serialize};

use super::{Broker, ChangeSource, DisconnectTarget, Envelope, Membership, Sequencer, Topic};
use crate::hub::{node_of, CloseReason, ConnId, Hub, LocalRoom};
use crate::metrics::Metrics;
use std::collections::{HashMap, HashSet};

/// Every channel's prefix, and the pattern each node subscribes to.
const PREFIX: &str = "palaver:";
const USERS_PATTERN: &str = "palaver:user:*";
/// How long a node stays subscribed to a room after its last local connection left
/// (a reconnecting client finds it still subscribed).
const LINGER: Duration = Duration::from_secs(5);
/// The prefix of a room's channel.
const ROOM_PREFIX: &str = "palaver:room:";
/// Notes that may wait to be published before publishers wait.
const OUTGOING: usize = 65_536;
/// The most notes published in one round trip.
const MAX_PIPELINE: usize = 512;
/// How many times a publish is tried again after the connection dropped (waiting 20 ms
/// more each time: about 5 s in all) before its notes are dropped and the other nodes
/// are told to read the rooms concerned from the database.
const PUBLISH_TRIES: u64 = 22;
/// How long a node waits at start for its first subscription.
const FIRST_SUBSCRIBE: Duration = Duration::from_secs(3);
/// The longest wait between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Delivers locally and carries every envelope to the other nodes through Redis.
pub struct RedisBroker {
    hub: Arc<Hub>,
    /// Every room change, local or remote, goes to the hub through it.
    order: Arc<Sequencer>,
    /// This process's id, so that it skips its own envelopes when they come back.
    node: String,
    /// Notes to publish, in order: `(channel, payload)`, consumed by [`forward`].
    outgoing: tokio::sync::mpsc::Sender<(String, Vec<u8>)>,
    /// Whether the subscription is up (for `/readyz`).
    subscribed: Arc<AtomicBool>,
}

impl RedisBroker {
    /// Connects to Redis at `url` (`redis://[user:password@]host:port[/db]`) and
    /// subscribes. Returns once subscribed, so that nothing published afterwards is
    /// missed, or after [`FIRST_SUBSCRIBE`] with Redis unreachable: the node then starts
    /// unsubscribed (`/readyz` says so) and keeps trying in the background.
    ///
    /// # Errors
    /// `url` is not a Redis URL (the message never shows it: it may hold a password).
    pub async fn connect(
        url: &str,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<RedisBroker>> {
        let client = ::redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("redis_url: {}", e.category()))?;
        let config = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let publisher =
            ::redis::aio::ConnectionManager::new_lazy_with_config(client.clone(), config)
                .context("setting up the Redis connection of redis_url")?;
        let (outgoing, queued) = tokio::sync::mpsc::channel(OUTGOING);
        let node = uuid::Uuid::now_v7().to_string();
        tokio::spawn(forward(publisher, queued, node.clone(), metrics.clone()));
        let broker = Arc::new(RedisBroker {
            order: Sequencer::new(hub.clone(), metrics),
            hub,
            node,
            outgoing,
            subscribed: Arc::new(AtomicBool::new(false)),
        });
        let first = match tokio::time::timeout(
            FIRST_SUBSCRIBE,
            subscribe(&client, broker.hub.node()),
        )
        .await
        {
            Ok(Ok(pubsub)) => Some(pubsub),
            Ok(Err(e)) => {
                tracing::warn!(error = %e.category(), "Redis is unreachable; starting unsubscribed");
                None
            }
            Err(_) => {
                tracing::warn!("Redis did not answer; starting unsubscribed");
                None
            }
        };
        if first.is_some() {
            broker.subscribed.store(true, Ordering::Release);
        }
        broker.order.spawn_audit();
        let local = broker.hub.watch_rooms();
        tokio::spawn(listen(client, first, Arc::downgrade(&broker), local));
        Ok(broker)
    }

    /// Whether this node is subscribed now (it hears the other nodes).
    pub fn is_subscribed(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
    }

    /// Queues `note` for `channel`. Waits only while [`OUTGOING`] notes are queued; the
    /// publish itself happens in [`forward`], so a caller holding a room's turn does not
    /// wait for Redis.
    async fn send(&self, channel: String, note: &Note<'_>) -> anyhow::Result<()> {
        let payload = serde_json::to_vec(note).context("encoding an envelope")?;
        self.outgoing
            .send((channel, payload))
            .await
            .map_err(|_| anyhow::anyhow!("the Redis publisher has stopped"))
    }

    /// Applies a note another node published.
    fn receive(&self, payload: &[u8]) {
        let note: Received = match serde_json::from_slice(payload) {
            Ok(note) => note,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable broker message was ignored");
                return;
            }
        };
        match note {
            Received::Envelope { origin, .. }
            | Received::Disconnect { origin, .. }
            | Received::Repair { origin, .. }
            | Received::Join { origin, .. }
            | Received::Leave { origin, .. }
                if origin == self.node => {}
            Received::Join {
                room_id,
                user_id,
                after_seq,
                event,
                ..
            } => {
                if self.hub.join(&user_id, &room_id) {
                    // This node may not have served the room: its order starts at the
                    // join, and the room's channel is subscribed (`listen`).
                    self.order.baseline(&room_id, after_seq);
                }
                self.hub
                    .deliver(&Envelope::new(Topic::User(user_id), *event));
            }
            Received::Leave {
                room_id,
                user_id,
                event,
                ..
            } => {
                self.hub
                    .deliver(&Envelope::new(Topic::User(user_id.clone()), *event));
                self.hub.leave(&user_id, &room_id);
            }
            Received::Repair { rooms, .. } => self.order.repair_rooms(&rooms),
            Received::Envelope {
                topic: WireTopic::Connection(id),
                ..
            } if !self.hub.is_local(id) => {}
            Received::Envelope {
                topic,
                event,
                seq,
                membership,
                ephemeral,
                skip_user,
                skip_conn,
                ..
            } => {
                let envelope = Envelope {
                    topic: topic.into(),
                    event: Arc::from(event),
                    seq,
                    membership: membership.map(Into::into),
                    ephemeral,
                    skip_user,
                    skip_conn,
                };
                self.order.deliver(envelope);
            }
            Received::Disconnect { target, code, .. } => {
                let reason = if code == crate::service::accounts::SESSION_ENDED.code {
                    crate::service::accounts::SESSION_ENDED
                } else {
                    CloseReason {
                        code,
                        reason: "closed by the server",
                    }
                };
                self.hub.disconnect(&target.into(), reason);
            }
        }
    }
}

/// Publishes the queued notes in queue order, as many as are waiting (up to
/// [`MAX_PIPELINE`]) in one round trip. Redis runs a pipeline's commands in order on one
/// connection, so every other node hears this node's envelopes in publish order. A
/// pipeline that fails because Redis dropped the connection (a restart) is tried again on
/// the reconnected one for a while ([`PUBLISH_TRIES`]); notes that still fail are
/// dropped, and once a publish succeeds again a `repair` note names their rooms, so that
/// every node reads those rooms' changes from the database. Ends when the broker is
/// dropped.
async fn forward(
    mut publisher: ::redis::aio::ConnectionManager,
    mut queued: tokio::sync::mpsc::Receiver<(String, Vec<u8>)>,
    node: String,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(MAX_PIPELINE);
    // Rooms whose notes were dropped, to report once Redis takes notes again.
    let mut lost: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    while queued.recv_many(&mut batch, MAX_PIPELINE).await > 0 {
        if !lost.is_empty() {
            let note = Note::Repair {
                origin: &node,
                rooms: lost.iter().cloned().collect(),
            };
            if let Ok(payload) = serde_json::to_vec(&note) {
                batch.insert(0, (format!("{PREFIX}control"), payload));
            }
        }
        let mut pipe = ::redis::pipe();
        for (channel, payload) in &batch {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let mut tries = 0;
        loop {
            let started = std::time::Instant::now();
            let published = pipe.query_async::<()>(&mut publisher).await;
            metrics
                .broker_publish_seconds
                .observe(started.elapsed().as_secs_f64());
            match published {
                Ok(()) => {
                    lost.clear();
                    break;
                }
                Err(e)
                    if tries < PUBLISH_TRIES && (e.is_io_error() || e.is_connection_dropped()) =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20 * tries)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, dropped = batch.len(), "publishing to Redis failed");
                    for (channel, _) in &batch {
                        if let Some(room_id) = channel.strip_prefix(ROOM_PREFIX) {
                            lost.insert(room_id.to_owned());
                        }
                    }
                    break;
                }
            }
        }
        batch.clear();
    }
}

/// The channel of node `node`'s connections.
fn node_channel(node: u32) -> String {
    format!("{PREFIX}node:{node}")
}

/// Opens a pub/sub connection subscribed to the channels every node hears: `users`,
/// `control` and every user's channel (`user:*`), and to this node's own channel
/// (`node:{n}`, for `node`). Rooms are subscribed by [`listen`].
async fn subscribe(
    client: &::redis::Client,
    node: u32,
) -> ::redis::RedisResult<::redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub
        .subscribe(&[
            format!("{PREFIX}users"),
            format!("{PREFIX}control"),
            node_channel(node),
        ])
        .await?;
    pubsub.psubscribe(USERS_PATTERN).await?;
    Ok(pubsub)
}

/// Hands every message to the broker, and keeps the room subscriptions in step with the
/// rooms this node serves (`local`, from [`Hub::watch_rooms`]): a room is subscribed when
/// its first local connection comes (then its order is told, so that what was committed
/// before the subscription took effect is read from the database), and unsubscribed
/// [`LINGER`] after its last one went. When the connection breaks, connects and subscribes
/// again with a growing backoff, every served room included, and each is read again.
/// Ends when the broker is dropped.
async fn listen(
    client: ::redis::Client,
    first: Option<::redis::aio::PubSub>,
    broker: std::sync::Weak<RedisBroker>,
    mut local: tokio::sync::mpsc::UnboundedReceiver<LocalRoom>,
) {
    let mut pubsub = first;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(current) = pubsub.take() else {
            let Some(node) = broker.upgrade().map(|b| b.hub.node()) else {
                return;
            };
            match subscribe(&client, node).await {
                Ok(p) => {
                    tracing::info!("subscribed to Redis again");
                    pubsub = Some(p);
                    backoff = Duration::from_millis(50);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "subscribing to Redis failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
            if broker.strong_count() == 0 {
                return;
            }
            continue;
        };
        let (mut sink, mut stream) = current.split();
        let Some(up) = broker.upgrade() else { return };
        // The rooms served now, read after emptying `local`: a change on `local` from
        // here on is either in this list already or handled after it (both are fine).
        while local.try_recv().is_ok() {}
        let served = up.hub.rooms();
        let mut subscribed: HashSet<String> = HashSet::new();
        let channels: Vec<String> = served.iter().map(|r| format!("{ROOM_PREFIX}{r}")).collect();
        if !channels.is_empty() {
            if let Err(e) = sink.subscribe(channels).await {
                tracing::warn!(error = %e, "subscribing to the served rooms failed; retrying");
                continue;
            }
        }
        up.subscribed.store(true, Ordering::Release);
        for room in served {
            // Whatever was published while this node was not subscribed is read from
            // the database.
            up.order.subscribed(&room);
            subscribed.insert(room);
        }
        drop(up);
        let mut lingering: HashMap<String, tokio::time::Instant> = HashMap::new();
        let mut tick = tokio::time::interval(LINGER / 4);
        let broken = loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break true };
                    let Some(broker) = broker.upgrade() else { return };
                    broker.receive(message.get_payload_bytes());
                }
                change = local.recv() => {
                    let Some(change) = change else { return };
                    let Some(broker) = broker.upgrade() else { return };
                    match change {
                        LocalRoom::Gained(room) => {
                            lingering.remove(&room);
                            if !subscribed.contains(&room) {
                                if let Err(e) = sink.subscribe(format!("{ROOM_PREFIX}{room}")).await {
                                    tracing::warn!(error = %e, "subscribing to a room failed");
                                    break true;
                                }
                                subscribed.insert(room.clone());
                            }
                            broker.order.subscribed(&room);
                        }
                        LocalRoom::Lost(room) => {
                            lingering.insert(room, tokio::time::Instant::now() + LINGER);
                        }
                    }
                }
                _ = tick.tick() => {
                    let now = tokio::time::Instant::now();
                    let due: Vec<String> = lingering
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(room, _)| room.clone())
                        .collect();
                    let Some(broker) = broker.upgrade() else { return };
                    let mut failed = false;
                    for room in due {
                        lingering.remove(&room);
                        if broker.hub.has_room(&room) || !subscribed.remove(&room) {
                            continue;
                        }
                        broker.order.forget(&room);
                        if let Err(e) = sink.unsubscribe(format!("{ROOM_PREFIX}{room}")).await {
                            tracing::warn!(error = %e, "unsubscribing from a room failed");
                            failed = true;
                            break;
                        }
                    }
                    if failed {
                        break true;
                    }
                }
            }
        };
        match broker.upgrade() {
            Some(b) => b.subscribed.store(false, Ordering::Release),
            None => return,
        }
        if broken {
            tracing::warn!("the Redis subscription was lost; subscribing again");
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, envelope: Envelope) -> anyhow::Result<()> {
        let channel = match &envelope.topic {
            Topic::Room(room_id) => format!("{ROOM_PREFIX}{room_id}"),
            Topic::User(user_id) => format!("{PREFIX}user:{user_id}"),
            Topic::Users(_) => format!("{PREFIX}users"),
            // One connection: only its node hears it.
            Topic::Connection(id) if self.hub.is_local(*id) => {
                self.hub.deliver(&envelope);
                return Ok(());
            }
            Topic::Connection(_) => {
                let (channel, note) = note_for(&envelope, &self.node);
                return self.send(channel, &note).await;
            }
        };
        // A join or a leave also goes to the user's channel, first: nodes that do not
        // serve the room hold the user's connections too. The room's copy then leaves
        // the user out (they have it from their own channel).
        let (user_note, skip_user) = match (&envelope.topic, &envelope.membership) {
            (Topic::Room(room_id), Some(Membership::Joined { user_id, after_seq })) => (
                Some((
                    user_id,
                    Note::Join {
                        origin: &self.node,
                        room_id,
                        user_id,
                        after_seq: *after_seq,
                        event: &envelope.event,
                    },
                )),
                Some(user_id.as_str()),
            ),
            (Topic::Room(room_id), Some(Membership::Left { user_id })) => (
                Some((
                    user_id,
                    Note::Leave {
                        origin: &self.node,
                        room_id,
                        user_id,
                        event: &envelope.event,
                    },
                )),
                Some(user_id.as_str()),
            ),
            _ => (None, envelope.skip_user.as_deref()),
        };
        let user_note = match user_note {
            Some((user_id, note)) => Some((
                format!("{PREFIX}user:{user_id}"),
                serde_json::to_vec(&note).context("encoding an envelope")?,
            )),
            None => None,
        };
        let note = Note::Envelope {
            origin: &self.node,
            topic: (&envelope.topic).into(),
            event: &envelope.event,
            seq: envelope.seq,
            membership: envelope.membership.as_ref().map(Into::into),
            ephemeral: envelope.ephemeral,
            skip_user,
            skip_conn: envelope.skip_conn,
        };
        let payload = serde_json::to_vec(&note).context("encoding an envelope")?;
        let joined = match (&envelope.topic, &envelope.membership) {
            (Topic::Room(room_id), Some(Membership::Joined { after_seq, .. })) => {
                Some((room_id.clone(), *after_seq))
            }
            _ => None,
        };
        self.order.deliver(envelope);
        if let Some((room_id, after_seq)) = joined {
            // If this node did not serve the room before, its order starts at the join.
            self.order.baseline(&room_id, after_seq);
        }
        if let Some(user_note) = user_note {
            self.outgoing
                .send(user_note)
                .await
                .map_err(|_| anyhow::anyhow!("the Redis publisher has stopped"))?;
        }
        self.outgoing
            .send((channel, payload))
            .await
            .map_err(|_| anyhow::anyhow!("the Redis publisher has stopped"))
    }

    async fn disconnect(
        &self,
        target: DisconnectTarget,
        reason: CloseReason,
    ) -> anyhow::Result<()> {
        self.hub.disconnect(&target, reason);
        let note = Note::Disconnect {
            origin: &self.node,
            target: (&target).into(),
            code: reason.code,
        };
        self.send(format!("{PREFIX}control"), &note).await
    }

    fn is_ready(&self) -> bool {
        self.is_subscribed()
    }

    fn attach(&self, source: std::sync::Weak<dyn ChangeSource>) {
        self.order.attach(source);
    }

    fn baseline(&self, room_id: &str, last_seq: i64) {
        self.order.baseline(room_id, last_seq);
    }
}

/// The channel of `envelope` and its note from `origin`.
fn note_for<'a>(envelope: &'a Envelope, origin: &'a str) -> (String, Note<'a>) {
    let channel = match &envelope.topic {
        Topic::Room(room_id) => format!("{ROOM_PREFIX}{room_id}"),
        Topic::User(user_id) => format!("{PREFIX}user:{user_id}"),
        Topic::Users(_) => format!("{PREFIX}users"),
        Topic::Connection(id) => node_channel(node_of(*id)),
    };
    let note = Note::Envelope {
        origin,
        topic: (&envelope.topic).into(),
        event: &envelope.event,
        seq: envelope.seq,
        membership: envelope.membership.as_ref().map(Into::into),
        ephemeral: envelope.ephemeral,
        skip_user: envelope.skip_user.as_deref(),
        skip_conn: envelope.skip_conn,
    };
    (channel, note)
}

/// `envelope` as a Redis channel and the payload to `PUBLISH` there, for a publish that
/// Redis makes itself (a script): every node delivers it, the one that ran the script
/// included (its origin is no node's).
///
/// # Errors
/// The event cannot be encoded (never for the events Palaver makes).
pub(crate) fn shared_note(envelope: &Envelope) -> anyhow::Result<(String, Vec<u8>)> {
    let (channel, note) = note_for(envelope, "");
    let payload = serde_json::to_vec(&note).context("encoding an envelope")?;
    Ok((channel, payload))
}

/// What goes over Redis (JSON), borrowed for sending.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Note<'a> {
    Envelope {
        origin: &'a str,
        topic: WireTopic,
        event: &'a Event,
        seq: Option<i64>,
        membership: Option<WireMembership>,
        ephemeral: bool,
        skip_user: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skip_conn: Option<ConnId>,
    },
    Disconnect {
        origin: &'a str,
        target: WireTarget,
        code: u16,
    },
    /// The origin dropped notes of these rooms (Redis did not take them): every node
    /// reads them from the database.
    Repair { origin: &'a str, rooms: Vec<String> },
    /// On the user's channel: the user joined the room (`member.joined`).
    Join {
        origin: &'a str,
        room_id: &'a str,
        user_id: &'a str,
        after_seq: i64,
        event: &'a Event,
    },
    /// On the user's channel: the user left, or was kicked or banned from, the room.
    Leave {
        origin: &'a str,
        room_id: &'a str,
        user_id: &'a str,
        event: &'a Event,
    },
}

/// [`Note`] as received.
#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Received {
    Envelope {
        origin: String,
        topic: WireTopic,
        event: Box<Event>,
        seq: Option<i64>,
        membership: Option<WireMembership>,
        ephemeral: bool,
        skip_user: Option<String>,
        #[serde(default)]
        skip_conn: Option<ConnId>,
    },
    Disconnect {
        origin: String,
        target: WireTarget,
        code: u16,
    },
    Repair {
        origin: String,
        rooms: Vec<String>,
    },
    Join {
        origin: String,
        room_id: String,
        user_id: String,
        after_seq: i64,
        event: Box<Event>,
    },
    Leave {
        origin: String,
        room_id: String,
        user_id: String,
        event: Box<Event>,
    },
}

/// [`Topic`] on the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "to", content = "id", rename_all = "snake_case")]
enum WireTopic {
    Room(String),
    User(String),
    Users(Vec<String>),
    Connection(ConnId),
}

impl From<&Topic> for WireTopic {
    fn from(topic: &Topic) -> Self {
        match topic {
            Topic::Room(id) => WireTopic::Room(id.clone()),
            Topic::User(id) => WireTopic::User(id.clone()),
            Topic::Users(ids) => WireTopic::Users(ids.to_vec()),
            Topic::Connection(id) => WireTopic::Connection(*id),
        }
    }
}

impl From<WireTopic> for Topic {
    fn from(topic: WireTopic) -> Self {
        match topic {
            WireTopic::Room(id) => Topic::Room(id),
            WireTopic::User(id) => Topic::User(id),
            WireTopic::Users(ids) => Topic::Users(ids.into()),
            WireTopic::Connection(id) => Topic::Connection(id),
        }
    }
}

/// [`Membership`] on the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
enum WireMembership {
    Joined {
        user_id: String,
        #[serde(default)]
        after_seq: i64,
    },
    Left {
        user_id: String,
    },
    Closed,
}

impl From<&Membership> for WireMembership {
    fn from(m: &Membership) -> Self {
        match m {
            Membership::Joined { user_id, after_seq } => WireMembership::Joined {
                user_id: user_id.clone(),
                after_seq: *after_seq,
            },
            Membership::Left { user_id } => WireMembership::Left {
                user_id: user_id.clone(),
            },
            Membership::Closed => WireMembership::Closed,
        }
    }
}

impl From<WireMembership> for Membership {
    fn from(m: WireMembership) -> Self {
        match m {
            WireMembership::Joined { user_id, after_seq } => {
                Membership::Joined { user_id, after_seq }
            }
            WireMembership::Left { user_id } => Membership::Left { user_id },
            WireMembership::Closed => Membership::Closed,
        }
    }
}

/// [`DisconnectTarget`] on the wire.
#[derive(Serialize, Deserialize)]
#[serde(tag = "by", content = "id", rename_all = "snake_case")]
enum WireTarget {
    Credential(String),
    User(String),
}

impl From<&DisconnectTarget> for WireTarget {
    fn from(t: &DisconnectTarget) -> Self {
        match t {
            DisconnectTarget::Credential(id) => WireTarget::Credential(id.clone()),
            DisconnectTarget::User(id) => WireTarget::User(id.clone()),
        }
    }
}

impl From<WireTarget> for DisconnectTarget {
    fn from(t: WireTarget) -> Self {
        match t {
            WireTarget::Credential(id) => DisconnectTarget::Credential(id),
            WireTarget::User(id) => DisconnectTarget::User(id),
        }
    }
}
