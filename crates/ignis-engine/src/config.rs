//! Engine options, with the defaults of the reference server (engine.io 6).

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

/// Which transports clients may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    /// Whether clients may use HTTP long-polling.
    pub polling: bool,
    /// Whether clients may use WebSocket.
    pub websocket: bool,
}

impl Default for Transports {
    fn default() -> Self {
        Transports {
            polling: true,
            websocket: true,
        }
    }
}

/// Which origins CORS answers for.
#[derive(Clone)]
pub enum AllowOrigin {
    /// `Access-Control-Allow-Origin: *` (or the request's origin when credentials are allowed,
    /// since browsers refuse a credentialed wildcard).
    Any,
    /// Only these exact origins.
    List(Vec<String>),
    /// A predicate on the `Origin` header.
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl std::fmt::Debug for AllowOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AllowOrigin::Any => f.write_str("Any"),
            AllowOrigin::List(l) => f.debug_tuple("List").field(l).finish(),
            AllowOrigin::Predicate(_) => f.write_str("Predicate(..)"),
        }
    }
}

/// CORS settings, modelled on the `cors` middleware the reference server uses.
#[derive(Debug, Clone)]
pub struct Cors {
    /// Which origins are allowed (`Access-Control-Allow-Origin`).
    pub origin: AllowOrigin,
    /// The methods a preflight allows (`Access-Control-Allow-Methods`).
    pub methods: Vec<String>,
    /// `None` reflects the request's `Access-Control-Request-Headers`.
    pub allowed_headers: Option<Vec<String>>,
    /// Response headers a browser script may read (`Access-Control-Expose-Headers`).
    pub exposed_headers: Vec<String>,
    /// Whether cookies and credentials may cross origins (`Access-Control-Allow-Credentials`).
    pub credentials: bool,
    /// How long a browser may cache a preflight answer, in seconds (`Access-Control-Max-Age`).
    pub max_age: Option<u64>,
    /// Status of a successful preflight answer.
    pub options_success_status: u16,
}

impl Default for Cors {
    fn default() -> Self {
        Cors {
            origin: AllowOrigin::Any,
            methods: ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
                .map(String::from)
                .to_vec(),
            allowed_headers: None,
            exposed_headers: Vec::new(),
            credentials: false,
            max_age: None,
            options_success_status: 204,
        }
    }
}

/// permessage-deflate settings for WebSocket connections.
#[derive(Debug, Clone)]
pub struct PerMessageDeflate {
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
    /// The largest LZ77 window the server uses for compressing (9..=15).
    pub server_max_window_bits: u8,
    /// zlib level, 0..=9.
    pub level: u32,
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        PerMessageDeflate {
            threshold: 1024,
            server_max_window_bits: 15,
            level: 6,
        }
    }
}

/// A hook that may refuse a handshake or upgrade request, given its head. `Err(message)` answers
/// `403 {"code":4,"message":"Forbidden"}` like the reference's `allowRequest`.
pub type AllowRequest = Arc<dyn Fn(&Parts) -> Result<(), String> + Send + Sync>;

/// Engine options.
#[derive(Clone)]
pub struct EngineConfig {
    /// Where the engine answers, with a trailing slash (`/engine.io/`, `/socket.io/`, `/io/`).
    pub path: String,
    /// How often the server pings the client (`pingInterval` of the handshake).
    pub ping_interval: Duration,
    /// How long the server waits for the client's pong before it closes the session.
    pub ping_timeout: Duration,
    /// How long an upgrade from polling to WebSocket may take before it is abandoned.
    pub upgrade_timeout: Duration,
    /// Largest polling body and largest WebSocket message accepted from a client.
    pub max_http_buffer_size: usize,
    /// Which transports clients may use.
    pub transports: Transports,
    /// Whether a polling session may upgrade to WebSocket.
    pub allow_upgrades: bool,
    /// CORS answers for cross-origin browsers; `None` sends no CORS headers.
    pub cors: Option<Cors>,
    /// A check that may refuse a handshake or an upgrade before the session exists.
    pub allow_request: Option<AllowRequest>,
    /// WebSocket compression, if the client offers it; `None` turns it off.
    pub per_message_deflate: Option<PerMessageDeflate>,
    /// Compress polling responses at least this long when the client accepts gzip or deflate.
    pub http_compression_threshold: Option<usize>,
    /// How long a connection may stay open without the upper layer calling
    /// [`crate::Socket::mark_established`] (Socket.IO's `connectTimeout`).
    pub establish_timeout: Option<Duration>,
    /// Most messages queued for one client before it is disconnected as too slow.
    pub max_queued_messages: usize,
    /// Most bytes queued for one client, or written and not yet taken by its socket, before it
    /// is disconnected as too slow ("outbound queue full"). A broadcast counts whole for every
    /// session that holds it. A session holding nothing always takes one message, whatever its
    /// size. Counted up to 4 GiB.
    pub max_queued_bytes: usize,
    /// How long a connection served by [`crate::Engine::serve`] may take to send a complete
    /// request head (and stay idle between two requests). An application with its own accept
    /// loop passes its own to [`crate::serve_http`].
    pub request_head_timeout: Duration,
    /// How long a request body may take to arrive, from when it is first read: a polling POST
    /// past it is answered `408` and its connection closed. [`crate::serve_http`] applies the
    /// same deadline to every body it serves.
    pub body_timeout: Duration,
    /// Most connections open at once from one IP address; more are closed as they are
    /// accepted. 0 (the default) is no limit: behind a load balancer or a proxy every client
    /// has the balancer's address, so set this only where clients connect directly.
    pub max_connections_per_ip: u32,
    /// Handshakes (new sessions, polling or WebSocket) one IP address may make per second on
    /// average, answered `429` beyond; 0 (the default) is no limit, for the reason above.
    pub handshakes_per_second_per_ip: u32,
    /// How many handshakes one IP address may make at once before the rate applies (the size
    /// of its token bucket); at least 1.
    pub handshake_burst_per_ip: u32,
    /// Most IP addresses the per-IP limits keep track of. An address leaves the table once it
    /// has no connection and its bucket is full again; when every entry is in use, connections
    /// and handshakes from addresses not in the table are refused (and counted as
    /// `ip_table_full`) until entries free up.
    pub max_tracked_ips: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            path: "/engine.io/".into(),
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            max_http_buffer_size: 1_000_000,
            transports: Transports::default(),
            allow_upgrades: true,
            cors: None,
            allow_request: None,
            per_message_deflate: None,
            http_compression_threshold: Some(1024),
            establish_timeout: None,
            max_queued_messages: 8192,
            max_queued_bytes: 16 * 1024 * 1024,
            request_head_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            max_connections_per_ip: 0,
            handshakes_per_second_per_ip: 0,
            handshake_burst_per_ip: 20,
            max_tracked_ips: 100_000,
        }
    }
}

impl EngineConfig {
    /// Normalises the path to start and end with `/`.
    pub(crate) fn normalized_path(&self) -> String {
        let trimmed = self.path.trim_matches('/');
        if trimmed.is_empty() {
            "/".into()
        } else {
            format!("/{trimmed}/")
        }
    }
}
