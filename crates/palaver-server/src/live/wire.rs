//! Wire formats: how a typed [`Event`] or a request's outcome becomes the bytes one kind
//! of client reads.
//!
//! The hub encodes each delivered event once per wire format present among its recipients
//! ([`Encoded`]) and hands every recipient of that format the same bytes. Only the native
//! JSON protocol (`docs/protocol.md`), Socket.IO (`docs/socketio.md`), SignalR's two hubs
//! (`docs/signalr.md`) and seed 003's envelope (`docs/signaling-compat.md`).

use std::fmt::Write as _;
use std::sync::OnceLock;

use palaver_protocol::ws::{Event, Reply, RequestId};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::error::{AppError, AppResult};
use crate::live::request::Response;

/// An encoded text frame, shared by reference count between recipients.
pub type Frame = Utf8Bytes;

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Wire {
    /// The documented JSON protocol at `/api/v1/ws` (`docs/protocol.md`): events
    /// `{"type", "data"}` (plus a top-level `"seq"` for changes to a room's history),
    /// replies `{"type": "reply", "id", "ok", "data" | "error"}`.
    Native,
    /// Socket.IO (`docs/socketio.md`): frames are `<event name> <payload JSON>`, emitted
    /// by the Socket.IO transport under that name; answers are acknowledgements, made by
    /// the transport itself.
    SocketIo,
    /// SignalR's `/hubs/chat` (`docs/signalr.md`): frames are hub protocol records
    /// (Invocations of the seeds' client methods, each ending with `0x1E`); answers are
    /// Completions, made by the transport.
    SignalRChat,
    /// SignalR's `/hubs/webrtc` (`docs/signalr.md`), as [`Wire::SignalRChat`].
    SignalRWebRtc,
    /// Seed 003's envelope at `/compat/signaling/ws` (`docs/signaling-compat.md`): frames
    /// are the call events it carries, in native JSON, which its transport writes as
    /// envelopes with numbers instead of ids; answers are made by the transport.
    SignalingCompat,
}

impl Wire {
    /// How many wire formats there are (the size of [`Encoded`]'s cache).
    pub const COUNT: usize = 5;

    /// This format's index in `0..COUNT`.
    fn index(self) -> usize {
        match self {
            Wire::Native => 0,
            Wire::SocketIo => 1,
            Wire::SignalRChat => 2,
            Wire::SignalRWebRtc => 3,
            Wire::SignalingCompat => 4,
        }
    }

    /// `event` in this format, with its change `seq` when it has one.
    pub fn event(self, event: &Event, seq: Option<i64>) -> Frame {
        match self {
            Wire::Native => native_event(event, seq),
            Wire::SocketIo => crate::gateway::socketio::wire::event(event, seq),
            Wire::SignalRChat => crate::gateway::signalr::chat::event(event),
            Wire::SignalRWebRtc => crate::gateway::signalr::webrtc::event(event),
            Wire::SignalingCompat => crate::gateway::signaling_compat::envelope::event(event),
        }
    }

    /// The answer to a request: with an `id`, a reply carrying the outcome; without one,
    /// nothing on success and an `error` event on failure. Socket.IO answers with
    /// acknowledgements instead (its transport's [`answer`]): an `error` event on failure.
    ///
    /// [`answer`]: crate::live::connection::Transport::answer
    pub fn reply(self, id: Option<RequestId>, outcome: AppResult<Response>) -> Option<Frame> {
        match self {
            // SignalR answers with Completions, seed 003 with its envelopes, written by
            // their transports.
            Wire::SignalRChat | Wire::SignalRWebRtc | Wire::SignalingCompat => None,
            Wire::SocketIo => outcome
                .err()
                .map(|e| crate::gateway::socketio::wire::error(&e.detail(), "")),
            Wire::Native => {
                let frame = match (id, outcome) {
                    (Some(id), Ok(data)) => match serde_json::to_value(data) {
                        Ok(data) => to_frame(&Reply::ok(id, data)),
                        Err(e) => to_frame(&Reply::err(id, AppError::internal(e).detail())),
                    },
                    (Some(id), Err(e)) => to_frame(&Reply::err(id, e.detail())),
                    (None, Ok(_)) => return None,
                    (None, Err(e)) => to_frame(&Event::Error(e.detail())),
                };
                Some(frame)
            }
        }
    }
}

