//! The engine: the [`Handler`] the layer above implements, the session table, the open
//! handshake, and the heartbeat deadlines. Requests reach it through [`crate::http`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use http::request::Parts;
use ignis_proto::engineio::{Data, OpenInfo, Packet, Str};
use parking_lot::RwLock;

use crate::abuse::{AbuseCounters, ConnectionPermit, Counters, IpLimiter};
use crate::config::EngineConfig;
use crate::error::IpRefusal;
use crate::session::frame::Compression;
use crate::session::outbox::QueueLimits;
use crate::session::{CloseReason, Socket, TransportKind};
use crate::sid::{Sid, SidMap};
use crate::stats::{EngineCounters, EngineStats};

/// The peer address of a request, as a request extension. [`Engine::serve`] inserts it; an
/// application that embeds the engine in its own server should insert it too.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// What the engine tells the layer above about the request that opened a session.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    /// The request line and headers of the handshake.
    pub parts: Parts,
    /// The client's address, when the listener knows it.
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
    /// The state to keep in a new session (its `data`).
    fn create_data(&self) -> Self::Data;
    /// A session opened; `request` is the handshake that opened it.
    fn on_open(&self, socket: &Arc<Socket<Self::Data>>, request: &RequestInfo);
    /// A message came from the client.
    fn on_message(&self, socket: &Arc<Socket<Self::Data>>, data: Data);
    /// The session closed, for `reason`; nothing more comes from it.
    fn on_close(&self, socket: &Arc<Socket<Self::Data>>, reason: CloseReason);
    /// The session moved from HTTP long-polling to WebSocket (once, when the client's upgrade
    /// completes). Nothing by default.
    fn on_upgrade(&self, socket: &Arc<Socket<Self::Data>>) {
        let _ = socket;
    }
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
    /// What the engine did, counted for monitoring.
    pub(crate) stats: EngineCounters,
    /// The per-IP limits, when one is set.
    pub(crate) ip_limiter: Option<Arc<IpLimiter>>,
    /// The open packet's JSON after the sid, for sessions that may upgrade and for the others:
    /// the same for every session, so encoded once instead of per handshake.
    open_tail: [String; 2],
    /// Set while the node drains: new sessions are refused, open ones go on.
    pub(crate) refuse_new_sessions: AtomicBool,
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

impl<H: Handler> Engine<H> {
    /// An engine with these options, whose sessions `handler` serves.
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
                stats: EngineCounters::default(),
                ip_limiter,
                open_tail,
                refuse_new_sessions: AtomicBool::new(false),
            }),
        }
    }

    /// The layer above, as given to [`Engine::new`].
    pub fn handler(&self) -> &H {
        &self.inner.handler
    }

    /// The options the engine runs with.
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

    /// The engine's figures now: sessions open by transport, and what it counted since it
    /// started. Costs a pass over the session table, under its read lock: for a scrape, not
    /// for a hot path.
    pub fn stats(&self) -> EngineStats {
        let (mut polling, mut websocket) = (0, 0);
        for socket in self.inner.sessions.read().values() {
            match socket.transport() {
                TransportKind::Polling => polling += 1,
                TransportKind::WebSocket => websocket += 1,
            }
        }
        self.inner.stats.snapshot(polling, websocket)
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
    pub fn http_limits(&self, head_timeout: Duration) -> crate::http::serve::HttpLimits {
        crate::http::serve::HttpLimits::with_counters(
            head_timeout,
            self.inner.config.body_timeout,
            Arc::clone(&self.inner.counters),
        )
    }

    /// How many sessions are open now.
    pub fn session_count(&self) -> usize {
        self.inner.sessions.read().len()
    }

    /// While on, every handshake is refused with `503` ([`crate::EngineError::Draining`]) and the
    /// sessions already open go on: a node being drained takes no new clients, and the
    /// clients' reconnection retries go elsewhere (through a load balancer) or wait.
    pub fn refuse_new_sessions(&self, refuse: bool) {
        self.inner
            .refuse_new_sessions
            .store(refuse, Ordering::Release);
    }

    /// Whether handshakes are refused ([`Engine::refuse_new_sessions`]).
    pub fn refuses_new_sessions(&self) -> bool {
        self.inner.refuse_new_sessions.load(Ordering::Acquire)
    }

    /// Closes every session with the reason "server shutting down".
    pub fn close_all(&self) {
        let sessions: Vec<_> = self.inner.sessions.read().values().cloned().collect();
        for socket in sessions {
            socket.request_close(CloseReason::ServerShuttingDown);
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
    inner.sessions.write().insert(sid, Arc::clone(&socket));
    inner.stats.handshake(transport);
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
            self.stats.closed(reason);
            tracing::debug!(sid = %socket.id(), reason = reason.as_str(), "session closed");
            self.handler.on_close(socket, reason);
        }
    }

    /// Whether the client failed to answer a ping in time.
    pub(crate) fn heartbeat_expired(&self, socket: &Socket<H::Data>) -> bool {
        let (at_ms, what) = self.next_deadline(socket);
        what == Deadline::PingTimeout && socket.age_ms() >= at_ms
    }

    /// When the next heartbeat or timeout is due, in milliseconds since the socket was created,
    /// and what happens then.
    pub(crate) fn next_deadline(&self, socket: &Socket<H::Data>) -> (u64, Deadline) {
        let cfg = &self.config;
        let (last_pong, awaiting_pong) = socket.heartbeat();
        let mut best = if awaiting_pong {
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
        match what {
            Deadline::SendPing => {
                socket.ping_sent();
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
