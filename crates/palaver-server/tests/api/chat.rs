//! The main job: people meet in a room and chat live.

use std::time::Duration;

use palaver_protocol::Visibility;
use serde_json::json;

use crate::helpers::TestServer;

#[tokio::test]
async fn two_users_chat_live_and_see_messages_in_seq_order() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("general", Visibility::Public, Some("chit-chat"))
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();

    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    assert_eq!(bob_ws.ready["rooms"][0]["id"], room.id.as_str());
    assert_eq!(
        bob_ws.ready["user"]["username"],
        bob.user.as_ref().unwrap().username.as_str()
    );

    let mut sent = Vec::new();
    for i in 0..5 {
        let (socket, text) = if i % 2 == 0 {
            (&mut alice_ws, format!("alice says {i}"))
        } else {
            (&mut bob_ws, format!("bob says {i}"))
        };
        let m = socket.send_message(&room.id, &text, None).await.unwrap();
        assert_eq!(m.seq, i + 1, "seq starts at 1 and has no gaps");
        assert_eq!(m.content, text);
        sent.push(m);
    }

    for socket in [&mut alice_ws, &mut bob_ws] {
        for expected in &sent {
            let ev = socket.next_event_of("message.created").await.unwrap();
            assert_eq!(ev["data"]["seq"], expected.seq);
            assert_eq!(ev["data"]["id"], expected.id.as_str());
            assert_eq!(ev["data"]["content"], expected.content.as_str());
            assert_eq!(ev["data"]["sender"]["id"], expected.sender.id.as_str());
        }
    }
}

#[tokio::test]
async fn message_shape_has_uuid_v7_id_and_rfc3339_time() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let m = alice
        .send_message(&room.id, "hello", Some("c-1"))
        .await
        .unwrap();
    assert_eq!(m.room_id, room.id);
    assert_eq!(m.seq, 1);
    assert_eq!(m.client_id.as_deref(), Some("c-1"));
    assert_eq!(m.sender.username, alice.user.as_ref().unwrap().username);
    let id = m.id.as_bytes();
    assert_eq!(m.id.len(), 36);
    assert_eq!(id[14], b'7', "UUID version 7: {}", m.id);
    assert!(
        m.created_at.ends_with('Z') && m.created_at.contains('T'),
        "{}",
        m.created_at
    );
}

#[tokio::test]
async fn rest_send_is_delivered_live_to_every_connection_of_every_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut alice_phone = alice.connect().await.unwrap();
    let mut alice_laptop = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let m = alice
        .send_message(&room.id, "over REST", None)
        .await
        .unwrap();
    for socket in [&mut alice_phone, &mut alice_laptop, &mut bob_ws] {
        let ev = socket.next_event_of("message.created").await.unwrap();
        assert_eq!(ev["data"]["id"], m.id.as_str());
    }
}

#[tokio::test]
async fn sender_other_connections_receive_websocket_sends() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Private, None)
        .await
        .unwrap();
    let mut tab1 = alice.connect().await.unwrap();
    let mut tab2 = alice.connect().await.unwrap();
    let m = tab1
        .send_message(&room.id, "from tab 1", None)
        .await
        .unwrap();
    let ev = tab2.next_event_of("message.created").await.unwrap();
    assert_eq!(ev["data"]["id"], m.id.as_str());
}

#[tokio::test]
async fn non_members_receive_nothing_from_a_room() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice
        .create_room("secret", Visibility::Private, None)
        .await
        .unwrap();
    let mut eve_ws = eve.connect().await.unwrap();
    alice
        .send_message(&room.id, "not for eve", None)
        .await
        .unwrap();
    let got = eve_ws
        .try_next_event(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(got.is_none(), "eve received {got:?}");
}

#[tokio::test]
async fn joining_starts_live_delivery_on_open_connections() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("lobby", Visibility::Public, None)
        .await
        .unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    assert_eq!(bob_ws.ready["rooms"], json!([]));

    bob.join_room(&room.id).await.unwrap();
    let joined = bob_ws.next_event_of("member.joined").await.unwrap();
    assert_eq!(joined["data"]["room_id"], room.id.as_str());

    alice
        .send_message(&room.id, "welcome bob", None)
        .await
        .unwrap();
    let ev = bob_ws.next_event_of("message.created").await.unwrap();
    assert_eq!(ev["data"]["content"], "welcome bob");
}

