//! ASP.NET Core SignalR, so that clients built on the official SignalR clients
//! (`@microsoft/signalr`, .NET, Java, Swift) connect unchanged: the JSON hub protocol
//! (dotnet/aspnetcore `src/SignalR/docs/specs/HubProtocol.md`) over the WebSockets
//! transport (`TransportProtocols.md`), with seeds 000, 001 and 002's hubs.
//!
//! - `POST {hub}/negotiate?negotiateVersion=1` ([`negotiate`]): authenticates and hands
//!   out a connection id and a single-use connection token valid for
//!   [`NEGOTIATED_TTL`]; only the WebSockets transport is offered.
//! - `GET {hub}` ([`connect`]): the WebSocket, with `?id=<connectionToken>` after a
//!   negotiate or without it (the clients' `skipNegotiation`); the credential comes in
//!   `Authorization` or, from browsers, the `access_token` query parameter. After the
//!   handshake, the connection is one more connection of the live core
//!   ([`crate::live::connection`]): same authorization, ordering, durable acks,
//!   backpressure and slow-consumer rule as the native WebSocket.
//! - [`record`] frames and parses the protocol; [`socket`] is the core's transport;
//!   [`chat`] (`/hubs/chat`) and [`webrtc`] (`/hubs/webrtc`) map hub methods to requests
//!   and events to client methods.
//!
//! The migration guide with every method and event is `docs/signalr.md`.

pub mod args;
pub mod chat;
pub mod record;
pub mod resume;
pub mod socket;
pub mod webrtc;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt as _};
use palaver_protocol::ErrorCode;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::auth::{presented_credential, Actor};
use crate::error::{AppError, AppResult};
use crate::gateway::native::handshake::{WebSocket, WebSocketUpgrade};
use crate::gateway::native::websocket_config;
use crate::http::extract::Params;
use crate::hub::SocketSlot;
use crate::AppState;
use palaver_protocol::ws::Ready;
use record::Splitter;
use resume::Resume;
use socket::{Hub, Opened, SignalRSocket};

/// How long a negotiated connection token may wait for its WebSocket.
pub const NEGOTIATED_TTL: Duration = Duration::from_secs(60);
/// How long a client may take to send its handshake after the WebSocket opens.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Negotiated tokens and stateful connections a node keeps at most (a negotiate beyond
/// it is `503 unavailable`).
const MAX_ENTRIES: usize = 200_000;

/// The two hubs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubKind {
    /// `/hubs/chat`, seeds 001 and 002.
    Chat,
    /// `/hubs/webrtc`, seed 000.
    WebRtc,
}

impl HubKind {
    /// The hub's name in its path, `/hubs/<name>`.
    pub fn name(self) -> &'static str {
        match self {
            HubKind::Chat => "chat",
            HubKind::WebRtc => "webrtc",
        }
    }
}

/// The first character of a frame a SignalR wire writes for its transport, never sent:
/// `\0` then `{"dms": [room ids], "rooms": {room id: last seq}}`, from `ready`.
pub const INTERNAL_MARK: char = '\0';

/// `ready` as the transport's internal frame (see [`INTERNAL_MARK`]).
pub fn ready_frame(ready: &Ready) -> String {
    let dms: Vec<&str> = ready
        .rooms
        .iter()
        .filter(|r| r.kind == palaver_protocol::RoomKind::Dm)
        .map(|r| r.id.as_str())
        .collect();
    let rooms: HashMap<&str, i64> = ready
        .rooms
        .iter()
        .map(|r| (r.id.as_str(), r.last_seq))
        .collect();
    format!("{INTERNAL_MARK}{}", json!({"dms": dms, "rooms": rooms}))
}

/// A connection token's state.
enum Entry {
    /// Handed out by negotiate; no WebSocket yet.
    Negotiated {
        user_id: String,
        hub: HubKind,
        stateful: bool,
        expires: Instant,
        /// The resume ticket token the connection will leave when it ends.
        ticket: String,
        /// Rooms to replay first (from the client's previous connection's ticket).
        resume: Vec<(String, Option<i64>)>,
    },
    /// A stateful connection: a WebSocket reconnecting with this token is handed to it.
    Live {
        user_id: String,
        hub: HubKind,
        swap: mpsc::Sender<Box<WebSocket>>,
    },
}

/// This node's SignalR connection tokens: negotiated ones waiting for their WebSocket,
/// and those of stateful connections, which a client reconnects with.
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
    /// `signalr.lobby_room`: where `/hubs/webrtc`'s `SendMessage` goes.
    lobby: Option<String>,
    /// Tickets stored, to purge expired ones now and then.
    saved: AtomicU64,
}

