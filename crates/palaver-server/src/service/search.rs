//! Message search: `GET /api/v1/search/messages` (see [`crate::search`] for how words are
//! folded and matched, and [`crate::store::SearchStore`] for the indexes).
//!
//! Who sees what: a search looks only at rooms the caller is a member of *now*, the rule
//! history reading follows (a member reads the room's whole history, including what was
//! written before they joined; leaving, a kick or a ban takes it all away). Deleted
//! messages are never found; an edited one is found by its current text only.

use palaver_protocol::rest::{SearchResult, SearchResults};

use super::{parse_rfc3339, Service};
use crate::auth::Actor;
use crate::error::{AppError, AppResult};
use crate::search::SearchQuery;
use crate::store::SearchFilter;

/// Results per page when none is asked for.
pub const DEFAULT_RESULTS: i64 = 20;
/// Most results per page.
pub const MAX_RESULTS: i64 = 50;
/// How deep paging goes: results beyond the first 1,000 are not served (narrow the query
/// or the filters instead).
pub const MAX_OFFSET: i64 = 1000;

/// A search as a client asks for it (the query parameters, unparsed).
#[derive(Debug, Clone, Default)]
pub struct SearchParams<'a> {
    /// What to look for (see [`SearchQuery::parse`]).
    pub q: Option<&'a str>,
    pub room_id: Option<&'a str>,
    pub sender_id: Option<&'a str>,
    /// RFC 3339: only messages created before it.
    pub before: Option<&'a str>,
    /// RFC 3339: only messages created after it.
    pub after: Option<&'a str>,
    /// `true` or `false`.
    pub has_attachment: Option<&'a str>,
    /// `relevance` (default) or `newest`.
    pub sort: Option<&'a str>,
    pub limit: Option<i64>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<&'a str>,
}

impl Service {
    /// Searches the messages the caller may read (see the module's rule).
    ///
    /// # Errors
    /// `422 validation_failed` naming the parameter (`q` missing, empty, over 256
    /// characters or over 16 terms; a time that is not RFC 3339; `has_attachment` not a
    /// boolean; `sort` unknown; `limit` outside 1..=50; a `cursor` not from this route);
    /// with `room_id`: `404 not_found` (no such room) or `403 not_member`.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn search_messages(
        &self,
        actor: &Actor,
        params: SearchParams<'_>,
    ) -> AppResult<SearchResults> {
        let raw = params
            .q
            .ok_or_else(|| AppError::validation("q", "q is required"))?;
        let query = SearchQuery::parse(raw).map_err(|e| AppError::validation("q", e.message()))?;
        let time = |name: &str, value: Option<&str>| -> AppResult<Option<String>> {
            value
                .map(|v| {
                    parse_rfc3339(v).ok_or_else(|| {
                        AppError::validation(name, format!("{name} must be an RFC 3339 time"))
                    })
                })
                .transpose()
        };
        let before = time("before", params.before)?;
        let after = time("after", params.after)?;
        let has_attachment = match params.has_attachment {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => {
                return Err(AppError::validation(
                    "has_attachment",
                    "has_attachment must be true or false",
                ))
            }
        };
        let newest_first = match params.sort {
            None | Some("relevance") => false,
            Some("newest") => true,
            Some(_) => {
                return Err(AppError::validation(
                    "sort",
                    "sort must be relevance or newest",
                ))
            }
        };
        let limit = params.limit.unwrap_or(DEFAULT_RESULTS);
        if !(1..=MAX_RESULTS).contains(&limit) {
            return Err(AppError::validation(
                "limit",
                format!("limit must be between 1 and {MAX_RESULTS}"),
            ));
        }
        let offset = match params.cursor {
            None => 0,
            Some(c) => c
                .parse::<i64>()
                .ok()
                .filter(|o| (1..MAX_OFFSET).contains(o) && c.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| {
                    AppError::validation("cursor", "cursor must be a next_cursor of this route")
                })?,
        };
        if let Some(room_id) = params.room_id {
            self.require_member(actor, room_id).await?;
        }
        let filter = SearchFilter {
            room_id: params.room_id.map(str::to_owned),
            sender_id: params.sender_id.map(str::to_owned),
            before,
            after,
            has_attachment,
            newest_first,
        };
        let limit = limit.min(MAX_OFFSET - offset);
        let (hits, more) = self
            .store
            .search
            .search_messages(&actor.user_id, &query, &filter, offset, limit)
            .await?;
        let next_offset = offset + hits.len() as i64;
        let next_cursor = (more && next_offset < MAX_OFFSET).then(|| next_offset.to_string());
        let mut rest = Vec::with_capacity(hits.len());
        let mut rows = Vec::with_capacity(hits.len());
        for hit in hits {
            rest.push((hit.room_name, hit.rank));
            rows.push(hit.message);
        }
        let snippets: Vec<_> = rows
            .iter()
            .map(|m| crate::search::snippet(&m.content, &query))
            .collect();
        let messages = self.messages_to_wire(rows).await?;
        let results = messages
            .into_iter()
            .zip(rest)
            .zip(snippets)
            .map(|((message, (room_name, rank)), snippet)| SearchResult {
                message,
                room_name,
                snippet,
                rank,
            })
            .collect();
        Ok(SearchResults {
            results,
            next_cursor,
        })
    }
}
