//! HTTP long-polling: a GET waits until something is queued for the client, a POST carries
//! packets from the client. A task per session keeps the heartbeat while the session polls.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Body;
use ignis_proto::engineio::{self, Packet};

use crate::engine::{Handler, Inner};
use crate::session::message::Outgoing;
use crate::session::packet::handle_packet;
use crate::session::{CloseReason, Socket, TransportKind};
use crate::transport::content_type;

type Reply = Response<Bytes>;

/// Most packets one POST may carry; the body size is bounded by `max_http_buffer_size` anyway.
const MAX_PACKETS_PER_POST: usize = 4096;

pub(crate) async fn get<H: Handler>(
    inner: &Arc<Inner<H>>,
    socket: &Arc<Socket<H::Data>>,
    parts: &Parts,
) -> Reply {
    let Some(_claim) = socket.claim_request(false) else {
        tracing::debug!(sid = %socket.id(), "overlapping polling GET");
        inner.finalize(socket, CloseReason::TransportError);
        return empty(StatusCode::BAD_REQUEST);
    };
    let mut items = loop {
        let notified = socket.writable();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Once a WebSocket carries the session, its queue is the WebSocket's.
        let mut items = if socket.transport() == TransportKind::WebSocket && !socket.is_closed() {
            VecDeque::new()
        } else {
            socket.take_outbox()
        };
        if socket.is_closed() {
            // The client closed: the reference releases the request with a noop. Otherwise the
            // client learns of the close with a close packet after what was still queued.
            if socket.pending_close() == Some(CloseReason::TransportClose) {
                items.clear();
                items.push_back(Outgoing::Packet(Packet::Noop));
            } else if !items
                .iter()
                .any(|o| matches!(o, Outgoing::Packet(Packet::Close)))
            {
                items.push_back(Outgoing::Packet(Packet::Close));
            }
            break items;
        }
        if !items.is_empty() {
            break items;
        }
        if socket.transport() != TransportKind::Polling || socket.is_upgrading() {
            // Upgraded, or an upgrade is being probed: answer with a noop so that the client
            // can pause polling.
            break [Outgoing::Packet(Packet::Noop)].into();
        }
        notified.await;
    };
    let mut closing = items
        .iter()
        .any(|o| matches!(o, Outgoing::Packet(Packet::Close)));
    if closing
        && socket.pending_close() != Some(CloseReason::TransportClose)
        && let Some(at) = items
            .iter()
            .position(|o| matches!(o, Outgoing::Packet(Packet::Close)))
        && at > 0
    {
        // Messages first, the close packet with the next GET, as the reference does (it
        // flushes its buffer before it closes). socket.io-client hands the events of a payload
        // to its sockets a tick after it read them, so that with a close in the same payload it
        // would see them after its disconnect, keep them for its next connection, and a
        // recovered session would get them a second time among its missed packets.
        items.truncate(at);
        socket.requeue_close();
        closing = false;
    }
    let packets: Vec<Packet> = items.iter().map(Outgoing::to_packet).collect();
    let mut body = Vec::new();
    engineio::encode_payload(&packets, &mut body);
    if closing {
        let reason = socket.pending_close().unwrap_or(CloseReason::ForcedClose);
        inner.finalize(socket, reason);
    }
    let mut res = compress(inner, parts, body);
    content_type(&mut res, "text/plain; charset=UTF-8");
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Why a POST body was refused.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the body is over {0} bytes")]
    TooLarge(usize),
    #[error("the body could not be read: {0}")]
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// How much of a refused body is read and dropped before answering, as a multiple of the limit.
const DRAIN_FACTOR: u64 = 16;

/// Reads a POST body of at most `max` bytes. What is left of a body over the limit is read and
/// dropped (up to a bound) before the refusal: a connection closed with unread data is reset,
/// and a client still sending would lose the answer to the reset.
async fn read_body<B>(body: B, max: usize, declared: Option<u64>) -> Result<Bytes, BodyError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let drain_limit = (max as u64).saturating_mul(DRAIN_FACTOR);
    let too_large = declared.is_some_and(|len| len > max as u64);
    if declared.is_some_and(|len| len > drain_limit) {
        return Err(BodyError::TooLarge(max));
    }
    let mut body = std::pin::pin!(body);
    // Most bodies arrive in one frame, which is kept as it is; more are joined.
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.into()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if too_large || seen > max as u64 {
            first = None;
            joined = Vec::new();
            if seen > drain_limit {
                break;
            }
            continue;
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            None => joined.extend_from_slice(&data),
            Some(previous) => {
                joined.extend_from_slice(&previous);
                joined.extend_from_slice(&data);
            }
        }
    }
    if too_large || seen > max as u64 {
        return Err(BodyError::TooLarge(max));
    }
    Ok(first.unwrap_or_else(|| Bytes::from(joined)))
}

