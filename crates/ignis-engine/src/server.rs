//! The engine: request routing, the handshake, and the session table.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Body;
use ignis_proto::engineio::{Data, OpenInfo, Packet, Str};
use parking_lot::RwLock;
use tokio::net::TcpListener;

use crate::abuse::{AbuseCounters, ConnectionPermit, Counters, IpLimiter, IpRefusal};
use crate::body::ResponseBody;
use crate::config::EngineConfig;
use crate::error::EngineError;
use crate::sid::{Sid, SidMap};
use crate::socket::{CloseReason, QueueLimits, Socket, TransportKind};
use crate::websocket::Compression;
use crate::{cors, polling, websocket};

/// The peer address of a request, as a request extension. [`Engine::serve`] inserts it; an
/// application that embeds the engine in its own server should insert it too.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What the engine tells the layer above about the request that opened a session.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub parts: Parts,
    pub peer: Option<SocketAddr>,
    /// When the handshake was received.
    pub time: SystemTime,
}

/// The layer above the engine (Socket.IO, or a plain Engine.IO application).
///
/// The callbacks run on the task that received the data, in order for each session; they must
/// not block. Work that waits belongs in a task of its own.
pub trait Handler: Send + Sync + 'static {
    /// State kept in every session for the layer above.
    type Data: Send + Sync + 'static;
    fn create_data(&self) -> Self::Data;
    fn on_open(&self, socket: &Arc<Socket<Self::Data>>, request: &RequestInfo);
    fn on_message(&self, socket: &Arc<Socket<Self::Data>>, data: Data);
    fn on_close(&self, socket: &Arc<Socket<Self::Data>>, reason: CloseReason);
    /// Queues what the layer above has sent and not queued yet (broadcasts it defers), before a
    /// polling request takes a session's queue: a poll then carries everything sent before it.
    fn settle(&self) {}
}

/// The open sessions, by id.
pub(crate) type Sessions<D> = SidMap<Arc<Socket<D>>>;

pub(crate) struct Inner<H: Handler> {
    pub(crate) config: EngineConfig,
    pub(crate) path: String,
    pub(crate) handler: H,
    pub(crate) sessions: RwLock<Sessions<H::Data>>,
    pub(crate) compression: Option<Arc<Compression>>,
    /// The limits of the engine that were hit, counted.
    pub(crate) counters: Arc<Counters>,
    /// The per-IP limits, when one is set.
    ip_limiter: Option<Arc<IpLimiter>>,
    /// The open packet's JSON after the sid, for sessions that may upgrade and for the others:
    /// the same for every session, so encoded once instead of per handshake.
    open_tail: [String; 2],
}

/// An Engine.IO server. Cheap to clone: clones share the same sessions.
pub struct Engine<H: Handler> {
    pub(crate) inner: Arc<Inner<H>>,
}

impl<H: Handler> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Engine {
            inner: Arc::clone(&self.inner),
        }
    }
}

type Reply = Response<Bytes>;

/// What the engine answers a request with.
pub(crate) struct Answer<H: Handler> {
    pub(crate) reply: Reply,
    /// For an accepted WebSocket handshake (`reply` is the `101`): how its connection starts.
    pub(crate) upgrade: Option<websocket::Start<H>>,
}

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

impl<H: Handler> From<Reply> for Answer<H> {
    fn from(reply: Reply) -> Self {
        Answer {
            reply,
            upgrade: None,
        }
    }
}

fn empty(status: StatusCode) -> Reply {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = status;
    res
}

