//! The OpenAPI document and the API reference page, served by the binary itself.

use serde_json::Value;

use crate::helpers::TestServer;

/// Every route the server serves, as `(method, path)` in the document's path syntax.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/providers"),
    ("get", "/api/v1/auth/oidc/{provider}/start"),
    ("post", "/api/v1/auth/oidc/{provider}/link-start"),
    ("get", "/api/v1/auth/oidc/{provider}/callback"),
    ("post", "/api/v1/auth/link/confirm"),
    ("get", "/api/v1/users/me/identities"),
    ("delete", "/api/v1/users/me/identities/{identity_id}"),
    ("post", "/api/v1/auth/verify-email"),
    ("post", "/api/v1/auth/resend-verification"),
    ("post", "/api/v1/auth/password-reset"),
    ("post", "/api/v1/auth/password-reset/confirm"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/me"),
    ("patch", "/api/v1/users/me"),
    ("delete", "/api/v1/users/me"),
    ("put", "/api/v1/users/me/password"),
    ("put", "/api/v1/users/me/email"),
    ("get", "/api/v1/users/me/sessions"),
    ("delete", "/api/v1/users/me/sessions/{session_id}"),
    ("get", "/api/v1/users/me/api-keys"),
    ("post", "/api/v1/users/me/api-keys"),
    ("delete", "/api/v1/users/me/api-keys/{key_id}"),
    ("get", "/api/v1/users/me/blocks"),
    ("put", "/api/v1/users/me/blocks/{user_id}"),
    ("delete", "/api/v1/users/me/blocks/{user_id}"),
    ("get", "/api/v1/rooms/{room_id}/notifications"),
    ("put", "/api/v1/rooms/{room_id}/notifications"),
    ("get", "/api/v1/push/vapid-public-key"),
    ("post", "/api/v1/push/subscriptions"),
    ("get", "/api/v1/push/subscriptions"),
    ("delete", "/api/v1/push/subscriptions/{subscription_id}"),
    ("get", "/api/v1/users/me/two-factor"),
    ("post", "/api/v1/users/me/two-factor"),
    ("post", "/api/v1/users/me/two-factor/confirm"),
    ("post", "/api/v1/users/me/two-factor/disable"),
    ("get", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/users/{user_id}/presence"),
    ("put", "/api/v1/users/me/avatar"),
    ("delete", "/api/v1/users/me/avatar"),
    ("get", "/api/v1/users/{user_id}/avatar"),
    ("get", "/api/v1/admin/users"),
    ("put", "/api/v1/admin/users/{user_id}/role"),
    ("post", "/api/v1/admin/users/{user_id}/disable"),
    ("post", "/api/v1/admin/users/{user_id}/enable"),
    ("get", "/api/v1/rooms"),
    ("post", "/api/v1/rooms"),
    ("get", "/api/v1/rooms/public"),
    ("post", "/api/v1/rooms/{room_id}/join"),
    ("get", "/api/v1/rooms/{room_id}/messages"),
    ("post", "/api/v1/rooms/{room_id}/messages"),
    ("get", "/api/v1/rooms/{room_id}"),
    ("patch", "/api/v1/rooms/{room_id}"),
    ("delete", "/api/v1/rooms/{room_id}"),
    ("post", "/api/v1/rooms/{room_id}/leave"),
    ("get", "/api/v1/rooms/{room_id}/members"),
    ("delete", "/api/v1/rooms/{room_id}/members/{user_id}"),
    ("put", "/api/v1/rooms/{room_id}/members/{user_id}/role"),
    ("put", "/api/v1/rooms/{room_id}/bans/{user_id}"),
    ("delete", "/api/v1/rooms/{room_id}/bans/{user_id}"),
    ("post", "/api/v1/rooms/{room_id}/transfer-ownership"),
    ("post", "/api/v1/rooms/{room_id}/invitations"),
    ("get", "/api/v1/rooms/{room_id}/invitations"),
    (
        "delete",
        "/api/v1/rooms/{room_id}/invitations/{invitation_id}",
    ),
    ("post", "/api/v1/rooms/{room_id}/read"),
    ("patch", "/api/v1/rooms/{room_id}/messages/{message_id}"),
    ("delete", "/api/v1/rooms/{room_id}/messages/{message_id}"),
    ("get", "/api/v1/rooms/{room_id}/messages/{message_id}/edits"),
    (
        "put",
        "/api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
    ),
    (
        "delete",
        "/api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}",
    ),
    (
        "post",
        "/api/v1/rooms/{room_id}/messages/{message_id}/report",
    ),
    ("get", "/api/v1/moderation/reports"),
    ("post", "/api/v1/moderation/reports/{report_id}/resolve"),
    ("get", "/api/v1/invitations"),
    ("post", "/api/v1/invitations/{invitation_id}/accept"),
    ("post", "/api/v1/invitations/{invitation_id}/decline"),
    ("post", "/api/v1/dms"),
    ("post", "/api/v1/attachments"),
    ("get", "/api/v1/attachments/{attachment_id}"),
    ("get", "/api/v1/search/messages"),
    ("get", "/api/v1/rtc/ice-servers"),
    ("get", "/api/v1/server"),
    ("get", "/api/v1/ws"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

async fn document(server: &TestServer) -> Value {
    let (status, doc) = server
        .client()
        .raw("GET", "/api/v1/openapi.json", None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    doc
}

#[tokio::test]
async fn openapi_document_is_3_1_and_covers_every_route() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"))[*method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"].is_object(),
            "{method} {path} has no responses"
        );
    }
    let documented: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists routes this test does not know"
    );
}