/// What a WebSocket's connection token names.
enum Claim {
    /// A new connection (negotiated, or none given: `skipNegotiation`), with its resume
    /// ticket token and the rooms to replay first when negotiated.
    New {
        stateful: bool,
        ticket: Option<String>,
        resume: Vec<(String, Option<i64>)>,
    },
    /// A stateful connection the client reconnects to.
    Reconnect(mpsc::Sender<Box<WebSocket>>),
}

impl Sessions {
    /// No tokens yet; `/hubs/webrtc`'s lobby is `lobby`.
    pub fn new(lobby: Option<String>) -> Self {
        Sessions {
            entries: Mutex::new(HashMap::new()),
            lobby,
            saved: AtomicU64::new(0),
        }
    }

    /// Whether the caller, having stored a ticket, should purge expired ones (every
    /// 256th ticket).
    fn purge_due(&self) -> bool {
        self.saved.fetch_add(1, Ordering::Relaxed) % 256 == 255
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a negotiated token.
    fn negotiated(
        &self,
        token: String,
        user_id: String,
        hub: HubKind,
        stateful: bool,
        ticket: String,
        resume: Vec<(String, Option<i64>)>,
    ) -> bool {
        let mut entries = self.entries();
        let now = Instant::now();
        if entries.len() >= MAX_ENTRIES / 2 {
            entries
                .retain(|_, e| !matches!(e, Entry::Negotiated { expires, .. } if *expires <= now));
        }
        if entries.len() >= MAX_ENTRIES {
            return false;
        }
        entries.insert(
            token,
            Entry::Negotiated {
                user_id,
                hub,
                stateful,
                expires: now + NEGOTIATED_TTL,
                ticket,
                resume,
            },
        );
        true
    }

    /// What `token` names for `user_id` on `hub`: a negotiated token is used up here.
    fn claim(&self, token: &str, user_id: &str, hub: HubKind) -> Option<Claim> {
        let mut entries = self.entries();
        match entries.get(token)? {
            Entry::Negotiated {
                user_id: owner,
                hub: at,
                ..
            } => {
                if owner != user_id || *at != hub {
                    return None;
                }
                let Some(Entry::Negotiated {
                    stateful,
                    expires,
                    ticket,
                    resume,
                    ..
                }) = entries.remove(token)
                else {
                    return None;
                };
                (expires > Instant::now()).then_some(Claim::New {
                    stateful,
                    ticket: Some(ticket),
                    resume,
                })
            }
            Entry::Live {
                user_id: owner,
                hub: at,
                swap,
            } => (owner == user_id && *at == hub).then(|| Claim::Reconnect(swap.clone())),
        }
    }

    /// Makes `token` name a stateful connection whose replacement sockets go to `swap`.
    fn live(&self, token: &str, user_id: &str, hub: HubKind, swap: mpsc::Sender<Box<WebSocket>>) {
        self.entries().insert(
            token.to_owned(),
            Entry::Live {
                user_id: user_id.to_owned(),
                hub,
                swap,
            },
        );
    }

    /// The stateful connection of `token` ended.
    fn ended(&self, token: &str) {
        self.entries().remove(token);
    }
}

/// The hubs' routes: `{hub}/negotiate` and `{hub}` for `/hubs/chat` and `/hubs/webrtc`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hubs/chat/negotiate", post(negotiate_chat))
        .route("/hubs/chat", get(connect_chat))
        .route("/hubs/webrtc/negotiate", post(negotiate_webrtc))
        .route("/hubs/webrtc", get(connect_webrtc))
}

async fn negotiate_chat(state: State<AppState>, headers: HeaderMap, query: Params) -> Response {
    negotiate(state, headers, query, HubKind::Chat).await
}

async fn negotiate_webrtc(state: State<AppState>, headers: HeaderMap, query: Params) -> Response {
    negotiate(state, headers, query, HubKind::WebRtc).await
}

async fn connect_chat(
    state: State<AppState>,
    headers: HeaderMap,
    query: Params,
    ws: Result<WebSocketUpgrade, AppError>,
) -> Response {
    connect(state, headers, query, ws, HubKind::Chat)
        .await
        .into_response()
}

async fn connect_webrtc(
    state: State<AppState>,
    headers: HeaderMap,
    query: Params,
    ws: Result<WebSocketUpgrade, AppError>,
) -> Response {
    connect(state, headers, query, ws, HubKind::WebRtc)
        .await
        .into_response()
}

/// The caller, from `Authorization: Bearer`, `X-API-Key` or `?access_token=`.
async fn authenticate(state: &AppState, headers: &HeaderMap, query: &Params) -> AppResult<Actor> {
    let token = presented_credential(headers)
        .or(query.get("access_token"))
        .ok_or_else(|| AppError::unauthorized("missing access token or API key"))?;
    state.service.authenticate(token).await
}

