//! `SocketIoServerHelper`: the per-connection authentication state machine, the client
//! registry, rooms through the validator, the app-level ping, `send` and shutdown.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use ignis_socketio::engine::SidMap;
use ignis_socketio::proto::ignis::{self as protocol, ClientState};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{
    EmitError, Event, JoinError, Operators, RefusedRoom, Room, Sid, SocketHandlers, SocketIo,
    SocketRef, Value, iso_timestamp,
};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::handlers::{
    AuthRequest, AuthenticateHandler, ClientConnectedHandler, ConnectionFn, ServerEventFn,
    ServerListener, ValidateRoomHandler,
};
use super::timers::{Entry, Kind, Timers};
use crate::error::ApplicationError;

/// A snapshot of the figures of a [`SocketIoServerHelper`] (see
/// [`SocketIoServerHelper::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelperStats {
    /// Clients of this node tracked now, authenticated or not.
    pub clients: u64,
    /// Of those, the clients that authenticated.
    pub authenticated: u64,
    /// `authenticate` requests the handler accepted.
    pub auth_succeeded: u64,
    /// `authenticate` requests refused: the handler said no, failed, or panicked.
    pub auth_refused: u64,
    /// Clients whose authentication deadline passed before they authenticated.
    pub auth_timed_out: u64,
    /// Sends that could not be published (see [`SocketIoServerHelper::failed_sends`]).
    pub failed_sends: u64,
}

/// The `unauthenticated` message of a client whose authentication deadline passed.
pub const MESSAGE_AUTH_TIMEOUT: &str = "Authentication timed out! Please login again!";

/// The key of the socket's session value (see `Socket::session_value`) that says it
/// authenticated: kept with the session, so a socket restored by connection state recovery is
/// known to have authenticated.
pub const SESSION_AUTHENTICATED: &str = "ignis:authenticated";

/// The helper's own options (component options in the original are fixed; here they are not).
#[derive(Debug, Clone)]
pub struct HelperOptions {
    /// Logger scope.
    pub identifier: String,
    /// How long a client has to authenticate after connecting.
    pub authenticate_timeout: Duration,
    /// How often an authenticated client gets the app-level `ping` event (not the Engine.IO
    /// heartbeat).
    pub app_ping_interval: Duration,
    /// Rooms every authenticated client joins.
    pub default_rooms: Vec<String>,
}

impl Default for HelperOptions {
    fn default() -> Self {
        HelperOptions {
            identifier: "SOCKET_IO_SERVER".into(),
            authenticate_timeout: Duration::from_millis(10_000),
            app_ping_interval: Duration::from_millis(30_000),
            default_rooms: vec![
                protocol::ROOM_DEFAULT.to_string(),
                protocol::ROOM_NOTIFICATION.to_string(),
            ],
        }
    }
}

/// A tracked client.
pub struct ClientRecord {
    /// The client's socket, to emit to it, join it to rooms or read its handshake.
    pub socket: SocketRef,
    /// When the client connected, relative to the others: the order of
    /// [`SocketIoServerHelper::clients`].
    seq: u64,
    status: Mutex<Status>,
    /// For a socket restored authenticated: turns true once the client-connected handler has
    /// run, which an `authenticate` waits for before it is answered.
    resumed: Option<watch::Sender<bool>>,
}

struct Status {
    state: ClientState,
    /// Out of the registry (see [`ClientRecord::retire`]).
    retired: bool,
    /// The client's entry in the helper's timers: its authentication deadline, then its next
    /// ping.
    timer: Option<Entry>,
}

impl ClientRecord {
    /// The client's socket id.
    pub fn id(&self) -> Sid {
        self.socket.id()
    }

    /// Whether this record is the one of `socket` (a recovered socket has the id of the one it
    /// replaces).
    fn is_of(&self, socket: &SocketRef) -> bool {
        Arc::ptr_eq(&self.socket, socket)
    }

    /// Whether the socket was restored by connection state recovery in the authenticated state.
    pub fn resumed(&self) -> bool {
        self.resumed.is_some()
    }

    /// Where the client is in the authentication flow.
    pub fn state(&self) -> ClientState {
        self.status.lock().state
    }

    fn set_state(&self, state: ClientState) {
        self.status.lock().state = state;
    }

    /// The client leaves the registry: its timers' entry is forgotten (it stays in the queue
    /// until due, and is ignored then), and it leaves the authenticated count if it was in it.
    /// Under the status lock, like the transition to authenticated, so the count stays exact
    /// whatever the order of the two.
    fn retire(&self, authenticated: &AtomicUsize) {
        let mut status = self.status.lock();
        status.timer = None;
        if !status.retired {
            status.retired = true;
            if status.state == ClientState::Authenticated {
                authenticated.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id())
            .field("state", &self.state())
            .finish()
    }
}

/// Why `send` did not send.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("\"{0}\" is a reserved event name")]
    /// The topic is a name Socket.IO reserves (`connect`, `disconnect`, ...).
    ReservedEvent(String),
    #[error("Topic is required")]
    /// The topic is empty.
    MissingTopic,
    #[error("the message could not be published: {0}")]
    /// The adapter could not publish the message (Redis down); counted in
    /// [`SocketIoServerHelper::failed_sends`].
    Publish(String),
}

/// What to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// A room name (a socket id is the name of the socket's own room); `None` sends to every
    /// authenticated client.
    pub destination: Option<String>,
    /// The event name the clients receive.
    pub topic: String,
    /// Any JSON value, `0`, `false`, `""` and `null` included.
    pub data: Value,
    /// Whether to log the send (the original's `doLog`).
    pub log: bool,
}

