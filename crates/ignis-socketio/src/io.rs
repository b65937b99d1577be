//! The server: configuration, namespaces, and serving HTTP.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Body;
use ignis_engine::{Cors, Engine, EngineConfig, PerMessageDeflate, ResponseBody, Transports};
use parking_lot::RwLock;

use crate::EmitError;
use crate::adapter::{AdapterFactory, MemoryAdapter};
use crate::engine_handler::IoHandler;
use crate::fanout::Fanout;
use crate::limits::{AbuseCounters, EventRate, Limits, SocketLimits};
use crate::namespace::Namespace;
use crate::observer::{Observers, SocketObserver};
use crate::operators::Operators;
use crate::outbound::IntoArgs;
use crate::outbound::ParserKind;
use crate::recovery::{Recovery, RecoveryConfig};
use crate::socket::{DisconnectReason, IntoRooms, SocketRef};
use crate::stats::IoStats;
use ignis_proto::Value;

/// Decides whether a namespace name that was not declared may be created on the fly.
type NamespaceMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct DynamicNamespace {
    matcher: NamespaceMatcher,
    /// Holds the middlewares and connection handler every child gets.
    template: Arc<Namespace>,
}

pub(crate) struct IoInner {
    pub(crate) parser: ParserKind,
    recovery: Option<RecoveryConfig>,
    adapter: Arc<dyn AdapterFactory>,
    namespaces: RwLock<HashMap<String, Arc<Namespace>>>,
    dynamic: RwLock<Vec<DynamicNamespace>>,
    pub(crate) limits: Arc<Limits>,
    /// The broadcasts of this server not queued yet, shared by its namespaces.
    pub(crate) fanout: Arc<Fanout>,
    /// Who hears of sockets connecting, leaving, joining and leaving rooms.
    pub(crate) observers: Arc<Observers>,
}

impl IoInner {
    fn new_namespace(&self, name: &str) -> Arc<Namespace> {
        let adapter = self.adapter.create(name);
        let ns = Namespace::new(
            name.to_string(),
            Arc::clone(&adapter),
            self.parser,
            self.recovery.clone().map(|c| Arc::new(Recovery::new(c))),
            Arc::clone(&self.limits),
            Arc::clone(&self.fanout),
            Arc::clone(&self.observers),
        );
        adapter.attach(Arc::downgrade(&ns));
        ns
    }

    fn declare(&self, name: &str) -> Arc<Namespace> {
        let name = normalize(name);
        if let Some(ns) = self.namespaces.read().get(&name) {
            return Arc::clone(ns);
        }
        let mut map = self.namespaces.write();
        Arc::clone(
            map.entry(name.clone())
                .or_insert_with(|| self.new_namespace(&name)),
        )
    }

    /// The namespace a client asks for: a declared one, or a new child of a dynamic one.
    pub(crate) fn namespace_for(&self, name: &str) -> Option<Arc<Namespace>> {
        if let Some(ns) = self.namespaces.read().get(name) {
            return Some(Arc::clone(ns));
        }
        let template = self
            .dynamic
            .read()
            .iter()
            .find(|d| (d.matcher)(name))
            .map(|d| Arc::clone(&d.template))?;
        let child = self.declare(name);
        child.inherit(&template);
        Some(child)
    }
}

fn normalize(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// Options of a Socket.IO server.
#[derive(Clone)]
pub struct SocketIoConfig {
    /// Engine options; the path defaults to `/socket.io/`.
    pub engine: EngineConfig,
    /// How long a connection may go without joining a namespace.
    pub connect_timeout: Duration,
    /// The codec clients must speak (JSON by default, or msgpack).
    pub parser: ParserKind,
    /// Connection state recovery, off by default as in the reference.
    pub recovery: Option<RecoveryConfig>,
    /// Per-socket limits against abusive clients.
    pub limits: SocketLimits,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            engine: EngineConfig {
                path: "/socket.io/".into(),
                ..EngineConfig::default()
            },
            connect_timeout: Duration::from_millis(45_000),
            parser: ParserKind::Json,
            recovery: None,
            limits: SocketLimits::default(),
        }
    }
}

