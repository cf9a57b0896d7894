//! Message reports: `POST /api/v1/rooms/{room_id}/messages/{message_id}/report` for
//! members, `/api/v1/moderation/reports*` for the server's moderators and admins.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palaver_protocol::rest::{Report, ReportList, ReportRequest};
use palaver_protocol::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_message))
        .routes(routes!(list_reports))
        .routes(routes!(resolve_report))
}

/// Report a message.
///
/// `POST /api/v1/rooms/{room_id}/messages/{message_id}/report`:
/// `{reason}` → `201 Report`: reports a message to the server's moderators and admins
/// (once per message). `403 not_member`; `404 not_found` (also for a deleted message);
/// `409 conflict` if already reported by the caller; `422 validation_failed` (`reason`:
/// 1–1000 characters; `message_id`: one's own message).
#[utoipa::path(post, path = "/rooms/{room_id}/messages/{message_id}/report",
    tag = "moderation", request_body = ReportRequest,
    params(("room_id" = String, Path), ("message_id" = String, Path)),
    responses((status = 201, description = "reported", body = Report),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "conflict: already reported", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn report_message(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, message_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<ReportRequest>,
) -> AppResult<(StatusCode, Json<Report>)> {
    let report = state
        .service
        .report_message(&actor, &room_id, &message_id, &req.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(report)))
}

/// List message reports (staff).
///
/// `GET /api/v1/moderation/reports?status=<open|resolved|all>&limit=<1..100>&after=<cursor>`:
/// → `200 {reports: [Report], next}`, oldest first: every room's for admins, public
/// channels' for moderators. `403 forbidden` for users; `422 validation_failed`.
#[utoipa::path(get, path = "/moderation/reports", tag = "moderation",
    params(
        ("status" = Option<String>, Query, pattern = "^(open|resolved|all)$", description = "open (default), resolved or all"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "page size, 1 to 100 (default 50)"),
        ("after" = Option<String>, Query, description = "the next cursor of the previous page")),
    responses((status = 200, description = "one page of reports", body = ReportList),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a moderator or admin", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_reports(
    State(state): State<AppState>,
    actor: Actor,
    query: Params,
) -> AppResult<Json<ReportList>> {
    let limit = query.int("limit")?;
    Ok(Json(
        state
            .service
            .reports(&actor, query.get("status"), query.get("after"), limit)
            .await?,
    ))
}

/// Resolve a report (staff).
///
/// `POST /api/v1/moderation/reports/{report_id}/resolve`:
/// → `200 Report` with `status: resolved` (again for a resolved one). `403 forbidden` for
/// users; `404 not_found` (also a moderator's for a report outside public channels).
#[utoipa::path(post, path = "/moderation/reports/{report_id}/resolve", tag = "moderation",
    params(("report_id" = String, Path)),
    responses((status = 200, description = "resolved", body = Report),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: not a moderator or admin", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn resolve_report(
    State(state): State<AppState>,
    actor: Actor,
    Path(report_id): Path<String>,
) -> AppResult<Json<Report>> {
    Ok(Json(
        state.service.resolve_report(&actor, &report_id).await?,
    ))
}
