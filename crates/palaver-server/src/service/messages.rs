//! Messages: the send path (validate → membership → durable insert → publish), history,
//! edits with kept versions, tombstone deletes, reactions, and read markers.

use std::collections::HashMap;

use palaver_protocol::rest::{MessagePage, ReadState};
use palaver_protocol::ws::{Event, MentionKind, ReactionChange, Receipt};
use palaver_protocol::{
    Attachment, ErrorCode, Message, MessageEdit, MessageSender, MessageType, Reaction, RoomKind,
};

use super::mentions::Resolved;
use super::rooms::forbidden;
use super::user_limits::Action;
use super::validate::{parse_client_id, parse_emoji, Content};
use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::broker::Envelope;
use crate::error::{AppError, AppResult};
use crate::store::{MessageRow, NewMessage, PageQuery, RoomRow};

/// Largest history page.
pub const MAX_PAGE: i64 = 100;
/// History page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 50;

/// What a send carries besides its content.
#[derive(Debug, Clone, Default)]
pub struct SendOptions<'a> {
    /// Idempotency key.
    pub client_id: Option<&'a str>,
    /// A message of the same room this one replies to.
    pub reply_to: Option<&'a str>,
    /// An attachment the sender uploaded.
    pub attachment_id: Option<&'a str>,
}

