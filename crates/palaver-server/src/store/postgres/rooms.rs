//! [`RoomStore`] on PostgreSQL: rooms, DMs, members, bans, invitations, read markers.

use async_trait::async_trait;
use palaver_protocol::{RoomKind, RoomMentions, Visibility};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::{lock_room, not_found_on_foreign_key, PostgresStore};
use crate::store::{
    Departure, InvitationRow, MemberRole, MemberRoomRow, MemberRow, NewRoom, RoomRow, RoomStore,
    StoreError, StoreResult,
};

/// Columns of a room row plus its member count, for `SELECT ... FROM rooms r`.
const ROOM_COLUMNS: &str = "r.id, r.name, r.topic, r.visibility, r.kind, r.created_by, \
     r.created_at, r.last_seq, r.dm_key, r.room_mentions, \
     (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.id) AS member_count";

/// Columns of a member row, for `FROM room_members m JOIN users u ON u.id = m.user_id`.
const MEMBER_COLUMNS: &str =
    "m.user_id, u.username, u.display_name, m.role, m.joined_at, m.last_read_seq";

/// Columns of an invitation, for `FROM invitations i JOIN rooms r JOIN users u (inviter)`.
const INVITATION_COLUMNS: &str = "i.id, i.room_id, r.name AS room_name, i.inviter_id, \
     u.username AS inviter_username, i.invitee_id, i.status, i.created_at";

/// Whether invitation `i`'s inviter may still bring people in: they are a member of the
/// room (account deletion removes memberships) and their account is not disabled.
const INVITER_VALID: &str = "EXISTS (SELECT 1 FROM room_members im
         WHERE im.room_id = i.room_id AND im.user_id = i.inviter_id)
     AND EXISTS (SELECT 1 FROM users iu
         WHERE iu.id = i.inviter_id AND iu.disabled_at IS NULL AND iu.deleted_at IS NULL)";

fn visibility_to_str(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

fn role_of(row: &PgRow, column: &str) -> Result<MemberRole, sqlx::Error> {
    let role: String = row.try_get(column)?;
    Ok(MemberRole::parse(&role).unwrap_or(MemberRole::Member))
}

fn room_from_row(row: &PgRow) -> Result<RoomRow, sqlx::Error> {
    let visibility: String = row.try_get("visibility")?;
    let kind: String = row.try_get("kind")?;
    Ok(RoomRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        topic: row.try_get("topic")?,
        visibility: match visibility.as_str() {
            "public" => Visibility::Public,
            _ => Visibility::Private,
        },
        kind: match kind.as_str() {
            "dm" => RoomKind::Dm,
            _ => RoomKind::Channel,
        },
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        last_seq: row.try_get("last_seq")?,
        member_count: row.try_get("member_count")?,
        dm_key: row.try_get("dm_key")?,
        room_mentions: match row
            .try_get::<Option<String>, _>("room_mentions")?
            .as_deref()
        {
            Some("admins") => RoomMentions::Admins,
            _ => RoomMentions::Members,
        },
    })
}

fn member_from_row(row: &PgRow) -> Result<MemberRow, sqlx::Error> {
    Ok(MemberRow {
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        role: role_of(row, "role")?,
        joined_at: row.try_get("joined_at")?,
        last_read_seq: row.try_get("last_read_seq")?,
    })
}

fn invitation_from_row(row: &PgRow) -> Result<InvitationRow, sqlx::Error> {
    Ok(InvitationRow {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        room_name: row.try_get("room_name")?,
        inviter_id: row.try_get("inviter_id")?,
        inviter_username: row.try_get("inviter_username")?,
        invitee_id: row.try_get("invitee_id")?,
        status: row.try_get("status")?,
        created_at: row.try_get("created_at")?,
    })
}

