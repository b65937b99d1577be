//! The [Socket.IO Admin UI](https://github.com/socketio/socket.io-admin-ui) for an
//! [`ignis_socketio::SocketIo`] server.
//!
//! [`instrument`] adds the namespace the UI connects to (`/admin` by default) and speaks the
//! protocol of `@socket.io/admin-ui` 0.5 on it, so that the UI people already use with Node
//! servers (hosted at <https://admin.socket.io>, or its `ui/dist` served from anywhere) shows
//! this server:
//!
//! - `config` (the features the server supports), `server_stats` every two seconds (server id
//!   `hostname#pid`, host name, pid, uptime, clients, polling clients, sockets per namespace, connections and
//!   disconnections per second), `all_sockets` when the UI connects (each socket with its
//!   client, transport, namespace, data, handshake and rooms);
//! - live `socket_connected`, `socket_updated` (an upgrade to WebSocket), `socket_disconnected`,
//!   `room_joined` and `room_left`, for every namespace;
//! - the UI's actions, unless [`AdminOptions::read_only`]: `emit` (an event to a namespace or a
//!   room), `join` and `leave` (make sockets join or leave a room) and `_disconnect`, each on
//!   the sockets of a namespace, or of a room or one socket of it.
//!
//! The UI logs in with a user name and a password, checked against a bcrypt hash
//! ([`BasicAuth`]); it then gets a session id that lets it reconnect without the password for
//! [`SESSION_LIFETIME`].
//!
//! With a cluster adapter (Redis), what the admin namespace emits reaches the UI on every node,
//! so every instrumented node reports its own stats and socket events, and `all_sockets` and the
//! actions cover the cluster through `fetch_sockets`, `sockets_join`, `sockets_leave` and
//! `disconnect_sockets`. A socket of another node comes without its transport, and its client
//! is the socket itself.
//!
//! Not supported: the `event_received` and `event_sent` feed of the UI's events page (which
//! still lists connections, disconnections and room changes), the per-packet byte and packet
//! counts of the dashboard (`packetsIn`, `bytesIn`, ...), the UI's `production` mode and stores
//! of sessions shared between nodes (a session id works on the node that issued it).
//!
//! ```no_run
//! use ignis_admin::{AdminOptions, BasicAuth};
//! use ignis_socketio::SocketIo;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let io = SocketIo::builder().build();
//! let auth = BasicAuth::parse("admin:$2b$10$heqvAkYMez.Va6Et2uXInOnkCT6/uQj1brkrbyG3LpopDklcq7ZOS")?;
//! ignis_admin::instrument(&io, AdminOptions::new(Some(auth)))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! io.serve(listener).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod observer;
mod serialize;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ignis_socketio::proto::value::Map;
use ignis_socketio::{Namespace, SocketIo, SocketRef, Value};
use tokio::task::JoinHandle;

pub use auth::{BasicAuth, SESSION_LIFETIME, hash_password};

use crate::auth::Sessions;
use crate::observer::Watcher;

/// How an admin UI is set up.
#[derive(Debug, Clone)]
pub struct AdminOptions {
    /// The namespace the UI connects to (`/admin`, the UI's default).
    pub namespace: String,
    /// Who may log in; `None` lets anyone who reaches the server in (for a server that only
    /// trusted clients can reach).
    pub auth: Option<BasicAuth>,
    /// The UI may look but not act (no emit, join, leave or disconnect).
    pub read_only: bool,
    /// The id the UI shows this server under; `hostname#pid` by default, so that several
    /// servers of one host stay apart in the UI (the reference's default, the host name alone,
    /// merges them).
    pub server_id: Option<String>,
    /// How often `server_stats` goes out (2 s, as in the reference).
    pub stats_interval: Duration,
}

impl AdminOptions {
    /// The defaults of the reference, with this authentication.
    pub fn new(auth: Option<BasicAuth>) -> Self {
        AdminOptions {
            namespace: "/admin".into(),
            auth,
            read_only: false,
            server_id: None,
            stats_interval: Duration::from_secs(2),
        }
    }
}

/// Why the admin UI cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The `user:hash` text has no `:` or an empty user name.
    #[error("the admin UI credentials must be `user:bcrypt-hash` with a non-empty user")]
    Credentials,
    /// The password hash is not a bcrypt hash.
    #[error("the admin UI password must be a bcrypt hash ($2a$, $2b$ or $2y$): {0}")]
    Hash(String),
    /// The namespace is the main one, which the application serves.
    #[error("the admin UI namespace must not be \"/\"")]
    Namespace,
    /// Not within a tokio runtime.
    #[error("the admin UI must be set up within a tokio runtime")]
    NoRuntime,
}

