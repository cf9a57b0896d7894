//! The web client at `/`: every file of `crates/palaver-server/web/` compiled into the
//! binary (no build step; it works offline), each served at its path under `/` (so
//! `web/js/app.js` is `/js/app.js`), and `web/index.html` also at `/`.
//!
//! Only files with a known type are served (see [`content_type`]); each gets its own
//! route at startup, so an unknown path (`/js/nope.js`, `/../Cargo.toml`, `/js/%2e%2e/x`)
//! never reaches a file: it falls through to the JSON `404 not_found` of unknown routes.
//! A file added to `web/` is embedded at the next build of this crate (touch this file if
//! cargo does not notice the new file).

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use include_dir::{include_dir, Dir, File};

use crate::AppState;

/// The client's files, as of the build.
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// Only this origin's scripts, styles and connections (the API and its WebSocket);
/// images and media also from `blob:` and `data:` (previews, camera streams).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; media-src 'self' blob: mediastream:; \
     connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /` (`index.html`) and `GET /<path>` for every servable file of `web/`.
pub fn router() -> Router<AppState> {
    let mut router = Router::new();
    for (path, file) in servable_files() {
        let Some(content_type) = content_type(&path) else {
            continue;
        };
        let body = file.contents();
        let handler = get(move || async move { respond(content_type, body) });
        if path == "index.html" {
            router = router.route("/", handler.clone());
        }
        router = router.route(&format!("/{path}"), handler);
    }
    router
}

/// The files under `web/` that get a route: `(path relative to web/ with `/` separators,
/// file)`. Hidden files and names with characters outside `[A-Za-z0-9._-]` (which could
/// clash with route syntax) are left out.
fn servable_files() -> Vec<(String, &'static File<'static>)> {
    let mut out = Vec::new();
    let mut dirs = vec![&WEB];
    while let Some(dir) = dirs.pop() {
        dirs.extend(dir.dirs());
        for file in dir.files() {
            let parts: Option<Vec<&str>> = file
                .path()
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect();
            let Some(parts) = parts else { continue };
            let plain = parts.iter().all(|p| {
                !p.is_empty()
                    && !p.starts_with('.')
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            });
            if plain {
                out.push((parts.join("/"), file));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The `Content-Type` of a servable file, from its extension; `None`: not served.
fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

fn respond(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_files_are_embedded_with_their_types() {
        let files: Vec<String> = servable_files().into_iter().map(|(p, _)| p).collect();
        for wanted in ["index.html", "app.css", "js/app.js"] {
            assert!(files.iter().any(|f| f == wanted), "{wanted} in {files:?}");
        }
        for f in &files {
            assert!(!f.contains('\\') && !f.starts_with('/'), "{f}");
        }
        assert_eq!(
            content_type("js/app.js"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(content_type("a/b.woff2"), Some("font/woff2"));
        assert_eq!(content_type("README.md"), None);
        assert_eq!(content_type("Makefile"), None);
    }
}
