//! `/api/v1/rooms/*`: create, list, directory, join.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palaver_protocol::rest::{CreateRoomRequest, RoomList};
use palaver_protocol::ErrorBody;
use palaver_protocol::Room;

use super::extract::ApiJson;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_mine, create))
        .routes(routes!(directory))
        .routes(routes!(join))
}

/// # `POST /api/v1/rooms`
/// `{name, visibility: "public" | "private", topic?}` → `201 Room`; the caller becomes
/// owner and first member. `422 validation_failed`.
#[utoipa::path(
    post,
    path = "/rooms",
    tag = "rooms",
    request_body = CreateRoomRequest,
    responses((status = 201, description = "created; the caller is owner", body = Room), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    ApiJson(req): ApiJson<CreateRoomRequest>,
) -> AppResult<(StatusCode, Json<Room>)> {
    let room = state.service.create_room(&actor, req).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// # `GET /api/v1/rooms`
/// → `200 {rooms: [Room]}`: the rooms the caller is a member of.
#[utoipa::path(
    get,
    path = "/rooms",
    tag = "rooms",
    responses((status = 200, description = "the caller's rooms", body = RoomList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn list_mine(State(state): State<AppState>, actor: Actor) -> AppResult<Json<RoomList>> {
    let rooms = state.service.my_rooms(&actor).await?;
    Ok(Json(RoomList { rooms }))
}

/// # `GET /api/v1/rooms/public`
/// → `200 {rooms: [Room]}`: the public directory, newest first.
#[utoipa::path(
    get,
    path = "/rooms/public",
    tag = "rooms",
    responses((status = 200, description = "the public directory", body = RoomList), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn directory(State(state): State<AppState>, _actor: Actor) -> AppResult<Json<RoomList>> {
    let rooms = state.service.public_rooms().await?;
    Ok(Json(RoomList { rooms }))
}

/// # `POST /api/v1/rooms/{room_id}/join`
/// → `200 Room`; `403 forbidden` (private room); `404 not_found`.
#[utoipa::path(
    post,
    path = "/rooms/{room_id}/join",
    tag = "rooms",
    params(("room_id" = String, Path)),
    responses((status = 200, description = "joined", body = Room), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "forbidden: private room", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn join(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<Room>> {
    Ok(Json(state.service.join_room(&actor, &room_id).await?))
}
