//! Rooms: create, list (with read state), the public directory, join, update, delete,
//! and the membership check every room-scoped action starts with.

use palaver_protocol::rest::{CreateRoomRequest, RoomList, UpdateRoomRequest};
use palaver_protocol::ws::{Event, MemberJoined, Ready, RoomDeleted};
use palaver_protocol::{ErrorCode, MemberRole, Room, RoomKind, Visibility};

use super::validate::{parse_topic, RoomName};
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Membership};
use crate::error::{AppError, AppResult};
use crate::store::{MemberRoomRow, MemberRow, NewRoom, PageQuery, RoomRow};

/// The page size of the directory and the room list when none is asked for.
const ROOMS_PAGE_DEFAULT: i64 = 50;
/// The largest page of the directory and the room list.
pub const ROOMS_PAGE_MAX: i64 = 100;

/// The page size asked for, or `422 validation_failed` (`limit`) outside
/// `1..=ROOMS_PAGE_MAX`.
fn rooms_page_limit(limit: Option<i64>) -> AppResult<i64> {
    let limit = limit.unwrap_or(ROOMS_PAGE_DEFAULT);
    if !(1..=ROOMS_PAGE_MAX).contains(&limit) {
        return Err(AppError::validation(
            "limit",
            format!("limit must be between 1 and {ROOMS_PAGE_MAX}"),
        ));
    }
    Ok(limit)
}

/// A room list cursor: `"<timestamp>,<room id>"` of the last room of a page (opaque to
/// clients).
fn encode_cursor(at: &str, room_id: &str) -> String {
    format!("{at},{room_id}")
}

/// The parts of a cursor made by [`encode_cursor`], or `422 validation_failed` (`after`).
fn parse_cursor(after: Option<&str>) -> AppResult<Option<(&str, &str)>> {
    let Some(after) = after else {
        return Ok(None);
    };
    match after.split_once(',') {
        Some((at, id)) if !at.is_empty() && !id.is_empty() => Ok(Some((at, id))),
        _ => Err(AppError::validation(
            "after",
            "after must be the next cursor of a previous page",
        )),
    }
}

/// The wire form of a stored room (no member view).
pub fn room_to_wire(row: RoomRow) -> Room {
    Room {
        id: row.id,
        name: row.name,
        topic: row.topic,
        visibility: row.visibility,
        kind: row.kind,
        created_by: row.created_by,
        created_at: row.created_at,
        last_seq: row.last_seq,
        member_count: row.member_count,
        my_role: None,
        last_read_seq: None,
        unread_count: None,
        mention_count: None,
        room_mentions: row.room_mentions,
        last_message: None,
    }
}

/// The wire form of a room as one member sees it.
fn member_room_to_wire(row: MemberRoomRow) -> Room {
    Room {
        my_role: Some(row.role),
        last_read_seq: Some(row.last_read_seq),
        unread_count: Some(row.unread_count),
        mention_count: Some(row.mention_count),
        ..room_to_wire(row.room)
    }
}

impl Service {
    /// Creates a room; the caller becomes its owner and first member.
    ///
    /// # Errors
    /// `422 validation_failed` for `name` or `topic`; `429 rate_limited`
    /// (`user_limits.room_creations`).
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn create_room(&self, actor: &Actor, req: CreateRoomRequest) -> AppResult<Room> {
        let name = RoomName::parse(&req.name, &self.limits)?;
        let topic = parse_topic(req.topic.as_deref(), &self.limits)?;
        self.user_limits
            .hit(&actor.user_id, super::user_limits::Action::RoomCreation)
            .await?;
        let room = NewRoom {
            id: new_id(),
            name: name.into_inner(),
            topic,
            visibility: req.visibility,
            kind: RoomKind::Channel,
            created_by: actor.user_id.clone(),
            created_at: now_rfc3339(),
        };
        let username = self.me(actor).await?.username;
        let row = self.store.rooms.create_room(&room).await?;
        // The creator's open connections start receiving the room's events.
        let _order = self.room_order(&row.id).await;
        self.announce_join(&row.id, &actor.user_id, username, 0)
            .await;
        Ok(Room {
            my_role: Some(MemberRole::Owner),
            last_read_seq: Some(0),
            unread_count: Some(0),
            mention_count: Some(0),
            ..room_to_wire(row)
        })
    }

