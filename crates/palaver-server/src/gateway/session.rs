//! One upgraded WebSocket connection: reader loop, writer task, hub registration.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use palaver_protocol::ws::{close_code, Event, Ready, Reply};
use palaver_protocol::ErrorCode;
use tokio::sync::{mpsc, watch};

use super::dispatch;
use crate::auth::Actor;
use crate::error::AppError;
use crate::hub::{CloseReason, ConnId, Outbound, SocketSlot};
use crate::AppState;

/// How long the writer may take to send a close frame to a client before giving up.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Attempts at registering a connection for a snapshot of its user's rooms before giving
/// up with 1013 (each failed attempt means a membership change of the user was delivered
/// while the snapshot was taken).
const SNAPSHOT_ATTEMPTS: usize = 8;

/// Runs a connection until either side closes it.
///
/// The order closes the gap between the upgrade's checks and the hub's reach:
/// 1. register with the hub (no rooms yet): from now on revocations of the credential
///    and membership changes of the user reach this connection;
/// 2. check the credential again, and close with 4001 if it was revoked since the
///    upgrade authenticated it;
/// 3. take the `ready` snapshot of the user's rooms and make it the connection's whole
///    room set, unless a membership change was delivered meanwhile (then take it again:
///    [`Hub::set_rooms`](crate::hub::Hub::set_rooms)).
///
/// So no event committed after the snapshot can be missed, and none of a room the user
/// was removed from reaches it; events committed just before the snapshot may follow
/// `ready` (clients de-duplicate by `(room_id, seq)`).
pub async fn run(
    state: AppState,
    actor: Actor,
    resume: Vec<(String, Option<i64>)>,
    socket: WebSocket,
    // Held until the connection ends: one of the user's `user_limits.sockets`.
    _slot: SocketSlot,
) {
    let capacity = state.service.limits().ws_outbound_queue_frames;
    let max_bytes = state.service.limits().ws_outbound_queue_bytes;
    let registration = state.hub.register(
        &actor.user_id,
        &actor.credential.hub_key(),
        [],
        capacity,
        max_bytes,
    );
    let conn = registration.id;
    tracing::debug!(conn, user_id = %actor.user_id, "connection open");

    let (mut sink, stream) = socket.split();
    let ready = match register_rooms(&state, &actor, conn).await {
        Ok(ready) => ready,
        Err(close) => {
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(close)))).await;
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
    if sink
        .send(Message::Text(encode(&Event::Ready(ready))))
        .await
        .is_err()
    {
        state.hub.unregister(conn);
        return;
    }

    let heard = Arc::new(Heard::default());
    let limits = state.service.limits();
    let writer = Writer {
        queued_bytes: registration.queued_bytes.clone(),
        sink,
        state: state.clone(),
        actor: actor.clone(),
        cursors,
        heard: heard.clone(),
        ping_every: Duration::from_secs(limits.ws_ping_interval_secs.max(1)),
        pong_timeout: Duration::from_secs(limits.ws_pong_timeout_secs.max(1)),
    };
    let mut writer = tokio::spawn(writer.run(registration.queue, registration.close, resume));
    state.service.connection_opened(&actor).await;
    let reader = read_loop(&state, &actor, conn, stream, registration.sender, &heard);
    let writer_done = tokio::select! {
        exit = reader => {
            if let Some(reason) = exit {
                state.hub.close(conn, reason);
            }
            false
        }
        _ = &mut writer => true,
    };
    // Dropping the hub's sender (and the reader's) ends the writer once it has drained.
    state.hub.unregister(conn);
    state.service.connection_left_calls(conn).await;
    state.service.connection_closed(&actor).await;
    // A finished JoinHandle must not be polled again.
    if !writer_done
        && tokio::time::timeout(CLOSE_TIMEOUT, &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    tracing::debug!(conn, "connection closed");
}

