//! Room membership: the member list, leaving, kicking, banning, roles and ownership.
//!
//! Rules: owners and admins moderate; a moderator acts only on members of a lower role
//! (owners on admins and members, admins on members); only owners change roles and
//! transfer ownership; direct messages have no moderation.
//!
//! The server's staff (global role `moderator` or `admin`) also moderate every public
//! channel, member or not: they kick, ban and unban, and delete messages, but never act on
//! the room's owner or a global admin, and a moderator never acts on another moderator.
//! In private rooms and DMs the staff have only their room role, like everyone else. A member who leaves, is kicked
//! or banned receives `member.left` and then nothing more from the room, on any
//! connection.

use palaver_protocol::ws::{Event, MemberLeft, MemberUpdated};
use palaver_protocol::{ErrorCode, Member, MemberRole, Role, RoomKind, Visibility};

use super::rooms::forbidden;
use super::{now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::{Envelope, Membership};
use crate::error::{AppError, AppResult};
use crate::store::{MemberRow, RoomRow};

fn member_to_wire(row: MemberRow) -> Member {
    Member {
        user_id: row.user_id,
        username: row.username,
        display_name: row.display_name,
        role: row.role,
        joined_at: row.joined_at,
        last_read_seq: row.last_read_seq,
    }
}

impl Service {
    /// The members of a room the caller is in, owners first.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`.
    pub async fn members(&self, actor: &Actor, room_id: &str) -> AppResult<Vec<Member>> {
        self.require_member(actor, room_id).await?;
        let rows = self.store.rooms.members(room_id).await?;
        Ok(rows.into_iter().map(member_to_wire).collect())
    }

    /// The caller leaves a room. If they were its last owner, ownership passes to the
    /// longest-standing admin, else the longest-standing member (`member.updated`).
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`.
    pub async fn leave_room(&self, actor: &Actor, room_id: &str) -> AppResult<()> {
        self.require_member(actor, room_id).await?;
        self.remove_member(room_id, &actor.user_id, None, "left")
            .await
    }

    /// A moderator removes a member (who may rejoin a public room). In a public channel
    /// the server's staff may too (see the module docs).
    ///
    /// # Errors
    /// `403 not_member` (unless staff in a public channel); `403 forbidden` (not a
    /// moderator, a target of equal or higher role, or a DM); `404 not_found` if the target
    /// is not a member.
    pub async fn kick(&self, actor: &Actor, room_id: &str, user_id: &str) -> AppResult<()> {
        let (room, me) = self.moderation_scope(actor, room_id).await?;
        let target = self.target_member(room_id, user_id).await?;
        self.check_moderation(actor, &room, me.as_ref(), Some((user_id, Some(&target))))
            .await?;
        self.remove_member(room_id, user_id, None, "kicked").await
    }

    /// A moderator bans a user: removes them if they are a member, and stops them from
    /// joining or accepting invitations until unbanned.
    ///
    /// # Errors
    /// `403 not_member` and `403 forbidden` (as for kick); `404 not_found` for an unknown
    /// user.
    pub async fn ban(&self, actor: &Actor, room_id: &str, user_id: &str) -> AppResult<()> {
        let (room, me) = self.moderation_scope(actor, room_id).await?;
        let target = self.store.rooms.member(room_id, user_id).await?;
        if target.is_none() {
            self.store
                .users
                .user_by_id(user_id)
                .await?
                .filter(|u| u.deleted_at.is_none())
                .ok_or_else(|| AppError::not_found("user"))?;
        }
        self.check_moderation(actor, &room, me.as_ref(), Some((user_id, target.as_ref())))
            .await?;
        self.remove_member(room_id, user_id, Some(&actor.user_id), "banned")
            .await
    }

    /// A moderator (or the server's staff, in a public channel) lifts a ban.
    ///
    /// # Errors
    /// `403 not_member`; `403 forbidden` unless a moderator; `404 not_found` if there is
    /// no such ban.
    pub async fn unban(&self, actor: &Actor, room_id: &str, user_id: &str) -> AppResult<()> {
        let (room, me) = self.moderation_scope(actor, room_id).await?;
        self.check_moderation(actor, &room, me.as_ref(), None)
            .await?;
        if !self.store.rooms.unban(room_id, user_id).await? {
            return Err(AppError::not_found("ban"));
        }
        Ok(())
    }

    /// An owner makes a member an admin or back a member (`member.updated`).
    ///
    /// # Errors
    /// `403 forbidden` unless an owner (or in a DM); `404 not_found` if the target is not
    /// a member; `422 validation_failed` (`role`) for `owner` (use transfer-ownership) or
    /// an owner target.
    pub async fn set_member_role(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
    ) -> AppResult<Member> {
        let (room, me) = self.require_member(actor, room_id).await?;
        if room.kind == RoomKind::Dm || me.role != MemberRole::Owner {
            return Err(forbidden("only the room's owners can change roles"));
        }
        let target = self.target_member(room_id, user_id).await?;
        if role == MemberRole::Owner || target.role == MemberRole::Owner {
            return Err(AppError::validation(
                "role",
                "owners change with transfer-ownership; roles set here are admin or member",
            ));
        }
        let _order = self.room_order(room_id).await;
        self.store
            .rooms
            .set_member_role(room_id, user_id, role)
            .await?;
        self.announce_role(room_id, user_id, role).await;
        Ok(member_to_wire(MemberRow { role, ..target }))
    }

    /// The owner hands ownership to another member and becomes an admin.
    ///
    /// # Errors
    /// `403 forbidden` unless an owner (or in a DM); `404 not_found` if the target is not a
    /// member; `422 validation_failed` (`user_id`) for oneself.
    pub async fn transfer_ownership(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
    ) -> AppResult<()> {
        let (room, me) = self.require_member(actor, room_id).await?;
        if room.kind == RoomKind::Dm || me.role != MemberRole::Owner {
            return Err(forbidden("only the room's owner can transfer ownership"));
        }
        if user_id == actor.user_id {
            return Err(AppError::validation("user_id", "you already own this room"));
        }
        self.target_member(room_id, user_id).await?;
        let _order = self.room_order(room_id).await;
        if !self
            .store
            .rooms
            .transfer_ownership(room_id, &actor.user_id, user_id)
            .await?
        {
            return Err(AppError::not_found("member"));
        }
        self.announce_role(room_id, user_id, MemberRole::Owner)
            .await;
        self.announce_role(room_id, &actor.user_id, MemberRole::Admin)
            .await;
        Ok(())
    }

    /// Removes (and with `ban_by`, bans) a member, hands over ownership if needed, and
    /// publishes `member.left` (after which the member's connections get nothing more).
    async fn remove_member(
        &self,
        room_id: &str,
        user_id: &str,
        ban_by: Option<&str>,
        reason: &str,
    ) -> AppResult<()> {
        let order = self.room_order(room_id).await;
        let departure = self
            .store
            .rooms
            .leave(room_id, user_id, ban_by, &now_rfc3339())
            .await?;
        if departure.removed {
            let event = Event::MemberLeft(MemberLeft {
                room_id: room_id.to_owned(),
                user_id: user_id.to_owned(),
                reason: reason.to_owned(),
            });
            let membership = Membership::Left {
                user_id: user_id.to_owned(),
            };
            self.publish(Envelope::room(room_id, event).membership(membership))
                .await;
        }
        if let Some(owner) = departure.new_owner {
            self.announce_role(room_id, &owner, MemberRole::Owner).await;
        }
        let why = format!("inviter_{reason}");
        for (invitation_id, invitee_id) in &departure.revoked_invitations {
            self.announce_revoked(room_id, invitation_id, invitee_id, &why)
                .await;
        }
        // Not under the room's order: the call registry queues call log entries in it.
        drop(order);
        if departure.removed {
            self.member_left_calls(room_id, user_id).await;
        }
        Ok(())
    }

    async fn announce_role(&self, room_id: &str, user_id: &str, role: MemberRole) {
        let event = Event::MemberUpdated(MemberUpdated {
            room_id: room_id.to_owned(),
            user_id: user_id.to_owned(),
            role,
        });
        self.publish(Envelope::room(room_id, event)).await;
    }

    async fn target_member(&self, room_id: &str, user_id: &str) -> AppResult<MemberRow> {
        self.store
            .rooms
            .member(room_id, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("member"))
    }
}

/// Whether the server's staff powers apply to `actor` in `room`: they are a global
/// moderator or admin and the room is a public channel.
pub(crate) fn staff_applies(actor: &Actor, room: &RoomRow) -> bool {
    matches!(actor.role, Role::Moderator | Role::Admin)
        && room.visibility == Visibility::Public
        && room.kind == RoomKind::Channel
}

/// Whether staff member `actor` may act on a user whose global role is `target`: never on
/// an admin, and a moderator never on another moderator.
pub(crate) fn staff_outranks(actor: &Actor, target: Role) -> bool {
    match target {
        Role::Admin => false,
        Role::Moderator => actor.role == Role::Admin,
        Role::User => true,
    }
}

impl Service {
    /// The room and the caller's membership, for a moderation action: members, and the
    /// server's staff in a public channel they are not a member of.
    ///
    /// # Errors
    /// `404 not_found`; `403 not_member` for anyone else.
    pub(crate) async fn moderation_scope(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> AppResult<(RoomRow, Option<MemberRow>)> {
        let room = self.room(room_id).await?;
        let me = self.store.rooms.member(room_id, &actor.user_id).await?;
        if me.is_none() && !staff_applies(actor, &room) {
            return Err(AppError::new(
                ErrorCode::NotMember,
                "you are not a member of this room",
            ));
        }
        Ok((room, me))
    }

    /// The global role of user `user_id` (`user` if unknown).
    pub(crate) async fn global_role(&self, user_id: &str) -> AppResult<Role> {
        Ok(self
            .store
            .users
            .user_by_id(user_id)
            .await?
            .map_or(Role::User, |u| u.role))
    }

    /// Whether `actor` (membership `me`) may moderate `target` — `(user id, membership)`
    /// — or moderate at all, with `None`, in `room`: by their room role (owners and
    /// admins, over lower roles), or as staff in a public channel (never over the room's
    /// owner, an admin, or for a moderator another moderator).
    async fn check_moderation(
        &self,
        actor: &Actor,
        room: &RoomRow,
        me: Option<&MemberRow>,
        target: Option<(&str, Option<&MemberRow>)>,
    ) -> AppResult<()> {
        if room.kind == RoomKind::Dm {
            return Err(forbidden("direct messages have no moderation"));
        }
        if let Some((user_id, _)) = target {
            if user_id == actor.user_id {
                return Err(AppError::new(
                    ErrorCode::Forbidden,
                    "you cannot moderate yourself; leave the room instead",
                ));
            }
        }
        let target_role = target.and_then(|(_, m)| m.map(|m| m.role));
        let by_room = me
            .is_some_and(|me| me.role.moderates() && target_role.is_none_or(|role| role < me.role));
        if by_room {
            return Ok(());
        }
        if staff_applies(actor, room) {
            let Some((user_id, _)) = target else {
                return Ok(());
            };
            if target_role == Some(MemberRole::Owner) {
                return Err(forbidden(
                    "nobody but its owners moderates the room's owner",
                ));
            }
            if staff_outranks(actor, self.global_role(user_id).await?) {
                return Ok(());
            }
            return Err(forbidden(
                "moderators cannot act on administrators or other moderators",
            ));
        }
        match me {
            Some(me) if me.role.moderates() => {
                Err(forbidden("you can only moderate members of a lower role"))
            }
            _ => Err(forbidden("only the room's owners and admins can do this")),
        }
    }
}