impl PostgresStore {
    /// Inserts `room`; with a `dm_key` another DM of the pair may exist already: then
    /// nothing is inserted and the result is `false`.
    async fn insert_room(
        &self,
        tx: &mut sqlx::PgConnection,
        room: &NewRoom,
        dm_key: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "INSERT INTO rooms (id, name, topic, visibility, kind, dm_key, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (dm_key) WHERE dm_key IS NOT NULL DO NOTHING",
        )
        .bind(&room.id)
        .bind(&room.name)
        .bind(&room.topic)
        .bind(visibility_to_str(room.visibility))
        .bind(match room.kind {
            RoomKind::Channel => "channel",
            RoomKind::Dm => "dm",
        })
        .bind(dm_key)
        .bind(&room.created_by)
        .bind(&room.created_at)
        .execute(&mut *tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl PostgresStore {
    /// The rooms of `user_id` with their membership (only `room_id`, if given).
    async fn member_rooms(
        &self,
        user_id: &str,
        room_id: Option<&str>,
    ) -> StoreResult<Vec<MemberRoomRow>> {
        self.member_rooms_page(user_id, room_id, None, None).await
    }

    /// [`member_rooms`](Self::member_rooms) after `(joined_at, room_id)`, at most `limit`
    /// (`None`: all).
    async fn member_rooms_page(
        &self,
        user_id: &str,
        room_id: Option<&str>,
        after: Option<(&str, &str)>,
        limit: Option<i64>,
    ) -> StoreResult<Vec<MemberRoomRow>> {
        let (after_at, after_id) = after.unzip();
        let rows = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS}, me.role AS my_role, me.last_read_seq, me.joined_at,
                    (SELECT COUNT(*) FROM messages x
                     WHERE x.room_id = r.id AND x.seq > me.last_read_seq
                       AND x.sender_id != me.user_id AND x.deleted_at IS NULL) AS unread_count,
                    (SELECT COUNT(*) FROM message_mentions mm
                     JOIN messages x ON x.id = mm.message_id
                     WHERE mm.user_id = me.user_id AND mm.room_id = r.id
                       AND mm.seq > me.last_read_seq AND x.deleted_at IS NULL) AS mention_count
             FROM room_members me JOIN rooms r ON r.id = me.room_id
             WHERE me.user_id = $1 AND ($2 IS NULL OR me.room_id = $2)
               AND ($3 IS NULL OR me.joined_at > $3 OR (me.joined_at = $3 AND r.id > $4))
             ORDER BY me.joined_at, r.id LIMIT $5"
        ))
        .bind(user_id)
        .bind(room_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberRoomRow {
                    room: room_from_row(row)?,
                    role: role_of(row, "my_role")?,
                    last_read_seq: row.try_get("last_read_seq")?,
                    unread_count: row.try_get("unread_count")?,
                    mention_count: row.try_get("mention_count")?,
                    joined_at: row.try_get("joined_at")?,
                })
            })
            .collect()
    }
}