#[tokio::test]
async fn documented_routes_exist_and_authenticated_ones_declare_security() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let client = server.client();
    for (method, path) in ROUTES {
        let op = &doc["paths"][*path][*method];
        let concrete = path
            .replace("{user_id}", "00000000-0000-7000-8000-000000000000")
            .replace("{room_id}", "00000000-0000-7000-8000-000000000000")
            .replace("{message_id}", "00000000-0000-7000-8000-000000000000")
            .replace("{invitation_id}", "x")
            .replace("{report_id}", "x")
            .replace("{attachment_id}", "x")
            .replace("{emoji}", "%F0%9F%91%8D")
            .replace("{session_id}", "x")
            .replace("{key_id}", "x")
            .replace("{provider}", "x")
            .replace("{identity_id}", "x")
            .replace("{subscription_id}", "x");
        let (status, _) = client
            .raw(&method.to_uppercase(), &concrete, Some(b"{}".to_vec()))
            .await
            .unwrap();
        assert_ne!(status, 404, "{method} {path} is documented but not routed");
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        let public = matches!(
            *path,
            "/api/v1/auth/register"
                | "/api/v1/auth/login"
                | "/api/v1/auth/refresh"
                | "/api/v1/auth/providers"
                | "/api/v1/auth/oidc/{provider}/start"
                | "/api/v1/auth/oidc/{provider}/callback"
                | "/api/v1/auth/verify-email"
                | "/api/v1/auth/resend-verification"
                | "/api/v1/auth/password-reset"
                | "/api/v1/auth/password-reset/confirm"
                | "/api/v1/auth/link/confirm"
                | "/api/v1/server"
                | "/healthz"
                | "/readyz"
                | "/metrics"
        );
        if !public {
            assert_eq!(status, 401, "{method} {path} answers an anonymous caller");
            assert!(
                op["security"].is_array(),
                "{method} {path} declares no security"
            );
        }
    }
}

#[tokio::test]
async fn error_body_and_wire_types_are_in_the_schemas() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "ErrorCode",
        "AuthResponse",
        "Message",
        "Room",
        "User",
        "CreatedApiKey",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let codes = schemas["ErrorCode"]["enum"].as_array().unwrap();
    assert!(codes.iter().any(|c| c == "rate_limited"));
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
}

#[tokio::test]
async fn api_reference_page_and_its_assets_are_served_locally() {
    let server = TestServer::spawn().await;
    let http = reqwest::Client::new();
    let page = http
        .get(format!("{}/api/docs/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "page loads remote assets"
    );
    assert!(
        html.contains("swagger-ui-bundle.js"),
        "the page loads the bundled script"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let resp = http
            .get(format!("{}/api/docs/{asset}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{asset}");
        let body = resp.text().await.unwrap();
        assert!(body.len() > 100, "{asset} is empty");
        if asset == "swagger-initializer.js" {
            assert!(
                body.contains("/api/v1/openapi.json"),
                "the page loads our document"
            );
        }
    }
}

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "patch", "options", "head", "trace",
];

/// Every operation of the document as `(method, path, operation)`.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(*method) {
                out.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// The parameters of `op` that are `in` `place`.
fn params_in<'a>(op: &'a Value, place: &str) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["in"] == place).collect())
        .unwrap_or_default()
}

