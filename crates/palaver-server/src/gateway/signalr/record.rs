//! The SignalR JSON hub protocol's framing and messages (dotnet/aspnetcore,
//! `src/SignalR/docs/specs/HubProtocol.md`, "JSON Encoding"): every message is one JSON
//! object followed by the record separator `0x1E`; a WebSocket text frame may carry
//! several records, and a record may be split across frames.
//!
//! - [`Splitter`] turns the frames a client sends into whole records, keeping a partial
//!   record until its end arrives, and refusing one longer than a limit (so a client that
//!   never sends `0x1E` cannot make the server buffer without bound).
//! - [`parse_handshake`] and [`parse`] read the handshake request and the hub messages a
//!   client may send; both are total: any input gives a message or a [`ProtocolError`],
//!   never a panic (`tests/` and the proptest below check this on arbitrary input).
//! - The `*_record` functions write the messages the server sends.
//!
//! Both ends of this module face untrusted input; nothing here allocates more than the
//! input's size.

use serde::Deserialize;
use serde_json::Value;

/// The record separator that ends every message (ASCII RS).
pub const RS: char = '\u{1e}';

/// A violation of the hub protocol by the client. The connection is closed with a Close
/// record carrying the message (`HubProtocol.md`, "Errors": the other endpoint may
/// terminate the connection on a protocol error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn error(message: impl Into<String>) -> ProtocolError {
    ProtocolError(message.into())
}

/// Reassembles records from a client's text frames.
#[derive(Debug, Default)]
pub struct Splitter {
    /// The start of a record whose separator has not arrived yet.
    partial: String,
}

impl Splitter {
    /// Appends `frame` and moves every record it completes, in order and without its
    /// separator, to `out`. A record (with what is buffered of it) longer than
    /// `max_record` bytes is refused; so is a frame after that.
    ///
    /// # Errors
    /// [`ProtocolError`] "record too large" (the connection must close).
    pub fn push(
        &mut self,
        frame: &str,
        max_record: usize,
        out: &mut Vec<String>,
    ) -> Result<(), ProtocolError> {
        let too_large = || {
            error(format!(
                "a message is larger than the limit of {max_record} bytes"
            ))
        };
        let mut rest = frame;
        while let Some(end) = rest.find(RS) {
            let piece = &rest[..end];
            if self.partial.len() + piece.len() > max_record {
                return Err(too_large());
            }
            if self.partial.is_empty() {
                out.push(piece.to_owned());
            } else {
                self.partial.push_str(piece);
                out.push(std::mem::take(&mut self.partial));
            }
            rest = &rest[end + RS.len_utf8()..];
        }
        if self.partial.len() + rest.len() > max_record {
            return Err(too_large());
        }
        self.partial.push_str(rest);
        Ok(())
    }

    /// Bytes of an unfinished record being held.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

/// The client's first message: the protocol and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// Hub protocol version: 1, or 2 for stateful reconnect (Ack and Sequence records).
    pub version: u32,
}

/// Reads a handshake request, `{"protocol": "json", "version": 1 | 2}`.
///
/// # Errors
/// A [`ProtocolError`] whose text the server sends back as the handshake response's
/// `error`: not a JSON object with those fields, a protocol other than `json` (Palaver
/// speaks no MessagePack), or a version other than 1 and 2.
pub fn parse_handshake(record: &str) -> Result<Handshake, ProtocolError> {
    #[derive(Deserialize)]
    struct Raw {
        protocol: String,
        version: u32,
    }
    let raw: Raw = serde_json::from_str(record)
        .map_err(|_| error("the handshake must be {\"protocol\":\"json\",\"version\":1}"))?;
    if raw.protocol != "json" {
        return Err(error(format!(
            "Requested protocol '{}' is not available.",
            truncate(&raw.protocol, 32)
        )));
    }
    if !(1..=2).contains(&raw.version) {
        return Err(error(format!(
            "The server does not support version {} of the 'json' protocol.",
            raw.version
        )));
    }
    Ok(Handshake {
        version: raw.version,
    })
}

/// The longest invocation id accepted (the spec lets a callee limit them).
pub const MAX_INVOCATION_ID: usize = 128;

