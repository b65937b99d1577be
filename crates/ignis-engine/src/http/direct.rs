//! The direct path for a connection's first request.
//!
//! Nearly every WebSocket client opens a connection for one thing: its handshake, sent at once
//! and whole. For those, going through hyper costs an HTTP connection state machine, its buffers,
//! the upgrade machinery and a second task. So the task of a new connection reads the first
//! request head itself; when it is a WebSocket handshake for the engine, it answers it with the
//! engine's own checks ([`Engine::respond`], the same as [`Engine::handle`]) and runs the
//! WebSocket connection on the same task. Anything else — another path, another method, a head
//! that did not arrive whole in the first read or is larger than the buffer, a body, a parse
//! error — goes to hyper untouched, with the bytes already read replayed first ([`Rewind`]), so
//! hyper answers it exactly as it would have.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::transport::stream::Stream;
use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use futures_util::future::Either;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use tokio::io::AsyncWriteExt;

use crate::engine::{Engine, Handler, PeerAddr};
use crate::http::router::Routed;
use crate::transport::rewind::{FirstRead, Handoff, Rewind};
use crate::transport::websocket::{Answer, Begin};

thread_local! {
    /// The `date` header value, rendered once a second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [0; 29])) };
}

/// The most header lines the direct path parses; a request with more goes to hyper.
const MAX_HEADERS: usize = 48;

/// A request head parsed from the first read, for the direct path.
struct Head {
    parts: Parts,
    /// Length of the head in the first read; what follows is the client's next bytes.
    len: usize,
    /// Whether the connection stays open after a non-`101` answer.
    keep_alive: bool,
}

/// Parses the first read when it holds a whole request head that the direct path takes: a
/// WebSocket handshake (`GET`, HTTP/1.1, `Upgrade: websocket`, `transport=websocket`) for a path
/// that `matches`, without a body. Anything else is `None`, for hyper.
fn parse_head(data: &Bytes, matches: impl Fn(&str) -> bool) -> Option<Head> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(data) {
        Ok(httparse::Status::Complete(len)) => len,
        _ => return None,
    };
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let path = req.path?;
    let uri = Uri::from_maybe_shared(data.slice_ref(path.as_bytes())).ok()?;
    if !matches(uri.path()) || !wants_websocket_transport(uri.query().unwrap_or("")) {
        return None;
    }
    let mut map = HeaderMap::with_capacity(req.headers.len());
    let mut upgrade = None;
    let mut keep_alive = true;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let value = HeaderValue::from_maybe_shared(data.slice_ref(h.value)).ok()?;
        match name {
            // A body, or an expectation: hyper's business.
            header::CONTENT_LENGTH | header::TRANSFER_ENCODING | header::EXPECT => return None,
            header::UPGRADE if upgrade.is_none() => upgrade = Some(value.clone()),
            header::CONNECTION if has_token(value.as_bytes(), b"close") => keep_alive = false,
            _ => {}
        }
        map.append(name, value);
    }
    // The engine's own test for an upgrade (`is_websocket_upgrade`), on the first value.
    let upgrade = upgrade?;
    if !upgrade
        .to_str()
        .is_ok_and(|v| v.eq_ignore_ascii_case("websocket"))
    {
        return None;
    }
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = Method::GET;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    parts.headers = map;
    Some(Head {
        parts,
        len,
        keep_alive,
    })
}

