//! One live connection, whatever its wire protocol: registration with the hub, the
//! `ready` snapshot, requests, per-room cursors, replay and resume from the store,
//! heartbeat, backpressure and slow-consumer close, cleanup on close.
//!
//! A gateway (e.g. [`crate::gateway::native`]) authenticates the client, then hands this
//! core a [`Transport`]: something that reads the client's requests, already parsed, and
//! writes frames in the connection's [`Wire`] format. Everything else happens here, in one
//! task per connection:
//!
//! 1. register with the hub (no rooms yet): from now on revocations of the credential and
//!    membership changes of the user reach this connection;
//! 2. check the credential again, and close with 4001 if it was revoked since the gateway
//!    authenticated it;
//! 3. take the `ready` snapshot of the user's rooms and make it the connection's whole room
//!    set, unless a membership change was delivered meanwhile (then take it again:
//!    [`Hub::set_rooms`](crate::hub::Hub::set_rooms)), and send it;
//! 4. replay the rooms the client resumes (`since` on connect), then loop: write what the
//!    hub queued (every queued frame in one flush), run one request at a time in arrival
//!    order (reading no further request while one runs, so a client that pipelines is
//!    held back by TCP), ping on silence, close when the hub asks.
//!
//! So no event committed after the snapshot can be missed, and none of a room the user
//! was removed from reaches it; events committed just before the snapshot may follow
//! `ready` (clients de-duplicate by `(room_id, seq)`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use palaver_protocol::ws::{close_code, Event, Ready, RequestId};
use palaver_protocol::ErrorCode;
use tokio::time::Instant;

use super::cursor::Cursor;
use super::queue::{Outbound, Outbox};
use super::request::{execute, Request, Response};
use super::wire::{Frame, Wire};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::hub::{CloseReason, ConnId, SocketSlot};
use crate::AppState;

/// How long the core may take to send a close frame before giving up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Attempts at registering a connection for a snapshot of its user's rooms before giving
/// up with 1013 (each failed attempt means a membership change of the user was delivered
/// while the snapshot was taken).
const SNAPSHOT_ATTEMPTS: usize = 8;

/// The transport failed or the peer is gone: stop without a close handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// What a connection reads from its client.
// Returned by value from `recv` and matched at once, never stored: boxing the request
// would only add an allocation per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inbound {
    /// A request, parsed at the edge (or why it could not be), with its id if the client
    /// wants an answer.
    Request {
        id: Option<RequestId>,
        request: AppResult<Request>,
    },
    /// Something that needs no answer (a pong, a ping the transport answered itself).
    Heard,
    /// The client closed or the transport failed; with the close to send, if any (e.g.
    /// 1009 for a message over the size limit).
    End(Option<CloseReason>),
}

/// A client connection's I/O, in its wire protocol. Writes are buffered until
/// [`Transport::flush`].
pub trait Transport: Send {
    /// The format of the frames this transport writes.
    const WIRE: Wire;

    /// The next thing the client sent. Must be cancel-safe: the core drops it
    /// unfinished when something else is ready first.
    fn recv(&mut self) -> impl Future<Output = Inbound> + Send;