/// A hub message from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum HubMessage {
    /// Type 1: call `target` with `arguments`; answer with a Completion only when
    /// `invocation_id` is given. `streams` is set when the client wants to stream
    /// arguments (`streamIds`), which Palaver does not take.
    Invocation {
        invocation_id: Option<String>,
        target: String,
        arguments: Vec<Value>,
        streams: bool,
    },
    /// Type 4: a streaming invocation (answered with an error Completion).
    StreamInvocation { invocation_id: String },
    /// Type 2 or 3: a stream item or completion the client sends. Palaver never invokes
    /// client methods or takes streams, so these are protocol errors.
    Unexpected { kind: u8 },
    /// Type 5: cancel an invocation.
    CancelInvocation { invocation_id: String },
    /// Type 6.
    Ping,
    /// Type 7: the client is closing.
    Close,
    /// Type 8: the client has received every trackable message up to `sequence_id`.
    Ack { sequence_id: u64 },
    /// Type 9: after a reconnect, the id of the client's next trackable message.
    Sequence { sequence_id: u64 },
}

impl HubMessage {
    /// Whether the message takes a sequence id under stateful reconnect (Invocation,
    /// StreamInvocation, StreamItem, Completion, CancelInvocation).
    pub fn is_trackable(&self) -> bool {
        matches!(
            self,
            HubMessage::Invocation { .. }
                | HubMessage::StreamInvocation { .. }
                | HubMessage::Unexpected { .. }
                | HubMessage::CancelInvocation { .. }
        )
    }
}

/// Parses one record (without its separator) as a hub message. Headers are read and
/// disregarded (`HubProtocol.md`, "Message Headers"); unknown fields are ignored.
///
/// # Errors
/// [`ProtocolError`]: not a JSON object, no or an unknown `type`, a required field missing
/// or of the wrong type (`target`, `arguments`, `invocationId`, `sequenceId`), an
/// invocation id over [`MAX_INVOCATION_ID`] bytes.
pub fn parse(record: &str) -> Result<HubMessage, ProtocolError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        #[serde(rename = "type")]
        kind: u8,
        #[serde(default)]
        invocation_id: Option<String>,
        #[serde(default)]
        target: Option<String>,
        #[serde(default)]
        arguments: Option<Vec<Value>>,
        #[serde(default)]
        stream_ids: Option<Vec<String>>,
        #[serde(default)]
        sequence_id: Option<u64>,
        #[serde(default)]
        #[allow(dead_code)]
        headers: Option<std::collections::HashMap<String, String>>,
    }
    let raw: Raw = serde_json::from_str(record)
        .map_err(|e| error(format!("not a valid hub message: {}", first_line(&e))))?;
    if raw
        .invocation_id
        .as_ref()
        .is_some_and(|id| id.len() > MAX_INVOCATION_ID)
    {
        return Err(error(format!(
            "invocationId is longer than {MAX_INVOCATION_ID} bytes"
        )));
    }
    let required_id = |id: Option<String>| id.ok_or_else(|| error("invocationId is required"));
    let sequence = |id: Option<u64>| id.ok_or_else(|| error("sequenceId is required"));
    Ok(match raw.kind {
        1 => HubMessage::Invocation {
            invocation_id: raw.invocation_id,
            target: raw
                .target
                .ok_or_else(|| error("an invocation needs a target"))?,
            arguments: raw
                .arguments
                .ok_or_else(|| error("an invocation needs arguments"))?,
            streams: raw.stream_ids.is_some_and(|ids| !ids.is_empty()),
        },
        4 => HubMessage::StreamInvocation {
            invocation_id: required_id(raw.invocation_id)?,
        },
        kind @ (2 | 3) => HubMessage::Unexpected { kind },
        5 => HubMessage::CancelInvocation {
            invocation_id: required_id(raw.invocation_id)?,
        },
        6 => HubMessage::Ping,
        7 => HubMessage::Close,
        8 => HubMessage::Ack {
            sequence_id: sequence(raw.sequence_id)?,
        },
        9 => HubMessage::Sequence {
            sequence_id: sequence(raw.sequence_id)?,
        },
        other => return Err(error(format!("unknown message type {other}"))),
    })
}

