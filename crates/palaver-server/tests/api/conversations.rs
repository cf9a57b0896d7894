//! The conversation model: invitations, direct messages, room administration, leaving,
//! moderation, edits, deletes, reactions, replies, read markers and attachments — over
//! REST and the WebSocket, with the live events each action publishes (and does not
//! publish).
//!
//! Helpers marked `pub(crate)` are shared with `authorization.rs`.

use std::time::Duration;

use palaver_client::{Client, ClientError, Socket};
use palaver_protocol::rest::SendMessageRequest;
use palaver_protocol::{MemberRole, MessageType, Reaction, Room, RoomKind, Visibility};
use serde_json::{json, Value};

use crate::helpers::{assert_api_error, TestServer};

/// How long a socket must stay silent for "nothing arrives" to hold.
pub(crate) const QUIET: Duration = Duration::from_millis(300);
/// The longest wait for an expected event.
pub(crate) const EVENT_WAIT: Duration = Duration::from_secs(10);
/// An id no room, message, invitation, user or attachment has (a well-formed UUIDv7).
pub(crate) const UNKNOWN_ID: &str = "01900000-0000-7000-8000-000000000000";
/// The most events a drain collects (a bound, never reached by these tests).
const DRAIN_MAX: usize = 10_000;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The logged-in user's id.
pub(crate) fn uid(client: &Client) -> String {
    client.user.as_ref().expect("logged in").id.clone()
}

/// The logged-in user's username.
pub(crate) fn uname(client: &Client) -> String {
    client.user.as_ref().expect("logged in").username.clone()
}

/// Asserts a WebSocket request got a failed reply with error `code` (and `field`).
#[track_caller]
pub(crate) fn assert_rejected<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    code: &str,
    field: Option<&str>,
) {
    let err = result.expect_err("the request should get a failed reply");
    match &err {
        ClientError::Rejected(detail) => {
            assert_eq!(detail.code.as_str(), code, "error.code; error: {err:?}");
            assert!(!detail.message.is_empty(), "error.message; {err:?}");
            if let Some(field) = field {
                assert_eq!(detail.field.as_deref(), Some(field), "error.field; {err:?}");
            }
        }
        other => panic!("expected a failed reply {code}, got {other:?}"),
    }
}

/// The next event of type `kind` on `socket` for which `pred` holds (others are skipped);
/// panics after [`EVENT_WAIT`].
pub(crate) async fn event_where(
    socket: &mut Socket,
    kind: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let wait = async {
        loop {
            let event = socket
                .next_event_of(kind)
                .await
                .unwrap_or_else(|e| panic!("waiting for {kind}: {e}"));
            if pred(&event) {
                return event;
            }
        }
    };
    tokio::time::timeout(EVENT_WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("no matching {kind} event within {EVENT_WAIT:?}"))
}

/// The next event of type `kind` on `socket` (others are skipped).
pub(crate) async fn event_of(socket: &mut Socket, kind: &str) -> Value {
    event_where(socket, kind, |_| true).await
}

/// Whether `event` is about room `room_id` (its data names the room, or is the room).
pub(crate) fn concerns(event: &Value, room_id: &str) -> bool {
    let data = &event["data"];
    data["room_id"] == room_id || (event["type"] == "room.updated" && data["id"] == room_id)
}

/// Every event that arrives on `socket` until it has been quiet for [`QUIET`].
pub(crate) async fn drain(socket: &mut Socket) -> Vec<Value> {
    socket.drain(QUIET, DRAIN_MAX).await.expect("socket open")
}

/// Asserts that nothing about `room_id` reaches `socket` (waiting [`QUIET`]).
pub(crate) async fn assert_nothing_from(socket: &mut Socket, room_id: &str, who: &str) {
    let leaked: Vec<Value> = drain(socket)
        .await
        .into_iter()
        .filter(|e| concerns(e, room_id))
        .collect();
    assert!(
        leaked.is_empty(),
        "{who} received events of room {room_id}: {leaked:#?}"
    );
}

/// Asserts that no event at all reaches `socket` (waiting [`QUIET`]).
pub(crate) async fn assert_silent(socket: &mut Socket, who: &str) {
    let got = drain(socket).await;
    assert!(got.is_empty(), "{who} received {got:#?}");
}

/// `owner` invites `user` to `room_id` and `user` accepts.
pub(crate) async fn add_member(owner: &Client, room_id: &str, user: &Client) {
    let invitation = owner
        .invite(room_id, &uid(user))
        .await
        .unwrap_or_else(|e| panic!("inviting {}: {e}", uname(user)));
    user.accept_invitation(&invitation.id)
        .await
        .unwrap_or_else(|e| panic!("{} accepting: {e}", uname(user)));
}

/// A private room of `owner` with `members` (in this order) as plain members.
async fn room_with(owner: &Client, name: &str, members: &[&Client]) -> Room {
    let room = owner
        .create_room(name, Visibility::Private, None)
        .await
        .expect("create room");
    for member in members {
        add_member(owner, &room.id, member).await;
    }
    room
}

/// A public room of `owner` that `members` joined (in this order).
async fn public_room_with(owner: &Client, name: &str, members: &[&Client]) -> Room {
    let room = owner
        .create_room(name, Visibility::Public, None)
        .await
        .expect("create room");
    for member in members {
        member.join_room(&room.id).await.expect("join");
    }
    room
}

/// Asserts `event` is `member.left` of `user` from `room_id` for `reason`.
#[track_caller]
fn assert_member_left(event: &Value, room_id: &str, user: &Client, reason: &str) {
    assert_eq!(
        event["data"],
        json!({"room_id": room_id, "user_id": uid(user), "reason": reason}),
        "member.left: {event}"
    );
}

/// The role of `user` in `members`, if listed.
async fn role_of(viewer: &Client, room_id: &str, user: &Client) -> Option<MemberRole> {
    viewer
        .members(room_id)
        .await
        .expect("members")
        .into_iter()
        .find(|m| m.user_id == uid(user))
        .map(|m| m.role)
}

/// Bytes that sniff as PNG: the signature and `len - 8` filler bytes.
pub(crate) fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(8)).map(|i| (i % 251) as u8));
    bytes
}

/// A send request with only `content` and the given extras.
fn send_req(
    content: &str,
    reply_to: Option<&str>,
    attachment_id: Option<&str>,
) -> SendMessageRequest {
    SendMessageRequest {
        content: content.into(),
        client_id: None,
        reply_to: reply_to.map(Into::into),
        attachment_id: attachment_id.map(Into::into),
    }
}

