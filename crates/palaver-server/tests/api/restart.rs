//! Durability: what was acknowledged survives a restart, and so do tokens.

use palaver_protocol::Visibility;

use crate::helpers::TestServer;

#[tokio::test]
async fn history_and_tokens_survive_a_restart() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("durable", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let mut sent = Vec::new();
    for i in 0..10 {
        let m = if i % 2 == 0 {
            ws.send_message(&room.id, &format!("ws {i}"), Some(&format!("c{i}")))
                .await
                .unwrap()
        } else {
            bob.send_message(&room.id, &format!("rest {i}"), None)
                .await
                .unwrap()
        };
        sent.push(m);
    }

    // The connection is told to reconnect when the server stops.
    let data_dir = {
        let stopping = tokio::spawn(server.stop());
        let close = ws.wait_close().await.unwrap().expect("a close frame");
        assert_eq!(u16::from(close.code), 1012);
        stopping.await.unwrap()
    };

    let server = TestServer::spawn_with(data_dir, |_| {}).await;
    // The old access token still works: the signing key was kept in the data directory.
    let mut alice2 = server.client();
    alice2.token = alice.token.clone();
    let page = alice2
        .history(&room.id, None, None, Some(100))
        .await
        .unwrap();
    assert_eq!(page.messages, sent);
    assert!(!page.has_more);

    // Accounts survive too, and seq continues without a gap.
    let mut bob2 = server.client();
    bob2.login(&bob.user.as_ref().unwrap().username, "vivid-otter-42")
        .await
        .unwrap();
    let next = bob2
        .send_message(&room.id, "after restart", None)
        .await
        .unwrap();
    assert_eq!(next.seq, 11);
    // A retried client_id from before the restart still deduplicates.
    let mut ws2 = alice2.connect().await.unwrap();
    let retry = ws2
        .send_message(&room.id, "ws 0", Some("c0"))
        .await
        .unwrap();
    assert_eq!(retry, sent[0]);
}