/// One event being delivered, with its encoding per wire format made at most once (on
/// first use) and shared by every recipient of that format.
pub struct Encoded<'a> {
    event: &'a Event,
    seq: Option<i64>,
    frames: [OnceLock<Frame>; Wire::COUNT],
}

impl<'a> Encoded<'a> {
    /// `event` (a change with `seq`, if given), not encoded yet.
    pub fn new(event: &'a Event, seq: Option<i64>) -> Self {
        Encoded {
            event,
            seq,
            frames: Default::default(),
        }
    }

    /// The event in `wire`'s format (encoded now if this is the first recipient of that
    /// format; a cheap reference-counted copy otherwise).
    pub fn frame(&self, wire: Wire) -> Frame {
        self.frames[wire.index()]
            .get_or_init(|| wire.event(self.event, self.seq))
            .clone()
    }
}

/// `event` as native JSON text, `{"type", "data"}`, with `"seq": seq` added at the top
/// level when given.
fn native_event(event: &Event, seq: Option<i64>) -> Frame {
    let mut text = match serde_json::to_string(event) {
        Ok(text) => text,
        // Events are plain data: failing is a bug, reported as an `internal` error event.
        Err(e) => return to_frame(&Event::Error(AppError::internal(e).detail())),
    };
    if let Some(seq) = seq {
        // The text is one JSON object we just wrote: append the member before its `}`.
        text.pop();
        let _ = write!(text, ",\"seq\":{seq}}}");
    }
    Frame::from(text)
}

/// `value` serialized as one JSON text frame. Wire types are plain data; a failure would
/// be a bug, reported as an `internal` error event rather than a panic.
fn to_frame<T: serde::Serialize>(value: &T) -> Frame {
    match serde_json::to_string(value) {
        Ok(text) => Frame::from(text),
        Err(e) => Frame::from(
            serde_json::to_string(&Event::Error(AppError::internal(e).detail()))
                .unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::ws::RoomDeleted;
    use palaver_protocol::ErrorCode;

    #[test]
    fn change_frames_carry_a_top_level_seq() {
        let event = Event::RoomDeleted(RoomDeleted {
            room_id: "r".into(),
        });
        let with: serde_json::Value =
            serde_json::from_str(Wire::Native.event(&event, Some(42)).as_str()).unwrap();
        assert_eq!(with["seq"], 42);
        assert_eq!(with["type"], "room.deleted");
        assert_eq!(with["data"]["room_id"], "r");
        let without: serde_json::Value =
            serde_json::from_str(Wire::Native.event(&event, None).as_str()).unwrap();
        assert!(without.get("seq").is_none());
    }

    #[test]
    fn an_event_is_encoded_once_and_shared() {
        let event = Event::RoomDeleted(RoomDeleted {
            room_id: "r".into(),
        });
        let encoded = Encoded::new(&event, Some(7));
        let a = encoded.frame(Wire::Native);
        let b = encoded.frame(Wire::Native);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "the same bytes");
    }

    #[test]
    fn replies_follow_the_native_protocol() {
        let id = Some(serde_json::json!(5));
        let ok: serde_json::Value = serde_json::from_str(
            Wire::Native
                .reply(id.clone(), Ok(Response::Empty {}))
                .unwrap()
                .as_str(),
        )
        .unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"type": "reply", "id": 5, "ok": true, "data": {}})
        );
        let err: serde_json::Value = serde_json::from_str(
            Wire::Native
                .reply(id, Err(AppError::new(ErrorCode::NotMember, "no")))
                .unwrap()
                .as_str(),
        )
        .unwrap();
        assert_eq!(err["ok"], false);
        assert_eq!(err["error"]["code"], "not_member");
        assert!(Wire::Native.reply(None, Ok(Response::Empty {})).is_none());
        let event: serde_json::Value = serde_json::from_str(
            Wire::Native
                .reply(None, Err(AppError::new(ErrorCode::NotMember, "no")))
                .unwrap()
                .as_str(),
        )
        .unwrap();
        assert_eq!(event["type"], "error");
    }
}
