//! Message reports: any member reports a message of their room (once per message); the
//! server's moderators list the open reports of public channels and resolve them, admins
//! those of every room.
//!
//! A report keeps the message's content as it was when reported, so editing or deleting
//! the message afterwards does not hide what was reported.

use palaver_protocol::rest::{Report, ReportList};
use palaver_protocol::{ErrorCode, MessageSender, Role};

use super::{new_id, now_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::store::{NewReport, ReportRow, StoreError};

/// The longest report reason, in characters.
pub const REASON_MAX_CHARS: usize = 1000;
/// The default and largest page of the report list.
const PAGE_DEFAULT: i64 = 50;
const PAGE_MAX: i64 = 100;

fn report_to_wire(row: ReportRow) -> Report {
    Report {
        id: row.id,
        room_id: row.room_id,
        room_name: row.room_name,
        message_id: row.message_id,
        author: MessageSender {
            id: row.author_id,
            username: row.author_username,
        },
        content: row.content,
        reporter: MessageSender {
            id: row.reporter_id,
            username: row.reporter_username,
        },
        reason: row.reason,
        status: row.status,
        created_at: row.created_at,
        resolved_by: row.resolved_by,
        resolved_at: row.resolved_at,
    }
}

/// Which reports `actor` may see: `Some(public_only)` for the server's staff, `None` for
/// everyone else.
fn report_scope(actor: &Actor) -> Option<bool> {
    match actor.role {
        Role::Admin => Some(false),
        Role::Moderator => Some(true),
        Role::User => None,
    }
}

fn staff_only() -> AppError {
    AppError::new(ErrorCode::Forbidden, "moderators and administrators only")
}

impl Service {
    /// A member reports a message of their room to the server's moderators and admins.
    ///
    /// # Errors
    /// `403 not_member`; `404 not_found` for an unknown room or message (or a deleted
    /// one); `422 validation_failed` for a `reason` that is empty or longer than 1000
    /// characters, or (`message_id`) for one's own message; `409 conflict` if the caller
    /// already reported it.
    pub async fn report_message(
        &self,
        actor: &Actor,
        room_id: &str,
        message_id: &str,
        reason: &str,
    ) -> AppResult<Report> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > REASON_MAX_CHARS {
            return Err(AppError::validation(
                "reason",
                format!("a reason is 1 to {REASON_MAX_CHARS} characters"),
            ));
        }
        self.require_member(actor, room_id).await?;
        let message = self
            .store
            .messages
            .message(room_id, message_id)
            .await?
            .filter(|m| m.deleted_at.is_none())
            .ok_or_else(|| AppError::not_found("message"))?;
        if message.sender_id == actor.user_id {
            return Err(AppError::validation(
                "message_id",
                "you cannot report your own message",
            ));
        }
        let report = NewReport {
            id: new_id(),
            room_id: room_id.to_owned(),
            message_id: message_id.to_owned(),
            reporter_id: actor.user_id.clone(),
            reason: reason.to_owned(),
            content: message.content,
            created_at: now_rfc3339(),
        };
        match self.store.reports.create_report(&report).await {
            Ok(row) => {
                tracing::info!(report_id = %row.id, %room_id, %message_id, "message reported");
                Ok(report_to_wire(row))
            }
            Err(StoreError::Conflict(_)) => Err(AppError::new(
                ErrorCode::Conflict,
                "you already reported this message",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Reports for the server's staff, oldest first, paged by the `after` cursor (a report
    /// id): admins see every room's, moderators those of public channels. `status` is
    /// `open` (the default), `resolved` or `all`.
    ///
    /// # Errors
    /// `403 forbidden` for users; `422 validation_failed` for a `limit` outside 1..=100
    /// or an unknown `status`.
    pub async fn reports(
        &self,
        actor: &Actor,
        status: Option<&str>,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> AppResult<ReportList> {
        let public_only = report_scope(actor).ok_or_else(staff_only)?;
        let limit = limit.unwrap_or(PAGE_DEFAULT);
        if !(1..=PAGE_MAX).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be between 1 and {PAGE_MAX}"),
            ));
        }
        let status = match status.unwrap_or("open") {
            "open" => Some("open"),
            "resolved" => Some("resolved"),
            "all" => None,
            _ => {
                return Err(AppError::validation(
                    "status",
                    "status is open, resolved or all",
                ))
            }
        };
        let rows = self
            .store
            .reports
            .reports(status, public_only, after, limit + 1)
            .await?;
        let has_more = rows.len() as i64 > limit;
        let reports: Vec<Report> = rows
            .into_iter()
            .take(limit as usize)
            .map(report_to_wire)
            .collect();
        let next = if has_more {
            reports.last().map(|r| r.id.clone())
        } else {
            None
        };
        Ok(ReportList { reports, next })
    }

    /// Marks a report resolved (resolving a resolved one again changes nothing).
    ///
    /// # Errors
    /// `403 forbidden` for users; `404 not_found` for an unknown report or, for a
    /// moderator, one from a room that is not a public channel.
    pub async fn resolve_report(&self, actor: &Actor, report_id: &str) -> AppResult<Report> {
        let public_only = report_scope(actor).ok_or_else(staff_only)?;
        let visible = |r: &ReportRow| !public_only || r.public_channel;
        self.store
            .reports
            .report(report_id)
            .await?
            .filter(visible)
            .ok_or_else(|| AppError::not_found("report"))?;
        if self
            .store
            .reports
            .resolve_report(report_id, &actor.user_id, &now_rfc3339())
            .await?
        {
            tracing::info!(%report_id, by = %actor.user_id, "report resolved");
        }
        let row = self
            .store
            .reports
            .report(report_id)
            .await?
            .ok_or_else(|| AppError::not_found("report"))?;
        Ok(report_to_wire(row))
    }
}
