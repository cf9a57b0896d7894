//! `redis_url`: rate limits shared by the nodes using one Redis, and `/readyz`'s `redis`.
//! Each test runs its own `redis-server` ([`PrivateRedis`]), so the per-IP keys of
//! 127.0.0.1 are not shared with other tests.

use std::time::Duration;

use palaver_server::config::{Config, Rule, Secret};
use serde_json::{json, Value};

use crate::helpers::{PrivateRedis, TestServer};

/// A server on `redis` allowing `failures` failed logins per IP per 15 minutes.
async fn node(redis: &PrivateRedis, failures: u32) -> TestServer {
    let url = redis.url();
    TestServer::spawn_with(tempfile::tempdir().unwrap(), move |c: &mut Config| {
        c.redis_url = Some(Secret::new(url));
        c.rate_limits.login_failures_per_ip = Rule {
            max: failures,
            window_secs: 900,
        };
    })
    .await
}

/// A failed login on `server` (no such account): its status.
async fn wrong_login(server: &TestServer) -> (u16, Value) {
    let body = json!({"login": "nobody", "password": "not-the-password"});
    server
        .client()
        .raw(
            "POST",
            "/api/v1/auth/login",
            Some(serde_json::to_vec(&body).unwrap()),
        )
        .await
        .unwrap()
}

async fn readyz(server: &TestServer) -> (u16, Value) {
    server.client().raw("GET", "/readyz", None).await.unwrap()
}

#[tokio::test]
async fn two_servers_on_one_redis_share_the_login_limit() {
    let redis = PrivateRedis::start().await;
    let a = node(&redis, 4).await;
    let b = node(&redis, 4).await;
    for (i, server) in [&a, &b, &a, &b].into_iter().enumerate() {
        let (status, body) = wrong_login(server).await;
        assert_eq!(status, 401, "failure {i}: {body}");
    }
    // Four failures in all, two on each: both servers now refuse.
    for server in [&a, &b] {
        let (status, body) = wrong_login(server).await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    }
}

#[tokio::test]
async fn readyz_reports_redis_and_limits_fail_open_while_it_is_down() {
    let mut redis = PrivateRedis::start().await;
    let server = node(&redis, 1).await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["store"], "ok");
    assert_eq!(wrong_login(&server).await.0, 401);
    assert_eq!(wrong_login(&server).await.0, 429);

    redis.kill();
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["redis"], "unavailable");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["store"], "ok");
    // A dead Redis must not stop anyone: the limit allows (the password is still wrong).
    for _ in 0..3 {
        assert_eq!(wrong_login(&server).await.0, 401, "fails open");
    }
    let text = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let errors = text
        .lines()
        .find_map(|l| l.strip_prefix("palaver_ratelimit_redis_errors_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .expect("the error counter is exposed");
    assert!(errors >= 1.0, "{errors}");

    // Redis comes back (empty: it keeps nothing); the server reconnects by itself.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readyz(&server).await;
        if status == 200 {
            assert_eq!(body["redis"], "ok");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Limits apply again (after the backoff that followed the last failure).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = wrong_login(&server).await;
        if status == 429 {
            break;
        }
        assert_eq!(status, 401);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the limit never applied again"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readyz_has_no_redis_without_redis_url() {
    let server = TestServer::spawn().await;
    let (status, body) = readyz(&server).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ready", "store": "ok", "broker": "ok"})
    );
}
