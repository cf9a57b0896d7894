//! Completes the OpenAPI document with the responses that every route of a kind can give,
//! so a handler's `#[utoipa::path]` lists only what is particular to it.
//!
//! The conventions for a handler's annotation (checked by `tests/api/openapi.rs` and, in
//! CI, by `openapi-spec-validator` and schemathesis through `.ci/schemathesis.sh`):
//!
//! - The doc comment starts with a one-line summary in plain words (no Markdown), then a
//!   blank line, then the details (Markdown): utoipa makes the first paragraph the summary
//!   and the rest the description.
//! - The operation id is the handler's name, so handler names are unique across `http/`.
//! - `responses(...)` lists the success and the errors particular to the route (`403`,
//!   `404`, `409`, ...). [`complete`] adds the shared ones below, each only where the
//!   annotation does not already list that status.
//! - Request-body and query-parameter constraints (lengths, ranges, patterns) are in the
//!   schemas, matching what the server enforces by default, so generated requests that
//!   satisfy the schema are accepted.
//!
//! Added by [`complete`], all with an `ErrorBody`:
//!
//! | when | status |
//! | --- | --- |
//! | every `/api/v1` route (the per-IP request budget and per-user limits) | `429 rate_limited`, with `Retry-After` |
//! | every route with `security` | `401 unauthorized` |
//! | every route with a request body | `400 invalid_json` (JSON) or `bad_request` (multipart), `413 payload_too_large`, `422 validation_failed` |
//! | every route with a query parameter | `400 bad_request`, `422 validation_failed` |
//! | every route with a path parameter | `404 not_found` |

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{
    Content, KnownFormat, ObjectBuilder, OpenApi, Ref, RefOr, ResponseBuilder, SchemaFormat, Type,
};

/// Adds the shared responses (see the module docs) to every operation of `doc`.
pub fn complete(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let in_api = path.starts_with("/api/v1/");
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            complete_operation(op, in_api);
        }
    }
}

fn complete_operation(op: &mut Operation, in_api: bool) {
    let has_body = op.request_body.is_some();
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| {
        params.iter().any(|p| match p {
            RefOr::T(p) => p.parameter_in == place,
            RefOr::Ref(_) => false,
        })
    };
    let (has_query, has_path) = (has(ParameterIn::Query), has(ParameterIn::Path));
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());

    if has_body {
        add(
            op,
            "400",
            "invalid_json: the body is not JSON (bad_request: not multipart)",
        );
        add(op, "413", "payload_too_large: over the body limit");
        add(op, "422", "validation_failed, naming the field");
    }
    if has_query {
        add(op, "400", "bad_request: malformed query string");
        add(op, "422", "validation_failed, naming the parameter");
    }
    if secured {
        add(op, "401", "unauthorized: missing or invalid credentials");
    }
    if has_path {
        add(op, "404", "not_found");
    }
    if in_api {
        let retry_after = HeaderBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0)),
            ))
            .description(Some("seconds to wait before retrying"))
            .build();
        let response = op
            .responses
            .responses
            .entry("429".to_owned())
            .or_insert_with(|| {
                RefOr::T(
                    ResponseBuilder::new()
                        .description("rate_limited: see Retry-After")
                        .content("application/json", error_content())
                        .build(),
                )
            });
        if let RefOr::T(response) = response {
            response
                .headers
                .entry("Retry-After".to_owned())
                .or_insert(RefOr::T(retry_after));
        }
    }
}

/// Documents `status` with an `ErrorBody`, unless the annotation already lists it.
fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses
        .responses
        .entry(status.to_owned())
        .or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content("application/json", error_content())
                    .build(),
            )
        });
}

fn error_content() -> Content {
    Content::new(Some(Ref::from_schema_name("ErrorBody")))
}
