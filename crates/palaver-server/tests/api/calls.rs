//! Calls (docs/protocol.md, "Calls"): ringing every connection of the callee, answering
//! on one of them, the `rtc.signal` relay to exactly one participant, host handoff, the
//! call log in the room's history, the participant cap, conflicts, malformed signals, and
//! who may do what — with the events each action sends (and does not send).

use std::collections::VecDeque;
use std::time::Duration;

use palaver_client::{Client, ClientError, ClientResult, Socket};
use palaver_protocol::{Room, Visibility};
use serde_json::{json, Value};

use crate::conversations::{add_member, assert_rejected, uid, uname, QUIET, UNKNOWN_ID};
use crate::helpers::TestServer;

/// The longest wait for an expected event or call log entry.
const EVENT_WAIT: Duration = Duration::from_secs(10);
/// The most events one drain collects (a bound, never reached here).
const DRAIN_MAX: usize = 10_000;
/// An SDP offer (the relay does not parse it; it only bounds its size).
pub(crate) const OFFER_SDP: &str =
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
/// An SDP answer.
pub(crate) const ANSWER_SDP: &str =
    "v=0\r\no=- 7398723957092343117 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// One WebSocket connection with a backlog: every event read while waiting for another
/// one is kept, so waits in any order lose nothing and "never received" checks see
/// everything since the connection opened.
pub(crate) struct Conn {
    pub(crate) name: String,
    socket: Socket,
    backlog: VecDeque<Value>,
}

impl Conn {
    pub(crate) async fn open(client: &Client, name: &str) -> Conn {
        let socket = client
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{name} connecting: {e}"));
        Conn {
            name: name.to_owned(),
            socket,
            backlog: VecDeque::new(),
        }
    }

    /// Sends a request; the reply's data or the refusal.
    pub(crate) async fn request(&mut self, kind: &str, data: Value) -> ClientResult<Value> {
        self.socket.request(kind, data).await
    }

    /// Sends a request that must succeed; returns the reply's data.
    pub(crate) async fn ok(&mut self, kind: &str, data: Value) -> Value {
        match self.socket.request(kind, data.clone()).await {
            Ok(reply) => reply,
            Err(e) => panic!("{}: {kind} {data} failed: {e}", self.name),
        }
    }

    /// The first event (kept or new) for which `pred` holds; panics after [`EVENT_WAIT`].
    pub(crate) async fn expect_where(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        self.expect_within(EVENT_WAIT, what, pred).await
    }

    /// [`Conn::expect_where`], panicking after `wait`.
    pub(crate) async fn expect_within(
        &mut self,
        wait: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i).expect("index in range");
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.socket.try_next_event(left).await {
                Ok(Some(event)) if pred(&event) => return event,
                Ok(Some(event)) => self.backlog.push_back(event),
                Ok(None) => panic!(
                    "{}: no {what} within {wait:?}; call events received meanwhile: \
                     {:#?}; all event types received: {:?}",
                    self.name,
                    self.call_backlog(),
                    self.backlog.iter().map(|e| &e["type"]).collect::<Vec<_>>()
                ),
                Err(e) => panic!("{}: connection failed waiting for {what}: {e}", self.name),
            }
        }
    }

    /// The data of the next `kind` event about call `call_id`.
    pub(crate) async fn expect(&mut self, kind: &str, call_id: &str) -> Value {
        let what = format!("{kind} of call {call_id}");
        let event = self
            .expect_where(&what, |e| {
                e["type"] == kind && e["data"]["call_id"] == call_id
            })
            .await;
        event["data"].clone()
    }

    /// Reads everything that arrives until the connection is quiet for [`QUIET`].
    pub(crate) async fn settle(&mut self) {
        let events = self
            .socket
            .drain(QUIET, DRAIN_MAX)
            .await
            .unwrap_or_else(|e| panic!("{}: connection failed: {e}", self.name));
        self.backlog.extend(events);
    }

    /// Asserts that no event matching `pred` has reached this connection (waiting
    /// [`QUIET`] for stragglers).
    pub(crate) async fn assert_none(&mut self, what: &str, pred: impl Fn(&Value) -> bool) {
        self.settle().await;
        let got: Vec<&Value> = self.backlog.iter().filter(|e| pred(e)).collect();
        assert!(got.is_empty(), "{} received {what}: {got:#?}", self.name);
    }

    /// Forgets the events received so far (for "nothing more after this" checks).
    pub(crate) fn forget(&mut self) {
        self.backlog.clear();
    }

    pub(crate) fn call_backlog(&self) -> Vec<&Value> {
        self.backlog.iter().filter(|e| is_call_event(e)).collect()
    }

    pub(crate) async fn close(self) {
        self.socket.close().await.expect("close");
    }
}

/// Whether `event` is a call event or a relayed signal.
pub(crate) fn is_call_event(event: &Value) -> bool {
    let kind = event["type"].as_str().unwrap_or_default();
    kind.starts_with("call.") || kind.starts_with("rtc.")
}

/// A predicate for events of type `kind`.
pub(crate) fn of_type(kind: &str) -> impl Fn(&Value) -> bool + '_ {
    move |event| event["type"] == kind
}

/// The string at `value`.
#[track_caller]
pub(crate) fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

/// `N` freshly registered, logged-in users.
pub(crate) async fn users<const N: usize>(server: &TestServer, names: [&str; N]) -> [Client; N] {
    let mut clients = Vec::with_capacity(N);
    for name in names {
        clients.push(server.user(name).await);
    }
    clients
        .try_into()
        .unwrap_or_else(|_| unreachable!("N clients"))
}

/// A private room of `owner` with `members` as plain members.
pub(crate) async fn private_room(owner: &Client, members: &[&Client]) -> Room {
    let room = owner
        .create_room("call room", Visibility::Private, None)
        .await
        .expect("create room");
    for member in members {
        add_member(owner, &room.id, member).await;
    }
    room
}

/// `call.start` with `data`, which must succeed: the call and the caller's participant id.
/// Alice calls Bob (in their DM) while Bob has two connections open, and both ring.
struct Ringing {
    alice: Client,
    alice_id: String,
    bob_id: String,
    /// Alice's connection (the host), Bob's laptop and phone.
    a: Conn,
    b1: Conn,
    b2: Conn,
    call_id: String,
    room_id: String,
}

