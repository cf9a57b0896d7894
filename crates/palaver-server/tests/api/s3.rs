//! Attachments in an S3-compatible store: run with `--features s3-tests` and
//! `PALAVER_TEST_S3_ENDPOINT` pointing at a real S3-compatible server (`.ci/run` starts
//! one); never skipped when enabled.

use std::time::Duration;

use palaver_protocol::Visibility;
use palaver_server::config::{S3Config, Secret};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};

use crate::helpers::{unique_name, TestServer};

fn endpoint() -> String {
    std::env::var("PALAVER_TEST_S3_ENDPOINT")
        .expect("PALAVER_TEST_S3_ENDPOINT must name the S3-compatible server for s3-tests")
}

fn config(bucket: &str) -> S3Config {
    S3Config {
        endpoint: endpoint(),
        bucket: bucket.to_owned(),
        region: "us-east-1".into(),
        access_key_id: "palaver-test".into(),
        secret_access_key: Secret::new("palaver-test-secret"),
        path_style: true,
    }
}

fn bucket(name: &str) -> (Bucket, Credentials) {
    let bucket = Bucket::new(
        endpoint().parse().unwrap(),
        UrlStyle::Path,
        name.to_owned(),
        "us-east-1".to_owned(),
    )
    .unwrap();
    (
        bucket,
        Credentials::new("palaver-test", "palaver-test-secret"),
    )
}

#[tokio::test]
async fn attachments_are_stored_in_and_served_from_the_s3_bucket() {
    let name = unique_name("palaver").replace('_', "-");
    let (bucket, creds) = bucket(&name);
    let http = reqwest::Client::new();
    let create = bucket.create_bucket(&creds).sign(Duration::from_secs(60));
    let resp = http
        .put(create)
        .header("content-length", "0")
        .send()
        .await
        .expect("S3 server reachable");
    assert!(
        resp.status().is_success(),
        "create bucket: {}",
        resp.status()
    );

    let s3 = config(&name);
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), move |c| {
        c.attachments.s3 = Some(s3);
    })
    .await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("files", Visibility::Public, None)
        .await
        .unwrap();
    bob.join_room(&room.id).await.unwrap();

    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR s3 bytes".to_vec();
    let attachment = alice.upload("pic.png", &png).await.unwrap();
    assert_eq!(attachment.content_type, "image/png");

    // The object is in the bucket, under the attachment's id, and not on the local disk.
    let get = bucket
        .get_object(Some(&creds), &attachment.id)
        .sign(Duration::from_secs(60));
    let resp = http.get(get).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), png);
    assert!(!server
        .data_dir
        .path()
        .join("attachments")
        .join(&attachment.id)
        .exists());

    let req = palaver_protocol::rest::SendMessageRequest {
        content: String::new(),
        client_id: None,
        reply_to: None,
        attachment_id: Some(attachment.id.clone()),
    };
    alice.send_message_with(&room.id, &req).await.unwrap();
    let (status, content_type, bytes) = bob.download(&attachment.id).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(bytes, png, "a member downloads the bytes from S3");
}
