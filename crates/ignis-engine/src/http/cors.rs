//! CORS headers, with the semantics of the `cors` middleware the reference server uses, except
//! that a wildcard origin combined with credentials reflects the request's origin: browsers
//! refuse `*` on credentialed requests, so the reference's default setting does not work from a
//! browser.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{AllowOrigin, Cors};

fn origin_allowed(cors: &Cors, origin: &str) -> bool {
    match &cors.origin {
        AllowOrigin::Any => true,
        AllowOrigin::List(list) => list.iter().any(|o| o == origin),
        AllowOrigin::Predicate(f) => f(origin),
    }
}

fn join(values: &[String]) -> Option<HeaderValue> {
    HeaderValue::from_str(&values.join(",")).ok()
}

/// Where CORS headers go: a response's map, or the head that the direct path writes itself
/// ([`crate::http::direct`]), which spares a WebSocket handshake's `101` a map.
pub(crate) trait HeaderSink {
    /// A header the answer carries once.
    fn insert(&mut self, name: HeaderName, value: HeaderValue);
    /// A header that may carry several values.
    fn append(&mut self, name: HeaderName, value: HeaderValue);
}

impl HeaderSink for HeaderMap {
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        HeaderMap::insert(self, name, value);
    }

    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        HeaderMap::append(self, name, value);
    }
}

/// Adds the headers every answer carries.
pub(crate) fn apply(cors: &Cors, request: &HeaderMap, out: &mut impl HeaderSink) {
    // A value that is text is taken as it is: what `HeaderValue::from_str` would make of its
    // text, without a copy.
    let origin = request
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok().map(|text| (v, text)));
    match (&cors.origin, origin) {
        (AllowOrigin::Any, _) if !cors.credentials => {
            out.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
        (_, Some((value, origin))) if origin_allowed(cors, origin) => {
            out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value.clone());
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        _ => {
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
    }
    if cors.credentials {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !cors.exposed_headers.is_empty()
        && let Some(v) = join(&cors.exposed_headers)
    {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// Adds the headers of a preflight answer.
pub(crate) fn apply_preflight(cors: &Cors, request: &HeaderMap, out: &mut HeaderMap) {
    apply(cors, request, out);
    if let Some(v) = join(&cors.methods) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    match &cors.allowed_headers {
        Some(list) => {
            if let Some(v) = join(list) {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
        }
        None => {
            if let Some(v) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
                out.append(
                    header::VARY,
                    HeaderValue::from_static("Access-Control-Request-Headers"),
                );
            }
        }
    }
    if let Some(age) = cors.max_age {
        out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    out.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h.insert(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("authorization"),
        );
        h
    }

    #[test]
    fn wildcard_without_credentials() {
        let mut out = HeaderMap::new();
        apply(&Cors::default(), &request(Some("http://a.test")), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn wildcard_with_credentials_reflects_the_origin() {
        let cors = Cors {
            credentials: true,
            ..Cors::default()
        };
        let mut out = HeaderMap::new();
        apply(&cors, &request(Some("http://a.test")), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://a.test");
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    }

    #[test]
    fn list_refuses_other_origins() {
        let cors = Cors {
            origin: AllowOrigin::List(vec!["http://a.test".into()]),
            ..Cors::default()
        };
        let mut out = HeaderMap::new();
        apply(&cors, &request(Some("http://b.test")), &mut out);
        assert!(out.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let mut out = HeaderMap::new();
        apply(&cors, &request(Some("http://a.test")), &mut out);
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://a.test");
    }

    #[test]
    fn preflight_reflects_requested_headers() {
        let mut out = HeaderMap::new();
        apply_preflight(&Cors::default(), &request(Some("http://a.test")), &mut out);
        assert_eq!(
            out[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET,HEAD,PUT,PATCH,POST,DELETE"
        );
        assert_eq!(out[header::ACCESS_CONTROL_ALLOW_HEADERS], "authorization");
    }
}
