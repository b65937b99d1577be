//! The outermost layer: gives every request an id, logs it, and turns the errors the inner layers
//! left as markers into the original's JSON shapes (which need the id, the path and the URL).

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST};
use tracing::Instrument;

use super::error::{PendingError, PendingNotFound};
use crate::logging::Escaped;

pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether an incoming id may be reused: short and made of characters safe in logs and headers.
pub(crate) fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A random id in the UUID v4 format, like the original's `crypto.randomUUID()`.
pub(crate) fn generate_request_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

pub(crate) async fn request_context(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid_request_id(v))
        .map(str::to_string)
        .unwrap_or_else(generate_request_id);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let url = format!(
        "http://{}{}",
        request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost"),
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
    );

    let span = tracing::info_span!("request", request_id = %id);
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;

    if let Some(PendingError(error)) = response.extensions_mut().remove::<PendingError>() {
        let body = error.envelope(&id, &url, &path);
        replace_json_body(&mut response, &body);
    } else if response
        .extensions_mut()
        .remove::<PendingNotFound>()
        .is_some()
    {
        let body = serde_json::json!({
            "message": "URL NOT FOUND",
            "statusCode": 404,
            "requestId": id,
            "path": path,
            "url": url,
        });
        replace_json_body(&mut response, &body);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }

    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(
            %method,
            path = %Escaped(&path),
            status,
            duration_ms = format_args!("{duration_ms:.3}"),
            "request"
        );
    });
    response
}

fn replace_json_body(response: &mut Response, body: &serde_json::Value) {
    let bytes = body.to_string();
    response.headers_mut().remove(CONTENT_LENGTH);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    *response.body_mut() = Body::from(bytes);
}
