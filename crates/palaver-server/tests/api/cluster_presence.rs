//! Presence across nodes (issue 15, items 3 and 5): a user's first connection anywhere
//! and their last one everywhere are each announced once, by one node; a node killed
//! with SIGKILL has its users announced offline by a survivor once their leases expire;
//! and the last seen time is stored, so it survives a restart.

use std::time::Duration;

use palaver_client::{Client, Socket};
use palaver_protocol::Visibility;

use crate::cluster::Cluster;
use crate::helpers::{
    scratch_postgres_database, spawn_process_nodes, unique_name, PrivateRedis, TestServer,
};

/// How long an announcement may take before the test fails (generous: the machine may be
/// busy; what is asserted is that it comes). For a killed node: its lease TTL (3 s here)
/// plus a renewal period (1 s), plus that margin.
const ANNOUNCED: Duration = Duration::from_secs(30);

fn uid(c: &Client) -> String {
    c.user.as_ref().unwrap().id.clone()
}

/// The next `presence.updated` about `user_id` on `socket`, failing after [`ANNOUNCED`].
async fn presence_of(socket: &mut Socket, user_id: &str) -> serde_json::Value {
    socket.timeout = ANNOUNCED;
    let wait = async {
        loop {
            let event = socket.next_event_of("presence.updated").await.unwrap();
            if event["data"]["user_id"] == user_id {
                return event["data"].clone();
            }
        }
    };
    tokio::time::timeout(ANNOUNCED, wait)
        .await
        .unwrap_or_else(|_| panic!("no presence.updated for {user_id} within {ANNOUNCED:?}"))
}

/// Every event on `socket` up to the `message.created` of message `id` (excluded).
async fn events_until_message(socket: &mut Socket, id: &str) -> Vec<serde_json::Value> {
    socket.timeout = ANNOUNCED;
    let mut seen = Vec::new();
    let wait = async {
        loop {
            let event = socket.next_event().await.unwrap();
            if event["type"] == "message.created" && event["data"]["id"] == id {
                return;
            }
            seen.push(event);
        }
    };
    tokio::time::timeout(ANNOUNCED, wait)
        .await
        .unwrap_or_else(|_| panic!("message {id} never arrived; before it: {seen:?}"));
    seen
}

/// `palaver_connections` of the node at `base`.
async fn connections(base: &str) -> i64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("palaver_connections "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .expect("palaver_connections is exposed") as i64
}

