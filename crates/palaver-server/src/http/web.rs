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

    /// `web/js/emoji-data.js`, the emoji picker's list: every emoji of the `emojis` crate
    /// (Unicode's emoji list, the one reactions are validated against), without skin-tone
    /// variants, as `[emoji, name, group index, shortcodes]`, grouped as Unicode groups
    /// them.
    fn emoji_module() -> String {
        let groups: Vec<emojis::Group> = emojis::Group::iter().collect();
        let mut out = String::from(
            "// Generated from the `emojis` crate (Unicode's emoji data, the list the server\n\
             // validates reactions against) by src/http/web.rs's emoji_module_is_current test:\n\
             // PALAVER_WRITE_EMOJI_JS=1 cargo test -p palaver-server --lib emoji_module\n\
             // Do not edit. Each entry: [emoji, name, index in GROUPS, shortcodes].\n\n",
        );
        let names: Vec<String> = groups
            .iter()
            .map(|g| {
                let debug = format!("{g:?}");
                let mut name = String::new();
                for (i, c) in debug.chars().enumerate() {
                    if i > 0 && c.is_uppercase() {
                        name.push(' ');
                    }
                    name.push(c);
                }
                name.replace(" And ", " & ")
            })
            .collect();
        out.push_str(&format!(
            "export const GROUPS = {};\n\nexport const EMOJIS = [\n",
            serde_json::to_string(&names).expect("names")
        ));
        for emoji in emojis::iter() {
            let group = groups.iter().position(|g| *g == emoji.group()).unwrap_or(0);
            let shortcodes: Vec<&str> = emoji.shortcodes().collect();
            out.push_str(&format!(
                "[{},{},{group},{}],\n",
                serde_json::to_string(emoji.as_str()).expect("emoji"),
                serde_json::to_string(emoji.name()).expect("name"),
                serde_json::to_string(&shortcodes.join(" ")).expect("shortcodes"),
            ));
        }
        out.push_str("];\n");
        out
    }

    #[test]
    fn emoji_module_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/web/js/emoji-data.js");
        let expected = emoji_module();
        if std::env::var_os("PALAVER_WRITE_EMOJI_JS").is_some() {
            std::fs::write(path, &expected).expect("write web/js/emoji-data.js");
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            actual == expected,
            "web/js/emoji-data.js does not match the emojis crate: regenerate it with \
             PALAVER_WRITE_EMOJI_JS=1 cargo test -p palaver-server --lib emoji_module"
        );
    }
}
