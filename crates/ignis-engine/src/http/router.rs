//! The engine's answer to one HTTP request: checks (protocol version, transport, CORS,
//! `allow_request`), then the handshake, a polling request, or a WebSocket upgrade.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Body;

use crate::engine::{Engine, Handler, PeerAddr, RequestInfo, open_session};
use crate::error::EngineError;
use crate::http::body::ResponseBody;
use crate::http::cors;
use crate::session::{CloseReason, Socket, TransportKind};
use crate::sid::Sid;
use crate::transport::websocket::Answer;
use crate::transport::{polling, websocket};

/// The header of a long-polling handshake's answer that names the new session (its `sid`),
/// for load balancers that stick sessions to nodes (see `deploy/haproxy.cfg`).
pub const SESSION_ID_HEADER: &str = "ignis-sid";

type Reply = Response<Bytes>;

/// What [`Engine::route`] decided.
pub(crate) enum Routed<H: Handler> {
    Answer(Answer<H>),
    /// A GET of a polling session, which waits for data.
    PollingGet(Arc<Socket<H::Data>>),
    /// A POST of a polling session, whose body is read.
    PollingPost(Arc<Socket<H::Data>>),
    /// A polling handshake: the session to open.
    PollingOpen(RequestInfo),
}

impl<H: Handler> From<Answer<H>> for Routed<H> {
    fn from(answer: Answer<H>) -> Self {
        Routed::Answer(answer)
    }
}

impl<H: Handler> From<Reply> for Routed<H> {
    fn from(reply: Reply) -> Self {
        Routed::Answer(reply.into())
    }
}

fn empty(status: StatusCode) -> Reply {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = status;
    res
}