/// `POST {hub}/negotiate` (TransportProtocols.md, "POST [endpoint-base]/negotiate"):
/// `200` with `{connectionId, connectionToken, negotiateVersion, availableTransports:
/// [{transport: "WebSockets", transferFormats: ["Text"]}]}` (plus
/// `useStatefulReconnect: true` when the client asks for it with
/// `useStatefulReconnect=true`). Negotiate version 0 is answered without a separate
/// token (the connection id is then the token), version 1 and later with version 1.
///
/// # Errors
/// `401 unauthorized`, `403 forbidden` (a browser `Origin` not allowed), `503
/// unavailable` (too many pending tokens on this node), as `{"error": {...}}`.
async fn negotiate(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Params,
    hub: HubKind,
) -> Response {
    let answer = async {
        let actor = authenticate(&state, &headers, &query).await?;
        super::check_origin(&headers, &state.cors.allowed_origins)?;
        let version = match query.get("negotiateVersion") {
            None | Some("0") => 0,
            Some(_) => 1,
        };
        let stateful = query.get("useStatefulReconnect") == Some("true");
        // The client's previous connection, if it left a ticket (see `resume`).
        let replay = match resume::cookie_token(&headers) {
            Some(previous) => resume::take(&state, previous, &actor, hub).await,
            None => Vec::new(),
        };
        let ticket = crate::auth::tokens::random_token(32);
        let cookie = resume::set_cookie(&ticket, hub, &headers);
        let connection_id = crate::auth::tokens::random_token(16);
        let token = if version == 0 {
            connection_id.clone()
        } else {
            crate::auth::tokens::random_token(32)
        };
        if !state.signalr.negotiated(
            token.clone(),
            actor.user_id.clone(),
            hub,
            stateful,
            ticket,
            replay,
        ) {
            return Err(AppError::new(
                ErrorCode::Unavailable,
                "too many pending connections: try again later",
            ));
        }
        let mut body = json!({
            "connectionId": connection_id,
            "negotiateVersion": version,
            "availableTransports": [{"transport": "WebSockets", "transferFormats": ["Text"]}],
        });
        if version > 0 {
            body["connectionToken"] = json!(token);
        }
        if stateful {
            body["useStatefulReconnect"] = json!(true);
        }
        let mut response = Json(body).into_response();
        if let Some(cookie) = cookie {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        Ok(response)
    };
    answer.await.into_response()
}

/// `GET {hub}` (TransportProtocols.md, "WebSockets"): the WebSocket, for the connection
/// `?id=` names (a negotiated token, used up here; or a stateful connection
/// reconnecting) or a new one without `id`.
///
/// # Errors
/// `401 unauthorized`; `403 forbidden` (Origin); `404 not_found` (an `id` that is
/// unknown, used, expired, another user's or another hub's); `429 rate_limited` (the
/// account holds `user_limits.sockets` live connections); `400 bad_request` (not a
/// WebSocket upgrade).
async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Params,
    ws: Result<WebSocketUpgrade, AppError>,
    hub: HubKind,
) -> AppResult<Response> {
    let actor = authenticate(&state, &headers, &query).await?;
    super::check_origin(&headers, &state.cors.allowed_origins)?;
    let token = query.get("id").map(str::to_owned);
    let claim = match &token {
        None => Claim::New {
            stateful: false,
            ticket: None,
            resume: Vec::new(),
        },
        Some(token) => state
            .signalr
            .claim(token, &actor.user_id, hub)
            .ok_or_else(|| AppError::not_found("connection"))?,
    };
    let config = websocket_config(state.service.limits().ws_frame_max_bytes);
    match claim {
        Claim::Reconnect(swap) => {
            let ws = ws?;
            Ok(ws.on_upgrade(config, move |ws| async move {
                if let Err(mpsc::error::SendError(mut ws)) = swap.send(Box::new(ws)).await {
                    // The connection ended meanwhile.
                    let close = record::close_record(Some("Connection not found."), false);
                    let _ = ws.send(Message::Text(close.into())).await;
                    let _ = SinkExt::close(&mut *ws).await;
                }
            }))
        }
        Claim::New {
            stateful,
            ticket,
            resume,
        } => {
            let max_sockets = state.service.user_limits.max_sockets();
            let slot = state
                .hub
                .reserve_socket(&actor.user_id, max_sockets)
                .ok_or_else(|| state.service.user_limits.too_many_sockets(max_sockets))?;
            let ws = ws?;
            let connection = Connection {
                actor,
                hub,
                slot,
                stateful_token: token.filter(|_| stateful),
                ticket,
                resume,
            };
            Ok(ws.on_upgrade(config, move |ws| serve(state, connection, ws)))
        }
    }
}