    /// What a new WebSocket connection is told first: the user and their rooms.
    ///
    /// # Errors
    /// `401 unauthorized` if the account no longer exists.
    pub async fn ready(&self, actor: &Actor) -> AppResult<Ready> {
        let user = self.me(actor).await?;
        let rooms = self
            .store
            .rooms
            .rooms_for_user(&actor.user_id)
            .await?
            .into_iter()
            .map(member_room_to_wire)
            .collect();
        Ok(Ready { user, rooms })
    }

    /// A page of the rooms the caller is a member of, oldest membership first, each with
    /// the caller's role, read marker, unread count and the room's last message. `limit`:
    /// 1..=100, default 50; `after`: the `next` of the previous page.
    ///
    /// # Errors
    /// `422 validation_failed` (`limit` out of range, `after` not a cursor).
    pub async fn my_rooms(
        &self,
        actor: &Actor,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<RoomList> {
        let limit = rooms_page_limit(limit)?;
        let mut rows = self
            .store
            .rooms
            .rooms_for_user_page(&actor.user_id, parse_cursor(after)?, limit + 1)
            .await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|row| encode_cursor(&row.joined_at, &row.room.id))
        } else {
            None
        };
        let mut rooms = Vec::with_capacity(rows.len());
        for row in rows {
            let mut room = member_room_to_wire(row);
            let page = PageQuery {
                before: None,
                after: None,
                limit: 1,
            };
            let (last, _) = self.store.messages.messages_page(&room.id, page).await?;
            room.last_message = self.messages_to_wire(last).await?.pop().map(Box::new);
            rooms.push(room);
        }
        Ok(RoomList { rooms, next })
    }

    /// One room as the calling member sees it.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`.
    pub async fn room_for_member(&self, actor: &Actor, room_id: &str) -> AppResult<Room> {
        self.require_member(actor, room_id).await?;
        let row = self
            .store
            .rooms
            .member_room(room_id, &actor.user_id)
            .await?
            .ok_or_else(|| {
                AppError::new(ErrorCode::NotMember, "you are not a member of this room")
            })?;
        Ok(member_room_to_wire(row))
    }

    /// A page of the public directory, newest first: every public room can be reached by
    /// following `next`, and `q` narrows it to names containing `q` (ASCII
    /// case-insensitive). `limit`: 1..=100, default 50; `after`: the `next` of the
    /// previous page (with the same `q`).
    ///
    /// # Errors
    /// `422 validation_failed` (`limit` out of range, `after` not a cursor, `q` longer
    /// than a room name may be).
    pub async fn public_rooms(
        &self,
        q: Option<&str>,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<RoomList> {
        let limit = rooms_page_limit(limit)?;
        let q = q.map(str::trim).filter(|q| !q.is_empty());
        if q.is_some_and(|q| q.chars().count() > self.limits.room_name_max_chars) {
            return Err(AppError::validation(
                "q",
                format!(
                    "q must be at most {} characters",
                    self.limits.room_name_max_chars
                ),
            ));
        }
        let mut rows = self
            .store
            .rooms
            .public_rooms(q, parse_cursor(after)?, limit + 1)
            .await?;
        let next = if rows.len() as i64 > limit {
            rows.truncate(limit as usize);
            rows.last()
                .map(|row| encode_cursor(&row.created_at, &row.id))
        } else {
            None
        };
        Ok(RoomList {
            rooms: rows.into_iter().map(room_to_wire).collect(),
            next,
        })
    }

    /// Joins a public room (joining one the caller is already in is a no-op that succeeds).
    /// The room's connected members, and the joiner's own connections, get `member.joined`.
    ///
    /// # Errors
    /// `404 not_found` for an unknown room; `403 forbidden` for a private room or DM the
    /// caller is not a member of, or when the caller is banned from the room.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id, room_id))]
    pub async fn join_room(&self, actor: &Actor, room_id: &str) -> AppResult<Room> {
        let room = self.room(room_id).await?;
        if self.store.rooms.is_member(room_id, &actor.user_id).await? {
            return Ok(room_to_wire(room));
        }
        if room.visibility == Visibility::Private || room.kind == RoomKind::Dm {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "this room is private: it can be joined only by invitation",
            ));
        }
        if self.store.rooms.is_banned(room_id, &actor.user_id).await? {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "you are banned from this room",
            ));
        }
        self.add_member(room_id, &actor.user_id, MemberRole::Member)
            .await?;
        Ok(room_to_wire(self.room(room_id).await?))
    }

    /// Renames a room, changes its topic or who may use `@room`; members get
    /// `room.updated`.
    ///
    /// # Errors
    /// `403 forbidden` unless the caller is an owner or admin (and never for a DM);
    /// `422 validation_failed` (`name`, `topic`).
    pub async fn update_room(
        &self,
        actor: &Actor,
        room_id: &str,
        req: UpdateRoomRequest,
    ) -> AppResult<Room> {
        let (room, me) = self.require_member(actor, room_id).await?;
        if room.kind == RoomKind::Dm || !me.role.moderates() {
            return Err(forbidden("only the room's owners and admins can change it"));
        }
        let name = match req.name.as_deref() {
            Some(raw) => RoomName::parse(raw, &self.limits)?.into_inner(),
            None => room.name,
        };
        let topic = match req.topic {
            None => room.topic,
            Some(t) => parse_topic(t.as_deref(), &self.limits)?,
        };
        let room_mentions = req.room_mentions.unwrap_or(room.room_mentions);
        let _order = self.room_order(room_id).await;
        let row = self
            .store
            .rooms
            .update_room(
                room_id,
                &name,
                topic.as_deref(),
                room_mentions,
                &now_rfc3339(),
            )
            .await?
            .ok_or_else(|| AppError::not_found("room"))?;
        let room = room_to_wire(row);
        self.publish(Envelope::room(room_id, Event::RoomUpdated(room.clone())))
            .await;
        Ok(room)
    }

    /// Deletes a room with its history; members get `room.deleted` and nothing more.
    ///
    /// # Errors
    /// `403 forbidden` unless the caller is an owner.
    pub async fn delete_room(&self, actor: &Actor, room_id: &str) -> AppResult<()> {
        let (_, me) = self.require_member(actor, room_id).await?;
        if me.role != MemberRole::Owner {
            return Err(forbidden("only the room's owners can delete it"));
        }
        let order = self.room_order(room_id).await;
        self.store.rooms.delete_room(room_id).await?;
        let event = Event::RoomDeleted(RoomDeleted {
            room_id: room_id.to_owned(),
        });
        self.publish(Envelope::room(room_id, event).membership(Membership::Closed))
            .await;
        // Not under the room's order: the call registry queues call log entries in it.
        drop(order);
        self.room_closed_calls(room_id).await;
        Ok(())
    }

    /// The room and the caller's membership, for a room-scoped action.
    ///
    /// # Errors
    /// `404 not_found` if the room does not exist; `403 not_member` if the caller is not a
    /// member.
    pub(crate) async fn require_member(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> AppResult<(RoomRow, MemberRow)> {
        let (room, member) = self
            .store
            .rooms
            .room_and_member(room_id, &actor.user_id)
            .await?
            .ok_or_else(|| AppError::not_found("room"))?;
        let member = member.ok_or_else(|| {
            AppError::new(ErrorCode::NotMember, "you are not a member of this room")
        })?;
        Ok((room, member))
    }

    /// The room with this id, or `404 not_found`.
    pub(crate) async fn room(&self, room_id: &str) -> AppResult<RoomRow> {
        self.store
            .rooms
            .room_by_id(room_id)
            .await?
            .ok_or_else(|| AppError::not_found("room"))
    }

    /// Adds `user_id` to a room with `role` and announces it (`member.joined`, adding the
    /// user's open connections first). A no-op if already a member.
    pub(crate) async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
    ) -> AppResult<()> {
        let username = self.live_user(user_id).await?.username;
        let _order = self.room_order(room_id).await;
        // Read before the join: the user's connections get every change after it.
        let after_seq = self.room(room_id).await?.last_seq;
        let added = self
            .store
            .rooms
            .add_member(room_id, user_id, role, &now_rfc3339())
            .await?;
        if added {
            self.announce_join(room_id, user_id, username, after_seq)
                .await;
        }
        Ok(())
    }

    /// Publishes `member.joined` for `user_id`, adding their open connections to the room
    /// first. `after_seq` is the room's `last_seq` read before the join committed (0 for a
    /// new room). The caller holds the room's order lock.
    pub(crate) async fn announce_join(
        &self,
        room_id: &str,
        user_id: &str,
        username: String,
        after_seq: i64,
    ) {
        let event = Event::MemberJoined(MemberJoined {
            room_id: room_id.to_owned(),
            user_id: user_id.to_owned(),
            username,
        });
        let membership = Membership::Joined {
            user_id: user_id.to_owned(),
            after_seq,
        };
        self.publish(Envelope::room(room_id, event).membership(membership))
            .await;
    }
}

/// `403 forbidden` with `message`.
pub(crate) fn forbidden(message: &str) -> AppError {
    AppError::new(ErrorCode::Forbidden, message)
}