/// Builds a [`SocketIo`] server.
pub struct SocketIoBuilder {
    config: SocketIoConfig,
    adapter: Arc<dyn AdapterFactory>,
}

impl SocketIoBuilder {
    /// Where the server answers (default `/socket.io/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.config.engine.path = path.into();
        self
    }

    /// How often the server pings each client.
    pub fn ping_interval(mut self, d: Duration) -> Self {
        self.config.engine.ping_interval = d;
        self
    }

    /// How long the server waits for a pong before it closes the connection.
    pub fn ping_timeout(mut self, d: Duration) -> Self {
        self.config.engine.ping_timeout = d;
        self
    }

    /// How long an upgrade from polling to WebSocket may take.
    pub fn upgrade_timeout(mut self, d: Duration) -> Self {
        self.config.engine.upgrade_timeout = d;
        self
    }

    /// How long a connection may go without joining a namespace.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout = d;
        self
    }

    /// The largest message a client may send, in bytes.
    pub fn max_http_buffer_size(mut self, bytes: usize) -> Self {
        self.config.engine.max_http_buffer_size = bytes;
        self
    }

    /// Which transports clients may use.
    pub fn transports(mut self, transports: Transports) -> Self {
        self.config.engine.transports = transports;
        self
    }

    /// CORS answers for browsers on other origins.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.config.engine.cors = Some(cors);
        self
    }

    /// WebSocket compression, when the client offers it.
    pub fn per_message_deflate(mut self, deflate: PerMessageDeflate) -> Self {
        self.config.engine.per_message_deflate = Some(deflate);
        self
    }

    /// Compress polling responses at least this long; `None` never compresses them.
    pub fn http_compression_threshold(mut self, threshold: Option<usize>) -> Self {
        self.config.engine.http_compression_threshold = threshold;
        self
    }

    /// The codec clients must speak (see [`ParserKind`]).
    pub fn parser(mut self, parser: ParserKind) -> Self {
        self.config.parser = parser;
        self
    }

    /// Turns connection state recovery on, with these options.
    pub fn connection_state_recovery(mut self, recovery: RecoveryConfig) -> Self {
        self.config.recovery = Some(recovery);
        self
    }

    /// Rooms a socket may be in, its own included (1 000 by default): a join past it is
    /// refused, and a request that names more rooms is refused before any is looked at.
    pub fn max_rooms_per_socket(mut self, max: usize) -> Self {
        self.config.limits.max_rooms_per_socket = max;
        self
    }

    /// Events a socket may send (1 000 per second, 1 000 at once by default); `None` lifts the
    /// limit. An event past it is refused (`RATE_LIMITED`); a socket refused more than `burst`
    /// events within a second loses its connection.
    pub fn event_rate_limit(mut self, rate: Option<EventRate>) -> Self {
        self.config.limits.event_rate = rate;
        self
    }

    /// Bytes of one event, attachments included (1 000 000 by default): a larger event is
    /// refused (`PAYLOAD_TOO_LARGE`).
    pub fn max_event_payload(mut self, bytes: usize) -> Self {
        self.config.limits.max_event_payload = bytes;
        self
    }

    /// Every per-socket limit at once.
    pub fn limits(mut self, limits: SocketLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Any other engine option.
    pub fn engine(mut self, f: impl FnOnce(&mut EngineConfig)) -> Self {
        f(&mut self.config.engine);
        self
    }

    /// The adapter of every namespace (in memory by default).
    pub fn adapter(mut self, factory: impl AdapterFactory) -> Self {
        self.adapter = Arc::new(factory);
        self
    }

    /// The server with these options.
    pub fn build(self) -> SocketIo {
        let SocketIoBuilder { config, adapter } = self;
        let inner = Arc::new(IoInner {
            parser: config.parser,
            recovery: config.recovery.clone(),
            adapter,
            namespaces: RwLock::new(HashMap::new()),
            dynamic: RwLock::new(Vec::new()),
            limits: Arc::new(Limits {
                config: config.limits.clone(),
                counters: Default::default(),
            }),
            fanout: Fanout::new(),
            observers: Arc::default(),
        });
        inner.declare("/");
        let mut engine_config = config.engine.clone();
        engine_config.establish_timeout = Some(config.connect_timeout);
        let engine = Engine::new(
            engine_config,
            IoHandler {
                io: Arc::clone(&inner),
            },
        );
        SocketIo { inner, engine }
    }
}