/// A new connection, authenticated, about to open.
struct Connection {
    actor: Actor,
    hub: HubKind,
    slot: SocketSlot,
    /// The connection token when the client negotiated stateful reconnect (honoured if
    /// the handshake asks for hub protocol version 2).
    stateful_token: Option<String>,
    /// The resume ticket token it leaves when it ends (negotiated connections).
    ticket: Option<String>,
    /// Rooms to replay first, each after its seq.
    resume: Vec<(String, Option<i64>)>,
}

/// Runs a new connection: the handshake, then the live core until it ends, then leaves
/// its resume ticket. The handshake is answered by the transport once the connection is
/// registered with the hub and has its snapshot (see [`socket`]), so that a client whose
/// `start()` resolved already counts as connected and receives every later event.
async fn serve(state: AppState, connection: Connection, mut ws: WebSocket) {
    let Connection {
        actor,
        hub,
        slot,
        stateful_token,
        ticket,
        resume: replay,
    } = connection;
    let max_record = state.service.limits().ws_frame_max_bytes;
    let (splitter, records, version) = match handshake(&mut ws, max_record).await {
        Ok(done) => done,
        Err(error) => {
            if let Some(error) = error {
                let _ = ws
                    .send(Message::Text(record::handshake_record(Some(&error)).into()))
                    .await;
            }
            let _ = ws.close(None).await;
            return;
        }
    };
    let token = stateful_token.filter(|_| version >= 2);
    tracing::debug!(
        version,
        stateful = token.is_some(),
        ?hub,
        "SignalR handshake"
    );
    let swap = token.as_ref().map(|token| {
        let (tx, rx) = mpsc::channel(1);
        state.signalr.live(token, &actor.user_id, hub, tx);
        rx
    });
    let resume = ticket.map(|ticket| {
        let resume = Resume::new(ticket, actor.user_id.clone(), hub);
        for (room_id, seq) in &replay {
            resume.track().start(room_id, seq.unwrap_or(0));
        }
        Arc::new(resume)
    });
    let opened = Opened {
        ws,
        splitter,
        records,
        swap,
        resume: resume.clone(),
    };
    match hub {
        HubKind::Chat => {
            let socket = SignalRSocket::<false>::new(
                opened,
                state.clone(),
                Hub::Chat {
                    dm_rooms: HashSet::new(),
                    group_rooms: HashSet::new(),
                },
            );
            crate::live::connection::run(state.clone(), actor, replay, socket, slot).await;
        }
        HubKind::WebRtc => {
            let lobby = state.signalr.lobby.clone();
            if let Some(lobby) = &lobby {
                // Seed 000 broadcast to everyone connected: here, everyone who may join
                // the lobby joins it (a private lobby reaches its members only).
                if let Err(e) = state.service.join_room(&actor, lobby).await {
                    tracing::debug!(code = ?e.code, "not joining the SignalR lobby");
                }
            }
            let socket = SignalRSocket::<true>::new(
                opened,
                state.clone(),
                Hub::WebRtc(webrtc::Context::new(lobby)),
            );
            crate::live::connection::run(state.clone(), actor, replay, socket, slot).await;
        }
    }
    if let Some(token) = &token {
        state.signalr.ended(token);
    }
    if let Some(resume) = resume {
        // Ended without a Close record from the server: a stateful client is known to
        // have what it acknowledged, any other what was written.
        resume.save(&state, token.is_none()).await;
    }
}

/// Reads the handshake request (the first record, within [`HANDSHAKE_TIMEOUT`]).
/// Returns the splitter and the records that followed it in the same frames, and the
/// hub protocol version; or the handshake error to send (`None`: just close).
async fn handshake(
    ws: &mut WebSocket,
    max_record: usize,
) -> Result<(Splitter, VecDeque<String>, u32), Option<String>> {
    let mut splitter = Splitter::default();
    let mut records = Vec::new();
    let read = async {
        while records.is_empty() {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => splitter
                    .push(text.as_str(), max_record, &mut records)
                    .map_err(|e| Some(e.0))?,
                Some(Ok(Message::Binary(_))) => {
                    return Err(Some(
                        "binary frames are not supported: use the JSON hub protocol".to_owned(),
                    ))
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Err(None),
                Some(Ok(_)) => {}
            }
        }
        Ok(())
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, read).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error),
        Err(_) => return Err(Some("Handshake was canceled.".to_owned())),
    }
    let mut records: VecDeque<String> = records.into();
    let first = records.pop_front().unwrap_or_default();
    let handshake = record::parse_handshake(&first).map_err(|e| Some(e.0))?;
    Ok((splitter, records, handshake.version))
}