async fn ring_bob(server: &TestServer, kind: &str) -> Ringing {
    let [alice, bob] = users(server, ["alice", "bob"]).await;
    let (alice_id, bob_id) = (uid(&alice), uid(&bob));
    let mut a = Conn::open(&alice, "alice").await;
    let mut b1 = Conn::open(&bob, "bob's laptop").await;
    let mut b2 = Conn::open(&bob, "bob's phone").await;
    let (call, _pa) = start(&mut a, json!({"user_id": bob_id, "kind": kind})).await;
    let call_id = text(&call["call_id"]);
    let room_id = text(&call["room_id"]);
    b1.expect("call.incoming", &call_id).await;
    b2.expect("call.incoming", &call_id).await;
    Ringing {
        alice,
        alice_id,
        bob_id,
        a,
        b1,
        b2,
        call_id,
        room_id,
    }
}

pub(crate) async fn start(conn: &mut Conn, data: Value) -> (Value, String) {
    let reply = conn.ok("call.start", data).await;
    let pid = text(&reply["participant_id"]);
    (reply["call"].clone(), pid)
}

/// `call.start` in `room_id` with the default invitation.
pub(crate) async fn start_in(conn: &mut Conn, room_id: &str, kind: &str) -> (Value, String) {
    start(conn, json!({"room_id": room_id, "kind": kind})).await
}

/// `call.accept`, which must succeed: the call as the joiner sees it and its participant id.
pub(crate) async fn accept(conn: &mut Conn, call_id: &str) -> (Value, String) {
    let reply = conn.ok("call.accept", json!({"call_id": call_id})).await;
    let pid = text(&reply["participant_id"]);
    (reply["call"].clone(), pid)
}

/// The participant ids of `call`, in the order given.
pub(crate) fn pids(call: &Value) -> Vec<String> {
    participants(call)
        .iter()
        .map(|p| text(&p["participant_id"]))
        .collect()
}

/// The user ids of `call`'s participants, in the order given.
pub(crate) fn participant_users(call: &Value) -> Vec<String> {
    participants(call)
        .iter()
        .map(|p| text(&p["user_id"]))
        .collect()
}

#[track_caller]
pub(crate) fn participants(call: &Value) -> &Vec<Value> {
    call["participants"]
        .as_array()
        .unwrap_or_else(|| panic!("call without participants: {call}"))
}

/// The users `call` still rings, sorted.
#[track_caller]
pub(crate) fn ringing(call: &Value) -> Vec<String> {
    let mut ids: Vec<String> = call["ringing"]
        .as_array()
        .unwrap_or_else(|| panic!("call without ringing: {call}"))
        .iter()
        .map(text)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// `rtc.signal` data carrying a description.
pub(crate) fn description(call_id: &str, to: &str, kind: &str, sdp: &str) -> Value {
    json!({"call_id": call_id, "to": to, "description": {"type": kind, "sdp": sdp}})
}

/// `rtc.signal` data carrying an offer.
pub(crate) fn offer(call_id: &str, to: &str) -> Value {
    description(call_id, to, "offer", OFFER_SDP)
}

/// An ICE candidate (number `n`, so a series can be told apart).
pub(crate) fn ice(n: u32) -> Value {
    json!({
        "candidate": format!("candidate:{n} 1 udp 2122260223 192.0.2.{n} 5{n:04} typ host"),
        "sdpMid": "0",
        "sdpMLineIndex": 0,
        "usernameFragment": "abcd"
    })
}

/// `rtc.signal` data carrying candidate `n`.
pub(crate) fn candidate(call_id: &str, to: &str, n: u32) -> Value {
    json!({"call_id": call_id, "to": to, "candidate": ice(n)})
}

/// Asserts `signal` (the data of a relayed `rtc.signal`) came from `from` (of `from_user`)
/// in `call_id` and carries exactly `payload` (`description` or `candidate`).
#[track_caller]
pub(crate) fn assert_signal(
    signal: &Value,
    call_id: &str,
    from: &str,
    from_user: &str,
    payload: &Value,
) {
    assert_eq!(signal["call_id"], call_id, "call_id; {signal}");
    assert_eq!(signal["from"], from, "from; {signal}");
    assert_eq!(signal["from_user"], from_user, "from_user; {signal}");
    let (present, absent) = if payload.get("description").is_some() {
        ("description", "candidate")
    } else {
        ("candidate", "description")
    };
    assert_eq!(signal[present], payload[present], "{present}; {signal}");
    assert!(
        signal.get(absent).is_none_or(Value::is_null),
        "a {present} signal carries no {absent}: {signal}"
    );
}

/// The next `rtc.signal` of `call_id` on `conn` that comes from `from`.
pub(crate) async fn signal_from(conn: &mut Conn, call_id: &str, from: &str) -> Value {
    let what = format!("rtc.signal of call {call_id} from {from}");
    let event = conn
        .expect_where(&what, |e| {
            e["type"] == "rtc.signal"
                && e["data"]["call_id"] == call_id
                && e["data"]["from"] == from
        })
        .await;
    event["data"].clone()
}

/// The next `call.participant_joined` of `call_id` on `conn` announcing `pid`.
pub(crate) async fn joined(conn: &mut Conn, call_id: &str, pid: &str) -> Value {
    let what = format!("call.participant_joined of {pid}");
    let event = conn
        .expect_where(&what, |e| {
            e["type"] == "call.participant_joined"
                && e["data"]["call_id"] == call_id
                && e["data"]["participant"]["participant_id"] == pid
        })
        .await;
    event["data"].clone()
}

/// Waits on `conn` for `call.participant_left` of `pid` and asserts its user and reason.
pub(crate) async fn expect_left(
    conn: &mut Conn,
    call_id: &str,
    pid: &str,
    user_id: &str,
    reason: &str,
) {
    let what = format!("call.participant_left of {pid}");
    let event = conn
        .expect_where(&what, |e| {
            e["type"] == "call.participant_left"
                && e["data"]["call_id"] == call_id
                && e["data"]["participant_id"] == pid
        })
        .await;
    let data = &event["data"];
    assert_eq!(data["user_id"], user_id, "{}: {data}", conn.name);
    assert_eq!(data["reason"], reason, "{}: {data}", conn.name);
}

/// Waits on `conn` for `call.host_changed` and asserts the new host.
pub(crate) async fn expect_host(conn: &mut Conn, call_id: &str, host: &str, user_id: &str) {
    let data = conn.expect("call.host_changed", call_id).await;
    assert_eq!(data["host"], host, "{}: {data}", conn.name);
    assert_eq!(data["user_id"], user_id, "{}: {data}", conn.name);
}

/// Waits on `conn` for `call.ended` and asserts its reason; returns its data.
pub(crate) async fn expect_ended(conn: &mut Conn, call_id: &str, reason: &str) -> Value {
    let data = conn.expect("call.ended", call_id).await;
    assert_eq!(data["reason"], reason, "{}: {data}", conn.name);
    data
}

/// The call log entries of `call_id` in `room_id`'s history, oldest first (read as raw
/// JSON, so the assertions see exactly what the server sends).
pub(crate) async fn call_log(client: &Client, room_id: &str, call_id: &str) -> Vec<Value> {
    let page: Value = client
        .get(&format!("/api/v1/rooms/{room_id}/messages?limit=100"))
        .await
        .expect("history");
    page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["message_type"] == "call" && m["call"]["call_id"] == call_id)
        .cloned()
        .collect()
}

