//! The checks behind the SignalR fuzz targets in `fuzz_targets/`: every call the server
//! makes on a client's bytes before they reach the core, with the invariants that must
//! hold for any input. A panic or a failed assertion here is a crash.
//!
//! The stable regression test `crates/palaver-server/tests/signalr_corpus.rs` includes
//! this file as a module and runs it over the committed corpus (`fuzz/corpus/`), so CI
//! checks the same properties without nightly. Keep it free of crate-level attributes.

use palaver_protocol::ErrorCode;
use palaver_server::gateway::signalr::record::{self, HubMessage, Splitter, RS};
use palaver_server::gateway::signalr::{chat, webrtc};

/// The record limits the splitter runs with: one of the order of the server's frame limit,
/// and a small one so that arbitrary inputs reach the "record too large" path.
pub const MAX_RECORDS: [usize; 2] = [4096, 64];

/// The byte that separates the WebSocket text frames in a `records` input.
pub const FRAME_SEPARATOR: u8 = 0;

/// The longest error text `record::parse` and `record::parse_handshake` may give (it goes
/// back to the client in a Close record or the handshake response, so it must not echo an
/// arbitrary amount of the client's input): they truncate what they quote.
pub const MAX_PROTOCOL_ERROR: usize = 200;

/// The chat hub's methods (`chat::request`).
pub const CHAT_METHODS: [&str; 9] = [
    "JoinChannel",
    "LeaveChannel",
    "SendMessage",
    "SendPrivateMessage",
    "Typing",
    "SetStatus",
    "EditMessage",
    "DeleteMessage",
    "MarkRead",
];

/// The WebRTC hub's methods (`webrtc::request`).
pub const WEBRTC_METHODS: [&str; 6] = [
    "CallUser",
    "AcceptCaller",
    "SendSignal",
    "RejectCall",
    "EndCall",
    "SendMessage",
];

/// `data` as text frames: cut at [`FRAME_SEPARATOR`], each read as lossy UTF-8 (a
/// WebSocket text frame is valid UTF-8).
pub fn frames(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == FRAME_SEPARATOR)
        .map(|frame| String::from_utf8_lossy(frame).into_owned())
        .collect()
}

/// Target `signalr_records`: the frames of `data` through one [`Splitter`] per limit in
/// [`MAX_RECORDS`], and every record it gives through `record::parse` and
/// `record::parse_handshake`.
pub fn records(data: &[u8]) {
    let frames = frames(data);
    for max in MAX_RECORDS {
        for record in split(&frames, max) {
            check_record(&record);
        }
    }
}

/// Pushes `frames` through a splitter with limit `max` until it refuses one, checking
/// after every push that the records are exactly the stream's records so far, none holds
/// a separator or passes the limit, what is pending is within the limit, and a refusal
/// means a record of the stream really is longer than the limit. Returns the records.
fn split(frames: &[String], max: usize) -> Vec<String> {
    let mut splitter = Splitter::default();
    let mut records = Vec::new();
    let mut stream = String::new();
    let mut separators = 0;
    for frame in frames {
        stream.push_str(frame);
        separators += record::count_records(frame);
        let before = records.len();
        let result = splitter.push(frame, max, &mut records);
        for record in &records[before..] {
            assert!(!record.contains(RS), "a record holds a separator");
            assert!(
                record.len() <= max,
                "a record of {} bytes passed the limit {max}",
                record.len()
            );
        }
        // The records given are the stream's first records, in order.
        let joined: String = records.iter().map(|r| format!("{r}{RS}")).collect();
        assert!(
            stream.starts_with(&joined),
            "the records are not the stream's"
        );
        match result {
            Ok(()) => {
                let rest = &stream[joined.len()..];
                assert!(
                    !rest.contains(RS),
                    "a complete record was kept back: {} given of {separators}",
                    records.len()
                );
                assert_eq!(records.len() as u64, separators);
                assert_eq!(
                    splitter.pending(),
                    rest.len(),
                    "records + pending != stream"
                );
                assert!(splitter.pending() <= max, "pending passed the limit {max}");
            }
            Err(e) => {
                assert!(
                    stream.split(RS).any(|piece| piece.len() > max),
                    "refused a stream whose records are all within {max} bytes: {e}"
                );
                assert!(e.0.contains("larger than the limit"), "{e}");
                break;
            }
        }
    }
    records
}

/// A record through both parsers: whatever it holds, they answer without panicking, and
/// what they answer keeps their documented bounds.
fn check_record(record: &str) {
    match record::parse(record) {
        Ok(
            HubMessage::Invocation {
                invocation_id: Some(id),
                ..
            }
            | HubMessage::StreamInvocation { invocation_id: id }
            | HubMessage::CancelInvocation { invocation_id: id },
        ) => assert!(
            id.len() <= record::MAX_INVOCATION_ID,
            "invocation id too long"
        ),
        Ok(HubMessage::Unexpected { kind }) => assert!(kind == 2 || kind == 3, "kind {kind}"),
        Ok(_) => {}
        Err(e) => assert!(
            e.0.len() <= MAX_PROTOCOL_ERROR,
            "a parse error of {} bytes",
            e.0.len()
        ),
    }
    match record::parse_handshake(record) {
        Ok(handshake) => assert!((1..=2).contains(&handshake.version)),
        Err(e) => assert!(
            e.0.len() <= MAX_PROTOCOL_ERROR,
            "a handshake error of {} bytes",
            e.0.len()
        ),
    }
}

/// Target `signalr_hub`: `data` (lossy UTF-8) as records; every invocation among them
/// through both hubs' method parsers, the WebRTC one with a context that has observed
/// `data` and each record before it (so `AcceptCaller` and `RejectCall` can find a call
/// an `IncomingCall` record announced).
///
/// Beyond not panicking: a method a hub does not have is `unknown_type`, only a method it
/// has can succeed, and `AcceptCaller` and `RejectCall` never succeed on a connection that
/// was not rung.
pub fn hub(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut context = webrtc::Context::new(Some("lobby".into()));
    let unrung = webrtc::Context::new(Some("lobby".into()));
    context.observe(&text);
    for piece in text.split(RS) {
        context.observe(&format!("{piece}{RS}"));
        let Ok(HubMessage::Invocation {
            target, arguments, ..
        }) = record::parse(piece)
        else {
            continue;
        };
        let chat_method = CHAT_METHODS.contains(&target.as_str());
        match chat::request(&target, arguments.clone()) {
            Ok(_) => assert!(chat_method, "chat accepted method {target:?}"),
            Err(e) if !chat_method => assert_eq!(e.code, ErrorCode::UnknownType, "{target:?}"),
            Err(_) => {}
        }
        let webrtc_method = WEBRTC_METHODS.contains(&target.as_str());
        if matches!(target.as_str(), "AcceptCaller" | "RejectCall") {
            assert!(
                webrtc::request(&target, arguments.clone(), &unrung).is_err(),
                "{target} succeeded without a ringing call"
            );
        }
        match webrtc::request(&target, arguments, &context) {
            Ok(_) => assert!(webrtc_method, "webrtc accepted method {target:?}"),
            Err(e) if !webrtc_method => assert_eq!(e.code, ErrorCode::UnknownType, "{target:?}"),
            Err(_) => {}
        }
    }
}
