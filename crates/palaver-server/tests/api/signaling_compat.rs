//! Seed 003's signaling protocol (docs/signaling-compat.md): the flows a client of the Go
//! seed runs, replayed over `/compat/signaling/` with a small envelope client
//! ([`SeedClient`]). Register → key → connect; two users create and join a room and
//! exchange offer, answer and candidates; a user outside the room cannot signal into it;
//! the host leaves and the next in join order is told it is host; a regenerated key closes
//! the sockets opened with the old one; malformed envelopes get an Error reply and never
//! crash the socket or speak as someone else.
//!
//! "Nothing was relayed" is always checked with a bounded positive control: after the
//! refused message, a legitimate sender signals the same target, and the target's next
//! envelope must be that one.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use palaver_protocol::ws::close_code;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::calls::{ANSWER_SDP, OFFER_SDP};
use crate::helpers::{assert_api_error, unique_name, TestServer};

/// The longest wait for an expected envelope, handshake, close or HTTP answer.
const WAIT: Duration = Duration::from_secs(10);
/// The password of every account registered here (long and not a common one).
const PASSWORD: &str = "vivid-otter-42";
/// The password `/updatepassword` changes it to.
const NEW_PASSWORD: &str = "brisk-heron-77";
/// The largest room number the doc allows (2^53 − 1); no test room is likely to get it.
const MAX_ROOM_NUMBER: u64 = (1 << 53) - 1;

// The message types (docs/signaling-compat.md, "Message types").
const CREATE_ROOM: u64 = 0;
const JOIN_ROOM: u64 = 1;
const SDP: u64 = 2;
const ICE_CANDIDATE: u64 = 3;
const LEAVE_ROOM: u64 = 4;
const ROOM_CREATED: u64 = 5;
const ROOM_JOINED: u64 = 6;
const ERROR: u64 = 7;
const USER_JOINED: u64 = 8;
const USER_LEFT: u64 = 9;
const HOST_CHANGED: u64 = 10;
const ROOM_CLOSED: u64 = 11;

// ---------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------

/// An account made by `POST /compat/signaling/register`.
struct Account {
    id: u64,
    username: String,
    key: String,
}

/// `POST {base}{path}` with a JSON body: the status and the JSON body (`null` if empty).
async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("an HTTP client");
    let resp = http
        .post(format!("{}{path}", server.base))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("the response body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "POST {path}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    (status, body)
}

/// Asserts a REST answer is Palaver's error `code` with `status` (naming `field` if given).
#[track_caller]
fn assert_rest_error(got: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (got_status, body) = got;
    assert_eq!(*got_status, status, "status; body: {body}");
    assert_eq!(body["error"]["code"], code, "error.code; body: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error.message; body: {body}"
    );
    if let Some(field) = field {
        assert_eq!(body["error"]["field"], field, "error.field; body: {body}");
    }
}

/// The integer at `value`.
#[track_caller]
fn int(value: &Value, what: &str) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{what} is not a non-negative integer: {value}"))
}

