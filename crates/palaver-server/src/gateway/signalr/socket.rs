//! The SignalR [`Transport`]: hub protocol records over one WebSocket (or, with stateful
//! reconnect, over the succession of WebSockets a client reconnects with), as a
//! connection of the live core.
//!
//! - In: text frames are split into records ([`Splitter`]), each parsed once
//!   ([`record::parse`]); an Invocation becomes a [`Request`] of the hub
//!   ([`super::chat`], [`super::webrtc`]) with its invocation id; Ping, Ack, Sequence and
//!   CancelInvocation are handled here. Records of one frame are handed over one at a time
//!   and no further frame is read until they are, so a client that floods is held back by
//!   TCP, as on the native wire.
//! - Out: frames of the hub's [`Wire`] (whole records) are written as text frames;
//!   answers are Completions, only for invocations that carried an id.
//! - Keep-alive: a Ping after [`KEEP_ALIVE`] without sending anything; a client silent
//!   for [`CLIENT_TIMEOUT`] is closed (or, with stateful reconnect, considered gone until
//!   it reconnects).
//! - Stateful reconnect (hub protocol version 2): every trackable message sent gets the
//!   next sequence id and is kept until the client acknowledges it (Ack). When the socket
//!   drops, the connection stays registered with the hub for [`RECONNECT_WINDOW`]: events
//!   keep being buffered, and a WebSocket reconnecting with the same connection token is
//!   handed over ([`super::Sessions`]); the server then sends Sequence and every
//!   unacknowledged message, and skips the client's messages it already processed. The
//!   buffer is bounded ([`MAX_UNACKED_BYTES`]): past it the connection ends, and its
//!   resume ticket ([`super::resume`]) lets the client's next connection replay what it
//!   missed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt as _};
use palaver_protocol::ws::{close_code, RequestId};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::record::{self, HubMessage, Splitter};
use super::resume::Resume;
use super::{chat, webrtc};
use crate::error::{AppError, AppResult};
use crate::gateway::native::handshake::WebSocket;
use crate::hub::CloseReason;
use crate::live::connection::{Gone, Inbound, Transport};
use crate::live::request::{Request, Response};
use crate::live::wire::{Frame, Wire};
use crate::AppState;

