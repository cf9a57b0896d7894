//! Default rooms (`default_rooms`, default `["general"]`): the public channels every new
//! account joins, so that a new user lands in a room with people rather than in an empty
//! app.
//!
//! Each name is the name of a public channel. When a new account is created (registration,
//! `palaver admin create-user`, a first sign-in with a provider), it joins the oldest
//! public channel of that exact name; if there is none yet, the account creates it and
//! becomes its owner (on a new server: the first account registered). The lookup and
//! creation are serialised on each node; two nodes creating a server's first accounts at
//! the same instant could each create one (the oldest is joined from then on).
//!
//! A default room that cannot be joined (its name is no longer valid under the limits, a
//! store failure) is logged and skipped: it never fails the account's creation.

use palaver_protocol::{MemberRole, RoomKind, Visibility};

use super::validate::RoomName;
use super::{new_id, now_rfc3339, Service};
use crate::error::AppResult;
use crate::store::{NewRoom, RoomRow};

/// Pages of the directory searched for a default room's exact name.
const MAX_PAGES: usize = 20;
/// Rooms per page of that search.
const PAGE: i64 = 100;

impl Service {
    /// Makes the new account `user_id` a member of every default room (creating those that
    /// do not exist yet, with it as owner). Failures are logged, not returned.
    pub(crate) async fn join_default_rooms(&self, user_id: &str) {
        for name in &self.default_rooms {
            if let Err(e) = self.join_default_room(user_id, name).await {
                tracing::warn!(room = %name, user_id, code = %e.code, error = %e.message,
                    "could not join a default room");
            }
        }
    }

    async fn join_default_room(&self, user_id: &str, name: &str) -> AppResult<()> {
        let name = RoomName::parse(name, &self.limits)?.into_inner();
        let guard = self.default_rooms_lock.lock().await;
        if let Some(room) = self.oldest_public_channel(&name).await? {
            drop(guard);
            if !self.store.rooms.is_banned(&room.id, user_id).await? {
                self.add_member(&room.id, user_id, MemberRole::Member)
                    .await?;
            }
            return Ok(());
        }
        let room = NewRoom {
            id: new_id(),
            name,
            topic: None,
            visibility: Visibility::Public,
            kind: RoomKind::Channel,
            created_by: user_id.to_owned(),
            created_at: now_rfc3339(),
        };
        let row = self.store.rooms.create_room(&room).await?;
        drop(guard);
        tracing::info!(room_id = %row.id, room = %row.name, user_id, "default room created");
        let username = self.live_user(user_id).await?.username;
        let _order = self.room_order(&row.id).await;
        self.announce_join(&row.id, user_id, username, 0).await;
        Ok(())
    }

    /// The oldest public channel named exactly `name`, if any.
    async fn oldest_public_channel(&self, name: &str) -> AppResult<Option<RoomRow>> {
        let mut oldest = None;
        let mut after: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .store
                .rooms
                .public_rooms(
                    Some(name),
                    after.as_ref().map(|(at, id)| (at.as_str(), id.as_str())),
                    PAGE,
                )
                .await?;
            let full = page.len() as i64 == PAGE;
            after = page.last().map(|r| (r.created_at.clone(), r.id.clone()));
            // Newest first: the last exact match seen is the oldest.
            if let Some(found) = page.into_iter().rev().find(|r| r.name == name) {
                oldest = Some(found);
            }
            if !full {
                break;
            }
        }
        Ok(oldest)
    }
}
