//! [`RoomStore`] on SQLite.

use async_trait::async_trait;
use palaver_protocol::Visibility;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{foreign_key_violation, SqliteStore};
use crate::store::{MemberRole, NewRoom, RoomRow, RoomStore, StoreError, StoreResult};

/// Columns of a room row plus its member count, for `SELECT ... FROM rooms r`.
const ROOM_COLUMNS: &str = "r.id, r.name, r.topic, r.visibility, r.created_by, r.created_at, \
     r.last_seq, (SELECT COUNT(*) FROM room_members m WHERE m.room_id = r.id) AS member_count";

fn visibility_to_str(v: Visibility) -> &'static str {
    match v {
        Visibility::Public => "public",
        Visibility::Private => "private",
    }
}

fn room_from_row(row: &SqliteRow) -> Result<RoomRow, sqlx::Error> {
    let visibility: String = row.try_get("visibility")?;
    Ok(RoomRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        topic: row.try_get("topic")?,
        visibility: match visibility.as_str() {
            "public" => Visibility::Public,
            _ => Visibility::Private,
        },
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        last_seq: row.try_get("last_seq")?,
        member_count: row.try_get("member_count")?,
    })
}

#[async_trait]
impl RoomStore for SqliteStore {
    #[tracing::instrument(skip_all, err)]
    async fn create_room(&self, room: &NewRoom) -> StoreResult<RoomRow> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO rooms (id, name, topic, visibility, created_by, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&room.id)
        .bind(&room.name)
        .bind(&room.topic)
        .bind(visibility_to_str(room.visibility))
        .bind(&room.created_by)
        .bind(&room.created_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&room.id)
        .bind(&room.created_by)
        .bind(MemberRole::Owner.as_str())
        .bind(&room.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RoomRow {
            id: room.id.clone(),
            name: room.name.clone(),
            topic: room.topic.clone(),
            visibility: room.visibility,
            created_by: room.created_by.clone(),
            created_at: room.created_at.clone(),
            last_seq: 0,
            member_count: 1,
        })
    }

    #[tracing::instrument(skip_all, err)]
    async fn room_by_id(&self, room_id: &str) -> StoreResult<Option<RoomRow>> {
        let row = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.id = ?1"
        ))
        .bind(room_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.as_ref().map(room_from_row).transpose()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn rooms_for_user(&self, user_id: &str) -> StoreResult<Vec<RoomRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM room_members me JOIN rooms r ON r.id = me.room_id
             WHERE me.user_id = ?1 ORDER BY me.joined_at, r.id"
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(room_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn public_rooms(&self, limit: i64) -> StoreResult<Vec<RoomRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROOM_COLUMNS} FROM rooms r WHERE r.visibility = 'public'
             ORDER BY r.created_at DESC, r.id DESC LIMIT ?1"
        ))
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(room_from_row).collect::<Result<_, _>>()?)
    }

    #[tracing::instrument(skip_all, err)]
    async fn is_member(&self, room_id: &str, user_id: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM room_members WHERE room_id = ?1 AND user_id = ?2")
                .bind(room_id)
                .bind(user_id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(found.is_some())
    }

    #[tracing::instrument(skip_all, err)]
    async fn add_member(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
        joined_at: &str,
    ) -> StoreResult<bool> {
        let result = sqlx::query(
            "INSERT INTO room_members (room_id, user_id, role, joined_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .bind(room_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(joined_at)
        .execute(&self.writer)
        .await
        .map_err(|e| {
            if foreign_key_violation(&e) {
                StoreError::NotFound
            } else {
                StoreError::Database(e)
            }
        })?;
        Ok(result.rows_affected() == 1)
    }
}
