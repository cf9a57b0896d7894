//! `/api/v1/rooms/*`: create, list, directory, join, update, delete, leave, members,
//! moderation, invitations to a room, read markers.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palaver_protocol::rest::{
    CreateRoomRequest, InvitationList, MemberList, ReadRequest, ReadState, RoomList,
    SetMemberRoleRequest, UpdateRoomRequest, UserRef,
};
use palaver_protocol::{ErrorBody, Invitation, Member, Room};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_mine, create))
        .routes(routes!(directory))
        .routes(routes!(get_room, update, delete_room))
        .routes(routes!(join))
        .routes(routes!(leave))
        .routes(routes!(members))
        .routes(routes!(kick))
        .routes(routes!(set_member_role))
        .routes(routes!(ban, unban))
        .routes(routes!(transfer_ownership))
        .routes(routes!(invite, list_room_invitations))
        .routes(routes!(read))
}

/// Create a room.
///
/// `POST /api/v1/rooms`:
/// `{name, visibility: "public" | "private", topic?}` → `201 Room`; the caller becomes
/// owner and first member. `422 validation_failed`.
#[utoipa::path(post, path = "/rooms", tag = "rooms", request_body = CreateRoomRequest,
    responses((status = 201, description = "created; the caller is owner", body = Room),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 429, description = "rate_limited (user_limits.room_creations); Retry-After", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateRoomRequest>,
) -> AppResult<(StatusCode, Json<Room>)> {
    let room = state.service.create_room(&actor, req).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// List the caller's rooms.
///
/// `GET /api/v1/rooms?limit=<1..100>&after=<cursor>`:
/// → `200 {rooms: [Room], next}`: a page (default 50) of the caller's rooms, oldest
/// membership first, each with `my_role`, `last_read_seq`, `unread_count` and
/// `last_message`; pass `next` as `after` for the following page (`null`: last page).
/// `422 validation_failed` (`limit`, `after`).
#[utoipa::path(get, path = "/rooms", tag = "rooms",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "page size, 1..=100, default 50"),
        ("after" = Option<String>, Query, pattern = "^[^,]+,.+$", description = "the next cursor of the previous page")),
    responses((status = 200, description = "a page of the caller's rooms", body = RoomList),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "validation_failed (limit, after)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_mine(
    State(state): State<AppState>,
    actor: Actor,
    query: Params,
) -> AppResult<Json<RoomList>> {
    let limit = query.int("limit")?;
    Ok(Json(
        state
            .service
            .my_rooms(&actor, query.get("after"), limit)
            .await?,
    ))
}