pub(crate) struct Inner {
    io: SocketIo,
    options: HelperOptions,
    authenticate: AuthenticateHandler,
    validate_room: Option<ValidateRoomHandler>,
    client_connected: Option<ClientConnectedHandler>,
    /// Unordered, so that a client leaves in constant time (an order-keeping map moved every
    /// later entry, quadratic when thousands leave); listings sort by `ClientRecord::seq`.
    clients: RwLock<SidMap<Arc<ClientRecord>>>,
    /// The `seq` of the next client.
    next_seq: AtomicU64,
    /// Clients in the registry that have authenticated: what a broadcast reaches here.
    authenticated: AtomicUsize,
    failed_sends: AtomicU64,
    /// Authentications that succeeded, were refused (a token refused, a handler that failed),
    /// and deadlines that passed without one.
    auth_succeeded: AtomicU64,
    auth_refused: AtomicU64,
    auth_timed_out: AtomicU64,
    redis: std::sync::OnceLock<ignis_redis::RedisConnection>,
    /// Deadlines and pings of every client.
    timers: Arc<Timers>,
    /// The task that serves `timers`, started with the first client.
    timer_task: std::sync::OnceLock<AbortHandle>,
    /// The handlers every client gets when it connects (`authenticate`, disconnect), and once
    /// it is authenticated (`join`, `leave`): shared, not registered again on each socket.
    connect_handlers: Arc<SocketHandlers>,
    room_handlers: Arc<SocketHandlers>,
    default_rooms: Vec<Room>,
    /// Set once a drain started ([`SocketIoServerHelper::drain`]); never cleared.
    draining: AtomicBool,
    /// Set by [`SocketIoServerHelper::shutdown`]: the server is closed, `on` refuses.
    closed: AtomicBool,
    /// The application's `connection` listeners ([`SocketIoServerHelper::on`]), in the order
    /// registered.
    connection_listeners: RwLock<Vec<Arc<ConnectionFn>>>,
    /// The application's listeners of events from other nodes, by event.
    server_events: RwLock<HashMap<String, Vec<Arc<ServerEventFn>>>>,
}

/// The longest wait of a drain before it moves its first client (see
/// [`SocketIoServerHelper::drain`]).
pub const DRAIN_LEAD_MAX: Duration = Duration::from_secs(2);

/// How a drain ended ([`SocketIoServerHelper::drain`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// Connections the drain closed.
    pub moved: usize,
    /// Connections still open when the drain ended (its window was over first).
    pub remaining: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(task) = self.timer_task.get() {
            task.abort();
        }
    }
}

/// The Socket.IO server of an Ignis application.
#[derive(Clone)]
pub struct SocketIoServerHelper {
    inner: Arc<Inner>,
}

/// The original's name of [`SocketIoServerHelper`] (`SocketIOServerHelper` in the TypeScript
/// Ignis), kept so that code ported from it reads the same.
pub type SocketIOServerHelper = SocketIoServerHelper;

fn now() -> String {
    iso_timestamp(SystemTime::now())
}

fn object(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::with_capacity(entries.len());
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}

/// Tells a client it is authenticated: `authenticated {id, time}`, then the first `ping`.
fn greet(socket: &SocketRef) {
    // One clock reading for both events (the same instant to the millisecond anyway).
    let time = now();
    let mut authenticated = Map::with_capacity(2);
    authenticated.insert("id", socket.id().as_str());
    authenticated.insert("time", time.clone());
    let _ = socket.emit(
        protocol::EVENT_AUTHENTICATED,
        vec![Value::Map(authenticated)],
    );
    let _ = socket.emit(protocol::EVENT_PING, vec![ping_payload(time)]);
}

/// The payload of the app-level `ping` event: `{time}`.
fn ping_payload(time: String) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert("time", time);
    Value::Map(m)
}

/// Sends the app-level `ping {time}`.
fn send_ping(socket: &SocketRef) {
    let _ = socket.emit(protocol::EVENT_PING, vec![ping_payload(now())]);
}

