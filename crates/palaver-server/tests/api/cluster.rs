//! Several nodes on one PostgreSQL database and one Redis (`PALAVER_TEST_REDIS_URL`,
//! default `redis://127.0.0.1:6379`): what happens on one node reaches the connections
//! on the others, and what ends a session on one node closes its sockets on all of them.

use std::time::Duration;

use palaver_client::{Client, Socket};
use palaver_protocol::ws::close_code;
use palaver_protocol::Visibility;
use palaver_server::config::Secret;

use crate::helpers::{
    scratch_postgres_database, unique_name, PrivateRedis, ScratchDatabase, TestServer,
};

/// How long an event may take to cross nodes before the test fails (generous: the
/// machine may be busy; the behaviour asserted is that it arrives).
pub(crate) const CROSS_NODE: Duration = Duration::from_secs(10);

/// Nodes sharing one database, one Redis and one JWT key.
pub(crate) struct Cluster {
    pub(crate) nodes: Vec<TestServer>,
    pub(crate) database: ScratchDatabase,
}

impl Cluster {
    /// `n` nodes on the machine's Redis (`PALAVER_TEST_REDIS_URL`).
    pub(crate) async fn start(n: usize) -> Cluster {
        Cluster::start_on(n, &machine_redis()).await
    }

    /// `n` nodes on the Redis at `redis`.
    pub(crate) async fn start_on(n: usize, redis: &str) -> Cluster {
        Cluster::start_on_with(n, redis, |_| {}).await
    }

    /// `n` nodes on the Redis at `redis`, each configured by `tweak` too.
    pub(crate) async fn start_on_with(
        n: usize,
        redis: &str,
        tweak: impl Fn(&mut palaver_server::config::Config),
    ) -> Cluster {
        let database = scratch_postgres_database();
        let mut nodes = Vec::new();
        for _ in 0..n {
            let url = database.url.clone();
            let redis = redis.to_owned();
            nodes.push(
                TestServer::spawn_with(tempfile::tempdir().unwrap(), |config| {
                    config.database_url = Some(Secret::new(url));
                    config.redis_url = Some(Secret::new(redis));
                    config.auth.jwt_secret = Some(Secret::new(String::from(
                        "a-cluster-wide-test-key-of-32-bytes-or-more",
                    )));
                    tweak(config);
                })
                .await,
            );
        }
        Cluster { nodes, database }
    }

    /// A new user, registered on node `n`.
    pub(crate) async fn user(&self, n: usize, prefix: &str) -> Client {
        self.nodes[n].user(prefix).await
    }

    /// `client`'s login, talking to node `n`.
    pub(crate) fn at(&self, client: &Client, n: usize) -> Client {
        let mut moved = self.nodes[n].client();
        moved.token = client.token.clone();
        moved.user = client.user.clone();
        moved
    }
}

