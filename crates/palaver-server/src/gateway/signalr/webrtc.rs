//! The WebRTC hub at `/hubs/webrtc` (seed 000): `CallUser`, `AcceptCaller`,
//! `SendSignal`, `EndCall` and the lobby's `SendMessage`, mapped onto Palaver's calls
//! (ringing, accept, relay only between participants) and messages; and the core's events
//! written as the seed's client methods (`IncomingCall`, `CallAccepted`, `ReceiveSignal`,
//! `NewMessage`, plus `CallRejected`, `CallEnded` and `CallAnsweredElsewhere`).
//!
//! A call here is a Palaver call in the direct-message room of the two users, so it has
//! Palaver's rules: only the two participants exchange signals, a third user can neither
//! send nor receive anything of it. The table is in `docs/signalr.md`, "/hubs/webrtc".

use std::collections::HashMap;

use palaver_protocol::ws::{
    Event, IceCandidate, SdpType, SendMessage, SessionDescription, StartCall,
};
use palaver_protocol::{CallKind, ErrorCode};
use serde_json::{json, Value};

use super::args::Args;
use super::record::invocation_record;
use crate::error::{AppError, AppResult};
use crate::live::request::Request;
use crate::live::wire::Frame;

/// What one connection of this hub knows: the lobby room, and the calls ringing it, by
/// caller (learnt from the `IncomingCall`s it delivered), so that `AcceptCaller(callerId)`
/// and `RejectCall(callerId)` find the call.
#[derive(Debug, Default)]
pub struct Context {
    /// `signalr.lobby_room`.
    pub lobby: Option<String>,
    /// Caller user id → call id.
    ringing: HashMap<String, String>,
}

/// The prefix of an `IncomingCall` record of this wire.
const INCOMING: &str = "{\"type\":1,\"target\":\"IncomingCall\",";

impl Context {
    /// A connection's context with the configured lobby.
    pub fn new(lobby: Option<String>) -> Self {
        Context {
            lobby,
            ringing: HashMap::new(),
        }
    }

    /// Notes the calls a frame about to be sent rings this connection with, and forgets
    /// those it ends.
    pub fn observe(&mut self, frame: &str) {
        if frame.starts_with(INCOMING) {
            if let Some((from, call_id)) = first_argument(frame).and_then(|v| {
                Some((
                    v.get("from")?.as_str()?.to_owned(),
                    v.get("callId")?.as_str()?.to_owned(),
                ))
            }) {
                if self.ringing.len() >= 64 {
                    self.ringing.clear();
                }
                self.ringing.insert(from, call_id);
            }
        } else if frame.starts_with("{\"type\":1,\"target\":\"Call") {
            if let Some(call_id) = first_argument(frame)
                .and_then(|v| v.get("callId").and_then(Value::as_str).map(str::to_owned))
            {
                self.ringing.retain(|_, c| *c != call_id);
            }
        }
    }

    /// The call `caller` rings this connection with.
    fn call_from(&self, caller: &str) -> AppResult<String> {
        self.ringing.get(caller).cloned().ok_or_else(|| {
            AppError::new(ErrorCode::NotFound, "no call from this user is ringing you")
        })
    }
}

/// The first argument of a single invocation record this wire wrote.
fn first_argument(record: &str) -> Option<Value> {
    let body = record.strip_suffix(super::record::RS)?;
    let mut value: Value = serde_json::from_str(body).ok()?;
    Some(value.get_mut("arguments")?.get_mut(0)?.take())
}

/// A WebRTC signal as the seed's clients send it (`simple-peer`'s `signal` data or the
/// browser's objects): an SDP description `{type, sdp}`, or an ICE candidate as
/// `{type: "candidate", candidate: {...}}`, `{candidate: {...}}` or a bare
/// `RTCIceCandidateInit` `{candidate: "candidate:...", sdpMid, sdpMLineIndex}`.
enum Signal {
    Description(SessionDescription),
    Candidate(IceCandidate),
}

