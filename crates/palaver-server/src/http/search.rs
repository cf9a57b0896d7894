//! `/api/v1/search/messages`: full-text search over the messages the caller may read.

use axum::extract::State;
use axum::Json;
use palaver_protocol::rest::{SearchResults, SearchSort};
use palaver_protocol::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::Params;
use crate::auth::Actor;
use crate::error::AppResult;
use crate::service::search::SearchParams;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_messages))
}

/// Search messages.
///
/// `GET /api/v1/search/messages?q=&room_id=&sender_id=&before=&after=&has_attachment=&sort=&limit=&cursor=`
/// → `200 {results: [{message, room_name, snippet, rank}], next_cursor}`. Only rooms the
/// caller is a member of now are searched; deleted messages are never found. A bare word
/// matches words it begins, a `"quoted phrase"` those words in order; all terms must
/// match; case and accents are ignored. `422 validation_failed` naming a bad parameter;
/// with `room_id`, `404 not_found` or `403 not_member`.
#[utoipa::path(
    get,
    path = "/search/messages",
    tag = "search",
    params(
        ("q" = String, Query, min_length = 1, max_length = 256, description = "words (each matches words it begins) and \"quoted phrases\"; all must match"),
        ("room_id" = Option<String>, Query, description = "only this room (the caller must be a member)"),
        ("sender_id" = Option<String>, Query, description = "only this user's messages"),
        ("before" = Option<String>, Query, format = DateTime, description = "RFC 3339: only messages created before it"),
        ("after" = Option<String>, Query, format = DateTime, description = "RFC 3339: only messages created after it"),
        ("has_attachment" = Option<bool>, Query, description = "only messages with (true) or without (false) an attachment"),
        ("sort" = Option<SearchSort>, Query, description = "relevance (default: best match first) or newest"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 50, description = "1..=50, default 20"),
        ("cursor" = Option<String>, Query, pattern = "^[1-9][0-9]{0,2}$", description = "the previous page's next_cursor"),
    ),
    responses((status = 200, description = "one page of results", body = SearchResults), (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody), (status = 403, description = "not_member (room_id)", body = ErrorBody), (status = 404, description = "not_found (room_id)", body = ErrorBody), (status = 422, description = "validation_failed, naming the parameter", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = []))
)]
async fn search_messages(
    State(state): State<AppState>,
    actor: Actor,
    query: Params,
) -> AppResult<Json<SearchResults>> {
    let results = state
        .service
        .search_messages(
            &actor,
            SearchParams {
                q: query.get("q"),
                room_id: query.get("room_id"),
                sender_id: query.get("sender_id"),
                before: query.get("before"),
                after: query.get("after"),
                has_attachment: query.get("has_attachment"),
                sort: query.get("sort"),
                limit: query.int("limit")?,
                cursor: query.get("cursor"),
            },
        )
        .await?;
    Ok(Json(results))
}