impl<H: Handler> Engine<H> {
    pub fn new(config: EngineConfig, handler: H) -> Self {
        let path = config.normalized_path();
        let compression = config
            .per_message_deflate
            .clone()
            .map(|options| Arc::new(Compression::new(options)));
        let open_tail = [open_tail(&config, false), open_tail(&config, true)];
        let counters = Arc::<Counters>::default();
        let ip_limiter = IpLimiter::new(&config, Arc::clone(&counters));
        Engine {
            inner: Arc::new(Inner {
                config,
                path,
                handler,
                sessions: RwLock::new(SidMap::default()),
                compression,
                counters,
                ip_limiter,
                open_tail,
            }),
        }
    }

    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Whether a request path belongs to the engine.
    pub fn matches(&self, path: &str) -> bool {
        let base = self.inner.path.trim_end_matches('/');
        path == base || path.starts_with(&self.inner.path)
    }

    /// The session with this id, if it is open on this server.
    pub fn session(&self, sid: Sid) -> Option<Arc<Socket<H::Data>>> {
        self.inner.sessions.read().get(&sid).cloned()
    }

    /// How many times each limit of the engine was hit since it started.
    pub fn abuse_counters(&self) -> AbuseCounters {
        self.inner.counters.snapshot()
    }

    /// Counts a new connection from `peer` against the per-IP connection limit: `Ok(None)`
    /// when there is no limit, a permit to keep for the connection's life when there is one,
    /// an error (counted) when `peer` has too many connections already (close it).
    pub fn admit_connection(
        &self,
        peer: std::net::IpAddr,
    ) -> Result<Option<ConnectionPermit>, IpRefusal> {
        match &self.inner.ip_limiter {
            None => Ok(None),
            Some(limiter) => limiter.connect(peer),
        }
    }

    /// The limits [`crate::serve_http`] applies for this engine: `head_timeout`, the engine's
    /// `body_timeout`, and what they refuse counted in [`Engine::abuse_counters`].
    pub fn http_limits(&self, head_timeout: Duration) -> crate::http::HttpLimits {
        crate::http::HttpLimits::with_counters(
            head_timeout,
            self.inner.config.body_timeout,
            Arc::clone(&self.inner.counters),
        )
    }

    pub fn session_count(&self) -> usize {
        self.inner.sessions.read().len()
    }

    /// Closes every session with the reason "server shutting down".
    pub fn close_all(&self) {
        let sessions: Vec<_> = self.inner.sessions.read().values().cloned().collect();
        for socket in sessions {
            socket.request_close(CloseReason::ServerShuttingDown);
        }
    }

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
        let body = if head.extensions.remove::<crate::body::Chunked>().is_some() {
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
                polling::get(inner, &socket, &info.parts).await.into()
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
                    if socket.transport() != TransportKind::Polling
                        || socket.upgrading.load(std::sync::atomic::Ordering::Acquire)
                    {
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

    /// Serves HTTP/1.1 on `listener` until the task is dropped. Requests outside the engine's
    /// path get `404`.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_with(listener, |_req| async {
            let mut res = Response::new(ResponseBody::from("Not Found"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        })
        .await
    }

    /// Serves HTTP/1.1 on `listener`, passing requests outside the engine's path to `fallback`.
    /// A connection that opens with a WebSocket handshake for the engine is served without
    /// hyper (see [`Engine::serve_direct`]); the others through [`crate::serve_http`], with the
    /// engine's `request_head_timeout` and `body_timeout`. The per-IP connection limit closes
    /// connections as they are accepted. `fallback` gets its request's body as hyper gives it,
    /// without the deadline (an application that wants it serves its connections with
    /// [`crate::serve_http`] itself).
    pub async fn serve_with<F, Fut>(self, listener: TcpListener, fallback: F) -> std::io::Result<()>
    where
        F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Running out of file descriptors must not end the server: wait and retry.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match self.admit_connection(peer.ip()) {
                Ok(permit) => permit,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection refused");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // Without a limit the task is the connection alone (an idle WebSocket's task keeps
            // whatever it holds for its life).
            let (engine, fallback) = (self.clone(), fallback.clone());
            match permit {
                None => tokio::spawn(engine.serve_connection(stream, peer, fallback, ())),
                Some(permit) => {
                    tokio::spawn(engine.serve_connection(stream, peer, fallback, permit))
                }
            };
        }
    }

