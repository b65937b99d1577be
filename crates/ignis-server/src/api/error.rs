//! The API's errors and their JSON shapes.
//!
//! A handler's [`ApiError`] cannot see the request id, path and URL the original's envelope
//! carries, so it leaves a marker on the response and the request-context layer renders it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// One problem found in a request body, shaped like a Zod issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Issue {
    /// Where in the body, as a list of keys (empty: the body itself).
    pub path: Vec<String>,
    pub message: String,
}

impl Issue {
    pub(crate) fn new(path: &[&str], message: impl Into<String>) -> Self {
        Issue {
            path: path.iter().map(|s| s.to_string()).collect(),
            message: message.into(),
        }
    }
}

/// An error answered with the envelope `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {message}")]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Validation issues (`details.cause`).
    pub cause: Option<Vec<Issue>>,
}

pub(crate) const MESSAGE_NOT_INITIALIZED: &str =
    "[SocketEventService] SocketIO not initialized. Make sure server is started.";
pub(crate) const MESSAGE_MALFORMED_BODY: &str = "Malformed Body Payload";
pub(crate) const MESSAGE_VALIDATION: &str = "ValidationError";
pub(crate) const MESSAGE_UNAUTHORIZED: &str = "Unauthorized: a valid API key is required";

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            cause: None,
        }
    }

    pub(crate) fn not_initialized() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, MESSAGE_NOT_INITIALIZED)
    }

    pub(crate) fn malformed_body() -> Self {
        Self::new(StatusCode::BAD_REQUEST, MESSAGE_MALFORMED_BODY)
    }

    pub(crate) fn validation(issues: Vec<Issue>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: MESSAGE_VALIDATION.into(),
            cause: Some(issues),
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, MESSAGE_UNAUTHORIZED)
    }

    /// The original's envelope, without the stack it shows outside production.
    pub(crate) fn envelope(&self, request_id: &str, url: &str, path: &str) -> Value {
        let mut details = json!({ "url": url, "path": path });
        if let (Some(cause), Some(details)) = (&self.cause, details.as_object_mut()) {
            details.insert("cause".into(), json!(cause));
        }
        json!({
            "error": {
                "message": self.message,
                "statusCode": self.status.as_u16(),
                "requestId": request_id,
                "details": details,
            }
        })
    }
}

/// Marks a response whose body the request-context layer replaces with the envelope.
#[derive(Debug, Clone)]
pub(crate) struct PendingError(pub ApiError);

/// Marks a response whose body the request-context layer replaces with the 404 shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingNotFound;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(PendingError(self));
        response
    }
}

/// An endpoint-level refusal in the original's flat shape `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub String);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        (StatusCode::BAD_REQUEST, Json(json!({ "error": self.0 }))).into_response()
    }
}

/// Either of the two error shapes a handler can answer with.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Envelope(ApiError),
    Flat(BadRequest),
}

impl From<ApiError> for HandlerError {
    fn from(e: ApiError) -> Self {
        HandlerError::Envelope(e)
    }
}

impl From<BadRequest> for HandlerError {
    fn from(e: BadRequest) -> Self {
        HandlerError::Flat(e)
    }
}

impl IntoResponse for HandlerError {
    fn into_response(self) -> Response {
        match self {
            HandlerError::Envelope(e) => e.into_response(),
            HandlerError::Flat(e) => e.into_response(),
        }
    }
}

pub(crate) const MESSAGE_METHOD_NOT_ALLOWED: &str = "Method Not Allowed";

/// A known path with another method: 405 in the envelope (the original answers its 404 here);
/// the router adds `Allow` with the path's methods.
pub(crate) async fn method_not_allowed() -> Response {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, MESSAGE_METHOD_NOT_ALLOWED).into_response()
}

/// Unknown routes.
pub(crate) async fn not_found() -> Response {
    let mut response = StatusCode::NOT_FOUND.into_response();
    response.extensions_mut().insert(PendingNotFound);
    response
}