impl<H: Handler> Engine<H> {
    /// Answers one HTTP request addressed to the engine (see [`Engine::matches`]).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut req = req;
        let upgrade = hyper::upgrade::on(&mut req);
        let (parts, body) = req.into_parts();
        let answer = self.respond(&parts, body).await;
        if let Some(start) = answer.upgrade {
            start.spawn_after(upgrade, parts);
        }
        let (mut head, body) = answer.reply.into_parts();
        let body = if head
            .extensions
            .remove::<crate::http::body::Chunked>()
            .is_some()
        {
            ResponseBody::chunked(body)
        } else {
            ResponseBody::new(body)
        };
        Response::from_parts(head, body)
    }

    /// The answer to a request, CORS headers included, and for an accepted WebSocket handshake
    /// how its connection starts. Both the hyper path ([`Engine::handle`]) and the direct path
    /// of [`Engine::serve_direct`] go through [`Engine::route`], so they apply the same checks.
    pub(crate) async fn respond<B>(&self, parts: &Parts, body: B) -> Answer<H>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut answer = match self.route(parts) {
            Routed::Answer(answer) => answer,
            polling => self.poll(polling, parts, body).await,
        };
        if let Some(start) = &answer.upgrade {
            start.add_headers(answer.reply.headers_mut());
        }
        self.with_cors(parts, answer)
    }

    /// Adds the CORS headers every answer but a preflight carries.
    pub(crate) fn with_cors(&self, parts: &Parts, mut answer: Answer<H>) -> Answer<H> {
        if let Some(cors) = self.cors_for(parts) {
            cors::apply(cors, &parts.headers, answer.reply.headers_mut());
        }
        answer
    }

    /// The CORS settings that apply to the answer to a request (none to a preflight's, which
    /// `route` gave its own).
    pub(crate) fn cors_for(&self, parts: &Parts) -> Option<&crate::config::Cors> {
        self.inner
            .config
            .cors
            .as_ref()
            .filter(|_| parts.method != Method::OPTIONS)
    }

    /// The polling requests that [`Engine::route`] leaves to answer.
    pub(crate) async fn poll<B>(&self, routed: Routed<H>, parts: &Parts, body: B) -> Answer<H>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let inner = &self.inner;
        match routed {
            Routed::Answer(answer) => answer,
            Routed::PollingGet(socket) => polling::get(inner, &socket, parts).await.into(),
            Routed::PollingPost(socket) => polling::post(inner, &socket, parts, body).await.into(),
            Routed::PollingOpen(info) => {
                let socket = open_session(inner, TransportKind::Polling, &info);
                polling::spawn_driver(Arc::clone(inner), Arc::clone(&socket));
                let mut reply = polling::get(inner, &socket, &info.parts).await;
                // The session's id in a header too, where a load balancer can read it: one
                // that sticks sessions to their node by id learns the node from this answer,
                // not from the session's first request, which could be balanced elsewhere if
                // the pool changed in between.
                if let Ok(sid) = HeaderValue::from_str(socket.id().as_str()) {
                    reply.headers_mut().insert(SESSION_ID_HEADER, sid);
                }
                reply.into()
            }
        }
    }

    /// Every check of a request, and its answer unless it is a polling request (which waits).
    pub(crate) fn route(&self, parts: &Parts) -> Routed<H> {
        let inner = &self.inner;
        if parts.method == Method::OPTIONS
            && let Some(cors) = &inner.config.cors
        {
            let mut res = empty(
                StatusCode::from_u16(cors.options_success_status).unwrap_or(StatusCode::NO_CONTENT),
            );
            cors::apply_preflight(cors, &parts.headers, res.headers_mut());
            return res.into();
        }
        let query = Query::parse(parts.uri.query().unwrap_or(""));
        let is_upgrade = is_websocket_upgrade(parts);

        let transport = match query.transport.as_deref() {
            Some("polling") if inner.config.transports.polling => TransportKind::Polling,
            Some("websocket") if inner.config.transports.websocket => TransportKind::WebSocket,
            _ => return refuse(EngineError::UnknownTransport, is_upgrade).into(),
        };

        if let Some(sid) = &query.sid {
            let Some(socket) = Sid::parse(sid).and_then(|sid| self.session(sid)) else {
                return refuse(EngineError::UnknownSid, is_upgrade).into();
            };
            if query.eio.as_deref() != Some("4") {
                return EngineError::BadRequest.response().into();
            }
            // A session whose pong is overdue is dead even if its timer has not fired yet.
            if inner.heartbeat_expired(&socket) {
                inner.finalize(&socket, CloseReason::PingTimeout);
                return refuse(EngineError::UnknownSid, is_upgrade).into();
            }
            return match (transport, is_upgrade) {
                (TransportKind::WebSocket, true) => {
                    if !inner.config.allow_upgrades {
                        return refuse(EngineError::BadRequest, true).into();
                    }
                    if socket.transport() != TransportKind::Polling || socket.is_upgrading() {
                        // Like the reference: the handshake completes, then the new WebSocket
                        // is closed at once and the session goes on untouched.
                        return websocket::accept(inner, parts, websocket::Mode::Refused).into();
                    }
                    if let Err(e) = self.allow(parts) {
                        return e.response().into();
                    }
                    websocket::accept(inner, parts, websocket::Mode::Probe(socket)).into()
                }
                (TransportKind::Polling, false) if socket.transport() == TransportKind::Polling => {
                    match parts.method {
                        Method::GET => Routed::PollingGet(socket),
                        Method::POST => Routed::PollingPost(socket),
                        // What the reference answers; the session is kept.
                        _ => empty(StatusCode::INTERNAL_SERVER_ERROR).into(),
                    }
                }
                _ => EngineError::BadRequest.response().into(),
            };
        }

        // A handshake.
        if parts.method != Method::GET {
            return EngineError::BadHandshakeMethod.response().into();
        }
        if transport == TransportKind::WebSocket && !is_upgrade {
            return EngineError::BadRequest.response().into();
        }
        if inner.refuse_new_sessions.load(Ordering::Acquire) {
            return refuse(EngineError::Draining, is_upgrade).into();
        }
        let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
        if let (Some(limiter), Some(peer)) = (&inner.ip_limiter, peer)
            && let Err(e) = limiter.handshake(peer.ip())
        {
            tracing::debug!(%peer, error = %e, "handshake refused");
            return EngineError::TooManyRequests.response().into();
        }
        if let Err(e) = self.allow(parts) {
            return e.response().into();
        }
        if query.eio.as_deref() != Some("4") {
            return EngineError::UnsupportedProtocolVersion.response().into();
        }
        let time = SystemTime::now();
        match transport {
            TransportKind::Polling => Routed::PollingOpen(RequestInfo {
                peer,
                parts: parts.clone(),
                time,
            }),
            TransportKind::WebSocket => {
                websocket::accept(inner, parts, websocket::Mode::Fresh { peer, time }).into()
            }
        }
    }

    fn allow(&self, parts: &Parts) -> Result<(), EngineError> {
        match &self.inner.config.allow_request {
            Some(hook) => hook(parts).map_err(|message| {
                tracing::debug!(%message, "request refused by allow_request");
                EngineError::Forbidden
            }),
            None => Ok(()),
        }
    }
}

/// Refuses a request. A refused WebSocket upgrade gets a bare text answer, as the reference
/// writes it straight to the socket.
fn refuse(error: EngineError, upgrade: bool) -> Reply {
    if !upgrade {
        return error.response();
    }
    let mut res = Response::new(Bytes::from(error.to_string()));
    *res.status_mut() = error.status();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    res.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}

fn is_websocket_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The query parameters the engine reads (the last of each, like the reference).
#[derive(Debug, Default)]
pub(crate) struct Query<'a> {
    pub(crate) eio: Option<Cow<'a, str>>,
    pub(crate) transport: Option<Cow<'a, str>>,
    pub(crate) sid: Option<Cow<'a, str>>,
}

impl<'a> Query<'a> {
    pub(crate) fn parse(query: &'a str) -> Query<'a> {
        let mut q = Query::default();
        for (k, v) in crate::query::query_pairs(query) {
            match k.as_ref() {
                "EIO" => q.eio = Some(v),
                "transport" => q.transport = Some(v),
                "sid" => q.sid = Some(v),
                _ => {}
            }
        }
        q
    }
}