/// The number of entries in the attachments directory of `server`.
fn stored_files(server: &TestServer) -> usize {
    let dir = server.data_dir.path().join("attachments");
    match std::fs::read_dir(&dir) {
        Ok(entries) => entries.count(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => panic!("reading {}: {e}", dir.display()),
    }
}

// ---------------------------------------------------------------------------------------
// Invitations
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_invitation_to_a_private_room_reaches_only_the_invitee_live_and_is_listed() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = alice
        .create_room("secret", Visibility::Private, None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    let (status, body) = alice
        .raw(
            "POST",
            &format!("/api/v1/rooms/{}/invitations", room.id),
            Some(json!({"user_id": uid(&bob)}).to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "invite answers 201; body: {body}");
    assert_eq!(body["room_id"], room.id.as_str());
    assert_eq!(body["room_name"], "secret");
    assert_eq!(body["invitee_id"], uid(&bob).as_str());
    assert_eq!(body["inviter"]["id"], uid(&alice).as_str());
    assert_eq!(body["inviter"]["username"], uname(&alice).as_str());
    assert_eq!(body["status"], "pending");

    let event = event_of(&mut bob_ws, "invitation.created").await;
    assert_eq!(event["data"], body, "the event carries the invitation");
    let listed = bob.invitations().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(serde_json::to_value(&listed[0]).unwrap(), body);
    assert!(carol.invitations().await.unwrap().is_empty());
    assert!(alice.invitations().await.unwrap().is_empty());

    // An invitation is not a membership.
    assert_api_error(
        bob.history(&room.id, None, None, None).await,
        403,
        "not_member",
        None,
    );
    assert_silent(&mut carol_ws, "carol (not invited)").await;
    assert_silent(&mut alice_ws, "alice (the inviter)").await;
}

#[tokio::test]
async fn accepting_an_invitation_joins_the_room_and_its_messages_then_arrive_live() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("club", Visibility::Private, None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let invitation = alice.invite(&room.id, &uid(&bob)).await.unwrap();
    event_of(&mut bob_ws, "invitation.created").await;
    let joined = bob.accept_invitation(&invitation.id).await.expect("accept");
    assert_eq!(joined.id, room.id);
    assert_eq!(joined.member_count, 2);

    for socket in [&mut alice_ws, &mut bob_ws] {
        let event = event_of(socket, "member.joined").await;
        assert_eq!(
            event["data"],
            json!({"room_id": room.id, "user_id": uid(&bob), "username": uname(&bob)})
        );
    }
    assert_eq!(
        role_of(&alice, &room.id, &bob).await,
        Some(MemberRole::Member)
    );
    assert!(
        bob.invitations().await.unwrap().is_empty(),
        "no longer pending"
    );

    let m = alice
        .send_message(&room.id, "welcome bob", None)
        .await
        .unwrap();
    let event = event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["id"], m.id.as_str());
    assert_eq!(event["data"]["content"], "welcome bob");

    // An answered invitation cannot be answered again.
    assert_api_error(
        bob.accept_invitation(&invitation.id).await,
        404,
        "not_found",
        None,
    );
    assert_api_error(
        bob.decline_invitation(&invitation.id).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn declining_an_invitation_is_204_and_makes_no_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("club", Visibility::Private, None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let invitation = alice.invite(&room.id, &uid(&bob)).await.unwrap();
    event_of(&mut bob_ws, "invitation.created").await;

    // `decline_invitation` accepts only `204 No Content`.
    bob.decline_invitation(&invitation.id)
        .await
        .expect("decline: 204");
    assert!(bob.invitations().await.unwrap().is_empty());
    assert_api_error(bob.get_room(&room.id).await, 403, "not_member", None);
    assert_eq!(alice.members(&room.id).await.unwrap().len(), 1);
    assert_api_error(
        bob.accept_invitation(&invitation.id).await,
        404,
        "not_found",
        None,
    );

    alice
        .send_message(&room.id, "bob is not here", None)
        .await
        .unwrap();
    assert_nothing_from(&mut bob_ws, &room.id, "bob (declined)").await;
    let events = drain(&mut alice_ws).await;
    assert!(
        !events.iter().any(|e| e["type"] == "member.joined"),
        "nobody joined: {events:#?}"
    );
}

#[tokio::test]
async fn accepting_or_declining_someone_elses_invitation_is_404() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = alice
        .create_room("club", Visibility::Private, None)
        .await
        .unwrap();
    let invitation = alice.invite(&room.id, &uid(&bob)).await.unwrap();

    for (who, client) in [("carol", &carol), ("alice (the inviter)", &alice)] {
        let accepted = client.accept_invitation(&invitation.id).await;
        assert!(accepted.is_err(), "{who} accepted bob's invitation");
        assert_api_error(accepted, 404, "not_found", None);
        assert_api_error(
            client.decline_invitation(&invitation.id).await,
            404,
            "not_found",
            None,
        );
    }
    assert_api_error(carol.get_room(&room.id).await, 403, "not_member", None);
    assert_api_error(
        bob.accept_invitation(UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );

    // Bob's invitation is untouched by the attempts.
    assert_eq!(bob.invitations().await.unwrap(), vec![invitation.clone()]);
    bob.accept_invitation(&invitation.id).await.expect("accept");
}

#[tokio::test]
async fn inviting_someone_who_blocked_you_is_403_forbidden_and_sends_nothing() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "club", &[&carol]).await;
    bob.block(&uid(&alice)).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    assert_api_error(
        alice.invite(&room.id, &uid(&bob)).await,
        403,
        "forbidden",
        None,
    );
    assert!(bob.invitations().await.unwrap().is_empty());
    assert_silent(&mut bob_ws, "bob (blocked the inviter)").await;

    // The block is against alice only: another member may invite bob.
    carol
        .invite(&room.id, &uid(&bob))
        .await
        .expect("carol invites");
    let event = event_of(&mut bob_ws, "invitation.created").await;
    assert_eq!(event["data"]["inviter"]["id"], uid(&carol).as_str());
}

#[tokio::test]
async fn inviting_an_existing_member_is_409_conflict() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;

    assert_api_error(
        alice.invite(&room.id, &uid(&bob)).await,
        409,
        "conflict",
        None,
    );
    assert_api_error(
        alice.invite(&room.id, &uid(&alice)).await,
        422,
        "validation_failed",
        Some("user_id"),
    );
    assert_api_error(
        alice.invite(&room.id, UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );
    assert!(bob.invitations().await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------
// Direct messages
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn opening_a_dm_twice_gives_the_same_room_with_both_users_as_members() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;

    let first = alice.open_dm(&uid(&bob)).await.expect("open dm");
    let again = alice.open_dm(&uid(&bob)).await.expect("open dm again");
    let from_bob = bob.open_dm(&uid(&alice)).await.expect("bob opens it");
    assert_eq!(first.id, again.id);
    assert_eq!(first.id, from_bob.id);
    assert_eq!(first.kind, RoomKind::Dm);
    assert_eq!(first.visibility, Visibility::Private);

    let mut members: Vec<String> = alice
        .members(&first.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    members.sort();
    let mut expected = vec![uid(&alice), uid(&bob)];
    expected.sort();
    assert_eq!(members, expected);
    for client in [&alice, &bob] {
        let rooms = client.my_rooms().await.unwrap();
        assert_eq!(rooms.len(), 1, "exactly one DM room: {rooms:?}");
        assert_eq!(rooms[0].id, first.id);
        assert_eq!(rooms[0].kind, RoomKind::Dm);
    }

    assert_api_error(
        alice.open_dm(&uid(&alice)).await,
        422,
        "validation_failed",
        Some("user_id"),
    );
    assert_api_error(alice.open_dm(UNKNOWN_ID).await, 404, "not_found", None);
}

#[tokio::test]
async fn both_dm_members_receive_its_messages_live_and_nobody_else_does() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    let dm = alice.open_dm(&uid(&bob)).await.unwrap();
    for socket in [&mut alice_ws, &mut bob_ws] {
        event_where(socket, "member.joined", |e| e["data"]["room_id"] == dm.id).await;
    }

    let m1 = alice_ws.send_message(&dm.id, "hi bob", None).await.unwrap();
    let m2 = bob.send_message(&dm.id, "hi alice", None).await.unwrap();
    for socket in [&mut alice_ws, &mut bob_ws] {
        for m in [&m1, &m2] {
            let event = event_of(socket, "message.created").await;
            assert_eq!(event["data"]["id"], m.id.as_str());
        }
    }
    assert_nothing_from(&mut carol_ws, &dm.id, "carol (not in the DM)").await;
    assert_api_error(
        carol.history(&dm.id, None, None, None).await,
        403,
        "not_member",
        None,
    );
    assert_api_error(
        carol.send_message(&dm.id, "let me in", None).await,
        403,
        "not_member",
        None,
    );
}

#[tokio::test]
async fn opening_a_dm_with_someone_who_blocked_you_is_403_forbidden() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    bob.block(&uid(&alice)).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    assert_api_error(alice.open_dm(&uid(&bob)).await, 403, "forbidden", None);
    assert!(alice.my_rooms().await.unwrap().is_empty());
    assert!(bob.my_rooms().await.unwrap().is_empty());
    assert_silent(&mut bob_ws, "bob (blocked alice)").await;
}

#[tokio::test]
async fn sending_into_an_existing_dm_after_the_other_blocked_you_is_403_forbidden() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dm = alice.open_dm(&uid(&bob)).await.unwrap();
    alice.send_message(&dm.id, "before", None).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    bob.block(&uid(&alice)).await.unwrap();
    assert_api_error(
        alice.send_message(&dm.id, "after the block", None).await,
        403,
        "forbidden",
        None,
    );
    assert_rejected(
        alice_ws.send_message(&dm.id, "after the block", None).await,
        "forbidden",
        None,
    );
    assert_api_error(alice.open_dm(&uid(&bob)).await, 403, "forbidden", None);
    assert_nothing_from(&mut bob_ws, &dm.id, "bob (blocked alice)").await;
    let page = bob.history(&dm.id, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 1, "only the message before the block");
}

#[tokio::test]
async fn a_dm_is_not_in_the_directory_and_cannot_be_joined_by_id() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dm = alice.open_dm(&uid(&bob)).await.unwrap();

    let directory = carol.public_rooms().await.unwrap();
    assert!(
        directory.iter().all(|r| r.id != dm.id),
        "the DM is listed: {directory:?}"
    );
    assert_api_error(carol.join_room(&dm.id).await, 403, "forbidden", None);
    let mut carol_ws = carol.connect().await.unwrap();
    assert_rejected(carol_ws.join_room(&dm.id).await, "forbidden", None);
    // Nor can a member bring a third person in, or moderate the other.
    assert_api_error(
        alice.invite(&dm.id, &uid(&carol)).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(alice.kick(&dm.id, &uid(&bob)).await, 403, "forbidden", None);
    assert_eq!(alice.members(&dm.id).await.unwrap().len(), 2);
    assert_nothing_from(&mut carol_ws, &dm.id, "carol").await;
}

