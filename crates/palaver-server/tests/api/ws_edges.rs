//! WebSocket edge cases at the frame level (issue 13, item 9): pipelining past the
//! outbound queue, fragmented over-size messages, invalid UTF-8 and protocol violations
//! each end with the reply or the close code RFC 6455 §7.4.1 names, never a silent drop.
//!
//! The frames are written by hand on a raw TCP stream, because a well-behaved client
//! library refuses to send most of them.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::helpers::TestServer;

/// How long any read in these tests may wait.
const WAIT: Duration = Duration::from_secs(20);

/// A raw client: a TCP stream past the WebSocket handshake.
struct Raw {
    read: OwnedReadHalf,
    /// `None` once [`Raw::take_writer`] moved it to another task.
    write: Option<OwnedWriteHalf>,
    /// Bytes read but not yet parsed into frames.
    buffer: Vec<u8>,
}

/// One frame from the server.
#[derive(Debug)]
struct Frame {
    opcode: u8,
    payload: Vec<u8>,
}

impl Raw {
    /// Opens `/api/v1/ws` on `server` with `token` and skips the `ready` frame.
    async fn connect(server: &TestServer, token: &str) -> Raw {
        let addr = server.base.trim_start_matches("http://").to_owned();
        let stream = TcpStream::connect(&addr).await.expect("connect");
        let (read, mut write) = stream.into_split();
        let request = format!(
            "GET /api/v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        );
        write.write_all(request.as_bytes()).await.unwrap();
        let mut raw = Raw {
            read,
            write: Some(write),
            buffer: Vec::new(),
        };
        let head_end = loop {
            if let Some(i) = raw.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            raw.fill().await.expect("handshake response");
        };
        let head = String::from_utf8_lossy(&raw.buffer[..head_end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "handshake: {head}");
        raw.buffer.drain(..head_end);
        let ready = raw.frame().await.expect("ready");
        assert!(String::from_utf8_lossy(&ready.payload).contains("\"ready\""));
        raw
    }

    /// Reads more bytes; `None` at end of stream or on a reset.
    async fn fill(&mut self) -> Option<()> {
        let mut chunk = [0u8; 64 * 1024];
        match tokio::time::timeout(WAIT, self.read.read(&mut chunk)).await {
            Err(_) => panic!("nothing from the server within {WAIT:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(n)) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                Some(())
            }
        }
    }

    /// The next whole frame from the server, or `None` if the connection ended first.
    async fn frame(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buffer) {
                self.buffer.drain(..used);
                return Some(frame);
            }
            self.fill().await?;
        }
    }

    /// The close code the server sends next, skipping other frames; `None` if the
    /// connection ended without a close frame.
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = self.frame().await?;
            if frame.opcode == 0x8 {
                return (frame.payload.len() >= 2)
                    .then(|| u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
            }
        }
    }

    /// The writing half, for a task that writes while this one reads.
    fn take_writer(&mut self) -> OwnedWriteHalf {
        self.write.take().expect("the writer is here")
    }

    /// Writes one client frame (masked, as RFC 6455 §5.3 requires) with the given first
    /// byte (FIN, RSV and opcode bits).
    async fn send(&mut self, first: u8, payload: &[u8]) {
        let bytes = client_frame(first, payload);
        let write = self.write.as_mut().expect("the writer is here");
        write.write_all(&bytes).await.expect("write frame");
    }
}

/// A masked client frame.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = vec![first];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n < 65536 => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Parses one unmasked server frame at the start of `buf`: the frame and the bytes used.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let opcode = buf[0] & 0x0f;
    let (len, mut at) = match buf[1] & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    if buf[1] & 0x80 != 0 {
        at += 4;
    }
    let payload = buf.get(at..at + len)?.to_vec();
    Some((Frame { opcode, payload }, at + len))
}

const FIN_TEXT: u8 = 0x81;
const TEXT_START: u8 = 0x01;
const FIN_CONTINUATION: u8 = 0x80;

#[tokio::test]
async fn a_fragmented_message_over_the_limit_is_closed_with_1009() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.ws_frame_max_bytes = 16 * 1024;
    })
    .await;
    let alice = server.user("alice").await;
    let mut raw = Raw::connect(&server, alice.token.as_deref().unwrap()).await;
    // Each fragment fits; the message they make does not.
    let part = vec![b' '; 10 * 1024];
    raw.send(TEXT_START, &part).await;
    raw.send(FIN_CONTINUATION, &part).await;
    assert_eq!(raw.close_code().await, Some(1009), "two big fragments");
    // Many small fragments.
    let mut raw = Raw::connect(&server, alice.token.as_deref().unwrap()).await;
    raw.send(TEXT_START, b"[").await;
    for _ in 0..40 {
        raw.send(0x00, &[b' '; 1024]).await;
    }
    raw.send(FIN_CONTINUATION, b"]").await;
    assert_eq!(raw.close_code().await, Some(1009), "many small fragments");
}

#[tokio::test]
async fn invalid_utf8_in_a_text_message_is_closed_with_1007() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let mut raw = Raw::connect(&server, alice.token.as_deref().unwrap()).await;
    raw.send(FIN_TEXT, b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}")
        .await;
    assert_eq!(raw.close_code().await, Some(1007));
}