/// Whether the query asks for the WebSocket transport (read as the engine reads it).
fn wants_websocket_transport(query: &str) -> bool {
    crate::http::router::Query::parse(query)
        .transport
        .as_deref()
        == Some("websocket")
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

impl<H: Handler> Engine<H> {
    /// Serves a new connection's first request when it is a WebSocket handshake for the engine
    /// (see the module documentation); hands everything else back for hyper. `extend` adds
    /// request extensions besides [`PeerAddr`] (what the application's own stack would add, for
    /// an `allow_request` hook that reads them).
    ///
    /// The request is answered, and the connection set up, when this is called; the future
    /// returned runs the connection. Not an `async fn`: the future of a long-lived WebSocket
    /// connection is then that of the connection alone, without the arguments and the answer
    /// that an `async fn` would keep beside it for the connection's life.
    pub fn serve_direct<'a>(
        &'a self,
        first: FirstRead,
        peer: SocketAddr,
        extend: impl FnOnce(&mut http::Extensions),
    ) -> impl Future<Output = Handoff> + Send + 'a {
        // The rare answers that wait are boxed, so that they do not make every connection's
        // future larger.
        let other: Pin<Box<dyn Future<Output = Handoff> + Send + 'a>> =
            match self.answer_first(first, peer, extend) {
                Direct::WebSocket(begin) => match begin.start() {
                    Ok(run) => return Either::Left(run.map(|()| Handoff::Done)),
                    Err(end) => Box::pin(async move {
                        (*end).run().await;
                        Handoff::Done
                    }),
                },
                Direct::Handoff(handoff) => Box::pin(std::future::ready(handoff)),
                Direct::Write(write) => Box::pin(write.finish()),
                Direct::Poll(poll) => Box::pin(self.finish_poll(poll)),
            };
        Either::Right(other)
    }

    fn answer_first(
        &self,
        first: FirstRead,
        peer: SocketAddr,
        extend: impl FnOnce(&mut http::Extensions),
    ) -> Direct<H> {
        let Some(head) = parse_head(&first.data, |path| self.matches(path)) else {
            return Direct::Handoff(Handoff::Http(first.into_rewind()));
        };
        let Head {
            mut parts,
            len,
            keep_alive,
        } = head;
        parts.extensions.insert(PeerAddr(peer));
        extend(&mut parts.extensions);
        let FirstRead { stream, data } = first;
        let rest = data.slice(len..);
        drop(data);
        let answer = match self.route(&parts) {
            Routed::Answer(answer) => answer,
            // Not for a request with `transport=websocket`; answered all the same.
            polling => {
                return Direct::Poll(Box::new(PollingRequest {
                    routed: polling,
                    parts,
                    stream,
                    rest,
                    keep_alive,
                }));
            }
        };
        self.answer_with(answer, parts, stream, rest, keep_alive)
    }

    fn answer_with(
        &self,
        answer: Answer<H>,
        parts: Parts,
        stream: Stream,
        rest: Bytes,
        keep_alive: bool,
    ) -> Direct<H> {
        let mut out = BytesMut::with_capacity(256);
        if let Some(start) = answer.upgrade {
            // The head of the `101` that `Engine::respond` gives hyper, written here without a
            // response and its header map: the handshake's headers, then the CORS headers.
            drop(answer.reply);
            write_status(StatusCode::SWITCHING_PROTOCOLS, &mut out);
            start.write_headers(&mut out);
            if let Some(cors) = self.cors_for(&parts) {
                crate::http::cors::apply(cors, &parts.headers, &mut HeadLines(&mut out));
            }
            write_date(&mut out);
            return Direct::WebSocket(start.begin(stream, parts, Some(out.freeze()), rest));
        }
        let Answer { reply, .. } = self.with_cors(&parts, answer);
        let close = write_head(&reply, &mut out) || !keep_alive;
        if reply.status() != StatusCode::SWITCHING_PROTOCOLS {
            out.extend_from_slice(reply.body());
        }
        Direct::Write(Write {
            stream,
            out,
            close,
            rest,
        })
    }

    async fn finish_poll(&self, poll: Box<PollingRequest<H>>) -> Handoff {
        let PollingRequest {
            routed,
            parts,
            stream,
            rest,
            keep_alive,
        } = *poll;
        let answer = self
            .poll(routed, &parts, http_body_util::Empty::<Bytes>::new())
            .await;
        match self.answer_with(answer, parts, stream, rest, keep_alive) {
            Direct::WebSocket(begin) => {
                begin.run().await;
                Handoff::Done
            }
            Direct::Write(write) => write.finish().await,
            Direct::Handoff(handoff) => handoff,
            // Polling answers are answers.
            Direct::Poll(_) => Handoff::Done,
        }
    }
}

/// What the direct path made of a first request.
enum Direct<H: Handler> {
    /// An accepted WebSocket handshake, its connection set up.
    WebSocket(Begin<H>),
    Handoff(Handoff),
    /// An answer to write.
    Write(Write),
    /// A polling request, which waits.
    Poll(Box<PollingRequest<H>>),
}

struct PollingRequest<H: Handler> {
    routed: Routed<H>,
    parts: Parts,
    stream: Stream,
    rest: Bytes,
    keep_alive: bool,
}

/// An answer to write on the direct path; then the connection closes or goes to hyper.
struct Write {
    stream: Stream,
    out: BytesMut,
    close: bool,
    rest: Bytes,
}

impl Write {
    async fn finish(self) -> Handoff {
        let Write {
            mut stream,
            out,
            close,
            rest,
        } = self;
        // Flushed: a TLS stream may hold the end of the answer until then.
        if let Err(e) = async {
            stream.write_all(&out).await?;
            stream.flush().await
        }
        .await
        {
            tracing::debug!(error = %e, "answer to a first request not written");
            return Handoff::Done;
        }
        if close {
            let _ = stream.shutdown().await;
            return Handoff::Done;
        }
        Handoff::Http(Rewind::with_prefix(stream, rest))
    }
}