/// A Socket.IO server. Cheap to clone: clones are handles on the same server.
///
/// ```no_run
/// use ignis_socketio::SocketIo;
///
/// # async fn run() -> std::io::Result<()> {
/// let io = SocketIo::builder().build();
/// io.ns("/", |socket| async move {
///     socket.on("echo", |_socket, mut event| async move {
///         let args = std::mem::take(&mut event.args);
///         event.ack(args);
///     });
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// io.serve(listener).await
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIo {
    inner: Arc<IoInner>,
    engine: Engine<IoHandler>,
}

impl SocketIo {
    /// Options for a new server, all at their defaults.
    pub fn builder() -> SocketIoBuilder {
        SocketIoBuilder {
            config: SocketIoConfig::default(),
            adapter: Arc::new(|_: &str| MemoryAdapter::new()),
        }
    }

    /// A server with these options and the in-memory adapter.
    pub fn with_config(config: SocketIoConfig) -> SocketIo {
        SocketIoBuilder {
            config,
            adapter: Arc::new(|_: &str| MemoryAdapter::new()),
        }
        .build()
    }

    /// Declares a namespace (or takes the existing one) and sets its connection handler.
    pub fn ns<F, Fut>(&self, name: &str, on_connect: F) -> Arc<Namespace>
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let ns = self.inner.declare(name);
        ns.on_connect(on_connect);
        ns
    }

    /// Accepts namespaces whose name satisfies `matcher`, each created on first use with the
    /// middlewares and connection handler of the returned template.
    pub fn dyn_ns<M, F, Fut>(&self, matcher: M, on_connect: F) -> Arc<Namespace>
    where
        M: Fn(&str) -> bool + Send + Sync + 'static,
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // The template only holds handlers: it never has sockets, so it needs no real adapter.
        let template = Namespace::new(
            "<dynamic>".into(),
            Arc::new(MemoryAdapter::new()),
            self.inner.parser,
            None,
            Arc::clone(&self.inner.limits),
            Arc::clone(&self.inner.fanout),
            // A template never has sockets: nothing to tell.
            Arc::default(),
        );
        template.on_connect(on_connect);
        self.inner.dynamic.write().push(DynamicNamespace {
            matcher: Arc::new(matcher),
            template: Arc::clone(&template),
        });
        template
    }

    /// Accepts namespaces matching a glob such as `/dyn-*` (`*` matches any characters).
    pub fn dyn_ns_pattern<F, Fut>(&self, pattern: &str, on_connect: F) -> Arc<Namespace>
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let pattern = pattern.to_string();
        self.dyn_ns(move |name| glob_match(&pattern, name), on_connect)
    }

    /// A namespace, if declared or already created.
    pub fn of(&self, name: &str) -> Option<Arc<Namespace>> {
        self.inner.namespaces.read().get(&normalize(name)).cloned()
    }

    /// The main namespace, `/`.
    pub fn main_namespace(&self) -> Arc<Namespace> {
        self.inner.declare("/")
    }

    /// Broadcast operators on the main namespace.
    pub fn to(&self, rooms: impl IntoRooms) -> Operators {
        self.main_namespace().to(rooms)
    }

    /// Sends to every socket of the main namespace except those in `rooms`.
    pub fn except(&self, rooms: impl IntoRooms) -> Operators {
        self.main_namespace().except(rooms)
    }

    /// Operators on every socket of the main namespace, to narrow down.
    pub fn operators(&self) -> Operators {
        self.main_namespace().operators()
    }

    /// Sends an event to every socket of the main namespace (see [`Operators::emit`]).
    pub fn emit<'a>(&self, event: &str, args: impl IntoArgs<'a>) -> Result<(), EmitError> {
        self.main_namespace().emit(event, args)
    }

    /// Emits an event to the main namespace of the other nodes (`serverSideEmit`).
    pub async fn server_side_emit(&self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        self.main_namespace().server_side_emit(event, args).await
    }

    /// Adds an observer: from now on it hears of every socket that connects to or leaves any
    /// namespace of this server, of every room join and leave, and of every upgrade to
    /// WebSocket (see [`SocketObserver`]). Sockets and rooms already there are not replayed:
    /// [`SocketIo::namespaces`] lists them. Without an observer, none of this costs more than
    /// an atomic load at a connect, a disconnect, a join or a leave.
    pub fn observe(&self, observer: Arc<dyn SocketObserver>) {
        self.inner.observers.add(observer);
    }

    /// The namespaces that exist now (declared, or created for a client by a dynamic one).
    pub fn namespaces(&self) -> Vec<Arc<Namespace>> {
        self.inner.namespaces.read().values().cloned().collect()
    }

    /// The per-socket limits.
    pub fn limits(&self) -> &SocketLimits {
        &self.inner.limits.config
    }

    /// What the server counted since it was built: events in, packets and broadcasts out,
    /// volatile drops, failed sends. The engine's own figures (sessions, handshakes, closes,
    /// bytes in) are in `self.engine().stats()`.
    pub fn stats(&self) -> IoStats {
        self.inner.fanout.stats.snapshot()
    }

    /// What the per-socket limits refused since the server started.
    pub fn abuse_counters(&self) -> AbuseCounters {
        self.inner.limits.counters.snapshot()
    }

    /// The Engine.IO engine under the server, for serving it alongside other routes.
    pub fn engine(&self) -> &Engine<IoHandler> {
        &self.engine
    }

    /// Whether an HTTP request is for this server.
    pub fn matches(&self, path: &str) -> bool {
        self.engine.matches(path)
    }

    /// Answers an HTTP request for this server, for applications with their own HTTP stack.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.engine.handle(req).await
    }

    /// Serves on `listener`; other paths get 404.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        self.engine.clone().serve(listener).await
    }

    /// Serves on `listener`, passing other paths to `fallback`, whose body reads under the
    /// engine's body deadline (a client that stops sending is answered 408).
    pub async fn serve_with<F, Fut>(
        self,
        listener: tokio::net::TcpListener,
        fallback: F,
    ) -> std::io::Result<()>
    where
        F: Fn(Request<crate::engine::TimedBody>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        self.engine.clone().serve_with(listener, fallback).await
    }

    /// Disconnects every socket ("server shutting down") and closes every connection.
    pub fn close(&self) {
        // The connections close after the broadcasts made before, as any close does (see
        // `crate::outbound`).
        self.inner.fanout.settle();
        let namespaces: Vec<_> = self.inner.namespaces.read().values().cloned().collect();
        for ns in namespaces {
            for socket in ns.sockets() {
                socket.close(DisconnectReason::ServerShuttingDown);
            }
        }
        self.engine.close_all();
    }
}