/// serde_json's message without its position, for a Close record's error.
fn first_line(e: &serde_json::Error) -> String {
    let text = e.to_string();
    truncate(text.split(" at line ").next().unwrap_or(""), 120).to_owned()
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The handshake response: `{}` when accepted, `{"error": ...}` when not.
pub fn handshake_record(error: Option<&str>) -> String {
    match error {
        None => format!("{{}}{RS}"),
        Some(e) => format!("{{\"error\":{}}}{RS}", quote(e)),
    }
}

/// An Invocation of client method `target` without an invocation id (the server never
/// waits for a client's result); `arguments` is the JSON array text of its arguments.
pub fn invocation_record(target: &str, arguments: &str) -> String {
    format!(
        "{{\"type\":1,\"target\":{},\"arguments\":{arguments}}}{RS}",
        quote(target)
    )
}

/// A Completion of `invocation_id`: with `result` (JSON text), with `error`, or empty.
pub fn completion_record(invocation_id: &str, outcome: Result<Option<&str>, &str>) -> String {
    let id = quote(invocation_id);
    match outcome {
        Ok(Some(result)) => format!("{{\"type\":3,\"invocationId\":{id},\"result\":{result}}}{RS}"),
        Ok(None) => format!("{{\"type\":3,\"invocationId\":{id}}}{RS}"),
        Err(e) => format!(
            "{{\"type\":3,\"invocationId\":{id},\"error\":{}}}{RS}",
            quote(e)
        ),
    }
}

/// A Ping (keep-alive).
pub const PING_RECORD: &str = "{\"type\":6}\u{1e}";

/// A Close, with the error that caused it, and whether a client configured for automatic
/// reconnect should reconnect.
pub fn close_record(error: Option<&str>, allow_reconnect: bool) -> String {
    let mut text = String::from("{\"type\":7");
    if let Some(e) = error {
        text.push_str(",\"error\":");
        text.push_str(&quote(e));
    }
    if allow_reconnect {
        text.push_str(",\"allowReconnect\":true");
    }
    text.push('}');
    text.push(RS);
    text
}

/// An Ack: the server has processed every trackable client message up to `sequence_id`.
pub fn ack_record(sequence_id: u64) -> String {
    format!("{{\"type\":8,\"sequenceId\":{sequence_id}}}{RS}")
}

/// A Sequence: the id the server's next (re)sent trackable message carries.
pub fn sequence_record(sequence_id: u64) -> String {
    format!("{{\"type\":9,\"sequenceId\":{sequence_id}}}{RS}")
}

/// How many records `frame` holds (its separators).
pub fn count_records(frame: &str) -> u64 {
    frame.bytes().filter(|&b| b == 0x1e).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(splitter: &mut Splitter, frame: &str) -> Vec<String> {
        let mut out = Vec::new();
        splitter.push(frame, 64, &mut out).unwrap();
        out
    }

    #[test]
    fn records_split_on_the_separator_across_frames() {
        let mut s = Splitter::default();
        assert_eq!(
            split(&mut s, "{\"a\":1}\u{1e}{\"b\":2}\u{1e}"),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(split(&mut s, "{\"c\""), Vec::<String>::new());
        assert_eq!(s.pending(), 4);
        assert_eq!(split(&mut s, ":3}\u{1e}{\"d\":"), ["{\"c\":3}"]);
        assert_eq!(split(&mut s, "4}\u{1e}"), ["{\"d\":4}"]);
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn an_unterminated_record_over_the_limit_is_refused() {
        let mut s = Splitter::default();
        let mut out = Vec::new();
        assert!(s.push(&"x".repeat(60), 64, &mut out).is_ok());
        assert!(s.push(&"x".repeat(10), 64, &mut out).is_err());
        let mut s = Splitter::default();
        assert!(s
            .push(&format!("{}\u{1e}", "y".repeat(65)), 64, &mut out)
            .is_err());
    }

    #[test]
    fn handshakes() {
        assert_eq!(
            parse_handshake(r#"{"protocol":"json","version":1}"#),
            Ok(Handshake { version: 1 })
        );
        assert_eq!(
            parse_handshake(r#"{"protocol":"json","version":2}"#),
            Ok(Handshake { version: 2 })
        );
        assert!(parse_handshake(r#"{"protocol":"messagepack","version":1}"#)
            .unwrap_err()
            .0
            .contains("messagepack"));
        assert!(parse_handshake(r#"{"protocol":"json","version":3}"#).is_err());
        assert!(parse_handshake("hello").is_err());
    }

    #[test]
    fn hub_messages() {
        assert_eq!(
            parse(
                r#"{"type":1,"invocationId":"7","target":"Send","arguments":[42,"x"],"headers":{"a":"b"}}"#
            ),
            Ok(HubMessage::Invocation {
                invocation_id: Some("7".into()),
                target: "Send".into(),
                arguments: vec![42.into(), "x".into()],
                streams: false,
            })
        );
        assert_eq!(
            parse(r#"{"type":1,"target":"Send","arguments":[],"streamIds":["1"]}"#),
            Ok(HubMessage::Invocation {
                invocation_id: None,
                target: "Send".into(),
                arguments: vec![],
                streams: true,
            })
        );
        assert_eq!(parse(r#"{"type":6}"#), Ok(HubMessage::Ping));
        assert_eq!(
            parse(r#"{"type":8,"sequenceId":12}"#),
            Ok(HubMessage::Ack { sequence_id: 12 })
        );
        assert_eq!(
            parse(r#"{"type":9,"sequenceId":3}"#),
            Ok(HubMessage::Sequence { sequence_id: 3 })
        );
        for bad in [
            "",
            "[]",
            "{}",
            r#"{"type":1,"arguments":[]}"#,
            r#"{"type":1,"target":"X"}"#,
            r#"{"type":1,"target":"X","arguments":{}}"#,
            r#"{"type":4,"target":"X","arguments":[]}"#,
            r#"{"type":8}"#,
            r#"{"type":42}"#,
            r#"{"type":-1}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let long = format!(
            r#"{{"type":1,"invocationId":"{}","target":"X","arguments":[]}}"#,
            "9".repeat(MAX_INVOCATION_ID + 1)
        );
        assert!(parse(&long).is_err());
    }

    #[test]
    fn server_records_are_json_with_a_separator() {
        for record in [
            handshake_record(None),
            handshake_record(Some("no \"way\"")),
            invocation_record("ReceiveMessage", r#"["r",{"id":"m"}]"#),
            completion_record("1", Ok(Some("{\"x\":1}"))),
            completion_record("1", Ok(None)),
            completion_record("1", Err("not_member: nope")),
            PING_RECORD.to_owned(),
            close_record(Some("bye"), true),
            close_record(None, false),
            ack_record(5),
            sequence_record(6),
        ] {
            let body = record.strip_suffix(RS).expect("ends with RS");
            assert_eq!(count_records(&record), 1);
            let _: Value = serde_json::from_str(body).expect("JSON");
        }
        assert_eq!(
            close_record(Some("restart"), true),
            "{\"type\":7,\"error\":\"restart\",\"allowReconnect\":true}\u{1e}"
        );
    }

    /// However frames cut a stream of records, the splitter gives back exactly the
    /// records sent, and holds nothing once the last one is complete.
    #[test]
    fn every_cut_of_a_stream_gives_back_the_records() {
        let records = ["{\"type\":6}", "", "{\"é\":\"日本\"}", "x"];
        let stream: String = records.iter().map(|r| format!("{r}\u{1e}")).collect();
        for a in (0..=stream.len()).filter(|&a| stream.is_char_boundary(a)) {
            for b in (a..=stream.len()).filter(|&b| stream.is_char_boundary(b)) {
                let mut splitter = Splitter::default();
                let mut out = Vec::new();
                for piece in [&stream[..a], &stream[a..b], &stream[b..]] {
                    splitter.push(piece, 64, &mut out).unwrap();
                }
                assert_eq!(out, records, "cut at {a} and {b}");
                assert_eq!(splitter.pending(), 0);
            }
        }
    }
}