/// Runs the listeners of an event from another node in order; the first answer is the
/// acknowledgement.
fn run_server_event(
    listeners: Vec<Arc<ServerEventFn>>,
    args: Vec<Value>,
) -> crate::app::BoxFuture<Option<Value>> {
    Box::pin(async move {
        let mut answer = None;
        for listener in listeners {
            match AssertUnwindSafe(listener(args.clone()))
                .catch_unwind()
                .await
            {
                Ok(reply) => {
                    if answer.is_none() {
                        answer = reply;
                    }
                }
                Err(panic) => {
                    tracing::error!(panic = %panic_message(&*panic), "server event listener panicked")
                }
            }
        }
        answer
    })
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

impl SocketIoServerHelper {
    /// Wraps `io`: every connection to its main namespace goes through the authentication state
    /// machine.
    pub fn new(
        io: SocketIo,
        options: HelperOptions,
        authenticate: AuthenticateHandler,
        validate_room: Option<ValidateRoomHandler>,
        client_connected: Option<ClientConnectedHandler>,
    ) -> Self {
        let default_rooms = options
            .default_rooms
            .iter()
            .map(|r| Room::from(r.as_str()))
            .collect();
        let helper = SocketIoServerHelper {
            inner: Arc::new_cyclic(|weak| Inner {
                io,
                options,
                authenticate,
                validate_room,
                client_connected,
                clients: RwLock::new(SidMap::default()),
                next_seq: AtomicU64::new(0),
                authenticated: AtomicUsize::new(0),
                failed_sends: AtomicU64::new(0),
                auth_succeeded: AtomicU64::new(0),
                auth_refused: AtomicU64::new(0),
                auth_timed_out: AtomicU64::new(0),
                redis: std::sync::OnceLock::new(),
                timers: Arc::new(Timers::new()),
                timer_task: std::sync::OnceLock::new(),
                connect_handlers: Arc::new(connect_handlers(weak)),
                room_handlers: Arc::new(room_handlers(weak)),
                default_rooms,
                draining: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                connection_listeners: RwLock::new(Vec::new()),
                server_events: RwLock::new(HashMap::new()),
            }),
        };
        let weak = Arc::downgrade(&helper.inner);
        helper.inner.io.ns("/", move |socket| {
            let weak = weak.clone();
            async move {
                if let Some(inner) = weak.upgrade() {
                    let helper = SocketIoServerHelper { inner };
                    helper.on_client_connect(socket.clone()).await;
                    helper.run_connection_listeners(socket).await;
                }
            }
        });
        tracing::info!(
            identifier = %helper.inner.options.identifier,
            "SocketIO Server READY"
        );
        helper
    }

    /// Scales over this Redis connection (reported by [`SocketIoServerHelper::redis_healthy`]).
    pub(crate) fn with_redis(self, redis: Option<ignis_redis::RedisConnection>) -> Self {
        if let Some(redis) = redis {
            let _ = self.inner.redis.set(redis);
        }
        self
    }

    /// `None` on a single node; else whether the Redis connection is up. While it is down,
    /// local delivery goes on and cross-node operations fail.
    pub fn redis_healthy(&self) -> Option<bool> {
        self.inner.redis.get().map(|r| r.is_healthy())
    }

    /// `None` on a single node; else the Redis connection's state, reconnects, errors and
    /// requests to the other nodes.
    pub fn redis_stats(&self) -> Option<ignis_redis::RedisStats> {
        self.inner.redis.get().map(|r| r.stats())
    }

    /// The Socket.IO server the helper runs on: namespaces, rooms, broadcasts, the engine.
    pub fn io(&self) -> &SocketIo {
        &self.inner.io
    }

    /// The original's name of [`SocketIoServerHelper::io`] (`getIOServer`): the raw Socket.IO
    /// server.
    pub fn get_io_server(&self) -> &SocketIo {
        self.io()
    }

    /// Registers a listener of the Socket.IO server itself (the original's `on({topic,
    /// handler})`), not of a client's events (those are registered on the socket, e.g. in the
    /// client-connected handler):
    ///
    /// - `connection` (or `connect`) with [`ServerListener::Connection`]: runs for every
    ///   socket that connects to the main namespace, after the helper has taken it in (its
    ///   record exists, unauthenticated unless it was restored authenticated);
    /// - any other topic with [`ServerListener::ServerEvent`]: runs for the event of that name
    ///   the other nodes of a cluster send with `server_side_emit`.
    ///
    /// Listeners of one topic run in the order registered. Errors (status 400, the original's
    /// messages): an empty topic (`[on] Invalid topic to start binding handler`), a listener of
    /// the wrong kind for the topic or a reserved event name (`[on] Invalid event handler |
    /// topic: <topic>`), a server already shut down (`[on] IOServer is not initialized yet!`).
    pub fn on(&self, topic: &str, listener: ServerListener) -> Result<(), ApplicationError> {
        if topic.is_empty() {
            return Err(ApplicationError::new(
                "[on] Invalid topic to start binding handler",
            ));
        }
        let connection = topic == protocol::EVENT_CONNECT || topic == "connect";
        let invalid =
            || ApplicationError::new(format!("[on] Invalid event handler | topic: {topic}"));
        match (&listener, connection) {
            (ServerListener::Connection(_), true) => {}
            (ServerListener::ServerEvent(_), false)
                if !ignis_socketio::proto::socketio::is_reserved_event(topic) => {}
            _ => return Err(invalid()),
        }
        if self.inner.closed.load(Ordering::Acquire) {
            return Err(ApplicationError::new(
                "[on] IOServer is not initialized yet!",
            ));
        }
        match listener {
            ServerListener::Connection(f) => self.inner.connection_listeners.write().push(f),
            ServerListener::ServerEvent(f) => {
                let first = {
                    let mut events = self.inner.server_events.write();
                    let listeners = events.entry(topic.to_string()).or_default();
                    listeners.push(f);
                    listeners.len() == 1
                };
                if first {
                    let weak = Arc::downgrade(&self.inner);
                    let event = topic.to_string();
                    self.inner
                        .io
                        .main_namespace()
                        .on_server_event(topic, move |args| {
                            let listeners = weak
                                .upgrade()
                                .and_then(|inner| inner.server_events.read().get(&event).cloned())
                                .unwrap_or_default();
                            run_server_event(listeners, args)
                        });
                }
            }
        }
        tracing::debug!(topic, "server listener registered");
        Ok(())
    }

    /// Runs the application's `connection` listeners for a socket that connected.
    async fn run_connection_listeners(&self, socket: SocketRef) {
        let listeners = self.inner.connection_listeners.read().clone();
        for listener in listeners {
            if let Err(panic) = AssertUnwindSafe(listener(socket.clone()))
                .catch_unwind()
                .await
            {
                tracing::error!(id = %socket.id(), panic = %panic_message(&*panic), "connection listener panicked");
            }
        }
    }

    /// The options the helper runs with.
    pub fn options(&self) -> &HelperOptions {
        &self.inner.options
    }

    /// Every tracked client of this node (any state), in connection order.
    pub fn clients(&self) -> Vec<Arc<ClientRecord>> {
        let mut clients: Vec<_> = self.inner.clients.read().values().cloned().collect();
        clients.sort_unstable_by_key(|c| c.seq);
        clients
    }

    /// How many tracked clients of this node have authenticated (those a broadcast reaches):
    /// a counter, not a walk of the registry.
    pub fn authenticated_count(&self) -> usize {
        self.inner.authenticated.load(Ordering::Relaxed)
    }

    /// A tracked client of this node.
    pub fn client(&self, id: &str) -> Option<Arc<ClientRecord>> {
        self.record(Sid::parse(id)?)
    }

    fn record(&self, id: Sid) -> Option<Arc<ClientRecord>> {
        self.inner.clients.read().get(&id).cloned()
    }

    /// How many clients this node tracks, authenticated or not.
    pub fn client_count(&self) -> usize {
        self.inner.clients.read().len()
    }

    /// Sends that could not be published.
    pub fn failed_sends(&self) -> u64 {
        self.inner.failed_sends.load(Ordering::Relaxed)
    }

    /// The component's figures: clients tracked and authenticated now, the outcomes of
    /// authentications, and failed sends, since it started.
    pub fn stats(&self) -> HelperStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let inner = &self.inner;
        HelperStats {
            clients: self.client_count() as u64,
            authenticated: self.authenticated_count() as u64,
            auth_succeeded: get(&inner.auth_succeeded),
            auth_refused: get(&inner.auth_refused),
            auth_timed_out: get(&inner.auth_timed_out),
            failed_sends: get(&inner.failed_sends),
        }
    }

    /// Takes in a socket that connected (the original's `onClientConnect`, spec §4.2): tracks
    /// it unauthenticated, starts its authentication deadline and listens for its
    /// `authenticate` and its disconnect. The helper calls it for every socket of the main
    /// namespace; an application may call it for a socket the helper does not track yet (one
    /// of another namespace). A socket that is no longer connected, or already tracked, is
    /// logged and left alone.
    pub async fn on_client_connect(&self, socket: SocketRef) {
        let id = socket.id();
        if !socket.connected() {
            tracing::info!(%id, "on_client_connect: the socket is not connected");
            return;
        }
        if self.record(id).is_some_and(|r| r.is_of(&socket)) {
            tracing::info!(%id, "on_client_connect: the client already existed");
            return;
        }
        // A socket restored by connection state recovery that had authenticated is the same
        // client on the same session (it proved it with the private id only that client was
        // given): it goes on authenticated, as the socket it replaces was.
        let resumed = socket.recovered()
            && socket.session_value(SESSION_AUTHENTICATED) == Some(Value::Bool(true));
        if !resumed {
            // Nothing but the auth replies reaches a socket before it authenticates.
            socket.hold_broadcasts(true);
        }
        self.start_timers();
        let record = Arc::new(ClientRecord {
            socket: socket.clone(),
            seq: self.inner.next_seq.fetch_add(1, Ordering::Relaxed),
            status: Mutex::new(Status {
                state: if resumed {
                    ClientState::Authenticated
                } else {
                    ClientState::Unauthorized
                },
                retired: false,
                timer: None,
            }),
            resumed: resumed.then(|| watch::Sender::new(false)),
        });
        if resumed {
            self.inner.authenticated.fetch_add(1, Ordering::Relaxed);
        }
        let replaced = self.inner.clients.write().insert(id, Arc::clone(&record));
        if let Some(old) = replaced {
            // The socket this one recovers, whose cleanup has not run yet; it no longer
            // removes this record when it does (see `forget`).
            tracing::debug!(%id, "record of the recovered socket's predecessor replaced");
            old.retire(&self.inner.authenticated);
        }
        {
            // Scheduled once the record is there, and under its lock: the timer always finds
            // the client and its entry.
            let mut status = record.status.lock();
            status.timer = Some(if resumed {
                self.inner
                    .timers
                    .schedule(id, Kind::Ping, self.inner.options.app_ping_interval)
            } else {
                self.inner.timers.schedule(
                    id,
                    Kind::Deadline,
                    self.inner.options.authenticate_timeout,
                )
            });
        }
        socket.attach(&self.inner.connect_handlers);
        if let Some(ready) = &record.resumed {
            tracing::info!(%id, "Client recovered authenticated");
            // Its rooms came back with the session (the default ones included, unless it left
            // them): they are not joined again. Its handlers did not: the room handlers, and
            // the application's, which the client-connected handler registers.
            socket.attach(&self.inner.room_handlers);
            self.run_client_connected(&socket).await;
            ready.send_replace(true);
        }
    }

    /// Starts the task that serves every client's deadline and pings, once.
    fn start_timers(&self) {
        self.inner.timer_task.get_or_init(|| {
            let weak = Arc::downgrade(&self.inner);
            let timers = Arc::clone(&self.inner.timers);
            tokio::spawn(async move {
                loop {
                    let due = timers.next_due().await;
                    let Some(inner) = weak.upgrade() else {
                        return;
                    };
                    let helper = SocketIoServerHelper { inner };
                    for entry in due {
                        helper.on_timer(entry);
                    }
                }
            })
            .abort_handle()
        });
    }

    fn on_timer(&self, entry: Entry) {
        let (at, id, kind) = entry;
        let Some(record) = self.inner.clients.read().get(&id).cloned() else {
            return;
        };
        let mut status = record.status.lock();
        if status.timer != Some(entry) {
            // Replaced or cancelled after it came due.
            return;
        }
        status.timer = None;
        match kind {
            Kind::Deadline => {
                if status.state != ClientState::Authenticated {
                    drop(status);
                    tracing::info!(%id, "authentication deadline passed");
                    self.inner.auth_timed_out.fetch_add(1, Ordering::Relaxed);
                    self.refuse(&record, MESSAGE_AUTH_TIMEOUT);
                }
            }
            Kind::Ping => {
                let interval = self.inner.options.app_ping_interval.as_millis() as u64;
                // A late tick moves the schedule instead of sending a burst.
                let next = (at + interval).max(self.inner.timers.now_ms() + 1);
                status.timer = Some(self.inner.timers.schedule_at(next, id, Kind::Ping));
                drop(status);
                send_ping(&record.socket);
            }
        }
    }

    /// Removes the record of `socket`, if the registry still holds that socket's record and not
    /// the one of a socket that recovered its id since.
    fn forget(&self, socket: &SocketRef) {
        let record = {
            let mut clients = self.inner.clients.write();
            match clients.get(&socket.id()) {
                Some(record) if record.is_of(socket) => clients.remove(&socket.id()),
                _ => None,
            }
        };
        if let Some(record) = record {
            record.retire(&self.inner.authenticated);
        }
    }

    /// Whether the registry still holds `record` (and not a recovered successor's).
    fn holds(&self, record: &Arc<ClientRecord>) -> bool {
        self.inner
            .clients
            .read()
            .get(&record.id())
            .is_some_and(|r| Arc::ptr_eq(r, record))
    }

    async fn on_authenticate(&self, socket: SocketRef, event: Event) {
        let id = socket.id();
        let Some(record) = self.record(id).filter(|r| r.is_of(&socket)) else {
            tracing::warn!(%id, "authenticate from an unknown client");
            return;
        };
        let resumed = {
            let mut status = record.status.lock();
            match status.state {
                ClientState::Unauthorized => {
                    status.state = ClientState::Authenticating;
                    false
                }
                ClientState::Authenticated if record.resumed.is_some() => true,
                state => {
                    tracing::warn!(%id, %state, "Client attempted auth in invalid state");
                    return;
                }
            }
        };
        if resumed {
            self.answer_resumed(&record).await;
            return;
        }
        let request = AuthRequest {
            socket: socket.clone(),
            socket_id: id.to_string(),
            handshake: socket.handshake().clone(),
            payload: event.args.into_iter().next(),
        };
        let outcome = AssertUnwindSafe((self.inner.authenticate.0)(request))
            .catch_unwind()
            .await;
        if !self.holds(&record) {
            tracing::info!(%id, "client left during authentication");
            return;
        }
        if record.state() == ClientState::Authenticated {
            tracing::info!(%id, "client authenticated by the application meanwhile");
            return;
        }
        let counter = match &outcome {
            Ok(Ok(true)) => &self.inner.auth_succeeded,
            _ => &self.inner.auth_refused,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Ok(Ok(true)) => self.authenticated(&record).await,
            Ok(Ok(false)) => self.refuse(&record, protocol::MESSAGE_INVALID_TOKEN),
            Ok(Err(error)) => {
                tracing::error!(%id, %error, "authenticate handler failed");
                self.refuse(&record, protocol::MESSAGE_AUTH_FAILED);
            }
            Err(panic) => {
                tracing::error!(%id, panic = %panic_message(&*panic), "authenticate handler panicked");
                self.refuse(&record, protocol::MESSAGE_AUTH_FAILED);
            }
        }
    }

    /// Sends `unauthenticated`, then disconnects the client and closes its whole connection:
    /// the message and the DISCONNECT are queued before the close, which waits for them to go
    /// out, so the client always gets them; and a client that failed cannot stay on the
    /// connection and ask to join the namespace again.
    fn refuse(&self, record: &ClientRecord, message: &str) {
        record.set_state(ClientState::Unauthorized);
        record.socket.set_session_value(SESSION_AUTHENTICATED, None);
        let payload = object(vec![("message", message.into()), ("time", now().into())]);
        let _ = record
            .socket
            .emit(protocol::EVENT_UNAUTHENTICATE, vec![payload]);
        self.forget(&record.socket);
        record.socket.disconnect_with(true);
    }

    /// Authenticates a tracked client without asking the authenticate handler (the
    /// original's `onClientAuthenticated`, spec §4.4), as a successful `authenticate` does:
    /// `authenticated` and the first `ping` to the client, the default rooms, `join`/`leave`,
    /// the app-level pings and the client-connected handler. An application calls it to
    /// authenticate a socket by other means (a socket that never sent `authenticate`, or one
    /// still waiting for the handler's answer, which is then ignored). A socket the helper does
    /// not track is disconnected, as in the original; one already authenticated is left alone.
    pub async fn on_client_authenticated(&self, socket: &SocketRef) {
        let id = socket.id();
        let Some(record) = self.record(id).filter(|r| r.is_of(socket)) else {
            tracing::warn!(%id, "on_client_authenticated: Unknown client");
            socket.disconnect();
            return;
        };
        if record.state() == ClientState::Authenticated {
            tracing::debug!(%id, "on_client_authenticated: already authenticated");
            return;
        }
        self.authenticated(&record).await;
    }

    /// Marks a client authenticated and greets it (see
    /// [`SocketIoServerHelper::on_client_authenticated`]).
    async fn authenticated(&self, record: &Arc<ClientRecord>) {
        let socket = record.socket.clone();
        let id = socket.id();
        {
            let mut status = record.status.lock();
            if status.state == ClientState::Authenticated {
                // Authenticated by the application while the handler was asked.
                return;
            }
            if !status.retired {
                self.inner.authenticated.fetch_add(1, Ordering::Relaxed);
            }
            status.state = ClientState::Authenticated;
            // The deadline's entry is ignored when it comes due.
            status.timer = None;
        }
        // Kept with the session: a socket restored by connection state recovery goes on
        // authenticated (see `on_client_connect`).
        socket.set_session_value(SESSION_AUTHENTICATED, Some(Value::Bool(true)));
        socket.hold_broadcasts(false);
        greet(&socket);
        // What `join` does, without building another list of the same rooms.
        socket
            .namespace()
            .adapter()
            .add_all(id, &self.inner.default_rooms);
        socket.attach(&self.inner.room_handlers);

        self.start_timers();
        {
            let mut status = record.status.lock();
            // Unless the client left meanwhile: then nothing would cancel the entry.
            if self.holds(record) {
                status.timer = Some(self.inner.timers.schedule(
                    id,
                    Kind::Ping,
                    self.inner.options.app_ping_interval,
                ));
            }
        }

        self.run_client_connected(&socket).await;
    }

    /// Runs the client-connected handler; its failure is logged and undoes nothing.
    async fn run_client_connected(&self, socket: &SocketRef) {
        let id = socket.id();
        if let Some(handler) = &self.inner.client_connected {
            match AssertUnwindSafe((handler.0)(socket.clone()))
                .catch_unwind()
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!(%id, %error, "client connected handler failed"),
                Err(panic) => {
                    tracing::error!(%id, panic = %panic_message(&*panic), "client connected handler panicked")
                }
            }
        }
    }

    /// Answers the `authenticate` of a socket restored authenticated (clients send it on every
    /// connect) as a first authentication is answered, `authenticated` then `ping`, without
    /// running the authenticate handler again: its side effects (the socket's data, the
    /// application's bookkeeping) came back with the session or were never undone. Answered
    /// once the client-connected handler has run, so that, as after a first authentication, the
    /// application's handlers are there when the client hears `authenticated`.
    async fn answer_resumed(&self, record: &Arc<ClientRecord>) {
        if let Some(ready) = &record.resumed {
            let mut ready = ready.subscribe();
            // Fails only if the record is dropped, and this holds it.
            let _ = ready.wait_for(|ready| *ready).await;
        }
        if self.holds(record) {
            greet(&record.socket);
        }
    }

    /// Sends the app-level `ping {time}` to a tracked client now (the original's `ping`): with
    /// `ignore_auth` false, a client that has not authenticated is disconnected instead. A
    /// socket the helper does not track is only logged. The helper's own pings skip the check.
    pub fn ping(&self, socket: &SocketRef, ignore_auth: bool) {
        let id = socket.id();
        let Some(record) = self.record(id).filter(|r| r.is_of(socket)) else {
            tracing::info!(%id, "ping: Unknown client");
            return;
        };
        if !ignore_auth && record.state() != ClientState::Authenticated {
            tracing::info!(%id, state = %record.state(), "ping: client not authenticated, disconnecting");
            self.forget(socket);
            socket.disconnect();
            return;
        }
        send_ping(socket);
    }

    async fn on_join(&self, socket: SocketRef, mut event: Event) {
        let id = socket.id();
        let requested = match parse_rooms(&socket, &event) {
            Ok(rooms) => rooms,
            Err(refusal) => return refusal.reply(&socket, &mut event, protocol::EVENT_JOIN),
        };
        let mut refused: Vec<Refused> = Vec::new();
        if !requested.is_empty() {
            match &self.inner.validate_room {
                None => {
                    tracing::warn!(%id, rooms = ?requested, "Join rejected | reason: no validateRoomFn configured");
                    refused.extend(requested.iter().map(|r| Refused::not_allowed(r)));
                }
                Some(validate) => {
                    match AssertUnwindSafe((validate.0)(socket.clone(), requested.clone()))
                        .catch_unwind()
                        .await
                    {
                        Ok(Ok(allowed)) if !allowed.is_empty() => {
                            let kept: HashSet<&str> = allowed.iter().map(String::as_str).collect();
                            refused.extend(
                                requested
                                    .iter()
                                    .filter(|r| !kept.contains(r.as_str()))
                                    .map(|r| Refused::not_allowed(r)),
                            );
                            match socket.try_join(allowed) {
                                Ok(()) => {}
                                Err(JoinError::Refused(limited)) => {
                                    let limited: Vec<Refused> =
                                        limited.iter().map(Refused::from_limit).collect();
                                    tracing::info!(%id, refused = limited.len(), "Join refused by the limits");
                                    if !event.wants_ack() {
                                        limited_error(&socket, &limited);
                                    }
                                    refused.extend(limited);
                                }
                                Err(e @ JoinError::TooManyRooms { .. }) => {
                                    // The validator answered more rooms than a socket may hold.
                                    let refusal = PayloadError::too_many(e.to_string());
                                    return refusal.reply(
                                        &socket,
                                        &mut event,
                                        protocol::EVENT_JOIN,
                                    );
                                }
                            }
                        }
                        Ok(Ok(_)) => {
                            tracing::warn!(%id, rooms = ?requested, "Join rejected | reason: no rooms allowed");
                            refused.extend(requested.iter().map(|r| Refused::not_allowed(r)));
                        }
                        Ok(Err(error)) => {
                            tracing::error!(%id, %error, "validate room handler failed")
                        }
                        Err(panic) => {
                            tracing::error!(%id, panic = %panic_message(&*panic), "validate room handler panicked")
                        }
                    }
                }
            }
        }
        ack_rooms(&socket, &mut event, &refused);
    }

    /// Sends an event to a room (a client id is its own room) or to every authenticated client.
    /// Returns once the send is queued: with a cluster adapter, Redis may take it later (see
    /// [`SocketIOServerHelper::send_confirmed`]).
    pub fn send(&self, options: SendOptions) -> Result<(), SendError> {
        let operators = self.send_operators(&options)?;
        operators
            .emit(&options.topic, vec![options.data])
            .map_err(|e| self.send_failed(e))
    }

    /// Sends as [`SocketIOServerHelper::send`] does, and resolves once the adapter confirmed
    /// the send: with the Redis streams adapter, once the entry is in the stream, so that
    /// sends confirmed one after another reach every client in that order, whichever node
    /// they went through. Fails with [`SendError::Publish`] when Redis did not take it within
    /// the adapter's bound. What the REST API's send routes use.
    pub async fn send_confirmed(&self, options: SendOptions) -> Result<(), SendError> {
        let operators = self.send_operators(&options)?;
        operators
            .emit_confirmed(&options.topic, vec![options.data])
            .await
            .map_err(|e| self.send_failed(e))
    }

    /// Checks the topic, logs the send if asked, and picks its recipients.
    fn send_operators(&self, options: &SendOptions) -> Result<Operators, SendError> {
        if options.topic.is_empty() {
            return Err(SendError::MissingTopic);
        }
        if ignis_socketio::proto::socketio::is_reserved_event(&options.topic) {
            return Err(SendError::ReservedEvent(options.topic.clone()));
        }
        let operators = match options.destination.as_deref().filter(|d| !d.is_empty()) {
            Some(room) => self.inner.io.to(room),
            None => self.inner.io.operators(),
        };
        if options.log {
            tracing::info!(
                destination = options.destination.as_deref().unwrap_or("all"),
                topic = %options.topic,
                "Message emitted"
            );
        }
        Ok(operators)
    }

    fn send_failed(&self, e: EmitError) -> SendError {
        self.inner.failed_sends.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "send failed");
        SendError::Publish(e.to_string())
    }

    /// Disconnects a client ("io server disconnect") and forgets it.
    pub fn disconnect(&self, id: &str) {
        let record = Sid::parse(id).and_then(|sid| self.inner.clients.write().remove(&sid));
        if let Some(record) = record {
            record.retire(&self.inner.authenticated);
            record.socket.disconnect();
        } else if let Some(socket) =
            Sid::parse(id).and_then(|sid| self.inner.io.main_namespace().get_socket(sid))
        {
            socket.disconnect();
        }
    }

    /// Disconnects every client and closes the server. After a drain started
    /// ([`SocketIoServerHelper::drain`]) the clients still here are not told
    /// `io server disconnect` (which socket.io-client takes as final): their connections
    /// close, so they reconnect elsewhere, with their sessions kept when recovery is on.
    pub async fn shutdown(&self) {
        tracing::info!("Shutting down SocketIO server...");
        self.inner.closed.store(true, Ordering::Release);
        let draining = self.is_draining();
        let records: Vec<_> = std::mem::take(&mut *self.inner.clients.write())
            .into_values()
            .collect();
        self.inner.timers.clear();
        for record in records {
            record.retire(&self.inner.authenticated);
            if !draining {
                record.socket.disconnect();
            }
        }
        if !draining {
            // Let the DISCONNECT packets leave before the connections close.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Sockets leave with "server shutting down" (no packet) and the connections close.
        self.inner.io.close();
        tracing::info!("SocketIO server shutdown complete");
    }

    /// Whether a drain started: the node takes no new clients and is moving its clients off.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Puts the node in draining mode without moving anyone yet: from now on every new
    /// handshake is refused (`503`, see [`ignis_socketio::engine::EngineError::Draining`]) and
    /// [`SocketIoServerHelper::is_draining`] is true. True for the call that switched it on.
    pub fn start_draining(&self) -> bool {
        let first = !self.inner.draining.swap(true, Ordering::AcqRel);
        self.inner.io.engine().refuse_new_sessions(true);
        first
    }

    /// Drains the node: takes no new clients ([`SocketIoServerHelper::start_draining`]) and
    /// closes the connections of the clients here one after another, evenly spread over
    /// `window`, so that they do not all reconnect at the same moment. The first fifth of the
    /// window (at most [`DRAIN_LEAD_MAX`]) moves no one: a load balancer probing the node's
    /// readiness has that long to stop sending clients here. A connection is closed
    /// the way a network failure closes it, not with `io server disconnect`: socket.io-client
    /// reconnects (through a load balancer, to another node), and with connection state
    /// recovery on the session is kept as on any such close. Ends when every connection is
    /// gone or `window` is over, whichever comes first; the server is not stopped (call
    /// [`SocketIoServerHelper::shutdown`] or stop the application, which then closes what is
    /// left the same way).
    pub async fn drain(&self, window: Duration) -> DrainOutcome {
        self.start_draining();
        let started = Instant::now();
        let deadline = started + window;
        let engine = self.inner.io.engine();
        let mut sockets = self.inner.io.main_namespace().sockets();
        // Oldest first, as the registry lists them; the others after.
        let order: SidMap<u64> = self
            .inner
            .clients
            .read()
            .iter()
            .map(|(id, record)| (*id, record.seq))
            .collect();
        sockets.sort_by_key(|s| order.get(&s.id()).copied().unwrap_or(u64::MAX));
        let count = sockets.len();
        tracing::info!(
            clients = count,
            window_ms = window.as_millis() as u64,
            "draining: moving the clients off this node"
        );
        // A load balancer needs a probe or two to see that the node is not ready: clients moved
        // before it did would come back here, be refused and retry later. A fifth of the
        // window, up to 2 s, goes by before the first one is moved.
        let lead = (window / 5).min(DRAIN_LEAD_MAX);
        let spread = window - lead;
        let mut moved = 0;
        for (i, socket) in sockets.into_iter().enumerate() {
            // Slot i + 1 of count + 1 after the lead: evenly apart, the last one a slot before
            // the end, so that it has time to leave.
            let due = started + lead + spread.mul_f64((i + 1) as f64 / (count + 1) as f64);
            tokio::time::sleep_until(due).await;
            if engine.session_count() == 0 {
                break;
            }
            if socket.connected() {
                socket.close_connection();
                moved += 1;
            }
        }
        // What the list did not hold: connections that have not joined the namespace (a
        // handshake that went no further) or joined after the list was made. Closed the same
        // way, at the last slot.
        if engine.session_count() > 0 {
            self.inner.io.close();
        }
        while engine.session_count() > 0 && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(Duration::from_millis(20).min(left)).await;
        }
        let remaining = engine.session_count();
        tracing::info!(moved, remaining, "drain over");
        DrainOutcome { moved, remaining }
    }
}

