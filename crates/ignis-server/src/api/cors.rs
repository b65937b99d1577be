//! CORS as the original configures it (any origin, credentials, one-day preflight cache), with
//! the origin mirrored so that credentialed requests from a browser work (a literal `*` with
//! credentials is refused by browsers).

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::context::REQUEST_ID_HEADER;

/// `["*"]` (or any list holding `*`) allows every origin; otherwise only the listed ones. An
/// origin that is not a valid header value can never match, so it is skipped with a warning.
pub fn layer(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| {
            let origin = origin.trim().trim_end_matches('/');
            HeaderValue::from_str(origin)
                .inspect_err(|_| tracing::warn!(%origin, "ignoring an invalid CORS origin"))
                .ok()
        }))
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
        ])
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([HeaderName::from_static(REQUEST_ID_HEADER)])
        .max_age(Duration::from_secs(86_400))
}
