//! `/api/v1/rooms/{room_id}/messages`: history and send.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use palaver_protocol::rest::{MessagePage, SendMessageRequest};
use palaver_protocol::Message;

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/rooms/{room_id}/messages", get(history).post(send))
}

/// # `GET /api/v1/rooms/{room_id}/messages?before=<seq>&after=<seq>&limit=<1..100>`
/// → `200 {messages: [Message], has_more}` ascending by seq (default: the newest 50);
/// `422 validation_failed` naming a bad parameter; `403 not_member`; `404 not_found`.
async fn history(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    query: Params,
) -> AppResult<Json<MessagePage>> {
    let page = state
        .service
        .history(
            &actor,
            &room_id,
            query.int("before")?,
            query.int("after")?,
            query.int("limit")?,
        )
        .await?;
    Ok(Json(page))
}

/// # `POST /api/v1/rooms/{room_id}/messages`
/// `{content, client_id?}` → `201 Message` after commit, also delivered live as
/// `message.created`; a repeated `client_id` returns the original (still `201`).
/// `422 validation_failed`; `403 not_member`; `404 not_found`.
async fn send(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<SendMessageRequest>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let message = state
        .service
        .send_message(&actor, &room_id, &req.content, req.client_id.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(message)))
}