/// The call log of `call_id`, once its `closing` entry is there (or after [`EVENT_WAIT`]);
/// checks what every entry has in common.
pub(crate) async fn closed_call_log(
    client: &Client,
    room_id: &str,
    call_id: &str,
    closing: &str,
    starter: &str,
    kind: &str,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    let log = loop {
        let log = call_log(client, room_id, call_id).await;
        let closed = log.iter().any(|m| m["call"]["event"] == closing);
        if closed || tokio::time::Instant::now() >= deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for entry in &log {
        assert_eq!(
            entry["sender"]["id"], starter,
            "the starter sends the log: {entry}"
        );
        assert_eq!(entry["room_id"], room_id, "{entry}");
        assert_eq!(entry["call"]["kind"], kind, "{entry}");
        assert!(
            entry["content"].as_str().is_some_and(|c| !c.is_empty()),
            "a call log entry has a short text: {entry}"
        );
    }
    log
}

/// The `call.event` of each entry.
pub(crate) fn log_events(log: &[Value]) -> Vec<String> {
    log.iter().map(|m| text(&m["call"]["event"])).collect()
}

/// Attempts that must all be refused: counts any that succeed, and refusals with another
/// code than the one the docs give.
#[derive(Default)]
struct Attempts {
    tried: usize,
    succeeded: Vec<String>,
    wrong_code: Vec<String>,
}

impl Attempts {
    /// Records `result` of `what`, which must be refused (with `code`, when the docs name one).
    fn check(&mut self, what: &str, result: ClientResult<Value>, code: Option<&str>) {
        self.tried += 1;
        match result {
            Ok(data) => self
                .succeeded
                .push(format!("{what}: succeeded with {data}")),
            Err(ClientError::Rejected(detail)) => {
                if let Some(code) = code {
                    if detail.code.as_str() != code {
                        self.wrong_code.push(format!(
                            "{what}: expected {code}, got {} ({})",
                            detail.code.as_str(),
                            detail.message
                        ));
                    }
                }
            }
            Err(e) => self.wrong_code.push(format!("{what}: {e}")),
        }
    }

    #[track_caller]
    fn assert_all_refused(&self) {
        assert!(
            self.succeeded.is_empty(),
            "{} of {} forbidden attempts succeeded: {:#?}",
            self.succeeded.len(),
            self.tried,
            self.succeeded
        );
        assert!(
            self.wrong_code.is_empty(),
            "{} of {} refusals had the wrong code: {:#?}",
            self.wrong_code.len(),
            self.tried,
            self.wrong_code
        );
    }
}

// ---------------------------------------------------------------------------------------
// 1:1 calls
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn one_to_one_call_rings_every_connection_relays_signals_and_is_logged() {
    let server = TestServer::spawn().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let (alice_id, bob_id) = (uid(&alice), uid(&bob));
    let mut a = Conn::open(&alice, "alice").await;
    let mut b1 = Conn::open(&bob, "bob's laptop").await;
    let mut b2 = Conn::open(&bob, "bob's phone").await;

    // Alice calls Bob: the call lives in their DM, rings, and she is its host.
    let (call, pa) = start(&mut a, json!({"user_id": bob_id, "kind": "video"})).await;
    let call_id = text(&call["call_id"]);
    let room_id = text(&call["room_id"]);
    let dm = alice.open_dm(&bob_id).await.expect("open the DM");
    assert_eq!(room_id, dm.id, "a call to a user lives in the pair's DM");
    assert_eq!(call["kind"], "video", "{call}");
    assert_eq!(call["state"], "ringing", "{call}");
    assert_eq!(call["host"], pa, "the starter is the host: {call}");
    assert_eq!(pids(&call), std::slice::from_ref(&pa), "{call}");
    assert_eq!(
        participant_users(&call),
        std::slice::from_ref(&alice_id),
        "{call}"
    );
    assert_eq!(ringing(&call), std::slice::from_ref(&bob_id), "{call}");
    assert!(call["answered_at"].is_null(), "not answered yet: {call}");
    assert!(call["started_at"].is_string(), "{call}");

    // Both of Bob's connections ring.
    for b in [&mut b1, &mut b2] {
        let incoming = b.expect("call.incoming", &call_id).await;
        assert_eq!(incoming["room_id"], room_id, "{}: {incoming}", b.name);
        assert_eq!(incoming["caller"]["id"], alice_id, "{}: {incoming}", b.name);
        assert_eq!(
            incoming["caller"]["username"],
            uname(&alice),
            "{}: {incoming}",
            b.name
        );
        assert_eq!(incoming["kind"], "video", "{}: {incoming}", b.name);
    }

    // Bob answers on his laptop.
    let (call, pb) = accept(&mut b1, &call_id).await;
    assert_ne!(pa, pb);
    assert_eq!(call["call_id"], call_id, "{call}");
    assert_eq!(call["state"], "active", "{call}");
    assert_eq!(pids(&call), [pa.clone(), pb.clone()], "join order: {call}");
    assert_eq!(
        participant_users(&call),
        [alice_id.clone(), bob_id.clone()],
        "{call}"
    );
    assert_eq!(call["host"], pa, "{call}");
    assert!(call["answered_at"].is_string(), "answered: {call}");

    // His phone stops ringing; Alice learns who joined.
    b2.expect("call.answered_elsewhere", &call_id).await;
    let joined_event = joined(&mut a, &call_id, &pb).await;
    let participant = &joined_event["participant"];
    assert_eq!(participant["user_id"], bob_id, "{joined_event}");
    assert_eq!(participant["username"], uname(&bob), "{joined_event}");
    assert!(participant["joined_at"].is_string(), "{joined_event}");

    // Offer, answer and candidates are relayed to exactly the addressed participant.
    let reply = a.ok("rtc.signal", offer(&call_id, &pb)).await;
    assert_eq!(reply, json!({}), "relayed");
    let got = signal_from(&mut b1, &call_id, &pa).await;
    assert_signal(
        &got,
        &call_id,
        &pa,
        &alice_id,
        &json!({"description": {"type": "offer", "sdp": OFFER_SDP}}),
    );

    let answer = description(&call_id, &pa, "answer", ANSWER_SDP);
    assert_eq!(b1.ok("rtc.signal", answer.clone()).await, json!({}));
    let got = signal_from(&mut a, &call_id, &pb).await;
    assert_signal(&got, &call_id, &pb, &bob_id, &answer);

    assert_eq!(
        b1.ok("rtc.signal", candidate(&call_id, &pa, 1)).await,
        json!({})
    );
    let got = signal_from(&mut a, &call_id, &pb).await;
    assert_signal(&got, &call_id, &pb, &bob_id, &json!({"candidate": ice(1)}));

    // One sender's signals to one recipient keep their order.
    for n in 2..=6 {
        a.ok("rtc.signal", candidate(&call_id, &pb, n)).await;
    }
    for n in 2..=6 {
        let got = signal_from(&mut b1, &call_id, &pa).await;
        assert_signal(
            &got,
            &call_id,
            &pa,
            &alice_id,
            &json!({"candidate": ice(n)}),
        );
    }

    // Bob's phone, not in the call, saw none of it.
    b2.assert_none("an rtc.signal", of_type("rtc.signal")).await;

    // Alice hangs up: Bob is told, and becomes host.
    assert_eq!(
        a.ok("call.leave", json!({"call_id": call_id})).await,
        json!({})
    );
    expect_left(&mut b1, &call_id, &pa, &alice_id, "left").await;
    expect_host(&mut b1, &call_id, &pb, &bob_id).await;

    // Bob leaves too: the call is over and gone.
    assert_eq!(
        b1.ok("call.leave", json!({"call_id": call_id})).await,
        json!({})
    );
    assert_rejected(
        b2.request("call.accept", json!({"call_id": call_id})).await,
        "not_found",
        None,
    );

    // The DM's history tells the story.
    let log = closed_call_log(&bob, &room_id, &call_id, "ended", &alice_id, "video").await;
    assert_eq!(
        log_events(&log),
        ["started", "answered", "ended"],
        "{log:#?}"
    );
    assert!(
        log[2]["call"]["duration_secs"].is_number(),
        "ended carries duration_secs: {:#}",
        log[2]
    );
}

#[tokio::test]
async fn declining_a_one_to_one_call_ends_it_as_declined() {
    let server = TestServer::spawn().await;
    let Ringing {
        alice,
        alice_id,
        bob_id,
        mut a,
        mut b1,
        mut b2,
        call_id,
        room_id,
        ..
    } = ring_bob(&server, "audio").await;

    assert_eq!(
        b1.ok("call.decline", json!({"call_id": call_id})).await,
        json!({})
    );
    for conn in [&mut a, &mut b2] {
        let declined = conn.expect("call.declined", &call_id).await;
        assert_eq!(declined["user_id"], bob_id, "{}: {declined}", conn.name);
    }
    // The only invitee declined before anyone answered: the call is over.
    let ended = expect_ended(&mut a, &call_id, "declined").await;
    assert!(
        ended.get("duration_secs").is_none_or(Value::is_null),
        "an unanswered call has no duration: {ended}"
    );

    let log = closed_call_log(&alice, &room_id, &call_id, "declined", &alice_id, "audio").await;
    assert_eq!(log_events(&log), ["started", "declined"], "{log:#?}");
}

#[tokio::test]
async fn ringing_times_out_as_missed() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
        config.rtc.ring_timeout_secs = 1;
    })
    .await;
    let Ringing {
        alice,
        alice_id,
        mut a,
        mut b1,
        mut b2,
        call_id,
        room_id,
        ..
    } = ring_bob(&server, "video").await;

    // Nobody answers within a second.
    b1.expect("call.missed", &call_id).await;
    b2.expect("call.missed", &call_id).await;
    expect_ended(&mut a, &call_id, "missed").await;

    let log = closed_call_log(&alice, &room_id, &call_id, "missed", &alice_id, "video").await;
    assert_eq!(log_events(&log), ["started", "missed"], "{log:#?}");
}

