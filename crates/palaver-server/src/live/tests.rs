//! The connection core driven through a test [`Transport`], against a real service and
//! store: what any wire protocol's connection gets, independent of its framing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use palaver_protocol::rest::{CreateRoomRequest, RegisterRequest};
use palaver_protocol::ws::Event;
use palaver_protocol::{MessageType, Visibility};
use tokio::sync::mpsc;

use super::connection::{run, Gone, Inbound, Transport};
use super::request::Request;
use super::wire::{Frame, Wire};
use crate::auth::Actor;
use crate::broker::Envelope;
use crate::config::Config;
use crate::hub::CloseReason;
use crate::service::accounts::ClientInfo;
use crate::store::NewMessage;
use crate::AppState;

/// A client whose requests come from a channel and whose frames go to one.
struct TestTransport {
    inbound: mpsc::UnboundedReceiver<Inbound>,
    written: mpsc::UnboundedSender<String>,
}

impl Transport for TestTransport {
    const WIRE: Wire = Wire::Native;

    async fn recv(&mut self) -> Inbound {
        self.inbound.recv().await.unwrap_or(Inbound::End(None))
    }

    async fn feed(&mut self, frame: Frame) -> Result<(), Gone> {
        self.written
            .send(frame.as_str().to_owned())
            .map_err(|_| Gone)
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), Gone> {
        Ok(())
    }

    async fn close(&mut self, _reason: Option<CloseReason>) {}
}

/// A node on a fresh data directory, one user and one room of theirs.
async fn node() -> (tempfile::TempDir, AppState, Actor, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    let (service, _store, hub) = crate::open(&config).await.unwrap();
    let state = AppState {
        service,
        hub,
        requests: Arc::new(crate::ratelimit::RateLimiter::new(
            config.rate_limits.requests_per_ip,
        )),
        cors: Arc::new(config.cors.clone()),
        client_addr: Arc::new(crate::net::ClientAddrConfig {
            trusted_proxies: Vec::new(),
            header: config.forwarded_header,
        }),
        signalr: Arc::new(crate::gateway::signalr::Sessions::new(None)),
    };
    let auth = state
        .service
        .register(
            RegisterRequest {
                username: "ada".into(),
                email: "ada@example.com".into(),
                password: "correct horse battery staple".into(),
            },
            ClientInfo::default(),
        )
        .await
        .unwrap();
    let actor = state
        .service
        .authenticate(&logged_in(auth).access_token)
        .await
        .unwrap();
    let room = state
        .service
        .create_room(
            &actor,
            CreateRoomRequest {
                name: "general".into(),
                visibility: Visibility::Public,
                topic: None,
            },
        )
        .await
        .unwrap();
    (dir, state, actor, room.id)
}

/// The next frame written, as JSON.
async fn next(written: &mut mpsc::UnboundedReceiver<String>) -> serde_json::Value {
    let text = tokio::time::timeout(Duration::from_secs(10), written.recv())
        .await
        .expect("a frame within 10 s")
        .expect("the connection is open");
    serde_json::from_str(&text).unwrap()
}

/// Stores a message in `room_id` without publishing it (as if another node had committed
/// it and its event were still on the way), returning its event.
async fn stored_elsewhere(state: &AppState, actor: &Actor, room_id: &str, n: usize) -> Event {
    let pending = state
        .service
        .store
        .messages
        .queue_message(NewMessage {
            id: crate::service::new_id(),
            room_id: room_id.to_owned(),
            sender_id: actor.user_id.clone(),
            content: format!("m{n}"),
            client_id: None,
            created_at: crate::service::now_rfc3339(),
            message_type: MessageType::Text,
            reply_to: None,
            attachment_id: None,
            call: None,
            member_only: false,
            mentions: Default::default(),
            mentioned: Vec::new(),
        })
        .await
        .unwrap();
    let (row, _) = pending.committed().await.unwrap();
    Event::MessageCreated(state.service.message_to_wire(row).await.unwrap())
}