#[tokio::test]
async fn retried_client_id_stores_one_message() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    let mut ws = alice.connect().await.unwrap();

    let first = ws
        .send_message(&room.id, "once", Some("retry-me"))
        .await
        .unwrap();
    let again_ws = ws
        .send_message(&room.id, "once", Some("retry-me"))
        .await
        .unwrap();
    let again_rest = alice
        .send_message(&room.id, "once", Some("retry-me"))
        .await
        .unwrap();
    assert_eq!(first, again_ws);
    assert_eq!(first, again_rest);

    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].id, first.id);

    // The retry is not delivered a second time.
    let ev = ws.next_event_of("message.created").await.unwrap();
    assert_eq!(ev["data"]["id"], first.id.as_str());
    assert!(ws
        .try_next_event(Duration::from_millis(300))
        .await
        .unwrap()
        .is_none());

    // Another sender may use the same client_id: it is scoped per sender.
    let bob = server.user("bob").await;
    bob.join_room(&room.id).await.unwrap();
    let bobs = bob
        .send_message(&room.id, "mine", Some("retry-me"))
        .await
        .unwrap();
    assert_ne!(bobs.id, first.id);
    assert_eq!(bobs.seq, 2);
}

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    for i in 1..=7 {
        alice
            .send_message(&room.id, &format!("m{i}"), None)
            .await
            .unwrap();
    }
    let seqs = |p: &palaver_protocol::rest::MessagePage| {
        p.messages.iter().map(|m| m.seq).collect::<Vec<_>>()
    };

    let latest = alice.history(&room.id, None, None, Some(3)).await.unwrap();
    assert_eq!((seqs(&latest), latest.has_more), (vec![5, 6, 7], true));
    let older = alice
        .history(&room.id, Some(5), None, Some(3))
        .await
        .unwrap();
    assert_eq!((seqs(&older), older.has_more), (vec![2, 3, 4], true));
    let oldest = alice
        .history(&room.id, Some(2), None, Some(3))
        .await
        .unwrap();
    assert_eq!((seqs(&oldest), oldest.has_more), (vec![1], false));
    let newer = alice
        .history(&room.id, None, Some(4), Some(2))
        .await
        .unwrap();
    assert_eq!((seqs(&newer), newer.has_more), (vec![5, 6], true));
    let tail = alice
        .history(&room.id, None, Some(5), Some(10))
        .await
        .unwrap();
    assert_eq!((seqs(&tail), tail.has_more), (vec![6, 7], false));
    let between = alice
        .history(&room.id, Some(6), Some(2), None)
        .await
        .unwrap();
    assert_eq!(seqs(&between), vec![3, 4, 5]);
}

#[tokio::test]
async fn rooms_list_and_public_directory() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let public = alice
        .create_room("town square", Visibility::Public, None)
        .await
        .unwrap();
    let private = alice
        .create_room("back office", Visibility::Private, None)
        .await
        .unwrap();
    assert_eq!(public.member_count, 1);
    assert_eq!(public.created_by, alice.user.as_ref().unwrap().id);

    let directory = bob.public_rooms().await.unwrap();
    assert!(directory.iter().any(|r| r.id == public.id));
    assert!(
        directory.iter().all(|r| r.id != private.id),
        "private rooms are not listed"
    );

    let mine: Vec<String> = alice
        .my_rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(mine, vec![public.id.clone(), private.id.clone()]);
    assert!(bob.my_rooms().await.unwrap().is_empty());

    let joined = bob.join_room(&public.id).await.unwrap();
    assert_eq!(joined.member_count, 2);
    let again = bob.join_room(&public.id).await.unwrap();
    assert_eq!(again.member_count, 2, "joining twice is a no-op");
    assert_eq!(bob.my_rooms().await.unwrap().len(), 1);
}

#[tokio::test]
async fn login_by_username_or_email_and_profile() {
    let server = TestServer::spawn().await;
    let mut c = server.client();
    let reg = c
        .register("carol", "Carol@Example.com", "vivid-otter-42")
        .await
        .unwrap();
    assert_eq!(reg.token_type, "Bearer");
    assert_eq!(reg.expires_in, 900);
    assert!(!reg.refresh_token.is_empty());
    assert_eq!(reg.user.email, "carol@example.com");

    let mut by_name = server.client();
    by_name.login("carol", "vivid-otter-42").await.unwrap();
    let mut by_email = server.client();
    by_email
        .login("CAROL@example.com", "vivid-otter-42")
        .await
        .unwrap();
    let me = by_email.me().await.unwrap();
    assert_eq!(me.id, reg.user.id);
    assert_eq!(me.username, "carol");
}

#[tokio::test]
async fn websocket_accepts_access_token_query_parameter() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let url = format!(
        "{}?access_token={}",
        alice.ws_url(),
        alice.token.as_ref().unwrap()
    );
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let socket = palaver_client::Socket::open(url.into_client_request().unwrap())
        .await
        .unwrap();
    assert_eq!(
        socket.ready["user"]["id"],
        alice.user.as_ref().unwrap().id.as_str()
    );
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::spawn().await;
    let (status, body) = server.client().raw("GET", "/healthz", None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}
