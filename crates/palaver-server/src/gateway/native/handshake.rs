//! The server half of the WebSocket opening handshake (RFC 6455 §4.2) on hyper, with
//! tokio-tungstenite for the frames.
//!
//! We do not use axum's `ws` feature: it pins its own tokio-tungstenite, and the
//! workspace keeps a single tungstenite. This module mirrors axum 0.8's
//! `extract::ws::WebSocketUpgrade` for what the native gateway uses of it:
//!
//! 1. [`WebSocketUpgrade`] (an extractor) checks that the request is an RFC 6455 upgrade
//!    and takes hyper's pending upgrade ([`OnUpgrade`]) out of the request's extensions;
//! 2. [`WebSocketUpgrade::on_upgrade`] answers `101 Switching Protocols` with
//!    `Sec-WebSocket-Accept`, and in a new task, once hyper has sent that response and
//!    handed over the connection, runs the callback on it as a [`WebSocket`].
//!
//! HTTP/1.1 only: the server speaks HTTP/1.1 alone (axum's `http1` feature, not `http2`),
//! so WebSocket over HTTP/2 (RFC 8441, `CONNECT` with `:protocol`) never arrives. No
//! subprotocol is negotiated: the `101` has no `Sec-WebSocket-Protocol`.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Version};
use axum::response::Response;
use base64::Engine as _;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use palaver_protocol::ErrorCode;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;

use crate::error::AppError;

/// An upgraded connection, as a stream and sink of tungstenite messages.
pub type WebSocket = WebSocketStream<TokioIo<Upgraded>>;

/// A valid WebSocket opening handshake whose connection hyper can upgrade.
///
/// As an extractor it rejects with `400 bad_request` ("expected a WebSocket upgrade
/// request") a request that is not `GET` over HTTP/1.1 with `Connection` listing
/// `upgrade`, `Upgrade: websocket`, `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`
/// of 24 base64 characters decoding to 16 bytes (header names and these values are
/// case-insensitive, the key is not). A handler that must answer other errors first
/// takes `Result<WebSocketUpgrade, AppError>` and returns the rejection when its turn
/// comes.
#[derive(Debug)]
pub struct WebSocketUpgrade {
    /// The client's `Sec-WebSocket-Key`, answered by `Sec-WebSocket-Accept`.
    key: HeaderValue,
    /// The connection, once hyper has sent the `101` response.
    on_upgrade: OnUpgrade,
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let refuse = |why: &'static str| {
            tracing::debug!(why, "not a WebSocket upgrade request");
            AppError::new(
                ErrorCode::BadRequest,
                "expected a WebSocket upgrade request",
            )
        };
        // hyper offers no upgrade to HTTP/1.0 either; HTTP/2 is not served.
        if parts.version != Version::HTTP_11 {
            return Err(refuse("not HTTP/1.1"));
        }
        if parts.method != Method::GET {
            return Err(refuse("method is not GET"));
        }
        if !lists_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(refuse("Connection does not list upgrade"));
        }
        if !header_is(&parts.headers, header::UPGRADE, "websocket") {
            return Err(refuse("Upgrade is not websocket"));
        }
        if !header_is(&parts.headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(refuse("Sec-WebSocket-Version is not 13"));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|key| valid_key(key))
            .ok_or_else(|| refuse("missing or malformed Sec-WebSocket-Key"))?
            .clone();
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or_else(|| refuse("the connection cannot be upgraded"))?;
        Ok(WebSocketUpgrade { key, on_upgrade })
    }
}

impl WebSocketUpgrade {
    /// The `101 Switching Protocols` response to return, and the connection's task: once
    /// hyper has sent that response and handed over the connection, `callback` runs in a
    /// new task on it as a server-side [`WebSocket`] configured by `config` (buffer
    /// sizes, message and frame limits). If the upgrade fails (the client left, or the
    /// response sent was not this `101`), `callback` never runs and is dropped.
    pub fn on_upgrade<C, Fut>(self, config: WebSocketConfig, callback: C) -> Response
    where
        C: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = HeaderValue::try_from(derive_accept_key(self.key.as_bytes()))
            .expect("base64 is a valid header value");
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let io = TokioIo::new(upgraded);
            let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
            callback(ws).await;
        });

        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        response
    }
}

