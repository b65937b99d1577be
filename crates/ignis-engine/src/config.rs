//! Engine options, with the defaults of the reference server (engine.io 6).

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

/// Which transports clients may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transports {
    pub polling: bool,
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
    pub origin: AllowOrigin,
    pub methods: Vec<String>,
    /// `None` reflects the request's `Access-Control-Request-Headers`.
    pub allowed_headers: Option<Vec<String>>,
    pub exposed_headers: Vec<String>,
    pub credentials: bool,
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
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub upgrade_timeout: Duration,
    /// Largest polling body and largest WebSocket message accepted from a client.
    pub max_http_buffer_size: usize,
    pub transports: Transports,
    pub allow_upgrades: bool,
    pub cors: Option<Cors>,
    pub allow_request: Option<AllowRequest>,
    pub per_message_deflate: Option<PerMessageDeflate>,
    /// Compress polling responses at least this long when the client accepts gzip or deflate.
    pub http_compression_threshold: Option<usize>,
    /// How long a connection may stay open without the upper layer calling
    /// [`crate::Socket::mark_established`] (Socket.IO's `connectTimeout`).
    pub establish_timeout: Option<Duration>,
    /// Most messages queued for one client before it is disconnected as too slow.
    pub max_queued_messages: usize,
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