#[tokio::test]
async fn a_seq_that_arrives_after_a_higher_one_is_delivered_exactly_once() {
    let (_dir, state, actor, room_id) = node().await;
    let (requests, inbound) = mpsc::unbounded_channel();
    let (written_tx, mut written) = mpsc::unbounded_channel();
    let slot = state.hub.reserve_socket(&actor.user_id, 0).unwrap();
    let transport = TestTransport {
        inbound,
        written: written_tx,
    };
    tokio::spawn(run(
        state.clone(),
        actor.clone(),
        Vec::new(),
        transport,
        slot,
    ));
    assert_eq!(next(&mut written).await["type"], "ready");

    // Seqs 1 and 2 are committed elsewhere; 2 arrives live first, then the client asks
    // for everything after 0, then 1 arrives live, late.
    let one = stored_elsewhere(&state, &actor, &room_id, 1).await;
    let two = stored_elsewhere(&state, &actor, &room_id, 2).await;
    state.hub.deliver(&Envelope::room(&room_id, two).change(2));
    let rooms = BTreeMap::from([(room_id.clone(), Some(0))]);
    requests
        .send(Inbound::Request {
            id: Some(serde_json::json!("sync")),
            request: Ok(Request::Sync { rooms }),
        })
        .unwrap();
    let mut seqs = Vec::new();
    loop {
        let frame = next(&mut written).await;
        if frame["type"] == "reply" {
            assert_eq!(frame["ok"], true, "{frame}");
            assert_eq!(frame["data"]["rooms"][&room_id], 2);
            break;
        }
        assert_eq!(frame["type"], "message.created", "{frame}");
        seqs.push(frame["seq"].as_i64().unwrap());
    }
    state.hub.deliver(&Envelope::room(&room_id, one).change(1));
    // A request after the late frame: its reply comes after whatever the frame caused.
    requests
        .send(Inbound::Request {
            id: Some(serde_json::json!("ping")),
            request: Ok(Request::Ping),
        })
        .unwrap();
    loop {
        let frame = next(&mut written).await;
        if frame["type"] == "reply" {
            assert_eq!(frame["id"], "ping");
            break;
        }
        seqs.push(frame["seq"].as_i64().unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        vec![1, 2],
        "every change once: none lost, none repeated"
    );
}

// ---------------------------------------------------------------------------------------
// Requests that address messages by id alone and call peers by user (the variants without
// a native name, for protocols such as Socket.IO's: see `docs/socketio.md`).

/// Registers `name` on `state`'s node; their actor.
async fn user(state: &AppState, name: &str) -> Actor {
    let auth = state
        .service
        .register(
            RegisterRequest {
                username: name.into(),
                email: format!("{name}@example.com"),
                password: "correct horse battery staple".into(),
            },
            ClientInfo::default(),
        )
        .await
        .unwrap();
    state
        .service
        .authenticate(&logged_in(auth).access_token)
        .await
        .unwrap()
}

/// One connection of the core, driven by the test: requests in, frames out. Events read
/// while waiting for something else are kept, so waits in any order lose nothing.
struct Peer {
    name: &'static str,
    requests: mpsc::UnboundedSender<Inbound>,
    written: mpsc::UnboundedReceiver<String>,
    events: Vec<serde_json::Value>,
    asked: u64,
}

impl Peer {
    /// Opens a connection of `actor` and reads its `ready`.
    async fn open(state: &AppState, actor: &Actor, name: &'static str) -> Peer {
        let (requests, inbound) = mpsc::unbounded_channel();
        let (written_tx, mut written) = mpsc::unbounded_channel();
        let slot = state.hub.reserve_socket(&actor.user_id, 0).unwrap();
        let transport = TestTransport {
            inbound,
            written: written_tx,
        };
        tokio::spawn(run(
            state.clone(),
            actor.clone(),
            Vec::new(),
            transport,
            slot,
        ));
        assert_eq!(next(&mut written).await["type"], "ready", "{name}");
        Peer {
            name,
            requests,
            written,
            events: Vec::new(),
            asked: 0,
        }
    }

    /// Runs `request`: the reply's data, or its error (`{code, message, field?}`).
    async fn ask(&mut self, request: Request) -> Result<serde_json::Value, serde_json::Value> {
        self.asked += 1;
        let id = serde_json::json!(self.asked);
        self.requests
            .send(Inbound::Request {
                id: Some(id.clone()),
                request: Ok(request),
            })
            .unwrap();
        loop {
            let frame = next(&mut self.written).await;
            if frame["type"] == "reply" && frame["id"] == id {
                return if frame["ok"] == true {
                    Ok(frame["data"].clone())
                } else {
                    Err(frame["error"].clone())
                };
            }
            self.events.push(frame);
        }
    }

    /// [`Peer::ask`] for a request that must succeed.
    async fn ok(&mut self, request: Request) -> serde_json::Value {
        let what = format!("{request:?}");
        self.ask(request)
            .await
            .unwrap_or_else(|e| panic!("{}: {what} failed: {e}", self.name))
    }

    /// The error code of a request that must fail, and the field it names (if any).
    async fn refused(&mut self, request: Request) -> (String, Option<String>) {
        let what = format!("{request:?}");
        match self.ask(request).await {
            Ok(data) => panic!("{}: {what} succeeded: {data}", self.name),
            Err(e) => (
                e["code"].as_str().unwrap().to_owned(),
                e["field"].as_str().map(str::to_owned),
            ),
        }
    }

    /// The first event (kept or new) of type `kind`.
    async fn expect(&mut self, kind: &str) -> serde_json::Value {
        if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
            return self.events.remove(i);
        }
        loop {
            let frame = next(&mut self.written).await;
            if frame["type"] == kind {
                return frame;
            }
            self.events.push(frame);
        }
    }

    /// The events of type `kind` received so far.
    fn kept(&self, kind: &str) -> Vec<&serde_json::Value> {
        self.events.iter().filter(|e| e["type"] == kind).collect()
    }
}

