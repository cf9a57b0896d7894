//! `/api/v1/rooms/{room_id}/messages`: history and send.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use palaver_protocol::rest::{EditList, EditMessageRequest, MessagePage, SendMessageRequest};
use palaver_protocol::ErrorBody;
use palaver_protocol::Message;

use super::extract::{ApiJson, Params};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::service::messages::SendOptions;
use crate::AppState;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The `{emoji}` path parameter in the OpenAPI document: one emoji of Unicode's emoji list
/// (`emojis` crate), any skin tone, as `service::validate::parse_emoji` accepts.
pub struct Emoji;

impl utoipa::PartialSchema for Emoji {
    fn schema() -> RefOr<Schema> {
        let mut all = Vec::new();
        for emoji in emojis::iter() {
            all.push(emoji.as_str());
            for toned in emoji.skin_tones().into_iter().flatten() {
                if toned.as_str() != emoji.as_str() {
                    all.push(toned.as_str());
                }
            }
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("one emoji (Unicode emoji list, any skin tone)"))
            .enum_values(Some(all))
            .into()
    }
}

impl utoipa::ToSchema for Emoji {}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, send))
        .routes(routes!(edit, delete_message))
        .routes(routes!(edits))
        .routes(routes!(react, unreact))
}

/// Read a room's history.
///
/// `GET /api/v1/rooms/{room_id}/messages?before=<seq>&after=<seq>&limit=<1..100>`:
/// → `200 {messages: [Message], has_more}` ascending by seq (default: the newest 50);
/// `422 validation_failed` naming a bad parameter; `403 not_member`; `404 not_found`.
#[utoipa::path(
    get,
    path = "/rooms/{room_id}/messages",
    tag = "messages",
    params(("room_id" = String, Path), ("before" = Option<i64>, Query, minimum = 0, description = "only seq < before"), ("after" = Option<i64>, Query, minimum = 0, description = "only seq > after"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1..=100, default 50")),
    responses((status = 200, description = "a page of history, ascending by seq", body = MessagePage), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "not_member", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
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

/// Send a message.
///
/// `POST /api/v1/rooms/{room_id}/messages`:
/// `{content, client_id?}` → `201 Message` after commit, also delivered live as
/// `message.created`; a repeated `client_id` returns the original (still `201`).
/// `422 validation_failed`; `403 not_member`; `404 not_found`.
#[utoipa::path(
    post,
    path = "/rooms/{room_id}/messages",
    tag = "messages",
    request_body = SendMessageRequest,
    params(("room_id" = String, Path)),
    responses((status = 201, description = "stored (durable) and delivered live", body = Message), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "not_member", body = ErrorBody), (status = 404, description = "not_found", body = ErrorBody), (status = 422, description = "validation_failed, naming the field", body = ErrorBody), (status = 429, description = "rate_limited (user_limits.messages); Retry-After", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn send(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<SendMessageRequest>,
) -> AppResult<(StatusCode, Json<Message>)> {
    let message = state
        .service
        .send_message(
            &actor,
            &room_id,
            &req.content,
            SendOptions {
                client_id: req.client_id.as_deref(),
                reply_to: req.reply_to.as_deref(),
                attachment_id: req.attachment_id.as_deref(),
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(message)))
}

/// Edit a message.
///
/// `PATCH /api/v1/rooms/{room_id}/messages/{message_id}`:
/// `{content}` (the author) → `200 Message`; the earlier text is kept; members get
/// `message.updated`. `403 forbidden` (not the author); `404 not_found` (also a message
/// of another room); `409 conflict` (deleted).
#[utoipa::path(patch, path = "/rooms/{room_id}/messages/{message_id}", tag = "messages",
    params(("room_id" = String, Path), ("message_id" = String, Path)),
    request_body = EditMessageRequest,
    responses((status = 200, description = "edited", body = Message),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "conflict: deleted", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 429, description = "rate_limited (user_limits.messages); Retry-After", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn edit(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, message_id)): Path<(String, String)>,
    ApiJson(req): ApiJson<EditMessageRequest>,
) -> AppResult<Json<Message>> {
    let message = state
        .service
        .edit_message(&actor, &room_id, &message_id, &req.content)
        .await?;
    Ok(Json(message))
}

/// Delete a message.
///
/// `DELETE /api/v1/rooms/{room_id}/messages/{message_id}`:
/// (the author, or a room owner or admin) → `200 Message`: the tombstone; members get
/// `message.deleted`.
#[utoipa::path(delete, path = "/rooms/{room_id}/messages/{message_id}", tag = "messages",
    params(("room_id" = String, Path), ("message_id" = String, Path)),
    responses((status = 200, description = "the tombstone", body = Message),
        (status = 403, description = "forbidden or not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_message(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, message_id)): Path<(String, String)>,
) -> AppResult<Json<Message>> {
    let tombstone = state
        .service
        .delete_message(&actor, &room_id, &message_id)
        .await?;
    Ok(Json(tombstone))
}

/// List a message's earlier versions.
///
/// `GET /api/v1/rooms/{room_id}/messages/{message_id}/edits`:
/// → `200 {edits: [MessageEdit]}`: earlier versions, oldest first.
#[utoipa::path(get, path = "/rooms/{room_id}/messages/{message_id}/edits", tag = "messages",
    params(("room_id" = String, Path), ("message_id" = String, Path)),
    responses((status = 200, description = "earlier versions", body = EditList),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn edits(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, message_id)): Path<(String, String)>,
) -> AppResult<Json<EditList>> {
    let edits = state
        .service
        .message_edits(&actor, &room_id, &message_id)
        .await?;
    Ok(Json(EditList { edits }))
}

/// Add a reaction.
///
/// `PUT /api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}`:
/// → `200 Message` with its reactions; members get `reaction.added` (once per user and
/// emoji). `422 validation_failed` (`emoji`: one emoji, URL-encoded).
#[utoipa::path(put, path = "/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
    tag = "messages",
    params(("room_id" = String, Path), ("message_id" = String, Path), ("emoji" = Emoji, Path, description = "one emoji, URL-encoded")),
    responses((status = 200, description = "the message", body = Message),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "conflict: the message is deleted", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 429, description = "rate_limited (user_limits.messages); Retry-After", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn react(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, message_id, emoji)): Path<(String, String, String)>,
) -> AppResult<Json<Message>> {
    let message = state
        .service
        .react(&actor, &room_id, &message_id, &emoji, true)
        .await?;
    Ok(Json(message))
}

/// Remove a reaction.
///
/// `DELETE /api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}`:
/// → `200 Message`; members get `reaction.removed` if the caller had reacted.
#[utoipa::path(delete, path = "/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
    tag = "messages",
    params(("room_id" = String, Path), ("message_id" = String, Path), ("emoji" = Emoji, Path, description = "one emoji, URL-encoded")),
    responses((status = 200, description = "the message", body = Message),
        (status = 403, description = "not_member", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 409, description = "conflict: the message is deleted", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody),
        (status = 429, description = "rate_limited (user_limits.messages); Retry-After", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn unreact(
    State(state): State<AppState>,
    actor: Actor,
    Path((room_id, message_id, emoji)): Path<(String, String, String)>,
) -> AppResult<Json<Message>> {
    let message = state
        .service
        .react(&actor, &room_id, &message_id, &emoji, false)
        .await?;
    Ok(Json(message))
}
