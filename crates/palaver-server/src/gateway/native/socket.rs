//! The native protocol's [`Transport`]: text frames over a tokio-tungstenite WebSocket
//! (RFC 6455).

use futures_util::{SinkExt, StreamExt as _};
use palaver_protocol::ws::close_code;
use palaver_protocol::ErrorCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::codec;
use super::handshake::WebSocket;
use crate::error::AppError;
use crate::hub::CloseReason;
use crate::live::connection::{Gone, Inbound, Transport};
use crate::live::wire::{Frame, Wire};

/// One upgraded WebSocket of the native protocol.
pub struct NativeSocket {
    ws: WebSocket,
}

impl NativeSocket {
    /// Wraps an upgraded WebSocket.
    pub fn new(ws: WebSocket) -> Self {
        NativeSocket { ws }
    }
}

impl Transport for NativeSocket {
    const WIRE: Wire = Wire::Native;

    async fn recv(&mut self) -> Inbound {
        let message = match self.ws.next().await {
            None => return Inbound::End(None),
            Some(Ok(message)) => message,
            Some(Err(e)) => return Inbound::End(read_error_close(e)),
        };
        match message {
            Message::Text(text) => {
                let parsed = codec::parse(text.as_str());
                Inbound::Request {
                    id: parsed.id,
                    request: parsed.request,
                }
            }
            Message::Binary(_) => Inbound::Request {
                id: None,
                request: Err(AppError::new(
                    ErrorCode::BadRequest,
                    "binary frames are not supported",
                )),
            },
            Message::Close(_) => Inbound::End(None),
            // tungstenite answers pings itself; pongs need nothing. Raw frames are only
            // ever written, never read.
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Inbound::Heard,
        }
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Gone> {
        self.ws.feed(Message::Text(frame)).await.map_err(|_| Gone)
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
                // The Sink's close (a close frame without a code, then flush), not the
                // stream's inherent `close(frame)`.
                let _ = SinkExt::close(&mut self.ws).await;
            }
        }
    }
}

/// The close to send for a read error (RFC 6455 §7.4.1): 1009 for a message over the
/// size limit (whole or in fragments), 1007 for a text message that is not UTF-8, 1002
/// for any other protocol violation; none when the socket itself failed.
pub(crate) fn read_error_close(e: WsError) -> Option<CloseReason> {
    let (code, reason) = match e {
        WsError::Capacity(_) => (close_code::MESSAGE_TOO_BIG, "message too big"),
        WsError::Utf8(_) => (close_code::INVALID_PAYLOAD, "text message is not UTF-8"),
        WsError::Protocol(_) => (close_code::PROTOCOL_ERROR, "protocol error"),
        _ => return None,
    };
    Some(CloseReason { code, reason })
}
