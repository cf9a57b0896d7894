//! Profile pictures (issue 20, the profile page): upload, serve to other signed-in users,
//! refuse what is not a picture or too large, remove; other profile edits keep it.

use crate::conversations::{png, uid};
use crate::helpers::{assert_api_error, TestServer};

#[tokio::test]
async fn a_picture_is_uploaded_served_to_others_and_removed() {
    let server = TestServer::spawn().await;
    let alice = server.user("ava_alice").await;
    let bob = server.user("ava_bob").await;
    let picture = png(64);
    let me = alice.set_avatar("me.png", &picture).await.unwrap();
    let url = me.avatar_url.clone().expect("avatar_url set");
    assert!(
        url.starts_with(&format!("/api/v1/users/{}/avatar?v=", uid(&alice))),
        "{url}"
    );
    let (status, content_type, bytes) = bob.get_bytes(&url).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(bytes, picture);
    // Anonymous requests are refused.
    let (status, _, _) = server.client().get_bytes(&url).await.unwrap();
    assert_eq!(status, 401);
    // Another profile change keeps the picture.
    let (status, body) = alice
        .raw(
            "PATCH",
            "/api/v1/users/me",
            Some(br#"{"bio":"hi"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["avatar_url"], url.as_str());
    // A new upload is a new version.
    let again = alice.set_avatar("me.png", &png(32)).await.unwrap();
    assert_ne!(again.avatar_url.as_deref(), Some(url.as_str()));
    // Not a picture, too large, empty.
    assert_api_error(
        alice.set_avatar("notes.txt", b"just text").await,
        415,
        "unsupported_media_type",
        None,
    );
    let mut huge = png(64);
    huge.resize(1024 * 1024 + 1, 0);
    assert_api_error(
        alice.set_avatar("big.png", &huge).await,
        413,
        "payload_too_large",
        None,
    );
    assert_api_error(
        alice.set_avatar("empty.png", b"").await,
        422,
        "validation_failed",
        Some("file"),
    );
    // Removed: 404, and the profile says so.
    let (status, body) = alice
        .raw("DELETE", "/api/v1/users/me/avatar", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(body["avatar_url"].is_null(), "{body}");
    let (status, _, _) = bob
        .get_bytes(&format!("/api/v1/users/{}/avatar", uid(&alice)))
        .await
        .unwrap();
    assert_eq!(status, 404);
    // A user without one, and an unknown user: 404.
    let (status, _, _) = alice
        .get_bytes(&format!("/api/v1/users/{}/avatar", uid(&bob)))
        .await
        .unwrap();
    assert_eq!(status, 404);
}
