//! `/api/v1/invitations/*`, revoking `/api/v1/rooms/{room_id}/invitations/{invitation_id}`,
//! and `/api/v1/dms`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palaver_protocol::rest::{InvitationList, UserRef};
use palaver_protocol::{ErrorBody, Room};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_invitations))
        .routes(routes!(accept))
        .routes(routes!(decline))
        .routes(routes!(open_dm))
        .routes(routes!(revoke_invitation))
}

/// List the caller's pending invitations.
///
/// `GET /api/v1/invitations`:
/// → `200 {invitations: [Invitation]}`: the caller's pending invitations.
#[utoipa::path(get, path = "/invitations", tag = "invitations",
    responses((status = 200, description = "pending invitations", body = InvitationList),
        (status = 401, description = "unauthorized", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_invitations(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<InvitationList>> {
    let invitations = state.service.invitations(&actor).await?;
    Ok(Json(InvitationList { invitations }))
}

/// Accept an invitation.
///
/// `POST /api/v1/invitations/{invitation_id}/accept`:
/// → `200 Room`: the caller joins (`member.joined`); `404 not_found` unless it is the
/// caller's pending invitation; `410 invitation_revoked` if it was revoked (also when
/// its inviter left, was kicked or banned); `403 forbidden` if banned.
#[utoipa::path(post, path = "/invitations/{invitation_id}/accept", tag = "invitations",
    params(("invitation_id" = String, Path)),
    responses((status = 200, description = "joined", body = Room),
        (status = 403, description = "forbidden: banned", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 410, description = "invitation_revoked", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn accept(
    State(state): State<AppState>,
    actor: Actor,
    Path(invitation_id): Path<String>,
) -> AppResult<Json<Room>> {
    let room = state
        .service
        .respond_invitation(&actor, &invitation_id, true)
        .await?;
    room.map(Json)
        .ok_or_else(|| crate::error::AppError::not_found("invitation"))
}

/// Decline an invitation.
///
/// `POST /api/v1/invitations/{invitation_id}/decline`:
/// → `204`; `404 not_found` unless it is the caller's pending invitation;
/// `410 invitation_revoked` if it was revoked.
#[utoipa::path(post, path = "/invitations/{invitation_id}/decline", tag = "invitations",
    params(("invitation_id" = String, Path)),
    responses((status = 204, description = "declined"),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 410, description = "invitation_revoked", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn decline(
    State(state): State<AppState>,
    actor: Actor,
    Path(invitation_id): Path<String>,
) -> AppResult<StatusCode> {
    state
        .service
        .respond_invitation(&actor, &invitation_id, false)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revoke an invitation.
///
/// `DELETE /api/v1/rooms/{room_id}/invitations/{invitation_id}`:
/// → `204`: the pending invitation is revoked and the invitee gets `invitation.revoked`.
/// The inviter and the room's owners and admins may. `403 not_member`; `403 forbidden`
/// for someone else's invitation; `404 not_found` unless it is a pending invitation to
/// this room.
#[utoipa::path(delete, path = "/rooms/{room_id}/invitations/{invitation_id}",
    tag = "invitations",
    params(("room_id" = String, Path), ("invitation_id" = String, Path)),
    responses((status = 204, description = "revoked"),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn revoke_invitation(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, invitation_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    state
        .service
        .revoke_invitation(&actor, &room_id, &invitation_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Open a direct message room.
///
/// `POST /api/v1/dms`:
/// `{user_id}` → `200 Room`: the one DM room between the caller and that user, created
/// the first time. `403 forbidden` if they blocked the caller; `404 not_found`;
/// `422 validation_failed` for oneself.
#[utoipa::path(post, path = "/dms", tag = "invitations", request_body = UserRef,
    responses((status = 200, description = "the DM room", body = Room),
        (status = 403, description = "forbidden: blocked", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn open_dm(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<UserRef>,
) -> AppResult<Json<Room>> {
    Ok(Json(state.service.open_dm(&actor, &req.user_id).await?))
}
