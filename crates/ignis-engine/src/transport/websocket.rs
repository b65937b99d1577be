//! The WebSocket transport's opening: the handshake (with permessage-deflate negotiation), the
//! probe of an upgrade from polling, and the setup of the connection that
//! [`crate::transport::driver`] then runs.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use ignis_ws::OpCode;
use ignis_ws::deflate::Negotiated;
use tokio::net::TcpStream;

use crate::engine::{Handler, Inner, RequestInfo, open_session};
use crate::session::{Socket, TransportKind};
use crate::transport::connection::Stop;
use crate::transport::driver::Driver;
use crate::transport::rewind::Rewind;
use crate::transport::stream::Stream;

type Reply = Response<Bytes>;

/// What the engine answers a request with.
pub(crate) struct Answer<H: Handler> {
    pub(crate) reply: Reply,
    /// For an accepted WebSocket handshake (`reply` is the `101`): how its connection starts.
    pub(crate) upgrade: Option<Start<H>>,
}

impl<H: Handler> From<Reply> for Answer<H> {
    fn from(reply: Reply) -> Self {
        Answer {
            reply,
            upgrade: None,
        }
    }
}

/// How a WebSocket connection starts.
pub(crate) enum Mode<D> {
    /// A new session over WebSocket, for a handshake received at `time` from `peer`.
    Fresh {
        peer: Option<std::net::SocketAddr>,
        time: std::time::SystemTime,
    },
    /// An upgrade of this polling session, to be probed first.
    Probe(Arc<Socket<D>>),
    /// A second upgrade of a session that already has (or is probing) a WebSocket: closed as
    /// soon as it opens.
    Refused,
}

fn bad_request() -> Reply {
    crate::error::EngineError::BadRequest.response()
}

/// Answers a WebSocket handshake: the `101` and how the connection starts, or the refusal.
pub(crate) fn accept<H: Handler>(
    inner: &Arc<Inner<H>>,
    parts: &Parts,
    mode: Mode<H::Data>,
) -> Answer<H> {
    let headers = &parts.headers;
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return bad_request().into();
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return bad_request().into();
    }
    let accept = ignis_ws::handshake::accept_key_bytes(key.as_bytes());
    let negotiated = match (
        &inner.compression,
        headers.get(header::SEC_WEBSOCKET_EXTENSIONS),
    ) {
        (Some(c), Some(offer)) => {
            match ignis_ws::deflate::accept_offer(offer.as_bytes(), &c.config) {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(error = %e, "bad permessage-deflate offer");
                    return bad_request().into();
                }
            }
        }
        _ => None,
    };

    let (extensions, params) = match negotiated {
        Some(accepted) => (
            HeaderValue::from_str(&accepted.header).ok(),
            Some(accepted.params),
        ),
        None => (None, None),
    };
    // The `101` carries no headers of its own: those of the handshake stay in `Start` until a
    // path writes them (see `Start::add_headers`).
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    Answer {
        reply: res,
        upgrade: Some(Start {
            inner: Arc::clone(inner),
            mode,
            params,
            accept,
            extensions,
        }),
    }
}

/// An accepted WebSocket handshake, waiting for its connection.
pub(crate) struct Start<H: Handler> {
    inner: Arc<Inner<H>>,
    mode: Mode<H::Data>,
    params: Option<Negotiated>,
    /// `Sec-WebSocket-Accept`.
    accept: [u8; 28],
    /// `Sec-WebSocket-Extensions`, when permessage-deflate was negotiated.
    extensions: Option<HeaderValue>,
}

