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
        .authenticate(&auth.access_token)
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
