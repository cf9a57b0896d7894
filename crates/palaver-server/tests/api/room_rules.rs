//! Room rules of issue 13: invitations end with their inviter's membership and can be
//! revoked (item 6); a DM that one side left reopens for both (item 10); members report
//! messages and the server's moderators and admins work through the reports (item 14).

use palaver_client::Client;
use palaver_protocol::{MemberRole, RoomKind};
use serde_json::{json, Value};

use crate::conversations::{drain, event_where, uid, uname};
use crate::helpers::{assert_api_error, TestServer};

/// The ids of a room's members, as `viewer` sees them.
async fn member_ids(viewer: &Client, room_id: &str) -> Vec<String> {
    let mut ids: Vec<String> = viewer
        .members(room_id)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

// ---------------------------------------------------------------------------------------
// Item 10: a DM with a departed user reopens for both
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_dm_member_who_left_reopens_it_and_both_can_write_again() {
    let server = TestServer::spawn().await;
    let alice = server.user("dm_leaver").await;
    let bob = server.user("dm_stayer").await;
    let dm = alice.open_dm(&uid(&bob)).await.expect("open dm");
    alice.send_message(&dm.id, "hello", None).await.unwrap();
    alice.leave_room(&dm.id).await.expect("alice leaves the DM");
    let mut bob_ws = bob.connect().await.expect("bob connects");
    drain(&mut bob_ws).await;

    let reopened = alice.open_dm(&uid(&bob)).await.expect("alice reopens");
    assert_eq!(reopened.id, dm.id, "the same DM, with its history");
    assert_eq!(reopened.kind, RoomKind::Dm);
    assert_eq!(reopened.my_role, Some(MemberRole::Owner));
    assert_eq!(reopened.member_count, 2);
    assert_eq!(
        member_ids(&bob, &dm.id).await,
        sorted(vec![uid(&alice), uid(&bob)])
    );
    let joined = event_where(&mut bob_ws, "member.joined", |e| {
        e["data"]["room_id"] == dm.id.as_str()
    })
    .await;
    assert_eq!(joined["data"]["user_id"], uid(&alice).as_str());

    alice
        .send_message(&dm.id, "I'm back", None)
        .await
        .expect("the leaver writes again");
    bob.send_message(&dm.id, "welcome back", None)
        .await
        .expect("the other side writes");
    let page = alice.history(&dm.id, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 3, "history kept: {:?}", page.messages);
    let again = bob.open_dm(&uid(&alice)).await.expect("bob opens it");
    assert_eq!(again.id, dm.id);
    assert_eq!(again.member_count, 2);
}

#[tokio::test]
async fn the_dm_member_who_stayed_reopens_it_for_the_one_who_left() {
    let server = TestServer::spawn().await;
    let alice = server.user("dm_leaver").await;
    let bob = server.user("dm_stayer").await;
    let dm = alice.open_dm(&uid(&bob)).await.expect("open dm");
    alice.leave_room(&dm.id).await.expect("alice leaves the DM");
    let mut alice_ws = alice.connect().await.expect("alice connects");
    drain(&mut alice_ws).await;

    let reopened = bob.open_dm(&uid(&alice)).await.expect("bob reopens");
    assert_eq!(reopened.id, dm.id);
    assert_eq!(reopened.my_role, Some(MemberRole::Owner));
    assert_eq!(reopened.member_count, 2);
    let joined = event_where(&mut alice_ws, "member.joined", |e| {
        e["data"]["room_id"] == dm.id.as_str()
    })
    .await;
    assert_eq!(joined["data"]["user_id"], uid(&alice).as_str());

    bob.send_message(&dm.id, "you're back", None)
        .await
        .expect("bob writes");
    let created = event_where(&mut alice_ws, "message.created", |e| {
        e["data"]["room_id"] == dm.id.as_str()
    })
    .await;
    assert_eq!(created["data"]["content"], "you're back");
    alice
        .send_message(&dm.id, "hi", None)
        .await
        .expect("alice writes again");
    let mine = alice.open_dm(&uid(&bob)).await.unwrap();
    assert_eq!(mine.my_role, Some(MemberRole::Owner));
}

#[tokio::test]
async fn a_dm_both_sides_left_reopens_for_both() {
    let server = TestServer::spawn().await;
    let alice = server.user("dm_a").await;
    let bob = server.user("dm_b").await;
    let dm = alice.open_dm(&uid(&bob)).await.expect("open dm");
    alice.leave_room(&dm.id).await.unwrap();
    bob.leave_room(&dm.id).await.unwrap();
    let reopened = bob.open_dm(&uid(&alice)).await.expect("bob reopens");
    assert_eq!(reopened.id, dm.id);
    assert_eq!(reopened.member_count, 2);
    alice.send_message(&dm.id, "hi", None).await.unwrap();
    bob.send_message(&dm.id, "hi", None).await.unwrap();
}

#[tokio::test]
async fn a_dm_left_by_someone_who_then_blocks_stays_closed_to_the_blocked_side() {
    let server = TestServer::spawn().await;
    let alice = server.user("dm_blocker").await;
    let bob = server.user("dm_blocked").await;
    let dm = alice.open_dm(&uid(&bob)).await.expect("open dm");
    alice.leave_room(&dm.id).await.unwrap();
    alice.block(&uid(&bob)).await.unwrap();
    assert_api_error(bob.open_dm(&uid(&alice)).await, 403, "forbidden", None);
    assert_eq!(member_ids(&bob, &dm.id).await, vec![uid(&bob)]);
}