/// Reads `value` as a [`Signal`].
///
/// # Errors
/// `422 validation_failed` (field `signalData`) for anything else (simple-peer's
/// `renegotiate` and `transceiverRequest` signals included: Palaver relays descriptions
/// and candidates only).
fn signal(value: Value) -> AppResult<Signal> {
    let bad = || {
        AppError::validation(
            "signalData",
            "signalData must be an SDP description {type, sdp} or an ICE candidate",
        )
    };
    let Value::Object(mut object) = value else {
        return Err(bad());
    };
    let is_description = matches!(
        object.get("type").and_then(Value::as_str),
        Some("offer" | "answer" | "pranswer" | "rollback")
    );
    if is_description {
        return serde_json::from_value(Value::Object(object))
            .map(Signal::Description)
            .map_err(|_| bad());
    }
    if object.get("type").is_some_and(|t| t != "candidate") {
        return Err(bad());
    }
    object.remove("type");
    let candidate = match object.get("candidate") {
        Some(Value::Object(_)) => object.remove("candidate").unwrap_or(Value::Null),
        Some(Value::String(_)) => Value::Object(object),
        _ => return Err(bad()),
    };
    serde_json::from_value(candidate)
        .map(Signal::Candidate)
        .map_err(|_| bad())
}

/// Hub method `target` with `arguments` for a connection with `context`, as a request.
///
/// # Errors
/// `400 unknown_type` (no such method), `400 bad_request` (argument count or types),
/// `422 validation_failed` (`signalData`), `404 not_found` (`AcceptCaller` or
/// `RejectCall` for a caller not ringing this connection; `SendMessage` without a
/// configured lobby).
pub fn request(target: &str, arguments: Vec<Value>, context: &Context) -> AppResult<Request> {
    let mut args = Args::new(target, arguments);
    let request = match target {
        "CallUser" => {
            let user_id: String = args.next("userId")?;
            let offer = match signal(args.next("signalData")?)? {
                Signal::Description(d) if d.kind == SdpType::Offer => d,
                _ => {
                    return Err(AppError::validation(
                        "signalData",
                        "CallUser's signalData must be an SDP offer {type: \"offer\", sdp}",
                    ))
                }
            };
            Request::StartCall(StartCall {
                room_id: None,
                user_id: Some(user_id),
                kind: CallKind::Video,
                invite: None,
                offer: Some(offer),
            })
        }
        "AcceptCaller" => {
            let caller: String = args.next("callerId")?;
            let answer =
                match signal(args.next("signalData")?)? {
                    Signal::Description(d) if d.kind == SdpType::Answer => d,
                    _ => return Err(AppError::validation(
                        "signalData",
                        "AcceptCaller's signalData must be an SDP answer {type: \"answer\", sdp}",
                    )),
                };
            Request::AcceptCallWithAnswer {
                call_id: context.call_from(&caller)?,
                answer,
            }
        }
        "SendSignal" => {
            let to_user: String = args.next("userId")?;
            let (description, candidate) = match signal(args.next("signalData")?)? {
                Signal::Description(d) => (Some(d), None),
                Signal::Candidate(c) => (None, Some(c)),
            };
            Request::SignalUser {
                call_id: None,
                to_user,
                description,
                candidate,
            }
        }
        "RejectCall" => {
            let caller: String = args.next("callerId")?;
            Request::DeclineCall {
                call_id: context.call_from(&caller)?,
            }
        }
        "EndCall" => Request::HangUp { call_id: None },
        "SendMessage" => {
            let content: String = args.next("message")?;
            let room_id = context.lobby.clone().ok_or_else(|| {
                AppError::new(
                    ErrorCode::NotFound,
                    "there is no lobby room on this server (signalr.lobby_room)",
                )
            })?;
            Request::SendMessage(SendMessage {
                room_id,
                content,
                client_id: None,
                reply_to: None,
                attachment_id: None,
            })
        }
        _ => return Err(super::args::unknown_method("webrtc", target)),
    };
    args.finish()?;
    Ok(request)
}

/// A signal as this hub's clients read it: a description as `{type, sdp}`, a candidate
/// as `{type: "candidate", candidate: {candidate, sdpMid, sdpMLineIndex, ...}}`
/// (simple-peer's shape).
fn signal_json(
    description: Option<&SessionDescription>,
    candidate: Option<&IceCandidate>,
) -> Value {
    match (description, candidate) {
        (Some(d), _) => json!(d),
        (None, Some(c)) => json!({"type": "candidate", "candidate": c}),
        (None, None) => Value::Null,
    }
}