/// The handlers of a client that connected: `authenticate`, and forgetting it when it leaves.
fn connect_handlers(weak: &Weak<Inner>) -> SocketHandlers {
    let mut handlers = SocketHandlers::new();
    let w = weak.clone();
    handlers.on_disconnect(move |socket, reason| {
        let weak = w.clone();
        async move {
            if let Some(inner) = weak.upgrade() {
                tracing::info!(id = %socket.id(), %reason, "Client disconnected");
                SocketIoServerHelper { inner }.forget(&socket);
            }
        }
    });
    let w = weak.clone();
    handlers.on(protocol::EVENT_AUTHENTICATE, move |socket, event| {
        let weak = w.clone();
        async move {
            if let Some(inner) = weak.upgrade() {
                SocketIoServerHelper { inner }
                    .on_authenticate(socket, event)
                    .await;
            }
        }
    });
    handlers
}

/// The handlers of an authenticated client: `join` (through the validator) and `leave`.
fn room_handlers(weak: &Weak<Inner>) -> SocketHandlers {
    let mut handlers = SocketHandlers::new();
    let w = weak.clone();
    handlers.on(protocol::EVENT_JOIN, move |socket, event| {
        let weak = w.clone();
        async move {
            if let Some(inner) = weak.upgrade() {
                SocketIoServerHelper { inner }.on_join(socket, event).await;
            }
        }
    });
    handlers.on_sync(protocol::EVENT_LEAVE, on_leave);
    handlers
}