async fn insert_member(
    tx: &mut sqlx::PgConnection,
    room_id: &str,
    user_id: &str,
    role: MemberRole,
    at: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (room_id, user_id) DO NOTHING",
    )
    .bind(room_id)
    .bind(user_id)
    .bind(role.as_str())
    .bind(at)
    .execute(&mut *tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[async_trait]
impl RoomStore for PostgresStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_room(&self, room: &NewRoom) -> StoreResult<RoomRow> {
        let mut tx = self.pool.begin().await?;
        self.insert_room(&mut tx, room, None).await?;
        insert_member(
            &mut tx,
            &room.id,
            &room.created_by,
            MemberRole::Owner,
            &room.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(RoomRow {
            id: room.id.clone(),
            name: room.name.clone(),
            topic: room.topic.clone(),
            visibility: room.visibility,
            kind: room.kind,
            created_by: room.created_by.clone(),
            created_at: room.created_at.clone(),
            last_seq: 0,
            member_count: 1,
            dm_key: None,
            room_mentions: RoomMentions::Members,
        })
    }

    #[tracing::instrument(skip_all, err)]
    async fn open_dm(
        &self,
        room: &NewRoom,
        other: &str,
        dm_key: &str,
    ) -> StoreResult<(RoomRow, bool)> {
        let mut tx = self.pool.begin().await?;
        let mut existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM rooms WHERE dm_key = $1")
                .bind(dm_key)
                .fetch_optional(&mut *tx)
                .await?;
        if existing.is_none() {
            // Two first opens of one pair at once: the second insert waits for the first
            // to commit, then does nothing, and the second read finds the first's room.
            let inserted = self.insert_room(&mut tx, room, Some(dm_key)).await?;
            if inserted {
                for user in [room.created_by.as_str(), other] {
                    insert_member(&mut tx, &room.id, user, MemberRole::Owner, &room.created_at)
                        .await
                        .map_err(not_found_on_foreign_key)?;
                }
            } else {
                existing = sqlx::query_scalar("SELECT id FROM rooms WHERE dm_key = $1")
                    .bind(dm_key)
                    .fetch_optional(&mut *tx)
                    .await?;
            }
        }
        let created = existing.is_none();
        let room_id = existing.unwrap_or_else(|| room.id.clone());
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1"
        ))
        .bind(&room_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((room_from_row(&row)?, created))
    }

    #[tracing::instrument(skip_all, err)]
    async fn room_by_id(&self, room_id: &str) -> StoreResult<Option<RoomRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1"
        ))
        .bind(room_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn last_seqs(&self, room_ids: &[String]) -> StoreResult<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT id, last_seq FROM rooms WHERE id = ANY($1)")
                .bind(room_ids)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows)
    }

    #[tracing::instrument(skip_all, err)]
    async fn rooms_for_user(&self, user_id: &str) -> StoreResult<Vec<MemberRoomRow>> {
        self.member_rooms(user_id, None).await
    }

    #[tracing::instrument(skip_all, err)]
    async fn member_room(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<MemberRoomRow>> {
        Ok(self.member_rooms(user_id, Some(room_id)).await?.pop())
    }

    #[tracing::instrument(skip_all, err)]
    async fn rooms_for_user_page(
        &self,
        user_id: &str,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<MemberRoomRow>> {
        self.member_rooms_page(user_id, None, after, Some(limit))
            .await
    }

    #[tracing::instrument(skip_all, err)]
    async fn public_rooms(
        &self,
        name_contains: Option<&str>,
        after: Option<(&str, &str)>,
        limit: i64,
    ) -> StoreResult<Vec<RoomRow>> {
        let (after_at, after_id) = after.unzip();
        let rows = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r
             WHERE r.visibility = 'public' AND r.kind = 'channel'
               AND ($1 IS NULL OR strpos(lower(r.name COLLATE \"C\"), lower($1 COLLATE \"C\")) > 0)
               AND ($2 IS NULL OR r.created_at < $2 OR (r.created_at = $2 AND r.id < $3))
             ORDER BY r.created_at DESC, r.id DESC LIMIT $4"
        ))
        .bind(name_contains)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(room_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_room(
        &self,
        room_id: &str,
        name: &str,
        topic: Option<&str>,
        room_mentions: RoomMentions,
        at: &str,
    ) -> StoreResult<Option<RoomRow>> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE rooms SET name = $2, topic = $3, updated_at = $4, room_mentions = $5
                 WHERE id = $1",
        )
        .bind(room_id)
        .bind(name)
        .bind(topic)
        .bind(at)
        .bind(match room_mentions {
            RoomMentions::Members => "members",
            RoomMentions::Admins => "admins",
        })
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = $1"
        ))
        .bind(room_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(room_from_row(&row)?))
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_room(&self, room_id: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        // Reactions and edits cascade from messages; messages, members, bans and
        // invitations cascade from the room.
        let done = sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(room_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn member(&self, room_id: &str, user_id: &str) -> StoreResult<Option<MemberRow>> {
        let row = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM room_members m JOIN users u ON u.id = m.user_id
             WHERE m.room_id = $1 AND m.user_id = $2"
        ))
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(member_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn room_and_member(
        &self,
        room_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<(RoomRow, Option<MemberRow>)>> {
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS}, {MEMBER_COLUMNS} FROM rooms r
             LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $2
             LEFT JOIN users u ON u.id = m.user_id
             WHERE r.id = $1"
        ))
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let room = room_from_row(&row)?;
        let member = match row.try_get::<Option<String>, _>("user_id")? {
            Some(_) => Some(member_from_row(&row)?),
            None => None,
        };
        Ok(Some((room, member)))
    }

    #[tracing::instrument(skip_all, err)]
    async fn members(&self, room_id: &str) -> StoreResult<Vec<MemberRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {MEMBER_COLUMNS} FROM room_members m JOIN users u ON u.id = m.user_id
             WHERE m.room_id = $1
             ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END,
                      m.joined_at, m.user_id"
        ))
        .bind(room_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(member_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
        joined_at: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        if !lock_room(&mut tx, room_id).await? {
            return Err(StoreError::NotFound);
        }
        let added = insert_member(&mut tx, room_id, user_id, role, joined_at)
            .await
            .map_err(not_found_on_foreign_key)?;
        tx.commit().await?;
        Ok(added)
    }

    #[tracing::instrument(skip_all, err)]
    async fn leave(
        &self,
        room_id: &str,
        user_id: &str,
        ban_by: Option<&str>,
        at: &str,
    ) -> StoreResult<Departure> {
        let mut tx = self.pool.begin().await?;
        // The owner count below, and messages checked for membership, see this change
        // whole: they lock the room too.
        lock_room(&mut tx, room_id).await?;
        let role: Option<String> = sqlx::query_scalar(
            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2 RETURNING role",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(by) = ban_by {
            sqlx::query(
                "INSERT INTO room_bans (room_id, user_id, banned_by, created_at)
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(room_id)
            .bind(user_id)
            .bind(by)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        // Their pending invitations to the room end with their membership.
        let revoked_invitations: Vec<(String, String)> = sqlx::query_as(
            "UPDATE invitations SET status = 'revoked', responded_at = $3
             WHERE room_id = $1 AND inviter_id = $2 AND status = 'pending'
             RETURNING id, invitee_id",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(at)
        .fetch_all(&mut *tx)
        .await?;
        let mut new_owner = None;
        if role.as_deref() == Some("owner") {
            let owners: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM room_members WHERE room_id = $1 AND role = 'owner'",
            )
            .bind(room_id)
            .fetch_one(&mut *tx)
            .await?;
            if owners == 0 {
                new_owner = sqlx::query_scalar(
                    "UPDATE room_members SET role = 'owner'
                     WHERE room_id = $1 AND user_id = (
                         SELECT user_id FROM room_members WHERE room_id = $1
                         ORDER BY CASE role WHEN 'admin' THEN 0 ELSE 1 END, joined_at, user_id
                         LIMIT 1)
                     RETURNING user_id",
                )
                .bind(room_id)
                .fetch_optional(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(Departure {
            removed: role.is_some(),
            new_owner,
            revoked_invitations,
        })
    }

    #[tracing::instrument(skip_all, err)]
    async fn set_member_role(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
    ) -> StoreResult<bool> {
        // Serialised with `leave`'s count of owners by the room's lock.
        let mut tx = self.pool.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let done =
            sqlx::query("UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2")
                .bind(room_id)
                .bind(user_id)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn transfer_ownership(&self, room_id: &str, from: &str, to: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        lock_room(&mut tx, room_id).await?;
        let done = sqlx::query(
            "UPDATE room_members SET role = 'owner' WHERE room_id = $1 AND user_id = $2",
        )
        .bind(room_id)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("UPDATE room_members SET role = 'admin' WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(from)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    #[tracing::instrument(skip_all, err)]
    async fn is_banned(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM room_bans WHERE room_id = $1 AND user_id = $2)",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }

    #[tracing::instrument(skip_all, err)]
    async fn unban(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM room_bans WHERE room_id = $1 AND user_id = $2")
            .bind(room_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_invitation(
        &self,
        id: &str,
        room_id: &str,
        inviter_id: &str,
        invitee_id: &str,
        at: &str,
    ) -> StoreResult<InvitationRow> {
        let mut tx = self.pool.begin().await?;
        // Serialised with the inviter's `leave` (which revokes their invitations).
        lock_room(&mut tx, room_id).await?;
        sqlx::query(&format!(
            "UPDATE invitations AS i SET status = 'revoked', responded_at = $3
             WHERE i.room_id = $1 AND i.invitee_id = $2 AND i.status = 'pending'
               AND NOT ({INVITER_VALID})"
        ))
        .bind(room_id)
        .bind(invitee_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO invitations (id, room_id, inviter_id, invitee_id, status, created_at)
             VALUES ($1, $2, $3, $4, 'pending', $5) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(room_id)
        .bind(inviter_id)
        .bind(invitee_id)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i
             JOIN rooms r ON r.id = i.room_id JOIN users u ON u.id = i.inviter_id
             WHERE i.room_id = $1 AND i.invitee_id = $2 AND i.status = 'pending'"
        ))
        .bind(room_id)
        .bind(invitee_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(invitation_from_row(&row)?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn pending_invitations(&self, invitee_id: &str) -> StoreResult<Vec<InvitationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i
             JOIN rooms r ON r.id = i.room_id JOIN users u ON u.id = i.inviter_id
             WHERE i.invitee_id = $1 AND i.status = 'pending' AND {INVITER_VALID}
             ORDER BY i.created_at DESC, i.id DESC"
        ))
        .bind(invitee_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(invitation_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn room_invitations(
        &self,
        room_id: &str,
        inviter_id: Option<&str>,
    ) -> StoreResult<Vec<InvitationRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i
             JOIN rooms r ON r.id = i.room_id JOIN users u ON u.id = i.inviter_id
             WHERE i.room_id = $1 AND i.status = 'pending' AND {INVITER_VALID}
               AND ($2 IS NULL OR i.inviter_id = $2)
             ORDER BY i.created_at DESC, i.id DESC"
        ))
        .bind(room_id)
        .bind(inviter_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(invitation_from_row)
            .collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn invitation(&self, id: &str) -> StoreResult<Option<InvitationRow>> {
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations i
             JOIN rooms r ON r.id = i.room_id JOIN users u ON u.id = i.inviter_id
             WHERE i.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(invitation_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn respond_invitation(
        &self,
        id: &str,
        accept: bool,
        at: &str,
    ) -> StoreResult<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let room_id: Option<String> =
            sqlx::query_scalar("SELECT room_id FROM invitations WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(room_id) = room_id else {
            tx.rollback().await?;
            return Ok(None);
        };
        // Checked in the same transaction as the join, under the room's lock, which the
        // inviter's `leave` takes too: an inviter who leaves, is kicked or banned either
        // did so before (the invitation is revoked) or after the invitee joined.
        lock_room(&mut tx, &room_id).await?;
        let row = sqlx::query(&format!(
            "UPDATE invitations AS i
             SET status = CASE WHEN NOT $2 THEN 'declined'
                               WHEN {INVITER_VALID} THEN 'accepted'
                               ELSE 'revoked' END,
                 responded_at = $3
             WHERE i.id = $1 AND i.status = 'pending'
             RETURNING room_id, invitee_id, status"
        ))
        .bind(id)
        .bind(accept)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let status: String = row.try_get("status")?;
        if status == "accepted" {
            let room_id: String = row.try_get("room_id")?;
            let invitee_id: String = row.try_get("invitee_id")?;
            insert_member(&mut tx, &room_id, &invitee_id, MemberRole::Member, at).await?;
        }
        tx.commit().await?;
        Ok(Some(status))
    }

    #[tracing::instrument(skip_all, err)]
    async fn revoke_invitation(&self, id: &str, at: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE invitations SET status = 'revoked', responded_at = $2
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(skip_all, err)]
    async fn co_members(&self, user_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT other.user_id FROM room_members me
             JOIN room_members other ON other.room_id = me.room_id
             WHERE me.user_id = $1 AND other.user_id != $1",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn share_a_room(&self, a: &str, b: &str) -> StoreResult<bool> {
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM room_members x JOIN room_members y ON y.room_id = x.room_id
                            WHERE x.user_id = $1 AND y.user_id = $2)",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&self.pool)
        .await?;
        Ok(found)
    }

    #[tracing::instrument(skip_all, err)]
    async fn mark_read(
        &self,
        room_id: &str,
        user_id: &str,
        seq: i64,
    ) -> StoreResult<Option<(i64, i64, i64)>> {
        let mut tx = self.pool.begin().await?;
        let marker: Option<i64> = sqlx::query_scalar(
            "UPDATE room_members
             SET last_read_seq = GREATEST(last_read_seq,
                                          LEAST($3, (SELECT last_seq FROM rooms WHERE id = $1)))
             WHERE room_id = $1 AND user_id = $2 RETURNING last_read_seq",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(seq)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(marker) = marker else {
            tx.rollback().await?;
            return Ok(None);
        };
        let unread: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE room_id = $1 AND seq > $3
               AND sender_id != $2 AND deleted_at IS NULL",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(marker)
        .fetch_one(&mut *tx)
        .await?;
        let mentions: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM message_mentions mm JOIN messages x ON x.id = mm.message_id
             WHERE mm.room_id = $1 AND mm.user_id = $2 AND mm.seq > $3
               AND x.deleted_at IS NULL",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(marker)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some((marker, unread, mentions)))
    }
}