/// `event` as this hub's client method invocations; an empty frame for an event the hub
/// does not carry. `message.created` becomes `NewMessage` for every room: the transport
/// sends it only for the lobby.
pub fn event(event: &Event) -> Frame {
    let one =
        |target: &str, argument: Value| invocation_record(target, &json!([argument]).to_string());
    let text = match event {
        Event::Ready(ready) => super::ready_frame(ready),
        Event::CallIncoming(c) => one(
            "IncomingCall",
            json!({
                "from": c.caller.id,
                "name": c.caller.username,
                "signal": signal_json(c.offer.as_ref(), None),
                "callId": c.call_id,
            }),
        ),
        Event::Signal(s) => {
            let signal = signal_json(s.description.as_ref(), s.candidate.as_ref());
            match &s.description {
                Some(d) if matches!(d.kind, SdpType::Answer | SdpType::Pranswer) => {
                    one("CallAccepted", signal)
                }
                _ => one(
                    "ReceiveSignal",
                    json!({"from": s.from_user, "signal": signal}),
                ),
            }
        }
        Event::CallDeclined(c) => one(
            "CallRejected",
            json!({"from": c.user_id, "callId": c.call_id}),
        ),
        Event::CallEnded(c) => one(
            "CallEnded",
            json!({"callId": c.call_id, "reason": c.reason}),
        ),
        Event::CallMissed(c) => one(
            "CallEnded",
            json!({"callId": c.call_id, "reason": "missed"}),
        ),
        Event::CallAnsweredElsewhere(c) => {
            one("CallAnsweredElsewhere", json!({"callId": c.call_id}))
        }
        Event::MessageCreated(m) => one(
            "NewMessage",
            json!({"user": m.sender.username, "message": m.content}),
        ),
        _ => String::new(),
    };
    Frame::from(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::ws::CallIncoming;
    use palaver_protocol::MessageSender;

    #[test]
    fn signals_in_every_shape_the_seed_clients_send() {
        let offer = json!({"type": "offer", "sdp": "v=0"});
        assert!(matches!(signal(offer), Ok(Signal::Description(d)) if d.kind == SdpType::Offer));
        for candidate in [
            json!({"type": "candidate", "candidate": {"candidate": "candidate:1", "sdpMid": "0", "sdpMLineIndex": 0}}),
            json!({"candidate": {"candidate": "candidate:1", "sdpMid": "0"}}),
            json!({"candidate": "candidate:1", "sdpMid": "0", "sdpMLineIndex": 0}),
        ] {
            assert!(
                matches!(signal(candidate), Ok(Signal::Candidate(c)) if c.candidate == "candidate:1")
            );
        }
        for bad in [
            json!({"renegotiate": true}),
            json!({"type": "transceiverRequest", "transceiverRequest": {}}),
            json!("offer"),
            json!({"type": "offer", "sdp": "v=0", "extra": 1}),
        ] {
            assert!(signal(bad).is_err());
        }
    }

    #[test]
    fn accept_finds_the_call_from_the_incoming_call_delivered() {
        let mut context = Context::new(None);
        let answer = json!({"type": "answer", "sdp": "v=0"});
        assert_eq!(
            request(
                "AcceptCaller",
                vec![json!("alice"), answer.clone()],
                &context
            )
            .unwrap_err()
            .code,
            ErrorCode::NotFound
        );
        let incoming = event(&Event::CallIncoming(CallIncoming {
            call_id: "c1".into(),
            room_id: "dm".into(),
            caller: MessageSender {
                id: "alice".into(),
                username: "Alice".into(),
            },
            kind: CallKind::Video,
            offer: None,
        }));
        context.observe(incoming.as_str());
        assert!(matches!(
            request("AcceptCaller", vec![json!("alice"), answer.clone()], &context),
            Ok(Request::AcceptCallWithAnswer { call_id, .. }) if call_id == "c1"
        ));
        let ended = event(&Event::CallMissed(palaver_protocol::ws::CallRef {
            call_id: "c1".into(),
        }));
        context.observe(ended.as_str());
        assert!(request("AcceptCaller", vec![json!("alice"), answer], &context).is_err());
    }

    #[test]
    fn the_lobby_must_be_configured() {
        let none = Context::new(None);
        assert_eq!(
            request("SendMessage", vec![json!("hi")], &none)
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
        let lobby = Context::new(Some("lobby".into()));
        assert!(matches!(
            request("SendMessage", vec![json!("hi")], &lobby),
            Ok(Request::SendMessage(m)) if m.room_id == "lobby"
        ));
    }
}
