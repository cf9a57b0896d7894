//! Requests, typed: what a client of any wire protocol can ask of its live connection, and
//! what it gets back. Each gateway parses its wire's frames into a [`Request`] once, at the
//! edge; [`execute`] runs it against the service; the gateway encodes the [`Response`]
//! (see [`Wire::reply`](super::wire::Wire::reply)). `sync` is the exception: it replays
//! history into the connection itself, so the connection core handles it
//! ([`super::connection`]).

use std::collections::BTreeMap;

use palaver_protocol::rest::ReadState;
use palaver_protocol::ws::{
    CallJoined, IceCandidate, PresenceInfo, SendMessage, SendSignal, SessionDescription,
    SetPresence, StartCall,
};
use palaver_protocol::{Message, Room};
use serde::Serialize;

use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::service::messages::SendOptions;
use crate::service::Service;

/// One client request (the native protocol's names in `docs/protocol.md` are given for
/// each variant; the variants without one are for protocols that address messages by id
/// alone and call peers by user, such as Socket.IO's, see `docs/socketio.md`).
///
/// A `room_id` of `None` on a message request means "the message's own room": it is
/// found with [`Service::locate_message`], so a message in a room the caller is not a
/// member of is `404 not_found`, like one that does not exist.
#[derive(Debug, Clone)]
pub enum Request {
    /// `message.send`.
    SendMessage(SendMessage),
    /// No native name: `message` (its `room_id` ignored) to the DM room with `user_id`,
    /// opened if needed (SignalR's `SendPrivateMessage`). Answers [`Response::Message`].
    SendDirectMessage {
        user_id: String,
        message: SendMessage,
    },
    /// `message.edit` (the native protocol always gives `room_id`).
    EditMessage {
        room_id: Option<String>,
        message_id: String,
        content: String,
    },
    /// `message.delete` (the native protocol always gives `room_id`).
    DeleteMessage {
        room_id: Option<String>,
        message_id: String,
    },
    /// `reaction.add` (`add`) and `reaction.remove` (the native protocol always gives
    /// `room_id`): the caller's reaction `emoji` on a message.
    React {
        room_id: Option<String>,
        message_id: String,
        emoji: String,
        add: bool,
    },
    /// `read`: move the read marker to `seq`.
    MarkRead { room_id: String, seq: i64 },
    /// No native name: move the read marker up to the seq message `message_id` was
    /// created under (never back). `room_id`, when given, must be the message's room
    /// (else `404 not_found`). Answers [`Response::Read`].
    MarkMessageRead {
        room_id: Option<String>,
        message_id: String,
    },
    /// `room.join`.
    JoinRoom { room_id: String },
    /// `room.leave`.
    LeaveRoom { room_id: String },
    /// `presence.set`.
    SetPresence(SetPresence),
    /// `typing`.
    Typing { room_id: String, active: bool },
    /// `call.start`.
    StartCall(StartCall),
    /// `call.accept`.
    AcceptCall { call_id: String },
    /// No native name: accept `call_id` and send `answer` (an SDP answer) to the call's
    /// host, in one step (SignalR's `AcceptCaller`, see `docs/signalr.md`). Answers
    /// [`Response::Call`].
    AcceptCallWithAnswer {
        call_id: String,
        answer: SessionDescription,
    },
    /// `call.decline`.
    DeclineCall { call_id: String },
    /// `call.leave`.
    LeaveCall { call_id: String },
    /// `call.end`.
    EndCall { call_id: String },
    /// `rtc.signal`: an SDP description or ICE candidate for another participant.
    Signal(SendSignal),
    /// No native name: an SDP description or ICE candidate for every participant of the
    /// call whose user is `to_user` (normally one: the device that answered). `call_id:
    /// None` is the call this connection takes part in. See
    /// [`Service::relay_signal_to_user`]. Answers [`Response::Empty`].
    SignalUser {
        call_id: Option<String>,
        to_user: String,
        description: Option<SessionDescription>,
        candidate: Option<IceCandidate>,
    },
    /// No native name: hang up (Socket.IO's `end_call`): the host ends the call for
    /// everyone, anyone else leaves it, and a call left with one participant and nobody
    /// ringing ends. `call_id: None` is the call this connection takes part in. See
    /// [`Service::hang_up`]. Answers [`Response::Empty`].
    HangUp { call_id: Option<String> },
    /// No native name: make a call room (a private room with a number, see
    /// [`crate::service::call_rooms`]) and start a call of `kind` in it ringing nobody
    /// (seed 003's `CreateRoom`, `docs/signaling-compat.md`). Answers
    /// [`Response::CallRoom`].
    CreateCallRoom { kind: palaver_protocol::CallKind },
    /// No native name: join the call room numbered `number` and its call, or start one
    /// (seed 003's `JoinRoom`, see [`Service::join_call_room`]). Answers
    /// [`Response::CallRoom`].
    JoinCallRoom { number: i64 },
    /// `sync`: per room, replay every change after the given seq (`None`: from the latest
    /// page), then continue live. Handled by the connection core.
    Sync {
        rooms: BTreeMap<String, Option<i64>>,
    },
    /// `ping`: answered with an empty reply.
    Ping,
}

