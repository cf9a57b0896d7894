//! Nothing lost across nodes: three nodes on one PostgreSQL database and one Redis carry a
//! message stream while Redis is restarted again and again, or while one node is killed;
//! every client ends with every acknowledged message, none twice, each room's in seq
//! order (issue 15, items 4 and 5).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palaver_client::{Client, Socket};
use palaver_protocol::Visibility;
use tokio::task::JoinHandle;

use crate::cluster::{all_ready, Cluster};
use crate::helpers::{
    scratch_postgres_database, spawn_process_nodes, unique_name, user_at, PrivateRedis,
};

/// How long the clients may take, after the stream, to hold every acknowledged message
/// (generous: the machine may be busy; what is asserted is that they all arrive).
const SETTLE: Duration = Duration::from_secs(45);

/// A message as a sender's acknowledgement or a socket's `message.created` gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Seen {
    room_id: String,
    seq: i64,
    id: String,
}

/// What one client received, in arrival order.
type Log = Arc<Mutex<Vec<Seen>>>;

/// Records every `message.created` of `socket` into `log` until `stop` is set; returns
/// early with the error if the socket fails (its node died).
fn record(mut socket: Socket, log: Log, stop: Arc<AtomicBool>) -> JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Acquire) {
            match socket.try_next_event(Duration::from_millis(100)).await {
                Ok(Some(event)) if event["type"] == "message.created" => {
                    let data = &event["data"];
                    log.lock().unwrap().push(Seen {
                        room_id: data["room_id"].as_str().unwrap().to_owned(),
                        seq: data["seq"].as_i64().unwrap(),
                        id: data["id"].as_str().unwrap().to_owned(),
                    });
                }
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    })
}

/// Sends messages to `rooms` in turn, every 10 ms, until `stop` is set, through the first
/// of `via` that answers (a sender whose node died moves to the next); records each
/// acknowledged one in `acked`. A send that fails is not acknowledged and not expected.
fn stream(
    via: Vec<Client>,
    rooms: Vec<String>,
    acked: Log,
    stop: Arc<AtomicBool>,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut node = 0;
        let mut i = 0usize;
        while !stop.load(Ordering::Acquire) {
            let room_id = &rooms[i % rooms.len()];
            match via[node]
                .send_message(room_id, &format!("stream {i}"), None)
                .await
            {
                Ok(message) => acked.lock().unwrap().push(Seen {
                    room_id: room_id.clone(),
                    seq: message.seq,
                    id: message.id,
                }),
                // No HTTP answer at all: that node is gone.
                Err(e) if e.status().is_none() && node + 1 < via.len() => node += 1,
                Err(_) => {}
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        i
    })
}

/// Waits until every log holds every acknowledged message, then checks each log: no
/// message twice (by id, and by room and seq), and each room's seqs increasing in
/// arrival order.
async fn assert_all_delivered_once_in_order(logs: &[(&str, Log)], acked: &Log) {
    let expected: HashSet<String> = acked.lock().unwrap().iter().map(|m| m.id.clone()).collect();
    assert!(
        expected.len() > 50,
        "the stream acknowledged only {}",
        expected.len()
    );
    let deadline = tokio::time::Instant::now() + SETTLE;
    for (name, log) in logs {
        loop {
            let missing: Vec<String> = {
                let got: HashSet<String> =
                    log.lock().unwrap().iter().map(|m| m.id.clone()).collect();
                expected.difference(&got).cloned().collect()
            };
            if missing.is_empty() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} is missing {} of {} acknowledged messages, e.g. {:?}",
                missing.len(),
                expected.len(),
                missing.iter().take(3).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Let anything duplicated that is still on its way arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let by_id: HashMap<String, Seen> = acked
        .lock()
        .unwrap()
        .iter()
        .map(|m| (m.id.clone(), m.clone()))
        .collect();
    for (name, log) in logs {
        let log = log.lock().unwrap();
        let mut ids = HashSet::new();
        let mut last: HashMap<&str, i64> = HashMap::new();
        for m in log.iter() {
            assert!(ids.insert(&m.id), "{name} got message {} twice", m.id);
            if let Some(sent) = by_id.get(&m.id) {
                assert_eq!(sent, m, "{name} got message {} with another seq", m.id);
            }
            let previous = last.insert(&m.room_id, m.seq);
            assert!(
                previous.is_none_or(|p| p < m.seq),
                "{name} got seq {} of room {} after seq {:?}",
                m.seq,
                m.room_id,
                previous
            );
        }
    }
}

/// Redis killed and restarted 20 times while three users, each connected to another of
/// three nodes, stream messages into two rooms: every socket ends with every
/// acknowledged message, once, in each room's seq order. (Notes published while Redis was
/// down are lost to the other nodes; they read them from the database when they subscribe
/// again, or when a later seq shows the gap.)
#[tokio::test]
async fn redis_restarted_20_times_during_a_three_node_stream_loses_nothing() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_on(3, &redis.url()).await;
    let mut users = Vec::new();
    for n in 0..3 {
        users.push(cluster.user(n, &format!("streamer{n}")).await);
    }
    let mut rooms = Vec::new();
    for _ in 0..2 {
        let room = users[0]
            .create_room(&unique_name("stream"), Visibility::Public, None)
            .await
            .unwrap();
        for user in &users[1..] {
            user.join_room(&room.id).await.unwrap();
        }
        rooms.push(room.id);
    }
    let stop_reading = Arc::new(AtomicBool::new(false));
    let mut logs = Vec::new();
    let mut readers = Vec::new();
    for user in &users {
        let log = Log::default();
        let socket = user.connect().await.unwrap();
        readers.push(record(socket, log.clone(), stop_reading.clone()));
        logs.push(log);
    }

    let acked = Log::default();
    let stop_sending = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = users
        .iter()
        .map(|user| {
            stream(
                vec![user.clone()],
                rooms.clone(),
                acked.clone(),
                stop_sending.clone(),
            )
        })
        .collect();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        redis.kill();
        tokio::time::sleep(Duration::from_millis(100)).await;
        redis.restart().await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_sending.store(true, Ordering::Release);
    for sender in senders {
        sender.await.unwrap();
    }
    all_ready(&cluster).await;

    let named: Vec<(&str, Log)> = ["node 0's client", "node 1's client", "node 2's client"]
        .into_iter()
        .zip(logs)
        .collect();
    assert_all_delivered_once_in_order(&named, &acked).await;
    stop_reading.store(true, Ordering::Release);
    for reader in readers {
        reader.await.unwrap().expect("no socket failed");
    }
}