impl Namespace {
    /// Takes the middlewares and connection handler of a dynamic namespace's template.
    pub(crate) fn inherit(&self, template: &Namespace) {
        if self.connect_handler().is_some() {
            return;
        }
        for m in template.middlewares() {
            self.push_middleware(m);
        }
        if let Some(h) = template.connect_handler() {
            self.set_connect_handler(h);
        }
    }
}

pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::SocketIo;
    use super::glob_match;
    use crate::EmitError;

    #[tokio::test]
    async fn server_side_emit_on_a_single_node() {
        let io = SocketIo::builder().build();
        // No other node: nothing to reach, no answers, no error.
        io.server_side_emit("sync", vec![]).await.unwrap();
        let answers = io
            .main_namespace()
            .server_side_emit_with_ack("sync", vec![], std::time::Duration::from_millis(50))
            .await
            .unwrap();
        assert!(answers.is_empty());
        assert!(matches!(
            io.server_side_emit("disconnect", vec![]).await,
            Err(EmitError::ReservedEvent(_))
        ));
    }

    #[test]
    fn globs() {
        assert!(glob_match("/dyn-*", "/dyn-42"));
        assert!(glob_match("/dyn-*", "/dyn-"));
        assert!(!glob_match("/dyn-*", "/dy"));
        assert!(glob_match("/a*b*c", "/aXbYc"));
        assert!(!glob_match("/a*b*c", "/aXcYb"));
        assert!(glob_match("/exact", "/exact"));
        assert!(!glob_match("/exact", "/exactly"));
    }
}