// ---------------------------------------------------------------------------------------
// Room update and delete
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn owners_and_admins_update_the_room_and_every_member_gets_room_updated() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let room = room_with(&alice, "before", &[&bob, &carol]).await;
    alice
        .set_member_role(&room.id, &uid(&bob), MemberRole::Admin)
        .await
        .unwrap();
    let mut sockets = vec![
        alice.connect().await.unwrap(),
        bob.connect().await.unwrap(),
        carol.connect().await.unwrap(),
    ];
    let mut dave_ws = dave.connect().await.unwrap();

    let updated = alice
        .update_room(&room.id, Some("renamed"), Some(Some("fresh topic")))
        .await
        .expect("owner updates");
    assert_eq!(updated.name, "renamed");
    assert_eq!(updated.topic.as_deref(), Some("fresh topic"));
    for socket in &mut sockets {
        let event = event_of(socket, "room.updated").await;
        assert_eq!(event["data"]["id"], room.id.as_str());
        assert_eq!(event["data"]["name"], "renamed");
        assert_eq!(event["data"]["topic"], "fresh topic");
    }

    let cleared = bob
        .update_room(&room.id, None, Some(None))
        .await
        .expect("admin updates");
    assert_eq!(cleared.name, "renamed", "an absent name is kept");
    assert_eq!(cleared.topic, None, "a null topic clears it");
    for socket in &mut sockets {
        let event = event_of(socket, "room.updated").await;
        assert_eq!(event["data"]["name"], "renamed");
        assert_eq!(event["data"]["topic"], Value::Null);
    }
    let seen = carol.get_room(&room.id).await.unwrap();
    assert_eq!((seen.name.as_str(), seen.topic), ("renamed", None));

    assert_api_error(
        alice.update_room(&room.id, Some("   "), None).await,
        422,
        "validation_failed",
        Some("name"),
    );
    assert_nothing_from(&mut dave_ws, &room.id, "dave (outsider)").await;
}

#[tokio::test]
async fn a_plain_member_cannot_update_the_room_and_nobody_hears_of_it() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let room = room_with(&alice, "original", &[&carol]).await;
    let mut alice_ws = alice.connect().await.unwrap();

    assert_api_error(
        carol.update_room(&room.id, Some("mine now"), None).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        dave.update_room(&room.id, Some("mine now"), None).await,
        403,
        "not_member",
        None,
    );
    assert_eq!(alice.get_room(&room.id).await.unwrap().name, "original");
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;
}

#[tokio::test]
async fn the_owner_deletes_a_room_members_get_room_deleted_then_nothing_and_it_is_gone() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "doomed", &[&bob]).await;
    alice
        .send_message(&room.id, "last words", None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    alice.delete_room(&room.id).await.expect("delete: 204");
    for socket in [&mut alice_ws, &mut bob_ws] {
        let event = event_of(socket, "room.deleted").await;
        assert_eq!(event["data"], json!({"room_id": room.id}));
    }

    assert_api_error(
        bob.history(&room.id, None, None, None).await,
        404,
        "not_found",
        None,
    );
    assert_api_error(alice.get_room(&room.id).await, 404, "not_found", None);
    assert_api_error(alice.members(&room.id).await, 404, "not_found", None);
    assert_api_error(
        bob.send_message(&room.id, "hello?", None).await,
        404,
        "not_found",
        None,
    );
    assert_rejected(
        alice_ws.send_message(&room.id, "hello?", None).await,
        "not_found",
        None,
    );
    assert_api_error(alice.delete_room(&room.id).await, 404, "not_found", None);
    assert!(bob.my_rooms().await.unwrap().is_empty());
    assert!(alice.my_rooms().await.unwrap().is_empty());
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;
    assert_nothing_from(&mut bob_ws, &room.id, "bob").await;
}

#[tokio::test]
async fn an_admin_or_member_cannot_delete_the_room() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "keep", &[&bob, &carol]).await;
    alice
        .set_member_role(&room.id, &uid(&bob), MemberRole::Admin)
        .await
        .unwrap();
    alice
        .send_message(&room.id, "still here", None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();

    assert_api_error(bob.delete_room(&room.id).await, 403, "forbidden", None);
    assert_api_error(carol.delete_room(&room.id).await, 403, "forbidden", None);
    assert_eq!(
        carol
            .history(&room.id, None, None, None)
            .await
            .unwrap()
            .messages
            .len(),
        1
    );
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;
}

// ---------------------------------------------------------------------------------------
// Leaving
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn leaving_sends_member_left_to_everyone_including_the_leaver_who_then_gets_nothing() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut bob_phone = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    bob.leave_room(&room.id).await.expect("leave: 204");
    for socket in [&mut alice_ws, &mut bob_ws, &mut bob_phone, &mut carol_ws] {
        let event = event_of(socket, "member.left").await;
        assert_member_left(&event, &room.id, &bob, "left");
    }

    let m = alice
        .send_message(&room.id, "bob is gone", None)
        .await
        .unwrap();
    alice.react(&room.id, &m.id, "\u{1F44B}").await.unwrap();
    let event = event_of(&mut carol_ws, "message.created").await;
    assert_eq!(event["data"]["id"], m.id.as_str());
    event_of(&mut carol_ws, "reaction.added").await;
    assert_nothing_from(&mut bob_ws, &room.id, "bob (left)").await;
    assert_nothing_from(&mut bob_phone, &room.id, "bob's other connection").await;

    assert_api_error(
        bob.history(&room.id, None, None, None).await,
        403,
        "not_member",
        None,
    );
    assert_api_error(bob.leave_room(&room.id).await, 403, "not_member", None);
    assert_eq!(alice.members(&room.id).await.unwrap().len(), 2);
    assert!(bob.my_rooms().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_last_owner_leaving_hands_ownership_to_the_longest_standing_admin() {
    let server = TestServer::spawn().await;
    // Created in join order, so ties in `joined_at` break the same way.
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let room = room_with(&alice, "club", &[&bob, &carol, &dave]).await;
    for admin in [&dave, &carol] {
        alice
            .set_member_role(&room.id, &uid(admin), MemberRole::Admin)
            .await
            .unwrap();
    }
    let mut bob_ws = bob.connect().await.unwrap();

    alice.leave_room(&room.id).await.expect("owner leaves");
    let left = event_of(&mut bob_ws, "member.left").await;
    assert_member_left(&left, &room.id, &alice, "left");
    let updated = event_of(&mut bob_ws, "member.updated").await;
    assert_eq!(
        updated["data"],
        json!({"room_id": room.id, "user_id": uid(&carol), "role": "owner"}),
        "carol is the longest-standing admin (bob joined earlier but is a member)"
    );

    let members = bob.members(&room.id).await.unwrap();
    let roles: Vec<(String, MemberRole)> = members
        .iter()
        .map(|m| (m.user_id.clone(), m.role))
        .collect();
    assert_eq!(
        roles,
        vec![
            (uid(&carol), MemberRole::Owner),
            (uid(&dave), MemberRole::Admin),
            (uid(&bob), MemberRole::Member),
        ]
    );
    assert_eq!(
        carol.get_room(&room.id).await.unwrap().my_role,
        Some(MemberRole::Owner)
    );
}

#[tokio::test]
async fn the_last_owner_leaving_without_admins_hands_ownership_to_the_longest_standing_member() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    let mut carol_ws = carol.connect().await.unwrap();

    alice.leave_room(&room.id).await.expect("owner leaves");
    let updated = event_of(&mut carol_ws, "member.updated").await;
    assert_eq!(
        updated["data"],
        json!({"room_id": room.id, "user_id": uid(&bob), "role": "owner"})
    );
    assert_eq!(
        role_of(&carol, &room.id, &bob).await,
        Some(MemberRole::Owner)
    );
    assert_eq!(
        role_of(&carol, &room.id, &carol).await,
        Some(MemberRole::Member)
    );
    // The new owner can do what owners do.
    bob.delete_room(&room.id)
        .await
        .expect("the new owner deletes");
}

