//! Conformance tests of [`crate::store::SearchStore`]: the same words found the same way
//! on SQLite (FTS5) and PostgreSQL (`tsvector`), and never outside the searcher's rooms.

use palaver_protocol::{MessageType, RoomKind, Visibility};

use super::{add_room, add_user, at, join, message, post, send};
use crate::search::SearchQuery;
use crate::store::{AttachmentRow, NewRoom, SearchFilter, Store};

/// The contents of `user`'s results for `q` with `filter` (first 50), in result order.
async fn found(store: &Store, user: &str, q: &str, filter: &SearchFilter) -> Vec<String> {
    let query = SearchQuery::parse(q).expect("a valid query");
    let (hits, _) = store
        .search
        .search_messages(user, &query, filter, 0, 50)
        .await
        .expect("search_messages");
    hits.into_iter().map(|h| h.message.content).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The authorization rule: only rooms the searcher is a member of now (channels public or
/// private, DMs), never another room, and nothing of a room left, kicked or banned from.
pub(super) async fn search_finds_only_messages_of_rooms_the_user_is_a_member_of_now(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "carol").await;
    add_room(&store, "shared", "u1").await;
    join(&store, "shared", "u2", 1).await;
    add_room(&store, "carols", "u3").await;
    store
        .rooms
        .create_room(&NewRoom {
            id: "private".into(),
            name: "private".into(),
            topic: None,
            visibility: Visibility::Private,
            kind: RoomKind::Channel,
            created_by: "u2".into(),
            created_at: at(0),
        })
        .await
        .unwrap();
    let (dm, _) = store
        .rooms
        .open_dm(
            &NewRoom {
                id: "dm13".into(),
                name: String::new(),
                topic: None,
                visibility: Visibility::Private,
                kind: RoomKind::Dm,
                created_by: "u1".into(),
                created_at: at(0),
            },
            "u3",
            "u1:u3",
        )
        .await
        .unwrap();
    post(&store, "shared", "u1", "secret plan in shared").await;
    post(&store, "carols", "u3", "secret plan in carols").await;
    post(&store, "private", "u2", "secret plan in private").await;
    post(&store, &dm.id, "u3", "secret plan in the dm").await;
    let all = SearchFilter::default();
    assert_eq!(
        sorted(found(&store, "u1", "secret", &all).await),
        ["secret plan in shared", "secret plan in the dm"]
    );
    assert_eq!(
        sorted(found(&store, "u2", "secret plan", &all).await),
        ["secret plan in private", "secret plan in shared"]
    );
    assert_eq!(
        sorted(found(&store, "u3", "\"secret plan\"", &all).await),
        ["secret plan in carols", "secret plan in the dm"]
    );
    // A room filter does not widen what is searched.
    let carols = SearchFilter {
        room_id: Some("carols".into()),
        ..SearchFilter::default()
    };
    assert!(found(&store, "u1", "secret", &carols).await.is_empty());
    // Joining gives the room's whole history; leaving, a kick or a ban takes it away.
    join(&store, "carols", "u1", 2).await;
    assert_eq!(
        found(&store, "u1", "carols", &all).await,
        ["secret plan in carols"]
    );
    store
        .rooms
        .leave("carols", "u1", None, &at(3))
        .await
        .unwrap();
    assert!(found(&store, "u1", "carols", &all).await.is_empty());
    store
        .rooms
        .leave("shared", "u2", Some("u1"), &at(4))
        .await
        .unwrap();
    assert_eq!(
        found(&store, "u2", "secret", &all).await,
        ["secret plan in private"]
    );
    // An unknown user finds nothing.
    assert!(found(&store, "nobody", "secret", &all).await.is_empty());
}

/// Words match by prefix, case and accents aside; phrases match in order; all terms must
/// match; a message with more of the words ranks first; calls are not indexed.
pub(super) async fn search_matches_prefixes_phrases_case_and_accents(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    for text in [
        "Deployment finished",
        "the café is open",
        "CAFE closed today",
        "deploy the release today",
        "release the deploy",
        "deploy deploy deploy",
        "東京タワーへ行く",
    ] {
        post(&store, "r1", "u1", text).await;
    }
    let mut call = message("r1", "u1", "deploy call", None);
    call.message_type = MessageType::Call;
    send(&store, call).await.unwrap();
    let all = SearchFilter::default();
    let deploys = found(&store, "u1", "DEPLOY", &all).await;
    assert_eq!(
        sorted(deploys.clone()),
        [
            "Deployment finished",
            "deploy deploy deploy",
            "deploy the release today",
            "release the deploy"
        ]
    );
    assert_eq!(
        deploys[0], "deploy deploy deploy",
        "best match first: {deploys:?}"
    );
    assert_eq!(
        sorted(found(&store, "u1", "cafe", &all).await),
        ["CAFE closed today", "the café is open"]
    );
    assert_eq!(
        found(&store, "u1", "Café open", &all).await,
        ["the café is open"]
    );
    assert_eq!(
        found(&store, "u1", "\"the release\"", &all).await,
        ["deploy the release today"]
    );
    assert_eq!(
        found(&store, "u1", "\"deploy the\"", &all).await,
        ["deploy the release today"]
    );
    assert!(found(&store, "u1", "\"deplo\"", &all).await.is_empty());
    assert_eq!(
        found(&store, "u1", "タワー", &all).await,
        ["東京タワーへ行く"]
    );
    assert_eq!(
        found(&store, "u1", "東京", &all).await,
        ["東京タワーへ行く"]
    );
    assert!(found(&store, "u1", "京東", &all).await.is_empty());
    assert!(found(&store, "u1", "deploy zebra", &all).await.is_empty());
    assert!(found(&store, "u1", "call", &all).await.is_empty());
}

/// An edit replaces the words found (old ones no longer match), a delete removes them, and
/// deleting the room removes its messages from the index.
pub(super) async fn edits_reindex_and_deletes_unindex_messages(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let m = post(&store, "r1", "u1", "the old wording").await;
    let other = post(&store, "r1", "u1", "another wording").await;
    let all = SearchFilter::default();
    store
        .messages
        .edit_message(
            "r1",
            &m.id,
            "the new phrasing",
            &Default::default(),
            &[],
            &at(5),
        )
        .await
        .unwrap();
    assert!(found(&store, "u1", "old", &all).await.is_empty());
    assert_eq!(
        found(&store, "u1", "phrasing", &all).await,
        ["the new phrasing"]
    );
    assert_eq!(
        found(&store, "u1", "wording", &all).await,
        ["another wording"]
    );
    store
        .messages
        .delete_message("r1", &other.id, &at(6))
        .await
        .unwrap();
    assert!(found(&store, "u1", "wording", &all).await.is_empty());
    // Editing twice leaves one entry.
    store
        .messages
        .edit_message(
            "r1",
            &m.id,
            "phrasing again",
            &Default::default(),
            &[],
            &at(7),
        )
        .await
        .unwrap();
    assert_eq!(
        found(&store, "u1", "phrasing", &all).await,
        ["phrasing again"]
    );
    assert!(store.rooms.delete_room("r1").await.unwrap());
    add_room(&store, "r2", "u1").await;
    post(&store, "r2", "u1", "fresh start").await;
    assert!(found(&store, "u1", "phrasing", &all).await.is_empty());
    assert_eq!(found(&store, "u1", "fresh", &all).await, ["fresh start"]);
}

/// Filters by room, sender, time and attachment; newest-first order; pages with `offset`.
pub(super) async fn search_filters_and_pages(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_room(&store, "r1", "u1").await;
    add_room(&store, "r2", "u1").await;
    join(&store, "r1", "u2", 1).await;
    for i in 0..12u32 {
        let (room, sender) = if i % 3 == 0 {
            ("r2", "u1")
        } else {
            ("r1", ["u1", "u2"][i as usize % 2])
        };
        let mut m = message(room, sender, &format!("report number {i}"), None);
        m.created_at = at(100 + i);
        send(&store, m).await.unwrap();
    }
    store
        .attachments
        .create_attachment(&AttachmentRow {
            id: "a1".into(),
            uploader_id: "u2".into(),
            filename: "report.pdf".into(),
            content_type: "application/pdf".into(),
            size: 10,
            storage_key: "k".into(),
            created_at: at(200),
        })
        .await
        .unwrap();
    let mut with_file = message("r1", "u2", "report attached", None);
    with_file.attachment_id = Some("a1".into());
    with_file.message_type = MessageType::Attachment;
    with_file.created_at = at(300);
    send(&store, with_file).await.unwrap();

    let newest = SearchFilter {
        newest_first: true,
        ..SearchFilter::default()
    };
    let all = found(&store, "u1", "report", &newest).await;
    assert_eq!(all.len(), 13);
    assert_eq!(all[0], "report attached");
    assert_eq!(all[1], "report number 11");
    assert_eq!(all[12], "report number 0");
    // Pages: 5 + 5 + 3, in the same order, `more` until the last.
    let query = SearchQuery::parse("report").unwrap();
    let mut paged = Vec::new();
    for (offset, more) in [(0, true), (5, true), (10, false)] {
        let (hits, has_more) = store
            .search
            .search_messages("u1", &query, &newest, offset, 5)
            .await
            .unwrap();
        assert_eq!(has_more, more, "offset {offset}");
        paged.extend(hits.into_iter().map(|h| h.message.content));
    }
    assert_eq!(paged, all);
    let r2 = SearchFilter {
        room_id: Some("r2".into()),
        ..newest.clone()
    };
    assert_eq!(
        found(&store, "u1", "report", &r2).await,
        [
            "report number 9",
            "report number 6",
            "report number 3",
            "report number 0"
        ]
    );
    let bob = SearchFilter {
        sender_id: Some("u2".into()),
        ..newest.clone()
    };
    assert_eq!(
        found(&store, "u1", "report", &bob).await,
        [
            "report attached",
            "report number 11",
            "report number 7",
            "report number 5",
            "report number 1"
        ]
    );
    let window = SearchFilter {
        after: Some(at(104)),
        before: Some(at(108)),
        ..newest.clone()
    };
    assert_eq!(
        found(&store, "u1", "report", &window).await,
        ["report number 7", "report number 6", "report number 5"]
    );
    let files = SearchFilter {
        has_attachment: Some(true),
        ..newest.clone()
    };
    assert_eq!(
        found(&store, "u1", "report", &files).await,
        ["report attached"]
    );
    let no_files = SearchFilter {
        has_attachment: Some(false),
        ..newest
    };
    assert_eq!(found(&store, "u1", "report", &no_files).await.len(), 12);
    // Bob is not in r2.
    let bobs_view = found(&store, "u2", "report", &SearchFilter::default()).await;
    assert_eq!(bobs_view.len(), 9);
}