impl Service {
    /// Sends a message to a room the caller is a member of. Returns only after the message
    /// is committed (durable ack); then `message.created` goes to every connected member,
    /// the sender's connections included, in seq order. A repeated `client_id` from the
    /// same sender in the same room returns the original message and publishes nothing.
    ///
    /// # Errors
    /// `422 validation_failed` (`content`, `client_id`, `reply_to` not in this room,
    /// `attachment_id` not the sender's), `404 not_found` (room), `403 not_member`,
    /// `403 forbidden` (a DM whose other member blocked the sender), `429 rate_limited`
    /// (`user_limits.messages`, with `retry_after`).
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id, room_id))]
    pub async fn send_message(
        &self,
        actor: &Actor,
        room_id: &str,
        content: &str,
        options: SendOptions<'_>,
    ) -> AppResult<Message> {
        let client_id = parse_client_id(options.client_id, &self.limits)?;
        // An attachment message may have an empty caption; a text message may not.
        let content = if options.attachment_id.is_some() && content.is_empty() {
            String::new()
        } else {
            Content::parse(content, &self.limits)?.into_inner()
        };
        let parsed = super::mentions::parse(&content);
        let new = |content: String, member_only: bool, mentions: &Resolved| NewMessage {
            id: new_id(),
            room_id: room_id.to_owned(),
            sender_id: actor.user_id.clone(),
            content,
            client_id: client_id.clone(),
            created_at: now_rfc3339(),
            message_type: if options.attachment_id.is_some() {
                MessageType::Attachment
            } else {
                MessageType::Text
            },
            reply_to: options.reply_to.map(str::to_owned),
            attachment_id: options.attachment_id.map(str::to_owned),
            call: None,
            member_only,
            mentions: mentions.mentions.clone(),
            mentioned: mentions.user_ids(),
        };
        // The fast path, for a plain message to a room known not to be a DM: the
        // membership check is part of the insert (the store refuses the message if the
        // sender is not a member when its batch commits), which saves the read. Anything
        // it refuses takes the careful path below, which says why.
        let mut counted = None;
        if options.reply_to.is_none()
            && options.attachment_id.is_none()
            && parsed.is_empty()
            && self.is_known_group_room(room_id)
        {
            let hit = self.user_limits.hit(&actor.user_id, Action::Message).await;
            if hit.is_ok() {
                let nobody = Resolved::default();
                let fast = new(content.clone(), true, &nobody);
                match self.store_message(fast, None, Vec::new()).await {
                    Err(e) if e.code == ErrorCode::NotFound => {}
                    done => return done,
                }
            }
            counted = Some(hit);
        }
        let (room, me) = self.require_member(actor, room_id).await?;
        self.check_dm_not_blocked(actor, &room).await?;
        if room.kind != RoomKind::Dm {
            self.remember_group_room(room_id);
        }
        if let Some(reply_to) = options.reply_to {
            if self
                .store
                .messages
                .message(room_id, reply_to)
                .await?
                .is_none()
            {
                return Err(AppError::validation(
                    "reply_to",
                    "reply_to must be a message of the same room",
                ));
            }
        }
        let attachment = match options.attachment_id {
            Some(attachment_id) => match self.store.attachments.attachment(attachment_id).await? {
                Some(a) if a.uploader_id == actor.user_id => {
                    Some(super::attachments::attachment_to_wire(a))
                }
                _ => {
                    return Err(AppError::validation(
                        "attachment_id",
                        "attachment_id must be an attachment you uploaded",
                    ))
                }
            },
            None => None,
        };
        // Counted once: the fast path may have counted this send already.
        match counted {
            Some(hit) => hit?,
            None => {
                self.user_limits
                    .hit(&actor.user_id, Action::Message)
                    .await?
            }
        }
        let mentions = self
            .resolve_mentions(&room, &actor.user_id, me.role, &parsed)
            .await?;
        let message = new(content, false, &mentions);
        self.store_message(message, attachment, mentions.notified)
            .await
    }

    /// Stores `new` (see [`Service::queue_message`]) and answers with the message, the
    /// one stored the first time for a repeated `client_id`. A new message is then handed
    /// to Web Push with the users it notifies, `new.mentioned` (see
    /// [`Service::notify_message`]), and `notified` get a `mention` event.
    ///
    /// # Errors
    /// As [`Service::queue_message`] and its future.
    async fn store_message(
        &self,
        new: NewMessage,
        attachment: Option<Attachment>,
        notified: Vec<(String, MentionKind)>,
    ) -> AppResult<Message> {
        let notify = self.notify_hook(&new.room_id, new.mentioned.clone());
        // Queued under the room's order, committed with whatever else is queued (group
        // commit), published in queue order = seq order. The rest runs in its own task so
        // that a caller who goes away (an HTTP client hanging up) cannot stop a committed
        // message from being published (and pushed), nor hold up the room's later messages.
        let committed = self.queue_message(new, attachment, notified).await?;
        let stored = tokio::spawn(async move {
            let stored = committed.await?;
            if let (Stored::New(message), Some(notify)) = (&stored, notify) {
                notify.fire(message);
            }
            Ok::<_, AppError>(stored)
        })
        .await
        .map_err(AppError::internal)??;
        match stored {
            Stored::New(message) => Ok(message),
            Stored::Existing(row) => self.message_to_wire(row).await,
        }
    }

    /// Queues `new` for the group commit under its room's order, and returns the rest of
    /// the work as a future to spawn: wait for the commit, then publish `message.created`
    /// in the room's order, then `mention` to each of `notified`. Spawned, it cannot be stopped half-way by a caller who goes
    /// away, nor hold up the room's later messages.
    ///
    /// # Errors
    /// Queueing failed (`503 unavailable` when the store is shutting down); the future
    /// fails with what the commit failed with (`404 not_found`: the room or the sender is
    /// gone).
    pub(crate) async fn queue_message(
        &self,
        new: NewMessage,
        attachment: Option<Attachment>,
        notified: Vec<(String, MentionKind)>,
    ) -> AppResult<impl std::future::Future<Output = AppResult<Stored>> + Send + 'static> {
        let started = std::time::Instant::now();
        let room_id = new.room_id.clone();
        let (pending, mut turn) = self.queue_in_order(&room_id, new).await?;
        let broker = self.broker.clone();
        let metrics = self.metrics.clone();
        Ok(async move {
            let committed = pending.committed().await;
            metrics
                .store_seconds
                .get_or_create(&crate::metrics::Metrics::label("op", "insert_message"))
                .observe(started.elapsed().as_secs_f64());
            let (row, created) = committed?;
            if !created {
                return Ok::<_, AppError>(Stored::Existing(row));
            }
            metrics.messages_in.inc();
            let message = new_message_to_wire(row, attachment);
            turn.wait().await;
            let event = Event::MessageCreated(message.clone());
            super::publish(
                &*broker,
                Envelope::room(&message.room_id, event).change(message.seq),
            )
            .await;
            drop(turn);
            super::mentions::announce(&*broker, &message, &notified).await;
            Ok(Stored::New(message))
        })
    }

    /// A page of a room's history, ascending by seq. With neither cursor, the newest
    /// `limit` messages. Deleted messages appear as tombstones.
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
            messages: self.messages_to_wire(rows).await?,
            has_more,
        })
    }

    /// The author edits a message; the previous text is kept (`edits`) and members get
    /// `message.updated`.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found` (room, or a message not in this room);
    /// `403 forbidden` for someone else's message; `409 conflict` for a deleted one;
    /// `422 validation_failed` (`content`); `429 rate_limited` (`user_limits.messages`).
    pub async fn edit_message(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
        content: &str,
    ) -> AppResult<Message> {
        let content = Content::parse(content, &self.limits)?;
        let (room, me) = self.require_member(actor, room_id).await?;
        let message = self.message_in(room_id, message_id).await?;
        if message.sender_id != actor.user_id {
            return Err(forbidden("only the author can edit a message"));
        }
        if message.deleted_at.is_some() {
            return Err(AppError::new(ErrorCode::Conflict, "the message is deleted"));
        }
        if message.message_type == MessageType::Call {
            return Err(AppError::new(
                ErrorCode::Conflict,
                "call log entries cannot be edited",
            ));
        }
        self.user_limits
            .hit(&actor.user_id, Action::Message)
            .await?;
        let content = content.into_inner();
        let parsed = super::mentions::parse(&content);
        let mentions = self
            .resolve_mentions(&room, &actor.user_id, me.role, &parsed)
            .await?;
        let _order = self.room_order(room_id).await;
        let row = self
            .store
            .messages
            .edit_message(
                room_id,
                message_id,
                &content,
                &mentions.mentions,
                &mentions.user_ids(),
                &now_rfc3339(),
            )
            .await?;
        let seq = row.updated_seq;
        let wire = self.message_to_wire(row).await?;
        self.publish(Envelope::room(room_id, Event::MessageUpdated(wire.clone())).change(seq))
            .await;
        // Only names the edit added are announced.
        let added: Vec<(String, MentionKind)> = mentions
            .notified
            .into_iter()
            .filter(|(u, kind)| {
                *kind == MentionKind::User && !message.mentions.user_ids.contains(u)
            })
            .collect();
        super::mentions::announce(&*self.broker, &wire, &added).await;
        Ok(wire)
    }

    /// The author, a room owner or admin, or (in a public channel, member or not) the
    /// server's staff deletes a message: it stays as a tombstone with no content, reactions
    /// or edit history, and members get `message.deleted`. Staff never delete an admin's
    /// message, and a moderator never another moderator's. Deleting a tombstone again is a
    /// no-op that succeeds.
    ///
    /// # Errors
    /// `403 not_member` (unless staff in a public channel); `404 not_found`;
    /// `403 forbidden` for someone else's message when the caller does not moderate the
    /// room.
    pub async fn delete_message(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
    ) -> AppResult<Message> {
        let (room, me) = self.moderation_scope(actor, room_id).await?;
        let message = self.message_in(room_id, message_id).await?;
        let by_author = message.sender_id == actor.user_id && me.is_some();
        // Both sides of a DM are its owners, but neither moderates the other: in a DM only
        // the author deletes a message.
        let by_room =
            room.kind != RoomKind::Dm && me.as_ref().is_some_and(|me| me.role.moderates());
        // Staff delete any message in a public channel but an admin's (or, for a
        // moderator, another moderator's).
        let by_staff = !by_author
            && !by_room
            && super::members::staff_applies(actor, &room)
            && message.sender_id != actor.user_id
            && super::members::staff_outranks(actor, self.global_role(&message.sender_id).await?);
        if !(by_author || by_room || by_staff) {
            // (A non-member got here only as staff in a public channel.)
            return Err(forbidden(
                "only the author or the room's owners and admins can delete a message (in a DM, only the author)",
            ));
        }
        if message.deleted_at.is_some() {
            return self.message_to_wire(message).await;
        }
        let _order = self.room_order(room_id).await;
        let row = self
            .store
            .messages
            .delete_message(room_id, message_id, &now_rfc3339())
            .await?;
        let seq = row.updated_seq;
        let tombstone = self.message_to_wire(row).await?;
        self.publish(Envelope::room(room_id, Event::MessageDeleted(tombstone.clone())).change(seq))
            .await;
        Ok(tombstone)
    }

    /// Earlier versions of a message, oldest first.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`.
    pub async fn message_edits(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
    ) -> AppResult<Vec<MessageEdit>> {
        self.require_member(actor, room_id).await?;
        self.message_in(room_id, message_id).await?;
        let rows = self.store.messages.edits(message_id).await?;
        Ok(rows
            .into_iter()
            .map(|e| MessageEdit {
                version: e.version,
                content: e.content,
                written_at: e.written_at,
            })
            .collect())
    }

    /// Adds (`add = true`) or removes the caller's reaction `emoji` on a message; members
    /// get `reaction.added` / `reaction.removed` when something changed.
    ///
    /// # Errors
    /// `403 not_member` (and no event); `404 not_found`; `422 validation_failed`
    /// (`emoji`: not exactly one emoji grapheme); `409 conflict` on a deleted message;
    /// `429 rate_limited` (`user_limits.messages`, which reactions share).
    pub async fn react(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
        emoji: &str,
        add: bool,
    ) -> AppResult<Message> {
        let emoji = parse_emoji(emoji)?;
        self.require_member(actor, room_id).await?;
        let message = self.message_in(room_id, message_id).await?;
        if message.deleted_at.is_some() {
            return Err(AppError::new(ErrorCode::Conflict, "the message is deleted"));
        }
        self.user_limits
            .hit(&actor.user_id, Action::Message)
            .await?;
        let _order = self.room_order(room_id).await;
        let changed = if add {
            self.store
                .messages
                .add_reaction(room_id, message_id, &actor.user_id, &emoji, &now_rfc3339())
                .await?
        } else {
            self.store
                .messages
                .remove_reaction(room_id, message_id, &actor.user_id, &emoji)
                .await?
        };
        if let Some(seq) = changed {
            let change = ReactionChange {
                room_id: room_id.to_owned(),
                message_id: message_id.to_owned(),
                emoji,
                user_id: Some(actor.user_id.clone()),
                seq: Some(seq),
            };
            let event = if add {
                Event::ReactionAdded(change)
            } else {
                Event::ReactionRemoved(change)
            };
            self.publish(Envelope::room(room_id, event).change(seq))
                .await;
        }
        self.message_to_wire(message).await
    }

    /// Where message `message_id` is, for a caller who names a message by its id alone:
    /// `(room_id, seq)`, its room and the seq it was created under. A tombstone is found
    /// like any message.
    ///
    /// # Errors
    /// `404 not_found` (`"message not found"`) when no message has this id, or when the
    /// caller is not a member of its room: the same answer, so that a non-member cannot
    /// learn whether a message exists.
    pub async fn locate_message(
        &self,
        actor: &Actor,
        message_id: &str,
    ) -> AppResult<(String, i64)> {
        let not_found = || AppError::not_found("message");
        let (room_id, seq) = self
            .store
            .messages
            .message_position(message_id)
            .await?
            .ok_or_else(not_found)?;
        match self.store.rooms.member(&room_id, &actor.user_id).await? {
            Some(_) => Ok((room_id, seq)),
            None => Err(not_found()),
        }
    }

    /// Moves the caller's read marker forward to `seq` (never back; capped at the room's
    /// last seq); when it moves, members get `receipt.updated`.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`; `422 validation_failed` (`seq` < 0).
    pub async fn mark_read(&self, actor: &Actor, room_id: &str, seq: i64) -> AppResult<ReadState> {
        if seq < 0 {
            return Err(AppError::validation("seq", "seq must be >= 0"));
        }
        let (_, me) = self.require_member(actor, room_id).await?;
        let _order = self.room_order(room_id).await;
        let (marker, unread, mentions) = self
            .store
            .rooms
            .mark_read(room_id, &actor.user_id, seq)
            .await?
            .ok_or_else(|| {
                AppError::new(ErrorCode::NotMember, "you are not a member of this room")
            })?;
        if marker > me.last_read_seq {
            let event = Event::ReceiptUpdated(Receipt {
                room_id: room_id.to_owned(),
                user_id: actor.user_id.clone(),
                seq: marker,
            });
            self.publish(Envelope::room(room_id, event)).await;
        }
        Ok(ReadState {
            room_id: room_id.to_owned(),
            last_read_seq: marker,
            unread_count: unread,
            mention_count: mentions,
        })
    }

    /// In a DM, refuses a sender whom the other person of the pair has blocked, whether
    /// or not they are still a member (someone who left a DM and then blocked the other
    /// must not find their messages waiting when they reopen it).
    pub(super) async fn check_dm_not_blocked(
        &self,
        actor: &Actor,
        room: &RoomRow,
    ) -> AppResult<()> {
        if room.kind != RoomKind::Dm {
            return Ok(());
        }
        let others: Vec<String> = match room.dm_pair() {
            Some((a, b)) => [a, b]
                .into_iter()
                .filter(|id| *id != actor.user_id)
                .map(str::to_owned)
                .collect(),
            // A DM without its pair (not made by `open_dm`): its other members.
            None => self
                .store
                .rooms
                .members(&room.id)
                .await?
                .into_iter()
                .map(|m| m.user_id)
                .filter(|id| *id != actor.user_id)
                .collect(),
        };
        for other in others {
            if self.is_blocked(&other, &actor.user_id).await? {
                return Err(forbidden("this user does not accept messages from you"));
            }
        }
        Ok(())
    }

    /// Message `message_id` of `room_id`, or `404` (also for another room's message).
    async fn message_in(&self, room_id: &str, message_id: &str) -> AppResult<MessageRow> {
        self.store
            .messages
            .message(room_id, message_id)
            .await?
            .ok_or_else(|| AppError::not_found("message"))
    }

    /// The wire form of one stored message.
    pub(crate) async fn message_to_wire(&self, row: MessageRow) -> AppResult<Message> {
        let mut v = self.messages_to_wire(vec![row]).await?;
        v.pop()
            .ok_or_else(|| AppError::internal("message vanished"))
    }

    /// The wire forms of stored messages, with their reactions and attachments.
    pub(crate) async fn messages_to_wire(&self, rows: Vec<MessageRow>) -> AppResult<Vec<Message>> {
        let ids: Vec<String> = rows.iter().map(|m| m.id.clone()).collect();
        let mut reactions: HashMap<String, Vec<Reaction>> = HashMap::new();
        for r in self.store.messages.reactions(&ids).await? {
            let list = reactions.entry(r.message_id).or_default();
            match list.iter_mut().find(|x| x.emoji == r.emoji) {
                Some(existing) => {
                    existing.count += 1;
                    existing.user_ids.push(r.user_id);
                }
                None => list.push(Reaction {
                    emoji: r.emoji,
                    count: 1,
                    user_ids: vec![r.user_id],
                }),
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let attachment = match &row.attachment_id {
                Some(id) if row.deleted_at.is_none() => self
                    .store
                    .attachments
                    .attachment(id)
                    .await?
                    .map(super::attachments::attachment_to_wire),
                _ => None,
            };
            let reactions = reactions.remove(&row.id).unwrap_or_default();
            out.push(row_to_wire(row, attachment, reactions));
        }
        Ok(out)
    }
}