// ---------------------------------------------------------------------------------------
// Kick, ban, roles, ownership
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_kicked_member_gets_member_left_kicked_then_nothing_and_may_rejoin_a_public_room() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = public_room_with(&alice, "lobby", &[&bob, &carol]).await;
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    alice.kick(&room.id, &uid(&bob)).await.expect("kick: 204");
    for socket in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        let event = event_of(socket, "member.left").await;
        assert_member_left(&event, &room.id, &bob, "kicked");
    }
    let m = alice
        .send_message(&room.id, "bob was kicked", None)
        .await
        .unwrap();
    event_where(&mut carol_ws, "message.created", |e| {
        e["data"]["id"] == m.id
    })
    .await;
    assert_nothing_from(&mut bob_ws, &room.id, "bob (kicked)").await;
    assert_api_error(
        bob.history(&room.id, None, None, None).await,
        403,
        "not_member",
        None,
    );

    bob.join_room(&room.id)
        .await
        .expect("a kicked user may rejoin");
    event_where(&mut bob_ws, "member.joined", |e| {
        e["data"]["user_id"] == uid(&bob)
    })
    .await;
    let m = alice
        .send_message(&room.id, "welcome back", None)
        .await
        .unwrap();
    event_where(&mut bob_ws, "message.created", |e| e["data"]["id"] == m.id).await;
}

#[tokio::test]
async fn an_admin_bans_a_member_who_cannot_rejoin_or_be_invited_until_unbanned() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = public_room_with(&alice, "lobby", &[&bob, &carol]).await;
    alice
        .set_member_role(&room.id, &uid(&bob), MemberRole::Admin)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    bob.ban(&room.id, &uid(&carol)).await.expect("ban: 204");
    for socket in [&mut alice_ws, &mut bob_ws, &mut carol_ws] {
        let event = event_of(socket, "member.left").await;
        assert_member_left(&event, &room.id, &carol, "banned");
    }
    assert_api_error(carol.join_room(&room.id).await, 403, "forbidden", None);
    assert_rejected(carol_ws.join_room(&room.id).await, "forbidden", None);
    assert_api_error(
        alice.invite(&room.id, &uid(&carol)).await,
        403,
        "forbidden",
        None,
    );
    alice
        .send_message(&room.id, "carol is banned", None)
        .await
        .unwrap();
    assert_nothing_from(&mut carol_ws, &room.id, "carol (banned)").await;

    bob.unban(&room.id, &uid(&carol)).await.expect("unban: 204");
    assert_api_error(
        bob.unban(&room.id, &uid(&carol)).await,
        404,
        "not_found",
        None,
    );
    carol.join_room(&room.id).await.expect("rejoin after unban");
    assert_eq!(
        role_of(&alice, &room.id, &carol).await,
        Some(MemberRole::Member)
    );
}

#[tokio::test]
async fn a_banned_invitee_cannot_accept_the_invitation() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice
        .create_room("club", Visibility::Private, None)
        .await
        .unwrap();
    let invitation = alice.invite(&room.id, &uid(&bob)).await.unwrap();
    alice
        .ban(&room.id, &uid(&bob))
        .await
        .expect("ban a non-member");
    assert_api_error(
        bob.accept_invitation(&invitation.id).await,
        403,
        "forbidden",
        None,
    );
    assert_eq!(alice.members(&room.id).await.unwrap().len(), 1);
    assert_api_error(
        alice.ban(&room.id, UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn an_admin_cannot_kick_or_ban_the_owner_another_admin_or_themself() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let room = room_with(&alice, "club", &[&bob, &carol, &dave]).await;
    for admin in [&bob, &dave] {
        alice
            .set_member_role(&room.id, &uid(admin), MemberRole::Admin)
            .await
            .unwrap();
    }
    let mut alice_ws = alice.connect().await.unwrap();

    for target in [&alice, &dave, &bob] {
        assert_api_error(
            bob.kick(&room.id, &uid(target)).await,
            403,
            "forbidden",
            None,
        );
        assert_api_error(
            bob.ban(&room.id, &uid(target)).await,
            403,
            "forbidden",
            None,
        );
    }
    assert_eq!(alice.members(&room.id).await.unwrap().len(), 4);
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;

    // The owner acts on admins.
    alice
        .kick(&room.id, &uid(&dave))
        .await
        .expect("owner kicks an admin");
    let event = event_of(&mut alice_ws, "member.left").await;
    assert_member_left(&event, &room.id, &dave, "kicked");
    // An admin acts on members.
    bob.kick(&room.id, &uid(&carol))
        .await
        .expect("admin kicks a member");
}

#[tokio::test]
async fn a_plain_member_cannot_kick_ban_or_unban() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let eve = server.user("eve").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    alice.ban(&room.id, &uid(&eve)).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();

    assert_api_error(
        carol.kick(&room.id, &uid(&bob)).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        carol.ban(&room.id, &uid(&bob)).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        carol.unban(&room.id, &uid(&eve)).await,
        403,
        "forbidden",
        None,
    );
    assert_eq!(alice.members(&room.id).await.unwrap().len(), 3);
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;
    assert_api_error(eve.join_room(&room.id).await, 403, "forbidden", None);
    // Kicking someone who is not a member is 404.
    assert_api_error(
        alice.kick(&room.id, &uid(&eve)).await,
        404,
        "not_found",
        None,
    );
}

#[tokio::test]
async fn only_the_owner_sets_roles_and_every_member_gets_member_updated() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let eve = server.user("eve").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    let mut sockets = vec![
        alice.connect().await.unwrap(),
        bob.connect().await.unwrap(),
        carol.connect().await.unwrap(),
    ];

    let member = alice
        .set_member_role(&room.id, &uid(&bob), MemberRole::Admin)
        .await
        .expect("owner sets a role");
    assert_eq!(member.user_id, uid(&bob));
    assert_eq!(member.role, MemberRole::Admin);
    for socket in &mut sockets {
        let event = event_of(socket, "member.updated").await;
        assert_eq!(
            event["data"],
            json!({"room_id": room.id, "user_id": uid(&bob), "role": "admin"})
        );
    }

    assert_api_error(
        bob.set_member_role(&room.id, &uid(&carol), MemberRole::Admin)
            .await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        carol
            .set_member_role(&room.id, &uid(&bob), MemberRole::Member)
            .await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        eve.set_member_role(&room.id, &uid(&bob), MemberRole::Member)
            .await,
        403,
        "not_member",
        None,
    );
    assert_api_error(
        alice
            .set_member_role(&room.id, &uid(&bob), MemberRole::Owner)
            .await,
        422,
        "validation_failed",
        Some("role"),
    );
    assert_api_error(
        alice
            .set_member_role(&room.id, &uid(&alice), MemberRole::Member)
            .await,
        422,
        "validation_failed",
        Some("role"),
    );
    assert_api_error(
        alice
            .set_member_role(&room.id, &uid(&eve), MemberRole::Admin)
            .await,
        404,
        "not_found",
        None,
    );
    assert_eq!(
        role_of(&alice, &room.id, &carol).await,
        Some(MemberRole::Member)
    );

    alice
        .set_member_role(&room.id, &uid(&bob), MemberRole::Member)
        .await
        .expect("back to member");
    for socket in &mut sockets {
        let event = event_of(socket, "member.updated").await;
        assert_eq!(event["data"]["role"], "member", "{event}");
    }
    assert_eq!(
        role_of(&alice, &room.id, &bob).await,
        Some(MemberRole::Member)
    );
}

#[tokio::test]
async fn transferring_ownership_makes_the_target_owner_and_the_caller_an_admin() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    let mut carol_ws = carol.connect().await.unwrap();

    assert_api_error(
        bob.transfer_ownership(&room.id, &uid(&carol)).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        alice.transfer_ownership(&room.id, &uid(&alice)).await,
        422,
        "validation_failed",
        Some("user_id"),
    );
    assert_api_error(
        alice.transfer_ownership(&room.id, UNKNOWN_ID).await,
        404,
        "not_found",
        None,
    );

    alice
        .transfer_ownership(&room.id, &uid(&bob))
        .await
        .expect("transfer: 204");
    let first = event_of(&mut carol_ws, "member.updated").await;
    let second = event_of(&mut carol_ws, "member.updated").await;
    assert_eq!(
        first["data"],
        json!({"room_id": room.id, "user_id": uid(&bob), "role": "owner"})
    );
    assert_eq!(
        second["data"],
        json!({"room_id": room.id, "user_id": uid(&alice), "role": "admin"})
    );
    assert_eq!(
        role_of(&carol, &room.id, &bob).await,
        Some(MemberRole::Owner)
    );
    assert_eq!(
        role_of(&carol, &room.id, &alice).await,
        Some(MemberRole::Admin)
    );

    // Alice is an admin now: owners-only actions are refused.
    assert_api_error(alice.delete_room(&room.id).await, 403, "forbidden", None);
    assert_api_error(
        alice.transfer_ownership(&room.id, &uid(&carol)).await,
        403,
        "forbidden",
        None,
    );
    assert_api_error(
        alice
            .set_member_role(&room.id, &uid(&carol), MemberRole::Admin)
            .await,
        403,
        "forbidden",
        None,
    );
}

