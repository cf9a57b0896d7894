//! `GET /api/v1/server`: the limits and options a client reads instead of hard-coding
//! them, public, and always the values the server enforces.

use palaver_protocol::Visibility;
use palaver_server::config::{AttachmentsConfig, Limits};

use crate::helpers::{assert_api_error, TestServer};

#[tokio::test]
async fn server_info_is_public_and_reports_the_default_limits() {
    let server = TestServer::spawn().await;
    let (status, info) = server
        .client()
        .raw("GET", "/api/v1/server", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{info}");
    let limits = Limits::default();
    let uploads = AttachmentsConfig::default();
    assert_eq!(
        info["limits"]["message_max_chars"],
        limits.message_max_chars
    );
    assert_eq!(
        info["limits"]["username_min_chars"],
        limits.username_min_chars
    );
    assert_eq!(
        info["limits"]["username_max_chars"],
        limits.username_max_chars
    );
    assert_eq!(
        info["limits"]["password_min_chars"],
        limits.password_min_chars
    );
    assert_eq!(
        info["limits"]["room_name_max_chars"],
        limits.room_name_max_chars
    );
    assert_eq!(
        info["limits"]["room_topic_max_chars"],
        limits.room_topic_max_chars
    );
    assert_eq!(info["uploads"]["max_bytes"], uploads.max_bytes);
    assert_eq!(
        info["uploads"]["allowed_types"],
        serde_json::json!(uploads.allowed_types)
    );
    assert_eq!(info["accounts"]["registration_open"], true);
    assert_eq!(info["accounts"]["email_enabled"], false);
    assert_eq!(info["providers"], serde_json::json!([]));
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn server_info_follows_the_configuration_the_server_enforces() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.limits.message_max_chars = 10;
        c.attachments.max_bytes = 2048;
        c.attachments.allowed_types = vec!["text/plain".to_owned()];
    })
    .await;
    let (status, info) = server
        .client()
        .raw("GET", "/api/v1/server", None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["limits"]["message_max_chars"], 10);
    assert_eq!(info["uploads"]["max_bytes"], 2048);
    assert_eq!(
        info["uploads"]["allowed_types"],
        serde_json::json!(["text/plain"])
    );

    // The same numbers are the ones enforced: 10 characters pass, 11 do not; a 2 KiB
    // text file passes, one byte more does not, and a PNG is not an allowed type.
    let alice = server.user("alice").await;
    let room = alice
        .create_room("limits", Visibility::Public, None)
        .await
        .unwrap();
    alice
        .send_message(&room.id, "0123456789", None)
        .await
        .unwrap();
    assert_api_error(
        alice.send_message(&room.id, "0123456789x", None).await,
        422,
        "validation_failed",
        Some("content"),
    );
    alice.upload("ok.txt", &[b'a'; 2048]).await.unwrap();
    assert_api_error(
        alice.upload("big.txt", &[b'a'; 2049]).await,
        413,
        "payload_too_large",
        None,
    );
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    assert_api_error(
        alice.upload("pixel.png", png).await,
        415,
        "unsupported_media_type",
        None,
    );
}