    /// Serves one connection of [`Engine::serve_with`].
    // Not an `async fn`: one keeps a moved copy of its arguments beside them, and this future
    // is the task of every idle WebSocket connection.
    #[allow(clippy::manual_async_fn)]
    fn serve_connection<F, Fut, G: crate::abuse::ConnectionGuard>(
        self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        fallback: F,
        guard: G,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        async move {
            let first = tokio::time::timeout(
                self.inner.config.request_head_timeout,
                crate::direct::read_first(stream),
            )
            .await;
            let Some(first) = first.ok().flatten() else {
                return;
            };
            let io = match self.serve_direct(first, peer, |_| {}).await {
                crate::direct::Handoff::Done => return,
                crate::direct::Handoff::Http(io) => io,
            };
            // Boxed: an idle WebSocket connection served above keeps a task the size of its own
            // state, not of hyper's.
            Box::pin(async move {
                let limits = self.http_limits(self.inner.config.request_head_timeout);
                let engine = self;
                let service = move |mut req: Request<crate::http::TimedBody>| {
                    let engine = engine.clone();
                    let fallback = fallback.clone();
                    guard.attach(req.extensions_mut());
                    async move {
                        req.extensions_mut().insert(PeerAddr(peer));
                        if engine.matches(req.uri().path()) {
                            engine.handle(req).await
                        } else {
                            fallback(req.map(crate::http::TimedBody::into_inner)).await
                        }
                    }
                };
                crate::http::serve_http(io, &limits, service, std::future::pending()).await;
            })
            .await;
        }
    }
}

/// How the JSON of an open packet starts, up to the sid's value.
const OPEN_HEAD: &str = "{\"sid\":\"";

/// The JSON of the open packet of this configuration after the sid's value, as
/// `OpenInfo::to_packet` encodes it (an empty sid encodes to [`OPEN_HEAD`] and a quote).
fn open_tail(config: &EngineConfig, may_upgrade: bool) -> String {
    let upgrades = if may_upgrade {
        vec!["websocket".to_string()]
    } else {
        Vec::new()
    };
    let open = OpenInfo {
        sid: String::new(),
        upgrades,
        ping_interval: config.ping_interval.as_millis() as u64,
        ping_timeout: config.ping_timeout.as_millis() as u64,
        max_payload: config.max_http_buffer_size as u64,
    };
    let Packet::Open(json) = open.to_packet() else {
        return String::new();
    };
    json.strip_prefix(OPEN_HEAD).unwrap_or_default().to_string()
}

/// The open packet of a session: what `OpenInfo::to_packet` writes, from the configuration's
/// [`open_tail`] (a sid is URL-safe base64, which JSON takes as it is).
fn open_packet(sid: Sid, tail: &str) -> Packet {
    let mut json = String::with_capacity(OPEN_HEAD.len() + 20 + tail.len());
    json.push_str(OPEN_HEAD);
    json.push_str(sid.as_str());
    json.push_str(tail);
    Packet::Open(Str::from(json))
}

pub(crate) fn open_session<H: Handler>(
    inner: &Arc<Inner<H>>,
    transport: TransportKind,
    info: &RequestInfo,
) -> Arc<Socket<H::Data>> {
    let config = &inner.config;
    let sid = Sid::generate();
    let socket = Arc::new(Socket::new(
        sid,
        inner.handler.create_data(),
        transport,
        QueueLimits::new(config.max_queued_messages, config.max_queued_bytes),
    ));
    let may_upgrade =
        transport == TransportKind::Polling && config.allow_upgrades && config.transports.websocket;
    let _ = socket.push_packet(open_packet(sid, &inner.open_tail[usize::from(may_upgrade)]));
    socket
        .last_pong_ms
        .store(0, std::sync::atomic::Ordering::Release);
    inner.sessions.write().insert(sid, Arc::clone(&socket));
    tracing::debug!(%sid, ?transport, "session opened");
    inner.handler.on_open(&socket, info);
    socket
}