// ---------------------------------------------------------------------------------------
// Edits
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_author_edits_a_message_members_get_message_updated_and_earlier_versions_are_kept() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let original = alice.send_message(&room.id, "first", None).await.unwrap();
    assert_eq!(original.edited_at, None);
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    assert!(alice
        .message_edits(&room.id, &original.id)
        .await
        .unwrap()
        .is_empty());

    let edited = alice
        .edit_message(&room.id, &original.id, "second")
        .await
        .expect("edit");
    assert_eq!(edited.id, original.id);
    assert_eq!(edited.seq, original.seq);
    assert_eq!(edited.content, "second");
    assert!(edited.edited_at.is_some(), "edited_at is set");
    for socket in [&mut alice_ws, &mut bob_ws] {
        let event = event_of(socket, "message.updated").await;
        assert_eq!(event["data"], serde_json::to_value(&edited).unwrap());
    }

    let edited = alice
        .edit_message(&room.id, &original.id, "third")
        .await
        .expect("edit again");
    let event = event_of(&mut bob_ws, "message.updated").await;
    assert_eq!(event["data"]["content"], "third");

    let edits = bob.message_edits(&room.id, &original.id).await.unwrap();
    let versions: Vec<(i64, &str)> = edits
        .iter()
        .map(|e| (e.version, e.content.as_str()))
        .collect();
    assert_eq!(versions, vec![(1, "first"), (2, "second")], "oldest first");
    assert!(edits[0].written_at <= edits[1].written_at);

    let page = bob.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 1, "an edit is not a new message");
    assert_eq!(page.messages[0].content, "third");
    assert_eq!(page.messages[0].edited_at, edited.edited_at);
}

#[tokio::test]
async fn editing_someone_elses_message_is_403_forbidden_even_for_the_owner() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    let m = bob
        .send_message(&room.id, "bob's words", None)
        .await
        .unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    for editor in [&alice, &carol] {
        assert_api_error(
            editor.edit_message(&room.id, &m.id, "not yours").await,
            403,
            "forbidden",
            None,
        );
    }
    assert_api_error(
        bob.edit_message(&room.id, &m.id, "").await,
        422,
        "validation_failed",
        Some("content"),
    );
    let page = bob.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages[0].content, "bob's words");
    assert_eq!(page.messages[0].edited_at, None);
    assert!(bob.message_edits(&room.id, &m.id).await.unwrap().is_empty());
    assert_nothing_from(&mut bob_ws, &room.id, "bob").await;
}

#[tokio::test]
async fn editing_a_deleted_message_is_409_conflict() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Private, None)
        .await
        .unwrap();
    let m = alice
        .send_message(&room.id, "gone soon", None)
        .await
        .unwrap();
    alice.delete_message(&room.id, &m.id).await.unwrap();
    assert_api_error(
        alice.edit_message(&room.id, &m.id, "revive").await,
        409,
        "conflict",
        None,
    );
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages[0].content, "");
}

// ---------------------------------------------------------------------------------------
// Deletes
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_author_deletes_a_message_leaving_a_tombstone_in_history_and_members_get_it() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let m = alice.send_message(&room.id, "oops", None).await.unwrap();
    alice.edit_message(&room.id, &m.id, "oops!").await.unwrap();
    bob.react(&room.id, &m.id, "👍").await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let tombstone = alice.delete_message(&room.id, &m.id).await.expect("delete");
    assert_eq!(tombstone.id, m.id);
    assert_eq!(tombstone.seq, m.seq);
    assert_eq!(tombstone.content, "");
    assert!(tombstone.deleted_at.is_some(), "deleted_at is set");
    assert!(tombstone.reactions.is_empty(), "{:?}", tombstone.reactions);
    for socket in [&mut alice_ws, &mut bob_ws] {
        let event = event_of(socket, "message.deleted").await;
        assert_eq!(event["data"], serde_json::to_value(&tombstone).unwrap());
    }

    let page = bob.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages.len(), 1, "the tombstone stays in history");
    assert_eq!(page.messages[0].id, m.id);
    assert_eq!(page.messages[0].content, "");
    assert_eq!(page.messages[0].deleted_at, tombstone.deleted_at);
    assert!(
        bob.message_edits(&room.id, &m.id).await.unwrap().is_empty(),
        "no edit history is kept for a tombstone"
    );

    // Deleting again succeeds and changes (and publishes) nothing.
    let again = alice.delete_message(&room.id, &m.id).await.unwrap();
    assert_eq!(again, tombstone);
    assert_nothing_from(&mut bob_ws, &room.id, "bob").await;
}

#[tokio::test]
async fn a_room_admin_may_delete_someone_elses_message_but_a_plain_member_may_not() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let dave = server.user("dave").await;
    let room = room_with(&alice, "club", &[&bob, &carol, &dave]).await;
    alice
        .set_member_role(&room.id, &uid(&bob), MemberRole::Admin)
        .await
        .unwrap();
    let by_carol = carol.send_message(&room.id, "carol", None).await.unwrap();
    let by_dave = dave.send_message(&room.id, "dave", None).await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    let tombstone = bob
        .delete_message(&room.id, &by_carol.id)
        .await
        .expect("an admin deletes a member's message");
    assert!(tombstone.deleted_at.is_some());
    let event = event_of(&mut carol_ws, "message.deleted").await;
    assert_eq!(event["data"]["id"], by_carol.id.as_str());

    assert_api_error(
        carol.delete_message(&room.id, &by_dave.id).await,
        403,
        "forbidden",
        None,
    );
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    let dave_msg = page.messages.iter().find(|m| m.id == by_dave.id).unwrap();
    assert_eq!(
        (dave_msg.content.as_str(), &dave_msg.deleted_at),
        ("dave", &None)
    );
    assert_nothing_from(&mut carol_ws, &room.id, "carol").await;

    alice
        .delete_message(&room.id, &by_dave.id)
        .await
        .expect("the owner deletes a member's message");
}

// ---------------------------------------------------------------------------------------
// Reactions
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reactions_are_grouped_by_emoji_with_who_reacted_and_members_get_reaction_added() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, "club", &[&bob, &carol]).await;
    let m = carol
        .send_message(&room.id, "react to me", None)
        .await
        .unwrap();
    let mut sockets = vec![
        alice.connect().await.unwrap(),
        bob.connect().await.unwrap(),
        carol.connect().await.unwrap(),
    ];

    let after_alice = alice.react(&room.id, &m.id, "👍").await.expect("react");
    assert_eq!(
        after_alice.reactions,
        vec![Reaction {
            emoji: "👍".into(),
            count: 1,
            user_ids: vec![uid(&alice)],
        }]
    );
    for socket in &mut sockets {
        let event = event_of(socket, "reaction.added").await;
        // The reaction is a change to the room's history: it takes the room's next seq
        // (the message was seq 1), carried at the top level and in the data.
        assert_eq!(event["seq"], 2, "{event}");
        assert_eq!(
            event["data"],
            json!({"room_id": room.id, "message_id": m.id, "emoji": "👍", "user_id": uid(&alice), "seq": 2})
        );
    }

    let after_bob = bob.react(&room.id, &m.id, "👍").await.unwrap();
    let after_party = bob.react(&room.id, &m.id, "🎉").await.unwrap();
    assert_eq!(
        after_bob.reactions,
        vec![Reaction {
            emoji: "👍".into(),
            count: 2,
            user_ids: vec![uid(&alice), uid(&bob)],
        }]
    );
    let expected = vec![
        Reaction {
            emoji: "👍".into(),
            count: 2,
            user_ids: vec![uid(&alice), uid(&bob)],
        },
        Reaction {
            emoji: "🎉".into(),
            count: 1,
            user_ids: vec![uid(&bob)],
        },
    ];
    assert_eq!(after_party.reactions, expected, "in order of first use");
    for socket in &mut sockets {
        for emoji in ["👍", "🎉"] {
            let event = event_of(socket, "reaction.added").await;
            assert_eq!(event["data"]["emoji"], emoji);
            assert_eq!(event["data"]["user_id"], uid(&bob).as_str());
        }
    }
    let page = carol.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(
        page.messages[0].reactions, expected,
        "history shows them too"
    );
}