/// The machine's Redis (`PALAVER_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`).
pub(crate) fn machine_redis() -> String {
    std::env::var("PALAVER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The next event of type `kind` on `socket`, failing after [`CROSS_NODE`].
pub(crate) async fn event_of(socket: &mut Socket, kind: &str) -> serde_json::Value {
    tokio::time::timeout(CROSS_NODE, socket.next_event_of(kind))
        .await
        .unwrap_or_else(|_| panic!("no {kind} within {CROSS_NODE:?}"))
        .unwrap_or_else(|e| panic!("waiting for {kind}: {e}"))
}

/// A message, its edit, a reaction and its deletion on node 0 reach members connected to
/// nodes 1 and 2, with the same seqs, and a message sent on node 2 reaches node 0.
#[tokio::test]
async fn room_changes_on_one_node_reach_members_on_the_others() {
    let cluster = Cluster::start(3).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let carol = cluster.user(2, "carol").await;
    let room = alice
        .create_room(&unique_name("cluster"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    carol.join_room(&room.id).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    let sent = alice
        .send_message(&room.id, "hello from node 0", None)
        .await
        .unwrap();
    for ws in [&mut bob_ws, &mut carol_ws] {
        let event = event_of(ws, "message.created").await;
        assert_eq!(event["data"]["id"], sent.id.as_str());
        assert_eq!(event["data"]["seq"], sent.seq);
        assert_eq!(event["data"]["content"], "hello from node 0");
    }
    alice
        .edit_message(&room.id, &sent.id, "edited on node 0")
        .await
        .unwrap();
    alice.react(&room.id, &sent.id, "👍").await.unwrap();
    alice.delete_message(&room.id, &sent.id).await.unwrap();
    for ws in [&mut bob_ws, &mut carol_ws] {
        let edited = event_of(ws, "message.updated").await;
        assert_eq!(edited["data"]["content"], "edited on node 0");
        event_of(ws, "reaction.added").await;
        event_of(ws, "message.deleted").await;
    }

    let reply = carol
        .send_message(&room.id, "hello from node 2", None)
        .await
        .unwrap();
    // Alice's socket saw her own message first; the reply from node 2 comes after it.
    let own = event_of(&mut alice_ws, "message.created").await;
    assert_eq!(own["data"]["id"], sent.id.as_str());
    let event = event_of(&mut alice_ws, "message.created").await;
    assert_eq!(event["data"]["id"], reply.id.as_str());
    assert!(reply.seq > sent.seq);
}

/// Joining on node 0 adds the user's socket on node 1 to the room (it gets the room's
/// next message), and a kick on node 0 takes it out again (it gets nothing after).
#[tokio::test]
async fn a_join_and_a_kick_on_one_node_reach_the_users_socket_on_another() {
    let cluster = Cluster::start(2).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let room = alice
        .create_room(&unique_name("cluster"), Visibility::Public, None)
        .await
        .unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    cluster.at(&bob, 0).join_room(&room.id).await.unwrap();
    let joined = event_of(&mut bob_ws, "member.joined").await;
    assert_eq!(joined["data"]["room_id"], room.id.as_str());
    let first = alice.send_message(&room.id, "welcome", None).await.unwrap();
    let event = event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["id"], first.id.as_str());

    alice
        .kick(&room.id, &bob.user.as_ref().unwrap().id)
        .await
        .unwrap();
    event_of(&mut bob_ws, "member.left").await;
    let after = alice
        .send_message(&room.id, "bob is gone", None)
        .await
        .unwrap();
    // Alice's own socket on node 0 is the witness that the message went out.
    let mut alice_ws = alice.connect().await.unwrap();
    let marker = alice.send_message(&room.id, "marker", None).await.unwrap();
    let seen = event_of(&mut alice_ws, "message.created").await;
    assert_eq!(seen["data"]["id"], marker.id.as_str());
    let late = bob_ws.drain(Duration::from_millis(500), 100).await.unwrap();
    assert!(
        !late.iter().any(|e| e["type"] == "message.created"
            && (e["data"]["id"] == after.id.as_str() || e["data"]["id"] == marker.id.as_str())),
        "a kicked user's socket on another node still got the room's messages: {late:?}"
    );
}

/// Logging out on node 0 closes the session's socket on node 1 with 4001.
#[tokio::test]
async fn a_logout_on_one_node_closes_the_sessions_sockets_on_another() {
    let cluster = Cluster::start(2).await;
    let bob = cluster.user(0, "bob").await;
    let mut on_node_1 = cluster.at(&bob, 1).connect().await.unwrap();
    bob.logout().await.unwrap();
    let frame = tokio::time::timeout(CROSS_NODE, on_node_1.wait_close())
        .await
        .expect("the socket on node 1 closes")
        .expect("the server closes the WebSocket in time")
        .expect("the server sends a close frame");
    assert_eq!(u16::from(frame.code), close_code::SESSION_ENDED);
}

/// Waits until every node's `/readyz` is 200 (its broker subscribed again).
pub(crate) async fn all_ready(cluster: &Cluster) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for node in &cluster.nodes {
        loop {
            let (status, body) = node.client().raw("GET", "/readyz", None).await.unwrap();
            if status == 200 {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not ready: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Redis restarted: each node reports its broker unavailable meanwhile, subscribes again
/// by itself, and messages cross nodes again afterwards. (What was published while Redis
/// was down is replayed from the database: `cluster_resilience.rs`.)
#[tokio::test]
async fn after_a_redis_restart_the_nodes_subscribe_again_and_messages_cross_again() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_on(2, &redis.url()).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let room = alice
        .create_room(&unique_name("cluster"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let before = alice.send_message(&room.id, "before", None).await.unwrap();
    let event = event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["id"], before.id.as_str());

    redis.kill();
    let (status, body) = cluster.nodes[1]
        .client()
        .raw("GET", "/readyz", None)
        .await
        .unwrap();
    assert_eq!(status, 503, "{body}");
    redis.restart().await;
    all_ready(&cluster).await;

    let after = alice.send_message(&room.id, "after", None).await.unwrap();
    let event = event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["id"], after.id.as_str());
    assert!(after.seq > before.seq);
}

/// Typing on node 1 and a read marker moved on node 1 reach a socket on node 0, and a ban
/// on node 0 takes the user's socket on node 1 out of the room.
#[tokio::test]
async fn typing_read_markers_and_a_ban_cross_nodes() {
    let cluster = Cluster::start(2).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let room = alice
        .create_room(&unique_name("cluster"), Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    bob_ws
        .request(
            "typing",
            serde_json::json!({"room_id": room.id, "active": true}),
        )
        .await
        .unwrap();
    let typing = event_of(&mut alice_ws, "typing").await;
    assert_eq!(typing["data"]["room_id"], room.id.as_str());

    let sent = alice.send_message(&room.id, "read me", None).await.unwrap();
    event_of(&mut bob_ws, "message.created").await;
    bob.mark_read(&room.id, sent.seq).await.unwrap();
    let receipt = event_of(&mut alice_ws, "receipt.updated").await;
    assert_eq!(receipt["data"]["seq"], sent.seq, "{receipt}");

    alice
        .ban(&room.id, &bob.user.as_ref().unwrap().id)
        .await
        .unwrap();
    let left = event_of(&mut bob_ws, "member.left").await;
    assert_eq!(left["data"]["room_id"], room.id.as_str());
}

/// A password change on node 0 ends the account's other sessions: their socket on node 1
/// closes with 4001.
#[tokio::test]
async fn a_password_change_on_one_node_closes_the_other_sessions_sockets_on_another() {
    let cluster = Cluster::start(2).await;
    let bob = cluster.user(0, "bob").await;
    let name = bob.user.as_ref().unwrap().username.clone();
    let mut elsewhere = cluster.nodes[1].client();
    elsewhere.login(&name, "vivid-otter-42").await.unwrap();
    let mut on_node_1 = elsewhere.connect().await.unwrap();
    bob.change_password("vivid-otter-42", "quartz-lemur-58")
        .await
        .unwrap();
    let frame = tokio::time::timeout(CROSS_NODE, on_node_1.wait_close())
        .await
        .expect("the socket on node 1 closes")
        .expect("the server closes the WebSocket in time")
        .expect("the server sends a close frame");
    assert_eq!(u16::from(frame.code), close_code::SESSION_ENDED);
}