/// What a request answers on success.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// A message as stored (sent, edited, deleted as a tombstone, reacted to).
    Message(Box<Message>),
    /// The caller's read state after `read`.
    Read(ReadState),
    /// The room joined.
    Room(Box<Room>),
    /// The caller's presence after `presence.set`.
    Presence(PresenceInfo),
    /// The call joined (`call.start`, `call.accept`).
    Call(Box<CallJoined>),
    /// The call joined in a call room, with the room's number (`CreateCallRoom`,
    /// `JoinCallRoom`).
    CallRoom {
        number: i64,
        joined: Box<CallJoined>,
    },
    /// `sync`: the seq each room is now complete up to.
    Synced { rooms: BTreeMap<String, i64> },
    /// Done, nothing to say (`{}` on the native wire).
    Empty {},
}

/// Runs `request` for `actor` on connection `conn`.
///
/// # Errors
/// Whatever the service method answers (each documented in `docs/protocol.md`).
/// [`Request::Sync`] is not run here: it answers `500 internal` (the connection core
/// handles it before calling this).
pub async fn execute(
    service: &Service,
    actor: &Actor,
    conn: ConnId,
    request: Request,
) -> AppResult<Response> {
    Ok(match request {
        Request::SendMessage(req) => send(service, actor, &req.room_id, &req).await?,
        Request::SendDirectMessage {
            user_id,
            message: req,
        } => {
            let room = service.open_dm(actor, &user_id).await?;
            send(service, actor, &room.id, &req).await?
        }
        Request::EditMessage {
            room_id,
            message_id,
            content,
        } => {
            let room_id = room_of(service, actor, room_id, &message_id).await?;
            Response::Message(Box::new(
                service
                    .edit_message(actor, &room_id, &message_id, &content)
                    .await?,
            ))
        }
        Request::DeleteMessage {
            room_id,
            message_id,
        } => {
            let room_id = room_of(service, actor, room_id, &message_id).await?;
            Response::Message(Box::new(
                service.delete_message(actor, &room_id, &message_id).await?,
            ))
        }
        Request::React {
            room_id,
            message_id,
            emoji,
            add,
        } => {
            let room_id = room_of(service, actor, room_id, &message_id).await?;
            Response::Message(Box::new(
                service
                    .react(actor, &room_id, &message_id, &emoji, add)
                    .await?,
            ))
        }
        Request::MarkRead { room_id, seq } => {
            Response::Read(service.mark_read(actor, &room_id, seq).await?)
        }
        Request::MarkMessageRead {
            room_id,
            message_id,
        } => {
            let (located, seq) = service.locate_message(actor, &message_id).await?;
            if room_id.is_some_and(|given| given != located) {
                return Err(AppError::not_found("message"));
            }
            Response::Read(service.mark_read(actor, &located, seq).await?)
        }
        Request::JoinRoom { room_id } => {
            Response::Room(Box::new(service.join_room(actor, &room_id).await?))
        }
        Request::LeaveRoom { room_id } => {
            service.leave_room(actor, &room_id).await?;
            Response::Empty {}
        }
        Request::SetPresence(req) => Response::Presence(service.set_presence(actor, req).await?),
        Request::Typing { room_id, active } => {
            service.typing(actor, &room_id, active).await?;
            Response::Empty {}
        }
        Request::StartCall(req) => {
            Response::Call(Box::new(service.start_call(actor, conn, req).await?))
        }
        Request::AcceptCall { call_id } => {
            Response::Call(Box::new(service.accept_call(actor, conn, &call_id).await?))
        }
        Request::AcceptCallWithAnswer { call_id, answer } => {
            let joined = service.accept_call(actor, conn, &call_id).await?;
            let host = joined
                .call
                .participants
                .iter()
                .find(|p| p.participant_id == joined.call.host)
                .map(|p| p.user_id.clone());
            if let Some(host) = host.filter(|h| *h != actor.user_id) {
                service
                    .relay_signal_to_user(actor, conn, Some(&call_id), &host, Some(answer), None)
                    .await?;
            }
            Response::Call(Box::new(joined))
        }
        Request::DeclineCall { call_id } => {
            service.decline_call(actor, conn, &call_id).await?;
            Response::Empty {}
        }
        Request::LeaveCall { call_id } => {
            service.leave_call(conn, &call_id).await?;
            Response::Empty {}
        }
        Request::EndCall { call_id } => {
            service.end_call(actor, conn, &call_id).await?;
            Response::Empty {}
        }
        Request::Signal(req) => {
            service.relay_signal(actor, conn, req).await?;
            Response::Empty {}
        }
        Request::SignalUser {
            call_id,
            to_user,
            description,
            candidate,
        } => {
            service
                .relay_signal_to_user(
                    actor,
                    conn,
                    call_id.as_deref(),
                    &to_user,
                    description,
                    candidate,
                )
                .await?;
            Response::Empty {}
        }
        Request::HangUp { call_id } => {
            service.hang_up(actor, conn, call_id.as_deref()).await?;
            Response::Empty {}
        }
        Request::CreateCallRoom { kind } => {
            let (number, joined) = service.create_call_room(actor, conn, kind).await?;
            Response::CallRoom {
                number,
                joined: Box::new(joined),
            }
        }
        Request::JoinCallRoom { number } => Response::CallRoom {
            number,
            joined: Box::new(service.join_call_room(actor, conn, number).await?),
        },
        Request::Ping => Response::Empty {},
        Request::Sync { .. } => {
            return Err(AppError::internal("sync is handled by the connection core"))
        }
    })
}

/// Sends `req` (its content and options) in `room_id`.
async fn send(
    service: &Service,
    actor: &Actor,
    room_id: &str,
    req: &SendMessage,
) -> AppResult<Response> {
    let options = SendOptions {
        client_id: req.client_id.as_deref(),
        reply_to: req.reply_to.as_deref(),
        attachment_id: req.attachment_id.as_deref(),
    };
    let message = service
        .send_message(actor, room_id, &req.content, options)
        .await?;
    Ok(Response::Message(Box::new(message)))
}

/// The room of message `message_id`: `room_id` when given (the service then checks that
/// the message is in it), else the message's own room ([`Service::locate_message`]).
async fn room_of(
    service: &Service,
    actor: &Actor,
    room_id: Option<String>,
    message_id: &str,
) -> AppResult<String> {
    match room_id {
        Some(room_id) => Ok(room_id),
        None => Ok(service.locate_message(actor, message_id).await?.0),
    }
}