#[tokio::test]
async fn a_caller_hanging_up_before_an_answer_stops_the_ringing_and_logs_missed() {
    let server = TestServer::spawn().await;
    let Ringing {
        alice,
        alice_id,
        mut a,
        mut b1,
        mut b2,
        call_id,
        room_id,
        ..
    } = ring_bob(&server, "audio").await;

    a.ok("call.leave", json!({"call_id": call_id})).await;
    for b in [&mut b1, &mut b2] {
        let ended = b.expect("call.ended", &call_id).await;
        assert!(
            ended["reason"] == "missed" || ended["reason"] == "ended",
            "{}: {ended}",
            b.name
        );
    }

    let log = closed_call_log(&alice, &room_id, &call_id, "missed", &alice_id, "audio").await;
    assert_eq!(log_events(&log), ["started", "missed"], "{log:#?}");
}

// ---------------------------------------------------------------------------------------
// Group calls
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn group_call_with_join_order_pairwise_signals_and_host_handoff() {
    let server = TestServer::spawn().await;
    let [host, xavier, yvonne, zoe] = users(&server, ["host", "xavier", "yvonne", "zoe"]).await;
    let (host_id, x_id, y_id, z_id) = (uid(&host), uid(&xavier), uid(&yvonne), uid(&zoe));
    let room = private_room(&host, &[&xavier, &yvonne, &zoe]).await;
    let mut h = Conn::open(&host, "host").await;
    let mut x = Conn::open(&xavier, "xavier").await;
    let mut y = Conn::open(&yvonne, "yvonne").await;
    let mut z = Conn::open(&zoe, "zoe").await;

    // The default invitation rings every other member.
    let (call, ph) = start_in(&mut h, &room.id, "audio").await;
    let call_id = text(&call["call_id"]);
    assert_eq!(call["room_id"], room.id, "{call}");
    assert_eq!(
        ringing(&call),
        sorted(vec![x_id.clone(), y_id.clone(), z_id.clone()]),
        "{call}"
    );
    for conn in [&mut x, &mut y, &mut z] {
        let incoming = conn.expect("call.incoming", &call_id).await;
        assert_eq!(
            incoming["caller"]["id"], host_id,
            "{}: {incoming}",
            conn.name
        );
        assert_eq!(incoming["room_id"], room.id, "{}: {incoming}", conn.name);
        assert_eq!(incoming["kind"], "audio", "{}: {incoming}", conn.name);
    }
    // The "started" log entry arrives like any message.
    x.expect_where("the call log's started message", |e| {
        e["type"] == "message.created"
            && e["data"]["message_type"] == "call"
            && e["data"]["call"]["call_id"] == call_id
            && e["data"]["call"]["event"] == "started"
    })
    .await;

    // Xavier joins and negotiates with the host.
    let (call_x, px) = accept(&mut x, &call_id).await;
    assert_eq!(pids(&call_x), [ph.clone(), px.clone()], "{call_x}");
    joined(&mut h, &call_id, &px).await;
    x.ok("rtc.signal", offer(&call_id, &ph)).await;
    signal_from(&mut h, &call_id, &px).await;
    h.ok(
        "rtc.signal",
        description(&call_id, &px, "answer", ANSWER_SDP),
    )
    .await;
    signal_from(&mut x, &call_id, &ph).await;

    // Yvonne joins: she sees everyone in join order; both others hear of her.
    let (call_y, py) = accept(&mut y, &call_id).await;
    assert_eq!(
        pids(&call_y),
        [ph.clone(), px.clone(), py.clone()],
        "{call_y}"
    );
    assert_eq!(
        participant_users(&call_y),
        [host_id.clone(), x_id.clone(), y_id.clone()],
        "{call_y}"
    );
    assert_eq!(call_y["state"], "active", "{call_y}");
    assert_eq!(call_y["host"], ph, "{call_y}");
    for conn in [&mut h, &mut x] {
        let data = joined(conn, &call_id, &py).await;
        assert_eq!(
            data["participant"]["user_id"], y_id,
            "{}: {data}",
            conn.name
        );
    }

    // Yvonne's offer to Xavier reaches Xavier only.
    y.ok("rtc.signal", offer(&call_id, &px)).await;
    let got = signal_from(&mut x, &call_id, &py).await;
    assert_signal(
        &got,
        &call_id,
        &py,
        &y_id,
        &json!({"description": {"type": "offer", "sdp": OFFER_SDP}}),
    );
    h.assert_none("Yvonne's signal to Xavier", |e| {
        e["type"] == "rtc.signal" && e["data"]["from"] == py
    })
    .await;
    z.assert_none("an rtc.signal", of_type("rtc.signal")).await;

    // The host leaves: Xavier, next in join order, becomes host.
    h.ok("call.leave", json!({"call_id": call_id})).await;
    for conn in [&mut x, &mut y] {
        expect_left(conn, &call_id, &ph, &host_id, "left").await;
        expect_host(conn, &call_id, &px, &x_id).await;
    }

    // The new host ends the call for everyone, and for Zoe, still being rung.
    assert_eq!(
        x.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
    let ended = expect_ended(&mut y, &call_id, "ended").await;
    assert!(
        ended["duration_secs"].is_number(),
        "an answered call has a duration: {ended}"
    );
    z.expect("call.ended", &call_id).await;

    let log = closed_call_log(&host, &room.id, &call_id, "ended", &host_id, "audio").await;
    assert_eq!(
        log_events(&log),
        ["started", "answered", "ended"],
        "{log:#?}"
    );
    assert!(log[2]["call"]["duration_secs"].is_number(), "{:#}", log[2]);
}

#[tokio::test]
async fn only_the_host_or_a_room_admin_ends_a_call() {
    let server = TestServer::spawn().await;
    let [owner, maria, paul] = users(&server, ["owner", "maria", "paul"]).await;
    let room = private_room(&owner, &[&maria, &paul]).await;
    let mut o = Conn::open(&owner, "owner").await;
    let mut m = Conn::open(&maria, "maria").await;
    let mut p = Conn::open(&paul, "paul").await;

    let (call, _pm) = start_in(&mut m, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    p.expect("call.incoming", &call_id).await;
    accept(&mut p, &call_id).await;

    // Paul is in the call but neither its host nor an admin.
    assert_rejected(
        p.request("call.end", json!({"call_id": call_id})).await,
        "forbidden",
        None,
    );
    p.assert_none("call.ended after a refused call.end", of_type("call.ended"))
        .await;

    // The room's owner may end it without being in it.
    assert_eq!(
        o.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
    expect_ended(&mut m, &call_id, "ended").await;
    expect_ended(&mut p, &call_id, "ended").await;
}

#[tokio::test]
async fn an_invite_list_rings_only_those_invited_but_any_member_may_join() {
    let server = TestServer::spawn().await;
    let [host, xavier, yvonne] = users(&server, ["host", "xavier", "yvonne"]).await;
    let room = private_room(&host, &[&xavier, &yvonne]).await;
    let mut h = Conn::open(&host, "host").await;
    let mut x = Conn::open(&xavier, "xavier").await;
    let mut y = Conn::open(&yvonne, "yvonne").await;

    let (call, ph) = start(
        &mut h,
        json!({"room_id": room.id, "kind": "audio", "invite": [uid(&xavier)]}),
    )
    .await;
    let call_id = text(&call["call_id"]);
    assert_eq!(ringing(&call), [uid(&xavier)], "{call}");
    x.expect("call.incoming", &call_id).await;
    y.assert_none(
        "call.incoming without an invitation",
        of_type("call.incoming"),
    )
    .await;

    let (call_y, py) = accept(&mut y, &call_id).await;
    assert_eq!(pids(&call_y), [ph, py], "{call_y}");
}

#[tokio::test]
async fn a_call_holds_at_most_max_participants() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
        config.rtc.max_participants = 2;
    })
    .await;
    let [host, xavier, yvonne] = users(&server, ["host", "xavier", "yvonne"]).await;
    let room = private_room(&host, &[&xavier, &yvonne]).await;
    let mut h = Conn::open(&host, "host").await;
    let mut x = Conn::open(&xavier, "xavier").await;
    let mut y = Conn::open(&yvonne, "yvonne").await;

    let (call, ph) = start_in(&mut h, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    accept(&mut x, &call_id).await;
    assert_rejected(
        y.request("call.accept", json!({"call_id": call_id})).await,
        "call_full",
        None,
    );
    h.assert_none("a third participant", |e| {
        e["type"] == "call.participant_joined"
            && e["data"]["participant"]["user_id"] == uid(&yvonne)
    })
    .await;

    // A place frees up when someone leaves.
    x.ok("call.leave", json!({"call_id": call_id})).await;
    let (call_y, py) = accept(&mut y, &call_id).await;
    assert_eq!(pids(&call_y), [ph, py], "{call_y}");
}

#[tokio::test]
async fn one_call_per_room_and_one_call_per_connection() {
    let server = TestServer::spawn().await;
    let [hana, xavi, wren] = users(&server, ["hana", "xavi", "wren"]).await;
    let first_room = private_room(&hana, &[&xavi]).await;
    let second_room = private_room(&wren, &[&xavi]).await;
    let mut h = Conn::open(&hana, "hana").await;
    let mut h2 = Conn::open(&hana, "hana's other connection").await;
    let mut x1 = Conn::open(&xavi, "xavi's laptop").await;
    let mut x2 = Conn::open(&xavi, "xavi's phone").await;
    let mut w = Conn::open(&wren, "wren").await;

    let (first, _ph) = start_in(&mut h, &first_room.id, "audio").await;
    let first_id = text(&first["call_id"]);
    accept(&mut x1, &first_id).await;

    // A second call in the same room: conflict, naming the call going on.
    let err = h2
        .request(
            "call.start",
            json!({"room_id": first_room.id, "kind": "video"}),
        )
        .await
        .expect_err("a second call in the room");
    assert_eq!(err.code(), Some("conflict"), "{err:?}");
    assert!(
        err.to_string().contains(&first_id),
        "the refusal names the call going on ({first_id}): {err:?}"
    );

    // A connection in a call can neither take nor start another.
    let (second, pw) = start_in(&mut w, &second_room.id, "audio").await;
    let second_id = text(&second["call_id"]);
    x1.expect("call.incoming", &second_id).await;
    x2.expect("call.incoming", &second_id).await;
    assert_rejected(
        x1.request("call.accept", json!({"call_id": second_id}))
            .await,
        "conflict",
        None,
    );
    assert_rejected(
        x1.request(
            "call.start",
            json!({"user_id": uid(&hana), "kind": "audio"}),
        )
        .await,
        "conflict",
        None,
    );

    // Participants are connections: Xavi's other connection may take the second call.
    let (second_x, px2) = accept(&mut x2, &second_id).await;
    assert_eq!(pids(&second_x), [pw, px2], "{second_x}");

    // Declining needs to be rung: Xavi answered, Hana started it.
    assert_rejected(
        x1.request("call.decline", json!({"call_id": first_id}))
            .await,
        "conflict",
        None,
    );
    assert_rejected(
        h.request("call.decline", json!({"call_id": first_id}))
            .await,
        "conflict",
        None,
    );
}

// ---------------------------------------------------------------------------------------
// Malformed requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn malformed_starts_and_signals_are_refused_and_nothing_is_relayed() {
    const MAX_SDP: usize = 1000;
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
        config.rtc.max_sdp_bytes = MAX_SDP;
    })
    .await;
    let [hana, xavi, olga] = users(&server, ["hana", "xavi", "olga"]).await;
    let room = private_room(&hana, &[&xavi]).await;
    let mut h = Conn::open(&hana, "hana").await;
    let mut x = Conn::open(&xavi, "xavi").await;

    // call.start
    let bad_starts = [
        (
            "an unknown kind",
            json!({"room_id": room.id, "kind": "hologram"}),
            Some("kind"),
        ),
        ("no kind", json!({"room_id": room.id}), Some("kind")),
        (
            "both room_id and user_id",
            json!({"room_id": room.id, "user_id": uid(&xavi), "kind": "audio"}),
            None,
        ),
        (
            "neither room_id nor user_id",
            json!({"kind": "audio"}),
            None,
        ),
        (
            "calling oneself",
            json!({"user_id": uid(&hana), "kind": "audio"}),
            None,
        ),
        (
            "inviting a non-member",
            json!({"room_id": room.id, "kind": "audio", "invite": [uid(&olga)]}),
            None,
        ),
    ];
    for (what, data, field) in bad_starts {
        let result = h.request("call.start", data).await;
        assert!(
            result.is_err(),
            "call.start with {what} succeeded: {result:?}"
        );
        assert_rejected(result, "validation_failed", field);
    }
    x.assert_none(
        "call.incoming of a refused call.start",
        of_type("call.incoming"),
    )
    .await;

    let (call, ph) = start_in(&mut h, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    let (_, px) = accept(&mut x, &call_id).await;

    // rtc.signal
    let sdp_of = |len: usize| format!("v=0\r\n{}", "a".repeat(len - 5));
    let offer_sdp = json!({"type": "offer", "sdp": OFFER_SDP});
    let mut long_candidate = ice(1);
    long_candidate["candidate"] = json!(format!("candidate:{}", "1".repeat(1024)));
    let mut long_mid = ice(1);
    long_mid["sdpMid"] = json!("m".repeat(65));
    let mut long_ufrag = ice(1);
    long_ufrag["usernameFragment"] = json!("u".repeat(257));
    let bad_signals = [
        (
            "neither description nor candidate",
            json!({"call_id": call_id, "to": px}),
            "validation_failed",
            None,
        ),
        (
            "both description and candidate",
            json!({"call_id": call_id, "to": px, "description": offer_sdp, "candidate": ice(1)}),
            "validation_failed",
            None,
        ),
        (
            "description.type bogus",
            description(&call_id, &px, "bogus", OFFER_SDP),
            "validation_failed",
            None,
        ),
        (
            "an SDP over max_sdp_bytes",
            description(&call_id, &px, "offer", &sdp_of(MAX_SDP + 1)),
            "validation_failed",
            None,
        ),
        (
            "a candidate over 1 KiB",
            json!({"call_id": call_id, "to": px, "candidate": long_candidate}),
            "validation_failed",
            None,
        ),
        (
            "an sdpMid over 64 characters",
            json!({"call_id": call_id, "to": px, "candidate": long_mid}),
            "validation_failed",
            None,
        ),
        (
            "a usernameFragment over 256 characters",
            json!({"call_id": call_id, "to": px, "candidate": long_ufrag}),
            "validation_failed",
            None,
        ),
        (
            "to a participant id not in the call",
            offer(&call_id, UNKNOWN_ID),
            "not_found",
            Some("to"),
        ),
        (
            "to the sender itself",
            offer(&call_id, &ph),
            "validation_failed",
            Some("to"),
        ),
        (
            "an unknown call_id",
            offer(UNKNOWN_ID, &px),
            "not_found",
            None,
        ),
    ];
    for (what, data, code, field) in bad_signals {
        let result = h.request("rtc.signal", data).await;
        assert!(
            result.is_err(),
            "rtc.signal with {what} succeeded: {result:?}"
        );
        assert_rejected(result, code, field);
    }
    x.assert_none("a refused signal", of_type("rtc.signal"))
        .await;
    h.assert_none("a signal to itself", of_type("rtc.signal"))
        .await;

    // The bounds are inclusive, and every description type passes.
    let largest = sdp_of(MAX_SDP);
    assert_eq!(largest.len(), MAX_SDP);
    for kind in ["offer", "answer", "pranswer", "rollback"] {
        let sdp = if kind == "offer" {
            largest.as_str()
        } else {
            OFFER_SDP
        };
        let signal = description(&call_id, &px, kind, sdp);
        h.ok("rtc.signal", signal.clone()).await;
        let got = signal_from(&mut x, &call_id, &ph).await;
        assert_signal(&got, &call_id, &ph, &uid(&hana), &signal);
    }
}