/// The answer to a body that missed its deadline; the connection closes after it.
fn timed_out() -> Reply {
    let mut res = empty(StatusCode::REQUEST_TIMEOUT);
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn empty(status: StatusCode) -> Reply {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = status;
    res
}

/// gzip or deflate for answers over the threshold, when the client takes them.
fn compress<H: Handler>(inner: &Inner<H>, parts: &Parts, body: Vec<u8>) -> Reply {
    let Some(threshold) = inner.config.http_compression_threshold else {
        return Response::new(Bytes::from(body));
    };
    if body.len() < threshold {
        return Response::new(Bytes::from(body));
    }
    let accepted = parts
        .headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let level = flate2::Compression::default();
    let (encoding, compressed) = match choose_encoding(accepted) {
        Some("gzip") => {
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2), level);
            ("gzip", enc.write_all(&body).and_then(|_| enc.finish()))
        }
        Some(_) => {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::with_capacity(body.len() / 2), level);
            ("deflate", enc.write_all(&body).and_then(|_| enc.finish()))
        }
        None => return Response::new(Bytes::from(body)),
    };
    match compressed {
        Ok(out) => {
            let mut res = Response::new(Bytes::from(out));
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
            res.extensions_mut().insert(crate::http::body::Chunked);
            res
        }
        Err(_) => Response::new(Bytes::from(body)),
    }
}

pub(crate) async fn post<H, B>(
    inner: &Arc<Inner<H>>,
    socket: &Arc<Socket<H::Data>>,
    parts: &Parts,
    body: B,
) -> Reply
where
    H: Handler,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(_claim) = socket.claim_request(true) else {
        tracing::debug!(sid = %socket.id(), "overlapping polling POST");
        inner.finalize(socket, CloseReason::TransportError);
        return empty(StatusCode::BAD_REQUEST);
    };
    // Binary payloads are base64 inside text in protocol v4.
    if parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"))
    {
        inner.finalize(socket, CloseReason::TransportError);
        return empty(StatusCode::BAD_REQUEST);
    }
    let max = inner.config.max_http_buffer_size;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Too large: refused, but the session stays open, as in the reference. Too slow: the
    // connection closes (what is left of the body would be read as the next request).
    let read = tokio::time::timeout(inner.config.body_timeout, read_body(body, max, declared));
    let bytes = match read.await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            tracing::debug!(sid = %socket.id(), error = %e, "polling body refused");
            return match e {
                BodyError::TooLarge(_) => empty(StatusCode::PAYLOAD_TOO_LARGE),
                // `serve_http`'s deadline (which counts it) came first.
                BodyError::Read(e) if e.is::<crate::error::BodyTimeout>() => timed_out(),
                BodyError::Read(_) => empty(StatusCode::BAD_REQUEST),
            };
        }
        Err(_) => {
            tracing::debug!(sid = %socket.id(), "polling body too slow");
            crate::abuse::Counters::bump(&inner.counters.body_timeouts);
            return timed_out();
        }
    };
    match engineio::decode_payload(bytes, MAX_PACKETS_PER_POST) {
        Ok(packets) => {
            for packet in packets {
                if !handle_packet(inner, socket, packet) {
                    break;
                }
            }
        }
        Err(e) => {
            tracing::debug!(sid = %socket.id(), error = %e, "bad polling payload");
            inner.finalize(socket, CloseReason::ParseError);
        }
    }
    let mut res = Response::new(Bytes::from_static(b"ok"));
    content_type(&mut res, "text/html");
    res
}