/// The admin UI of a server, once [`instrument`]ed. Dropping it leaves the UI running for as long
/// as the server is; [`AdminUi::stop`] ends its tasks.
pub struct AdminUi {
    tasks: Vec<JoinHandle<()>>,
}

impl AdminUi {
    /// Stops sending stats and socket events (the namespace stays, with its sockets and actions;
    /// what the observer still hears is dropped).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The feature names of the UI's `config` event.
const FEATURES: [&str; 7] = [
    "EMIT",
    "JOIN",
    "LEAVE",
    "DISCONNECT",
    "MJOIN",
    "MLEAVE",
    "MDISCONNECT",
];

/// Adds the admin namespace to `io` and starts reporting to it. It may be called before or
/// after the application declares its namespaces: namespaces created later are reported too.
/// Must be called within a tokio runtime, whose tasks emit to the admin namespace.
pub fn instrument(io: &SocketIo, options: AdminOptions) -> Result<AdminUi, AdminError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| AdminError::NoRuntime)?;
    let namespace = normalize(&options.namespace);
    if namespace == "/" {
        return Err(AdminError::Namespace);
    }
    let started = Instant::now();
    let (watcher, events) = Watcher::new(Arc::from(namespace.as_str()));
    io.observe(watcher.clone());
    let sessions = Arc::new(Sessions::default());

    let admin = io.ns(&namespace, {
        let io = io.clone();
        let read_only = options.read_only;
        move |socket| {
            let io = io.clone();
            async move { on_admin_connect(io, socket, read_only).await }
        }
    });
    if let Some(auth) = options.auth.clone() {
        let sessions = sessions.clone();
        let auth = Arc::new(auth);
        admin.use_middleware(move |socket| {
            let auth = auth.clone();
            let sessions = sessions.clone();
            async move { auth::check(&auth, &sessions, &socket).await }
        });
    } else {
        tracing::warn!(nsp = %namespace, "admin UI without authentication: anyone who reaches the server can inspect and drive it");
    }

    let forward = runtime.spawn(observer::forward(admin.clone(), events));
    let stats = runtime.spawn(stats_loop(
        io.clone(),
        admin,
        watcher,
        sessions,
        options
            .server_id
            .clone()
            .unwrap_or_else(|| format!("{}#{}", hostname(), std::process::id())),
        started,
        options.stats_interval,
    ));
    tracing::info!(nsp = %namespace, read_only = options.read_only, "admin UI enabled");
    Ok(AdminUi {
        tasks: vec![forward, stats],
    })
}

async fn on_admin_connect(io: SocketIo, socket: SocketRef, read_only: bool) {
    if let Some(session) = socket
        .session_value(auth::NEW_SESSION)
        .and_then(|v| v.as_str().map(str::to_string))
    {
        socket.set_session_value(auth::NEW_SESSION, None);
        let _ = socket.emit("session", &session);
    }
    let mut features: Vec<Value> = Vec::new();
    if !read_only {
        register_actions(&io, &socket);
        features.extend(FEATURES.iter().map(|f| Value::from(*f)));
    }
    features.push(Value::from("AGGREGATED_EVENTS"));
    // What the UI calls development mode: the sockets, rooms and events pages.
    features.push(Value::from("ALL_EVENTS"));
    let mut config = Map::new();
    config.insert("supportedFeatures", Value::Array(features));
    let _ = socket.emit("config", vec![Value::Map(config)]);
    let sockets = all_sockets(&io).await;
    let _ = socket.emit("all_sockets", vec![Value::Array(sockets)]);
}

/// Every socket of every namespace: the local ones as they are, the other nodes' as
/// `fetch_sockets` has them.
async fn all_sockets(io: &SocketIo) -> Vec<Value> {
    let mut out = Vec::new();
    for ns in io.namespaces() {
        let local = ns.sockets();
        let mut ids = std::collections::HashSet::with_capacity(local.len());
        for socket in &local {
            ids.insert(socket.id());
            out.push(serialize::socket(socket));
        }
        match ns.operators().fetch_sockets().await {
            Ok(all) => out.extend(
                all.iter()
                    .filter(|remote| !ids.contains(&remote.id))
                    .map(|remote| serialize::remote_socket(ns.name(), remote)),
            ),
            Err(e) => {
                tracing::debug!(nsp = ns.name(), error = %e, "admin UI: other nodes' sockets unknown")
            }
        }
    }
    out
}