/// List the public room directory.
///
/// `GET /api/v1/rooms/public?q=<text>&limit=<1..100>&after=<cursor>`:
/// → `200 {rooms: [Room], next}`: a page (default 50) of the public directory, newest
/// first, only names containing `q` (ASCII case-insensitive) when given; pass `next` as
/// `after` (with the same `q`) for the following page (`null`: last page).
/// `422 validation_failed` (`limit`, `after`, `q`).
#[utoipa::path(get, path = "/rooms/public", tag = "rooms",
    params(("q" = Option<String>, Query, max_length = 100, description = "text the room name contains (at most room_name_max_chars, 100 by default)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "page size, 1..=100, default 50"),
        ("after" = Option<String>, Query, pattern = "^[^,]+,.+$", description = "the next cursor of the previous page")),
    responses((status = 200, description = "a page of the public directory", body = RoomList),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "validation_failed (limit, after, q)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn directory(
    State(state): State<AppState>,
    _actor: Actor,
    query: Params,
) -> AppResult<Json<RoomList>> {
    let limit = query.int("limit")?;
    Ok(Json(
        state
            .service
            .public_rooms(query.get("q"), query.get("after"), limit)
            .await?,
    ))
}

/// Get a room.
///
/// `GET /api/v1/rooms/{room_id}`:
/// → `200 Room` for a member; `403 not_member`; `404 not_found`.
#[utoipa::path(get, path = "/rooms/{room_id}", tag = "rooms", params(("room_id" = String, Path)),
    responses((status = 200, description = "the room", body = Room),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn get_room(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<Room>> {
    Ok(Json(state.service.room_for_member(&actor, &room_id).await?))
}

/// Update a room.
///
/// `PATCH /api/v1/rooms/{room_id}`:
/// `{name?, topic?}` (owners and admins) → `200 Room`, members get `room.updated`;
/// `403 forbidden`; `422 validation_failed`.
#[utoipa::path(patch, path = "/rooms/{room_id}", tag = "rooms", params(("room_id" = String, Path)),
    request_body = UpdateRoomRequest,
    responses((status = 200, description = "updated", body = Room),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn update(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<UpdateRoomRequest>,
) -> AppResult<Json<Room>> {
    Ok(Json(
        state.service.update_room(&actor, &room_id, req).await?,
    ))
}

/// Delete a room.
///
/// `DELETE /api/v1/rooms/{room_id}`:
/// (owners) → `204`; members get `room.deleted` and nothing more from the room.
#[utoipa::path(delete, path = "/rooms/{room_id}", tag = "rooms", params(("room_id" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_room(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.delete_room(&actor, &room_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Join a public room.
///
/// `POST /api/v1/rooms/{room_id}/join`:
/// → `200 Room`; `403 forbidden` (private room, DM, or banned); `404 not_found`.
#[utoipa::path(post, path = "/rooms/{room_id}/join", tag = "rooms", params(("room_id" = String, Path)),
    responses((status = 200, description = "joined", body = Room),
        (status = 403, description = "forbidden", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn join(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<Room>> {
    Ok(Json(state.service.join_room(&actor, &room_id).await?))
}

/// Leave a room.
///
/// `POST /api/v1/rooms/{room_id}/leave`:
/// → `204`; the last owner leaving hands ownership on.
#[utoipa::path(post, path = "/rooms/{room_id}/leave", tag = "rooms", params(("room_id" = String, Path)),
    responses((status = 204, description = "left"),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn leave(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<StatusCode> {
    state.service.leave_room(&actor, &room_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a room's members.
///
/// `GET /api/v1/rooms/{room_id}/members`:
/// → `200 {members: [Member]}`, owners first.
#[utoipa::path(get, path = "/rooms/{room_id}/members", tag = "rooms", params(("room_id" = String, Path)),
    responses((status = 200, description = "the members", body = MemberList),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn members(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<MemberList>> {
    let members = state.service.members(&actor, &room_id).await?;
    Ok(Json(MemberList { members }))
}

/// Kick a member.
///
/// `DELETE /api/v1/rooms/{room_id}/members/{user_id}`:
/// Kick (owners and admins, on members of a lower role) → `204`.
#[utoipa::path(delete, path = "/rooms/{room_id}/members/{user_id}", tag = "rooms",
    params(("room_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "kicked"),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn kick(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, user_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    state.service.kick(&actor, &room_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set a member's room role.
///
/// `PUT /api/v1/rooms/{room_id}/members/{user_id}/role`:
/// `{role: "admin" | "member"}` (owners) → `200 Member`; members get `member.updated`.
#[utoipa::path(put, path = "/rooms/{room_id}/members/{user_id}/role", tag = "rooms",
    params(("room_id" = String, Path), ("user_id" = String, Path)),
    request_body = SetMemberRoleRequest,
    responses((status = 200, description = "role set", body = Member),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn set_member_role(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, user_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetMemberRoleRequest>,
) -> AppResult<Json<Member>> {
    let member = state
        .service
        .set_member_role(&actor, &room_id, &user_id, req.role)
        .await?;
    Ok(Json(member))
}

/// Ban a user from a room.
///
/// `PUT /api/v1/rooms/{room_id}/bans/{user_id}`:
/// Ban (owners and admins) → `204`: removed if a member, and cannot rejoin or accept
/// invitations until unbanned.
#[utoipa::path(put, path = "/rooms/{room_id}/bans/{user_id}", tag = "rooms",
    params(("room_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "banned"),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn ban(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, user_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    state.service.ban(&actor, &room_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unban a user.
///
/// `DELETE /api/v1/rooms/{room_id}/bans/{user_id}`:
/// Unban (owners and admins) → `204`; `404 not_found` if not banned.
#[utoipa::path(delete, path = "/rooms/{room_id}/bans/{user_id}", tag = "rooms",
    params(("room_id" = String, Path), ("user_id" = String, Path)),
    responses((status = 204, description = "unbanned"),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn unban(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, user_id)): Path<(String, String)>,
) -> AppResult<StatusCode> {
    state.service.unban(&actor, &room_id, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Transfer a room's ownership.
///
/// `POST /api/v1/rooms/{room_id}/transfer-ownership`:
/// `{user_id}` (the owner) → `204`: that member becomes owner, the caller an admin.
#[utoipa::path(post, path = "/rooms/{room_id}/transfer-ownership", tag = "rooms",
    params(("room_id" = String, Path)), request_body = UserRef,
    responses((status = 204, description = "transferred"),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn transfer_ownership(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<UserRef>,
) -> AppResult<StatusCode> {
    state
        .service
        .transfer_ownership(&actor, &room_id, &req.user_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Invite a user to a room.
///
/// `POST /api/v1/rooms/{room_id}/invitations`:
/// `{user_id}` → `201 Invitation`; the invitee gets `invitation.created`. If one is
/// already pending for them in this room, it is returned and nobody is notified again.
/// `403 forbidden` if they blocked the caller or are banned; `409 conflict` if already a
/// member; `429 rate_limited` (`user_limits.invitations`).
#[utoipa::path(post, path = "/rooms/{room_id}/invitations", tag = "invitations",
    params(("room_id" = String, Path)), request_body = UserRef,
    responses((status = 201, description = "invited", body = Invitation),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "conflict: already a member", body = ErrorBody),
        (status = 429, description = "rate_limited (user_limits.invitations); Retry-After", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn invite(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<UserRef>,
) -> AppResult<(StatusCode, Json<Invitation>)> {
    let invitation = state.service.invite(&actor, &room_id, &req.user_id).await?;
    Ok((StatusCode::CREATED, Json(invitation)))
}

/// List a room's pending invitations.
///
/// `GET /api/v1/rooms/{room_id}/invitations`:
/// → `200 {invitations: [Invitation]}`: the room's pending invitations, newest first —
/// all of them for owners and admins, those the caller sent for other members.
/// `403 not_member`; `404 not_found`.
#[utoipa::path(get, path = "/rooms/{room_id}/invitations", tag = "invitations",
    params(("room_id" = String, Path)),
    responses((status = 200, description = "pending invitations", body = InvitationList),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_room_invitations(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<InvitationList>> {
    let invitations = state.service.room_invitations(&actor, &room_id).await?;
    Ok(Json(InvitationList { invitations }))
}

/// Move the caller's read marker.
///
/// `POST /api/v1/rooms/{room_id}/read`:
/// `{seq}` → `200 {room_id, last_read_seq, unread_count}`; the marker only moves
/// forward; members get `receipt.updated` when it moves.
#[utoipa::path(post, path = "/rooms/{room_id}/read", tag = "messages",
    params(("room_id" = String, Path)), request_body = ReadRequest,
    responses((status = 200, description = "the read state", body = ReadState),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn read(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> AppResult<Json<ReadState>> {
    Ok(Json(
        state.service.mark_read(&actor, &room_id, req.seq).await?,
    ))
}
