//! Messages: the send path (validate → membership → durable insert → publish) and history.

use palaver_protocol::rest::MessagePage;
use palaver_protocol::ws::Event;
use palaver_protocol::{Message, MessageSender};

use super::validate::{parse_client_id, Content};
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::store::{MessageRow, NewMessage, PageQuery};

/// Largest history page.
pub const MAX_PAGE: i64 = 100;
/// History page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 50;

/// The wire form of a stored message.
pub fn message_to_wire(row: MessageRow) -> Message {
    Message {
        id: row.id,
        room_id: row.room_id,
        seq: row.seq,
        sender: MessageSender {
            id: row.sender_id,
            username: row.sender_username,
        },
        content: row.content,
        client_id: row.client_id,
        created_at: row.created_at,
    }
}

impl Service {
    /// Sends a message to a room the caller is a member of. Returns only after the message
    /// is committed (durable ack); then `message.created` goes to every connected member,
    /// the sender's connections included, in seq order. A repeated `client_id` from the
    /// same sender in the same room returns the original message and publishes nothing.
    ///
    /// # Errors
    /// `422 validation_failed` (`content`, `client_id`), `404 not_found` (room),
    /// `403 not_member`.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id, room_id))]
    pub async fn send_message(
        &self,
        actor: &Actor,
        room_id: &str,
        content: &str,
        client_id: Option<&str>,
    ) -> AppResult<Message> {
        let content = Content::parse(content, &self.limits)?;
        let client_id = parse_client_id(client_id, &self.limits)?;
        self.require_member(actor, room_id).await?;
        let new = NewMessage {
            id: new_id(),
            room_id: room_id.to_owned(),
            sender_id: actor.user_id.clone(),
            content: content.into_inner(),
            client_id,
            created_at: now_rfc3339(),
        };
        // Held from commit to publish so that the room's events go out in seq order.
        let _order = self.room_lock(room_id).lock().await;
        let (row, created) = self.store.messages.insert_message(&new).await?;
        let message = message_to_wire(row);
        if created {
            self.publish(room_id, &Event::MessageCreated(message.clone()), None)
                .await;
        }
        Ok(message)
    }

    /// A page of a room's history, ascending by seq. With neither cursor, the newest
    /// `limit` messages.
    ///
    /// # Errors
    /// `422 validation_failed` for a `limit` outside 1..=100 or a negative cursor;
    /// `404 not_found` (room); `403 not_member`.
    pub async fn history(
        &self,
        actor: &Actor,
        room_id: &str,
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> AppResult<MessagePage> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be between 1 and {MAX_PAGE}"),
            ));
        }
        for (name, value) in [("before", before), ("after", after)] {
            if value.is_some_and(|v| v < 0) {
                return Err(AppError::validation(
                    name,
                    format!("{name} must be a seq >= 0"),
                ));
            }
        }
        self.require_member(actor, room_id).await?;
        let (rows, has_more) = self
            .store
            .messages
            .messages_page(
                room_id,
                PageQuery {
                    before,
                    after,
                    limit,
                },
            )
            .await?;
        Ok(MessagePage {
            messages: rows.into_iter().map(message_to_wire).collect(),
            has_more,
        })
    }
}