/// What a send stored: a new message (already published), or the one stored the first
/// time under the same `client_id`.
pub(crate) enum Stored {
    New(Message),
    Existing(MessageRow),
}

/// The wire form of a message just stored: no reactions yet, and its attachment (if any)
/// as already looked up.
fn new_message_to_wire(row: MessageRow, attachment: Option<Attachment>) -> Message {
    row_to_wire(row, attachment, Vec::new())
}

/// The wire form of a stored message, given its attachment and reactions.
fn row_to_wire(
    row: MessageRow,
    attachment: Option<Attachment>,
    reactions: Vec<Reaction>,
) -> Message {
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
        message_type: row.message_type,
        reply_to: row.reply_to,
        attachment,
        call: row.call,
        edited_at: row.edited_at,
        deleted_at: row.deleted_at,
        reactions,
        mentions: row.mentions,
    }
}

/// One page of a room's replay: change events in seq order, and how far they reach.
pub struct ReplayPage {
    /// `(seq, event)`: each a `message.created`, `message.updated` or `message.deleted`
    /// with the seq of the change (the native wire's top-level `seq`).
    pub changes: Vec<(i64, Event)>,
    /// The seq up to which the page reflects every change (when `complete`).
    pub up_to: i64,
    /// Whether this page reached the end of the room's history (else ask again from the
    /// last frame's seq).
    pub complete: bool,
}

