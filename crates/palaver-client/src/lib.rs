//! An async Rust client for Palaver: REST ([`Client`]) and WebSocket ([`Socket`]).
//!
//! Used by the server's integration tests, the load generator and bots. Typed helpers
//! return wire types from `palaver-protocol`; failures come back as [`ClientError`],
//! which keeps the server's status and error body so callers can assert on codes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), palaver_client::ClientError> {
//! use palaver_client::Client;
//! use palaver_protocol::Visibility;
//! let mut alice = Client::new("http://127.0.0.1:8080");
//! alice.register("alice", "alice@example.com", "correct horse").await?;
//! let room = alice.create_room("general", Visibility::Public, None).await?;
//! let mut socket = alice.connect().await?;
//! let message = socket.send_message(&room.id, "hello", None).await?;
//! assert_eq!(message.seq, 1);
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use palaver_protocol::rest::{
    AuthResponse, CreateRoomRequest, LoginRequest, MessagePage, RegisterRequest, RoomList,
    SendMessageRequest,
};
use palaver_protocol::ws::Reply;
use palaver_protocol::{ErrorBody, Message, Room, User, Visibility};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `body` is its `{"error": ...}` if it
    /// sent one.
    #[error("HTTP {status}: {body:?}")]
    Api {
        status: u16,
        body: Option<ErrorBody>,
    },
    /// A WebSocket request got a failed reply.
    #[error("request failed: {0:?}")]
    Rejected(palaver_protocol::ErrorDetail),
    /// The connection failed or closed.
    #[error("transport: {0}")]
    Transport(String),
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The server sent something this client could not decode.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The server's error code, if the failure carried one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body: Some(b), .. } => Some(b.error.code.as_str()),
            ClientError::Rejected(d) => Some(d.code.as_str()),
            _ => None,
        }
    }

    /// The HTTP status, for REST failures.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;

/// A REST client for one server, optionally logged in.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// The access token, once logged in.
    pub token: Option<String>,
    /// The logged-in user.
    pub user: Option<User>,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            token: None,
            user: None,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/auth/register`; on success the client is logged in as the new user.
    pub async fn register(
        &mut self,
        username: &str,
        email: &str,
        password: &str,
    ) -> ClientResult<AuthResponse> {
        let body = RegisterRequest {
            username: username.into(),
            email: email.into(),
            password: password.into(),
        };
        let auth: AuthResponse = self.post("/api/v1/auth/register", &body).await?;
        self.token = Some(auth.access_token.clone());
        self.user = Some(auth.user.clone());
        Ok(auth)
    }

    /// `POST /api/v1/auth/login`; on success the client is logged in.
    pub async fn login(&mut self, login: &str, password: &str) -> ClientResult<AuthResponse> {
        let body = LoginRequest {
            login: login.into(),
            password: password.into(),
        };
        let auth: AuthResponse = self.post("/api/v1/auth/login", &body).await?;
        self.token = Some(auth.access_token.clone());
        self.user = Some(auth.user.clone());
        Ok(auth)
    }

    /// `GET /api/v1/users/me`.
    pub async fn me(&self) -> ClientResult<User> {
        self.get("/api/v1/users/me").await
    }

    /// `POST /api/v1/rooms`.
    pub async fn create_room(
        &self,
        name: &str,
        visibility: Visibility,
        topic: Option<&str>,
    ) -> ClientResult<Room> {
        let body = CreateRoomRequest {
            name: name.into(),
            visibility,
            topic: topic.map(Into::into),
        };
        self.post("/api/v1/rooms", &body).await
    }

    /// `GET /api/v1/rooms`: the caller's rooms.
    pub async fn my_rooms(&self) -> ClientResult<Vec<Room>> {
        Ok(self.get::<RoomList>("/api/v1/rooms").await?.rooms)
    }

    /// `GET /api/v1/rooms/public`.
    pub async fn public_rooms(&self) -> ClientResult<Vec<Room>> {
        Ok(self.get::<RoomList>("/api/v1/rooms/public").await?.rooms)
    }

    /// `POST /api/v1/rooms/{room_id}/join`.
    pub async fn join_room(&self, room_id: &str) -> ClientResult<Room> {
        self.post(&format!("/api/v1/rooms/{room_id}/join"), &json!({}))
            .await
    }

    /// `POST /api/v1/rooms/{room_id}/messages`.
    pub async fn send_message(
        &self,
        room_id: &str,
        content: &str,
        client_id: Option<&str>,
    ) -> ClientResult<Message> {
        let body = SendMessageRequest {
            content: content.into(),
            client_id: client_id.map(Into::into),
        };
        self.post(&format!("/api/v1/rooms/{room_id}/messages"), &body)
            .await
    }

    /// `GET /api/v1/rooms/{room_id}/messages` with optional `before`, `after`, `limit`.
    pub async fn history(
        &self,
        room_id: &str,
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> ClientResult<MessagePage> {
        let mut query = Vec::new();
        for (name, value) in [("before", before), ("after", after), ("limit", limit)] {
            if let Some(v) = value {
                query.push(format!("{name}={v}"));
            }
        }
        let path = if query.is_empty() {
            format!("/api/v1/rooms/{room_id}/messages")
        } else {
            format!("/api/v1/rooms/{room_id}/messages?{}", query.join("&"))
        };
        self.get(&path).await
    }

    /// `GET path` with the bearer token, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> ClientResult<T> {
        let req = self.http.get(format!("{}{path}", self.base));
        decode(self.authorize(req).send().await?).await
    }

    /// `POST path` with a JSON body and the bearer token, decoded as `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> ClientResult<T> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        decode(self.authorize(req).send().await?).await
    }

    /// `method path` with a raw body (for tests of malformed input); returns the status and
    /// the body parsed as JSON (or `Value::Null` when it is not JSON).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> ClientResult<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = self.authorize(req).send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The WebSocket URL (`ws://.../api/v1/ws`).
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("https://")
                    .map(|r| format!("wss://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/api/v1/ws")
    }

    /// Opens a WebSocket authenticated with the `Authorization` header and waits for the
    /// `ready` event (available as [`Socket::ready`]).
    pub async fn connect(&self) -> ClientResult<Socket> {
        let mut request = self
            .ws_url()
            .into_client_request()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| ClientError::Decode("token is not a header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        Socket::open(request).await
    }
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> ClientResult<T> {
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status.is_success() {
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    } else {
        Err(ClientError::Api {
            status: status.as_u16(),
            body: serde_json::from_slice(&bytes).ok(),
        })
    }
}

/// How long [`Socket`] waits for an expected frame by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open WebSocket to `/api/v1/ws`.
///
/// Frames that arrive while waiting for a reply are kept, in order, and returned by
/// [`Socket::next_event`], so no event is lost to a request.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `ready` event's data.
    pub ready: Value,
    pending: std::collections::VecDeque<Value>,
    next_id: u64,
    /// How long to wait for a frame before [`ClientError::Timeout`].
    pub timeout: Duration,
}