/// Writes a response head as hyper writes it (lower-case names in the map's order, a
/// `content-length` where a body may be, `date` last); returns whether the response closes the
/// connection.
fn write_head(reply: &http::Response<Bytes>, out: &mut BytesMut) -> bool {
    let status = reply.status();
    write_status(status, out);
    let mut close = false;
    let mut has_length = false;
    for (name, value) in reply.headers() {
        if name == header::CONNECTION && has_token(value.as_bytes(), b"close") {
            close = true;
        }
        if name == header::CONTENT_LENGTH {
            has_length = true;
        }
        write_header(name, value, out);
    }
    let code = status.as_u16();
    let informational = status.is_informational();
    if !has_length && !informational && code != 204 && code != 304 {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(reply.body().len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    write_date(out);
    close
}

fn write_status(status: StatusCode, out: &mut BytesMut) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn write_header(name: &HeaderName, value: &HeaderValue, out: &mut BytesMut) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The `date` header, which hyper writes last, and the end of the head.
fn write_date(out: &mut BytesMut) {
    out.extend_from_slice(b"date: ");
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        let now = SystemTime::now();
        let secs = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == cached.1.len() {
                cached.1.copy_from_slice(text.as_bytes());
                cached.0 = secs;
            }
        }
        out.extend_from_slice(&cached.1);
    });
    out.extend_from_slice(b"\r\n\r\n");
}

/// Header lines written straight into a head, in the order given. Inserting and appending are
/// the same here: it serves heads whose names are all distinct, as the `101`'s are.
struct HeadLines<'a>(&'a mut BytesMut);

impl crate::http::cors::HeaderSink for HeadLines<'_> {
    fn insert(&mut self, name: HeaderName, value: HeaderValue) {
        write_header(&name, &value, self.0);
    }

    fn append(&mut self, name: HeaderName, value: HeaderValue) {
        write_header(&name, &value, self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Option<Head> {
        parse_head(&Bytes::copy_from_slice(text.as_bytes()), |p| {
            p == "/io" || p.starts_with("/io/")
        })
    }

    const UPGRADE: &str = "GET /io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn a_whole_websocket_handshake_is_taken() {
        let h = head(UPGRADE).expect("taken");
        assert_eq!(h.len, UPGRADE.len());
        assert!(h.keep_alive);
        assert_eq!(h.parts.uri.path(), "/io/");
        assert_eq!(h.parts.uri.query(), Some("EIO=4&transport=websocket"));
        assert_eq!(h.parts.headers["sec-websocket-version"], "13");
        assert_eq!(h.parts.headers.len(), 5);
        // What follows the head is left for the connection.
        let mut more = UPGRADE.to_string();
        more.push_str("\u{1}abc");
        assert_eq!(head(&more).expect("taken").len, UPGRADE.len());
    }

    #[test]
    fn everything_else_goes_to_hyper() {
        let cases = [
            // Partial.
            &UPGRADE[..UPGRADE.len() - 2],
            // Another path, method, transport, version.
            &UPGRADE.replace("/io/", "/api/"),
            &UPGRADE.replace("GET", "POST"),
            &UPGRADE.replace("transport=websocket", "transport=polling"),
            &UPGRADE.replace("HTTP/1.1", "HTTP/1.0"),
            // Not an upgrade, or to something else.
            &UPGRADE.replace("Upgrade: websocket\r\n", ""),
            &UPGRADE.replace("Upgrade: websocket", "Upgrade: h2c"),
            // A body.
            &UPGRADE.replace("Host: x", "Host: x\r\nContent-Length: 0"),
            &UPGRADE.replace("Host: x", "Host: x\r\nTransfer-Encoding: chunked"),
            // Malformed.
            &UPGRADE.replace("Host: x", "Ho st: x"),
        ];
        for case in cases {
            assert!(head(case).is_none(), "{case:?}");
        }
        let many: String = (0..MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert!(head(&UPGRADE.replace("Host: x\r\n", &many)).is_none());
    }

    #[test]
    fn connection_close_is_seen() {
        let h = head(&UPGRADE.replace("Connection: Upgrade", "Connection: Upgrade, close"));
        assert!(!h.expect("taken").keep_alive);
    }

    #[test]
    fn heads_are_written_like_hyper() {
        let mut reply = http::Response::new(Bytes::from_static(b"{}"));
        *reply.status_mut() = StatusCode::BAD_REQUEST;
        reply.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let mut out = BytesMut::new();
        assert!(!write_head(&reply, &mut out));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                 content-length: 2\r\ndate: "
            ),
            "{text}"
        );
        assert!(text.ends_with(" GMT\r\n\r\n"), "{text}");

        let mut reply = http::Response::new(Bytes::new());
        *reply.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        reply
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let mut out = BytesMut::new();
        assert!(!write_head(&reply, &mut out));
        let text = std::str::from_utf8(&out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\ndate: ")
        );
        assert!(!text.contains("content-length"));

        reply
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(write_head(&reply, &mut BytesMut::new()));
    }
}