impl<H: Handler> Start<H> {
    /// Adds the headers of the `101` to its response, for hyper to write; before any other, so
    /// that they come first as in [`Start::write_headers`].
    pub(crate) fn add_headers(&self, h: &mut http::HeaderMap) {
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(v) = HeaderValue::from_bytes(&self.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        if let Some(v) = &self.extensions {
            h.insert(header::SEC_WEBSOCKET_EXTENSIONS, v.clone());
        }
    }

    /// Writes the header lines of [`Start::add_headers`] as hyper writes them, for a head written
    /// without a response: the direct path's `101` needs no header map.
    pub(crate) fn write_headers(&self, out: &mut BytesMut) {
        out.extend_from_slice(
            b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ",
        );
        out.extend_from_slice(&self.accept);
        out.extend_from_slice(b"\r\n");
        if let Some(v) = &self.extensions {
            out.extend_from_slice(b"sec-websocket-extensions: ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Starts the connection once hyper has written the `101` and handed the socket over.
    pub(crate) fn spawn_after(self, upgrade: hyper::upgrade::OnUpgrade, mut parts: Parts) {
        // The connection's per-IP place, which its task gives up once hyper hands the socket
        // over: this task keeps it from then on.
        let permit = parts.extensions.remove::<crate::ConnectionPermit>();
        tokio::spawn(async move {
            let _permit = permit;
            let upgraded = match upgrade.await {
                Ok(u) => u,
                Err(e) => {
                    tracing::debug!(error = %e, "websocket upgrade failed");
                    return;
                }
            };
            let (stream, early) = match upgraded.downcast::<TokioIo<TcpStream>>() {
                // Bytes the client sent right after its handshake; the rest of hyper's read
                // buffer must not stay alive with the connection (it is 8 KiB per idle socket
                // otherwise).
                Ok(parts) => (
                    Stream::Tcp(parts.io.into_inner()),
                    Bytes::copy_from_slice(&parts.read_buf),
                ),
                Err(upgraded) => match upgraded.downcast::<TokioIo<Rewind>>() {
                    Ok(parts) => {
                        let (stream, unread) = parts.io.into_inner().into_parts();
                        // hyper read ahead of what the rewind had left, if anything.
                        let mut early =
                            BytesMut::with_capacity(parts.read_buf.len() + unread.len());
                        early.extend_from_slice(&parts.read_buf);
                        early.extend_from_slice(&unread);
                        (stream, early.freeze())
                    }
                    Err(_) => {
                        tracing::error!(
                            "websocket upgrade on a connection the engine did not accept"
                        );
                        return;
                    }
                },
            };
            match self.begin(stream, parts, None, early).start() {
                Ok(run) => run.await,
                Err(end) => (*end).run().await,
            }
        });
    }

    /// Sets the connection up on `stream`: opens the session (or takes the one probed), queues
    /// `head` first (the `101` when this server answered the handshake itself), and handles
    /// `early`, what the client sent after its handshake. Synchronous, so that the task of an
    /// idle connection holds the state of [`Begin::run`] only.
    pub(crate) fn begin(
        self,
        stream: Stream,
        parts: Parts,
        head: Option<Bytes>,
        early: Bytes,
    ) -> Begin<H> {
        let Start {
            inner,
            mode,
            params,
            ..
        } = self;
        let (socket, probing) = match mode {
            Mode::Refused => {
                let close = ignis_ws::server_frame(OpCode::Close, &[]);
                let mut out = BytesMut::new();
                if let Some(head) = &head {
                    out.extend_from_slice(head);
                }
                out.extend_from_slice(&close);
                return Begin(Setup::Refuse(stream, out.freeze()));
            }
            Mode::Fresh { peer, time } => {
                let info = RequestInfo { parts, peer, time };
                (open_session(&inner, TransportKind::WebSocket, &info), false)
            }
            Mode::Probe(socket) => {
                drop(parts);
                (socket, true)
            }
        };
        match Driver::new(inner, socket, stream, params, probing, head, &early) {
            Ok(driver) => Begin(Setup::Run(driver)),
            Err(ended) => {
                let (driver, stop) = *ended;
                Begin(Setup::Stop(driver, stop))
            }
        }
    }
}

/// A WebSocket connection set up (see [`Start::begin`]).
pub(crate) struct Begin<H: Handler>(Setup<H>);

enum Setup<H: Handler> {
    Run(Driver<H>),
    /// What the client sent with its handshake already ended it.
    Stop(Driver<H>, Stop),
    /// A refused upgrade: these bytes, then the end.
    Refuse(Stream, Bytes),
}

impl<H: Handler> Begin<H> {
    /// The connection's own future, when it runs normally: awaited as it is, the caller's task
    /// holds nothing else for the connection's life. The rare other ends come back, for
    /// [`Begin::run`].
    pub(crate) fn start(self) -> Result<impl Future<Output = ()> + Send + 'static, Box<Self>> {
        match self.0 {
            Setup::Run(driver) => Ok(driver.run()),
            other => Err(Box::new(Begin(other))),
        }
    }

    /// Runs the connection until it ends.
    pub(crate) async fn run(self) {
        match self.0 {
            Setup::Run(driver) => driver.run().await,
            // The rare ends are boxed: the task of every connection is as large as the largest.
            Setup::Stop(driver, stop) => Box::pin(driver.run_or_end(Some(stop))).await,
            Setup::Refuse(mut stream, out) => {
                Box::pin(async move {
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, &out).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
                })
                .await
            }
        }
    }
}