/// Steps 2 and 3 of [`run`]: re-checks the credential of registered connection `conn`,
/// then registers it for a fresh snapshot of its user's rooms. Returns the snapshot, or
/// the close to send instead.
async fn register_rooms(
    state: &AppState,
    actor: &Actor,
    conn: ConnId,
) -> Result<Ready, CloseFrame> {
    let close = |code, reason: &str| CloseFrame {
        code,
        reason: reason.into(),
    };
    match state.service.credential_active(actor).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(conn, user_id = %actor.user_id, "credential revoked while connecting");
            return Err(close(close_code::SESSION_ENDED, "session ended"));
        }
        Err(e) => {
            tracing::warn!(conn, error = %e.message, "checking a new connection's credential");
            return Err(close(close_code::TRY_AGAIN_LATER, "try again later"));
        }
    }
    for _ in 0..SNAPSHOT_ATTEMPTS {
        let Some(epoch) = state.hub.membership_epoch(conn) else {
            // Closed and unregistered by the hub meanwhile.
            return Err(close(close_code::SESSION_ENDED, "session ended"));
        };
        let ready = match state.service.ready(actor).await {
            Ok(ready) => ready,
            Err(e) if e.code == ErrorCode::Unauthorized => {
                return Err(close(close_code::SESSION_ENDED, "session ended"));
            }
            Err(e) => {
                tracing::warn!(conn, error = %e.message, "taking a new connection's snapshot");
                return Err(close(close_code::TRY_AGAIN_LATER, "try again later"));
            }
        };
        if state
            .hub
            .set_rooms(conn, ready.rooms.iter().map(|r| r.id.clone()), epoch)
        {
            return Ok(ready);
        }
    }
    Err(close(close_code::TRY_AGAIN_LATER, "try again later"))
}

/// Serializes an event once. Events are plain data; failure would be a bug, reported as
/// an `internal` error event rather than a panic.
pub fn encode<T: serde::Serialize>(value: &T) -> Utf8Bytes {
    match serde_json::to_string(value) {
        Ok(text) => Utf8Bytes::from(text),
        Err(e) => {
            let err = AppError::internal(e);
            Utf8Bytes::from(serde_json::to_string(&Event::Error(err.detail())).unwrap_or_default())
        }
    }
}

/// Reads frames until the client closes, the socket fails, or a frame breaks the rules.
/// Returns the close the server must send, if any.
async fn read_loop(
    state: &AppState,
    actor: &Actor,
    conn: ConnId,
    mut stream: SplitStream<WebSocket>,
    replies: mpsc::Sender<Outbound>,
    heard: &Heard,
) -> Option<CloseReason> {
    let reply_stall = Duration::from_secs(state.service.limits().ws_pong_timeout_secs.max(1));
    while let Some(received) = stream.next().await {
        heard.now();
        let message = match received {
            Ok(message) => message,
            Err(e) => return read_error_close(e),
        };
        let answer = match message {
            Message::Text(text) => dispatch::handle(state, actor, conn, text.as_str()).await,
            Message::Binary(_) => Some(Outbound::frame(encode(&Event::Error(
                AppError::new(ErrorCode::BadRequest, "binary frames are not supported").detail(),
            )))),
            Message::Close(_) => return None,
            // tungstenite answers pings itself; pongs need nothing.
            Message::Ping(_) | Message::Pong(_) => None,
        };
        if let Some(frame) = answer {
            // The reply shares the outbound queue with events. A client that pipelines
            // requests faster than it reads the replies fills it: stop reading until
            // there is room (TCP then pushes back on the client), and close a client
            // that reads nothing for a whole pong timeout as a slow consumer.
            // Usually there is room: no timer then.
            let frame = match replies.try_send(frame) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => return None,
                Err(mpsc::error::TrySendError::Full(frame)) => frame,
            };
            match tokio::time::timeout(reply_stall, replies.send(frame)).await {
                Ok(Ok(())) => {}
                // The writer is gone: the connection is closing.
                Ok(Err(_)) => return None,
                Err(_) => {
                    return Some(CloseReason {
                        code: close_code::SLOW_CONSUMER,
                        reason: "slow consumer: replies not read",
                    })
                }
            }
        }
    }
    None
}

/// The close to send for a read error (RFC 6455 §7.4.1): 1009 for a message over the
/// size limit (whole or in fragments), 1007 for a text message that is not UTF-8, 1002
/// for any other protocol violation; none when the socket itself failed.
fn read_error_close(e: axum::Error) -> Option<CloseReason> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let inner = e.into_inner().downcast::<WsError>().ok()?;
    let (code, reason) = match *inner {
        WsError::Capacity(_) => (close_code::MESSAGE_TOO_BIG, "message too big"),
        WsError::Utf8(_) => (close_code::INVALID_PAYLOAD, "text message is not UTF-8"),
        WsError::Protocol(_) => (close_code::PROTOCOL_ERROR, "protocol error"),
        _ => return None,
    };
    Some(CloseReason { code, reason })
}

