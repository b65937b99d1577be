//! CORS of the REST API. The original allows any origin with credentials, so any page a user
//! visits can call a local server's API with the user's cookies; here cross-origin access is
//! opt-in: listed origins get it with credentials, `*` gives every origin access without
//! credentials, and no list (the default) leaves the API same-origin only.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use super::context::REQUEST_ID_HEADER;

/// `["*"]` allows every origin without credentials; otherwise the listed ones, with
/// credentials; an empty list gives no layer (no cross-origin access). An origin that is not a
/// valid header value can never match, so it is skipped with a warning.
pub(crate) fn layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let any = origins.iter().any(|o| o.trim() == "*");
    let allow_origin = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|origin| {
            let origin = origin.trim().trim_end_matches('/');
            HeaderValue::from_str(origin)
                .inspect_err(
                    |_| tracing::warn!(origin = ?origin, "ignoring an invalid CORS origin"),
                )
                .ok()
        }))
    };
    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(!any)
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
        .max_age(Duration::from_secs(86_400));
    Some(layer)
}