/// `message.send`-like request of `content` in `room_id`.
fn send(room_id: &str, content: &str) -> Request {
    Request::SendMessage(palaver_protocol::ws::SendMessage {
        room_id: room_id.to_owned(),
        content: content.to_owned(),
        client_id: None,
        reply_to: None,
        attachment_id: None,
    })
}

fn offer() -> Option<palaver_protocol::ws::SessionDescription> {
    Some(palaver_protocol::ws::SessionDescription {
        kind: palaver_protocol::ws::SdpType::Offer,
        sdp: "v=0\r\n".into(),
    })
}

fn candidate(line: &str) -> Option<palaver_protocol::ws::IceCandidate> {
    Some(palaver_protocol::ws::IceCandidate {
        candidate: line.to_owned(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
        username_fragment: None,
    })
}

#[tokio::test]
async fn a_message_is_located_for_members_of_its_room_only() {
    let (_dir, state, ada, room_id) = node().await;
    let bob = user(&state, "bob").await;
    let service = &state.service;
    service
        .send_message(&ada, &room_id, "one", Default::default())
        .await
        .unwrap();
    let two = service
        .send_message(&ada, &room_id, "two", Default::default())
        .await
        .unwrap();

    assert_eq!(
        service.locate_message(&ada, &two.id).await.unwrap(),
        (room_id.clone(), 2)
    );
    // Not a member, and no such message: the same answer.
    let outsider = service.locate_message(&bob, &two.id).await.unwrap_err();
    let unknown = service
        .locate_message(&ada, "0193a000-0000-7000-8000-000000000000")
        .await
        .unwrap_err();
    assert_eq!(outsider.code, palaver_protocol::ErrorCode::NotFound);
    assert_eq!(
        (outsider.code, outsider.message.as_str()),
        (unknown.code, unknown.message.as_str())
    );
    // A deleted message is still where it was.
    service.join_room(&bob, &room_id).await.unwrap();
    service
        .delete_message(&ada, &room_id, &two.id)
        .await
        .unwrap();
    assert_eq!(
        service.locate_message(&bob, &two.id).await.unwrap(),
        (room_id, 2)
    );
}

#[tokio::test]
async fn messages_addressed_by_id_alone_are_read_edited_reacted_to_and_deleted() {
    let (_dir, state, ada, room_id) = node().await;
    let bob = user(&state, "bob").await;
    let carol = user(&state, "carol").await;
    state.service.join_room(&bob, &room_id).await.unwrap();
    let mut a = Peer::open(&state, &ada, "ada").await;
    let mut b = Peer::open(&state, &bob, "bob").await;
    let mut c = Peer::open(&state, &carol, "carol").await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        let message = a.ok(send(&room_id, &format!("m{n}"))).await;
        ids.push(message["id"].as_str().unwrap().to_owned());
    }

    // Bob reads up to the second message: one message of others is left unread.
    let read = b
        .ok(Request::MarkMessageRead {
            room_id: None,
            message_id: ids[1].clone(),
        })
        .await;
    assert_eq!(
        read,
        serde_json::json!({"room_id": room_id, "last_read_seq": 2, "unread_count": 1,
                           "mention_count": 0})
    );
    let receipt = a.expect("receipt.updated").await;
    assert_eq!(receipt["data"]["seq"], 2, "{receipt}");
    // The marker never moves back; the right room may be named; a wrong one is not found.
    let read = b
        .ok(Request::MarkMessageRead {
            room_id: Some(room_id.clone()),
            message_id: ids[0].clone(),
        })
        .await;
    assert_eq!(read["last_read_seq"], 2, "{read}");
    let wrong_room = Request::MarkMessageRead {
        room_id: Some("0193a000-0000-7000-8000-000000000000".into()),
        message_id: ids[2].clone(),
    };
    assert_eq!(b.refused(wrong_room).await.0, "not_found");

    // Carol is no member: every request about the message is not found.
    let requests = [
        Request::MarkMessageRead {
            room_id: None,
            message_id: ids[0].clone(),
        },
        Request::EditMessage {
            room_id: None,
            message_id: ids[0].clone(),
            content: "x".into(),
        },
        Request::React {
            room_id: None,
            message_id: ids[0].clone(),
            emoji: "👍".into(),
            add: true,
        },
        Request::DeleteMessage {
            room_id: None,
            message_id: ids[0].clone(),
        },
    ];
    for request in requests {
        assert_eq!(c.refused(request).await.0, "not_found");
    }

    // Members: found, then the usual rules (only the author edits).
    let edit = |content: &str| Request::EditMessage {
        room_id: None,
        message_id: ids[0].clone(),
        content: content.into(),
    };
    assert_eq!(b.refused(edit("bob's")).await.0, "forbidden");
    let edited = a.ok(edit("m1!")).await;
    assert_eq!(
        (&edited["content"], &edited["seq"]),
        (&serde_json::json!("m1!"), &serde_json::json!(1))
    );
    b.ok(Request::React {
        room_id: None,
        message_id: ids[0].clone(),
        emoji: "👍".into(),
        add: true,
    })
    .await;
    let added = a.expect("reaction.added").await;
    assert_eq!(added["data"]["message_id"], ids[0], "{added}");
    assert_eq!(added["data"]["user_id"], bob.user_id, "{added}");
    let deleted = a
        .ok(Request::DeleteMessage {
            room_id: None,
            message_id: ids[2].clone(),
        })
        .await;
    assert_eq!(deleted["id"], ids[2], "{deleted}");
    assert!(deleted["deleted_at"].is_string(), "{deleted}");
    assert_eq!(
        a.refused(Request::EditMessage {
            room_id: None,
            message_id: "0193a000-0000-7000-8000-000000000000".into(),
            content: "x".into(),
        })
        .await
        .0,
        "not_found"
    );
}