#[tokio::test]
async fn adding_the_same_reaction_twice_counts_once_and_publishes_one_event() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let m = bob.send_message(&room.id, "hi", None).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    alice.react(&room.id, &m.id, "👍").await.unwrap();
    let twice = alice.react(&room.id, &m.id, "👍").await.unwrap();
    assert_eq!(
        twice.reactions,
        vec![Reaction {
            emoji: "👍".into(),
            count: 1,
            user_ids: vec![uid(&alice)],
        }]
    );
    let events = drain(&mut bob_ws).await;
    let added: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "reaction.added")
        .collect();
    assert_eq!(added.len(), 1, "one reaction.added: {events:#?}");
}

#[tokio::test]
async fn removing_a_reaction_publishes_reaction_removed_once() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let m = bob.send_message(&room.id, "hi", None).await.unwrap();
    alice.react(&room.id, &m.id, "❤️").await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let after = alice.unreact(&room.id, &m.id, "❤️").await.expect("unreact");
    assert!(after.reactions.is_empty(), "{:?}", after.reactions);
    let event = event_of(&mut bob_ws, "reaction.removed").await;
    // seq 1 the message, 2 the reaction, 3 its removal.
    assert_eq!(event["seq"], 3, "{event}");
    assert_eq!(
        event["data"],
        json!({"room_id": room.id, "message_id": m.id, "emoji": "❤️", "user_id": uid(&alice), "seq": 3})
    );

    // Removing a reaction one does not have changes and publishes nothing.
    let again = alice.unreact(&room.id, &m.id, "❤️").await.unwrap();
    assert!(again.reactions.is_empty());
    assert_nothing_from(&mut bob_ws, &room.id, "bob").await;
}

#[tokio::test]
async fn a_reaction_that_is_not_exactly_one_emoji_is_422_emoji() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let m = alice.send_message(&room.id, "hi", None).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    for emoji in ["a", "👍👍", "thumbsup"] {
        assert_api_error(
            alice.react(&room.id, &m.id, emoji).await,
            422,
            "validation_failed",
            Some("emoji"),
        );
        assert_api_error(
            alice.unreact(&room.id, &m.id, emoji).await,
            422,
            "validation_failed",
            Some("emoji"),
        );
        assert_rejected(
            alice_ws.react(&room.id, &m.id, emoji).await,
            "validation_failed",
            Some("emoji"),
        );
    }
    let page = bob.history(&room.id, None, None, None).await.unwrap();
    assert!(page.messages[0].reactions.is_empty());
    assert_nothing_from(&mut bob_ws, &room.id, "bob").await;
}

#[tokio::test]
async fn a_reaction_may_be_one_emoji_with_a_skin_tone_or_a_zwj_sequence() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("r", Visibility::Private, None)
        .await
        .unwrap();
    let m = alice.send_message(&room.id, "hi", None).await.unwrap();
    // Thumbs up with a skin tone; woman technologist (ZWJ); rainbow flag (ZWJ, VS16).
    let emojis = [
        "\u{1F44D}\u{1F3FD}",
        "\u{1F469}\u{200D}\u{1F4BB}",
        "\u{1F3F3}\u{FE0F}\u{200D}\u{1F308}",
    ];
    for emoji in emojis {
        alice
            .react(&room.id, &m.id, emoji)
            .await
            .unwrap_or_else(|e| panic!("reacting with {emoji:?}: {e}"));
    }
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    let stored: Vec<&str> = page.messages[0]
        .reactions
        .iter()
        .map(|r| r.emoji.as_str())
        .collect();
    assert_eq!(stored, emojis);
}

#[tokio::test]
async fn reacting_in_a_room_you_are_not_in_is_403_not_member_and_publishes_nothing() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let m = alice
        .send_message(&room.id, "members only", None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut eve_ws = eve.connect().await.unwrap();

    assert_api_error(
        eve.react(&room.id, &m.id, "👍").await,
        403,
        "not_member",
        None,
    );
    assert_api_error(
        eve.unreact(&room.id, &m.id, "👍").await,
        403,
        "not_member",
        None,
    );
    assert_rejected(
        eve_ws.react(&room.id, &m.id, "👍").await,
        "not_member",
        None,
    );
    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert!(page.messages[0].reactions.is_empty());
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;
    assert_nothing_from(&mut bob_ws, &room.id, "bob").await;
}

// ---------------------------------------------------------------------------------------
// Replies and ids of other rooms
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_reply_to_a_message_of_the_same_room_is_stored_with_reply_to() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let question = alice.send_message(&room.id, "lunch?", None).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let answer = bob
        .send_message_with(&room.id, &send_req("yes", Some(&question.id), None))
        .await
        .expect("reply over REST");
    assert_eq!(answer.reply_to.as_deref(), Some(question.id.as_str()));
    let event = event_of(&mut alice_ws, "message.created").await;
    assert_eq!(event["data"]["reply_to"], question.id.as_str());

    let over_ws = bob_ws
        .send_message_with(&room.id, &send_req("at noon", Some(&answer.id), None))
        .await
        .expect("reply over the WebSocket");
    assert_eq!(over_ws.reply_to.as_deref(), Some(answer.id.as_str()));

    let page = alice.history(&room.id, None, None, None).await.unwrap();
    let replies: Vec<Option<&str>> = page
        .messages
        .iter()
        .map(|m| m.reply_to.as_deref())
        .collect();
    assert_eq!(
        replies,
        vec![None, Some(question.id.as_str()), Some(answer.id.as_str())]
    );
}

#[tokio::test]
async fn a_reply_to_a_message_of_another_room_is_422_reply_to() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let here = alice
        .create_room("here", Visibility::Private, None)
        .await
        .unwrap();
    let there = alice
        .create_room("there", Visibility::Private, None)
        .await
        .unwrap();
    let elsewhere = alice
        .send_message(&there.id, "elsewhere", None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();

    for reply_to in [elsewhere.id.as_str(), UNKNOWN_ID] {
        assert_api_error(
            alice
                .send_message_with(&here.id, &send_req("re", Some(reply_to), None))
                .await,
            422,
            "validation_failed",
            Some("reply_to"),
        );
        assert_rejected(
            alice_ws
                .send_message_with(&here.id, &send_req("re", Some(reply_to), None))
                .await,
            "validation_failed",
            Some("reply_to"),
        );
    }
    let page = alice.history(&here.id, None, None, None).await.unwrap();
    assert!(
        page.messages.is_empty(),
        "nothing stored: {:?}",
        page.messages
    );
    assert_nothing_from(&mut alice_ws, &here.id, "alice").await;
}

#[tokio::test]
async fn a_message_id_of_another_room_is_404_in_every_message_route() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let here = alice
        .create_room("here", Visibility::Private, None)
        .await
        .unwrap();
    let there = alice
        .create_room("there", Visibility::Private, None)
        .await
        .unwrap();
    let foreign = alice
        .send_message(&there.id, "over there", None)
        .await
        .unwrap();
    let mut ws = alice.connect().await.unwrap();

    for id in [foreign.id.as_str(), UNKNOWN_ID] {
        assert_api_error(
            alice.edit_message(&here.id, id, "x").await,
            404,
            "not_found",
            None,
        );
        assert_api_error(
            alice.delete_message(&here.id, id).await,
            404,
            "not_found",
            None,
        );
        assert_api_error(
            alice.message_edits(&here.id, id).await,
            404,
            "not_found",
            None,
        );
        assert_api_error(
            alice.react(&here.id, id, "👍").await,
            404,
            "not_found",
            None,
        );
        assert_api_error(
            alice.unreact(&here.id, id, "👍").await,
            404,
            "not_found",
            None,
        );
        assert_rejected(ws.edit_message(&here.id, id, "x").await, "not_found", None);
        assert_rejected(ws.delete_message(&here.id, id).await, "not_found", None);
        assert_rejected(ws.react(&here.id, id, "👍").await, "not_found", None);
        assert_rejected(ws.unreact(&here.id, id, "👍").await, "not_found", None);
    }

    let page = alice.history(&there.id, None, None, None).await.unwrap();
    assert_eq!(page.messages, vec![foreign], "the message is untouched");
    let events = drain(&mut ws).await;
    assert!(
        events.is_empty(),
        "no event for failed actions: {events:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// Read state
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn marking_read_returns_the_marker_and_unread_count_and_never_moves_back() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    for text in ["one", "two", "three"] {
        alice.send_message(&room.id, text, None).await.unwrap();
    }
    bob.send_message(&room.id, "four (bob's own)", None)
        .await
        .unwrap();
    let mut alice_ws = alice.connect().await.unwrap();

    let state = bob.mark_read(&room.id, 2).await.expect("read");
    assert_eq!(state.room_id, room.id);
    assert_eq!(state.last_read_seq, 2);
    assert_eq!(state.unread_count, 1, "seq 3 is unread; seq 4 is bob's own");
    let receipt = event_of(&mut alice_ws, "receipt.updated").await;
    assert_eq!(
        receipt["data"],
        json!({"room_id": room.id, "user_id": uid(&bob), "seq": 2})
    );

    let back = bob.mark_read(&room.id, 1).await.expect("read backwards");
    assert_eq!((back.last_read_seq, back.unread_count), (2, 1), "kept");

    let past_end = bob.mark_read(&room.id, 100).await.unwrap();
    assert_eq!(
        (past_end.last_read_seq, past_end.unread_count),
        (4, 0),
        "capped at the room's last seq"
    );
    // The next receipt is for 4: moving backwards published nothing.
    let receipt = event_of(&mut alice_ws, "receipt.updated").await;
    assert_eq!(receipt["data"]["seq"], 4, "{receipt}");

    assert_api_error(
        bob.mark_read(&room.id, -1).await,
        422,
        "validation_failed",
        Some("seq"),
    );
    assert_eq!(bob.get_room(&room.id).await.unwrap().last_read_seq, Some(4));
    // Other members see the marker in the member list (e.g. "seen by" after a reload).
    let markers: Vec<(String, i64)> = alice
        .members(&room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user_id, m.last_read_seq))
        .collect();
    assert!(markers.contains(&(uid(&bob), 4)), "{markers:?}");
    assert!(markers.contains(&(uid(&alice), 0)), "{markers:?}");
}

