//! Resume: a client that reconnects (or syncs) with the last seq it saw gets every change
//! since, in seq order, then live events, with no gap and no duplicate.

use std::time::Duration;

use palaver_protocol::Visibility;
use serde_json::{json, Value};

use crate::helpers::TestServer;

/// Drains frames until `quiet` passes without one; returns them in arrival order.
async fn drain(socket: &mut palaver_client::Socket, quiet: Duration) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(frame) = socket.try_next_event(quiet).await.unwrap() {
        out.push(frame);
    }
    out
}

/// The top-level seqs of the change frames of `room_id`.
fn seqs(frames: &[Value], room_id: &str) -> Vec<i64> {
    frames
        .iter()
        .filter(|f| f["data"]["room_id"] == room_id && f.get("seq").is_some())
        .map(|f| f["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn reconnecting_with_since_replays_every_change_in_seq_order_then_goes_live() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();

    let m1 = bob.send_message(&room.id, "one", None).await.unwrap();
    let m2 = bob.send_message(&room.id, "two", None).await.unwrap();
    let m3 = bob.send_message(&room.id, "three", None).await.unwrap();
    let seen = m3.seq; // alice saw up to here, then went offline

    // While alice is away: two new messages, an edit, a reaction and a deletion.
    let m4 = bob.send_message(&room.id, "four", None).await.unwrap();
    bob.edit_message(&room.id, &m1.id, "one (edited)")
        .await
        .unwrap();
    alice.react(&room.id, &m2.id, "👍").await.unwrap();
    bob.delete_message(&room.id, &m3.id).await.unwrap();
    let m5 = bob.send_message(&room.id, "five", None).await.unwrap();

    let mut ws = alice
        .connect_resuming(&[(&room.id, Some(seen))])
        .await
        .unwrap();
    let replay = drain(&mut ws, Duration::from_millis(400)).await;
    let kinds: Vec<(String, String)> = replay
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["data"]["id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("message.created".into(), m4.id.clone()),
            ("message.updated".into(), m1.id.clone()),
            ("message.updated".into(), m2.id.clone()),
            ("message.deleted".into(), m3.id.clone()),
            ("message.created".into(), m5.id.clone()),
        ],
        "{replay:#?}"
    );
    let s = seqs(&replay, &room.id);
    assert!(s.windows(2).all(|w| w[0] < w[1]), "seq order: {s:?}");
    assert!(s.iter().all(|&x| x > seen));
    assert_eq!(replay[1]["data"]["content"], "one (edited)");
    assert_eq!(replay[2]["data"]["reactions"][0]["emoji"], "👍");
    assert_eq!(replay[3]["data"]["content"], "");

    // Then live, continuing after the replay.
    let m6 = bob.send_message(&room.id, "six", None).await.unwrap();
    let live = ws.next_event_of("message.created").await.unwrap();
    assert_eq!(live["data"]["id"], m6.id.as_str());
    assert_eq!(live["seq"], m6.seq);
    assert!(m6.seq > *s.last().unwrap());
}

#[tokio::test]
async fn a_sync_request_replays_and_replies_with_the_seq_reached() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Private, None)
        .await
        .unwrap();
    for i in 0..3 {
        alice
            .send_message(&room.id, &format!("m{i}"), None)
            .await
            .unwrap();
    }
    let mut ws = alice.connect().await.unwrap();
    let reply = ws
        .request("sync", json!({"rooms": {room.id.clone(): 1}}))
        .await
        .unwrap();
    assert_eq!(reply["rooms"][&room.id], 3);
    let frames = drain(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(seqs(&frames, &room.id), vec![2, 3], "{frames:#?}");
}

#[tokio::test]
async fn a_room_never_seen_starts_from_its_latest_page() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    for i in 0..60 {
        alice
            .send_message(&room.id, &format!("m{i}"), None)
            .await
            .unwrap();
    }
    let mut ws = alice.connect_resuming(&[(&room.id, None)]).await.unwrap();
    let frames = drain(&mut ws, Duration::from_millis(400)).await;
    let s = seqs(&frames, &room.id);
    assert_eq!(s, (11..=60).collect::<Vec<i64>>(), "the latest 50");
}

#[tokio::test]
async fn syncing_a_room_one_is_not_in_fails_not_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Private, None)
        .await
        .unwrap();
    alice.send_message(&room.id, "secret", None).await.unwrap();
    let mut ws = eve.connect().await.unwrap();
    let err = ws
        .request("sync", json!({"rooms": {room.id.clone(): 0}}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("not_member"));
    assert!(drain(&mut ws, Duration::from_millis(300)).await.is_empty());
}

#[tokio::test]
async fn resuming_while_others_send_loses_and_repeats_nothing() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("busy", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();

    let sender = {
        let bob = bob.clone();
        let room_id = room.id.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                bob.send_message(&room_id, &format!("n{i}"), None)
                    .await
                    .unwrap();
            }
        })
    };
    let mut seen: Vec<i64> = Vec::new();
    let mut last = 0;
    for _ in 0..20 {
        let mut ws = alice
            .connect_resuming(&[(&room.id, Some(last))])
            .await
            .unwrap();
        let frames = drain(&mut ws, Duration::from_millis(30)).await;
        for seq in seqs(&frames, &room.id) {
            seen.push(seq);
            last = seq;
        }
        ws.close().await.unwrap();
    }
    sender.await.unwrap();
    let mut ws = alice
        .connect_resuming(&[(&room.id, Some(last))])
        .await
        .unwrap();
    for seq in seqs(&drain(&mut ws, Duration::from_millis(400)).await, &room.id) {
        seen.push(seq);
    }
    assert_eq!(
        seen,
        (1..=200).collect::<Vec<i64>>(),
        "0 lost, 0 repeated, in order"
    );
}