/// Ada, Bob, Carol and Dave in Ada's room, each with one connection.
async fn four_in_a_room() -> (tempfile::TempDir, AppState, String, [Actor; 4], [Peer; 4]) {
    let (dir, state, ada, room_id) = node().await;
    let mut actors = vec![ada];
    for name in ["bob", "carol", "dave"] {
        let actor = user(&state, name).await;
        state.service.join_room(&actor, &room_id).await.unwrap();
        actors.push(actor);
    }
    let mut peers = Vec::new();
    for (actor, name) in actors.iter().zip(["ada", "bob", "carol", "dave"]) {
        peers.push(Peer::open(&state, actor, name).await);
    }
    let actors: [Actor; 4] = actors.try_into().unwrap_or_else(|_| unreachable!());
    let peers: [Peer; 4] = peers.try_into().unwrap_or_else(|_| unreachable!());
    (dir, state, room_id, actors, peers)
}

/// `from` starts a call in `room_id` ringing `invite`; each of `answer` accepts it. The
/// call's id.
async fn call(
    from: &mut Peer,
    room_id: &str,
    invite: &[&Actor],
    answer: &mut [&mut Peer],
) -> String {
    let joined = from
        .ok(Request::StartCall(palaver_protocol::ws::StartCall {
            room_id: Some(room_id.to_owned()),
            user_id: None,
            kind: palaver_protocol::CallKind::Audio,
            invite: Some(invite.iter().map(|a| a.user_id.clone()).collect()),
            offer: None,
        }))
        .await;
    let call_id = joined["call"]["call_id"].as_str().unwrap().to_owned();
    for peer in answer {
        peer.expect("call.incoming").await;
        peer.ok(Request::AcceptCall {
            call_id: call_id.clone(),
        })
        .await;
    }
    call_id
}

