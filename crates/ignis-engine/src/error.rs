//! The errors the engine answers bad requests with, as the reference does.

use bytes::Bytes;
use http::{Response, StatusCode, header};

/// A request the engine refuses. The codes and messages are the reference's, so that clients and
/// tools that inspect them keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("Transport unknown")]
    UnknownTransport,
    #[error("Session ID unknown")]
    UnknownSid,
    #[error("Bad handshake method")]
    BadHandshakeMethod,
    #[error("Bad request")]
    BadRequest,
    #[error("Forbidden")]
    Forbidden,
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion,
    /// Not the reference's: a handshake over the per-IP rate (`429`).
    #[error("Too many requests")]
    TooManyRequests,
    /// Not the reference's: a handshake on a node that is draining (`503`). Clients retry
    /// it like any failed handshake, with their reconnection backoff.
    #[error("Server draining")]
    Draining,
}

impl EngineError {
    pub fn code(self) -> u8 {
        match self {
            EngineError::UnknownTransport => 0,
            EngineError::UnknownSid => 1,
            EngineError::BadHandshakeMethod => 2,
            EngineError::BadRequest => 3,
            EngineError::Forbidden => 4,
            EngineError::UnsupportedProtocolVersion => 5,
            EngineError::TooManyRequests => 6,
            EngineError::Draining => 7,
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            EngineError::Forbidden => StatusCode::FORBIDDEN,
            EngineError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            EngineError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The JSON answer: `{"code":N,"message":"..."}`.
    pub(crate) fn response(self) -> Response<Bytes> {
        let body = format!(r#"{{"code":{},"message":"{}"}}"#, self.code(), self);
        let mut res = Response::new(Bytes::from(body));
        *res.status_mut() = self.status();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_the_reference() {
        let cases = [
            (
                EngineError::UnknownTransport,
                400,
                r#"{"code":0,"message":"Transport unknown"}"#,
            ),
            (
                EngineError::UnknownSid,
                400,
                r#"{"code":1,"message":"Session ID unknown"}"#,
            ),
            (
                EngineError::BadHandshakeMethod,
                400,
                r#"{"code":2,"message":"Bad handshake method"}"#,
            ),
            (
                EngineError::BadRequest,
                400,
                r#"{"code":3,"message":"Bad request"}"#,
            ),
            (
                EngineError::Forbidden,
                403,
                r#"{"code":4,"message":"Forbidden"}"#,
            ),
            (
                EngineError::UnsupportedProtocolVersion,
                400,
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            ),
            (
                EngineError::TooManyRequests,
                429,
                r#"{"code":6,"message":"Too many requests"}"#,
            ),
            (
                EngineError::Draining,
                503,
                r#"{"code":7,"message":"Server draining"}"#,
            ),
        ];
        for (err, status, body) in cases {
            let res = err.response();
            assert_eq!(res.status().as_u16(), status);
            assert_eq!(res.body().as_ref(), body.as_bytes());
        }
    }
}
