//! Calls whose participants are connected to different nodes (one PostgreSQL, one Redis):
//! ringing, answering, the `rtc.signal` relay to exactly one participant, host handoff in
//! join order seen in one order by everyone, and membership checked on every node.

use std::time::Duration;

use palaver_client::Client;
use palaver_protocol::Visibility;
use serde_json::json;

use crate::calls::{
    accept, assert_signal, call_log, candidate, closed_call_log, description, expect_ended, ice,
    joined, log_events, of_type, offer, pids, private_room, signal_from, start, start_in, text,
    Conn, ANSWER_SDP, OFFER_SDP,
};
use crate::cluster::{machine_redis, Cluster};
use crate::conversations::{assert_rejected, uid};
use crate::helpers::{scratch_postgres_database, spawn_process_nodes, unique_name, PrivateRedis};

/// The next `count` membership events of `call_id` on `conn` (joins, leaves, host
/// changes), in the order they arrived, spelled `joined <pid>`, `left <pid> <reason>`,
/// `host <pid>`.
async fn next_membership(conn: &mut Conn, call_id: &str, count: usize) -> Vec<String> {
    let mut seen = Vec::with_capacity(count);
    for _ in 0..count {
        let event = conn
            .expect_where("a join, leave or host change", |e| {
                e["data"]["call_id"] == call_id
                    && matches!(
                        e["type"].as_str(),
                        Some(
                            "call.participant_joined"
                                | "call.participant_left"
                                | "call.host_changed"
                        )
                    )
            })
            .await;
        let data = &event["data"];
        seen.push(match event["type"].as_str() {
            Some("call.participant_joined") => {
                format!("joined {}", text(&data["participant"]["participant_id"]))
            }
            Some("call.participant_left") => format!(
                "left {} {}",
                text(&data["participant_id"]),
                text(&data["reason"])
            ),
            _ => format!("host {}", text(&data["host"])),
        });
    }
    seen
}