/// The namespace an action names, if it exists (an action never creates one).
fn target(io: &SocketIo, args: &[Value]) -> Option<Arc<Namespace>> {
    args.first().and_then(Value::as_str).and_then(|n| io.of(n))
}

/// The room (or socket id) an action is limited to, if any.
fn filter(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn register_actions(io: &SocketIo, socket: &SocketRef) {
    let io_emit = io.clone();
    socket.on("emit", move |_socket, event| {
        let io = io_emit.clone();
        async move {
            let mut args = event.args;
            let (Some(ns), true) = (target(&io, &args), args.len() >= 3) else {
                return;
            };
            let room = filter(args.get(1));
            let Some(name) = args.get(2).and_then(Value::as_str).map(str::to_string) else {
                return;
            };
            let payload = args.split_off(3);
            let ops = match &room {
                Some(room) => ns.to(room.as_str()),
                None => ns.operators(),
            };
            match ops.emit(&name, payload) {
                Ok(()) => tracing::info!(nsp = ns.name(), room = ?room, "admin UI: emit"),
                Err(e) => tracing::info!(nsp = ns.name(), error = %e, "admin UI: emit refused"),
            }
        }
    });
    for (action, join) in [("join", true), ("leave", false)] {
        let io = io.clone();
        socket.on(action, move |_socket, event| {
            let io = io.clone();
            async move {
                let args = event.args;
                let Some(ns) = target(&io, &args) else {
                    return;
                };
                let Some(room) = args.get(1).and_then(Value::as_str).map(str::to_string) else {
                    return;
                };
                let within = filter(args.get(2));
                let ops = match &within {
                    Some(f) => ns.to(f.as_str()),
                    None => ns.operators(),
                };
                let result = if join {
                    ops.sockets_join(room.as_str()).await
                } else {
                    ops.sockets_leave(room.as_str()).await
                };
                match result {
                    Ok(()) => tracing::info!(nsp = ns.name(), action, filter = ?within, "admin UI: room change"),
                    Err(e) => tracing::warn!(nsp = ns.name(), action, error = %e, "admin UI: room change failed"),
                }
            }
        });
    }
    let io = io.clone();
    socket.on("_disconnect", move |_socket, event| {
        let io = io.clone();
        async move {
            let args = event.args;
            let Some(ns) = target(&io, &args) else {
                return;
            };
            let close = args.get(1).and_then(Value::as_bool).unwrap_or(false);
            let within = filter(args.get(2));
            let ops = match &within {
                Some(f) => ns.to(f.as_str()),
                None => ns.operators(),
            };
            match ops.disconnect_sockets(close).await {
                Ok(()) => {
                    tracing::info!(nsp = ns.name(), filter = ?within, close, "admin UI: disconnect")
                }
                Err(e) => {
                    tracing::warn!(nsp = ns.name(), error = %e, "admin UI: disconnect failed")
                }
            }
        }
    });
}

async fn stats_loop(
    io: SocketIo,
    admin: Arc<Namespace>,
    watcher: Arc<Watcher>,
    sessions: Arc<Sessions>,
    server_id: String,
    started: Instant,
    interval: Duration,
) {
    let host = hostname();
    let pid = std::process::id();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        sessions.prune();
        let mut namespaces = Vec::new();
        let mut polling = std::collections::HashSet::new();
        for ns in io.namespaces() {
            let sockets = ns.sockets();
            for socket in &sockets {
                if socket.transport() == ignis_socketio::engine::TransportKind::Polling {
                    polling.insert(socket.client_id());
                }
            }
            let mut entry = Map::new();
            entry.insert("name", ns.name());
            entry.insert("socketsCount", Value::from_u64(sockets.len() as u64));
            namespaces.push(Value::Map(entry));
        }
        let mut stats = Map::new();
        stats.insert("serverId", server_id.as_str());
        stats.insert("hostname", host.as_str());
        stats.insert("pid", Value::from_u64(u64::from(pid)));
        stats.insert("uptime", Value::Float(started.elapsed().as_secs_f64()));
        stats.insert(
            "clientsCount",
            Value::from_u64(io.engine().session_count() as u64),
        );
        stats.insert("pollingClientsCount", Value::from_u64(polling.len() as u64));
        stats.insert("aggregatedEvents", Value::Array(watcher.take_aggregated()));
        stats.insert("namespaces", Value::Array(namespaces));
        if let Err(e) = admin
            .operators()
            .emit("server_stats", vec![Value::Map(stats)])
        {
            tracing::debug!(error = %e, "admin UI: stats not sent");
        }
    }
}

fn normalize(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("/{name}")
    }
}

/// The machine's name, as the reference's default server id.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}