/// Send a Ping after this long without sending anything (ASP.NET's `KeepAliveInterval`).
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Close a client that sent nothing for this long (ASP.NET's `ClientTimeoutInterval`;
/// the official clients ping every 15 s).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stateful connection whose socket dropped waits for the client to
/// reconnect before it ends.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// Bytes of sent but unacknowledged messages a stateful connection keeps.
pub const MAX_UNACKED_BYTES: usize = 4 * 1024 * 1024;
/// Records of one frame waiting to be handled: a frame bringing more is a flood and
/// closes the connection.
pub const MAX_PENDING_RECORDS: usize = 128;
/// How soon after processing a client message the server acknowledges it (stateful).
const ACK_DELAY: Duration = Duration::from_millis(200);

/// The hub a connection is on, with what it needs to know per connection.
pub enum Hub {
    /// `/hubs/chat`: the user's direct-message rooms (messages there are
    /// `ReceivePrivateMessage`), and rooms known to be group rooms.
    Chat {
        dm_rooms: HashSet<String>,
        group_rooms: HashSet<String>,
    },
    /// `/hubs/webrtc`.
    WebRtc(webrtc::Context),
}

/// Stateful reconnect's per-connection state.
struct Stateful {
    /// The sequence id of the next trackable message the server sends.
    next_out: u64,
    /// Sent, not yet acknowledged, in order.
    unacked: VecDeque<Unacked>,
    unacked_bytes: usize,
    /// The client's trackable messages: the id the next one carries, and the highest
    /// processed.
    next_in: u64,
    latest_in: u64,
    /// The highest id acknowledged to the client, and when to acknowledge next.
    acked_in: u64,
    ack_due: Option<Instant>,
    /// Replacement sockets, from a reconnect with this connection's token.
    swap: mpsc::Receiver<Box<WebSocket>>,
}

/// A frame sent under stateful reconnect and not yet acknowledged.
struct Unacked {
    /// The sequence id of its first record.
    first: u64,
    /// How many records it holds.
    count: u64,
    frame: Frame,
    /// The room change it carries, if any.
    change: Option<(Box<str>, i64)>,
}

/// A SignalR connection serving one live connection of the core.
pub struct SignalRSocket<const WEBRTC: bool> {
    /// `None` while a stateful connection waits for its client to reconnect.
    ws: Option<WebSocket>,
    state: AppState,
    hub: Hub,
    splitter: Splitter,
    /// Records received and not yet handled.
    records: VecDeque<String>,
    max_record: usize,
    last_sent: Instant,
    last_heard: Instant,
    /// Since when a stateful connection has had no socket.
    detached_at: Option<Instant>,
    /// The core asked for a heartbeat: answered by the next `recv` (the keep-alive is
    /// this transport's own).
    heartbeat: bool,
    stateful: Option<Stateful>,
    /// Why the connection is being closed, for the Close record (protocol errors).
    close_error: Option<String>,
    /// The handshake response is still to be sent (when the connection is registered).
    handshake_pending: bool,
    /// Where the connection is, for its resume ticket (negotiated connections).
    resume: Option<Arc<Resume>>,
}

/// A socket whose handshake is done, ready to serve.
pub struct Opened {
    pub ws: WebSocket,
    pub splitter: Splitter,
    pub records: VecDeque<String>,
    /// `Some` for stateful reconnect: where replacement sockets arrive.
    pub swap: Option<mpsc::Receiver<Box<WebSocket>>>,
    /// `Some` for a negotiated connection, which leaves a resume ticket.
    pub resume: Option<Arc<Resume>>,
}

impl<const WEBRTC: bool> SignalRSocket<WEBRTC> {
    /// The connection over a socket that completed the handshake.
    pub fn new(opened: Opened, state: AppState, hub: Hub) -> Self {
        let max_record = state.service.limits().ws_frame_max_bytes;
        let now = Instant::now();
        SignalRSocket {
            ws: Some(opened.ws),
            state,
            hub,
            splitter: opened.splitter,
            records: opened.records,
            max_record,
            last_sent: now,
            last_heard: now,
            detached_at: None,
            heartbeat: false,
            stateful: opened.swap.map(|swap| Stateful {
                next_out: 1,
                unacked: VecDeque::new(),
                unacked_bytes: 0,
                next_in: 1,
                latest_in: 0,
                acked_in: 0,
                ack_due: None,
                swap,
            }),
            close_error: None,
            handshake_pending: true,
            resume: opened.resume,
        }
    }

    /// Writes a record that takes no sequence id (Ping, Ack, Sequence, Close) and
    /// flushes, if a socket is attached.
    async fn send_control(&mut self, text: String) -> Result<(), Gone> {
        let Some(ws) = self.ws.as_mut() else {
            return Ok(());
        };
        self.last_sent = Instant::now();
        ws.send(Message::Text(text.into())).await.map_err(|_| Gone)
    }

    /// Buffers `frame` (whole trackable records) for the client, numbering it under
    /// stateful reconnect.
    async fn write(&mut self, frame: Frame) -> Result<(), Gone> {
        self.write_change(frame, None).await
    }

    /// [`Self::write`] for a frame carrying `change` (room and seq).
    async fn write_change(
        &mut self,
        frame: Frame,
        change: Option<(&str, i64)>,
    ) -> Result<(), Gone> {
        if frame.is_empty() {
            return Ok(());
        }
        if let (Some(resume), Some((room_id, seq))) = (&self.resume, change) {
            resume.track().sent(room_id, seq);
        }
        if let Some(s) = self.stateful.as_mut() {
            let count = record::count_records(frame.as_str());
            s.unacked.push_back(Unacked {
                first: s.next_out,
                count,
                frame: frame.clone(),
                change: change.map(|(room_id, seq)| (Box::from(room_id), seq)),
            });
            s.next_out += count;
            s.unacked_bytes += frame.len();
            if s.unacked_bytes > MAX_UNACKED_BYTES {
                tracing::info!("SignalR connection closed: too many unacknowledged messages");
                return Err(Gone);
            }
        }
        let Some(ws) = self.ws.as_mut() else {
            return Ok(());
        };
        self.last_sent = Instant::now();
        if ws.feed(Message::Text(frame)).await.is_err() {
            self.socket_lost();
            if self.stateful.is_none() {
                return Err(Gone);
            }
        }
        Ok(())
    }

    /// The socket failed or closed: a stateful connection waits for the client to come
    /// back; others end (their next read says so).
    fn socket_lost(&mut self) {
        if self.stateful.is_some() && self.ws.is_some() {
            tracing::debug!("SignalR socket lost: waiting for a stateful reconnect");
            self.ws = None;
            self.detached_at = Some(Instant::now());
            self.splitter = Splitter::default();
            self.records.clear();
        }
    }

    /// A reconnected socket takes over: Sequence, then every unacknowledged message.
    async fn attach(&mut self, ws: WebSocket) -> Result<(), Gone> {
        let Some(s) = self.stateful.as_ref() else {
            return Err(Gone);
        };
        let first = s.unacked.front().map_or(s.next_out, |u| u.first);
        let frames: Vec<Frame> = s.unacked.iter().map(|u| u.frame.clone()).collect();
        tracing::debug!(replay = frames.len(), "SignalR stateful reconnect");
        self.ws = Some(ws);
        self.detached_at = None;
        self.splitter = Splitter::default();
        self.records.clear();
        self.last_heard = Instant::now();
        let ws = self.ws.as_mut().expect("just attached");
        let mut sent = ws
            .feed(Message::Text(record::sequence_record(first).into()))
            .await;
        for frame in frames {
            if sent.is_err() {
                break;
            }
            sent = ws.feed(Message::Text(frame)).await;
        }
        if sent.is_err() || ws.flush().await.is_err() {
            self.socket_lost();
        }
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Under stateful reconnect: the client acknowledged every message up to `id`.
    fn acknowledged(&mut self, id: u64) {
        if let Some(s) = self.stateful.as_mut() {
            while let Some(u) = s.unacked.front() {
                if u.first + u.count - 1 > id {
                    break;
                }
                s.unacked_bytes -= u.frame.len();
                if let (Some(resume), Some((room_id, seq))) = (&self.resume, &u.change) {
                    resume.track().acked(room_id, *seq);
                }
                s.unacked.pop_front();
            }
        }
    }

    /// Under stateful reconnect, whether a trackable client message is new (and counts
    /// it); always true otherwise.
    fn is_new(&mut self) -> bool {
        let Some(s) = self.stateful.as_mut() else {
            return true;
        };
        let id = s.next_in;
        s.next_in += 1;
        if id <= s.latest_in {
            return false;
        }
        s.latest_in = id;
        if s.ack_due.is_none() {
            s.ack_due = Some(Instant::now() + ACK_DELAY);
        }
        true
    }

    /// The next frame's records, or what ended the wait: `Ok(true)` when records are
    /// queued, `Ok(false)` when something else (a heartbeat answer, a socket handed
    /// over) should be reported or looked at again, `Err` with how the connection ends.
    async fn read_more(&mut self) -> Result<bool, Option<CloseReason>> {
        /// What woke the wait (taken out of `select!` so that its futures, which borrow
        /// `self`, are gone before it is handled).
        enum Woke {
            Read(Option<Result<Message, WsError>>),
            Swap(Option<Box<WebSocket>>),
            /// The earliest of the keep-alive, the client timeout and the Ack to send.
            Timer,
            Abandoned,
        }
        let keep_alive_at = self.last_sent + KEEP_ALIVE;
        let timeout_at = self.last_heard + CLIENT_TIMEOUT;
        let ack_at = self.stateful.as_ref().and_then(|s| s.ack_due);
        // One timer per idle connection, for whichever comes first.
        let timer_at = ack_at.map_or(keep_alive_at.min(timeout_at), |at| {
            at.min(keep_alive_at).min(timeout_at)
        });
        let reconnect_by = self.detached_at.unwrap_or_else(Instant::now) + RECONNECT_WINDOW;
        let woke = {
            let swap = self.stateful.as_mut().map(|s| &mut s.swap);
            match (self.ws.as_mut(), swap) {
                // Detached: wait for the client to reconnect.
                (None, Some(swap)) => tokio::select! {
                    ws = swap.recv() => Woke::Swap(ws),
                    () = tokio::time::sleep_until(reconnect_by) => Woke::Abandoned,
                },
                (None, None) => return Err(None),
                (Some(ws), swap) => {
                    let stateful = swap.is_some();
                    tokio::select! {
                        message = ws.next() => Woke::Read(message),
                        ws = async { swap.expect("stateful").recv().await }, if stateful => Woke::Swap(ws),
                        () = tokio::time::sleep_until(timer_at) => Woke::Timer,
                    }
                }
            }
        };
        match woke {
            Woke::Swap(Some(ws)) => {
                // A reconnect (possibly before this server saw the old socket fail).
                // Boxed: rare, and an idle connection should not carry its state.
                Box::pin(self.attach(*ws)).await.map_err(|_| None)?;
                Ok(false)
            }
            Woke::Swap(None) => Err(None),
            Woke::Abandoned => {
                tracing::debug!("SignalR client did not reconnect in time");
                Err(None)
            }
            Woke::Timer => {
                let now = Instant::now();
                if now >= timeout_at {
                    if self.stateful.is_some() {
                        // A stateful client that went silent may come back on a new
                        // socket.
                        self.socket_lost();
                        return Ok(false);
                    }
                    self.close_error = Some(
                        "Server timeout elapsed without receiving a message from the client."
                            .to_owned(),
                    );
                    return Err(Some(CloseReason {
                        code: close_code::HEARTBEAT_TIMEOUT,
                        reason: "client timeout",
                    }));
                }
                if ack_at.is_some_and(|at| now >= at) {
                    let s = self.stateful.as_mut().expect("ack_due is set");
                    s.ack_due = None;
                    let id = s.latest_in;
                    if id > s.acked_in {
                        s.acked_in = id;
                        if self.send_control(record::ack_record(id)).await.is_err() {
                            self.socket_lost();
                        }
                    }
                }
                if self.ws.is_some()
                    && Instant::now() >= self.last_sent + KEEP_ALIVE
                    && self
                        .send_control(record::PING_RECORD.to_owned())
                        .await
                        .is_err()
                {
                    self.socket_lost();
                }
                Ok(false)
            }
            Woke::Read(None) => self.gone(),
            Woke::Read(Some(Err(e))) => {
                if let Some(reason) = read_error_close(&e) {
                    self.close_error = Some(reason.reason.to_owned());
                    return Err(Some(reason));
                }
                self.gone()
            }
            Woke::Read(Some(Ok(message))) => {
                self.last_heard = Instant::now();
                match message {
                    Message::Text(text) => {
                        let mut out = Vec::new();
                        if let Err(e) = self.splitter.push(text.as_str(), self.max_record, &mut out)
                        {
                            return Err(self.protocol_error(close_code::MESSAGE_TOO_BIG, e.0));
                        }
                        self.records.extend(out);
                        if self.records.len() > MAX_PENDING_RECORDS {
                            return Err(self.protocol_error(
                                close_code::PROTOCOL_ERROR,
                                format!("more than {MAX_PENDING_RECORDS} messages in one frame"),
                            ));
                        }
                        Ok(!self.records.is_empty())
                    }
                    Message::Binary(_) => Err(self.protocol_error(
                        close_code::INVALID_PAYLOAD,
                        "binary frames are not supported: use the JSON hub protocol".to_owned(),
                    )),
                    Message::Close(_) => {
                        // The client closes on purpose (a reconnecting client drops its
                        // socket without a close frame).
                        self.client_closed();
                        Err(None)
                    }
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(false),
                }
            }
        }
    }

    /// The client ended the connection on purpose: it leaves no resume ticket.
    fn client_closed(&mut self) {
        if let Some(resume) = &self.resume {
            resume.track().client_closed = true;
        }
    }

    /// The `ready` snapshot (the transport's internal frame): the direct-message rooms,
    /// where the connection starts in each room, and the handshake response, now that
    /// the connection is registered.
    async fn ready(&mut self, json: &str) -> Result<(), Gone> {
        #[derive(serde::Deserialize)]
        struct Snapshot {
            dms: Vec<String>,
            rooms: HashMap<String, i64>,
        }
        if let Ok(snapshot) = serde_json::from_str::<Snapshot>(json) {
            let lobby = match &mut self.hub {
                Hub::Chat { dm_rooms, .. } => {
                    dm_rooms.extend(snapshot.dms);
                    None
                }
                Hub::WebRtc(context) => Some(context.lobby.clone()),
            };
            if let Some(resume) = &self.resume {
                let mut track = resume.track();
                for (room_id, seq) in &snapshot.rooms {
                    // On /hubs/webrtc only the lobby's changes are delivered.
                    if lobby.as_ref().is_none_or(|l| l.as_deref() == Some(room_id)) {
                        track.start(room_id, *seq);
                    }
                }
            }
        }
        if std::mem::take(&mut self.handshake_pending) {
            self.send_control(record::handshake_record(None)).await?;
        }
        Ok(())
    }

    /// The socket closed or failed: a stateful connection waits for a reconnect, any
    /// other ends.
    fn gone(&mut self) -> Result<bool, Option<CloseReason>> {
        if self.stateful.is_some() {
            self.socket_lost();
            Ok(false)
        } else {
            Err(None)
        }
    }

    /// Ends the connection for a protocol violation: the Close record will carry `why`.
    fn protocol_error(&mut self, code: u16, why: String) -> Option<CloseReason> {
        tracing::info!(error = %why, "SignalR protocol error: closing");
        self.close_error = Some(why);
        Some(CloseReason {
            code,
            reason: "protocol error",
        })
    }

    /// One record from the client: a request for the core, or `None` when it was
    /// handled here.
    async fn handle(&mut self, text: &str) -> Result<Option<Inbound>, Option<CloseReason>> {
        let message = match record::parse(text) {
            Ok(message) => message,
            Err(e) => return Err(self.protocol_error(close_code::PROTOCOL_ERROR, e.0)),
        };
        if message.is_trackable() && !self.is_new() {
            return Ok(None);
        }
        match message {
            HubMessage::Invocation {
                invocation_id,
                target,
                arguments,
                streams,
            } => {
                let request = if streams {
                    Err(AppError::new(
                        palaver_protocol::ErrorCode::BadRequest,
                        "streaming arguments are not supported",
                    ))
                } else {
                    self.request(&target, arguments)
                };
                Ok(Some(Inbound::Request {
                    id: invocation_id.map(Value::String),
                    request,
                }))
            }
            HubMessage::StreamInvocation { invocation_id } => {
                let error = "bad_request: stream invocations are not supported by this hub";
                let frame = record::completion_record(&invocation_id, Err(error));
                Box::pin(self.write(Frame::from(frame)))
                    .await
                    .map_err(|_| None)?;
                self.flush_socket().await;
                Ok(None)
            }
            HubMessage::Unexpected { kind } => Err(self.protocol_error(
                close_code::PROTOCOL_ERROR,
                format!("the server invokes nothing and takes no streams: unexpected message type {kind}"),
            )),
            // Invocations run to completion; their Completion is still sent (HubProtocol.md,
            // "Cancellation").
            HubMessage::CancelInvocation { .. } | HubMessage::Ping => Ok(None),
            HubMessage::Close => {
                self.client_closed();
                Err(None)
            }
            HubMessage::Ack { sequence_id } => {
                self.acknowledged(sequence_id);
                Ok(None)
            }
            HubMessage::Sequence { sequence_id } => match self.stateful.as_mut() {
                Some(s) if sequence_id <= s.latest_in + 1 => {
                    s.next_in = sequence_id;
                    Ok(None)
                }
                Some(_) => Err(self.protocol_error(
                    close_code::PROTOCOL_ERROR,
                    "Sequence ID greater than amount of messages we've received.".to_owned(),
                )),
                None => Err(self.protocol_error(
                    close_code::PROTOCOL_ERROR,
                    "Sequence is only used with stateful reconnect".to_owned(),
                )),
            },
        }
    }

    fn request(&mut self, target: &str, arguments: Vec<Value>) -> AppResult<Request> {
        match &self.hub {
            Hub::Chat { .. } => chat::request(target, arguments),
            Hub::WebRtc(context) => webrtc::request(target, arguments, context),
        }
    }

    async fn flush_socket(&mut self) {
        if let Some(ws) = self.ws.as_mut() {
            if ws.flush().await.is_err() {
                self.socket_lost();
            }
        }
    }

    /// Whether `room_id` is a direct-message room (asked once per room and connection;
    /// the rooms of `ready` are known from the start).
    async fn is_dm(&mut self, room_id: &str) -> bool {
        let Hub::Chat {
            dm_rooms,
            group_rooms,
        } = &mut self.hub
        else {
            return false;
        };
        if dm_rooms.contains(room_id) {
            return true;
        }
        if group_rooms.contains(room_id) {
            return false;
        }
        match self.state.service.room_is_dm(room_id).await {
            Ok(true) => {
                dm_rooms.insert(room_id.to_owned());
                true
            }
            Ok(false) => {
                group_rooms.insert(room_id.to_owned());
                false
            }
            Err(_) => false,
        }
    }
}

impl<const WEBRTC: bool> Transport for SignalRSocket<WEBRTC> {
    const WIRE: Wire = if WEBRTC {
        Wire::SignalRWebRtc
    } else {
        Wire::SignalRChat
    };

    async fn recv(&mut self) -> Inbound {
        loop {
            if std::mem::take(&mut self.heartbeat) {
                return Inbound::Heard;
            }
            if let Some(text) = self.records.pop_front() {
                match self.handle(&text).await {
                    Ok(Some(inbound)) => return inbound,
                    Ok(None) => continue,
                    Err(reason) => return Inbound::End(reason),
                }
            }
            match self.read_more().await {
                Ok(_) => {}
                Err(reason) => return Inbound::End(reason),
            }
        }
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Gone> {
        if let Some(json) = frame.as_str().strip_prefix(super::INTERNAL_MARK) {
            return Box::pin(self.ready(json)).await;
        }
        if let Hub::WebRtc(context) = &mut self.hub {
            context.observe(frame.as_str());
        }
        self.write(frame).await
    }

    async fn feed_change(&mut self, room_id: &str, seq: i64, frame: Frame) -> Result<(), Gone> {
        match &self.hub {
            Hub::WebRtc(context) => {
                // Only the lobby's messages reach this hub (as `NewMessage`).
                if context.lobby.as_deref() != Some(room_id) {
                    return Ok(());
                }
                self.write_change(frame, Some((room_id, seq))).await
            }
            Hub::Chat { .. } => {
                if frame.is_empty() {
                    // Not carried by this hub, but delivered all the same.
                    if let Some(resume) = &self.resume {
                        resume.track().sent(room_id, seq);
                    }
                    return Ok(());
                }
                let text = frame.as_str();
                let first_end = text.find(record::RS).map_or(text.len(), |i| i + 1);
                if first_end >= text.len() {
                    return self.write_change(frame, Some((room_id, seq))).await;
                }
                // `message.created`: `ReceiveMessage` for a group room, else
                // `ReceivePrivateMessage` (see `chat::event`).
                let range = if self.is_dm(room_id).await {
                    first_end..text.len()
                } else {
                    0..first_end
                };
                let bytes: &tokio_tungstenite::tungstenite::Bytes = frame.as_ref();
                match Frame::try_from(bytes.slice(range)) {
                    Ok(one) => self.write_change(one, Some((room_id, seq))).await,
                    Err(_) => Ok(()),
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        self.flush_socket().await;
        if self.ws.is_none() && self.stateful.is_none() {
            return Err(Gone);
        }
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.heartbeat = true;
        Ok(())
    }

    async fn answer(
        &mut self,
        id: Option<RequestId>,
        outcome: AppResult<Response>,
    ) -> Result<(), Gone> {
        // Without an invocation id the client expects nothing (HubProtocol.md,
        // "Non-Blocking Invocations").
        let Some(Value::String(id)) = id else {
            if let Err(e) = outcome {
                tracing::debug!(code = ?e.code, error = %e.message, "SignalR non-blocking invocation failed");
            }
            return Ok(());
        };
        let frame = match outcome {
            Ok(response) => {
                // `null` for requests that answer nothing, as ASP.NET does for `void`
                // hub methods.
                let result = result(&response).unwrap_or(Value::Null).to_string();
                record::completion_record(&id, Ok(Some(&result)))
            }
            Err(e) => record::completion_record(&id, Err(&error_text(&e))),
        };
        self.write(Frame::from(frame)).await?;
        self.flush().await
    }

    async fn close(&mut self, reason: Option<CloseReason>) {
        if self.handshake_pending {
            // Refused before it was registered (e.g. a credential revoked meanwhile).
            let error = match &reason {
                Some(r) if r.code == close_code::SESSION_ENDED => "Session ended: sign in again.",
                _ => "The server could not open the connection: try again later.",
            };
            let _ = self
                .send_control(record::handshake_record(Some(error)))
                .await;
            if let Some(ws) = self.ws.as_mut() {
                let _ = ws.close(None).await;
            }
            return;
        }
        let (error, allow_reconnect, code) = match &reason {
            None => (None, false, close_code::NORMAL),
            Some(r) => {
                let error = self.close_error.take().unwrap_or_else(|| match r.code {
                    close_code::SERVICE_RESTART => "Server is restarting.".to_owned(),
                    close_code::SESSION_ENDED => "Session ended: sign in again.".to_owned(),
                    close_code::SLOW_CONSUMER => {
                        "Connection closed: the client is not reading (slow consumer).".to_owned()
                    }
                    _ => format!("Connection closed: {}", r.reason),
                });
                let allow = matches!(
                    r.code,
                    close_code::SERVICE_RESTART
                        | close_code::SLOW_CONSUMER
                        | close_code::TRY_AGAIN_LATER
                        | close_code::HEARTBEAT_TIMEOUT
                );
                (Some(error), allow, r.code)
            }
        };
        let closed = self
            .send_control(record::close_record(error.as_deref(), allow_reconnect))
            .await
            .is_ok()
            && self.ws.is_some();
        if let Some(resume) = self.resume.clone() {
            // The Close record went out after everything written: the client has it all.
            resume.save(&self.state, closed).await;
        }
        if let Some(ws) = self.ws.as_mut() {
            let frame = CloseFrame {
                code: code.into(),
                reason: "".into(),
            };
            let _ = ws.send(Message::Close(Some(frame))).await;
        }
    }
}

/// An invocation's result: the message object for messages, the room, the call id, or
/// nothing (`null`) for requests that answer nothing.
fn result(response: &Response) -> Option<Value> {
    use crate::gateway::socketio::wire::camel;
    match response {
        Response::Message(m) => Some(chat::message(m)),
        Response::Room(room) => Some(camel(json!(room))),
        Response::Call(call) => Some(json!({"callId": call.call.call_id})),
        Response::CallRoom { joined, .. } => Some(json!({"callId": joined.call.call_id})),
        Response::Read(read) => Some(camel(json!(read))),
        Response::Presence(presence) => Some(camel(json!(presence))),
        Response::Synced { rooms } => Some(json!(rooms)),
        Response::Empty {} => None,
    }
}

/// An error as a Completion's `error`: `"<code>: <message>"` (the official clients show
/// it as the rejected invocation's message).
fn error_text(e: &AppError) -> String {
    let code = serde_json::to_value(e.code)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "internal".to_owned());
    match &e.field {
        Some(field) => format!("{code}: {} ({field})", e.message),
        None => format!("{code}: {}", e.message),
    }
}

/// The close for a read error (RFC 6455 §7.4.1), as on the native wire; none when the
/// socket itself failed.
fn read_error_close(e: &WsError) -> Option<CloseReason> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    let (code, reason) = match e {
        // The peer vanished (e.g. its network dropped): a lost socket, not a violation.
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => return None,
        WsError::Capacity(_) => (close_code::MESSAGE_TOO_BIG, "message too big"),
        WsError::Utf8(_) => (close_code::INVALID_PAYLOAD, "text message is not UTF-8"),
        WsError::Protocol(_) => (close_code::PROTOCOL_ERROR, "protocol error"),
        _ => return None,
    };
    Some(CloseReason { code, reason })
}
