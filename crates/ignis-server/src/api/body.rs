//! JSON request bodies: the 10 MB limit, parsing, and the type checks of the fields the
//! endpoints read.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{Map, Value};

use super::error::{ApiError, Issue};

/// The original's body limit.
pub(crate) const BODY_LIMIT: usize = 10 * 1024 * 1024;

/// The original answers an oversized body with 413 and `{}`.
pub(crate) fn payload_too_large() -> Response {
    let mut response = (StatusCode::PAYLOAD_TOO_LARGE, Body::from("{}")).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Refuses a declared oversized body before anything reads it; bodies without a length are
/// counted while they are read (see [`JsonObject`]).
pub(crate) async fn enforce_declared_limit(request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > BODY_LIMIT as u64) {
        return payload_too_large();
    }
    next.run(request).await
}

/// Why a body was refused before its fields were looked at.
#[derive(Debug)]
pub(crate) enum BodyRejection {
    TooLarge,
    Invalid(ApiError),
}

impl IntoResponse for BodyRejection {
    fn into_response(self) -> Response {
        match self {
            BodyRejection::TooLarge => payload_too_large(),
            BodyRejection::Invalid(e) => e.into_response(),
        }
    }
}

/// A JSON object body. An empty body counts as `{}` so that a missing field gets the endpoint's
/// own answer; any `Content-Type` is accepted, as in the original.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = BodyRejection;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::to_bytes(request.into_body(), BODY_LIMIT)
            .await
            .map_err(|e| {
                if is_length_limit(&e) {
                    BodyRejection::TooLarge
                } else {
                    BodyRejection::Invalid(ApiError::malformed_body())
                }
            })?;
        parse_object(&bytes).map(JsonObject)
    }
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The body as an object: empty is `{}`, bad JSON is 400, JSON of another type is 422.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, BodyRejection> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BodyRejection::Invalid(ApiError::validation(vec![
            Issue::new(&[], expected("object", &other)),
        ]))),
        Err(_) => Err(BodyRejection::Invalid(ApiError::malformed_body())),
    }
}

/// A JSON value's type, in Zod's words.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) fn expected(what: &str, got: &Value) -> String {
    format!("Expected {what}, received {}", kind(got))
}