#[tokio::test]
async fn a_signal_to_a_user_reaches_that_users_participant_only() {
    let (_dir, _state, room_id, [ada, bob, carol, dave], [mut a, mut b, mut c, mut d]) =
        four_in_a_room().await;
    let call_id = call(&mut a, &room_id, &[&bob, &carol], &mut [&mut b, &mut c]).await;
    let signal = |to: &Actor, call_id: Option<&str>, description, candidate| Request::SignalUser {
        call_id: call_id.map(str::to_owned),
        to_user: to.user_id.clone(),
        description,
        candidate,
    };

    // Ada's offer to Bob, without naming the call, then a candidate to Carol.
    a.ok(signal(&bob, None, offer(), None)).await;
    a.ok(signal(&carol, Some(&call_id), None, candidate("for carol")))
        .await;
    let got = b.expect("rtc.signal").await;
    assert_eq!(got["data"]["call_id"], call_id, "{got}");
    assert_eq!(got["data"]["from_user"], ada.user_id, "{got}");
    assert_eq!(got["data"]["description"]["type"], "offer", "{got}");
    // One call's events reach each connection in the order of its changes: had Carol
    // been sent Bob's offer, it would come before her candidate.
    let got = c.expect("rtc.signal").await;
    assert_eq!(got["data"]["candidate"]["candidate"], "for carol", "{got}");
    assert!(
        c.kept("rtc.signal").is_empty(),
        "{:?}",
        c.kept("rtc.signal")
    );
    // Bob answers back by user too.
    b.ok(signal(
        &ada,
        None,
        Some(palaver_protocol::ws::SessionDescription {
            kind: palaver_protocol::ws::SdpType::Answer,
            sdp: "v=0\r\n".into(),
        }),
        None,
    ))
    .await;
    let got = a.expect("rtc.signal").await;
    assert_eq!(got["data"]["from_user"], bob.user_id, "{got}");

    // Dave is in no call, and no participant of this one.
    assert_eq!(
        d.refused(signal(&ada, None, offer(), None)).await,
        ("not_found".into(), None)
    );
    assert_eq!(
        d.refused(signal(&ada, Some(&call_id), offer(), None)).await,
        ("not_found".into(), None)
    );
    assert_eq!(
        a.refused(signal(&dave, None, offer(), None)).await,
        ("not_found".into(), Some("to_user".into()))
    );
    // The rules of rtc.signal: one payload, within bounds, not to oneself.
    assert_eq!(
        a.refused(signal(&bob, None, offer(), candidate("both")))
            .await,
        ("validation_failed".into(), Some("description".into()))
    );
    assert_eq!(
        a.refused(signal(&ada, None, offer(), None)).await,
        ("validation_failed".into(), Some("to_user".into()))
    );
    let huge = "c".repeat(crate::signaling::relay::MAX_CANDIDATE_BYTES + 1);
    assert_eq!(
        a.refused(signal(&bob, None, None, candidate(&huge))).await,
        (
            "validation_failed".into(),
            Some("candidate.candidate".into())
        )
    );
}