/// Whether the (first) `name` header is `value`, ASCII case-insensitively.
fn header_is(headers: &HeaderMap, name: HeaderName, value: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(value.as_bytes()))
}

/// Whether any `name` header's comma-separated list holds `token`, ASCII
/// case-insensitively (`Connection: keep-alive, Upgrade` lists `upgrade`).
fn lists_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// RFC 6455 §4.1: the key is a random 16-byte value, base64-encoded (24 characters).
/// tungstenite 0.30's own server handshake makes the same check.
fn valid_key(key: &HeaderValue) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key.as_bytes())
            .is_ok_and(|bytes| bytes.len() == 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A valid upgrade request's parts (with hyper's upgrade in the extensions, as a
    /// served HTTP/1.1 request with `Upgrade` has), changed by `edit`.
    fn parts(edit: impl FnOnce(&mut Parts)) -> Parts {
        let mut request = Request::get("/api/v1/ws")
            .header("connection", "keep-alive, Upgrade")
            .header("upgrade", "WebSocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", KEY)
            .body(Body::empty())
            .unwrap();
        let on_upgrade = hyper::upgrade::on(&mut request);
        let (mut parts, _) = request.into_parts();
        parts.extensions.insert(on_upgrade);
        edit(&mut parts);
        parts
    }

    async fn extract(parts: &mut Parts) -> Result<WebSocketUpgrade, AppError> {
        WebSocketUpgrade::from_request_parts(parts, &()).await
    }

    #[tokio::test]
    async fn a_valid_handshake_is_answered_with_101_and_the_rfc_accept_key() {
        let upgrade = extract(&mut parts(|_| {})).await.unwrap();
        let response = upgrade.on_upgrade(WebSocketConfig::default(), |_| async {});
        assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
        let h = response.headers();
        assert_eq!(h[header::CONNECTION], "upgrade");
        assert_eq!(h[header::UPGRADE], "websocket");
        // RFC 6455 §1.3's example.
        assert_eq!(
            h[header::SEC_WEBSOCKET_ACCEPT],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert!(h.get(header::SEC_WEBSOCKET_PROTOCOL).is_none());
    }

    #[tokio::test]
    async fn anything_else_is_400_bad_request() {
        type Edit = fn(&mut Parts);
        let cases: [(&str, Edit); 12] = [
            ("HTTP/1.0", |p| p.version = Version::HTTP_10),
            ("HTTP/2", |p| p.version = Version::HTTP_2),
            ("POST", |p| p.method = Method::POST),
            ("no Connection", |p| {
                p.headers.remove(header::CONNECTION);
            }),
            ("Connection: upgraded", |p| {
                p.headers
                    .insert(header::CONNECTION, HeaderValue::from_static("upgraded"));
            }),
            ("Upgrade: h2c", |p| {
                p.headers
                    .insert(header::UPGRADE, HeaderValue::from_static("h2c"));
            }),
            ("version 8", |p| {
                p.headers
                    .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
            }),
            ("no key", |p| {
                p.headers.remove(header::SEC_WEBSOCKET_KEY);
            }),
            ("short key", |p| {
                p.headers
                    .insert(header::SEC_WEBSOCKET_KEY, HeaderValue::from_static("abc"));
            }),
            ("key not base64", |p| {
                p.headers.insert(
                    header::SEC_WEBSOCKET_KEY,
                    HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ!!"),
                );
            }),
            ("key of 18 bytes", |p| {
                p.headers.insert(
                    header::SEC_WEBSOCKET_KEY,
                    HeaderValue::from_static("AAAAAAAAAAAAAAAAAAAAAAAA"),
                );
            }),
            ("not upgradable", |p| {
                p.extensions.remove::<OnUpgrade>();
            }),
        ];
        for (case, edit) in cases {
            let err = extract(&mut parts(edit)).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::BadRequest, "{case}");
            assert_eq!(
                err.message, "expected a WebSocket upgrade request",
                "{case}"
            );
        }
    }
}