#[tokio::test]
async fn the_room_list_shows_last_message_read_marker_and_unread_count_of_others_live_messages() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let quiet = room_with(&alice, "quiet", &[&bob]).await;
    let _m1 = alice.send_message(&room.id, "m1", None).await.unwrap();
    let m2 = alice.send_message(&room.id, "m2", None).await.unwrap();
    let _m3 = alice.send_message(&room.id, "m3", None).await.unwrap();
    let b1 = bob.send_message(&room.id, "b1", None).await.unwrap();
    alice.delete_message(&room.id, &m2.id).await.unwrap();

    let find = |rooms: Vec<Room>, id: &str| rooms.into_iter().find(|r| r.id == id).unwrap();
    let bobs = find(bob.my_rooms().await.unwrap(), &room.id);
    assert_eq!(bobs.last_read_seq, Some(0));
    assert_eq!(
        bobs.unread_count,
        Some(2),
        "m1 and m3: m2 is deleted, b1 is bob's own"
    );
    let last = bobs.last_message.expect("last_message");
    assert_eq!((last.id.as_str(), last.seq), (b1.id.as_str(), 4));
    assert_eq!(bobs.my_role, Some(MemberRole::Member));

    let alices = find(alice.my_rooms().await.unwrap(), &room.id);
    assert_eq!(
        (alices.last_read_seq, alices.unread_count),
        (Some(0), Some(1))
    );

    let empty = find(bob.my_rooms().await.unwrap(), &quiet.id);
    assert_eq!(empty.last_message, None);
    assert_eq!(
        (empty.last_read_seq, empty.unread_count),
        (Some(0), Some(0))
    );

    bob.mark_read(&room.id, 1).await.unwrap();
    let bobs = find(bob.my_rooms().await.unwrap(), &room.id);
    assert_eq!((bobs.last_read_seq, bobs.unread_count), (Some(1), Some(1)));
}

#[tokio::test]
async fn get_room_is_a_member_view_with_role_read_marker_and_unread_count() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    for text in ["one", "two", "three"] {
        alice.send_message(&room.id, text, None).await.unwrap();
    }
    bob.mark_read(&room.id, 1).await.unwrap();

    // docs/protocol.md: "in views for a member, `my_role`, `last_read_seq`,
    // `unread_count`"; GET /rooms/{room_id} is the room as the calling member sees it.
    let seen = bob.get_room(&room.id).await.unwrap();
    assert_eq!(seen.my_role, Some(MemberRole::Member));
    assert_eq!(seen.last_seq, 3);
    assert_eq!(seen.member_count, 2);
    assert_eq!(seen.last_read_seq, Some(1));
    assert_eq!(seen.unread_count, Some(2), "seq 2 and 3 are unread");
}

#[tokio::test]
async fn read_over_the_websocket_moves_the_marker_and_members_get_receipt_updated() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    alice.send_message(&room.id, "one", None).await.unwrap();
    alice.send_message(&room.id, "two", None).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut eve_ws = eve.connect().await.unwrap();

    let state = bob_ws.mark_read(&room.id, 1).await.expect("read over ws");
    assert_eq!(
        (
            state.room_id.as_str(),
            state.last_read_seq,
            state.unread_count
        ),
        (room.id.as_str(), 1, 1)
    );
    let receipt = event_of(&mut alice_ws, "receipt.updated").await;
    assert_eq!(
        receipt["data"],
        json!({"room_id": room.id, "user_id": uid(&bob), "seq": 1})
    );
    assert_rejected(
        bob_ws.mark_read(&room.id, -5).await,
        "validation_failed",
        Some("seq"),
    );
    assert_rejected(eve_ws.mark_read(&room.id, 1).await, "not_member", None);
    assert_eq!(bob.get_room(&room.id).await.unwrap().last_read_seq, Some(1));
}

// ---------------------------------------------------------------------------------------
// Attachments
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_upload_is_typed_by_its_bytes_and_the_uploader_can_download_it_before_posting() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let bytes = png(300);

    let attachment = alice.upload("x.txt", &bytes).await.expect("upload");
    assert_eq!(attachment.content_type, "image/png", "sniffed, not trusted");
    assert_eq!(attachment.filename, "x.txt");
    assert_eq!(attachment.size, bytes.len() as i64);
    assert_eq!(
        attachment.url,
        format!("/api/v1/attachments/{}", attachment.id)
    );

    let (status, content_type, body) = alice.download(&attachment.id).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(body, bytes, "the same bytes");

    // Nobody else may fetch it before it is posted.
    let (status, _, body) = bob.download(&attachment.id).await.unwrap();
    assert_eq!(status, 404);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn an_attachment_message_is_downloadable_by_room_members_and_404_for_outsiders() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let mut bob_ws = bob.connect().await.unwrap();
    let bytes = png(2000);
    let attachment = alice.upload("photo.png", &bytes).await.unwrap();

    let m = alice
        .send_message_with(&room.id, &send_req("look", None, Some(&attachment.id)))
        .await
        .expect("send with attachment");
    assert_eq!(m.message_type, MessageType::Attachment);
    assert_eq!(m.attachment.as_ref(), Some(&attachment));
    assert_eq!(m.content, "look");
    let event = event_of(&mut bob_ws, "message.created").await;
    assert_eq!(event["data"]["message_type"], "attachment");
    assert_eq!(
        event["data"]["attachment"],
        serde_json::to_value(&attachment).unwrap()
    );

    let (status, content_type, body) = bob.download(&attachment.id).await.unwrap();
    assert_eq!(status, 200, "a member downloads");
    assert_eq!(content_type.as_deref(), Some("image/png"));
    assert_eq!(body, bytes);

    for (who, client, id) in [
        ("an outsider", &eve, attachment.id.as_str()),
        ("anyone, for an unknown id", &alice, UNKNOWN_ID),
    ] {
        let (status, _, body) = client.download(id).await.unwrap();
        assert_eq!(status, 404, "{who}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{who}");
    }

    // The caption is optional.
    let second = alice.upload("b.png", &png(64)).await.unwrap();
    let m = alice
        .send_message_with(&room.id, &send_req("", None, Some(&second.id)))
        .await
        .expect("no caption");
    assert_eq!(
        (m.content.as_str(), m.message_type),
        ("", MessageType::Attachment)
    );
}

#[tokio::test]
async fn deleting_an_attachment_message_leaves_a_tombstone_without_the_attachment() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let attachment = alice.upload("photo.png", &png(500)).await.unwrap();
    let m = alice
        .send_message_with(&room.id, &send_req("look", None, Some(&attachment.id)))
        .await
        .unwrap();
    let mut bob_ws = bob.connect().await.unwrap();

    let tombstone = alice.delete_message(&room.id, &m.id).await.unwrap();
    assert_eq!(tombstone.attachment, None, "the attachment is gone");
    assert_eq!(tombstone.content, "");
    let event = event_of(&mut bob_ws, "message.deleted").await;
    assert_eq!(event["data"]["attachment"], Value::Null);
    let page = bob.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages[0].attachment, None);

    let (status, _, _) = bob.download(&attachment.id).await.unwrap();
    assert_eq!(status, 404, "no longer posted anywhere bob is");
    let (status, _, _) = alice.download(&attachment.id).await.unwrap();
    assert_eq!(status, 200, "the uploader keeps access");
}