#[tokio::test]
async fn a_user_who_blocked_the_sender_gets_no_signal() {
    let (_dir, state, room_id, [ada, bob, _carol, _dave], [mut a, mut b, _c, _d]) =
        four_in_a_room().await;
    let _call_id = call(&mut a, &room_id, &[&bob], &mut [&mut b]).await;
    state.service.block(&bob, &ada.user_id).await.unwrap();
    let refused = a
        .refused(Request::SignalUser {
            call_id: None,
            to_user: bob.user_id.clone(),
            description: offer(),
            candidate: None,
        })
        .await;
    assert_eq!(refused.0, "forbidden");
}

#[tokio::test]
async fn hanging_up_ends_a_call_of_two_and_leaves_a_larger_one() {
    let (_dir, _state, room_id, [_ada, bob, carol, _dave], [mut a, mut b, mut c, mut d]) =
        four_in_a_room().await;
    // Nobody's call: not found.
    assert_eq!(
        d.refused(Request::HangUp { call_id: None }).await,
        ("not_found".into(), None)
    );

    // One to one: Bob (not the host) hangs up, and it ends for both.
    let call_id = call(&mut a, &room_id, &[&bob], &mut [&mut b]).await;
    assert_eq!(
        d.refused(Request::HangUp {
            call_id: Some(call_id.clone())
        })
        .await
        .0,
        "not_found"
    );
    b.ok(Request::HangUp { call_id: None }).await;
    for peer in [&mut a, &mut b] {
        let ended = peer.expect("call.ended").await;
        assert_eq!(ended["data"]["call_id"], call_id, "{}: {ended}", peer.name);
        assert_eq!(ended["data"]["reason"], "ended", "{}: {ended}", peer.name);
    }
    assert_eq!(
        b.refused(Request::HangUp { call_id: None }).await.0,
        "not_found"
    );

    // Three: Carol hanging up leaves (the call goes on); then Bob's ends it.
    let call_id = call(&mut a, &room_id, &[&bob, &carol], &mut [&mut b, &mut c]).await;
    c.ok(Request::HangUp {
        call_id: Some(call_id.clone()),
    })
    .await;
    let left = a.expect("call.participant_left").await;
    assert_eq!(left["data"]["user_id"], carol.user_id, "{left}");
    b.ok(Request::HangUp { call_id: None }).await;
    let ended = a.expect("call.ended").await;
    assert_eq!(ended["data"]["call_id"], call_id, "{ended}");
    // Carol, gone before the end, heard nothing of it: her next call event is the next
    // call's ringing.
    let _next = call(&mut a, &room_id, &[&carol], &mut []).await;
    c.expect("call.incoming").await;
    assert!(
        c.kept("call.ended").is_empty(),
        "{:?}",
        c.kept("call.ended")
    );
}

/// The session of a registration on a server without e-mail.
fn logged_in(done: crate::service::accounts::Registered) -> palaver_protocol::rest::AuthResponse {
    match done {
        crate::service::accounts::Registered::LoggedIn(auth) => *auth,
        other => panic!("registration without e-mail logs in, got {other:?}"),
    }
}
