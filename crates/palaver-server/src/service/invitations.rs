//! Invitations to private rooms, and direct messages.
//!
//! Any member of a channel may invite; the invitee gets `invitation.created` on all their
//! connections and joins by accepting. An invitation lasts as long as its inviter's
//! membership: when the inviter leaves, is kicked or banned, their pending invitations to
//! the room are revoked (`invitation.revoked` to each invitee); one whose inviter's account
//! is disabled or deleted cannot be accepted either. The inviter and the room's owners and
//! admins may revoke a pending invitation. A user who blocked the inviter cannot be invited
//! by them, and a user who blocked someone cannot be sent a DM by them (nor can a DM be
//! opened with them).

use palaver_protocol::ws::{Event, InvitationRevoked};
use palaver_protocol::{
    ErrorCode, Invitation, MemberRole, MessageSender, Room, RoomKind, Visibility,
};

use super::rooms::{forbidden, room_to_wire};
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::Envelope;
use crate::error::{AppError, AppResult};
use crate::store::{InvitationRow, NewRoom, UserRow};

/// `410 invitation_revoked`.
fn revoked() -> AppError {
    AppError::new(
        ErrorCode::InvitationRevoked,
        "this invitation was revoked, or its inviter is no longer a member of the room",
    )
}

fn invitation_to_wire(row: InvitationRow) -> Invitation {
    Invitation {
        id: row.id,
        room_id: row.room_id,
        room_name: row.room_name,
        inviter: MessageSender {
            id: row.inviter_id,
            username: row.inviter_username,
        },
        invitee_id: row.invitee_id,
        status: row.status,
        created_at: row.created_at,
    }
}