    /// Buffers one frame.
    fn feed(&mut self, frame: Frame) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Buffers one frame that carries change `seq` of room `room_id` (a live change or a
    /// replayed one). By default [`Transport::feed`]; a wire that treats rooms
    /// differently (SignalR's hubs: direct-message rooms, a lobby) or tracks what it sent
    /// per room (for stateful reconnect) overrides it.
    fn feed_change(
        &mut self,
        room_id: &str,
        seq: i64,
        frame: Frame,
    ) -> impl Future<Output = Result<(), Gone>> + Send {
        let _ = (room_id, seq);
        self.feed(frame)
    }

    /// Writes out everything buffered.
    fn flush(&mut self) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Sends a heartbeat the client must answer (a WebSocket ping on the native wire).
    fn ping(&mut self) -> impl Future<Output = Result<(), Gone>> + Send;

    /// Answers request `id` with its outcome and flushes. By default the wire's
    /// [`Wire::reply`] frame; a wire with its own way of answering (Socket.IO's
    /// acknowledgements) overrides this.
    fn answer(
        &mut self,
        id: Option<RequestId>,
        outcome: AppResult<Response>,
    ) -> impl Future<Output = Result<(), Gone>> + Send {
        async move {
            if let Some(frame) = Self::WIRE.reply(id, outcome) {
                self.feed(frame).await?;
                self.flush().await?;
            }
            Ok(())
        }
    }

    /// Ends the connection: with `reason`'s close code, or a plain close when `None`.
    /// Best effort; the core bounds it with a timeout.
    fn close(&mut self, reason: Option<CloseReason>) -> impl Future<Output = ()> + Send;
}

/// Runs a connection of `actor` over `transport` until either side closes it.
/// `resume` is the rooms to replay first, each after its seq (`None`: from the latest
/// page). `_slot` is one of the user's `user_limits.sockets`, held until the end.
pub async fn run<T: Transport>(
    state: AppState,
    actor: Actor,
    resume: Vec<(String, Option<i64>)>,
    mut transport: T,
    _slot: SocketSlot,
) {
    let limits = state.service.limits();
    let registration = state.hub.register(
        &actor.user_id,
        &actor.credential.hub_key(),
        [],
        T::WIRE,
        limits.ws_outbound_queue_frames,
        limits.ws_outbound_queue_bytes,
    );
    let conn = registration.id;
    tracing::debug!(conn, user_id = %actor.user_id, "connection open");

    // Boxed, here and for replays: rare steps whose state an idle connection should not
    // carry for its whole life.
    let ready = match Box::pin(register_rooms(&state, &actor, conn)).await {
        Ok(ready) => ready,
        Err(reason) => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, transport.close(Some(reason))).await;
            state.hub.unregister(conn);
            return;
        }
    };
    // Live events for these rooms reach this connection from `last_seq` on.
    let cursors: HashMap<String, Cursor> = ready
        .rooms
        .iter()
        .map(|r| (r.id.clone(), Cursor::live_after(r.last_seq)))
        .collect();
    // Counted as connected (presence) before `ready` goes out: a client that has its
    // `ready` (or, on SignalR, its handshake answer) is online, and another of its
    // connections closing meanwhile cannot announce it offline.
    Box::pin(state.service.connection_opened(&actor, conn)).await;
    let sent = async {
        transport
            .feed(T::WIRE.event(&Event::Ready(ready), None))
            .await?;
        transport.flush().await
    };
    if sent.await.is_err() {
        Box::pin(state.service.connection_closed(&actor, conn)).await;
        state.hub.unregister(conn);
        return;
    }

    let mut core = Core {
        state: &state,
        actor: &actor,
        conn,
        outbox: &registration.outbox,
        transport,
        cursors,
        stall: Duration::from_secs(limits.ws_pong_timeout_secs.max(1)),
    };
    let ending = core.serve(resume).await;
    if let Ending::Close(reason) = ending {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, core.transport.close(reason)).await;
    }
    // Before unregistering: shutdown waits for the hub to empty, so a last seen time is
    // stored before the store closes.
    Box::pin(state.service.connection_closed(&actor, conn)).await;
    state.hub.unregister(conn);
    Box::pin(state.service.connection_left_calls(conn)).await;
    tracing::debug!(conn, "connection closed");
}

/// Steps 2 and 3 of [`run`]: re-checks the credential of registered connection `conn`,
/// then registers it for a fresh snapshot of its user's rooms. Returns the snapshot, or
/// the close to send instead.
async fn register_rooms(
    state: &AppState,
    actor: &Actor,
    conn: ConnId,
) -> Result<Ready, CloseReason> {
    let ended = CloseReason {
        code: close_code::SESSION_ENDED,
        reason: "session ended",
    };
    let later = CloseReason {
        code: close_code::TRY_AGAIN_LATER,
        reason: "try again later",
    };
    match state.service.credential_active(actor).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(conn, user_id = %actor.user_id, "credential revoked while connecting");
            return Err(ended);
        }
        Err(e) => {
            tracing::warn!(conn, error = %e.message, "checking a new connection's credential");
            return Err(later);
        }
    }
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let Some(epoch) = state.hub.membership_epoch(conn) else {
            // Closed and unregistered by the hub meanwhile.
            return Err(ended);
        };
        let ready = match state.service.ready(actor).await {
            Ok(ready) => ready,
            Err(e) if e.code == ErrorCode::Unauthorized => return Err(ended),
            Err(e) => {
                tracing::warn!(conn, error = %e.message, "taking a new connection's snapshot");
                return Err(later);
            }
        };
        if state
            .hub
            .set_rooms(conn, ready.rooms.iter().map(|r| r.id.clone()), epoch)
        {
            // With several nodes, this node's seq order of each room starts no later
            // than this snapshot (see `broker::Sequencer`).
            for room in &ready.rooms {
                state.service.broker.baseline(&room.id, room.last_seq);
            }
            return Ok(ready);
        }
    }
    Err(later)
}

