//! The OpenAPI document and the API reference page, served by the binary itself.

use serde_json::Value;

use crate::helpers::TestServer;

/// Every route the server serves, as `(method, path)` in the document's path syntax.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/me"),
    ("patch", "/api/v1/users/me"),
    ("delete", "/api/v1/users/me"),
    ("put", "/api/v1/users/me/password"),
    ("get", "/api/v1/users/me/sessions"),
    ("delete", "/api/v1/users/me/sessions/{session_id}"),
    ("get", "/api/v1/users/me/api-keys"),
    ("post", "/api/v1/users/me/api-keys"),
    ("delete", "/api/v1/users/me/api-keys/{key_id}"),
    ("get", "/api/v1/users/me/blocks"),
    ("put", "/api/v1/users/me/blocks/{user_id}"),
    ("delete", "/api/v1/users/me/blocks/{user_id}"),
    ("get", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/users/{user_id}/presence"),
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
    ("get", "/api/v1/rtc/ice-servers"),
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
            .replace("{key_id}", "x");
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