/// Alice on node 0 calls Bob, who has a connection on node 1 and one on node 0: both
/// ring, he answers on node 1, offer, answer and candidates cross both ways to exactly
/// the addressed connection, in order, and Alice's `call.end` reaches him.
#[tokio::test]
async fn a_one_to_one_call_across_two_nodes_rings_relays_both_ways_and_ends() {
    let cluster = Cluster::start(2).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let (alice_id, bob_id) = (uid(&alice), uid(&bob));
    let mut a = Conn::open(&alice, "alice on node 0").await;
    let mut b1 = Conn::open(&bob, "bob's laptop on node 1").await;
    let mut b2 = Conn::open(&cluster.at(&bob, 0), "bob's phone on node 0").await;

    let (call, pa) = start(&mut a, json!({"user_id": bob_id, "kind": "video"})).await;
    let call_id = text(&call["call_id"]);
    let room_id = text(&call["room_id"]);
    for b in [&mut b1, &mut b2] {
        let incoming = b.expect("call.incoming", &call_id).await;
        assert_eq!(incoming["caller"]["id"], alice_id, "{}: {incoming}", b.name);
    }

    // Bob answers on node 1: the call node 0 started is the same call there.
    let (call, pb) = accept(&mut b1, &call_id).await;
    assert_eq!(pids(&call), [pa.clone(), pb.clone()], "{call}");
    assert_eq!(call["host"], pa, "{call}");
    assert_eq!(call["state"], "active", "{call}");
    b2.expect("call.answered_elsewhere", &call_id).await;
    let joined_event = joined(&mut a, &call_id, &pb).await;
    assert_eq!(joined_event["participant"]["user_id"], bob_id);

    // Offer from node 0 to node 1, answer back, candidates both ways.
    assert_eq!(a.ok("rtc.signal", offer(&call_id, &pb)).await, json!({}));
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
    for n in 1..=5 {
        a.ok("rtc.signal", candidate(&call_id, &pb, n)).await;
        b1.ok("rtc.signal", candidate(&call_id, &pa, 10 + n)).await;
    }
    for n in 1..=5 {
        let got = signal_from(&mut b1, &call_id, &pa).await;
        assert_signal(
            &got,
            &call_id,
            &pa,
            &alice_id,
            &json!({"candidate": ice(n)}),
        );
        let got = signal_from(&mut a, &call_id, &pb).await;
        assert_signal(
            &got,
            &call_id,
            &pb,
            &bob_id,
            &json!({"candidate": ice(10 + n)}),
        );
    }
    // Bob's phone, on Alice's node but not in the call, saw none of it.
    b2.assert_none("an rtc.signal", of_type("rtc.signal")).await;

    // The host ends the call on node 0; Bob hears it on node 1.
    assert_eq!(
        a.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
    let ended = expect_ended(&mut b1, &call_id, "ended").await;
    assert!(ended["duration_secs"].is_number(), "{ended}");
    assert_rejected(
        b1.request("rtc.signal", candidate(&call_id, &pa, 99)).await,
        "not_found",
        None,
    );
    let log = closed_call_log(&bob, &room_id, &call_id, "ended", &alice_id, "video").await;
    assert_eq!(
        log_events(&log),
        ["started", "answered", "ended"],
        "{log:#?}"
    );
}

/// Three participants on nodes 0, 1 and 2: every pair exchanges signals and each one
/// reaches its addressee only; the host leaves and the next in join order takes over;
/// the host rejoins, the new host leaves and the host passes on again; everyone sees the
/// joins, leaves and host changes in one order.
#[tokio::test]
async fn a_three_party_call_on_three_nodes_relays_each_pair_and_hands_the_host_on() {
    let cluster = Cluster::start(3).await;
    let host = cluster.user(0, "host").await;
    let xavier = cluster.user(1, "xavier").await;
    let yvonne = cluster.user(2, "yvonne").await;
    let (host_id, x_id, y_id) = (uid(&host), uid(&xavier), uid(&yvonne));
    let room = private_room(&host, &[&xavier, &yvonne]).await;
    let mut h = Conn::open(&host, "host on node 0").await;
    let mut x = Conn::open(&xavier, "xavier on node 1").await;
    let mut y = Conn::open(&yvonne, "yvonne on node 2").await;

    let (call, ph) = start_in(&mut h, &room.id, "audio").await;
    let call_id = text(&call["call_id"]);
    x.expect("call.incoming", &call_id).await;
    y.expect("call.incoming", &call_id).await;

    let (_, px) = accept(&mut x, &call_id).await;
    assert_eq!(
        next_membership(&mut h, &call_id, 1).await,
        [format!("joined {px}")]
    );
    let (call_y, py) = accept(&mut y, &call_id).await;
    assert_eq!(
        pids(&call_y),
        [ph.clone(), px.clone(), py.clone()],
        "join order: {call_y}"
    );
    for conn in [&mut h, &mut x] {
        assert_eq!(
            next_membership(conn, &call_id, 1).await,
            [format!("joined {py}")],
            "{}",
            conn.name
        );
    }

    // Every participant sends a candidate to each other one, numbered by pair.
    let ids = [
        (ph.clone(), host_id.clone()),
        (px.clone(), x_id.clone()),
        (py.clone(), y_id.clone()),
    ];
    let mut conns = [h, x, y];
    for (from, conn) in conns.iter_mut().enumerate() {
        for (to, (pid, _)) in ids.iter().enumerate() {
            if from != to {
                let n = u32::try_from(10 * from + to + 11).expect("small");
                conn.ok("rtc.signal", candidate(&call_id, pid, n)).await;
            }
        }
    }
    for (to, conn) in conns.iter_mut().enumerate() {
        for (from, (pid, user_id)) in ids.iter().enumerate() {
            if from != to {
                let n = u32::try_from(10 * from + to + 11).expect("small");
                let got = signal_from(conn, &call_id, pid).await;
                assert_signal(&got, &call_id, pid, user_id, &json!({"candidate": ice(n)}));
            }
        }
        // Nothing addressed to another participant reached this one.
        conn.assert_none("a signal for someone else", of_type("rtc.signal"))
            .await;
    }
    let [mut h, mut x, mut y] = conns;

    // The host (node 0) leaves: Xavier, next in join order, becomes host.
    h.ok("call.leave", json!({"call_id": call_id})).await;
    for conn in [&mut x, &mut y] {
        assert_eq!(
            next_membership(conn, &call_id, 2).await,
            [format!("left {ph} left"), format!("host {px}")],
            "{}",
            conn.name
        );
    }

    // The former host rejoins, last in join order.
    let (call_h, ph2) = accept(&mut h, &call_id).await;
    assert_eq!(pids(&call_h), [px.clone(), py.clone(), ph2.clone()]);
    assert_eq!(call_h["host"], px, "{call_h}");
    for conn in [&mut x, &mut y] {
        assert_eq!(
            next_membership(conn, &call_id, 1).await,
            [format!("joined {ph2}")],
            "{}",
            conn.name
        );
    }

    // The new host (node 1) leaves: Yvonne, who joined before the rejoin, takes over.
    x.ok("call.leave", json!({"call_id": call_id})).await;
    for conn in [&mut y, &mut h] {
        assert_eq!(
            next_membership(conn, &call_id, 2).await,
            [format!("left {px} left"), format!("host {py}")],
            "{}",
            conn.name
        );
    }
    assert_eq!(
        y.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
    expect_ended(&mut h, &call_id, "ended").await;
    x.assert_none("an event of the call it left", |e| {
        e["data"]["call_id"] == call_id.as_str()
            && e["type"] != "call.incoming"
            && e["type"] != "message.created"
    })
    .await;

    let log = closed_call_log(&host, &room.id, &call_id, "ended", &host_id, "audio").await;
    assert_eq!(
        log_events(&log),
        ["started", "answered", "ended"],
        "{log:#?}"
    );
}

/// An outsider on node 1 cannot start, join, decline, leave, end or signal into a call
/// held up on node 0; a member kicked on node 0 leaves the call at once on node 1 and is
/// refused after.
#[tokio::test]
async fn call_requests_from_non_members_are_refused_across_nodes() {
    let cluster = Cluster::start(2).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let olga = cluster.user(1, "olga").await;
    let bob_id = uid(&bob);
    let room = alice
        .create_room(&unique_name("calls"), Visibility::Private, None)
        .await
        .expect("create room");
    crate::conversations::add_member(&alice, &room.id, &bob).await;
    let mut a = Conn::open(&alice, "alice on node 0").await;
    let mut b = Conn::open(&bob, "bob on node 1").await;
    let mut o = Conn::open(&olga, "olga (outsider) on node 1").await;

    let (call, pa) = start_in(&mut a, &room.id, "video").await;
    let call_id = text(&call["call_id"]);
    let (_, pb) = accept(&mut b, &call_id).await;
    joined(&mut a, &call_id, &pb).await;

    assert_rejected(
        o.request("call.start", json!({"room_id": room.id, "kind": "audio"}))
            .await,
        "not_member",
        None,
    );
    for kind in ["call.accept", "call.decline", "call.leave", "call.end"] {
        assert_rejected(
            o.request(kind, json!({"call_id": call_id})).await,
            "not_found",
            None,
        );
    }
    assert_rejected(
        o.request("rtc.signal", candidate(&call_id, &pa, 1)).await,
        "not_found",
        None,
    );
    a.assert_none("anything from the outsider", |e| {
        e["type"] == "rtc.signal" || e["type"] == "call.participant_joined"
    })
    .await;

    // Alice (node 0) kicks Bob: his connection on node 1 leaves the call at once.
    alice.kick(&room.id, &bob_id).await.expect("kick bob");
    expect_ended(&mut b, &call_id, "removed").await;
    assert_eq!(
        next_membership(&mut a, &call_id, 1).await,
        [format!("left {pb} removed")]
    );
    assert_rejected(
        b.request("rtc.signal", candidate(&call_id, &pa, 2)).await,
        "not_found",
        None,
    );
    assert_rejected(
        b.request("call.accept", json!({"call_id": call_id})).await,
        "not_found",
        None,
    );
    // The call goes on for Alice, who can still end it.
    assert_eq!(
        a.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
}

/// Nobody answers: the ring deadline passes with the caller on node 0 and the callee on
/// node 1, both nodes sweep it, and it times out exactly once (one `missed` entry).
#[tokio::test]
async fn ringing_across_nodes_times_out_once() {
    let cluster = Cluster::start_on_with(2, &machine_redis(), |config| {
        config.rtc.ring_timeout_secs = 1;
    })
    .await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let alice_id = uid(&alice);
    let mut a = Conn::open(&alice, "alice on node 0").await;
    let mut b = Conn::open(&bob, "bob on node 1").await;
    let (call, _) = start(&mut a, json!({"user_id": uid(&bob), "kind": "audio"})).await;
    let call_id = text(&call["call_id"]);
    let room_id = text(&call["room_id"]);
    b.expect("call.incoming", &call_id).await;

    b.expect("call.missed", &call_id).await;
    expect_ended(&mut a, &call_id, "missed").await;
    let log = closed_call_log(&alice, &room_id, &call_id, "missed", &alice_id, "audio").await;
    assert_eq!(log_events(&log), ["started", "missed"], "{log:#?}");
    // A second timeout, from the other node, would have come by now.
    b.settle().await;
    let log = call_log(&alice, &room_id, &call_id).await;
    assert_eq!(log_events(&log), ["started", "missed"], "once: {log:#?}");
    b.assert_none("a second call.missed", |e| {
        e["type"] == "call.missed" && e["data"]["call_id"] == call_id.as_str()
    })
    .await;
}

/// A node shutting down closes its sockets: its participant leaves the call
/// (`disconnected`) and the host passes to the participant on the node that stays.
#[tokio::test]
async fn a_node_shutting_down_takes_its_participants_out_of_their_calls() {
    let mut cluster = Cluster::start(2).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let bob_id = uid(&bob);
    let mut a = Conn::open(&alice, "alice on node 0").await;
    let mut b = Conn::open(&bob, "bob on node 1").await;
    let (call, pa) = start(&mut a, json!({"user_id": bob_id, "kind": "video"})).await;
    let call_id = text(&call["call_id"]);
    b.expect("call.incoming", &call_id).await;
    let (_, pb) = accept(&mut b, &call_id).await;
    joined(&mut a, &call_id, &pb).await;
    // Bob takes over as host once Alice leaves; then his node goes away.
    a.ok("call.leave", json!({"call_id": call_id})).await;
    assert_eq!(
        next_membership(&mut b, &call_id, 2).await,
        [format!("left {pa} left"), format!("host {pb}")]
    );
    let (_, pa2) = accept(&mut a, &call_id).await;
    assert_eq!(
        next_membership(&mut b, &call_id, 1).await,
        [format!("joined {pa2}")]
    );

    let node_1 = cluster.nodes.remove(1);
    node_1.stop().await;
    assert_eq!(
        next_membership(&mut a, &call_id, 2).await,
        [format!("left {pb} disconnected"), format!("host {pa2}")]
    );
    assert_eq!(
        a.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
}

/// A node killed with SIGKILL (no close frames, no leave) while its user is in a call
/// with a user on another node: once the dead node's heartbeat is older than the lease
/// (15 s), the surviving node takes its participant out of the call (`disconnected`),
/// and the call goes on.
#[tokio::test]
async fn a_killed_nodes_participant_leaves_its_call_after_the_lease() {
    let redis = PrivateRedis::start().await;
    let database = scratch_postgres_database();
    let mut nodes = spawn_process_nodes(2, &database.url, &redis.url(), &[]);
    let mut users = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut client = Client::new(node.base.clone());
        let name = unique_name(&format!("caller{n}"));
        client
            .register(&name, &format!("{name}@example.com"), "vivid-otter-42")
            .await
            .expect("register");
        users.push(client);
    }
    let mut a = Conn::open(&users[0], "alice on node 0").await;
    let mut b = Conn::open(&users[1], "bob on node 1").await;
    let (call, _) = start(&mut a, json!({"user_id": uid(&users[1]), "kind": "audio"})).await;
    let call_id = text(&call["call_id"]);
    b.expect("call.incoming", &call_id).await;
    let (_, pb) = accept(&mut b, &call_id).await;
    joined(&mut a, &call_id, &pb).await;

    let mut killed = nodes.remove(1);
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let left = a
        .expect_within(Duration::from_secs(60), "bob's participant_left", |e| {
            e["type"] == "call.participant_left" && e["data"]["call_id"] == call_id.as_str()
        })
        .await;
    assert_eq!(left["data"]["participant_id"], pb, "{left}");
    assert_eq!(left["data"]["reason"], "disconnected", "{left}");
    // Alice is alone in the call, still its host; she can signal no one and end it.
    assert_rejected(
        a.request("rtc.signal", candidate(&call_id, &pb, 1)).await,
        "not_found",
        Some("to"),
    );
    assert_eq!(
        a.ok("call.end", json!({"call_id": call_id})).await,
        json!({})
    );
}
