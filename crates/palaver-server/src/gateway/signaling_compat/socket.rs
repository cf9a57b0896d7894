//! Seed 003's [`Transport`]: envelopes over one WebSocket (RFC 6455), as a connection of
//! the live core.
//!
//! - In: each text frame is one envelope, parsed once ([`envelope::parse`]) and made a
//!   [`Request`] with Palaver ids: a user number in `to` becomes the user it names among
//!   the participants of this socket's call (so a signal never reaches anyone outside
//!   it, the seed's `AreInSameRoom`), the call is the one this socket is in. Refusals are
//!   answered with an Error envelope. The request's `msg_type` travels as its request id,
//!   so the answer knows what it answers.
//! - Out: the call events the wire carries ([`envelope::event`]) are read back and
//!   written as envelopes with numbers; answers are RoomCreated, RoomJoined or Error.
//!
//! The transport follows the one call its socket is in (a connection is in at most one):
//! its room's number and the numbers of its participants' users, learnt from the answer
//! that joined it and from the events that followed. Events of a call can reach the
//! socket before the answer that joined it (the core writes events while a request
//! runs): those are held until the answer comes, then written in order.

use std::collections::{HashMap, VecDeque};

use futures_util::{SinkExt, StreamExt as _};
use palaver_protocol::ws::{CallJoined, Event, RequestId};
use palaver_protocol::ErrorCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::envelope::{self, Command};
use crate::error::{AppError, AppResult};
use crate::gateway::native::handshake::WebSocket;
use crate::hub::CloseReason;
use crate::live::connection::{Gone, Inbound, Transport};
use crate::live::request::{Request, Response};
use crate::live::wire::{Frame, Wire};
use crate::AppState;

/// Events held while a CreateRoom or JoinRoom runs, at most.
const MAX_HELD: usize = 256;
/// User numbers remembered per socket, at most (then forgotten and looked up again).
const MAX_NUMBERS: usize = 1024;

/// The call this socket is in.
struct InCall {
    call_id: String,
    /// The room's number.
    room: i64,
    /// The users taking part, by number (this socket's own user included).
    users: HashMap<i64, String>,
}

/// One upgraded WebSocket speaking seed 003's envelope.
pub struct SignalingSocket {
    ws: WebSocket,
    state: AppState,
    /// This socket's user, and their number.
    user_id: String,
    me: i64,
    call: Option<InCall>,
    /// Whether a CreateRoom or JoinRoom is running (events are then held).
    joining: bool,
    held: VecDeque<Event>,
    /// User id → number.
    numbers: HashMap<String, i64>,
}

impl SignalingSocket {
    /// Wraps an upgraded WebSocket of `user_id`, numbered `me`.
    pub fn new(ws: WebSocket, state: AppState, user_id: String, me: i64) -> Self {
        let mut numbers = HashMap::new();
        numbers.insert(user_id.clone(), me);
        SignalingSocket {
            ws,
            state,
            user_id,
            me,
            call: None,
            joining: false,
            held: VecDeque::new(),
            numbers,
        }
    }

    /// User `user_id`'s number (given now if it has none: a participant who came by
    /// another protocol). 0 if the store fails, which the recipient reads as "unknown".
    async fn number(&mut self, user_id: &str) -> i64 {
        if let Some(n) = self.numbers.get(user_id) {
            return *n;
        }
        match self.state.service.user_number(user_id).await {
            Ok(n) => {
                if self.numbers.len() >= MAX_NUMBERS {
                    self.numbers.clear();
                    self.numbers.insert(self.user_id.clone(), self.me);
                }
                self.numbers.insert(user_id.to_owned(), n);
                n
            }
            Err(e) => {
                tracing::warn!(code = ?e.code, "no number for a user of a signaling socket");
                0
            }
        }
    }

