//! `/api/v1/rooms/*`: create, list, directory, join.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use palaver_protocol::rest::{CreateRoomRequest, RoomList};
use palaver_protocol::Room;

use super::extract::ApiJson;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/rooms", get(list_mine).post(create))
        .route("/rooms/public", get(directory))
        .route("/rooms/{room_id}/join", post(join))
}

/// # `POST /api/v1/rooms`
/// `{name, visibility: "public" | "private", topic?}` → `201 Room`; the caller becomes
/// owner and first member. `422 validation_failed`.
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
async fn list_mine(State(state): State<AppState>, actor: Actor) -> AppResult<Json<RoomList>> {
    let rooms = state.service.my_rooms(&actor).await?;
    Ok(Json(RoomList { rooms }))
}

/// # `GET /api/v1/rooms/public`
/// → `200 {rooms: [Room]}`: the public directory, newest first.
async fn directory(State(state): State<AppState>, _actor: Actor) -> AppResult<Json<RoomList>> {
    let rooms = state.service.public_rooms().await?;
    Ok(Json(RoomList { rooms }))
}

/// # `POST /api/v1/rooms/{room_id}/join`
/// → `200 Room`; `403 forbidden` (private room); `404 not_found`.
async fn join(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<Room>> {
    Ok(Json(state.service.join_room(&actor, &room_id).await?))
}
