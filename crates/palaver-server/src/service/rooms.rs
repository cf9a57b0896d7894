//! Rooms: create, list, the public directory, join.

use palaver_protocol::rest::CreateRoomRequest;
use palaver_protocol::ws::{Event, MemberJoined, Ready};
use palaver_protocol::{ErrorCode, Room, Visibility};

use super::validate::{parse_topic, RoomName};
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::Membership;
use crate::error::{AppError, AppResult};
use crate::store::{MemberRole, NewRoom, RoomRow};

/// How many rooms the public directory lists.
const DIRECTORY_LIMIT: i64 = 200;

/// The wire form of a stored room.
pub fn room_to_wire(row: RoomRow) -> Room {
    Room {
        id: row.id,
        name: row.name,
        topic: row.topic,
        visibility: row.visibility,
        created_by: row.created_by,
        created_at: row.created_at,
        last_seq: row.last_seq,
        member_count: row.member_count,
    }
}

impl Service {
    /// Creates a room; the caller becomes its owner and first member.
    ///
    /// # Errors
    /// `422 validation_failed` for `name` or `topic`.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn create_room(&self, actor: &Actor, req: CreateRoomRequest) -> AppResult<Room> {
        let name = RoomName::parse(&req.name, &self.limits)?;
        let topic = parse_topic(req.topic.as_deref(), &self.limits)?;
        let room = NewRoom {
            id: new_id(),
            name: name.into_inner(),
            topic,
            visibility: req.visibility,
            created_by: actor.user_id.clone(),
            created_at: now_rfc3339(),
        };
        let username = self.me(actor).await?.username;
        let row = self.store.rooms.create_room(&room).await?;
        // The creator's open connections start receiving the room's events.
        let _order = self.room_lock(&row.id).lock().await;
        self.announce_join(actor, &row.id, username).await;
        Ok(room_to_wire(row))
    }

    /// What a new WebSocket connection is told first: the user and their rooms.
    ///
    /// # Errors
    /// `401 unauthorized` if the account no longer exists.
    pub async fn ready(&self, actor: &Actor) -> AppResult<Ready> {
        let user = self.me(actor).await?;
        let rooms = self.my_rooms(actor).await?;
        Ok(Ready { user, rooms })
    }

    /// Rooms the caller is a member of.
    pub async fn my_rooms(&self, actor: &Actor) -> AppResult<Vec<Room>> {
        let rows = self.store.rooms.rooms_for_user(&actor.user_id).await?;
        Ok(rows.into_iter().map(room_to_wire).collect())
    }

    /// The public directory, newest first.
    pub async fn public_rooms(&self) -> AppResult<Vec<Room>> {
        let rows = self.store.rooms.public_rooms(DIRECTORY_LIMIT).await?;
        Ok(rows.into_iter().map(room_to_wire).collect())
    }

    /// Joins a public room (joining one the caller is already in is a no-op that succeeds).
    /// The room's connected members, and the joiner's own connections, get `member.joined`.
    ///
    /// # Errors
    /// `404 not_found` for an unknown room; `403 forbidden` for a private room the caller
    /// is not a member of.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id, room_id))]
    pub async fn join_room(&self, actor: &Actor, room_id: &str) -> AppResult<Room> {
        let room = self.room(room_id).await?;
        if self.store.rooms.is_member(room_id, &actor.user_id).await? {
            return Ok(room_to_wire(room));
        }
        if room.visibility == Visibility::Private {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "this room is private: it can be joined only by invitation",
            ));
        }
        let username = self.me(actor).await?.username;
        {
            let _order = self.room_lock(room_id).lock().await;
            let added = self
                .store
                .rooms
                .add_member(room_id, &actor.user_id, MemberRole::Member, &now_rfc3339())
                .await?;
            if added {
                self.announce_join(actor, room_id, username).await;
            }
        }
        Ok(room_to_wire(self.room(room_id).await?))
    }

    /// The room with this id, or `404 not_found`.
    async fn room(&self, room_id: &str) -> AppResult<RoomRow> {
        self.store
            .rooms
            .room_by_id(room_id)
            .await?
            .ok_or_else(|| AppError::not_found("room"))
    }

    /// Publishes `member.joined` for the caller, adding their open connections to the
    /// room first. The caller holds the room's order lock.
    async fn announce_join(&self, actor: &Actor, room_id: &str, username: String) {
        let event = Event::MemberJoined(MemberJoined {
            room_id: room_id.to_owned(),
            user_id: actor.user_id.clone(),
            username,
        });
        let membership = Membership::Joined {
            user_id: actor.user_id.clone(),
        };
        self.publish(room_id, &event, Some(membership)).await;
    }

    /// Fails with `403 not_member` unless the caller is a member of `room_id`, or
    /// `404 not_found` if the room does not exist.
    pub(crate) async fn require_member(&self, actor: &Actor, room_id: &str) -> AppResult<()> {
        if self.store.rooms.is_member(room_id, &actor.user_id).await? {
            return Ok(());
        }
        self.room(room_id).await?;
        Err(AppError::new(
            ErrorCode::NotMember,
            "you are not a member of this room",
        ))
    }
}