/// One node killed with SIGKILL in the middle of a stream from three users connected to
/// three nodes: its user's socket reconnects to a surviving node resuming from the last
/// seq it saw, and every client (that one included) ends with every acknowledged message,
/// once, in seq order. Messages its node acknowledged but had not published yet reach the
/// others through the gap the next seq shows.
#[tokio::test]
async fn a_node_killed_mid_stream_loses_nothing() {
    let redis = PrivateRedis::start().await;
    let database = scratch_postgres_database();
    let mut nodes = spawn_process_nodes(3, &database.url, &redis.url(), &[]);
    let mut users = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        users.push(user_at(&node.base, &format!("streamer{n}")).await);
    }
    let room = users[0]
        .create_room(&unique_name("stream"), Visibility::Public, None)
        .await
        .unwrap();
    for user in &users[1..] {
        user.join_room(&room.id).await.unwrap();
    }
    let stop_reading = Arc::new(AtomicBool::new(false));
    let mut logs = Vec::new();
    let mut readers = Vec::new();
    for user in &users {
        let log = Log::default();
        let socket = user.connect().await.unwrap();
        readers.push(record(socket, log.clone(), stop_reading.clone()));
        logs.push(log);
    }
    // Node 2's user falls back to node 0 for sending once node 2 is gone.
    let mut on_node_0 = Client::new(nodes[0].base.clone());
    on_node_0.token = users[2].token.clone();
    on_node_0.user = users[2].user.clone();

    let acked = Log::default();
    let stop_sending = Arc::new(AtomicBool::new(false));
    let senders = vec![
        stream(
            vec![users[0].clone()],
            vec![room.id.clone()],
            acked.clone(),
            stop_sending.clone(),
        ),
        stream(
            vec![users[1].clone()],
            vec![room.id.clone()],
            acked.clone(),
            stop_sending.clone(),
        ),
        stream(
            vec![users[2].clone(), on_node_0.clone()],
            vec![room.id.clone()],
            acked.clone(),
            stop_sending.clone(),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut killed = nodes.pop().unwrap();
    // SIGKILL: no drain, no close frames, notes still queued for Redis are gone.
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let orphan = readers.pop().unwrap();
    let failure = tokio::time::timeout(Duration::from_secs(30), orphan)
        .await
        .expect("the killed node's socket ends")
        .unwrap();
    assert!(failure.is_err(), "the killed node's socket failed");
    // It resumes on node 0 from the last seq it saw.
    let last_seen = logs[2].lock().unwrap().last().map(|m| m.seq);
    let socket = on_node_0
        .connect_resuming(&[(room.id.as_str(), last_seen)])
        .await
        .unwrap();
    readers.push(record(socket, logs[2].clone(), stop_reading.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_sending.store(true, Ordering::Release);
    for sender in senders {
        sender.await.unwrap();
    }
    drop(killed);

    let named: Vec<(&str, Log)> = [
        "node 0's client",
        "node 1's client",
        "node 2's client, resumed on node 0",
    ]
    .into_iter()
    .zip(logs)
    .collect();
    assert_all_delivered_once_in_order(&named, &acked).await;
    stop_reading.store(true, Ordering::Release);
    for reader in readers {
        reader.await.unwrap().expect("no surviving socket failed");
    }
}

/// How many nodes are subscribed to `room_id`'s channel now (`PUBSUB NUMSUB`).
async fn subscribers(redis: &PrivateRedis, room_id: &str) -> i64 {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("palaver:room:{room_id}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    n
}

/// Waits (up to 20 s) until `room_id` has `want` subscribed nodes.
async fn await_subscribers(redis: &PrivateRedis, room_id: &str, want: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = subscribers(redis, room_id).await;
        if n == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "room {room_id} has {n} subscribed nodes, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node subscribes to a room's channel only while it serves the room: when the first
/// socket of a member connects to it, and (a moment after) the last one closes it
/// unsubscribes. A message sent on a node that serves no one in the room still reaches
/// the members on the others.
#[tokio::test]
async fn a_node_subscribes_to_a_room_while_it_has_a_member_connected() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_on(3, &redis.url()).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let room = alice
        .create_room(&unique_name("subscribed"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    assert_eq!(subscribers(&redis, &room.id).await, 0, "no socket yet");

    let mut bob_ws = bob.connect().await.unwrap();
    await_subscribers(&redis, &room.id, 1).await;
    let sent = cluster
        .at(&alice, 2)
        .send_message(&room.id, "from a node that serves no one", None)
        .await
        .unwrap();
    let event = crate::cluster::event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["id"], sent.id.as_str());

    let alice_ws = alice.connect().await.unwrap();
    await_subscribers(&redis, &room.id, 2).await;
    bob_ws.close().await.unwrap();
    alice_ws.close().await.unwrap();
    await_subscribers(&redis, &room.id, 0).await;
}

/// A user whose socket is on a node that serves no one in a room joins it on another
/// node, and a message is sent at once on a third: the socket gets the message, every
/// time, 20 rooms in a row (the join reaches the user's node on the user's channel, which
/// then subscribes to the room; a change committed before that subscription takes effect
/// is read from the database: `broker::order`'s unit tests pin that case down).
#[tokio::test]
async fn a_message_right_after_a_join_on_another_node_reaches_the_joiner() {
    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_on(3, &redis.url()).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let mut bob_ws = bob.connect().await.unwrap();
    let bob_on_0 = cluster.at(&bob, 0);
    let alice_on_2 = cluster.at(&alice, 2);
    for round in 0..20 {
        let room = alice
            .create_room(&unique_name("race"), Visibility::Public, None)
            .await
            .unwrap();
        bob_on_0.join_room(&room.id).await.unwrap();
        let sent = alice_on_2
            .send_message(&room.id, &format!("round {round}"), None)
            .await
            .unwrap();
        let event = crate::cluster::event_of(&mut bob_ws, "message.created").await;
        assert_eq!(event["data"]["id"], sent.id.as_str(), "round {round}");
    }
}

/// A change that its node committed but never published (it died in between), and that
/// no later change of its room reveals as a gap, still reaches the room's sockets on the
/// other nodes: each node audits the last seqs of its rooms and reads what never came.
/// (The dead node's write is stood in for by a message written straight into the
/// database, which no node publishes.)
#[tokio::test]
async fn a_committed_change_never_published_reaches_the_other_nodes_sockets() {
    use palaver_server::store::postgres::PostgresStore;
    use palaver_server::store::NewMessage;

    let redis = PrivateRedis::start().await;
    let cluster = Cluster::start_on(2, &redis.url()).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let room = alice
        .create_room(&unique_name("audit"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let published = alice
        .send_message(&room.id, "published", None)
        .await
        .unwrap();
    let event = crate::cluster::event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["id"], published.id.as_str());

    let store = PostgresStore::connect(&cluster.database.url)
        .await
        .unwrap()
        .store();
    let pending = store
        .messages
        .queue_message(NewMessage {
            id: uuid::Uuid::now_v7().to_string(),
            room_id: room.id.clone(),
            sender_id: alice.user.as_ref().unwrap().id.clone(),
            content: "committed, never published".to_owned(),
            client_id: None,
            created_at: "2026-11-24T12:00:00.000Z".to_owned(),
            message_type: palaver_protocol::MessageType::Text,
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
    store.database.close().await;

    // Two audits apart at most (5 s each), on a machine that may be busy.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let event = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unpublished change never reached the socket on node 1"
        );
        match bob_ws.try_next_event(Duration::from_secs(1)).await.unwrap() {
            Some(event) if event["type"] == "message.created" => break event,
            _ => {}
        }
    };
    assert_eq!(event["data"]["id"], row.id.as_str());
    assert_eq!(event["data"]["seq"], published.seq + 1);
}