/// Waits until the node at `base` holds no connection (a closed one is unregistered
/// only after its presence change is published).
async fn no_connections_left(base: &str) {
    let deadline = tokio::time::Instant::now() + ANNOUNCED;
    while connections(base).await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{base} kept a connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `viewer`'s view of `user_id`'s presence, over REST.
async fn presence_rest(viewer: &Client, user_id: &str) -> serde_json::Value {
    let (status, body) = viewer
        .raw("GET", &format!("/api/v1/users/{user_id}/presence"), None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// Alice connects on node 0: Bob, on node 1, sees her online. A second socket of hers on
/// node 2, then the first one closing, changes nothing; the last one closing announces
/// her offline, with the time, once.
#[tokio::test]
async fn only_the_first_and_the_last_connection_in_the_cluster_are_announced() {
    let cluster = Cluster::start(3).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let room = alice
        .create_room(&unique_name("presence"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let first = alice.connect().await.unwrap();
    let online = presence_of(&mut bob_ws, &uid(&alice)).await;
    assert_eq!(online["status"], "online");
    let seen = presence_rest(&cluster.at(&bob, 2), &uid(&alice)).await;
    assert_eq!(seen["status"], "online", "node 2 knows too: {seen}");

    let second = cluster.at(&alice, 2).connect().await.unwrap();
    first.close().await.unwrap();
    no_connections_left(&cluster.nodes[0].base).await;
    // Node 0 publishes in order: whatever it announced comes before this message.
    let marker = alice.send_message(&room.id, "marker", None).await.unwrap();
    let before = events_until_message(&mut bob_ws, &marker.id).await;
    assert!(
        !before.iter().any(|e| e["type"] == "presence.updated"),
        "a second tab on another node, and one closing, announce nothing: {before:?}"
    );
    let seen = presence_rest(&cluster.at(&bob, 0), &uid(&alice)).await;
    assert_eq!(seen["status"], "online", "{seen}");

    second.close().await.unwrap();
    let offline = presence_of(&mut bob_ws, &uid(&alice)).await;
    assert_eq!(offline["status"], "offline");
    let last_seen = offline["last_seen"].as_str().expect("last_seen").to_owned();
    for node in 0..3 {
        let seen = presence_rest(&cluster.at(&bob, node), &uid(&alice)).await;
        assert_eq!(seen["status"], "offline", "node {node}: {seen}");
        assert_eq!(seen["last_seen"], last_seen.as_str(), "node {node}: {seen}");
    }
    let marker = cluster
        .at(&alice, 2)
        .send_message(&room.id, "marker 2", None)
        .await
        .unwrap();
    let after = events_until_message(&mut bob_ws, &marker.id).await;
    assert!(
        !after.iter().any(|e| e["type"] == "presence.updated"),
        "announced once: {after:?}"
    );
}

/// Two nodes as processes, leases of 3 s renewed every second. Alice is connected to the
/// node that is killed with SIGKILL (no close frames, no goodbye to Redis): Bob, on the
/// other, is told she went offline once her lease expires, and her last seen time is
/// stored.
#[tokio::test]
async fn a_killed_nodes_users_are_announced_offline_by_a_survivor() {
    let redis = PrivateRedis::start().await;
    let database = scratch_postgres_database();
    let mut nodes = spawn_process_nodes(
        2,
        &database.url,
        &redis.url(),
        &[
            ("PALAVER_PRESENCE__LEASE_REFRESH_SECS", "1".to_owned()),
            ("PALAVER_PRESENCE__LEASE_TTL_SECS", "3".to_owned()),
        ],
    );
    let mut users = Vec::new();
    for name in ["alice", "bob"] {
        let mut client = Client::new(nodes[0].base.clone());
        let name = unique_name(name);
        client
            .register(&name, &format!("{name}@example.com"), "vivid-otter-42")
            .await
            .expect("register");
        users.push(client);
    }
    let (alice, bob) = (&users[0], &users[1]);
    let room = alice
        .create_room(&unique_name("presence"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut on_node_1 = Client::new(nodes[1].base.clone());
    on_node_1.token = alice.token.clone();
    on_node_1.user = alice.user.clone();
    let mut alice_ws = on_node_1.connect().await.unwrap();
    let online = presence_of(&mut bob_ws, &uid(alice)).await;
    assert_eq!(online["status"], "online");
    // Renewals keep her online meanwhile (several lease lifetimes).
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        presence_rest(bob, &uid(alice)).await["status"],
        "online",
        "renewed leases do not expire"
    );

    let mut killed = nodes.pop().unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let _ = tokio::time::timeout(ANNOUNCED, alice_ws.wait_close()).await;
    let offline = presence_of(&mut bob_ws, &uid(alice)).await;
    assert_eq!(offline["status"], "offline");
    let last_seen = offline["last_seen"].as_str().expect("last_seen").to_owned();
    let seen = presence_rest(bob, &uid(alice)).await;
    assert_eq!(seen["status"], "offline", "{seen}");
    assert_eq!(seen["last_seen"], last_seen.as_str(), "{seen}");

    // Stored: after Redis loses everything, the database still knows.
    use sqlx::Connection as _;
    let mut db = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let stored: Option<String> = sqlx::query_scalar("SELECT last_seen_at FROM users WHERE id = $1")
        .bind(uid(alice))
        .fetch_one(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();
    assert_eq!(stored.as_deref(), Some(last_seen.as_str()));
}

/// The last seen time is in the database: after a restart, the presence of a user who
/// left before it, and of one still connected when the server stopped, says when.
#[tokio::test]
async fn last_seen_survives_a_restart() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = alice
        .create_room("seen", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    carol.join_room(&room.id).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let bob_ws = bob.connect().await.unwrap();
    assert_eq!(
        presence_of(&mut alice_ws, &uid(&bob)).await["status"],
        "online"
    );
    bob_ws.close().await.unwrap();
    let offline = presence_of(&mut alice_ws, &uid(&bob)).await;
    let bob_seen = offline["last_seen"].as_str().expect("last_seen").to_owned();
    let mut carol_ws = carol.connect().await.unwrap();
    assert_eq!(
        presence_of(&mut alice_ws, &uid(&carol)).await["status"],
        "online"
    );
    assert!(
        presence_rest(&alice, &uid(&carol)).await["last_seen"].is_null(),
        "carol was never seen leaving"
    );

    // Carol is still connected when the server stops.
    let data_dir = {
        let stopping = tokio::spawn(server.stop());
        carol_ws.wait_close().await.unwrap();
        stopping.await.unwrap()
    };
    let server = TestServer::spawn_with(data_dir, |_| {}).await;
    let alice = {
        let mut moved = server.client();
        moved.token = alice.token.clone();
        moved.user = alice.user.clone();
        moved
    };
    let seen = presence_rest(&alice, &uid(&bob)).await;
    assert_eq!(seen["status"], "offline", "{seen}");
    assert_eq!(seen["last_seen"], bob_seen.as_str(), "{seen}");
    let seen = presence_rest(&alice, &uid(&carol)).await;
    assert_eq!(seen["status"], "offline", "{seen}");
    let carol_seen = seen["last_seen"].as_str().expect("stored at shutdown");
    assert!(
        carol_seen > bob_seen.as_str(),
        "{carol_seen} after {bob_seen}"
    );

    // Back online, the announcement carries the stored time too.
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob2 = server.client();
    bob2.token = bob.token.clone();
    bob2.user = bob.user.clone();
    let _bob_ws = bob2.connect().await.unwrap();
    let online = presence_of(&mut alice_ws, &uid(&bob)).await;
    assert_eq!(online["status"], "online");
    assert_eq!(online["last_seen"], bob_seen.as_str());
}