impl Service {
    /// Invites `user_id` to a room the caller is a member of.
    ///
    /// # Errors
    /// `403 not_member`; `403 forbidden` if the invitee blocked the caller, is banned, or
    /// the room is a DM; `404 not_found` for an unknown user; `409 conflict` if they are
    /// already a member; `422 validation_failed` (`user_id`) for oneself; `429 rate_limited`
    /// (`user_limits.invitations`). Inviting someone who already has a pending invitation
    /// to the room returns that invitation and notifies no one again.
    pub async fn invite(
        &self,
        actor: &Actor,
        room_id: &str,
        user_id: &str,
    ) -> AppResult<Invitation> {
        self.user_limits
            .hit(&actor.user_id, super::user_limits::Action::Invitation)
            .await?;
        let (room, _) = self.require_member(actor, room_id).await?;
        if room.kind == RoomKind::Dm {
            return Err(forbidden("direct messages cannot have more members"));
        }
        if user_id == actor.user_id {
            return Err(AppError::validation("user_id", "you are already a member"));
        }
        self.active_user(user_id).await?;
        if self.is_blocked(user_id, &actor.user_id).await? {
            return Err(forbidden("this user does not accept invitations from you"));
        }
        if self.store.rooms.is_banned(room_id, user_id).await? {
            return Err(forbidden("this user is banned from the room"));
        }
        if self.store.rooms.is_member(room_id, user_id).await? {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "this user is already a member",
            ));
        }
        let id = new_id();
        let row = self
            .store
            .rooms
            .create_invitation(&id, room_id, &actor.user_id, user_id, &now_rfc3339())
            .await?;
        let invitation = invitation_to_wire(row);
        if invitation.id != id {
            // Already pending: the invitee was told once, and is not told again.
            return Ok(invitation);
        }
        self.publish(Envelope::user(
            user_id,
            Event::InvitationCreated(invitation.clone()),
        ))
        .await;
        Ok(invitation)
    }

    /// Another user who exists and is neither deleted nor disabled, or `404 not_found`.
    async fn active_user(&self, user_id: &str) -> AppResult<UserRow> {
        self.store
            .users
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none() && u.disabled_at.is_none())
            .ok_or_else(|| AppError::not_found("user"))
    }

    /// The caller's pending invitations, newest first.
    pub async fn invitations(&self, actor: &Actor) -> AppResult<Vec<Invitation>> {
        let rows = self.store.rooms.pending_invitations(&actor.user_id).await?;
        Ok(rows.into_iter().map(invitation_to_wire).collect())
    }

    /// Accepts (joining the room, `member.joined`) or declines one of the caller's
    /// pending invitations.
    ///
    /// # Errors
    /// `404 not_found` unless it is an invitation addressed to the caller that is still
    /// pending; `410 invitation_revoked` if it was revoked (by the inviter or a room owner
    /// or admin, or because the inviter left, was kicked or banned, or their account was
    /// disabled or deleted); `403 forbidden` if the caller was banned meanwhile.
    pub async fn respond_invitation(
        &self,
        actor: &Actor,
        invitation_id: &str,
        accept: bool,
    ) -> AppResult<Option<Room>> {
        let invitation = self
            .store
            .rooms
            .invitation(invitation_id)
            .await?
            .filter(|i| i.invitee_id == actor.user_id)
            .ok_or_else(|| AppError::not_found("invitation"))?;
        match invitation.status.as_str() {
            "pending" => {}
            "revoked" => return Err(revoked()),
            _ => return Err(AppError::not_found("invitation")),
        }
        if accept
            && self
                .store
                .rooms
                .is_banned(&invitation.room_id, &actor.user_id)
                .await?
        {
            return Err(forbidden("you are banned from this room"));
        }
        let username = self.live_user(&actor.user_id).await?.username;
        let _order = self.room_order(&invitation.room_id).await;
        // Read before the join: the user's connections get every change after it.
        let after_seq = self.room(&invitation.room_id).await?.last_seq;
        match self
            .store
            .rooms
            .respond_invitation(invitation_id, accept, &now_rfc3339())
            .await?
            .as_deref()
        {
            Some("accepted") => {}
            Some("declined") => return Ok(None),
            Some("revoked") => return Err(revoked()),
            // Answered or revoked meanwhile.
            _ => {
                let now = self.store.rooms.invitation(invitation_id).await?;
                return Err(match now.map(|i| i.status).as_deref() {
                    Some("revoked") => revoked(),
                    _ => AppError::not_found("invitation"),
                });
            }
        }
        self.announce_join(&invitation.room_id, &actor.user_id, username, after_seq)
            .await;
        drop(_order);
        Ok(Some(room_to_wire(self.room(&invitation.room_id).await?)))
    }

    /// The pending invitations to a room: all of them for its owners and admins, those
    /// the caller sent for other members. Newest first.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found` for an unknown room.
    pub async fn room_invitations(
        &self,
        actor: &Actor,
        room_id: &str,
    ) -> AppResult<Vec<Invitation>> {
        let (_, me) = self.require_member(actor, room_id).await?;
        let inviter = (!me.role.moderates()).then_some(actor.user_id.as_str());
        let rows = self.store.rooms.room_invitations(room_id, inviter).await?;
        Ok(rows.into_iter().map(invitation_to_wire).collect())
    }

    /// Revokes a pending invitation to a room: its inviter, or the room's owners and
    /// admins, may. The invitee's connections get `invitation.revoked` (reason `revoked`);
    /// accepting it afterwards answers `410 invitation_revoked`.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found` for an unknown room, or an invitation that is not
    /// a pending one of this room; `403 forbidden` for another member's invitation when the
    /// caller is not an owner or admin.
    pub async fn revoke_invitation(
        &self,
        actor: &Actor,
        room_id: &str,
        invitation_id: &str,
    ) -> AppResult<()> {
        let (_, me) = self.require_member(actor, room_id).await?;
        let invitation = self
            .store
            .rooms
            .invitation(invitation_id)
            .await?
            .filter(|i| i.room_id == room_id && i.status == "pending")
            .ok_or_else(|| AppError::not_found("invitation"))?;
        if invitation.inviter_id != actor.user_id && !me.role.moderates() {
            return Err(forbidden(
                "only the inviter or the room's owners and admins can revoke an invitation",
            ));
        }
        if !self
            .store
            .rooms
            .revoke_invitation(invitation_id, &now_rfc3339())
            .await?
        {
            return Err(AppError::not_found("invitation"));
        }
        self.announce_revoked(room_id, invitation_id, &invitation.invitee_id, "revoked")
            .await;
        Ok(())
    }

    /// Tells the invitee's connections that an invitation was revoked.
    pub(crate) async fn announce_revoked(
        &self,
        room_id: &str,
        invitation_id: &str,
        invitee_id: &str,
        reason: &str,
    ) {
        let event = Event::InvitationRevoked(InvitationRevoked {
            id: invitation_id.to_owned(),
            room_id: room_id.to_owned(),
            reason: reason.to_owned(),
        });
        self.publish(Envelope::user(invitee_id, event)).await;
    }

    /// The one DM room between the caller and `user_id`, created the first time (both
    /// become members and their connections get `member.joined`). If either side left it,
    /// opening it again (by either side) reopens it: the departed side rejoins, with its
    /// history, and the room's connections get `member.joined` as for a new DM. Answers
    /// the room as the caller sees it (`my_role`, read marker, unread count).
    ///
    pub async fn open_dm(&self, actor: &Actor, user_id: &str) -> AppResult<Room> {
        if user_id == actor.user_id {
            return Err(AppError::validation(
                "user_id",
                "a direct message needs another user",
            ));
        }
        let other = self.active_user(user_id).await?;
        if self.is_blocked(user_id, &actor.user_id).await? {
            return Err(forbidden(
                "this user does not accept direct messages from you",
            ));
        }
        let me = self.live_user(&actor.user_id).await?;
        let (first, second) = if me.id < other.id {
            (&me, &other)
        } else {
            (&other, &me)
        };
        let dm_key = format!("{}:{}", first.id, second.id);
        let room = NewRoom {
            id: new_id(),
            name: format!("{}, {}", first.username, second.username),
            topic: None,
            visibility: Visibility::Private,
            kind: RoomKind::Dm,
            created_by: me.id.clone(),
            created_at: now_rfc3339(),
        };
        let (row, created) = self.store.rooms.open_dm(&room, &other.id, &dm_key).await?;
        if created {
            let _order = self.room_order(&row.id).await;
            self.announce_join(&row.id, &me.id, me.username.clone(), 0)
                .await;
            self.announce_join(&row.id, &other.id, other.username.clone(), 0)
                .await;
        } else {
            // A side that left comes back (both are owners of a DM); a no-op for members.
            for user in [&me, &other] {
                self.add_member(&row.id, &user.id, MemberRole::Owner)
                    .await?;
            }
        }
        self.room_for_member(actor, &row.id).await
    }
}
