//! `/api/v1/attachments`: upload (multipart) and download.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::{Attachment, ErrorBody, ErrorCode};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::AppState;

/// Room for the multipart framing around the file, in bytes.
pub(super) const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// The routes; uploads may be up to `max_bytes` (plus multipart framing).
pub fn router(max_bytes: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(
            max_bytes.saturating_add(MULTIPART_OVERHEAD),
        ))
        .routes(routes!(download))
}

/// The upload form, for the OpenAPI document: one part named `file`.
#[derive(utoipa::ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub(super) struct UploadForm {
    /// The file, at most `attachments.max_bytes`, of a type in `attachments.allowed_types`
    /// (sniffed from the bytes; others are `415 unsupported_media_type`).
    #[schema(value_type = String, format = Binary, min_length = 1)]
    file: Vec<u8>,
}

fn too_large() -> AppError {
    AppError::new(ErrorCode::PayloadTooLarge, "the file is too large")
}

/// Reads a `multipart/form-data` body of exactly one part named `file`, of at most `max`
/// bytes: its file name (if given) and bytes.
///
/// # Errors
/// `400 bad_request` (not multipart, or malformed); `413 payload_too_large` over `max`;
/// `422 validation_failed` naming an unexpected part, or `file` when there is none.
pub(super) async fn read_file_part(
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
    max: usize,
) -> AppResult<(Option<String>, Vec<u8>)> {
    let mut multipart = multipart
        .map_err(|_| AppError::new(ErrorCode::BadRequest, "expected a multipart/form-data body"))?;
    let malformed = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            AppError::new(ErrorCode::BadRequest, "malformed multipart body")
        }
    };
    // The whole form is read: a part other than the one `file` is refused, wherever it is.
    let mut file: Option<(Option<String>, Vec<u8>)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        if field.name() != Some("file") || file.is_some() {
            let name = field.name().unwrap_or_default().to_owned();
            return Err(AppError::validation(
                name,
                "unexpected part: the form has one part, named `file`",
            ));
        }
        let filename = field.file_name().map(str::to_owned);
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(malformed)? {
            if bytes.len() + chunk.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some((filename, bytes));
    }
    file.ok_or_else(|| AppError::validation("file", "a part named `file` is required"))
}

/// Upload an attachment.
///
/// `POST /api/v1/attachments`:
/// `multipart/form-data` with one part named `file` → `201 Attachment`. The type is
/// sniffed from the bytes. `413 payload_too_large` over `attachments.max_bytes` (nothing
/// stored); `415 unsupported_media_type`; `422 validation_failed` (`file` missing or
/// empty, or a part with another name).
#[utoipa::path(post, path = "/attachments", tag = "messages",
    request_body(content = UploadForm, content_type = "multipart/form-data", description = "one part named `file`"),
    responses((status = 201, description = "stored", body = Attachment),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 415, description = "unsupported_media_type", body = ErrorBody),
        (status = 422, description = "validation_failed", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> AppResult<(StatusCode, Json<Attachment>)> {
    let max = state.service.attachment_limit();
    let (filename, bytes) = read_file_part(multipart, max).await?;
    let attachment = state
        .service
        .upload(&actor, filename.as_deref(), &bytes)
        .await?;
    Ok((StatusCode::CREATED, Json(attachment)))
}

/// Download an attachment.
///
/// `GET /api/v1/attachments/{attachment_id}`:
/// → `200` the bytes, with the sniffed `Content-Type`, for the uploader and members of a
/// room where it was posted; `404 not_found` for anyone else.
#[utoipa::path(get, path = "/attachments/{attachment_id}", tag = "messages",
    params(("attachment_id" = String, Path)),
    responses((status = 200, description = "the file"),
        (status = 404, description = "not_found", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
async fn download(
    State(state): State<AppState>,
    actor: Actor,
    Path(attachment_id): Path<String>,
) -> AppResult<Response> {
    let (row, bytes) = state.service.download(&actor, &attachment_id).await?;
    let disposition = if row.content_type.starts_with("image/") {
        "inline"
    } else {
        "attachment"
    };
    let ascii_name: String = row
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    let content_type = HeaderValue::from_str(&row.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"{ascii_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    Ok(response)
}
