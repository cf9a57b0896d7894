//! Room rules of issue 13: invitations end with their inviter's membership and can be
//! revoked (item 6); a DM that one side left reopens for both (item 10); members report
//! messages and the server's moderators and admins work through the reports (item 14).

use palaver_client::{Client, ClientError, Socket};
use palaver_protocol::{MemberRole, RoomKind, Visibility};
use serde_json::{json, Value};

use crate::conversations::{add_member, drain, event_where, uid, UNKNOWN_ID};
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
    // Nor can bob leave messages in the half-left DM for alice to find on reopening.
    assert_api_error(
        bob.send_message(&dm.id, "are you there?", None).await,
        403,
        "forbidden",
        None,
    );
    let mut ws = bob.connect().await.unwrap();
    match ws.send_message(&dm.id, "hello?", None).await {
        Err(palaver_client::ClientError::Rejected(detail)) => {
            assert_eq!(detail.code.as_str(), "forbidden", "{detail:?}")
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
    let history = bob.history(&dm.id, None, None, None).await.unwrap();
    assert!(history.messages.is_empty(), "nothing stored: {history:?}");
}

// ---------------------------------------------------------------------------------------
// Item 6: invitations end with their inviter's membership, and can be revoked
// ---------------------------------------------------------------------------------------

/// A private room of `owner` with `inviter` as a plain member, who invites `invitee`.
async fn invited_by_member(owner: &Client, inviter: &Client, invitee: &Client) -> (String, String) {
    let room = owner
        .create_room("invites", Visibility::Private, None)
        .await
        .expect("create room")
        .id;
    add_member(owner, &room, inviter).await;
    let invitation = inviter
        .invite(&room, &uid(invitee))
        .await
        .expect("the member invites");
    (room, invitation.id)
}

/// Asserts `invitee` was told live that the invitation ended, no longer lists it, and
/// cannot accept it (`410 invitation_revoked`), nor join the room.
async fn assert_revoked(
    invitee: &Client,
    socket: &mut Socket,
    room: &str,
    invitation: &str,
    reason: &str,
) {
    let event = event_where(socket, "invitation.revoked", |e| {
        e["data"]["id"] == invitation
    })
    .await;
    assert_eq!(event["data"]["room_id"], room);
    assert_eq!(event["data"]["reason"], reason);
    let pending = invitee.invitations().await.expect("list invitations");
    assert!(
        pending.iter().all(|i| i.id != invitation),
        "a revoked invitation is not listed: {pending:?}"
    );
    assert_api_error(
        invitee.accept_invitation(invitation).await,
        410,
        "invitation_revoked",
        None,
    );
    assert_api_error(
        invitee.decline_invitation(invitation).await,
        410,
        "invitation_revoked",
        None,
    );
    assert_api_error(
        invitee.history(room, None, None, None).await,
        403,
        "not_member",
        None,
    );
}

#[tokio::test]
async fn an_invitation_is_revoked_when_its_inviter_is_kicked() {
    let server = TestServer::spawn().await;
    let (owner, inviter, invitee) = (
        server.user("inv_owner").await,
        server.user("inviter").await,
        server.user("invitee").await,
    );
    let mut invitee_ws = invitee.connect().await.unwrap();
    let (room, invitation) = invited_by_member(&owner, &inviter, &invitee).await;
    owner
        .kick(&room, &uid(&inviter))
        .await
        .expect("kick the inviter");
    assert_revoked(
        &invitee,
        &mut invitee_ws,
        &room,
        &invitation,
        "inviter_kicked",
    )
    .await;
}

#[tokio::test]
async fn an_invitation_is_revoked_when_its_inviter_leaves() {
    let server = TestServer::spawn().await;
    let (owner, inviter, invitee) = (
        server.user("inv_owner").await,
        server.user("inviter").await,
        server.user("invitee").await,
    );
    let mut invitee_ws = invitee.connect().await.unwrap();
    let (room, invitation) = invited_by_member(&owner, &inviter, &invitee).await;
    inviter.leave_room(&room).await.expect("the inviter leaves");
    assert_revoked(
        &invitee,
        &mut invitee_ws,
        &room,
        &invitation,
        "inviter_left",
    )
    .await;
}

#[tokio::test]
async fn an_invitation_is_revoked_when_its_inviter_is_banned() {
    let server = TestServer::spawn().await;
    let (owner, inviter, invitee) = (
        server.user("inv_owner").await,
        server.user("inviter").await,
        server.user("invitee").await,
    );
    let mut invitee_ws = invitee.connect().await.unwrap();
    let (room, invitation) = invited_by_member(&owner, &inviter, &invitee).await;
    owner
        .ban(&room, &uid(&inviter))
        .await
        .expect("ban the inviter");
    assert_revoked(
        &invitee,
        &mut invitee_ws,
        &room,
        &invitation,
        "inviter_banned",
    )
    .await;
    // Another member may invite them afresh, and that invitation works.
    let again = owner
        .invite(&room, &uid(&invitee))
        .await
        .expect("re-invite");
    assert_ne!(again.id, invitation);
    invitee
        .accept_invitation(&again.id)
        .await
        .expect("accept the new one");
}

#[tokio::test]
async fn an_invitation_from_a_deleted_account_cannot_be_accepted() {
    let server = TestServer::spawn().await;
    let (owner, inviter, invitee) = (
        server.user("inv_owner").await,
        server.user("inviter").await,
        server.user("invitee").await,
    );
    let (room, invitation) = invited_by_member(&owner, &inviter, &invitee).await;
    inviter
        .delete_account("vivid-otter-42")
        .await
        .expect("the inviter deletes their account");
    let pending = invitee.invitations().await.unwrap();
    assert!(pending.iter().all(|i| i.id != invitation), "{pending:?}");
    assert_api_error(
        invitee.accept_invitation(&invitation).await,
        410,
        "invitation_revoked",
        None,
    );
    assert_api_error(
        invitee.history(&room, None, None, None).await,
        403,
        "not_member",
        None,
    );
    // A new invitation replaces the dead one.
    let again = owner
        .invite(&room, &uid(&invitee))
        .await
        .expect("re-invite");
    assert_ne!(again.id, invitation);
    invitee.accept_invitation(&again.id).await.expect("accept");
}

#[tokio::test]
async fn the_inviter_revokes_their_invitation_and_the_invitee_is_told() {
    let server = TestServer::spawn().await;
    let (owner, inviter, invitee) = (
        server.user("inv_owner").await,
        server.user("inviter").await,
        server.user("invitee").await,
    );
    let mut invitee_ws = invitee.connect().await.unwrap();
    let (room, invitation) = invited_by_member(&owner, &inviter, &invitee).await;
    let listed: Vec<Value> = inviter
        .get(&format!("/api/v1/rooms/{room}/invitations"))
        .await
        .map(|v: Value| v["invitations"].as_array().cloned().unwrap_or_default())
        .expect("the inviter lists their invitations");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], invitation.as_str());
    revoke(&inviter, &room, &invitation).await.expect("revoke");
    assert_revoked(&invitee, &mut invitee_ws, &room, &invitation, "revoked").await;
    assert_api_error(
        revoke(&inviter, &room, &invitation).await,
        404,
        "not_found",
        None,
    );
    let listed: Value = owner
        .get(&format!("/api/v1/rooms/{room}/invitations"))
        .await
        .unwrap();
    assert_eq!(listed["invitations"], json!([]));
}