    /// A parsed command as a request, against the call this socket is in.
    fn request(&mut self, command: Command) -> AppResult<Request> {
        let not_in_room = || AppError {
            field: Some("payload.room_id".into()),
            ..AppError::new(ErrorCode::NotFound, "you are not in this room")
        };
        match command {
            Command::CreateRoom { kind } => {
                self.joining = true;
                Ok(Request::CreateCallRoom { kind })
            }
            Command::JoinRoom { room } => {
                self.joining = true;
                Ok(Request::JoinCallRoom { number: room })
            }
            Command::Signal {
                to,
                room,
                description,
                candidate,
            } => {
                let call = self.call.as_ref().ok_or_else(|| {
                    AppError::new(ErrorCode::NotFound, "you are in no room: join one first")
                })?;
                if room.is_some_and(|r| r != call.room) {
                    return Err(not_in_room());
                }
                let to_user = call
                    .users
                    .get(&to)
                    .filter(|_| to != self.me)
                    .ok_or_else(|| AppError {
                        field: Some("to".into()),
                        ..AppError::new(ErrorCode::NotFound, "no such user in your room")
                    })?
                    .clone();
                Ok(Request::SignalUser {
                    call_id: Some(call.call_id.clone()),
                    to_user,
                    description,
                    candidate,
                })
            }
            Command::LeaveRoom { room } => {
                let call = self
                    .call
                    .as_ref()
                    .ok_or_else(|| AppError::new(ErrorCode::NotFound, "you are in no room"))?;
                if room.is_some_and(|r| r != call.room) {
                    return Err(not_in_room());
                }
                Ok(Request::LeaveCall {
                    call_id: call.call_id.clone(),
                })
            }
        }
    }

    /// Writes `frame` (buffered).
    async fn send(&mut self, frame: Frame) -> Result<(), Gone> {
        self.ws.feed(Message::Text(frame)).await.map_err(|_| Gone)
    }

    /// Follows call `joined` in room `room`: answers RoomCreated (`msg_type` 0) or
    /// RoomJoined, then writes the events held meanwhile.
    async fn joined(&mut self, msg_type: i64, room: i64, joined: CallJoined) -> Result<(), Gone> {
        let call = joined.call;
        let mut users = HashMap::new();
        let mut members = Vec::new();
        let mut host = 0;
        for participant in &call.participants {
            let n = self.number(&participant.user_id).await;
            if participant.participant_id == call.host {
                host = n;
            }
            if users.insert(n, participant.user_id.clone()).is_none() {
                members.push(n);
            }
        }
        self.call = Some(InCall {
            call_id: call.call_id.clone(),
            room,
            users,
        });
        let me = self.me;
        let answer = if msg_type == envelope::CREATE_ROOM {
            envelope::encode(
                envelope::ROOM_CREATED,
                0,
                me,
                &json!({"room_id": room, "host": host}),
            )
        } else {
            // The joiner is last in join order; a user with another socket there already
            // is listed once.
            members.retain(|n| *n != me);
            members.push(me);
            envelope::encode(
                envelope::ROOM_JOINED,
                0,
                me,
                &json!({"room_id": room, "host": host, "members": members, "user_id": me}),
            )
        };
        self.send(answer).await?;
        for event in std::mem::take(&mut self.held) {
            self.write_event(event).await?;
        }
        Ok(())
    }