fn has_json_body(op: &Value) -> bool {
    op["requestBody"]["content"]["application/json"].is_object()
}

fn secured(op: &Value) -> bool {
    op["security"].as_array().is_some_and(|s| !s.is_empty())
}

#[tokio::test]
async fn operation_ids_are_unique_and_summaries_are_plain_text() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let mut seen = std::collections::BTreeMap::<String, String>::new();
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        let here = format!("{method} {path}");
        match op["operationId"].as_str() {
            None => problems.push(format!("{here}: no operationId")),
            Some(id) => {
                if let Some(first) = seen.insert(id.to_owned(), here.clone()) {
                    problems.push(format!("{here}: operationId `{id}` is also {first}"));
                }
            }
        }
        // Swagger UI shows the summary as plain text next to the path: one short line in
        // words, no Markdown (the handler's doc comment starts with it, then a blank line).
        let summary = op["summary"].as_str().unwrap_or_default();
        if summary.is_empty()
            || summary.len() > 80
            || summary.contains(['\n', '#', '`', '*', '[', '_'])
            || summary.trim() != summary
        {
            problems.push(format!("{here}: summary {summary:?} is not one plain line"));
        }
        if op["description"].as_str().is_none_or(str::is_empty) {
            problems.push(format!("{here}: no description"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Resolves a local `$ref` (`#/a/b`) in `doc`.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The structural rules of OpenAPI 3.1 that a generator can get wrong (CI also runs
/// `openapi-spec-validator` on the served document, see `.ci/schemathesis.sh`).
#[tokio::test]
async fn the_document_is_structurally_valid() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let mut problems = Vec::new();

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        if resolve(&doc, &r).is_none() {
            problems.push(format!("$ref {r} does not resolve"));
        }
    }
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for (method, path, op) in operations(&doc) {
        let here = format!("{method} {path}");
        // Every `{name}` of the template is a required path parameter, and only those.
        let template: Vec<&str> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared = params_in(&op, "path");
        for name in &template {
            match declared.iter().find(|p| p["name"] == *name) {
                None => problems.push(format!("{here}: path parameter {name} not declared")),
                Some(p) if p["required"] != true => {
                    problems.push(format!("{here}: path parameter {name} not required"))
                }
                Some(_) => {}
            }
        }
        for p in &declared {
            let name = p["name"].as_str().unwrap_or_default();
            if !template.contains(&name) {
                problems.push(format!("{here}: path parameter {name} is not in the path"));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            if !names.insert((p["name"].to_string(), p["in"].to_string())) {
                problems.push(format!("{here}: parameter {} declared twice", p["name"]));
            }
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            let valid = status == "default"
                || status
                    .parse::<u16>()
                    .is_ok_and(|s| (100..=599).contains(&s));
            if !valid {
                problems.push(format!("{here}: response key {status}"));
            }
            if response["description"].as_str().is_none() {
                problems.push(format!("{here}: response {status} has no description"));
            }
            // An API error is always the one error shape.
            let is_error = status.starts_with('4') || status.starts_with('5');
            if is_error && path.starts_with("/api/") {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                if schema != "#/components/schemas/ErrorBody" {
                    problems.push(format!("{here}: {status} is not an ErrorBody"));
                }
            }
        }
        for tag in op["tags"].as_array().into_iter().flatten() {
            if !tags.contains(&tag.as_str().unwrap_or_default()) {
                problems.push(format!("{here}: tag {tag} is not declared"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The errors every route of a kind can give are documented on each (added by
/// `http/apidoc.rs`, so a new route gets them by construction).
#[tokio::test]
async fn every_operation_documents_the_shared_errors() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let mut problems = Vec::new();
    for (method, path, op) in operations(&doc) {
        let here = format!("{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        let mut expect = |status: &str, why: &str| {
            if !responses.contains_key(status) {
                problems.push(format!("{here}: {status} ({why}) is not documented"));
            }
        };
        if path.starts_with("/api/v1/") {
            expect("429", "rate limits");
        }
        if secured(&op) {
            expect("401", "authenticated route");
        }
        if has_json_body(&op) {
            expect("400", "invalid_json");
            expect("413", "payload_too_large");
            expect("422", "validation_failed");
        }
        if !params_in(&op, "query").is_empty() {
            expect("400", "malformed query");
            expect("422", "bad parameter");
        }
        if !params_in(&op, "path").is_empty() {
            expect("404", "no such resource");
        }
        if path.starts_with("/api/v1/")
            && responses
                .get("429")
                .is_some_and(|r| r["headers"]["Retry-After"].is_null())
        {
            problems.push(format!("{here}: 429 without Retry-After"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every route with a JSON body answers a body that is not JSON with `400 invalid_json`,
/// and documents it.
#[tokio::test]
async fn malformed_json_answers_400_invalid_json_as_documented() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let user = server.user("badjson").await;
    let mut checked = 0;
    for (method, path, op) in operations(&doc) {
        if !has_json_body(&op) {
            continue;
        }
        let concrete = path
            .replace("{user_id}", "00000000-0000-7000-8000-000000000000")
            .replace("{room_id}", "00000000-0000-7000-8000-000000000000")
            .replace("{message_id}", "00000000-0000-7000-8000-000000000000");
        let (status, body) = user
            .raw(
                &method.to_uppercase(),
                &concrete,
                Some(b"{\"x\": ".to_vec()),
            )
            .await
            .unwrap();
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_json")),
            "{method} {path}: {body}"
        );
        assert!(
            op["responses"]["400"].is_object(),
            "{method} {path} answers 400 but does not document it"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} routes with a JSON body");
}

/// Past 50 live keys, creating one is `409 conflict`, as documented.
#[tokio::test]
async fn the_api_key_cap_answers_409_as_documented() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let op = &doc["paths"]["/api/v1/users/me/api-keys"]["post"];
    assert!(op["responses"]["409"].is_object(), "409 is not documented");
    let user = server.user("keycap").await;
    for i in 0..50 {
        let body = serde_json::to_vec(&serde_json::json!({"name": format!("k{i}")})).unwrap();
        let (status, resp) = user
            .raw("POST", "/api/v1/users/me/api-keys", Some(body))
            .await
            .unwrap();
        assert_eq!(status, 201, "key {i}: {resp}");
    }
    let (status, resp) = user
        .raw(
            "POST",
            "/api/v1/users/me/api-keys",
            Some(br#"{"name": "one too many"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, resp["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{resp}"
    );
}

/// The schema's constraints are the server's: a value at a documented bound is accepted
/// and one past it is refused with 422 (the query `limit`s), and the request bodies carry
/// the default limits of `[limits]`.
#[tokio::test]
async fn schema_constraints_match_what_the_server_enforces() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let user = server.user("bounds").await;
    let room = user
        .create_room("bounds", palaver_protocol::Visibility::Public, None)
        .await
        .unwrap();
    let history = format!("/api/v1/rooms/{}/messages", room.id);
    for (path, doc_path) in [
        ("/api/v1/users".to_owned(), "/api/v1/users"),
        (history, "/api/v1/rooms/{room_id}/messages"),
    ] {
        let op = &doc["paths"][doc_path]["get"];
        let limit = params_in(op, "query")
            .into_iter()
            .find(|p| p["name"] == "limit")
            .unwrap_or_else(|| panic!("{doc_path}: no limit parameter"));
        let (min, max) = (
            limit["schema"]["minimum"].as_i64().expect("minimum"),
            limit["schema"]["maximum"].as_i64().expect("maximum"),
        );
        for (value, ok) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
            let (status, body) = user
                .raw("GET", &format!("{path}?limit={value}"), None)
                .await
                .unwrap();
            assert_eq!(
                status == 200,
                ok,
                "{doc_path}?limit={value}: {status} {body}"
            );
            if !ok {
                assert_eq!(status, 422, "{doc_path}?limit={value}: {body}");
            }
        }
    }
    let limits = palaver_server::config::Limits::default();
    let schemas = &doc["components"]["schemas"];
    let bounds = |schema: &str, field: &str| {
        let s = &schemas[schema]["properties"][field];
        (s["minLength"].as_u64(), s["maxLength"].as_u64())
    };
    let n = |v: usize| Some(v as u64);
    assert_eq!(
        bounds("RegisterRequest", "username"),
        (n(limits.username_min_chars), n(limits.username_max_chars))
    );
    assert_eq!(
        bounds("RegisterRequest", "password"),
        (n(limits.password_min_chars), n(limits.password_max_chars))
    );
    assert_eq!(
        bounds("SendMessageRequest", "content").1,
        n(limits.message_max_chars)
    );
    assert_eq!(
        bounds("CreateRoomRequest", "name").1,
        n(limits.room_name_max_chars)
    );
}

/// The `{emoji}` parameter is an enum of every emoji the server accepts: a sample of its
/// values is accepted, and what is not in it is refused.
#[tokio::test]
async fn the_emoji_parameter_lists_the_accepted_emoji() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let param = params_in(
        &doc["paths"]["/api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}"]["put"],
        "path",
    )
    .into_iter()
    .find(|p| p["name"] == "emoji")
    .cloned()
    .expect("emoji parameter");
    let schema = resolve(&doc, param["schema"]["$ref"].as_str().expect("a $ref")).unwrap();
    let all: Vec<&str> = schema["enum"]
        .as_array()
        .expect("an enum")
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(all.len() > 1000, "{} emoji", all.len());
    assert!(all.contains(&"👍") && all.contains(&"👍🏽"));

    let user = server.user("emoji").await;
    let room = user
        .create_room("emoji", palaver_protocol::Visibility::Public, None)
        .await
        .unwrap();
    let message = user.send_message(&room.id, "hi", None).await.unwrap();
    for emoji in all.iter().step_by(97) {
        user.react(&room.id, &message.id, emoji)
            .await
            .unwrap_or_else(|e| panic!("{emoji:?} is documented but refused: {e}"));
    }
    for not_one in ["x", "👍👍", ":+1:"] {
        assert!(!all.contains(&not_one));
        crate::helpers::assert_api_error(
            user.react(&room.id, &message.id, not_one).await,
            422,
            "validation_failed",
            Some("emoji"),
        );
    }
}

/// A multipart body with one part `file` and `parts` after it (or before, with
/// `file_first` false).
fn form(parts: &[&str], file_first: bool) -> (String, Vec<u8>) {
    let boundary = "palaver-test-boundary";
    let file = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nhello\r\n"
    );
    let others: String = parts
        .iter()
        .map(|name| {
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\nx\r\n")
        })
        .collect();
    let body = if file_first {
        format!("{file}{others}--{boundary}--\r\n")
    } else {
        format!("{others}{file}--{boundary}--\r\n")
    };
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

/// The upload form is exactly one part, `file` (`additionalProperties: false` in the
/// document): another part, before or after it, is `422` naming it.
#[tokio::test]
async fn an_upload_with_another_part_is_refused_as_documented() {
    let server = TestServer::spawn().await;
    let doc = document(&server).await;
    let form_schema = &doc["paths"]["/api/v1/attachments"]["post"]["requestBody"]["content"]
        ["multipart/form-data"]["schema"];
    let form_schema = match form_schema["$ref"].as_str() {
        Some(r) => resolve(&doc, r).unwrap(),
        None => form_schema,
    };
    assert_eq!(form_schema["additionalProperties"], false, "{form_schema}");
    assert_eq!(form_schema["required"], serde_json::json!(["file"]));

    let http = reqwest::Client::new();
    let name = crate::helpers::unique_name("form");
    let auth: Value = http
        .post(format!("{}/api/v1/auth/register", server.base))
        .json(&serde_json::json!({
            "username": name, "email": format!("{name}@example.com"), "password": "vivid-otter-42"
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = auth["access_token"].as_str().unwrap();
    for (parts, file_first, status) in [
        (&[][..], true, 201),
        (&["note"][..], true, 422),
        (&["note"][..], false, 422),
        (&["file"][..], true, 422),
    ] {
        let (content_type, body) = form(parts, file_first);
        let resp = http
            .post(format!("{}/api/v1/attachments", server.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let got = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(got, status, "{parts:?} (file first: {file_first}): {body}");
        if status == 422 {
            assert_eq!(body["error"]["field"], parts[0], "{body}");
        }
    }
}
