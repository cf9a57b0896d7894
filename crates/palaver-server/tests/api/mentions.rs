//! Mentions (issue 20, item 2) through the API: `@username` of a member notifies them
//! (a `mention` event to their connections, a per-room count until read), a name that is
//! not a member's is only text, `@room` can be limited to a room's admins, `@here` reaches
//! the members online, and an edit that adds a name notifies it.

use palaver_client::{Client, Socket};
use palaver_protocol::Visibility;
use serde_json::{json, Value};

use crate::conversations::{add_member, drain, event_where, uid};
use crate::helpers::TestServer;

/// `user`'s unread mention count in `room_id`, from their room list.
async fn mentions_in(user: &Client, room_id: &str) -> i64 {
    user.my_rooms()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == room_id)
        .expect("a member")
        .mention_count
        .expect("member views carry mention_count")
}

/// The `mention` events (and only those) that arrived on `socket` until it went quiet.
async fn mentions_received(socket: &mut Socket) -> Vec<Value> {
    drain(socket)
        .await
        .into_iter()
        .filter(|e| e["type"] == "mention")
        .collect()
}

#[tokio::test]
async fn a_member_named_is_notified_and_counts_until_read_and_others_are_only_text() {
    let server = TestServer::spawn().await;
    let alice = server.user("men_alice").await;
    let bob = server.user("men_bob").await;
    let carol = server.user("men_carol").await;
    let room = alice
        .create_room("mentions", Visibility::Private, None)
        .await
        .unwrap();
    add_member(&alice, &room.id, &bob).await;
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();
    drain(&mut bob_ws).await;
    drain(&mut carol_ws).await;
    let bob_name = bob.user.as_ref().unwrap().username.clone();
    let carol_name = carol.user.as_ref().unwrap().username.clone();

    let sent = alice
        .send_message(
            &room.id,
            &format!(
                "hi @{}, and @{carol_name}; mail x@{bob_name}",
                bob_name.to_uppercase()
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(sent.mentions.user_ids, [uid(&bob)], "carol is not a member");
    assert!(!sent.mentions.room && !sent.mentions.here);
    let event = event_where(&mut bob_ws, "mention", |_| true).await;
    assert_eq!(
        event["data"],
        json!({"room_id": room.id, "message_id": sent.id, "seq": sent.seq,
               "sender_id": uid(&alice), "kind": "user"})
    );
    assert!(
        mentions_received(&mut carol_ws).await.is_empty(),
        "carol learns nothing"
    );
    assert_eq!(mentions_in(&bob, &room.id).await, 1);
    // History keeps the mentions for highlighting.
    let page = bob.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages[0].mentions.user_ids, [uid(&bob)]);
    // Reading clears the count.
    let read = bob.mark_read(&room.id, sent.seq).await.unwrap();
    assert_eq!(read.mention_count, 0);
    assert_eq!(mentions_in(&bob, &room.id).await, 0);
    // Mentioning oneself notifies nobody.
    let alice_name = alice.user.as_ref().unwrap().username.clone();
    alice
        .send_message(&room.id, &format!("note to @{alice_name}"), None)
        .await
        .unwrap();
    assert_eq!(mentions_in(&alice, &room.id).await, 0);
}

#[tokio::test]
async fn room_mentions_can_be_limited_to_admins_and_here_reaches_those_online() {
    let server = TestServer::spawn().await;
    let alice = server.user("men_owner").await;
    let bob = server.user("men_member").await;
    let carol = server.user("men_away").await;
    let room = alice
        .create_room("announcements", Visibility::Private, None)
        .await
        .unwrap();
    add_member(&alice, &room.id, &bob).await;
    add_member(&alice, &room.id, &carol).await;
    let mut bob_ws = bob.connect().await.unwrap();
    drain(&mut bob_ws).await;

    // Anyone may use @room by default.
    let m = bob
        .send_message(&room.id, "@room standup", None)
        .await
        .unwrap();
    assert!(m.mentions.room);
    assert_eq!(mentions_in(&alice, &room.id).await, 1);
    assert_eq!(mentions_in(&carol, &room.id).await, 1);

    let (status, body) = alice
        .raw(
            "PATCH",
            &format!("/api/v1/rooms/{}", room.id),
            Some(br#"{"room_mentions":"admins"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["room_mentions"], "admins");
    let m = bob
        .send_message(&room.id, "@room again", None)
        .await
        .unwrap();
    assert!(!m.mentions.room, "only text from a member now");
    assert_eq!(mentions_in(&alice, &room.id).await, 1);
    assert_eq!(mentions_in(&carol, &room.id).await, 1);
    let m = alice
        .send_message(&room.id, "@room from the owner", None)
        .await
        .unwrap();
    assert!(m.mentions.room);
    let event = event_where(&mut bob_ws, "mention", |e| {
        e["data"]["message_id"] == m.id.as_str()
    })
    .await;
    assert_eq!(event["data"]["kind"], "room");
    assert_eq!(mentions_in(&carol, &room.id).await, 2);

    // @here: bob is connected, carol is not.
    let m = alice
        .send_message(&room.id, "@here quick one", None)
        .await
        .unwrap();
    assert!(m.mentions.here);
    let event = event_where(&mut bob_ws, "mention", |e| {
        e["data"]["message_id"] == m.id.as_str()
    })
    .await;
    assert_eq!(event["data"]["kind"], "here");
    assert_eq!(mentions_in(&carol, &room.id).await, 2, "carol is offline");

    // A bad value is refused, naming the field.
    let (status, body) = alice
        .raw(
            "PATCH",
            &format!("/api/v1/rooms/{}", room.id),
            Some(br#"{"room_mentions":"everyone"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "room_mentions");
}

#[tokio::test]
async fn an_edit_notifies_only_names_it_adds() {
    let server = TestServer::spawn().await;
    let alice = server.user("men_editor").await;
    let bob = server.user("men_edited").await;
    let room = alice
        .create_room("edits", Visibility::Private, None)
        .await
        .unwrap();
    add_member(&alice, &room.id, &bob).await;
    let mut bob_ws = bob.connect().await.unwrap();
    drain(&mut bob_ws).await;
    let bob_name = bob.user.as_ref().unwrap().username.clone();

    let m = alice.send_message(&room.id, "hello", None).await.unwrap();
    assert!(m.mentions.user_ids.is_empty());
    let edited = alice
        .edit_message(&room.id, &m.id, &format!("hello @{bob_name}"))
        .await
        .unwrap();
    assert_eq!(edited.mentions.user_ids, [uid(&bob)]);
    let event = event_where(&mut bob_ws, "mention", |_| true).await;
    assert_eq!(event["data"]["message_id"], m.id.as_str());
    assert_eq!(mentions_in(&bob, &room.id).await, 1);
    alice
        .edit_message(&room.id, &m.id, &format!("hello again @{bob_name}"))
        .await
        .unwrap();
    assert!(
        mentions_received(&mut bob_ws).await.is_empty(),
        "already mentioned"
    );
    assert_eq!(mentions_in(&bob, &room.id).await, 1);
    alice
        .edit_message(&room.id, &m.id, "hello, nobody")
        .await
        .unwrap();
    assert_eq!(mentions_in(&bob, &room.id).await, 0);
}
