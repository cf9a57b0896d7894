//! `/api/v1/users/me/avatar` and `/api/v1/users/{user_id}/avatar`: profile pictures
//! (see `service/avatars.rs`).

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::{ErrorBody, User};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::attachments::{read_file_part, UploadForm, MULTIPART_OVERHEAD};
use crate::auth::Actor;
use crate::error::AppResult;
use crate::service::avatars::AVATAR_MAX_BYTES;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_avatar, delete_avatar))
        .layer(DefaultBodyLimit::max(AVATAR_MAX_BYTES + MULTIPART_OVERHEAD))
        .routes(routes!(avatar))
}

/// Upload a profile picture.
///
/// `PUT /api/v1/users/me/avatar`: `multipart/form-data` with one part named `file` (PNG,
/// JPEG, WebP or GIF, sniffed from the bytes, at most 1 MiB) → `200 User` whose
/// `avatar_url` is `/api/v1/users/{user_id}/avatar?v=<version>`. `413
/// payload_too_large`; `415 unsupported_media_type`; `422 validation_failed` (`file`).
#[utoipa::path(put, path = "/users/me/avatar", tag = "users",
    request_body(content = UploadForm, content_type = "multipart/form-data", description = "one part named `file`: a PNG, JPEG, WebP or GIF picture of at most 1 MiB"),
    responses((status = 200, description = "the profile, with its new avatar_url", body = User),
        (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn set_avatar(
    State(state): State<AppState>,
    actor: Actor,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> AppResult<Json<User>> {
    let (_, bytes) = read_file_part(multipart, AVATAR_MAX_BYTES).await?;
    Ok(Json(state.service.set_avatar(&actor, &bytes).await?))
}

/// Remove the profile picture.
///
/// `DELETE /api/v1/users/me/avatar` → `200 User` with `avatar_url: null`.
#[utoipa::path(delete, path = "/users/me/avatar", tag = "users",
    responses((status = 200, description = "the profile, without avatar_url", body = User),
        (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn delete_avatar(State(state): State<AppState>, actor: Actor) -> AppResult<Json<User>> {
    Ok(Json(state.service.delete_avatar(&actor).await?))
}

/// A user's profile picture.
///
/// `GET /api/v1/users/{user_id}/avatar` → `200` the picture (its sniffed type), for any
/// signed-in user; `404 not_found` when the user has no uploaded picture.
#[utoipa::path(get, path = "/users/{user_id}/avatar", tag = "users",
    params(("user_id" = String, Path), ("v" = Option<String>, Query, description = "the version in avatar_url (ignored: the current picture is served)")),
    responses((status = 200, description = "the picture (image/png, image/jpeg, image/webp or image/gif)"),
        (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn avatar(
    State(state): State<AppState>,
    _actor: Actor,
    Path(user_id): Path<String>,
) -> AppResult<Response> {
    let (content_type, bytes) = state.service.avatar(&user_id).await?;
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=86400"),
    );
    Ok(response)
}