/// Registers a fresh account whose name starts with `prefix`, checking the `201` answer.
async fn register(server: &TestServer, prefix: &str) -> Account {
    let username = unique_name(prefix);
    let (status, body) = post(
        server,
        "/compat/signaling/register",
        &json!({"Username": username, "Password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 201, "register {username}: {body}");
    let id = int(&body["ID"], "ID");
    assert!(id > 0, "ID is a user number (1, 2, 3...): {body}");
    assert_eq!(body["Username"], username.as_str(), "Username: {body}");
    let key = body["APIKey"]
        .as_str()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| panic!("APIKey is a non-empty string: {body}"))
        .to_owned();
    Account { id, username, key }
}

// ---------------------------------------------------------------------------------------
// The envelope client
// ---------------------------------------------------------------------------------------

/// How a socket presents its credential.
enum Auth<'a> {
    None,
    XApiKey(&'a str),
    Bearer(&'a str),
    /// `Authorization: <key>` without a scheme.
    BareAuthorization(&'a str),
    /// `?<param>=<key>`.
    Query(&'a str, &'a str),
}

/// The upgrade request for `/compat/signaling/ws` presenting `auth`.
fn ws_request(server: &TestServer, auth: Auth<'_>) -> Request {
    let mut url = url::Url::parse(&server.base).expect("base URL");
    url.set_scheme("ws").expect("ws scheme");
    url.set_path("/compat/signaling/ws");
    if let Auth::Query(param, key) = auth {
        url.query_pairs_mut().append_pair(param, key);
    }
    let mut request = url.as_str().into_client_request().expect("a WS request");
    let header = |v: String| HeaderValue::from_str(&v).expect("a header value");
    match auth {
        Auth::XApiKey(key) => {
            request
                .headers_mut()
                .insert("x-api-key", header(key.to_owned()));
        }
        Auth::Bearer(key) => {
            request
                .headers_mut()
                .insert("authorization", header(format!("Bearer {key}")));
        }
        Auth::BareAuthorization(key) => {
            request
                .headers_mut()
                .insert("authorization", header(key.to_owned()));
        }
        Auth::None | Auth::Query(..) => {}
    }
    request
}

/// Tries the upgrade with `auth` and returns the HTTP status it was refused with; panics if
/// it was accepted.
async fn refused_upgrade(server: &TestServer, auth: Auth<'_>) -> u16 {
    let result = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(ws_request(server, auth)),
    )
    .await
    .expect("handshake answered in time");
    match result {
        Ok((_, response)) => panic!(
            "the upgrade should have been refused, got {}",
            response.status()
        ),
        Err(WsError::Http(response)) => {
            let status = response.status().as_u16();
            if let Some(body) = response.body().as_ref().filter(|b| !b.is_empty()) {
                if let Ok(body) = serde_json::from_slice::<Value>(body) {
                    assert_eq!(
                        body["error"]["code"], "unauthorized",
                        "refusal body: {body}"
                    );
                }
            }
            status
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// One seed-protocol WebSocket: sends envelopes as the seed's clients do and reads the
/// server's, keeping those read while waiting for another (see [`SeedClient::expect`]).
struct SeedClient {
    name: String,
    /// The user's number: what `from` carries and what the server puts in `to`.
    id: u64,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    backlog: VecDeque<Value>,
}

impl SeedClient {
    /// Connects as `account` with `X-API-Key`.
    async fn connect(server: &TestServer, account: &Account, name: &str) -> SeedClient {
        SeedClient::connect_with(server, Auth::XApiKey(&account.key), account.id, name).await
    }

    /// Connects presenting `auth`, as the user numbered `id`; panics if refused.
    async fn connect_with(server: &TestServer, auth: Auth<'_>, id: u64, name: &str) -> SeedClient {
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::connect_async(ws_request(server, auth)),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: no handshake within {WAIT:?}"))
        .unwrap_or_else(|e| panic!("{name}: connecting to /compat/signaling/ws: {e}"));
        SeedClient {
            name: name.to_owned(),
            id,
            ws,
            backlog: VecDeque::new(),
        }
    }

    /// Sends one text frame.
    async fn send_text(&mut self, text: String) {
        self.ws
            .send(WsMessage::text(text))
            .await
            .unwrap_or_else(|e| panic!("{}: send: {e}", self.name));
    }

    /// Sends `envelope` as it is.
    async fn send_raw(&mut self, envelope: Value) {
        self.send_text(envelope.to_string()).await;
    }

    /// Sends `{"msg_type", "from": <own number>, "to"?, "payload"}`.
    async fn send(&mut self, msg_type: u64, to: Option<u64>, payload: Value) {
        let mut envelope = json!({"msg_type": msg_type, "from": self.id, "payload": payload});
        if let Some(to) = to {
            envelope["to"] = json!(to);
        }
        self.send_raw(envelope).await;
    }

    /// Reads the next envelope off the socket, checking its shape (an object; integer
    /// `msg_type` and `from`; `to` our number; an object `payload`).
    async fn read(&mut self, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!(
                    "{}: no {what} within {WAIT:?}; kept meanwhile: {:#?}",
                    self.name, self.backlog
                ),
                Ok(None) => panic!("{}: the socket ended waiting for {what}", self.name),
                Ok(Some(Err(e))) => {
                    panic!("{}: the socket failed waiting for {what}: {e}", self.name)
                }
                Ok(Some(Ok(frame))) => frame,
            };
            match frame {
                WsMessage::Text(text) => {
                    let envelope: Value = serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!("{}: a text frame that is not JSON ({e}): {text}", self.name)
                    });
                    self.check_shape(&envelope);
                    return envelope;
                }
                WsMessage::Binary(bytes) => panic!(
                    "{}: a binary frame ({} bytes): every envelope is a text frame",
                    self.name,
                    bytes.len()
                ),
                WsMessage::Close(frame) => {
                    panic!("{}: closed ({frame:?}) waiting for {what}", self.name)
                }
                _ => continue,
            }
        }
    }

    #[track_caller]
    fn check_shape(&self, envelope: &Value) {
        let name = &self.name;
        assert!(envelope.is_object(), "{name}: not an object: {envelope}");
        int(&envelope["msg_type"], "msg_type");
        int(&envelope["from"], "from");
        assert_eq!(
            envelope["to"], self.id,
            "{name}: `to` is our number: {envelope}"
        );
        assert!(
            envelope["payload"].is_object(),
            "{name}: payload is an object: {envelope}"
        );
    }

    /// The next envelope (kept or new), whatever it is.
    async fn next(&mut self, what: &str) -> Value {
        match self.backlog.pop_front() {
            Some(envelope) => envelope,
            None => self.read(what).await,
        }
    }

    /// The next envelope, which must be of `msg_type`; returns it.
    async fn next_of(&mut self, msg_type: u64, what: &str) -> Value {
        let envelope = self.next(what).await;
        assert_eq!(
            envelope["msg_type"], msg_type,
            "{}: expected {what} (msg_type {msg_type}), got {envelope}",
            self.name
        );
        envelope
    }

    /// The first envelope (kept or new) of `msg_type`, keeping the others read meanwhile:
    /// for envelopes whose order the doc does not fix.
    async fn expect(&mut self, msg_type: u64, what: &str) -> Value {
        if let Some(i) = self.backlog.iter().position(|e| e["msg_type"] == msg_type) {
            return self.backlog.remove(i).expect("index in range");
        }
        loop {
            let envelope = self.read(what).await;
            if envelope["msg_type"] == msg_type {
                return envelope;
            }
            self.backlog.push_back(envelope);
        }
    }

    /// The next envelope, which must be an Error with `code` refusing a message of type
    /// `refused` (`Value::Null` for one that had no type), naming `field` if given.
    async fn refused(
        &mut self,
        what: &str,
        code: &str,
        refused: Value,
        field: Option<&str>,
    ) -> Value {
        let envelope = self.next(&format!("the Error for {what}")).await;
        let name = &self.name;
        assert_eq!(envelope["msg_type"], ERROR, "{name}: {what}: {envelope}");
        assert_eq!(
            envelope["from"], 0,
            "{name}: {what}: from the server: {envelope}"
        );
        let payload = &envelope["payload"];
        assert_eq!(payload["code"], code, "{name}: {what}: code: {envelope}");
        assert!(
            payload["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {what}: a message: {envelope}"
        );
        assert_eq!(
            payload["msg_type"], refused,
            "{name}: {what}: payload.msg_type echoes the refused type: {envelope}"
        );
        if let Some(field) = field {
            assert_eq!(payload["field"], field, "{name}: {what}: field: {envelope}");
        }
        envelope
    }

    /// CreateRoom, answered by RoomCreated with us as host: the room's number.
    async fn create_room(&mut self) -> u64 {
        self.send(CREATE_ROOM, None, json!({})).await;
        let created = self.next_of(ROOM_CREATED, "RoomCreated").await;
        assert_eq!(
            created["from"], 0,
            "{}: from the server: {created}",
            self.name
        );
        assert_eq!(
            created["payload"]["host"], self.id,
            "{}: the creator is host: {created}",
            self.name
        );
        room_number(&created["payload"]["room_id"])
    }

    /// JoinRoom of `room`, answered by RoomJoined for us: its payload.
    async fn join_room(&mut self, room: u64) -> Value {
        self.send(JOIN_ROOM, None, json!({"room_id": room})).await;
        let joined = self.next_of(ROOM_JOINED, "RoomJoined").await;
        assert_eq!(
            joined["from"], 0,
            "{}: from the server: {joined}",
            self.name
        );
        let payload = joined["payload"].clone();
        assert_eq!(payload["room_id"], room, "{}: room_id: {joined}", self.name);
        assert_eq!(
            payload["user_id"], self.id,
            "{}: user_id: {joined}",
            self.name
        );
        payload
    }

    /// LeaveRoom, then a second LeaveRoom whose `not_found` shows the first was done (the
    /// server handles a socket's messages one at a time, and a leave has no reply).
    async fn leave_room(&mut self) {
        self.send(LEAVE_ROOM, None, json!({})).await;
        self.send(LEAVE_ROOM, None, json!({})).await;
        self.refused("a second LeaveRoom", "not_found", json!(LEAVE_ROOM), None)
            .await;
    }

    /// Waits for the server to close the socket (skipping envelopes); its close code, or
    /// `None` if the stream ended without one.
    async fn closed(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("{}: not closed within {WAIT:?}", self.name),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(WsMessage::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

/// A room number: positive and below 2^53.
#[track_caller]
fn room_number(value: &Value) -> u64 {
    let room = int(value, "room_id");
    assert!(
        (1..=MAX_ROOM_NUMBER).contains(&room),
        "room_id in 1..2^53: {room}"
    );
    room
}

/// An ICE candidate line carrying `marker`.
fn candidate(marker: &str) -> String {
    format!("candidate:{marker} 1 udp 2122260223 10.0.0.2 54400 typ host")
}

/// Asserts `envelope` is a relay of `msg_type` from `sender` in `room`.
#[track_caller]
fn assert_relay(envelope: &Value, msg_type: u64, sender: u64, room: u64) {
    assert_eq!(envelope["msg_type"], msg_type, "msg_type: {envelope}");
    assert_eq!(envelope["from"], sender, "from is the sender: {envelope}");
    assert_eq!(
        envelope["payload"]["room_id"], room,
        "payload.room_id: {envelope}"
    );
}

/// The positive control: `sender` sends `target` an ICE candidate carrying `marker`
/// (with `from: 0`, which the doc allows), and `target`'s next envelope must be exactly
/// that: nothing refused earlier reached it.
async fn assert_next_is_control(
    sender: &mut SeedClient,
    target: &mut SeedClient,
    room: u64,
    marker: &str,
) {
    let line = candidate(marker);
    sender
        .send_raw(json!({
            "msg_type": ICE_CANDIDATE,
            "from": 0,
            "to": target.id,
            "payload": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
        }))
        .await;
    let got = target
        .next(&format!("{}'s control candidate {marker}", sender.name))
        .await;
    assert_relay(&got, ICE_CANDIDATE, sender.id, room);
    assert_eq!(
        got["payload"]["candidate"], line,
        "{}: the next envelope is the control {marker}, not something refused before it: \
         {got}",
        target.name
    );
}

// ---------------------------------------------------------------------------------------
// 1. Register → key → connect
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn register_gives_a_key_that_opens_the_socket_every_documented_way() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;

    let ways = [
        ("X-API-Key", Auth::XApiKey(&alice.key)),
        ("Authorization: Bearer", Auth::Bearer(&alice.key)),
        (
            "Authorization without a scheme",
            Auth::BareAuthorization(&alice.key),
        ),
        ("?api_key=", Auth::Query("api_key", &alice.key)),
        ("?access_token=", Auth::Query("access_token", &alice.key)),
    ];
    for (way, auth) in ways {
        let mut socket = SeedClient::connect_with(&server, auth, alice.id, way).await;
        // Authenticated as Alice: she is the host of what she creates.
        socket.create_room().await;
    }

    for (what, auth) in [
        ("no key", Auth::None),
        ("a bad X-API-Key", Auth::XApiKey("plv_bogus_key")),
        ("a bad Bearer key", Auth::Bearer("plv_bogus_key")),
        ("a bad ?api_key=", Auth::Query("api_key", "plv_bogus_key")),
        ("an empty X-API-Key", Auth::XApiKey("")),
    ] {
        assert_eq!(
            refused_upgrade(&server, auth).await,
            401,
            "{what}: 401 before the upgrade"
        );
    }
}

#[tokio::test]
async fn a_registered_account_is_an_ordinary_palaver_account() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;

    // The native REST API signs it in with the same password.
    let mut native = server.client();
    let auth = native
        .login(&alice.username, PASSWORD)
        .await
        .expect("native login with the seed account's password");
    assert_eq!(auth.user.username, alice.username);
    // No Email given: a placeholder that can receive nothing.
    let me = native.me().await.expect("GET /users/me");
    assert!(
        me.email.ends_with("@signaling.invalid"),
        "placeholder address: {}",
        me.email
    );

    // Its access token is "any Palaver access token": it opens the seed socket too.
    let mut socket =
        SeedClient::connect_with(&server, Auth::Bearer(&auth.access_token), alice.id, "jwt").await;
    socket.create_room().await;

    // With an Email, the account signs in natively by it.
    let bob_name = unique_name("seed_bob");
    let bob_email = format!("{bob_name}@example.com");
    let (status, body) = post(
        &server,
        "/compat/signaling/register",
        &json!({"Username": bob_name, "Password": PASSWORD, "Email": bob_email}),
    )
    .await;
    assert_eq!(status, 201, "register with Email: {body}");
    let auth = server
        .client()
        .login(&bob_email, PASSWORD)
        .await
        .expect("native login by the given Email");
    assert_eq!(auth.user.username, bob_name);
    assert_ne!(body["ID"], alice.id, "each user has its own number: {body}");
}

#[tokio::test]
async fn register_refuses_taken_names_and_weak_credentials() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;

    let taken = post(
        &server,
        "/compat/signaling/register",
        &json!({"Username": alice.username, "Password": "another-fine-pw-9"}),
    )
    .await;
    assert_rest_error(&taken, 409, "username_taken", None);

    let weak_name = unique_name("seed_weak");
    let short_password = post(
        &server,
        "/compat/signaling/register",
        &json!({"Username": weak_name, "Password": "abc"}),
    )
    .await;
    assert_rest_error(&short_password, 422, "validation_failed", Some("Password"));

    let short_name = post(
        &server,
        "/compat/signaling/register",
        &json!({"Username": "ab", "Password": PASSWORD}),
    )
    .await;
    assert_rest_error(&short_name, 422, "validation_failed", Some("Username"));

    // The refused registration made no account: its name is still free.
    let (status, body) = post(
        &server,
        "/compat/signaling/register",
        &json!({"Username": weak_name, "Password": PASSWORD}),
    )
    .await;
    assert_eq!(
        status, 201,
        "the name refused with a weak password is free: {body}"
    );
}

// ---------------------------------------------------------------------------------------
// 2. Two users: create, join, offer, answer, candidates
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn two_users_create_join_and_exchange_offer_answer_and_candidates() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let bob = register(&server, "seed_bob").await;
    assert_ne!(alice.id, bob.id, "distinct user numbers");
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut b = SeedClient::connect(&server, &bob, "bob").await;

    let room = a.create_room().await;
    let joined = b.join_room(room).await;
    assert_eq!(joined["host"], alice.id, "Alice is host: {joined}");
    assert_eq!(
        joined["members"],
        json!([alice.id, bob.id]),
        "join order: {joined}"
    );

    let told = a.next_of(USER_JOINED, "UserJoined for Bob").await;
    assert_eq!(told["from"], bob.id, "from the joiner: {told}");
    assert_eq!(told["payload"]["room_id"], room, "{told}");
    assert_eq!(told["payload"]["user_id"], bob.id, "{told}");

    // The seed's flow: the joiner offers each member already there.
    b.send(
        SDP,
        Some(alice.id),
        json!({"type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    let offer = a.next("Bob's offer").await;
    assert_relay(&offer, SDP, bob.id, room);
    assert_eq!(offer["payload"]["type"], "offer", "{offer}");
    assert_eq!(
        offer["payload"]["sdp"], OFFER_SDP,
        "the SDP text unchanged: {offer}"
    );

    a.send(
        SDP,
        Some(bob.id),
        json!({"type": "answer", "sdp": ANSWER_SDP}),
    )
    .await;
    let answer = b.next("Alice's answer").await;
    assert_relay(&answer, SDP, alice.id, room);
    assert_eq!(answer["payload"]["type"], "answer", "{answer}");
    assert_eq!(answer["payload"]["sdp"], ANSWER_SDP, "{answer}");

    // Candidates both ways, every RTCIceCandidateInit field kept.
    b.send(
        ICE_CANDIDATE,
        Some(alice.id),
        json!({"candidate": candidate("b1"), "sdpMid": "0", "sdpMLineIndex": 0}),
    )
    .await;
    let ice = a.next("Bob's candidate").await;
    assert_relay(&ice, ICE_CANDIDATE, bob.id, room);
    assert_eq!(ice["payload"]["candidate"], candidate("b1"), "{ice}");
    assert_eq!(ice["payload"]["sdpMid"], "0", "{ice}");
    assert_eq!(ice["payload"]["sdpMLineIndex"], 0, "{ice}");

    a.send(
        ICE_CANDIDATE,
        Some(bob.id),
        json!({"candidate": candidate("a1"), "sdpMid": "audio", "sdpMLineIndex": 2,
               "usernameFragment": "uf01"}),
    )
    .await;
    let ice = b.next("Alice's candidate").await;
    assert_relay(&ice, ICE_CANDIDATE, alice.id, room);
    assert_eq!(ice["payload"]["candidate"], candidate("a1"), "{ice}");
    assert_eq!(ice["payload"]["sdpMid"], "audio", "{ice}");
    assert_eq!(ice["payload"]["sdpMLineIndex"], 2, "{ice}");
    assert_eq!(ice["payload"]["usernameFragment"], "uf01", "{ice}");

    // End of candidates: an empty string.
    a.send(
        ICE_CANDIDATE,
        Some(bob.id),
        json!({"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}),
    )
    .await;
    let end = b.next("Alice's end of candidates").await;
    assert_relay(&end, ICE_CANDIDATE, alice.id, room);
    assert_eq!(end["payload"]["candidate"], "", "{end}");
}

#[tokio::test]
async fn nested_description_and_candidate_and_to_inside_payload_are_relayed() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let bob = register(&server, "seed_bob").await;
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut b = SeedClient::connect(&server, &bob, "bob").await;
    let room = a.create_room().await;
    b.join_room(room).await;
    a.next_of(USER_JOINED, "UserJoined for Bob").await;

    // RTCPeerConnection.localDescription as `payload.sdp`.
    b.send(
        SDP,
        Some(alice.id),
        json!({"sdp": {"type": "offer", "sdp": OFFER_SDP}}),
    )
    .await;
    let offer = a.next("Bob's nested offer").await;
    assert_relay(&offer, SDP, bob.id, room);
    assert_eq!(offer["payload"]["type"], "offer", "{offer}");
    assert_eq!(offer["payload"]["sdp"], OFFER_SDP, "{offer}");

    // `to` inside the payload, no top-level `to`, no `from` (optional), and the room given.
    a.send_raw(json!({
        "msg_type": SDP,
        "payload": {"to": bob.id, "room_id": room, "type": "answer", "sdp": ANSWER_SDP},
    }))
    .await;
    let answer = b.next("Alice's answer addressed in the payload").await;
    assert_relay(&answer, SDP, alice.id, room);
    assert_eq!(answer["payload"]["type"], "answer", "{answer}");
    assert_eq!(answer["payload"]["sdp"], ANSWER_SDP, "{answer}");

    // RTCIceCandidate.toJSON() as `payload.candidate`.
    b.send(
        ICE_CANDIDATE,
        Some(alice.id),
        json!({"candidate": {"candidate": candidate("nested"), "sdpMid": "1",
                             "sdpMLineIndex": 1, "usernameFragment": "uf02"}}),
    )
    .await;
    let ice = a.next("Bob's nested candidate").await;
    assert_relay(&ice, ICE_CANDIDATE, bob.id, room);
    assert_eq!(ice["payload"]["candidate"], candidate("nested"), "{ice}");
    assert_eq!(ice["payload"]["sdpMid"], "1", "{ice}");
    assert_eq!(ice["payload"]["sdpMLineIndex"], 1, "{ice}");
    assert_eq!(ice["payload"]["usernameFragment"], "uf02", "{ice}");

    // A candidate addressed inside the payload.
    a.send(
        ICE_CANDIDATE,
        None,
        json!({"to": bob.id, "candidate": candidate("inner-to"), "sdpMid": "0",
               "sdpMLineIndex": 0}),
    )
    .await;
    let ice = b.next("Alice's candidate addressed in the payload").await;
    assert_relay(&ice, ICE_CANDIDATE, alice.id, room);
    assert_eq!(ice["payload"]["candidate"], candidate("inner-to"), "{ice}");
}

// ---------------------------------------------------------------------------------------
// 3. Nobody outside the call signals into it
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_user_outside_the_room_cannot_signal_into_it() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let bob = register(&server, "seed_bob").await;
    let carol = register(&server, "seed_carol").await;
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut b = SeedClient::connect(&server, &bob, "bob").await;
    let mut c = SeedClient::connect(&server, &carol, "carol").await;
    let room = a.create_room().await;
    b.join_room(room).await;
    a.next_of(USER_JOINED, "UserJoined for Bob").await;

    // Carol, in no room at all.
    c.send(
        SDP,
        Some(alice.id),
        json!({"type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    c.refused("SDP from outside any room", "not_found", json!(SDP), None)
        .await;
    c.send(
        ICE_CANDIDATE,
        Some(alice.id),
        json!({"candidate": candidate("intruder"), "sdpMid": "0", "sdpMLineIndex": 0}),
    )
    .await;
    c.refused(
        "ICE from outside any room",
        "not_found",
        json!(ICE_CANDIDATE),
        None,
    )
    .await;
    assert_next_is_control(&mut b, &mut a, room, "control-1").await;

    // Carol, in a room of her own.
    let other_room = c.create_room().await;
    assert_ne!(other_room, room, "two rooms, two numbers");
    c.send(
        SDP,
        Some(alice.id),
        json!({"type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    c.refused("SDP into another room", "not_found", json!(SDP), Some("to"))
        .await;
    c.send(
        ICE_CANDIDATE,
        None,
        json!({"to": alice.id, "candidate": candidate("intruder"), "sdpMid": "0",
               "sdpMLineIndex": 0}),
    )
    .await;
    c.refused(
        "ICE into another room",
        "not_found",
        json!(ICE_CANDIDATE),
        Some("to"),
    )
    .await;
    // Naming Alice's room in the payload does not get her in.
    c.send(
        SDP,
        Some(alice.id),
        json!({"room_id": room, "type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    c.refused(
        "SDP naming a room that is not hers",
        "not_found",
        json!(SDP),
        None,
    )
    .await;
    assert_next_is_control(&mut b, &mut a, room, "control-2").await;
    // Bob was not reached either.
    assert_next_is_control(&mut a, &mut b, room, "control-3").await;
}

// ---------------------------------------------------------------------------------------
// 4. Host handoff
// ---------------------------------------------------------------------------------------

/// Expects UserLeft for `who` with `reason` and HostChanged to `host` (in either order).
async fn expect_left_and_host(
    client: &mut SeedClient,
    room: u64,
    who: u64,
    reason: &str,
    host: u64,
) {
    let left = client.expect(USER_LEFT, "UserLeft").await;
    assert_eq!(
        left["from"], who,
        "{}: from the one who left: {left}",
        client.name
    );
    assert_eq!(left["payload"]["room_id"], room, "{}: {left}", client.name);
    assert_eq!(left["payload"]["user_id"], who, "{}: {left}", client.name);
    assert_eq!(left["payload"]["reason"], reason, "{}: {left}", client.name);
    let changed = client.expect(HOST_CHANGED, "HostChanged").await;
    assert_eq!(
        changed["from"], 0,
        "{}: from the server: {changed}",
        client.name
    );
    assert_eq!(
        changed["payload"]["room_id"], room,
        "{}: {changed}",
        client.name
    );
    assert_eq!(
        changed["payload"]["host"], host,
        "{}: {changed}",
        client.name
    );
}

#[tokio::test]
async fn the_host_leaves_and_the_next_in_join_order_is_told_it_is_host() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let bob = register(&server, "seed_bob").await;
    let carol = register(&server, "seed_carol").await;
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut b = SeedClient::connect(&server, &bob, "bob").await;
    let mut c = SeedClient::connect(&server, &carol, "carol").await;

    let room = a.create_room().await;
    b.join_room(room).await;
    a.next_of(USER_JOINED, "UserJoined for Bob").await;
    let joined = c.join_room(room).await;
    assert_eq!(joined["host"], alice.id, "{joined}");
    assert_eq!(
        joined["members"],
        json!([alice.id, bob.id, carol.id]),
        "join order, Carol last: {joined}"
    );
    for member in [&mut a, &mut b] {
        let told = member.next_of(USER_JOINED, "UserJoined for Carol").await;
        assert_eq!(told["payload"]["user_id"], carol.id, "{told}");
    }

    // The host leaves: Bob is next in join order.
    a.leave_room().await;
    expect_left_and_host(&mut b, room, alice.id, "left", bob.id).await;
    expect_left_and_host(&mut c, room, alice.id, "left", bob.id).await;

    // Bob's socket closes: Carol is host.
    drop(b);
    expect_left_and_host(&mut c, room, bob.id, "disconnected", carol.id).await;
    // Carol is alone now; she leaves and the call ends.
    c.leave_room().await;

    // The room outlives its calls: Alice (still a member) joins and starts the next one.
    let joined = a.join_room(room).await;
    assert_eq!(joined["members"], json!([alice.id]), "a new call: {joined}");
    assert_eq!(joined["host"], alice.id, "the joiner is host: {joined}");
    let joined = c.join_room(room).await;
    assert_eq!(joined["members"], json!([alice.id, carol.id]), "{joined}");
    assert_eq!(joined["host"], alice.id, "{joined}");
    let told = a.next_of(USER_JOINED, "UserJoined for Carol").await;
    assert_eq!(told["payload"]["user_id"], carol.id, "{told}");
}

#[tokio::test]
async fn a_newcomer_joining_an_empty_room_is_its_host() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let dave = register(&server, "seed_dave").await;
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let room = a.create_room().await;
    a.leave_room().await;

    let mut d = SeedClient::connect(&server, &dave, "dave").await;
    let joined = d.join_room(room).await;
    assert_eq!(joined["members"], json!([dave.id]), "{joined}");
    assert_eq!(joined["host"], dave.id, "{joined}");
}

// ---------------------------------------------------------------------------------------
// 5. Regenerate and updatepassword
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn regenerate_revokes_the_old_key_and_closes_its_sockets() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let mut old = SeedClient::connect(&server, &alice, "old key").await;
    old.create_room().await;

    // A key made with the native API is not one of `/register`'s or `/regenerate`'s.
    let mut native = server.client();
    native
        .login(&alice.username, PASSWORD)
        .await
        .expect("native login");
    let other_key = native
        .create_api_key("other", None)
        .await
        .expect("POST api-keys")
        .key;
    let mut other =
        SeedClient::connect_with(&server, Auth::XApiKey(&other_key), alice.id, "other key").await;

    let wrong = post(
        &server,
        "/compat/signaling/regenerate",
        &json!({"Username": alice.username, "Password": "not-the-password-1"}),
    )
    .await;
    assert_rest_error(&wrong, 401, "invalid_credentials", None);
    let nobody = post(
        &server,
        "/compat/signaling/regenerate",
        &json!({"Username": unique_name("nobody"), "Password": PASSWORD}),
    )
    .await;
    assert_rest_error(&nobody, 401, "invalid_credentials", None);
    // The refused attempts revoked nothing: the old key still opens a socket.
    SeedClient::connect(&server, &alice, "old key, again")
        .await
        .create_room()
        .await;

    let (status, body) = post(
        &server,
        "/compat/signaling/regenerate",
        &json!({"Username": alice.username, "Password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "regenerate: {body}");
    assert_eq!(body["ID"], alice.id, "{body}");
    assert_eq!(body["Username"], alice.username.as_str(), "{body}");
    let new_key = body["APIKey"]
        .as_str()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| panic!("APIKey: {body}"))
        .to_owned();
    assert_ne!(new_key, alice.key, "a new key");

    if let Some(code) = old.closed().await {
        assert_eq!(
            code,
            close_code::SESSION_ENDED,
            "the old key's socket closes with 4001"
        );
    }
    assert_eq!(
        refused_upgrade(&server, Auth::XApiKey(&alice.key)).await,
        401,
        "the old key is revoked"
    );
    let mut renewed =
        SeedClient::connect_with(&server, Auth::XApiKey(&new_key), alice.id, "new key").await;
    renewed.create_room().await;

    // The natively made key and its socket are left alone.
    other.create_room().await;
    SeedClient::connect_with(
        &server,
        Auth::Bearer(&other_key),
        alice.id,
        "other key again",
    )
    .await
    .create_room()
    .await;
}

#[tokio::test]
async fn updatepassword_changes_the_password_and_keeps_the_key() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let mut seed = SeedClient::connect(&server, &alice, "alice").await;
    let room = seed.create_room().await;
    let mut native = server.client();
    native
        .login(&alice.username, PASSWORD)
        .await
        .expect("native login");
    let mut native_socket = native.connect().await.expect("native socket");

    let wrong = post(
        &server,
        "/compat/signaling/updatepassword",
        &json!({"Username": alice.username, "Password": "not-the-password-1",
                "NewPassword": NEW_PASSWORD}),
    )
    .await;
    assert_rest_error(&wrong, 401, "invalid_credentials", None);

    let (status, body) = post(
        &server,
        "/compat/signaling/updatepassword",
        &json!({"Username": alice.username, "Password": PASSWORD,
                "NewPassword": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "updatepassword: {body}");
    assert_eq!(body["ID"], alice.id, "{body}");
    assert_eq!(body["Username"], alice.username.as_str(), "{body}");

    // Login sessions end (their sockets close with 4001)...
    let frame = native_socket
        .wait_close()
        .await
        .expect("the native socket closes");
    if let Some(frame) = frame {
        assert_eq!(
            u16::from(frame.code),
            close_code::SESSION_ENDED,
            "{frame:?}"
        );
    }
    // ...API keys keep working: the open socket still answers (and is still in its room),
    // and the key opens a new one.
    seed.send(CREATE_ROOM, None, json!({})).await;
    seed.refused(
        "CreateRoom while in a room",
        "conflict",
        json!(CREATE_ROOM),
        None,
    )
    .await;
    let mut again = SeedClient::connect(&server, &alice, "alice again").await;
    let joined = again.join_room(room).await;
    assert_eq!(joined["host"], alice.id, "{joined}");

    // The old password is gone everywhere, the new one works.
    let old = post(
        &server,
        "/compat/signaling/regenerate",
        &json!({"Username": alice.username, "Password": PASSWORD}),
    )
    .await;
    assert_rest_error(&old, 401, "invalid_credentials", None);
    let old_login = server.client().login(&alice.username, PASSWORD).await;
    assert_api_error(old_login, 401, "invalid_credentials", None);
    server
        .client()
        .login(&alice.username, NEW_PASSWORD)
        .await
        .expect("native login with the new password");
    let (status, body) = post(
        &server,
        "/compat/signaling/regenerate",
        &json!({"Username": alice.username, "Password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "regenerate with the new password: {body}");
}

// ---------------------------------------------------------------------------------------
// 6. Malformed envelopes
// ---------------------------------------------------------------------------------------

/// Asserts `client` (in no room) still serves after a refused message: CreateRoom works
/// (so the refused message created nothing), LeaveRoom is silent, a second one is
/// `not_found`.
async fn assert_still_serving(client: &mut SeedClient, after: &str) {
    client.send(CREATE_ROOM, None, json!({})).await;
    let created = client.next(&format!("RoomCreated after {after}")).await;
    assert_eq!(
        created["msg_type"], ROOM_CREATED,
        "{}: after {after}, CreateRoom still works: {created}",
        client.name
    );
    client.leave_room().await;
}

#[tokio::test]
async fn malformed_envelopes_outside_a_room_get_an_error_and_change_nothing() {
    let server = TestServer::spawn().await;
    let carol = register(&server, "seed_carol").await;
    let dave = register(&server, "seed_dave").await;
    let mut c = SeedClient::connect(&server, &carol, "carol").await;

    let bad_requests = [
        ("not JSON", "this is not json".to_owned()),
        ("a JSON array", "[0, {\"room_id\": 1}]".to_owned()),
        (
            "no msg_type",
            json!({"from": carol.id, "payload": {}}).to_string(),
        ),
        (
            "a null msg_type",
            json!({"msg_type": null, "payload": {}}).to_string(),
        ),
    ];
    for (what, text) in bad_requests {
        c.send_text(text).await;
        c.refused(what, "bad_request", Value::Null, None).await;
        assert_still_serving(&mut c, what).await;
    }

    // `"0"` is not an integer: refused, and not taken for CreateRoom (the probe's
    // CreateRoom would then be a conflict). Whether `payload.msg_type` is `null` (the
    // message had no type) or echoes `"0"` the doc leaves open; `0` would be wrong.
    c.send_raw(json!({"msg_type": "0", "from": carol.id, "payload": {}}))
        .await;
    let error = c.next("the Error for msg_type \"0\"").await;
    assert_eq!(error["msg_type"], ERROR, "{error}");
    assert_eq!(error["payload"]["code"], "bad_request", "{error}");
    assert!(
        error["payload"]["msg_type"].is_null() || error["payload"]["msg_type"] == "0",
        "payload.msg_type is null (or the string given), never the integer 0: {error}"
    );
    assert_still_serving(&mut c, "msg_type \"0\"").await;

    for msg_type in [99, ROOM_CREATED, ERROR, 11] {
        c.send(msg_type, None, json!({"room_id": 1, "host": carol.id}))
            .await;
        let what = format!("msg_type {msg_type}");
        c.refused(&what, "unknown_type", json!(msg_type), None)
            .await;
        assert_still_serving(&mut c, &what).await;
    }

    for (what, payload) in [
        ("room_id \"abc\"", json!({"room_id": "abc"})),
        ("room_id -1", json!({"room_id": -1})),
        ("room_id 0", json!({"room_id": 0})),
        ("no room_id", json!({})),
    ] {
        c.send(JOIN_ROOM, None, payload).await;
        let what = format!("JoinRoom with {what}");
        c.refused(
            &what,
            "validation_failed",
            json!(JOIN_ROOM),
            Some("payload.room_id"),
        )
        .await;
        assert_still_serving(&mut c, &what).await;
    }
    c.send_raw(json!({"msg_type": JOIN_ROOM, "from": carol.id}))
        .await;
    c.refused(
        "JoinRoom without a payload",
        "validation_failed",
        json!(JOIN_ROOM),
        Some("payload.room_id"),
    )
    .await;
    assert_still_serving(&mut c, "JoinRoom without a payload").await;

    c.send(JOIN_ROOM, None, json!({"room_id": MAX_ROOM_NUMBER}))
        .await;
    c.refused(
        "JoinRoom of a room nobody made",
        "not_found",
        json!(JOIN_ROOM),
        None,
    )
    .await;
    assert_still_serving(&mut c, "JoinRoom of a room nobody made").await;

    c.ws.send(WsMessage::binary(b"{\"msg_type\": 0}".to_vec()))
        .await
        .expect("send a binary frame");
    c.refused("a binary frame", "bad_request", Value::Null, None)
        .await;
    assert_still_serving(&mut c, "a binary frame").await;

    // Speaking as Dave.
    c.send_raw(json!({"msg_type": CREATE_ROOM, "from": dave.id, "payload": {}}))
        .await;
    c.refused(
        "CreateRoom from Dave's number",
        "forbidden",
        json!(CREATE_ROOM),
        None,
    )
    .await;
    assert_still_serving(&mut c, "CreateRoom from Dave's number").await;

    c.send_raw(json!({"msg_type": CREATE_ROOM, "from": "carol", "payload": {}}))
        .await;
    c.refused(
        "CreateRoom with a string `from`",
        "validation_failed",
        json!(CREATE_ROOM),
        Some("from"),
    )
    .await;
    assert_still_serving(&mut c, "a string `from`").await;

    c.send_raw(json!({"msg_type": CREATE_ROOM, "from": carol.id, "payload": "x"}))
        .await;
    c.refused(
        "CreateRoom with a string payload",
        "validation_failed",
        json!(CREATE_ROOM),
        Some("payload"),
    )
    .await;
    assert_still_serving(&mut c, "a string payload").await;
}

#[tokio::test]
async fn malformed_or_impersonating_signals_get_an_error_and_reach_nobody() {
    let server = TestServer::spawn().await;
    let carol = register(&server, "seed_carol").await;
    let dave = register(&server, "seed_dave").await;
    let erin = register(&server, "seed_erin").await;
    let mut c = SeedClient::connect(&server, &carol, "carol").await;
    let mut d = SeedClient::connect(&server, &dave, "dave").await;
    let mut e = SeedClient::connect(&server, &erin, "erin").await;
    let room = d.create_room().await;
    c.join_room(room).await;
    d.next_of(USER_JOINED, "UserJoined for Carol").await;
    e.join_room(room).await;
    c.next_of(USER_JOINED, "UserJoined for Erin").await;
    d.next_of(USER_JOINED, "UserJoined for Erin").await;

    // Each: what Carol sends to Dave, the refusal's code, the refused type and field.
    let cases = [
        (
            "SDP of type \"bogus\"",
            json!({"msg_type": SDP, "from": carol.id, "to": dave.id,
                   "payload": {"type": "bogus", "sdp": OFFER_SDP}}),
            "validation_failed",
            SDP,
            Some("payload.type"),
        ),
        (
            "SDP without its text",
            json!({"msg_type": SDP, "from": carol.id, "to": dave.id,
                   "payload": {"type": "offer"}}),
            "validation_failed",
            SDP,
            Some("payload.sdp"),
        ),
        (
            "ICE with candidate 42",
            json!({"msg_type": ICE_CANDIDATE, "from": carol.id, "to": dave.id,
                   "payload": {"candidate": 42, "sdpMid": "0", "sdpMLineIndex": 0}}),
            "validation_failed",
            ICE_CANDIDATE,
            Some("payload.candidate"),
        ),
        (
            "SDP with a string `to`",
            json!({"msg_type": SDP, "from": carol.id, "to": "dave",
                   "payload": {"type": "offer", "sdp": OFFER_SDP}}),
            "validation_failed",
            SDP,
            Some("to"),
        ),
        (
            "SDP with a string payload",
            json!({"msg_type": SDP, "from": carol.id, "to": dave.id, "payload": OFFER_SDP}),
            "validation_failed",
            SDP,
            Some("payload"),
        ),
        (
            "SDP from Erin's number",
            json!({"msg_type": SDP, "from": erin.id, "to": dave.id,
                   "payload": {"type": "offer", "sdp": OFFER_SDP}}),
            "forbidden",
            SDP,
            None,
        ),
        (
            "ICE from Dave's own number",
            json!({"msg_type": ICE_CANDIDATE, "from": dave.id, "to": dave.id,
                   "payload": {"candidate": candidate("forged"), "sdpMid": "0",
                               "sdpMLineIndex": 0}}),
            "forbidden",
            ICE_CANDIDATE,
            None,
        ),
    ];
    for (i, (what, envelope, code, msg_type, field)) in cases.into_iter().enumerate() {
        c.send_raw(envelope).await;
        c.refused(what, code, json!(msg_type), field).await;
        // Dave got nothing of it, and Carol's socket still relays.
        assert_next_is_control(&mut c, &mut d, room, &format!("after-case-{i}")).await;
    }

    // Speaking as Dave to Erin: refused, and Erin hears only the real Carol next.
    c.send_raw(json!({"msg_type": SDP, "from": dave.id, "to": erin.id,
                      "payload": {"type": "offer", "sdp": OFFER_SDP}}))
        .await;
    c.refused(
        "SDP to Erin from Dave's number",
        "forbidden",
        json!(SDP),
        None,
    )
    .await;
    assert_next_is_control(&mut c, &mut e, room, "erin-control").await;
    // Nobody was told anything else.
    assert_next_is_control(&mut e, &mut d, room, "dave-control").await;
}

// ---------------------------------------------------------------------------------------
// 7. Conflicts
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn create_or_join_while_in_a_room_conflicts_and_leave_outside_one_is_not_found() {
    let server = TestServer::spawn().await;
    let alice = register(&server, "seed_alice").await;
    let bob = register(&server, "seed_bob").await;
    let carol = register(&server, "seed_carol").await;
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut b = SeedClient::connect(&server, &bob, "bob").await;
    let mut c = SeedClient::connect(&server, &carol, "carol").await;

    // A socket that was never in a room.
    a.send(LEAVE_ROOM, None, json!({})).await;
    a.refused("LeaveRoom in no room", "not_found", json!(LEAVE_ROOM), None)
        .await;

    let room = a.create_room().await;
    a.send(CREATE_ROOM, None, json!({})).await;
    a.refused("CreateRoom in a room", "conflict", json!(CREATE_ROOM), None)
        .await;
    a.send(JOIN_ROOM, None, json!({"room_id": room})).await;
    a.refused(
        "JoinRoom of its own room",
        "conflict",
        json!(JOIN_ROOM),
        None,
    )
    .await;

    let bobs_room = b.create_room().await;
    a.send(JOIN_ROOM, None, json!({"room_id": bobs_room})).await;
    a.refused(
        "JoinRoom of another room",
        "conflict",
        json!(JOIN_ROOM),
        None,
    )
    .await;
    // Bob's call did not get Alice: the next joiner he hears of is Carol, after himself.
    let joined = c.join_room(bobs_room).await;
    assert_eq!(joined["members"], json!([bob.id, carol.id]), "{joined}");
    let told = b.next_of(USER_JOINED, "UserJoined").await;
    assert_eq!(told["payload"]["user_id"], carol.id, "{told}");

    // Leaving a room that is not hers is refused; she is still in her own.
    a.send(LEAVE_ROOM, None, json!({"room_id": bobs_room}))
        .await;
    a.refused(
        "LeaveRoom naming another room",
        "not_found",
        json!(LEAVE_ROOM),
        None,
    )
    .await;
    a.send(CREATE_ROOM, None, json!({})).await;
    a.refused(
        "CreateRoom, still in her room",
        "conflict",
        json!(CREATE_ROOM),
        None,
    )
    .await;

    // A real leave has no reply; after it, another leave is not_found.
    a.leave_room().await;
    // And she can create again.
    a.create_room().await;
}

// ---------------------------------------------------------------------------------------
// Membership, several sockets, several nodes
// ---------------------------------------------------------------------------------------

/// `account`'s Palaver client, authenticated by its API key, and its user id.
async fn native(server: &TestServer, account: &Account) -> (palaver_client::Client, String) {
    let client = palaver_client::Client::with_token(server.base.clone(), account.key.clone());
    let id = client.me().await.expect("the key authenticates REST").id;
    (client, id)
}

/// The Palaver id of the call room `owner` made (its only room).
async fn only_room(owner: &palaver_client::Client) -> String {
    let rooms = owner.my_rooms().await.expect("rooms");
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    rooms[0].id.clone()
}

/// The room's owner kicks a member from Palaver's REST API: the call closes for the member
/// (RoomClosed `removed`), the others see them leave; the number admits them again; once
/// banned, JoinRoom is `forbidden` and the call is unchanged.
#[tokio::test]
async fn a_kicked_member_is_out_of_the_call_and_a_banned_one_cannot_join_by_number() {
    let server = TestServer::spawn().await;
    let (alice, bob) = (
        register(&server, "alice").await,
        register(&server, "bob").await,
    );
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut b = SeedClient::connect(&server, &bob, "bob").await;
    let room = a.create_room().await;
    b.join_room(room).await;
    a.next_of(USER_JOINED, "bob joining").await;
    let (owner, _) = native(&server, &alice).await;
    let (_, bob_id) = native(&server, &bob).await;
    let room_id = only_room(&owner).await;

    owner.kick(&room_id, &bob_id).await.expect("kick");
    let closed = b.next_of(ROOM_CLOSED, "RoomClosed after the kick").await;
    assert_eq!(closed["payload"]["room_id"], room, "{closed}");
    assert_eq!(closed["payload"]["reason"], "removed", "{closed}");
    let left = a.expect(USER_LEFT, "bob removed").await;
    assert_eq!(left["payload"]["user_id"], bob.id, "{left}");
    assert_eq!(left["payload"]["reason"], "removed", "{left}");
    // Out of the call: no signal goes from him to alice any more.
    b.send(
        SDP,
        Some(alice.id),
        json!({"type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    b.refused("an offer after the kick", "not_found", json!(SDP), None)
        .await;

    // A kick is not a ban: the number admits him again.
    let again = b.join_room(room).await;
    assert_eq!(again["members"], json!([alice.id, bob.id]), "{again}");
    a.next_of(USER_JOINED, "bob back").await;

    owner.ban(&room_id, &bob_id).await.expect("ban");
    b.next_of(ROOM_CLOSED, "RoomClosed after the ban").await;
    a.expect(USER_LEFT, "bob banned").await;
    b.send(JOIN_ROOM, None, json!({"room_id": room})).await;
    b.refused("JoinRoom when banned", "forbidden", json!(JOIN_ROOM), None)
        .await;

    // Alice is alone in her call: a newcomer is told so.
    let carol = register(&server, "carol").await;
    let mut c = SeedClient::connect(&server, &carol, "carol").await;
    let joined = c.join_room(room).await;
    assert_eq!(joined["members"], json!([alice.id, carol.id]), "{joined}");
    assert_eq!(joined["host"], alice.id, "{joined}");
}

/// One user with two sockets in the room: listed once, and an SDP sent to them reaches
/// both sockets.
#[tokio::test]
async fn a_user_with_two_sockets_in_a_room_is_listed_once_and_signalled_on_both() {
    let server = TestServer::spawn().await;
    let (alice, bob) = (
        register(&server, "alice").await,
        register(&server, "bob").await,
    );
    let mut a = SeedClient::connect(&server, &alice, "alice").await;
    let mut laptop = SeedClient::connect(&server, &bob, "bob's laptop").await;
    let mut phone = SeedClient::connect(&server, &bob, "bob's phone").await;
    let room = a.create_room().await;
    laptop.join_room(room).await;
    let second = phone.join_room(room).await;
    assert_eq!(second["members"], json!([alice.id, bob.id]), "{second}");
    a.next_of(USER_JOINED, "the laptop").await;
    a.next_of(USER_JOINED, "the phone").await;
    laptop.next_of(USER_JOINED, "the phone").await;

    a.send(
        SDP,
        Some(bob.id),
        json!({"type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    for socket in [&mut laptop, &mut phone] {
        let offer = socket.next_of(SDP, "alice's offer").await;
        assert_relay(&offer, SDP, alice.id, room);
        assert_eq!(offer["payload"]["sdp"], OFFER_SDP, "{offer}");
    }
}

/// Two nodes sharing PostgreSQL and Redis: the number made on one node is joined on the
/// other, signals cross both ways, and the host handoff reaches the other node.
#[tokio::test]
async fn a_room_made_on_one_node_is_joined_and_signalled_across_nodes() {
    let cluster = crate::cluster::Cluster::start(2).await;
    let (n0, n1) = (&cluster.nodes[0], &cluster.nodes[1]);
    let alice = register(n0, "alice").await;
    let bob = register(n1, "bob").await;
    assert_ne!(alice.id, bob.id, "numbers are shared by the nodes");
    let mut a = SeedClient::connect(n0, &alice, "alice on node 0").await;
    let mut b = SeedClient::connect(n1, &bob, "bob on node 1").await;
    let room = a.create_room().await;
    let joined = b.join_room(room).await;
    assert_eq!(joined["members"], json!([alice.id, bob.id]), "{joined}");
    assert_eq!(joined["host"], alice.id, "{joined}");
    let seen = a.next_of(USER_JOINED, "bob joining on node 1").await;
    assert_eq!(seen["payload"]["user_id"], bob.id, "{seen}");

    b.send(
        SDP,
        Some(alice.id),
        json!({"type": "offer", "sdp": OFFER_SDP}),
    )
    .await;
    let offer = a.next_of(SDP, "bob's offer from node 1").await;
    assert_relay(&offer, SDP, bob.id, room);
    a.send(
        SDP,
        Some(bob.id),
        json!({"type": "answer", "sdp": ANSWER_SDP}),
    )
    .await;
    let answer = b.next_of(SDP, "alice's answer from node 0").await;
    assert_relay(&answer, SDP, alice.id, room);
    assert_eq!(answer["payload"]["type"], "answer", "{answer}");

    a.leave_room().await;
    let host = b.expect(HOST_CHANGED, "the handoff on node 1").await;
    assert_eq!(host["payload"]["host"], bob.id, "{host}");
}
