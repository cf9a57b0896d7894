//! Conformance tests of the stored side of mentions: the `mentions` column, the
//! notified users (`message_mentions`) behind the per-room mention counts, and a room's
//! `room_mentions` setting.

use palaver_protocol::{Mentions, RoomMentions};

use super::{add_room, add_user, at, join, message, send};
use crate::store::{PageQuery, Store};

async fn mention_count(store: &Store, room: &str, user: &str) -> i64 {
    store
        .rooms
        .member_room(room, user)
        .await
        .unwrap()
        .expect("a member")
        .mention_count
}

pub(super) async fn mentions_are_stored_counted_until_read_and_replaced_by_edits(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_user(&store, "u2", "bob").await;
    add_user(&store, "u3", "carol").await;
    add_room(&store, "r1", "u1").await;
    join(&store, "r1", "u2", 1).await;
    join(&store, "r1", "u3", 1).await;
    let to_bob = Mentions {
        user_ids: vec!["u2".into()],
        room: false,
        here: false,
    };
    let mut m = message("r1", "u1", "hi @bob", None);
    m.mentions = to_bob.clone();
    m.mentioned = vec!["u2".into()];
    let (first, _) = send(&store, m).await.unwrap();
    assert_eq!(first.mentions, to_bob);
    let mut everyone = message("r1", "u1", "@room lunch", None);
    everyone.mentions = Mentions {
        user_ids: vec![],
        room: true,
        here: false,
    };
    everyone.mentioned = vec!["u2".into(), "u3".into(), "gone-user".into()];
    send(&store, everyone).await.unwrap();
    send(&store, message("r1", "u1", "plain", None))
        .await
        .unwrap();
    assert_eq!(mention_count(&store, "r1", "u2").await, 2);
    assert_eq!(mention_count(&store, "r1", "u3").await, 1);
    assert_eq!(mention_count(&store, "r1", "u1").await, 0);
    // History carries what the content mentions.
    let (page, _) = store
        .messages
        .messages_page(
            "r1",
            PageQuery {
                before: None,
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(page[0].mentions, to_bob);
    assert!(page[1].mentions.room);
    assert_eq!(page[2].mentions, Mentions::default());
    // Reading up to the first message leaves one.
    assert_eq!(
        store.rooms.mark_read("r1", "u2", first.seq).await.unwrap(),
        Some((first.seq, 2, 1))
    );
    assert_eq!(mention_count(&store, "r1", "u2").await, 1);
    // An edit replaces whom the message notifies: carol instead of bob.
    let to_carol = Mentions {
        user_ids: vec!["u3".into()],
        room: false,
        here: false,
    };
    let mut later = message("r1", "u1", "hey @bob", None);
    later.mentions = to_bob.clone();
    later.mentioned = vec!["u2".into()];
    let (later, _) = send(&store, later).await.unwrap();
    assert_eq!(mention_count(&store, "r1", "u2").await, 2);
    let edited = store
        .messages
        .edit_message(
            "r1",
            &later.id,
            "hey @carol",
            &to_carol,
            &["u3".into()],
            &at(9),
        )
        .await
        .unwrap();
    assert_eq!(edited.mentions, to_carol);
    assert_eq!(mention_count(&store, "r1", "u2").await, 1);
    assert_eq!(mention_count(&store, "r1", "u3").await, 2);
    // A deleted message notifies nobody any more, and says nothing of whom it mentioned.
    let tombstone = store
        .messages
        .delete_message("r1", &later.id, &at(10))
        .await
        .unwrap();
    assert_eq!(tombstone.mentions, Mentions::default());
    assert_eq!(mention_count(&store, "r1", "u3").await, 1);
    // Rooms list the count too.
    let rooms = store.rooms.rooms_for_user("u3").await.unwrap();
    assert_eq!(rooms[0].mention_count, 1);
}

pub(super) async fn a_room_keeps_who_may_mention_everyone(store: Store) {
    add_user(&store, "u1", "alice").await;
    add_room(&store, "r1", "u1").await;
    let room = store.rooms.room_by_id("r1").await.unwrap().unwrap();
    assert_eq!(room.room_mentions, RoomMentions::Members);
    let updated = store
        .rooms
        .update_room("r1", "r1", None, RoomMentions::Admins, &at(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.room_mentions, RoomMentions::Admins);
    let room = store.rooms.room_by_id("r1").await.unwrap().unwrap();
    assert_eq!(room.room_mentions, RoomMentions::Admins);
}
