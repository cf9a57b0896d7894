//! Heartbeat: the server pings; a client that stops answering is closed with 4002, one
//! that answers (any WebSocket library does, by replying to pings as it reads) stays.

use std::time::Duration;

use serde_json::json;

use crate::helpers::TestServer;

async fn fast_heartbeat_server() -> TestServer {
    TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.ws_ping_interval_secs = 1;
        c.limits.ws_pong_timeout_secs = 1;
    })
    .await
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_closed_with_4002() {
    let server = fast_heartbeat_server().await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let close = ws.wait_close().await.unwrap().expect("a close frame");
    assert_eq!(u16::from(close.code), 4002);
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let server = fast_heartbeat_server().await;
    let alice = server.user("alice").await;
    let mut ws = alice.connect().await.unwrap();
    // Reading lets the client library answer each ping with a pong.
    let idle = ws
        .try_next_event(Duration::from_millis(3500))
        .await
        .unwrap();
    assert!(idle.is_none(), "no event expected, got {idle:?}");
    let reply = ws
        .request("ping", json!({}))
        .await
        .expect("still connected");
    assert_eq!(reply, json!({}));
}
