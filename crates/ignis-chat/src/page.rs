//! The browser page: `/` serves the app's HTML, `/assets/{name}` its script, styles and icon.
//!
//! build.rs bundles crates/ignis-chat/web into OUT_DIR and the binary embeds the files, so the
//! chat is one file to deploy. Asset names carry a hash of their content: browsers may keep them
//! for a year without asking again, and only the page itself is revalidated (`no-cache`, with an
//! ETag). The page runs under a Content-Security-Policy that allows only its own script and
//! styles, and connections to this origin (fetch, and Socket.IO over polling or WebSocket).
//!
//! The page has no client-side paths (it keeps the open conversation in the URL's fragment), so
//! any other path outside `/api` and `/io` is a 404.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

include!(concat!(env!("OUT_DIR"), "/page_assets.rs"));

/// What the page may load and connect to.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self' ws: wss:; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Cached for a year and never revalidated: a new build has new names.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The routes of the page; the chat's router keeps its own (and its 404 for the rest).
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
}

/// The asset files' names, e.g. `main-2X4K7Q.js` (tests look them up).
pub fn asset_names() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|(name, _)| *name)
}

async fn index(headers: HeaderMap) -> Response {
    let etag = HeaderValue::from_static(INDEX_ETAG);
    let common = [
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (header::ETAG, etag.clone()),
    ];
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == INDEX_ETAG || tag.trim() == "*");
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        INDEX_HTML,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    let Some((name, bytes)) = ASSETS.iter().find(|(n, _)| *n == name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, content_type(name)),
            (header::CACHE_CONTROL, IMMUTABLE),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *bytes,
    )
        .into_response()
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_each_asset_it_loads() {
        for kind in [".js", ".css", ".svg"] {
            let name = asset_names()
                .find(|n| n.ends_with(kind))
                .unwrap_or_else(|| panic!("an asset of kind {kind}"));
            assert!(
                INDEX_HTML.contains(&format!("\"/assets/{name}\"")),
                "index.html loads {name}"
            );
        }
        // No inline script: the policy would block it.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style=\""));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type("main-AB12.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("style-AB12.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("icon-ab12.svg"), "image/svg+xml");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