/// When the connection last heard from its client (any frame, pongs included), for the
/// heartbeat.
struct Heard {
    start: tokio::time::Instant,
    /// Milliseconds after `start`.
    at_ms: AtomicU64,
}

impl Default for Heard {
    fn default() -> Self {
        Heard {
            start: tokio::time::Instant::now(),
            at_ms: AtomicU64::new(0),
        }
    }
}

impl Heard {
    /// Records that the client was heard from now.
    fn now(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the client was last heard from.
    fn silence(&self) -> Duration {
        let at = Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(at)
    }
}

/// Most seqs a [`Cursor`] remembers above its contiguous range.
const MAX_AHEAD: usize = 4096;

/// What a connection has sent of one room's history.
///
/// Changes reach a connection in seq order from one node, but not necessarily when
/// several nodes publish (seq 5 may arrive before seq 4): the cursor records exactly
/// which seqs went out, so a replay leaves out only those and sends a lower seq that is
/// still on its way, instead of assuming everything below the highest was sent.
#[derive(Debug, Clone)]
struct Cursor {
    /// The connection has sent every change with a seq in
    /// `(contiguous_from, contiguous_to]`.
    contiguous_from: i64,
    contiguous_to: i64,
    /// Seqs above `contiguous_to + 1` that went out before a lower one. At most
    /// [`MAX_AHEAD`]: past that the lowest are forgotten, so a later replay may send them
    /// again (a repeat, which clients drop by `(room_id, seq)`; never a loss).
    ahead: BTreeSet<i64>,
    /// Live change frames with a seq at or below this were replayed already: dropped.
    floor: i64,
}

impl Cursor {
    /// A room whose live changes reach the connection from after `seq`.
    fn live_after(seq: i64) -> Self {
        Cursor {
            contiguous_from: seq,
            contiguous_to: seq,
            ahead: BTreeSet::new(),
            floor: 0,
        }
    }

    /// Records that the change with `seq` went out.
    fn sent(&mut self, seq: i64) {
        if seq <= self.contiguous_to {
            return;
        }
        if seq == self.contiguous_to + 1 {
            self.contiguous_to = seq;
            self.absorb();
        } else {
            self.ahead.insert(seq);
            if self.ahead.len() > MAX_AHEAD {
                self.ahead.pop_first();
            }
        }
    }

    /// Whether the change with `seq` went out on this connection.
    fn was_sent(&self, seq: i64) -> bool {
        (seq > self.contiguous_from && seq <= self.contiguous_to) || self.ahead.contains(&seq)
    }

    /// Records a replay of every change in `(since, up_to]` (the ones [`was_sent`] left
    /// out went out now): live frames up to `up_to` are covered from here on.
    ///
    /// [`was_sent`]: Cursor::was_sent
    fn replayed(&mut self, since: i64, up_to: i64) {
        self.contiguous_from = if since <= self.contiguous_to {
            self.contiguous_from.min(since)
        } else {
            since
        };
        self.contiguous_to = self.contiguous_to.max(up_to);
        let to = self.contiguous_to;
        self.ahead.retain(|&seq| seq > to);
        self.absorb();
        self.floor = self.floor.max(up_to);
    }

