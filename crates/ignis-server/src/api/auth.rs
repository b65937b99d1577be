//! The API key that protects the management endpoints.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue};

use super::error::ApiError;
use crate::logging::Escaped;

pub(crate) const API_KEY_HEADER: &str = "x-api-key";

/// The configured key.
pub(crate) struct ApiKey(Vec<u8>);

impl ApiKey {
    pub(crate) fn new(key: String) -> Self {
        ApiKey(key.into_bytes())
    }

    /// Whether the request presents the key, as `X-API-Key: <key>` or `Authorization: Bearer
    /// <key>`.
    pub(crate) fn accepts(&self, headers: &HeaderMap) -> bool {
        let from_header = headers
            .get_all(API_KEY_HEADER)
            .iter()
            .any(|v| self.matches(v.as_bytes()));
        let from_bearer = headers
            .get_all(AUTHORIZATION)
            .iter()
            .any(|v| bearer_token(v.as_bytes()).is_some_and(|token| self.matches(token)));
        from_header || from_bearer
    }

    /// Compares without stopping at the first difference, so timing does not reveal how much of
    /// a guess was right.
    fn matches(&self, candidate: &[u8]) -> bool {
        if candidate.len() != self.0.len() {
            return false;
        }
        self.0
            .iter()
            .zip(candidate)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

pub(crate) async fn require_api_key(
    State(key): State<Arc<ApiKey>>,
    request: Request,
    next: Next,
) -> Response {
    if key.accepts(request.headers()) {
        return next.run(request).await;
    }
    tracing::warn!(
        path = %Escaped(request.uri().path()),
        "request without a valid API key refused"
    );
    let mut response = ApiError::unauthorized().into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer realm="ignis", ApiKey header="X-API-Key""#),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_and_refused_credentials() {
        let key = ApiKey::new("s3cret".into());
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("x-api-key", "s3cret")], true),
            (&[("authorization", "Bearer s3cret")], true),
            (&[("authorization", "bearer s3cret")], true),
            (&[("authorization", "BEARER  s3cret ")], true),
            (&[("x-api-key", "wrong"), ("x-api-key", "s3cret")], true),
            (&[], false),
            (&[("x-api-key", "")], false),
            (&[("x-api-key", "s3cre")], false),
            (&[("x-api-key", "s3cret2")], false),
            (&[("x-api-key", "S3CRET")], false),
            (&[("authorization", "s3cret")], false),
            (&[("authorization", "Basic s3cret")], false),
            (&[("authorization", "Bearer")], false),
            (&[("authorization", "Bearer ")], false),
            (&[("authorization", "Bearer wrong")], false),
        ];
        for (headers, accepted) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in *headers {
                map.append(*name, HeaderValue::from_str(value).unwrap());
            }
            assert_eq!(key.accepts(&map), *accepted, "{headers:?}");
        }
    }
}