#[tokio::test]
async fn room_admins_list_and_revoke_any_invitation_other_members_and_outsiders_may_not() {
    let server = TestServer::spawn().await;
    let (owner, inviter, invitee, admin, member, outsider) = (
        server.user("inv_owner").await,
        server.user("inviter").await,
        server.user("invitee").await,
        server.user("inv_admin").await,
        server.user("inv_member").await,
        server.user("inv_outsider").await,
    );
    let mut invitee_ws = invitee.connect().await.unwrap();
    let (room, invitation) = invited_by_member(&owner, &inviter, &invitee).await;
    add_member(&owner, &room, &admin).await;
    owner
        .set_member_role(&room, &uid(&admin), MemberRole::Admin)
        .await
        .unwrap();
    add_member(&owner, &room, &member).await;
    let second_invitee = server.user("invitee2").await;
    let second = owner.invite(&room, &uid(&second_invitee)).await.unwrap();

    // Listing: admins see all, a member only their own, outsiders nothing.
    let path = format!("/api/v1/rooms/{room}/invitations");
    let ids = |v: Value| -> Vec<String> {
        let mut ids: Vec<String> = v["invitations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(admin.get(&path).await.unwrap()),
        sorted(vec![invitation.clone(), second.id.clone()])
    );
    assert_eq!(ids(member.get(&path).await.unwrap()), Vec::<String>::new());
    assert_eq!(
        ids(inviter.get(&path).await.unwrap()),
        vec![invitation.clone()]
    );
    assert_api_error(outsider.get::<Value>(&path).await, 403, "not_member", None);

    // Revoking: another member is refused, an outsider too, and nothing changes.
    assert_api_error(
        revoke(&member, &room, &invitation).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        revoke(&outsider, &room, &invitation).await,
        403,
        "not_member",
        None,
    );
    assert_api_error(
        revoke(&inviter, &room, &second.id).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        revoke(&admin, &room, UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );
    let other_room = admin
        .create_room("elsewhere", Visibility::Private, None)
        .await
        .unwrap()
        .id;
    assert_api_error(
        revoke(&admin, &other_room, &invitation).await,
        404,
        "not_found",
        None,
    );
    assert_eq!(invitee.invitations().await.unwrap().len(), 1);

    // The admin revokes the member's invitation; the owner revokes their own.
    revoke(&admin, &room, &invitation)
        .await
        .expect("admin revokes");
    assert_revoked(&invitee, &mut invitee_ws, &room, &invitation, "revoked").await;
    revoke(&owner, &room, &second.id)
        .await
        .expect("owner revokes");
    assert_api_error(
        second_invitee.accept_invitation(&second.id).await,
        410,
        "invitation_revoked",
        None,
    );
}

/// `DELETE /rooms/{room}/invitations/{invitation}`.
async fn revoke(client: &Client, room: &str, invitation: &str) -> Result<(), ClientError> {
    client
        .send_empty::<()>(
            reqwest::Method::DELETE,
            &format!("/api/v1/rooms/{room}/invitations/{invitation}"),
            None,
        )
        .await
}

// ---------------------------------------------------------------------------------------
// Item 14: message reports, for the server's moderators and admins
// ---------------------------------------------------------------------------------------

/// Gives `user` the global `role` with `palaver admin set-role`, as an operator would
/// (the running server sees it on the user's next request).
pub(crate) fn set_global_role(server: &TestServer, user: &Client, role: &str) {
    let data = server.data_dir.path();
    let output = crate::binary::palaver(
        &[
            "admin",
            "--data-dir",
            data.to_str().unwrap(),
            "set-role",
            &crate::conversations::uname(user),
            role,
        ],
        data,
        None,
    );
    crate::binary::assert_command_ok(&output);
}

/// `POST .../messages/{message}/report` with `reason`.
pub(crate) async fn report(
    client: &Client,
    room: &str,
    message: &str,
    reason: &str,
) -> Result<Value, ClientError> {
    client
        .post(
            &format!("/api/v1/rooms/{room}/messages/{message}/report"),
            &json!({ "reason": reason }),
        )
        .await
}

/// `GET /moderation/reports` with `query` (e.g. `?status=all`).
pub(crate) async fn reports(client: &Client, query: &str) -> Result<Value, ClientError> {
    client
        .get(&format!("/api/v1/moderation/reports{query}"))
        .await
}

/// `POST /moderation/reports/{report}/resolve`.
pub(crate) async fn resolve(client: &Client, report: &str) -> Result<Value, ClientError> {
    client
        .post(
            &format!("/api/v1/moderation/reports/{report}/resolve"),
            &json!({}),
        )
        .await
}

fn report_ids(list: &Value) -> Vec<String> {
    list["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn members_report_messages_once_and_moderators_see_and_resolve_the_reports() {
    let server = TestServer::spawn().await;
    let (owner, author, reporter, outsider, moderator, admin) = (
        server.user("rep_owner").await,
        server.user("rep_author").await,
        server.user("reporter").await,
        server.user("rep_outsider").await,
        server.user("rep_mod").await,
        server.user("rep_admin").await,
    );
    set_global_role(&server, &moderator, "moderator");
    set_global_role(&server, &admin, "admin");
    let public = owner
        .create_room("reported", Visibility::Public, None)
        .await
        .unwrap()
        .id;
    author.join_room(&public).await.unwrap();
    reporter.join_room(&public).await.unwrap();
    let message = author
        .send_message(&public, "something awful", None)
        .await
        .unwrap();

    // Reporting: members only, once, not one's own, with a reason.
    let first = report(&reporter, &public, &message.id, "  spam  ")
        .await
        .expect("a member reports");
    assert_eq!(first["status"], "open");
    assert_eq!(first["reason"], "spam");
    assert_eq!(first["content"], "something awful");
    assert_eq!(first["author"]["id"], uid(&author).as_str());
    assert_eq!(first["reporter"]["id"], uid(&reporter).as_str());
    assert_eq!(first["room_id"], public.as_str());
    assert_api_error(
        report(&reporter, &public, &message.id, "again").await,
        409,
        "conflict",
        None,
    );
    assert_api_error(
        report(&author, &public, &message.id, "me").await,
        422,
        "validation_failed",
        Some("message_id"),
    );
    assert_api_error(
        report(&outsider, &public, &message.id, "spam").await,
        403,
        "not_member",
        None,
    );
    assert_api_error(
        report(&owner, &public, &message.id, "   ").await,
        422,
        "validation_failed",
        Some("reason"),
    );
    assert_api_error(
        report(&owner, &public, &message.id, &"x".repeat(1001)).await,
        422,
        "validation_failed",
        Some("reason"),
    );
    assert_api_error(
        report(&owner, &public, UNKNOWN_ID, "spam").await,
        404,
        "not_found",
        None,
    );
    // The report keeps what was reported when the author edits it.
    author
        .edit_message(&public, &message.id, "something nice")
        .await
        .unwrap();
    let second = report(&owner, &public, &message.id, "offensive")
        .await
        .expect("another member reports it too");
    assert_eq!(second["content"], "something nice");

    // A report in a private room: admins see it, moderators do not.
    let private = owner
        .create_room("private reported", Visibility::Private, None)
        .await
        .unwrap()
        .id;
    add_member(&owner, &private, &author).await;
    let hidden = author.send_message(&private, "secret", None).await.unwrap();
    let private_report = report(&owner, &private, &hidden.id, "private spam")
        .await
        .unwrap();
    let private_id = private_report["id"].as_str().unwrap().to_owned();

    // Listing and resolving: staff only.
    for plain in [&owner, &reporter, &outsider] {
        assert_api_error(reports(plain, "").await, 403, "forbidden", None);
        assert_api_error(resolve(plain, &private_id).await, 403, "forbidden", None);
    }
    let first_id = first["id"].as_str().unwrap().to_owned();
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_eq!(
        report_ids(&reports(&moderator, "").await.unwrap()),
        vec![first_id.clone(), second_id.clone()],
        "moderators see public channels' reports, oldest first"
    );
    assert_eq!(
        report_ids(&reports(&admin, "").await.unwrap()),
        vec![first_id.clone(), second_id.clone(), private_id.clone()],
        "admins see every room's reports"
    );
    assert_api_error(
        resolve(&moderator, &private_id).await,
        404,
        "not_found",
        None,
    );
    assert_api_error(
        resolve(&moderator, UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );

    // Paging.
    let page = reports(&admin, "?limit=2").await.unwrap();
    assert_eq!(report_ids(&page), vec![first_id.clone(), second_id.clone()]);
    let next = page["next"].as_str().expect("a next cursor").to_owned();
    let rest = reports(&admin, &format!("?limit=2&after={next}"))
        .await
        .unwrap();
    assert_eq!(report_ids(&rest), vec![private_id.clone()]);
    assert_eq!(rest["next"], Value::Null);
    assert_api_error(
        reports(&admin, "?limit=0").await,
        422,
        "validation_failed",
        Some("limit"),
    );
    assert_api_error(
        reports(&admin, "?status=closed").await,
        422,
        "validation_failed",
        Some("status"),
    );

    // Resolving takes a report off the open list.
    let resolved = resolve(&moderator, &first_id).await.expect("resolve");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_by"], uid(&moderator).as_str());
    let again = resolve(&admin, &first_id)
        .await
        .expect("resolving again is fine");
    assert_eq!(again["resolved_by"], uid(&moderator).as_str());
    resolve(&admin, &private_id).await.expect("admin resolves");
    assert_eq!(
        report_ids(&reports(&moderator, "").await.unwrap()),
        vec![second_id.clone()]
    );
    assert_eq!(
        report_ids(&reports(&moderator, "?status=resolved").await.unwrap()),
        vec![first_id.clone()]
    );
    assert_eq!(
        report_ids(&reports(&admin, "?status=all").await.unwrap()),
        vec![first_id, second_id, private_id]
    );
}