#[tokio::test]
async fn an_upload_over_the_size_limit_is_413_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn_with(dir, |c| c.attachments.max_bytes = 1024).await;
    let alice = server.user("alice").await;
    assert_eq!(stored_files(&server), 0);

    assert_api_error(
        alice.upload("big.png", &png(4096)).await,
        413,
        "payload_too_large",
        None,
    );
    assert_api_error(
        alice.upload("big.png", &png(1025)).await,
        413,
        "payload_too_large",
        None,
    );
    assert_eq!(stored_files(&server), 0, "nothing stored");

    let fits = alice
        .upload("ok.png", &png(1024))
        .await
        .expect("at the limit");
    assert_eq!(fits.size, 1024);
    assert_eq!(stored_files(&server), 1, "exactly the one that fits");
}

#[tokio::test]
async fn an_executable_upload_is_415_unsupported_media_type_and_an_empty_one_422_file() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let mut exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff".to_vec();
    exe.resize(512, 0);

    assert_api_error(
        alice.upload("holiday.png", &exe).await,
        415,
        "unsupported_media_type",
        None,
    );
    assert_api_error(
        alice.upload("empty.png", b"").await,
        422,
        "validation_failed",
        Some("file"),
    );
    assert_eq!(stored_files(&server), 0, "nothing stored");
}

#[tokio::test]
async fn sending_someone_elses_attachment_is_422_attachment_id() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let bobs = bob.upload("bob.png", &png(100)).await.unwrap();
    let mut alice_ws = alice.connect().await.unwrap();

    for id in [bobs.id.as_str(), UNKNOWN_ID] {
        assert_api_error(
            alice
                .send_message_with(&room.id, &send_req("mine", None, Some(id)))
                .await,
            422,
            "validation_failed",
            Some("attachment_id"),
        );
        assert_rejected(
            alice_ws
                .send_message_with(&room.id, &send_req("mine", None, Some(id)))
                .await,
            "validation_failed",
            Some("attachment_id"),
        );
    }
    let (status, _, _) = alice.download(&bobs.id).await.unwrap();
    assert_eq!(status, 404, "still private to bob");
    assert!(alice
        .history(&room.id, None, None, None)
        .await
        .unwrap()
        .messages
        .is_empty());
    assert_nothing_from(&mut alice_ws, &room.id, "alice").await;
}

// ---------------------------------------------------------------------------------------
// The same actions over the WebSocket
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn chat_actions_over_the_websocket_reply_ok_and_publish_the_same_events() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = public_room_with(&alice, "lobby", &[&bob]).await;
    let mut alice_ws = alice.connect().await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut carol_ws = carol.connect().await.unwrap();

    let m = alice_ws
        .send_message(&room.id, "hello", None)
        .await
        .unwrap();
    event_of(&mut bob_ws, "message.created").await;

    let edited = alice_ws
        .edit_message(&room.id, &m.id, "hello, world")
        .await
        .expect("message.edit");
    assert_eq!(edited.content, "hello, world");
    assert!(edited.edited_at.is_some());
    let event = event_of(&mut bob_ws, "message.updated").await;
    assert_eq!(event["data"], serde_json::to_value(&edited).unwrap());

    let reacted = bob_ws
        .react(&room.id, &m.id, "👍")
        .await
        .expect("reaction.add");
    assert_eq!(reacted.reactions.len(), 1);
    assert_eq!(reacted.reactions[0].user_ids, vec![uid(&bob)]);
    let event = event_of(&mut alice_ws, "reaction.added").await;
    assert_eq!(event["data"]["user_id"], uid(&bob).as_str());

    let unreacted = bob_ws
        .unreact(&room.id, &m.id, "👍")
        .await
        .expect("reaction.remove");
    assert!(unreacted.reactions.is_empty());
    let event = event_of(&mut alice_ws, "reaction.removed").await;
    assert_eq!(event["data"]["emoji"], "👍");

    let state = bob_ws.mark_read(&room.id, m.seq).await.expect("read");
    assert_eq!(state.last_read_seq, m.seq);
    let event = event_of(&mut alice_ws, "receipt.updated").await;
    assert_eq!(event["data"]["user_id"], uid(&bob).as_str());

    let tombstone = alice_ws
        .delete_message(&room.id, &m.id)
        .await
        .expect("message.delete");
    assert_eq!(tombstone.content, "");
    assert!(tombstone.deleted_at.is_some());
    let event = event_of(&mut bob_ws, "message.deleted").await;
    assert_eq!(event["data"]["id"], m.id.as_str());

    let joined = carol_ws.join_room(&room.id).await.expect("room.join");
    assert_eq!(joined.id, room.id);
    for socket in [&mut alice_ws, &mut carol_ws] {
        let event = event_of(socket, "member.joined").await;
        assert_eq!(event["data"]["user_id"], uid(&carol).as_str());
    }
    carol_ws.leave_room(&room.id).await.expect("room.leave");
    for socket in [&mut alice_ws, &mut carol_ws] {
        let event = event_of(socket, "member.left").await;
        assert_member_left(&event, &room.id, &carol, "left");
    }
    alice_ws
        .send_message(&room.id, "bye carol", None)
        .await
        .unwrap();
    assert_nothing_from(&mut carol_ws, &room.id, "carol (left over ws)").await;
}

#[tokio::test]
async fn failed_websocket_requests_reply_with_the_rest_error_codes() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let eve = server.user("eve").await;
    let room = room_with(&alice, "club", &[&bob]).await;
    let by_alice = alice.send_message(&room.id, "alice's", None).await.unwrap();
    let deleted = bob
        .send_message(&room.id, "bob's, deleted", None)
        .await
        .unwrap();
    bob.delete_message(&room.id, &deleted.id).await.unwrap();
    let mut bob_ws = bob.connect().await.unwrap();
    let mut eve_ws = eve.connect().await.unwrap();

    assert_rejected(
        bob_ws.edit_message(&room.id, &by_alice.id, "mine").await,
        "forbidden",
        None,
    );
    assert_rejected(
        bob_ws.edit_message(&room.id, &deleted.id, "back").await,
        "conflict",
        None,
    );
    assert_rejected(
        bob_ws.delete_message(&room.id, &by_alice.id).await,
        "forbidden",
        None,
    );
    assert_rejected(
        bob_ws.react(&room.id, &by_alice.id, "a").await,
        "validation_failed",
        Some("emoji"),
    );
    assert_rejected(
        eve_ws.react(&room.id, &by_alice.id, "👍").await,
        "not_member",
        None,
    );
    assert_rejected(
        eve_ws.unreact(&room.id, &by_alice.id, "👍").await,
        "not_member",
        None,
    );
    assert_rejected(
        eve_ws.edit_message(&room.id, &by_alice.id, "x").await,
        "not_member",
        None,
    );
    assert_rejected(
        eve_ws.delete_message(&room.id, &by_alice.id).await,
        "not_member",
        None,
    );
    assert_rejected(eve_ws.mark_read(&room.id, 1).await, "not_member", None);
    assert_rejected(
        eve_ws.send_message(&room.id, "hi", None).await,
        "not_member",
        None,
    );
    assert_rejected(eve_ws.join_room(&room.id).await, "forbidden", None);
    assert_rejected(eve_ws.leave_room(&room.id).await, "not_member", None);
    assert_rejected(eve_ws.join_room(UNKNOWN_ID).await, "not_found", None);

    let page = alice.history(&room.id, None, None, None).await.unwrap();
    assert_eq!(page.messages[0].content, "alice's");
    assert!(page.messages[0].reactions.is_empty());
    assert_eq!(alice.members(&room.id).await.unwrap().len(), 2);
    assert_nothing_from(&mut eve_ws, &room.id, "eve").await;
}

/// In a DM both users are owners, yet neither may delete the other's messages (only the
/// author can); each still deletes their own.
#[tokio::test]
async fn a_dm_member_cannot_delete_the_other_members_messages() {
    let server = TestServer::spawn().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let dm = alice.open_dm(&uid(&bob)).await.unwrap();
    let hers = alice.send_message(&dm.id, "mine", None).await.unwrap();
    assert_api_error(
        bob.delete_message(&dm.id, &hers.id).await,
        403,
        "forbidden",
        None,
    );
    let page = alice.history(&dm.id, None, None, None).await.unwrap();
    assert!(
        page.messages
            .iter()
            .any(|m| m.id == hers.id && m.deleted_at.is_none()),
        "the message is still there"
    );
    let his = bob.send_message(&dm.id, "his", None).await.unwrap();
    bob.delete_message(&dm.id, &his.id).await.unwrap();
    alice.delete_message(&dm.id, &hers.id).await.unwrap();
}