#[tokio::test]
async fn protocol_violations_are_closed_with_1002() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let token = alice.token.as_deref().unwrap();
    // A continuation with no message to continue.
    let mut raw = Raw::connect(&server, token).await;
    raw.send(FIN_CONTINUATION, b"orphan").await;
    assert_eq!(raw.close_code().await, Some(1002), "orphan continuation");
    // A reserved bit no extension was negotiated for.
    let mut raw = Raw::connect(&server, token).await;
    raw.send(0xC1, b"{}").await;
    assert_eq!(raw.close_code().await, Some(1002), "RSV1 set");
    // An unknown opcode.
    let mut raw = Raw::connect(&server, token).await;
    raw.send(0x83, b"{}").await;
    assert_eq!(raw.close_code().await, Some(1002), "opcode 3");
}

#[tokio::test]
async fn pipelined_requests_beyond_the_outbound_queue_are_all_answered() {
    // A small queue, and replies big enough (a long request id is echoed back) that the
    // socket's buffers fill while the client is still writing and not yet reading.
    const REQUESTS: usize = 4000;
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.ws_outbound_queue_frames = 64;
    })
    .await;
    let alice = server.user("alice").await;
    let mut raw = Raw::connect(&server, alice.token.as_deref().unwrap()).await;
    let mut write = raw.take_writer();
    let pad = "x".repeat(8 * 1024);
    let writer = tokio::spawn(async move {
        for i in 0..REQUESTS {
            let text = format!("{{\"id\":\"{i}-{pad}\",\"type\":\"ping\",\"data\":{{}}}}");
            write
                .write_all(&client_frame(FIN_TEXT, text.as_bytes()))
                .await
                .expect("the server keeps reading");
        }
        write
    });
    // Let the server read far ahead of what it can write before reading anything.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut answered = 0;
    while answered < REQUESTS {
        let frame = raw
            .frame()
            .await
            .unwrap_or_else(|| panic!("the connection ended after {answered} replies"));
        assert_eq!(frame.opcode, 0x1, "a text frame, not {frame:?}");
        let reply: serde_json::Value = serde_json::from_slice(&frame.payload).unwrap();
        assert_eq!(reply["type"], "reply");
        assert_eq!(reply["ok"], true);
        let id = reply["id"].as_str().unwrap();
        assert!(id.starts_with(&format!("{answered}-")), "replies in order");
        answered += 1;
    }
    let _write = tokio::time::timeout(WAIT, writer)
        .await
        .expect("the writer finishes")
        .unwrap();
}

/// Sends a hand-written `GET /api/v1/ws` with `headers` (CRLF-terminated lines) on a new
/// connection; the response's status line and headers, and its body.
async fn handshake(server: &TestServer, headers: &str) -> (String, String) {
    let addr = server.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    let request = format!("GET /api/v1/ws HTTP/1.1\r\nHost: {addr}\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("a response in time")
            .expect("read");
        assert_ne!(n, 0, "the connection ended before a response");
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse::<usize>().unwrap());
    while buffer.len() < head_end + length {
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("the body in time")
            .expect("read");
        assert_ne!(n, 0, "the connection ended within the body");
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
    (head, body)
}

#[tokio::test]
async fn the_handshake_is_checked_after_authentication_and_answered_per_rfc_6455() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let auth = format!(
        "Authorization: Bearer {}\r\n",
        alice.token.as_deref().unwrap()
    );
    let upgrade = "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\
                   Sec-WebSocket-Version: 13\r\n";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

    // RFC 6455 §1.3's example key and its accept value.
    let (head, _) = handshake(&server, &format!("{auth}{upgrade}{key}")).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(
        head.contains("\r\nsec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=\r\n"),
        "{head}"
    );

    // Not an upgrade: 400 bad_request, but only for an authenticated request.
    let not_upgrades = [
        ("a plain GET", String::new()),
        ("no key", upgrade.to_owned()),
        (
            "a key that is not 16 bytes",
            format!("{upgrade}Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\n"),
        ),
        (
            "a key that is not base64",
            format!("{upgrade}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!!\r\n"),
        ),
        (
            "version 8",
            format!("{}{key}", upgrade.replace("Version: 13", "Version: 8")),
        ),
        (
            "Connection without upgrade",
            format!(
                "{}{key}",
                upgrade.replace("keep-alive, Upgrade", "keep-alive")
            ),
        ),
    ];
    for (case, headers) in &not_upgrades {
        let (head, body) = handshake(&server, &format!("{auth}{headers}")).await;
        assert!(head.starts_with("http/1.1 400"), "{case}: {head}");
        let body: serde_json::Value = serde_json::from_str(&body).expect(case);
        assert_eq!(body["error"]["code"], "bad_request", "{case}: {body}");
        assert_eq!(
            body["error"]["message"], "expected a WebSocket upgrade request",
            "{case}: {body}"
        );
        let (head, _) = handshake(&server, headers).await;
        assert!(
            head.starts_with("http/1.1 401"),
            "{case}, anonymous: {head}"
        );
    }
}
