//! `GET /api/v1/search/messages` (issue 20, item 1) through the REST API: results carry
//! the message, its room and a snippet with the matches marked; only rooms the caller is
//! a member of now are searched; bad parameters are `422` naming them. The store's
//! conformance tests (`store::conformance::search`) run the same rules on both backends.

use palaver_client::Client;
use palaver_protocol::Visibility;

use crate::conversations::{add_member, uid};
use crate::helpers::{assert_api_error, TestServer};

/// The contents found for `q` by `client`.
async fn contents(client: &Client, params: &[(&str, &str)]) -> Vec<String> {
    client
        .search_messages(params)
        .await
        .expect("search")
        .results
        .into_iter()
        .map(|r| r.message.content)
        .collect()
}

#[tokio::test]
async fn results_come_only_from_rooms_the_caller_is_a_member_of() {
    let server = TestServer::spawn().await;
    let alice = server.user("search_alice").await;
    let bob = server.user("search_bob").await;
    let mallory = server.user("search_mallory").await;
    let shared = alice
        .create_room("shared", Visibility::Private, None)
        .await
        .unwrap();
    add_member(&alice, &shared.id, &bob).await;
    let public = alice
        .create_room("public", Visibility::Public, None)
        .await
        .unwrap();
    let dm = alice.open_dm(&uid(&bob)).await.unwrap();
    alice
        .send_message(&shared.id, "the launch code is 1234", None)
        .await
        .unwrap();
    alice
        .send_message(&public.id, "launch party on friday", None)
        .await
        .unwrap();
    bob.send_message(&dm.id, "launch between us", None)
        .await
        .unwrap();

    let mut bobs = contents(&bob, &[("q", "launch")]).await;
    bobs.sort();
    assert_eq!(bobs, ["launch between us", "the launch code is 1234"]);
    // Mallory is in none of the rooms: nothing, not even from the public channel.
    assert!(contents(&mallory, &[("q", "launch")]).await.is_empty());
    assert_api_error(
        mallory
            .search_messages(&[("q", "launch"), ("room_id", &shared.id)])
            .await,
        403,
        "not_member",
        None,
    );
    assert_api_error(
        mallory
            .search_messages(&[
                ("q", "launch"),
                ("room_id", "00000000-0000-7000-8000-000000000000"),
            ])
            .await,
        404,
        "not_found",
        None,
    );
    // After joining the public channel, its whole history is searchable; after a kick,
    // nothing of the private room is.
    mallory.join_room(&public.id).await.unwrap();
    assert_eq!(
        contents(&mallory, &[("q", "launch")]).await,
        ["launch party on friday"]
    );
    alice.kick(&shared.id, &uid(&bob)).await.unwrap();
    assert_eq!(
        contents(&bob, &[("q", "launch")]).await,
        ["launch between us"]
    );
}

#[tokio::test]
async fn results_carry_room_snippet_and_page_with_a_cursor() {
    let server = TestServer::spawn().await;
    let alice = server.user("search_pager").await;
    let room = alice
        .create_room("notes", Visibility::Public, None)
        .await
        .unwrap();
    for i in 0..5 {
        alice
            .send_message(&room.id, &format!("Deployment <b>{i}</b> went fine"), None)
            .await
            .unwrap();
    }
    let edited = alice
        .send_message(&room.id, "typo here", None)
        .await
        .unwrap();
    alice
        .edit_message(&room.id, &edited.id, "deploy notes, fixed")
        .await
        .unwrap();
    let doomed = alice
        .send_message(&room.id, "deploy this never", None)
        .await
        .unwrap();
    alice.delete_message(&room.id, &doomed.id).await.unwrap();

    let first = alice
        .search_messages(&[("q", "deploy"), ("sort", "newest"), ("limit", "4")])
        .await
        .unwrap();
    assert_eq!(first.results.len(), 4);
    let top = &first.results[0];
    assert_eq!(top.message.content, "deploy notes, fixed");
    assert_eq!(top.room_name, "notes");
    assert_eq!(top.message.room_id, room.id);
    let marked: Vec<&str> = first.results[1]
        .snippet
        .iter()
        .filter(|p| p.highlight)
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(marked, ["Deployment"]);
    let whole: String = first.results[1]
        .snippet
        .iter()
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(
        whole, "Deployment <b>4</b> went fine",
        "text as written, never HTML"
    );
    let cursor = first.next_cursor.clone().expect("a next page");
    let second = alice
        .search_messages(&[
            ("q", "deploy"),
            ("sort", "newest"),
            ("limit", "4"),
            ("cursor", &cursor),
        ])
        .await
        .unwrap();
    assert_eq!(second.results.len(), 2, "6 in all: the deleted one is gone");
    assert_eq!(second.next_cursor, None);
    assert_eq!(
        second.results[1].message.content,
        "Deployment <b>0</b> went fine"
    );
    assert!(contents(&alice, &[("q", "typo")]).await.is_empty());
    assert!(contents(&alice, &[("q", "never")]).await.is_empty());
    // The sender filter.
    assert_eq!(
        contents(&alice, &[("q", "deploy"), ("sender_id", "someone-else")])
            .await
            .len(),
        0
    );
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_them() {
    let server = TestServer::spawn().await;
    let alice = server.user("search_bad").await;
    for (params, field) in [
        (vec![], "q"),
        (vec![("q", "  !? ")], "q"),
        (vec![("q", "x"), ("before", "yesterday")], "before"),
        (vec![("q", "x"), ("after", "2026-13-01T00:00:00Z")], "after"),
        (
            vec![("q", "x"), ("has_attachment", "yes")],
            "has_attachment",
        ),
        (vec![("q", "x"), ("sort", "oldest")], "sort"),
        (vec![("q", "x"), ("limit", "0")], "limit"),
        (vec![("q", "x"), ("limit", "51")], "limit"),
        (vec![("q", "x"), ("cursor", "-5")], "cursor"),
        (vec![("q", "x"), ("cursor", "abc")], "cursor"),
    ] {
        assert_api_error(
            alice.search_messages(&params).await,
            422,
            "validation_failed",
            Some(field),
        );
    }
    let long = "w".repeat(257);
    assert_api_error(
        alice.search_messages(&[("q", &long)]).await,
        422,
        "validation_failed",
        Some("q"),
    );
    let (status, _) = server
        .client()
        .raw("GET", "/api/v1/search/messages?q=x", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
}