    /// Writes one call event as its envelope, if it is about this socket's call.
    async fn write_event(&mut self, event: Event) -> Result<(), Gone> {
        let call_id = match &event {
            Event::ParticipantJoined(e) => &e.call_id,
            Event::ParticipantLeft(e) => &e.call_id,
            Event::HostChanged(e) => &e.call_id,
            Event::CallEnded(e) => &e.call_id,
            Event::Signal(e) => &e.call_id,
            _ => return Ok(()),
        };
        let Some(call) = self.call.as_ref().filter(|c| c.call_id == *call_id) else {
            if self.joining && self.held.len() < MAX_HELD {
                self.held.push_back(event);
            }
            return Ok(());
        };
        let room = call.room;
        let me = self.me;
        let frame = match event {
            Event::ParticipantJoined(e) => {
                let n = self.number(&e.participant.user_id).await;
                if let Some(call) = self.call.as_mut() {
                    call.users.insert(n, e.participant.user_id);
                }
                envelope::encode(
                    envelope::USER_JOINED,
                    n,
                    me,
                    &json!({"room_id": room, "user_id": n}),
                )
            }
            Event::ParticipantLeft(e) => {
                let n = self.number(&e.user_id).await;
                if let Some(call) = self.call.as_mut() {
                    call.users.remove(&n);
                }
                envelope::encode(
                    envelope::USER_LEFT,
                    n,
                    me,
                    &json!({"room_id": room, "user_id": n, "reason": e.reason}),
                )
            }
            Event::HostChanged(e) => {
                let n = self.number(&e.user_id).await;
                envelope::encode(
                    envelope::HOST_CHANGED,
                    0,
                    me,
                    &json!({"room_id": room, "host": n}),
                )
            }
            Event::CallEnded(e) => {
                self.call = None;
                envelope::encode(
                    envelope::ROOM_CLOSED,
                    0,
                    me,
                    &json!({"room_id": room, "reason": e.reason}),
                )
            }
            Event::Signal(e) => {
                let from = self.number(&e.from_user).await;
                match (e.description, e.candidate) {
                    (Some(d), _) => envelope::encode(
                        envelope::SDP,
                        from,
                        me,
                        &json!({"room_id": room, "type": d.kind, "sdp": d.sdp}),
                    ),
                    (None, Some(c)) => {
                        let mut payload = json!(c);
                        payload["room_id"] = json!(room);
                        envelope::encode(envelope::ICE_CANDIDATE, from, me, &payload)
                    }
                    (None, None) => return Ok(()),
                }
            }
            _ => return Ok(()),
        };
        self.send(frame).await
    }
}

impl Transport for SignalingSocket {
    const WIRE: Wire = Wire::SignalingCompat;

    async fn recv(&mut self) -> Inbound {
        let message = match self.ws.next().await {
            None => return Inbound::End(None),
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                return Inbound::End(crate::gateway::native::socket::read_error_close(e))
            }
        };
        let (msg_type, request) = match message {
            Message::Text(text) => match envelope::parse(text.as_str(), self.me) {
                Ok((msg_type, command)) => (Some(msg_type), self.request(command)),
                Err(refused) => (refused.msg_type, Err(refused.error)),
            },
            Message::Binary(_) => (
                None,
                Err(AppError::new(
                    ErrorCode::BadRequest,
                    "binary frames are not supported: send envelopes as text",
                )),
            ),
            Message::Close(_) => return Inbound::End(None),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Inbound::Heard,
        };
        Inbound::Request {
            id: Some(msg_type.map_or(Value::Null, Value::from)),
            request,
        }
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Gone> {
        if frame.is_empty() {
            return Ok(());
        }
        match serde_json::from_str::<Event>(frame.as_str()) {
            Ok(event) => self.write_event(event).await,
            Err(e) => {
                tracing::error!(error = %e, "a signaling frame that is not an event");
                Ok(())
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        self.ws.flush().await.map_err(|_| Gone)
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        self.ws
            .send(Message::Ping(Default::default()))
            .await
            .map_err(|_| Gone)
    }

    async fn answer(
        &mut self,
        id: Option<RequestId>,
        outcome: AppResult<Response>,
    ) -> Result<(), Gone> {
        let msg_type = id.as_ref().and_then(Value::as_i64);
        // Events still held after this answer are of no call of this socket.
        self.joining = false;
        match outcome {
            Ok(Response::CallRoom { number, joined }) => {
                self.joined(msg_type.unwrap_or(envelope::JOIN_ROOM), number, *joined)
                    .await?;
            }
            Ok(_) => {
                if msg_type == Some(envelope::LEAVE_ROOM) {
                    self.call = None;
                }
            }
            Err(error) => {
                self.held.clear();
                let frame = envelope::error(self.me, msg_type, &error);
                self.send(frame).await?;
            }
        }
        self.held.clear();
        self.flush().await
    }

    async fn close(&mut self, reason: Option<CloseReason>) {
        match reason {
            Some(r) => {
                let frame = CloseFrame {
                    code: r.code.into(),
                    reason: r.reason.into(),
                };
                let _ = self.ws.send(Message::Close(Some(frame))).await;
            }
            None => {
                let _ = SinkExt::close(&mut self.ws).await;
            }
        }
    }
}
