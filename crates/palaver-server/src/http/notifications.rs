//! Notifications (`docs/notifications.md`): `/api/v1/rooms/{room_id}/notifications` (a
//! member's settings for a room) and `/api/v1/push/*` (the VAPID public key and the
//! caller's Web Push subscriptions; see [`crate::service::notifications`]).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use palaver_protocol::notifications::{
    CreatePushSubscription, NotificationSettings, PushSubscription, PushSubscriptions,
    UpdateNotificationSettings, VapidPublicKey,
};
use palaver_protocol::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::ApiJson;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_notification_settings,
            set_notification_settings
        ))
        .routes(routes!(vapid_public_key))
        .routes(routes!(create_push_subscription, list_push_subscriptions))
        .routes(routes!(delete_push_subscription))
}

/// Get the caller's notification settings for a room.
///
/// `GET /api/v1/rooms/{room_id}/notifications` → `200 {room_id, level: "all" | "mentions"
/// | "none", muted_until}` (`level` `all` and `muted_until` `null` until set). Members
/// only: `404 not_found` for anyone else, as for a room that does not exist.
#[utoipa::path(get, path = "/rooms/{room_id}/notifications", tag = "notifications",
    params(("room_id" = String, Path)),
    responses((status = 200, description = "the caller's settings for the room", body = NotificationSettings),
        (status = 404, description = "not_found: no such room, or not a member", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn get_notification_settings(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
) -> AppResult<Json<NotificationSettings>> {
    Ok(Json(
        state
            .service
            .notification_settings(&actor, &room_id)
            .await?,
    ))
}

/// Set the caller's notification settings for a room.
///
/// `PUT /api/v1/rooms/{room_id}/notifications`: `{level, muted_until?}` → `200` the
/// settings. `all`: direct messages and mentions are pushed; `mentions`: the same (plain
/// room messages are never pushed); `none`: nothing, not even direct messages.
/// `muted_until` (RFC 3339, or `null`): nothing is pushed for the room before then.
/// `422 validation_failed` (`level`, `muted_until`); `404 not_found` (no such room, or
/// not a member).
#[utoipa::path(put, path = "/rooms/{room_id}/notifications", tag = "notifications",
    params(("room_id" = String, Path)),
    request_body = UpdateNotificationSettings,
    responses((status = 200, description = "the settings now", body = NotificationSettings),
        (status = 404, description = "not_found: no such room, or not a member", body = ErrorBody),
        (status = 422, description = "validation_failed (level, muted_until)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn set_notification_settings(
    State(state): State<AppState>,
    actor: Actor,
    Path(room_id): Path<String>,
    ApiJson(req): ApiJson<UpdateNotificationSettings>,
) -> AppResult<Json<NotificationSettings>> {
    Ok(Json(
        state
            .service
            .set_notification_settings(&actor, &room_id, req)
            .await?,
    ))
}

/// Get the server's VAPID public key.
///
/// `GET /api/v1/push/vapid-public-key` → `200 {public_key}`: the uncompressed P-256 point,
/// base64url (RFC 8292), to pass (decoded to bytes) as `applicationServerKey` to
/// `PushManager.subscribe({userVisibleOnly: true, applicationServerKey})`.
/// `409 push_disabled`.
#[utoipa::path(get, path = "/push/vapid-public-key", tag = "notifications",
    responses((status = 200, description = "the VAPID public key", body = VapidPublicKey),
        (status = 409, description = "push_disabled", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn vapid_public_key(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<VapidPublicKey>> {
    Ok(Json(state.service.vapid_public_key(&actor)?))
}

/// Subscribe this browser to Web Push.
///
/// `POST /api/v1/push/subscriptions`: the browser's `PushSubscription.toJSON()`,
/// `{endpoint, expirationTime, keys: {p256dh, auth}}` → `201 {id, endpoint, user_agent,
/// created_at}` (`200` when this endpoint was the caller's already: idempotent per
/// endpoint). The browser then gets direct messages and mentions while none of the
/// caller's sockets is open, until it unsubscribes, the session that subscribed ends, or
/// its push service says the subscription is gone. `422 validation_failed` (`endpoint`:
/// an `https://` URL on a domain name; `keys.p256dh`: an uncompressed P-256 point;
/// `keys.auth`: 16 bytes); `409 push_disabled`.
#[utoipa::path(post, path = "/push/subscriptions", tag = "notifications",
    request_body = CreatePushSubscription,
    responses((status = 201, description = "subscribed", body = PushSubscription),
        (status = 200, description = "subscribed already (the keys are updated)", body = PushSubscription),
        (status = 409, description = "push_disabled", body = ErrorBody),
        (status = 422, description = "validation_failed (endpoint, keys.p256dh, keys.auth)", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn create_push_subscription(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreatePushSubscription>,
) -> AppResult<(StatusCode, Json<PushSubscription>)> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let (subscription, new) = state
        .service
        .create_push_subscription(&actor, req, user_agent)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(subscription)))
}

/// List the caller's push subscriptions.
///
/// `GET /api/v1/push/subscriptions` → `200 {subscriptions: [{id, endpoint, user_agent,
/// created_at}]}`, oldest first. `409 push_disabled`.
#[utoipa::path(get, path = "/push/subscriptions", tag = "notifications",
    responses((status = 200, description = "the caller's subscriptions", body = PushSubscriptions),
        (status = 409, description = "push_disabled", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn list_push_subscriptions(
    State(state): State<AppState>,
    actor: Actor,
) -> AppResult<Json<PushSubscriptions>> {
    Ok(Json(state.service.push_subscriptions(&actor).await?))
}

/// Delete one of the caller's push subscriptions.
///
/// `DELETE /api/v1/push/subscriptions/{subscription_id}` → `204`; `404 not_found` when
/// the caller has no subscription with that id. Call it when the browser unsubscribes.
#[utoipa::path(delete, path = "/push/subscriptions/{subscription_id}", tag = "notifications",
    params(("subscription_id" = String, Path)),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_push_subscription(
    State(state): State<AppState>,
    actor: Actor,
    Path(subscription_id): Path<String>,
) -> AppResult<StatusCode> {
    state
        .service
        .delete_push_subscription(&actor, &subscription_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