/// A `join`/`leave` request refused as a whole.
struct PayloadError {
    code: &'static str,
    message: String,
}

impl PayloadError {
    fn malformed(message: &str) -> PayloadError {
        PayloadError {
            code: "INVALID_PAYLOAD",
            message: message.into(),
        }
    }

    fn too_many(message: String) -> PayloadError {
        PayloadError {
            code: "TOO_MANY_ROOMS",
            message,
        }
    }

    /// Answers through the request's acknowledgement if it asked for one, else with an `error`
    /// event. The connection stays up.
    fn reply(self, socket: &SocketRef, event: &mut Event, name: &str) {
        tracing::warn!(id = %socket.id(), event = name, code = self.code, message = %self.message, "request refused");
        let payload = object(vec![
            ("event", name.into()),
            ("code", self.code.into()),
            ("message", self.message.into()),
        ]);
        if event.wants_ack() {
            event.ack(vec![object(vec![("error", payload)])]);
        } else {
            let _ = socket.emit("error", &payload);
        }
    }
}

/// The rooms of a `join`/`leave` payload `{rooms: [..]}`; a missing payload or `rooms` is no
/// rooms. A malformed payload, or one naming more rooms than a socket may be in, is refused
/// as a whole before any room is looked at (the names are not even copied).
fn parse_rooms(socket: &SocketRef, event: &Event) -> Result<Vec<String>, PayloadError> {
    let payload = match event.args.first() {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Map(m)) => m,
        Some(_) => {
            return Err(PayloadError::malformed(
                "payload must be an object {rooms: string[]}",
            ));
        }
    };
    match payload.get("rooms") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(rooms)) => {
            if let Err(e) = socket.check_room_count(rooms.len()) {
                return Err(PayloadError::too_many(e.to_string()));
            }
            rooms
                .iter()
                .map(|r| match r {
                    Value::Str(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(PayloadError::malformed("rooms must be non-empty strings")),
                })
                .collect()
        }
        Some(_) => Err(PayloadError::malformed("rooms must be an array of strings")),
    }
}

