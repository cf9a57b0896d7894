//! `/metrics`, `/readyz` and JSON logs.

use palaver_protocol::Visibility;

use crate::helpers::TestServer;

/// The value of the sample line starting with `name` (labels included), if any.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn metrics(server: &TestServer) -> String {
    let resp = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_connections_messages_fanout_and_rate_limits() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("r", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();
    let mut ws = bob.connect().await.unwrap();
    for i in 0..3 {
        alice
            .send_message(&room.id, &format!("m{i}"), None)
            .await
            .unwrap();
    }
    ws.next_event_of("message.created").await.unwrap();

    let text = metrics(&server).await;
    assert_eq!(sample(&text, "palaver_connections"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "palaver_sessions{transport=\"websocket\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "palaver_messages_in_total"), Some(3.0));
    assert!(sample(&text, "palaver_messages_out_total").unwrap() >= 3.0);
    assert!(sample(&text, "palaver_fanout_seconds_count").unwrap() >= 3.0);
    assert_eq!(
        sample(&text, "palaver_store_seconds_count{op=\"insert_message\"}"),
        Some(3.0)
    );

    // Six failed logins for one account from one address: the sixth is refused and
    // counted.
    let name = &bob.user.as_ref().unwrap().username;
    let mut c = server.client();
    for _ in 0..6 {
        let _ = c.login(name, "wrong-password-here").await;
    }
    let text = metrics(&server).await;
    assert!(
        sample(
            &text,
            "palaver_rate_limited_total{limit=\"login_failures_per_account\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
}

#[tokio::test]
async fn readyz_reports_store_and_broker() {
    let server = TestServer::spawn().await;
    let (status, body) = server.client().raw("GET", "/readyz", None).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"], "ok");
    assert_eq!(body["broker"], "ok");
}