/// A request being run: its id and, once done, its outcome.
type Running<'a> =
    std::pin::Pin<Box<dyn Future<Output = (Option<RequestId>, AppResult<Response>)> + Send + 'a>>;

/// How [`Core::serve`] ended.
enum Ending {
    /// Send this close (a plain close for `None`), then clean up.
    Close(Option<CloseReason>),
    /// The transport is gone: just clean up.
    Gone,
}

impl From<Gone> for Ending {
    fn from(_: Gone) -> Self {
        Ending::Gone
    }
}

/// The running state of one connection.
struct Core<'a, T> {
    state: &'a AppState,
    actor: &'a Actor,
    conn: ConnId,
    outbox: &'a Outbox,
    transport: T,
    /// Per room: what this connection has sent of its history.
    cursors: HashMap<String, Cursor>,
    /// How long a write may block (the client not reading) before the connection is
    /// closed as a slow consumer.
    stall: Duration,
}

impl<T: Transport> Core<'_, T> {
    /// Replays `resume`, then serves the connection until it must end.
    async fn serve(&mut self, resume: Vec<(String, Option<i64>)>) -> Ending {
        if !resume.is_empty() {
            if let Err(ending) = Box::pin(self.sync(resume, None)).await {
                return ending;
            }
        }
        let limits = self.state.service.limits();
        let ping_every = Duration::from_secs(limits.ws_ping_interval_secs.max(1));
        let pong_timeout = Duration::from_secs(limits.ws_pong_timeout_secs.max(1));
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let mut batch = VecDeque::new();

        // The request being run, at most one: no further request is read until it is
        // answered, so requests run (and their effects publish) in arrival order. Boxed,
        // so that an idle connection does not carry the largest request's state.
        let service = &*self.state.service;
        let (actor, conn) = (self.actor, self.conn);
        let mut running: Option<Running<'_>> = None;

        loop {
            // Whatever the hub queued goes out first, in one flush.
            match self.outbox.take(&mut batch) {
                Some(reason) if reason.code == close_code::SERVICE_RESTART => {
                    // Shutting down: deliver what is already queued first.
                    let _ = self.write_batch(&mut batch).await;
                    return Ending::Close(Some(reason));
                }
                Some(reason) => return Ending::Close(Some(reason)),
                None if !batch.is_empty() => {
                    if let Err(ending) = self.write_batch(&mut batch).await {
                        return ending;
                    }
                    continue;
                }
                None => {}
            }
            tokio::select! {
                biased;
                () = self.outbox.changed() => {}
                (id, outcome) = async { running.as_mut().expect("checked").await }, if running.is_some() => {
                    running = None;
                    if let Err(ending) = self.answer(id, outcome).await {
                        return ending;
                    }
                }
                inbound = self.transport.recv(), if running.is_none() => {
                    heard = Instant::now();
                    match inbound {
                        Inbound::Request { id, request: Ok(Request::Sync { rooms }) } => {
                            if let Err(ending) = Box::pin(self.sync(rooms.into_iter().collect(), id)).await {
                                return ending;
                            }
                        }
                        Inbound::Request { id, request: Ok(request) } => {
                            running = Some(Box::pin(async move {
                                (id, execute(service, actor, conn, request).await)
                            }));
                        }
                        Inbound::Request { id, request: Err(e) } => {
                            if let Err(ending) = self.answer(id, Err(e)).await {
                                return ending;
                            }
                        }
                        Inbound::Heard => {}
                        Inbound::End(reason) => return Ending::Close(reason),
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > ping_every + pong_timeout {
                        return Ending::Close(Some(CloseReason {
                            code: close_code::HEARTBEAT_TIMEOUT,
                            reason: "no pong",
                        }));
                    }
                    let ping = self.transport.ping();
                    if let Err(ending) = guard(ping, self.outbox, self.stall).await {
                        return ending;
                    }
                }
            }
        }
    }

    /// Writes a request's answer (if the wire has one for it) and flushes.
    async fn answer(
        &mut self,
        id: Option<RequestId>,
        outcome: AppResult<Response>,
    ) -> Result<(), Ending> {
        guard(self.transport.answer(id, outcome), self.outbox, self.stall).await
    }

    /// Writes `batch` (taken from the outbox) in order, leaving out live changes a replay
    /// already sent, and flushes once.
    async fn write_batch(&mut self, batch: &mut VecDeque<Outbound>) -> Result<(), Ending> {
        let (frames, bytes) = (batch.len(), batch.iter().map(|o| o.frame.len()).sum());
        let cursors = &mut self.cursors;
        let transport = &mut self.transport;
        let write = async {
            for item in batch.drain(..) {
                if let Some((room, seq)) = &item.change {
                    // Looked up by `&str` first: no allocation per frame once the room
                    // has a cursor.
                    let cursor = match cursors.get_mut(&**room) {
                        Some(cursor) => cursor,
                        None => cursors
                            .entry(room.to_string())
                            .or_insert_with(|| Cursor::live_after(seq - 1)),
                    };
                    if *seq <= cursor.floor || cursor.was_sent(*seq) {
                        continue;
                    }
                    cursor.sent(*seq);
                    transport.feed_change(&room[..], *seq, item.frame).await?;
                    continue;
                }
                transport.feed(item.frame).await?;
            }
            transport.flush().await
        };
        let written = guard(write, self.outbox, self.stall).await;
        self.outbox.release(frames, bytes);
        written
    }

    /// Replays each room after its `since` (see `Service::replay`), leaving out what this
    /// connection already sent, then drops live changes up to where the replay reached,
    /// and answers `reply_id` with the seq each room is complete up to.
    ///
    /// A failed `sync` request is answered with the error and stops there; a room in the
    /// connect URL that cannot be resumed gets an `error` event naming it
    /// (`since.<room_id>`), and the others still resume.
    async fn sync(
        &mut self,
        rooms: Vec<(String, Option<i64>)>,
        reply_id: Option<RequestId>,
    ) -> Result<(), Ending> {
        let mut reached = BTreeMap::new();
        for (room_id, since) in rooms {
            // Changes that went out on this connection already are left out.
            let cursor = self.cursors.get(&room_id).cloned();
            let skip = move |seq: i64| cursor.as_ref().is_some_and(|c| c.was_sent(seq));
            let mut from = since;
            let up_to = loop {
                let page = match self
                    .state
                    .service
                    .replay(self.actor, &room_id, from, &skip)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        if reply_id.is_some() {
                            return self.answer(reply_id, Err(e)).await;
                        }
                        let mut detail = e.detail();
                        detail.field = Some(format!("since.{room_id}"));
                        let frame = T::WIRE.event(&Event::Error(detail), None);
                        guard(self.transport.feed(frame), self.outbox, self.stall).await?;
                        break None;
                    }
                };
                for (seq, event) in &page.changes {
                    let frame = T::WIRE.event(event, Some(*seq));
                    let feed = self.transport.feed_change(&room_id, *seq, frame);
                    guard(feed, self.outbox, self.stall).await?;
                }
                if page.complete {
                    break Some(page.up_to);
                }
                from = Some(page.up_to);
            };
            let Some(up_to) = up_to else {
                continue;
            };
            // Without a `since` the replay began at the latest page, whose start is not
            // known here: claim nothing below `up_to` as sent (a later replay may repeat
            // some of it, but cannot skip any).
            let since = since.unwrap_or(up_to);
            let cursor = self
                .cursors
                .entry(room_id.clone())
                .or_insert_with(|| Cursor::live_after(up_to));
            cursor.replayed(since, up_to);
            reached.insert(room_id, up_to);
        }
        if reply_id.is_some() {
            return self
                .answer(reply_id, Ok(Response::Synced { rooms: reached }))
                .await;
        }
        guard(self.transport.flush(), self.outbox, self.stall).await
    }
}

/// Runs a write, unless the hub asks for a close meanwhile or it blocks for `stall` (the
/// client has stopped reading: closed as a slow consumer). Usually the transport takes the
/// write at once: no timer is set up then.
async fn guard(
    write: impl Future<Output = Result<(), Gone>>,
    outbox: &Outbox,
    stall: Duration,
) -> Result<(), Ending> {
    let mut write = pin!(write);
    let first = std::future::poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await;
    match first {
        Poll::Ready(written) => return written.map_err(Ending::from),
        Poll::Pending => {}
    }
    tokio::select! {
        biased;
        written = &mut write => written.map_err(Ending::from),
        reason = outbox.closed() => Err(Ending::Close(Some(reason))),
        () = tokio::time::sleep(stall) => Err(Ending::Close(Some(CloseReason {
            code: close_code::SLOW_CONSUMER,
            reason: "slow consumer: not reading",
        }))),
    }
}