/// A room of a `join` that was not joined, and why.
struct Refused {
    room: String,
    code: &'static str,
    reason: &'static str,
}

impl Refused {
    fn not_allowed(room: &str) -> Refused {
        Refused {
            room: room.to_string(),
            code: "NOT_ALLOWED",
            reason: "the room rules do not allow it",
        }
    }

    fn from_limit(refused: &RefusedRoom) -> Refused {
        Refused {
            room: refused.room.to_string(),
            code: refused.reason.code(),
            reason: refused.reason.message(),
        }
    }

    fn to_value(&self) -> Value {
        object(vec![
            ("room", self.room.as_str().into()),
            ("code", self.code.into()),
            ("reason", self.reason.into()),
        ])
    }
}

/// Tells a client that asked for no acknowledgement which rooms the limits refused.
fn limited_error(socket: &SocketRef, refused: &[Refused]) {
    let payload = object(vec![
        ("event", protocol::EVENT_JOIN.into()),
        ("code", refused.first().map_or("", |r| r.code).into()),
        (
            "message",
            format!("{} room(s) refused", refused.len()).into(),
        ),
        (
            "refused",
            Value::Array(refused.iter().map(Refused::to_value).collect()),
        ),
    ]);
    let _ = socket.emit("error", &payload);
}

/// Acknowledges with the rooms held, and the rooms refused (with why) when there are any.
fn ack_rooms(socket: &SocketRef, event: &mut Event, refused: &[Refused]) {
    if event.wants_ack() {
        let rooms = Value::Array(
            socket
                .rooms()
                .iter()
                .map(|r| Value::from(r.to_string()))
                .collect(),
        );
        let mut entries = vec![("rooms", rooms)];
        if !refused.is_empty() {
            entries.push((
                "refused",
                Value::Array(refused.iter().map(Refused::to_value).collect()),
            ));
        }
        event.ack(vec![object(entries)]);
    }
}

fn on_leave(socket: SocketRef, mut event: Event) {
    let rooms = match parse_rooms(&socket, &event) {
        Ok(rooms) => rooms,
        Err(refusal) => return refusal.reply(&socket, &mut event, protocol::EVENT_LEAVE),
    };
    let own = socket.id();
    for room in rooms {
        // A client can never leave its own room: it is how messages reach it.
        if room != own.as_str() {
            socket.leave(&room);
        }
    }
    ack_rooms(&socket, &mut event, &[]);
}