    /// Moves `contiguous_to` over the seqs in `ahead` that now follow it.
    fn absorb(&mut self) {
        while self.ahead.remove(&(self.contiguous_to + 1)) {
            self.contiguous_to += 1;
        }
    }
}

/// The writing half of a connection: drains the outbound queue in order, drops live
/// changes a replay already covered, and performs `sync` replays in queue order.
struct Writer {
    sink: SplitSink<WebSocket, Message>,
    /// The connection's queued-bytes budget, released as frames are written.
    queued_bytes: Arc<std::sync::atomic::AtomicUsize>,
    state: AppState,
    actor: Actor,
    cursors: HashMap<String, Cursor>,
    heard: Arc<Heard>,
    ping_every: Duration,
    pong_timeout: Duration,
}

impl Writer {
    /// Replays `resume` first (the connect URL's `since`), then writes queued frames,
    /// flushing once per batch, until the queue closes or the hub asks for a close.
    async fn run(
        mut self,
        mut queue: mpsc::Receiver<Outbound>,
        mut close: watch::Receiver<Option<CloseReason>>,
        resume: Vec<(String, Option<i64>)>,
    ) {
        if !resume.is_empty() && self.sync(resume, None).await.is_err() {
            return;
        }
        let mut ping = tokio::time::interval_at(
            tokio::time::Instant::now() + self.ping_every,
            self.ping_every,
        );
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = ping.tick() => {
                    if self.heard.silence() > self.ping_every + self.pong_timeout {
                        let frame = CloseFrame {
                            code: close_code::HEARTBEAT_TIMEOUT,
                            reason: "no pong".into(),
                        };
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.send(Message::Close(Some(frame)))).await;
                        return;
                    }
                    if self.sink.send(Message::Ping(Default::default())).await.is_err() {
                        return;
                    }
                }
                _ = close.changed() => {
                    let reason = *close.borrow();
                    let frame = reason.map(|r| CloseFrame { code: r.code, reason: r.reason.into() });
                    if reason.is_some_and(|r| r.code == close_code::SERVICE_RESTART) {
                        // Shutting down: deliver what is already queued first.
                        while let Ok(item) = queue.try_recv() {
                            if self.write(item).await.is_err() {
                                return;
                            }
                        }
                    }
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.send(Message::Close(frame))).await;
                    return;
                }
                next = queue.recv() => {
                    let Some(item) = next else {
                        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.sink.close()).await;
                        return;
                    };
                    // A client that stops reading blocks this write once the socket's
                    // buffers fill: keep watching for the hub's close (4008) meanwhile, so
                    // the connection is released instead of hanging on forever.
                    let blocked_close = {
                        let batch = async {
                            self.write(item).await?;
                            while let Ok(item) = queue.try_recv() {
                                self.write(item).await?;
                            }
                            self.sink.flush().await
                        };
                        tokio::pin!(batch);
                        // Usually the socket takes the whole batch at once: try that before
                        // setting up the wait on both.
                        let first = std::future::poll_fn(|cx| {
                            std::task::Poll::Ready(std::future::Future::poll(batch.as_mut(), cx))
                        })
                        .await;
                        match first {
                            std::task::Poll::Ready(Ok(())) => continue,
                            std::task::Poll::Ready(Err(_)) => return,
                            std::task::Poll::Pending => {}
                        }
                        tokio::select! {
                            biased;
                            written = &mut batch => match written {
                                Ok(()) => continue,
                                Err(_) => return,
                            },
                            _ = close.changed() => *close.borrow(),
                        }
                    };
                    // The socket is full, so a close frame will rarely get through; try
                    // briefly, then drop the connection.
                    let frame = blocked_close.map(|r| CloseFrame { code: r.code, reason: r.reason.into() });
                    let _ = tokio::time::timeout(
                        Duration::from_millis(100),
                        self.sink.send(Message::Close(frame)),
                    )
                    .await;
                    return;
                }
            }
        }
    }

    /// Feeds one queue item to the socket (without flushing).
    async fn write(&mut self, item: Outbound) -> Result<(), axum::Error> {
        match item {
            Outbound::Frame {
                frame,
                change,
                counted,
            } => {
                self.queued_bytes.fetch_sub(counted, Ordering::Relaxed);
                if let Some((room, seq)) = change {
                    // Looked up by `&str` first: no allocation per frame once the room
                    // has a cursor.
                    let cursor = match self.cursors.get_mut(&*room) {
                        Some(cursor) => cursor,
                        None => self
                            .cursors
                            .entry(room.to_string())
                            .or_insert_with(|| Cursor::live_after(seq - 1)),
                    };
                    if seq <= cursor.floor {
                        return Ok(());
                    }
                    cursor.sent(seq);
                }
                self.sink.feed(Message::Text(frame)).await
            }
            Outbound::Sync { rooms, reply_id } => self.sync(rooms, reply_id).await,
        }
    }

    /// Replays each room after its `since` (see `Service::replay`), leaving out what this
    /// connection already sent, then drops live changes up to where the replay reached
    /// and answers `reply_id` with `{rooms: {room_id: seq}}`.
    async fn sync(
        &mut self,
        rooms: Vec<(String, Option<i64>)>,
        reply_id: Option<serde_json::Value>,
    ) -> Result<(), axum::Error> {
        let mut reached = serde_json::Map::new();
        for (room_id, since) in rooms {
            // Changes that went out on this connection already are left out.
            let cursor = self.cursors.get(&room_id).cloned();
            let skip = move |seq: i64| cursor.as_ref().is_some_and(|c| c.was_sent(seq));
            let mut from = since;
            let up_to = loop {
                let page = match self
                    .state
                    .service
                    .replay(&self.actor, &room_id, from, &skip)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        // A failed `sync` request is answered and stops there; a room in
                        // the connect URL that cannot be resumed gets an `error` event
                        // naming it, and the others still resume.
                        let Some(id) = reply_id else {
                            let mut detail = e.detail();
                            detail.field = Some(format!("since.{room_id}"));
                            self.sink
                                .feed(Message::Text(encode(&Event::Error(detail))))
                                .await?;
                            break None;
                        };
                        let reply = encode(&Reply::err(id, e.detail()));
                        self.sink.feed(Message::Text(reply)).await?;
                        return self.sink.flush().await;
                    }
                };
                for (_, text) in page.frames {
                    self.sink.feed(Message::Text(text.into())).await?;
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
            reached.insert(room_id, serde_json::Value::from(up_to));
        }
        if let Some(id) = reply_id {
            let data = serde_json::json!({ "rooms": reached });
            self.sink
                .feed(Message::Text(encode(&Reply::ok(id, data))))
                .await?;
        }
        self.sink.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    /// The seqs in `(since, up_to]` a replay sends with `cursor` (what `sync` does).
    fn replay(cursor: &Cursor, since: i64, up_to: i64) -> Vec<i64> {
        (since + 1..=up_to)
            .filter(|s| !cursor.was_sent(*s))
            .collect()
    }

    #[test]
    fn a_seq_that_arrives_after_a_higher_one_is_neither_lost_nor_repeated() {
        // The connection went live after seq 3; seq 5 arrives live before seq 4 (two
        // nodes published them), then the client asks for a replay from 3.
        let mut cursor = Cursor::live_after(3);
        cursor.sent(5);
        let mut delivered = vec![5];
        delivered.extend(replay(&cursor, 3, 5));
        cursor.replayed(3, 5);
        // The late live 4 is dropped only if the replay covered it.
        let late_live = 4;
        if late_live > cursor.floor {
            cursor.sent(late_live);
            delivered.push(late_live);
        }
        delivered.sort_unstable();
        assert_eq!(delivered, vec![4, 5], "every change exactly once");
    }

    #[test]
    fn in_order_arrival_keeps_one_contiguous_range() {
        let mut cursor = Cursor::live_after(10);
        for seq in 11..=20 {
            cursor.sent(seq);
        }
        assert_eq!((cursor.contiguous_from, cursor.contiguous_to), (10, 20));
        assert!(cursor.ahead.is_empty());
        assert_eq!(replay(&cursor, 5, 22), vec![6, 7, 8, 9, 10, 21, 22]);
        cursor.sent(23);
        cursor.sent(22);
        cursor.sent(21);
        assert_eq!(
            cursor.contiguous_to, 23,
            "gaps close as the lower seqs arrive"
        );
        assert!(cursor.ahead.is_empty());
    }

    #[test]
    fn a_replay_joins_what_was_sent_and_what_it_sent() {
        let mut cursor = Cursor::live_after(10);
        cursor.sent(12);
        assert_eq!(replay(&cursor, 8, 13), vec![9, 10, 11, 13]);
        cursor.replayed(8, 13);
        assert_eq!((cursor.contiguous_from, cursor.contiguous_to), (8, 13));
        assert_eq!(cursor.floor, 13);
        assert!(replay(&cursor, 8, 13).is_empty(), "nothing twice");
    }

    #[test]
    fn a_replay_from_the_latest_page_claims_nothing_below_where_it_reached() {
        // `since` unknown: `sync` records the replay as `(up_to, up_to]`.
        let mut cursor = Cursor::live_after(50);
        cursor.replayed(50, 50);
        assert_eq!(replay(&cursor, 40, 50), (41..=50).collect::<Vec<_>>());
    }
}