impl<H: Handler> Inner<H> {
    /// Ends a session for good: the one place where sessions leave the table.
    pub(crate) fn finalize(&self, socket: &Arc<Socket<H::Data>>, reason: CloseReason) {
        if socket.mark_closed(reason) {
            if reason == CloseReason::SlowClient {
                Counters::bump(if socket.closed_by_bytes() {
                    &self.counters.queue_full_bytes
                } else {
                    &self.counters.queue_full_messages
                });
            }
            self.sessions.write().remove(&socket.id());
            tracing::debug!(sid = %socket.id(), reason = reason.as_str(), "session closed");
            self.handler.on_close(socket, reason);
        }
    }

    /// Whether the client failed to answer a ping in time.
    pub(crate) fn heartbeat_expired(&self, socket: &Socket<H::Data>) -> bool {
        let (at_ms, what) = self.next_deadline(socket);
        what == Deadline::PingTimeout && socket.created.elapsed().as_millis() as u64 >= at_ms
    }

    /// When the next heartbeat or timeout is due, in milliseconds since the socket was created,
    /// and what happens then.
    pub(crate) fn next_deadline(&self, socket: &Socket<H::Data>) -> (u64, Deadline) {
        use std::sync::atomic::Ordering;
        let cfg = &self.config;
        let last_pong = socket.last_pong_ms.load(Ordering::Acquire);
        let mut best = if socket.awaiting_pong.load(Ordering::Acquire) {
            (
                last_pong + (cfg.ping_interval + cfg.ping_timeout).as_millis() as u64,
                Deadline::PingTimeout,
            )
        } else {
            (
                last_pong + cfg.ping_interval.as_millis() as u64,
                Deadline::SendPing,
            )
        };
        if let Some(timeout) = cfg.establish_timeout
            && !socket.is_established()
        {
            let at = timeout.as_millis() as u64;
            if at < best.0 {
                best = (at, Deadline::Establish);
            }
        }
        best
    }

    /// Runs whatever is due at a deadline. Returns false if the session closed.
    pub(crate) fn on_deadline(&self, socket: &Arc<Socket<H::Data>>, what: Deadline) -> bool {
        use std::sync::atomic::Ordering;
        match what {
            Deadline::SendPing => {
                socket.awaiting_pong.store(true, Ordering::Release);
                let _ = socket.push_packet(ignis_proto::engineio::Packet::Ping(Default::default()));
                true
            }
            Deadline::PingTimeout => {
                self.finalize(socket, CloseReason::PingTimeout);
                false
            }
            Deadline::Establish => {
                socket.request_close(CloseReason::EstablishTimeout);
                true
            }
        }
    }
}

/// What a session's timer is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deadline {
    SendPing,
    PingTimeout,
    Establish,
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

pub(crate) fn content_type(res: &mut Reply, value: &'static str) {
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_packets_are_those_of_open_info() {
        let mut config = EngineConfig {
            ping_interval: Duration::from_millis(1234),
            max_http_buffer_size: 77,
            ..EngineConfig::default()
        };
        for may_upgrade in [false, true] {
            config.ping_timeout = Duration::from_millis(if may_upgrade { 5 } else { 50_000 });
            let sid = Sid::generate();
            let packet = open_packet(sid, &open_tail(&config, may_upgrade));
            let expected = OpenInfo {
                sid: sid.to_string(),
                upgrades: if may_upgrade {
                    vec!["websocket".into()]
                } else {
                    Vec::new()
                },
                ping_interval: 1234,
                ping_timeout: config.ping_timeout.as_millis() as u64,
                max_payload: 77,
            };
            assert_eq!(packet, expected.to_packet());
        }
    }
}
