//! Presence and typing reach exactly the users who share a room, and no one else.

use std::time::Duration;

use palaver_protocol::Visibility;
use serde_json::json;

use crate::helpers::TestServer;

const QUIET: Duration = Duration::from_millis(300);

fn uid(c: &palaver_client::Client) -> String {
    c.user.as_ref().unwrap().id.clone()
}

/// Frames of `kind` about `user_id` among what arrives within `QUIET`.
async fn presence_frames(ws: &mut palaver_client::Socket, user_id: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    while let Some(f) = ws.try_next_event(QUIET).await.unwrap() {
        if f["type"] == "presence.updated" && f["data"]["user_id"] == user_id {
            out.push(f);
        }
    }
    out
}

#[tokio::test]
async fn presence_is_announced_once_to_room_mates_only() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Private, None)
        .await
        .unwrap();
    let inv = alice.invite(&room.id, &uid(&bob)).await.unwrap();
    bob.accept_invitation(&inv.id).await.unwrap();

    let mut alice_ws = alice.connect().await.unwrap();
    let mut eve_ws = eve.connect().await.unwrap();

    let tab1 = bob.connect().await.unwrap();
    let online = presence_frames(&mut alice_ws, &uid(&bob)).await;
    assert_eq!(online.len(), 1, "{online:?}");
    assert_eq!(online[0]["data"]["status"], "online");
    let tab2 = bob.connect().await.unwrap();
    assert!(
        presence_frames(&mut alice_ws, &uid(&bob)).await.is_empty(),
        "second tab: nothing"
    );

    tab1.close().await.unwrap();
    assert!(
        presence_frames(&mut alice_ws, &uid(&bob)).await.is_empty(),
        "one tab left"
    );
    tab2.close().await.unwrap();
    let offline = presence_frames(&mut alice_ws, &uid(&bob)).await;
    assert_eq!(offline.len(), 1, "{offline:?}");
    assert_eq!(offline[0]["data"]["status"], "offline");
    assert!(offline[0]["data"]["last_seen"].is_string());

    assert!(
        presence_frames(&mut eve_ws, &uid(&bob)).await.is_empty(),
        "eve shares no room with bob"
    );
}

#[tokio::test]
async fn status_dnd_and_invisible_and_the_rest_endpoint() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    presence_frames(&mut alice_ws, &uid(&bob)).await;

    let me = bob_ws
        .request(
            "presence.set",
            json!({"status": "dnd", "status_text": "deep work"}),
        )
        .await
        .unwrap();
    assert_eq!(me["status"], "dnd");
    let seen = presence_frames(&mut alice_ws, &uid(&bob)).await;
    assert_eq!(seen.last().unwrap()["data"]["status"], "dnd");
    assert_eq!(seen.last().unwrap()["data"]["status_text"], "deep work");

    bob_ws
        .request("presence.set", json!({"status": "invisible"}))
        .await
        .unwrap();
    let seen = presence_frames(&mut alice_ws, &uid(&bob)).await;
    assert_eq!(
        seen.last().unwrap()["data"]["status"],
        "offline",
        "invisible looks offline"
    );

    let err = bob_ws
        .request("presence.set", json!({"status": "offline"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("validation_failed"));

    let path = format!("/api/v1/users/{}/presence", uid(&bob));
    let (status, body) = alice.raw("GET", &path, None).await.unwrap();
    assert_eq!((status, body["status"].as_str()), (200, Some("offline")));
    let (status, body) = eve.raw("GET", &path, None).await.unwrap();
    assert_eq!(status, 404, "no presence for strangers: {body}");
}

#[tokio::test]
async fn typing_reaches_the_rooms_other_members_only_and_is_throttled() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut alice_tab2 = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut eve_ws = eve.connect().await.unwrap();
    let start = json!({"room_id": room.id, "active": true});
    alice_ws.request("typing", start.clone()).await.unwrap();
    // Within the throttle: not relayed again.
    alice_ws.request("typing", start).await.unwrap();
    let event = bob_ws.next_event_of("typing").await.unwrap();
    assert_eq!(event["data"]["user_id"], uid(&alice).as_str());
    assert_eq!(event["data"]["active"], true);
    assert!(event["data"]["expires_in_ms"].as_u64().unwrap() > 0);
    let stop = json!({"room_id": room.id, "active": false});
    alice_ws.request("typing", stop).await.unwrap();
    let event = bob_ws.next_event_of("typing").await.unwrap();
    assert_eq!(
        event["data"]["active"], false,
        "the second start was throttled"
    );
    // A stop ends the window: typing again at once (e.g. right after sending) is shown.
    let again = json!({"room_id": room.id, "active": true});
    alice_ws.request("typing", again).await.unwrap();
    let event = bob_ws.next_event_of("typing").await.unwrap();
    assert_eq!(
        event["data"]["active"], true,
        "a start after a stop is relayed"
    );

    for ws in [&mut alice_tab2, &mut eve_ws] {
        while let Some(f) = ws.try_next_event(QUIET).await.unwrap() {
            assert_ne!(f["type"], "typing", "{f}");
        }
    }
    let err = eve_ws
        .request("typing", json!({"room_id": room.id, "active": true}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("not_member"));
    assert!(bob_ws.try_next_event(QUIET).await.unwrap().is_none());
}
