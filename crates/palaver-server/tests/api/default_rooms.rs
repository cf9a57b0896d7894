//! Default rooms (issue 20): every new account joins the public channels named in
//! `default_rooms` (default `["general"]`); the first account creates a missing one and
//! owns it; a private room of that name does not count; a name the limits refuse is
//! skipped without failing the registration.

use palaver_protocol::{MemberRole, RoomKind, Visibility};

use crate::conversations::uid;
use crate::helpers::TestServer;

#[tokio::test]
async fn new_accounts_join_the_default_rooms_and_the_first_creates_them() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.default_rooms = vec!["general".into(), "random".into(), " ".into()];
    })
    .await;
    let first = server.user("def_first").await;
    let mut rooms = first.my_rooms().await.unwrap();
    rooms.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["general", "random"], "the blank name is skipped");
    for room in &rooms {
        assert_eq!(room.visibility, Visibility::Public);
        assert_eq!(room.kind, RoomKind::Channel);
        assert_eq!(room.my_role, Some(MemberRole::Owner));
        assert_eq!(room.created_by, uid(&first));
    }
    // A private room named like a default room is not one.
    first
        .create_room("general", Visibility::Private, None)
        .await
        .unwrap();
    let second = server.user("def_second").await;
    let mut theirs = second.my_rooms().await.unwrap();
    theirs.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        theirs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        rooms.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        "the same two public channels"
    );
    assert!(theirs.iter().all(|r| r.my_role == Some(MemberRole::Member)));
    assert_eq!(theirs[0].member_count, 2);
    // And they talk there at once.
    let general = &theirs[0];
    second
        .send_message(&general.id, "hello everyone", None)
        .await
        .unwrap();
    let page = first.history(&general.id, None, None, None).await.unwrap();
    assert_eq!(page.messages.last().unwrap().content, "hello everyone");
}

#[tokio::test]
async fn no_default_rooms_means_an_empty_room_list() {
    let server = TestServer::spawn_with(tempfile::tempdir().unwrap(), |c| {
        c.default_rooms = Vec::new();
    })
    .await;
    let user = server.user("def_none").await;
    assert!(user.my_rooms().await.unwrap().is_empty());
}