/// Keeps the heartbeat and the timeouts of a polling session until it closes or upgrades.
pub(crate) fn spawn_driver<H: Handler>(inner: Arc<Inner<H>>, socket: Arc<Socket<H::Data>>) {
    tokio::spawn(async move {
        // How long a server-closed session waits for the client to fetch its close packet.
        let mut closing_since: Option<tokio::time::Instant> = None;
        loop {
            if socket.is_closed() || socket.transport() != TransportKind::Polling {
                return;
            }
            if closing_since.is_none()
                && let Some(reason) = socket.pending_close()
            {
                // Deliver what is queued and a close packet with the next GET, like the
                // reference; then the session ends.
                let _ = socket.push_packet(Packet::Close);
                socket.begin_closing();
                if reason != CloseReason::ForcedClose {
                    tracing::debug!(sid = %socket.id(), reason = reason.as_str(), "closing");
                }
                closing_since = Some(tokio::time::Instant::now());
            }
            // A closing session only waits for the client to fetch its close: no heartbeat, and
            // no deadline that is already due (the establish timeout stays due once it is, and
            // sleeping until it would not sleep at all).
            let at = match closing_since {
                Some(since) => since + inner.config.ping_timeout,
                None => {
                    let (at_ms, _) = inner.next_deadline(&socket);
                    tokio::time::Instant::from_std(socket.created()) + Duration::from_millis(at_ms)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep_until(at) => {
                    if let Some(since) = closing_since
                        && tokio::time::Instant::now() >= since + inner.config.ping_timeout
                    {
                        let reason = socket.pending_close().unwrap_or(CloseReason::ForcedClose);
                        inner.finalize(&socket, reason);
                        return;
                    }
                    // Things may have changed while sleeping (a pong, an established
                    // connect): act on what is due now.
                    let (at_ms, what) = inner.next_deadline(&socket);
                    let due = socket.age_ms() >= at_ms;
                    if due
                        && socket.transport() == TransportKind::Polling
                        && !inner.on_deadline(&socket, what)
                    {
                        return;
                    }
                }
                _ = socket.driver_woken() => {}
            }
        }
    });
}

/// Picks `gzip` or `deflate` from an `Accept-Encoding` value the way the reference (the
/// `negotiator` package) does: highest quality, then an exact name over `*`, then the client's
/// order, then ours; quality 0 refuses.
fn choose_encoding(accept: &str) -> Option<&'static str> {
    struct Spec<'a> {
        name: &'a str,
        q: f32,
        order: usize,
    }
    let specs: Vec<Spec<'_>> = accept
        .split(',')
        .enumerate()
        .filter_map(|(order, entry)| {
            let mut parts = entry.split(';');
            let name = parts.next()?.trim();
            if name.is_empty() {
                return None;
            }
            let mut q = 1.0;
            for param in parts {
                if let Some((k, v)) = param.split_once('=')
                    && k.trim() == "q"
                {
                    q = v.trim().parse().unwrap_or(0.0);
                }
            }
            Some(Spec { name, q, order })
        })
        .collect();
    let mut best: Option<(f32, u8, usize, usize, &'static str)> = None;
    for (index, candidate) in ["gzip", "deflate"].into_iter().enumerate() {
        let matched = specs
            .iter()
            .filter_map(|s| {
                if s.name.eq_ignore_ascii_case(candidate) {
                    Some((s.q, 1u8, s.order))
                } else if s.name == "*" {
                    Some((s.q, 0u8, s.order))
                } else {
                    None
                }
            })
            .max_by(|a, b| a.1.cmp(&b.1).then(b.2.cmp(&a.2)));
        let Some((q, specificity, order)) = matched else {
            continue;
        };
        if q <= 0.0 {
            continue;
        }
        let key = (q, specificity, order, index, candidate);
        let better = match &best {
            None => true,
            Some(b) => {
                q > b.0
                    || (q == b.0 && specificity > b.1)
                    || (q == b.0 && specificity == b.1 && (order, index) < (b.2, b.3))
            }
        };
        if better {
            best = Some(key);
        }
    }
    best.map(|b| b.4)
}

#[cfg(test)]
mod tests {
    use super::choose_encoding;

    #[test]
    fn encodings_are_negotiated_like_the_reference() {
        let cases = [
            ("gzip", Some("gzip")),
            ("deflate, gzip", Some("deflate")),
            ("gzip;q=0.5, deflate", Some("deflate")),
            ("*", Some("gzip")),
            ("GZIP", Some("gzip")),
            ("gzip;q=0", None),
            ("br", None),
            ("", None),
            ("identity", None),
            ("*;q=0.1, deflate;q=0.5", Some("deflate")),
        ];
        for (header, expected) in cases {
            assert_eq!(choose_encoding(header), expected, "{header:?}");
        }
    }
}