/// Rows per replay page.
pub const REPLAY_PAGE: i64 = 500;

impl Service {
    /// The changes of a room after seq `since` as change events, for resuming (see
    /// `docs/protocol.md`, "Resume"): a message created after `since` comes as
    /// `message.created`, one created before and changed since as `message.updated` or
    /// `message.deleted`, each with its current state (reactions included) and the seq of
    /// its latest change. With `since = None`, starts from the room's latest page of
    /// messages. Rows whose latest change's seq `skip` accepts were already sent on this
    /// connection and are left out.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found`.
    pub async fn replay(
        &self,
        actor: &Actor,
        room_id: &str,
        since: Option<i64>,
        skip: &(dyn Fn(i64) -> bool + Sync),
    ) -> AppResult<ReplayPage> {
        self.require_member(actor, room_id).await?;
        let since = match since {
            Some(since) => since.max(0),
            None => {
                let page = PageQuery {
                    before: None,
                    after: None,
                    limit: DEFAULT_PAGE,
                };
                let (latest, _) = self.store.messages.messages_page(room_id, page).await?;
                latest.first().map(|m| m.seq - 1).unwrap_or(0)
            }
        };
        self.replay_page(room_id, since, skip).await
    }

    /// One page of [`Service::replay`] from `since`, for a member already checked (or
    /// for a node repairing a gap: see `broker::order`).
    ///
    /// # Errors
    /// The store failed.
    pub(crate) async fn replay_page(
        &self,
        room_id: &str,
        since: i64,
        skip: &(dyn Fn(i64) -> bool + Sync),
    ) -> AppResult<ReplayPage> {
        let (rows, last_seq) = self
            .store
            .messages
            .changes_since(room_id, since, REPLAY_PAGE)
            .await?;
        let complete = (rows.len() as i64) < REPLAY_PAGE;
        let reach = rows.last().map(|r| r.updated_seq).unwrap_or(since);
        let rows: Vec<MessageRow> = rows.into_iter().filter(|r| !skip(r.updated_seq)).collect();
        let seqs: Vec<i64> = rows.iter().map(|r| r.updated_seq).collect();
        let mut changes = Vec::with_capacity(rows.len());
        for (message, seq) in self.messages_to_wire(rows).await?.into_iter().zip(seqs) {
            let event = if message.seq > since {
                Event::MessageCreated(message)
            } else if message.deleted_at.is_some() {
                Event::MessageDeleted(message)
            } else {
                Event::MessageUpdated(message)
            };
            changes.push((seq, event));
        }
        Ok(ReplayPage {
            changes,
            up_to: if complete { last_seq.max(since) } else { reach },
            complete,
        })
    }
}

#[async_trait::async_trait]
impl crate::broker::ChangeSource for Service {
    async fn changes_after(
        &self,
        room_id: &str,
        after: i64,
    ) -> anyhow::Result<(Vec<(i64, Event)>, i64)> {
        let mut changes = Vec::new();
        let mut from = after;
        loop {
            let page = self
                .replay_page(room_id, from, &|_| false)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            changes.extend(page.changes);
            if page.complete {
                return Ok((changes, page.up_to));
            }
            from = page.up_to;
        }
    }

    async fn last_seqs(&self, room_ids: &[String]) -> anyhow::Result<Vec<(String, i64)>> {
        Ok(self.store.rooms.last_seqs(room_ids).await?)
    }
}