impl Socket {
    /// Connects with a prepared request (URL and headers) and waits for `ready`.
    pub async fn open(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> ClientResult<Socket> {
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let mut socket = Socket {
            ws,
            ready: Value::Null,
            pending: Default::default(),
            next_id: 1,
            timeout: DEFAULT_TIMEOUT,
        };
        let first = socket.next_frame().await?;
        if first["type"] != "ready" {
            return Err(ClientError::Decode(format!("expected ready, got {first}")));
        }
        socket.ready = first["data"].clone();
        Ok(socket)
    }

    /// Sends a text frame as is (for tests of malformed input).
    pub async fn send_text(&mut self, text: impl Into<String>) -> ClientResult<()> {
        self.ws
            .send(WsMessage::Text(text.into().into()))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// Sends request `kind` with `data` and waits for its reply; returns the reply's data,
    /// or [`ClientError::Rejected`] with the server's error.
    pub async fn request(&mut self, kind: &str, data: Value) -> ClientResult<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"id": id, "type": kind, "data": data});
        self.send_text(frame.to_string()).await?;
        let reply = self.wait_reply(&json!(id)).await?;
        if reply.ok {
            Ok(reply.data.unwrap_or(Value::Null))
        } else {
            Err(ClientError::Rejected(reply.error.ok_or_else(|| {
                ClientError::Decode("failed reply without error".into())
            })?))
        }
    }

    /// Waits for the reply with `id`, keeping other frames for [`Socket::next_event`].
    pub async fn wait_reply(&mut self, id: &Value) -> ClientResult<Reply> {
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "reply" && &frame["id"] == id {
                return serde_json::from_value(frame)
                    .map_err(|e| ClientError::Decode(e.to_string()));
            }
            self.pending.push_back(frame);
        }
    }

    /// `message.send`: returns the stored message from the reply.
    pub async fn send_message(
        &mut self,
        room_id: &str,
        content: &str,
        client_id: Option<&str>,
    ) -> ClientResult<Message> {
        let data = self
            .request(
                "message.send",
                json!({"room_id": room_id, "content": content, "client_id": client_id}),
            )
            .await?;
        serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// The next frame that is not a reply awaited by a request (events, `error` events and
    /// unclaimed replies), as JSON.
    pub async fn next_event(&mut self) -> ClientResult<Value> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        self.next_frame().await
    }

    /// The next event of type `kind`, skipping others.
    pub async fn next_event_of(&mut self, kind: &str) -> ClientResult<Value> {
        loop {
            let event = self.next_event().await?;
            if event["type"] == kind {
                return Ok(event);
            }
        }
    }

    /// Waits up to `wait` and returns any event that arrives, or `None` (for asserting
    /// that nothing is delivered).
    pub async fn try_next_event(&mut self, wait: Duration) -> ClientResult<Option<Value>> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(frame));
        }
        let saved = self.timeout;
        self.timeout = wait;
        let result = self.next_frame().await;
        self.timeout = saved;
        match result {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the server to close the connection; returns its close frame, if it sent
    /// one. Other frames are skipped.
    pub async fn wait_close(&mut self) -> ClientResult<Option<CloseFrame>> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(ClientError::Timeout("close")),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(ClientError::Transport(e.to_string())),
                Ok(Some(Ok(WsMessage::Close(frame)))) => return Ok(frame),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Closes the connection normally.
    pub async fn close(mut self) -> ClientResult<()> {
        self.ws
            .close(None)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// The raw WebSocket (for sending frames this client has no helper for).
    pub fn inner(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }

    async fn next_frame(&mut self) -> ClientResult<Value> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(ClientError::Timeout("frame")),
                Ok(None) => return Err(ClientError::Transport("connection closed".into())),
                Ok(Some(Err(e))) => return Err(ClientError::Transport(e.to_string())),
                Ok(Some(Ok(msg))) => msg,
            };
            match msg {
                WsMessage::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| ClientError::Decode(e.to_string()))
                }
                WsMessage::Close(frame) => {
                    return Err(ClientError::Transport(format!(
                        "closed by server: {frame:?}"
                    )))
                }
                _ => continue,
            }
        }
    }
}
