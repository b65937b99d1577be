//! The engine's errors, all re-exported at the crate root: the refusals it answers bad
//! requests with, as the reference does ([`EngineError`]), why a message could not be queued on a
//! session ([`SendError`]), why the per-IP limits refused a client ([`IpRefusal`]), why a request
//! body timed out ([`BodyTimeout`]) and, with the `tls` feature, why a certificate could not be
//! loaded (`TlsError`).

use bytes::Bytes;
use http::{Response, StatusCode, header};

/// A request the engine refuses. The codes and messages are the reference's, so that clients and
/// tools that inspect them keep working.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("Transport unknown")]
    /// The `transport` query parameter names no transport this server allows.
    UnknownTransport,
    #[error("Session ID unknown")]
    /// The `sid` query parameter names no open session.
    UnknownSid,
    #[error("Bad handshake method")]
    /// A handshake with a method other than GET.
    BadHandshakeMethod,
    #[error("Bad request")]
    /// A request the protocol does not allow (wrong method, bad body, a second poll).
    BadRequest,
    #[error("Forbidden")]
    /// The `allow_request` check refused the request.
    Forbidden,
    #[error("Unsupported protocol version")]
    /// The client speaks a protocol version other than 4 (`EIO=4`).
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
    /// The numeric code of the JSON answer, as the reference numbers it.
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

    /// The HTTP status the refusal is answered with.
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

/// Why the per-IP limits refused a connection or a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IpRefusal {
    #[error("too many connections from this address")]
    /// The address already has as many connections open as it may.
    TooManyConnections,
    #[error("too many handshakes from this address")]
    /// The address made handshakes faster than its rate.
    TooManyHandshakes,
    #[error("too many addresses tracked at once")]
    /// The table of tracked addresses is full (many addresses at once, likely an attack).
    TableFull,
}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the session is closed")]
    /// The session is closed: nothing more can be sent on it.
    Closed,
    #[error("the client is not reading: its outbound queue is full")]
    /// The client does not read fast enough: its outbound queue is full.
    QueueFull,
}

/// The body did not arrive within its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimeout;

/// Why a [`TextMessage`](crate::TextMessage) refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadroomError {
    #[error("the buffer is shorter than its headroom")]
    /// The buffer is shorter than the headroom it must start with.
    TooShort,
    #[error("the text is not UTF-8")]
    /// The text after the headroom is not UTF-8.
    NotUtf8,
}

#[cfg(feature = "tls")]
pub use crate::http::TlsError;

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
