//! The web client's files: every file of `web/` at its path with its type and the
//! client's Content-Security-Policy; nothing else (unknown files, escapes) but a JSON 404.

use crate::helpers::TestServer;

#[tokio::test]
async fn web_client_files_are_served_with_their_type_and_policy() {
    let server = TestServer::spawn().await;
    let http = reqwest::Client::new();
    for (path, content_type, needle) in [
        ("/", "text/html; charset=utf-8", "<script type=\"module\""),
        (
            "/index.html",
            "text/html; charset=utf-8",
            "<script type=\"module\"",
        ),
        ("/js/app.js", "text/javascript; charset=utf-8", "import "),
        ("/app.css", "text/css; charset=utf-8", "{"),
    ] {
        let res = http
            .get(format!("{}{path}", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let headers = res.headers().clone();
        assert_eq!(headers["content-type"], content_type, "{path}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self';") && csp.contains("style-src 'self';"),
            "{path}: {csp}"
        );
        assert!(res.text().await.unwrap().contains(needle), "{path}");
    }
}

/// `GET path` sent byte for byte (an HTTP client would normalise `%2e%2e` and `..`):
/// the status and the body.
async fn raw_get(base: &str, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

#[tokio::test]
async fn unknown_web_paths_are_json_404s_and_never_escape_the_client_directory() {
    let server = TestServer::spawn().await;
    assert_eq!(
        raw_get(&server.base, "/js/app.js").await.0,
        200,
        "the control"
    );
    for path in [
        "/js/nope.js",
        "/nope.png",
        "/js/../index.html",
        "/js/%2e%2e/index.html",
        "/js/..%2fapp.css",
        "/../Cargo.toml",
        "/%2e%2e/Cargo.toml",
        "/..%2f..%2fCargo.toml",
        "/js/%2e%2e/%2e%2e/Cargo.toml",
        "/js//app.js",
        "/JS/APP.JS",
    ] {
        let (status, body) = raw_get(&server.base, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("\"not_found\""), "{path}: {body}");
    }
}