// ---------------------------------------------------------------------------------------
// Authorization
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn outsiders_other_calls_and_removed_members_cannot_touch_a_call() {
    let server = TestServer::spawn().await;
    let [alice, bob, carol, kim, olga, pete, quinn] = users(
        &server,
        ["alice", "bob", "carol", "kim", "olga", "pete", "quinn"],
    )
    .await;
    bob.block(&uid(&carol)).await.expect("bob blocks carol");
    let room = private_room(&alice, &[&bob, &carol, &kim]).await;
    let other_room = private_room(&pete, &[&quinn]).await;
    let mut a = Conn::open(&alice, "alice").await;
    let mut b = Conn::open(&bob, "bob").await;
    let mut c = Conn::open(&carol, "carol").await;
    let mut k = Conn::open(&kim, "kim").await;
    let mut o = Conn::open(&olga, "olga (outsider)").await;
    let mut p = Conn::open(&pete, "pete (in another call)").await;
    let mut q = Conn::open(&quinn, "quinn (in another call)").await;

    // Another call, in another room.
    let (other, _pp) = start_in(&mut p, &other_room.id, "audio").await;
    let other_id = text(&other["call_id"]);
    accept(&mut q, &other_id).await;

    // The call under attack: Alice (host), Bob and Kim.
    let (call, pa) = start_in(&mut a, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    let (_, pb) = accept(&mut b, &call_id).await;
    let (_, pk) = accept(&mut k, &call_id).await;
    c.expect("call.incoming", &call_id).await;

    let mut attempts = Attempts::default();

    // An outsider.
    attempts.check(
        "outsider: call.start in the room",
        o.request("call.start", json!({"room_id": room.id, "kind": "audio"}))
            .await,
        Some("not_member"),
    );
    for kind in ["call.accept", "call.decline", "call.leave", "call.end"] {
        attempts.check(
            &format!("outsider: {kind}"),
            o.request(kind, json!({"call_id": call_id})).await,
            Some("not_found"),
        );
    }
    attempts.check(
        "outsider: offer to alice",
        o.request("rtc.signal", offer(&call_id, &pa)).await,
        Some("not_found"),
    );
    attempts.check(
        "outsider: candidate to bob",
        o.request("rtc.signal", candidate(&call_id, &pb, 1)).await,
        Some("not_found"),
    );

    // A participant of another call.
    attempts.check(
        "pete: offer into the call",
        p.request("rtc.signal", offer(&call_id, &pa)).await,
        Some("not_found"),
    );
    attempts.check(
        "pete: offer to alice through his own call",
        p.request("rtc.signal", offer(&other_id, &pa)).await,
        Some("not_found"),
    );
    for kind in ["call.accept", "call.leave", "call.end"] {
        attempts.check(
            &format!("pete: {kind}"),
            p.request(kind, json!({"call_id": call_id})).await,
            Some("not_found"),
        );
    }

    // A member whom a participant blocked.
    attempts.check(
        "carol: join a call bob (who blocked her) is in",
        c.request("call.accept", json!({"call_id": call_id})).await,
        Some("forbidden"),
    );
    attempts.check(
        "carol: offer to bob without being in the call",
        c.request("rtc.signal", offer(&call_id, &pb)).await,
        None,
    );
    attempts.check(
        "carol: offer to alice without being in the call",
        c.request("rtc.signal", offer(&call_id, &pa)).await,
        None,
    );

    // A participant kicked mid-call leaves it at once.
    alice.kick(&room.id, &uid(&kim)).await.expect("kick kim");
    expect_ended(&mut k, &call_id, "removed").await;
    k.forget();
    for conn in [&mut a, &mut b] {
        expect_left(conn, &call_id, &pk, &uid(&kim), "removed").await;
    }
    for kind in ["call.accept", "call.leave", "call.end"] {
        attempts.check(
            &format!("kicked kim: {kind}"),
            k.request(kind, json!({"call_id": call_id})).await,
            Some("not_found"),
        );
    }
    attempts.check(
        "kicked kim: offer to alice",
        k.request("rtc.signal", offer(&call_id, &pa)).await,
        Some("not_found"),
    );
    attempts.check(
        "kicked kim: call.start in the room",
        k.request("call.start", json!({"room_id": room.id, "kind": "audio"}))
            .await,
        Some("not_member"),
    );

    attempts.assert_all_refused();

    // No signal leaked to anyone; nobody outside saw the call.
    for conn in [&mut a, &mut b, &mut c, &mut q] {
        conn.assert_none("an rtc.signal", of_type("rtc.signal"))
            .await;
    }
    o.assert_none("call events", is_call_event).await;
    k.assert_none("call events after being removed", is_call_event)
        .await;
    for conn in [&mut p, &mut q] {
        conn.assert_none("events of the other room's call", |e| {
            is_call_event(e) && (e["data"]["call_id"] == call_id || e["data"]["room_id"] == room.id)
        })
        .await;
    }
    // Pete's refused call.leave did not take him out of his own call.
    q.assert_none("pete leaving or the call ending", |e| {
        e["type"] == "call.participant_left" || e["type"] == "call.ended"
    })
    .await;

    // The call itself is unharmed.
    a.ok("rtc.signal", offer(&call_id, &pb)).await;
    signal_from(&mut b, &call_id, &pa).await;
}

#[tokio::test]
async fn blocks_stop_dm_calls_ringing_joining_and_signals() {
    let server = TestServer::spawn().await;
    let [bob, carol, dora, emil] = users(&server, ["bob", "carol", "dora", "emil"]).await;
    bob.block(&uid(&carol)).await.expect("bob blocks carol");
    let room = private_room(&dora, &[&bob, &carol, &emil]).await;
    let mut b = Conn::open(&bob, "bob").await;
    let mut c = Conn::open(&carol, "carol").await;
    let mut d = Conn::open(&dora, "dora").await;
    let mut e = Conn::open(&emil, "emil").await;
    let mut attempts = Attempts::default();

    // A DM call to someone who blocked the caller.
    attempts.check(
        "carol: DM call to bob, who blocked her",
        c.request("call.start", json!({"user_id": uid(&bob), "kind": "audio"}))
            .await,
        Some("forbidden"),
    );

    // In a room, members who blocked the caller are not rung.
    let (call, _pc) = start_in(&mut c, &room.id, "audio").await;
    let call_id = text(&call["call_id"]);
    assert_eq!(
        ringing(&call),
        sorted(vec![uid(&dora), uid(&emil)]),
        "{call}"
    );
    d.expect("call.incoming", &call_id).await;
    e.expect("call.incoming", &call_id).await;
    b.assert_none(
        "a call from carol, whom he blocked",
        of_type("call.incoming"),
    )
    .await;
    c.ok("call.leave", json!({"call_id": call_id})).await;
    d.expect("call.ended", &call_id).await;
    e.expect("call.ended", &call_id).await;

    // Joining a call where a participant blocked the joiner.
    let (call, pd) = start_in(&mut d, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    c.expect("call.incoming", &call_id).await;
    let (_, pb) = accept(&mut b, &call_id).await;
    attempts.check(
        "carol: join a call bob is in",
        c.request("call.accept", json!({"call_id": call_id})).await,
        Some("forbidden"),
    );

    // A signal to a participant who blocked the sender.
    let (_, pe) = accept(&mut e, &call_id).await;
    bob.block(&uid(&emil)).await.expect("bob blocks emil");
    attempts.check(
        "emil: offer to bob, who blocked him",
        e.request("rtc.signal", offer(&call_id, &pb)).await,
        Some("forbidden"),
    );
    attempts.check(
        "emil: candidate to bob, who blocked him",
        e.request("rtc.signal", candidate(&call_id, &pb, 1)).await,
        Some("forbidden"),
    );

    attempts.assert_all_refused();
    b.assert_none("an rtc.signal", of_type("rtc.signal")).await;
    c.assert_none("an rtc.signal", of_type("rtc.signal")).await;

    // Blocks are between two users: Emil still reaches Dora.
    e.ok("rtc.signal", offer(&call_id, &pd)).await;
    signal_from(&mut d, &call_id, &pe).await;
}

// ---------------------------------------------------------------------------------------
// Disconnects and room deletion
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_closed_connection_leaves_its_call() {
    let server = TestServer::spawn().await;
    let [host, xavier, yvonne] = users(&server, ["host", "xavier", "yvonne"]).await;
    let room = private_room(&host, &[&xavier, &yvonne]).await;
    let mut h = Conn::open(&host, "host").await;
    let mut x = Conn::open(&xavier, "xavier").await;
    let mut y = Conn::open(&yvonne, "yvonne").await;

    let (call, ph) = start_in(&mut h, &room.id, "audio").await;
    let call_id = text(&call["call_id"]);
    let (_, px) = accept(&mut x, &call_id).await;
    let (_, py) = accept(&mut y, &call_id).await;

    x.close().await;
    for conn in [&mut h, &mut y] {
        expect_left(conn, &call_id, &px, &uid(&xavier), "disconnected").await;
    }

    // The host's connection closing hands the call on.
    h.close().await;
    expect_left(&mut y, &call_id, &ph, &uid(&host), "disconnected").await;
    expect_host(&mut y, &call_id, &py, &uid(&yvonne)).await;
}

#[tokio::test]
async fn deleting_the_room_ends_its_call() {
    let server = TestServer::spawn().await;
    let [owner, maria] = users(&server, ["owner", "maria"]).await;
    let room = private_room(&owner, &[&maria]).await;
    let mut o = Conn::open(&owner, "owner").await;
    let mut m = Conn::open(&maria, "maria").await;

    let (call, _po) = start_in(&mut o, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    accept(&mut m, &call_id).await;

    owner.delete_room(&room.id).await.expect("delete room");
    expect_ended(&mut o, &call_id, "room_closed").await;
    expect_ended(&mut m, &call_id, "room_closed").await;
}

/// A member kicked while their `call.accept` is on its way never stays in the call: the
/// accept either fails, or succeeds and the participant is removed at once (the
/// membership is checked again after joining). The race is run 15 times.
#[tokio::test]
async fn a_member_kicked_while_accepting_never_stays_in_the_call() {
    let server = TestServer::spawn().await;
    let [alice, bob] = users(&server, ["alice", "bob"]).await;
    let mut a = Conn::open(&alice, "alice").await;
    let mut b = Conn::open(&bob, "bob").await;
    let bob_id = uid(&bob);
    for round in 0..15 {
        let room = private_room(&alice, &[&bob]).await;
        let (call, _) = start_in(&mut a, &room.id, "audio").await;
        let call_id = text(&call["call_id"]);
        b.expect("call.incoming", &call_id).await;
        let (kicked, accepted) = tokio::join!(
            alice.kick(&room.id, &bob_id),
            b.request("call.accept", json!({"call_id": call_id}))
        );
        kicked.unwrap_or_else(|e| panic!("round {round}: kick: {e}"));
        if let Ok(reply) = accepted {
            let pid = text(&reply["participant_id"]);
            expect_left(&mut a, &call_id, &pid, &bob_id, "removed").await;
        }
        a.ok("call.end", json!({"call_id": call_id})).await;
    }
}
