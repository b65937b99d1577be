//! `SocketIoClientHelper`: the Ignis managed client (spec §9) on top of [`Socket`].
//!
//! It tracks the authentication state (`unauthorized` → `authenticating` → `authenticated`),
//! reports the connection's life through five callbacks, and keeps the user's subscriptions
//! apart from its own listeners. Where the reference misbehaves, it follows the project's
//! decisions (DESIGN.md #22–#26): only user handlers count as duplicates, one handler can be
//! unsubscribed, internal listeners are never removed by `unsubscribe`, `authenticate` has a
//! timeout, and `on_authenticated` receives the server's payload. With
//! [`HelperOptions::resume_after_reconnect`] it also picks up a lost connection by itself:
//! authenticates again, asks for its rooms again unless the session was recovered, and reports
//! which through `on_resumed`.

mod options;
mod subscription;

use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use ignis_proto::Value;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::constants::{
    ClientState, EVENT_AUTHENTICATE, EVENT_AUTHENTICATED, EVENT_JOIN, EVENT_LEAVE, EVENT_PING,
    EVENT_UNAUTHENTICATE,
};
use crate::error::{ConnectError, Error};
use crate::socket::{HandlerId, Socket};

pub use options::HelperOptions;
pub use subscription::{HandlerError, Subscription, SubscriptionId};

/// Errors of the helper. The first two carry the reference's exact messages (status 400).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HelperError {
    /// `emit` while not connected.
    #[error("Invalid socket client state to emit")]
    InvalidState,
    /// `emit` with an empty topic.
    #[error("Topic is required to emit")]
    TopicRequired,
    /// No `authenticated`/`unauthenticated` answer within the authenticate timeout.
    #[error("authentication timed out")]
    AuthenticateTimeout,
    /// The server answered `unauthenticated` with this message.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// `authenticate` was not started: not connected, or not in the `unauthorized` state.
    #[error("cannot authenticate in state {0} (connected: {1})")]
    CannotAuthenticate(ClientState, bool),
    /// The connection was lost while waiting.
    #[error("disconnected")]
    Disconnected,
    /// The helper was shut down.
    #[error("the helper was shut down")]
    Shutdown,
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The client refused the operation.
    #[error(transparent)]
    Client(#[from] Error),
}

impl HelperError {
    /// The reference's HTTP-style status for the errors it defines.
    pub fn status_code(&self) -> u16 {
        match self {
            HelperError::InvalidState | HelperError::TopicRequired => 400,
            _ => 500,
        }
    }
}

type AuthWaiter = oneshot::Sender<Result<Value, HelperError>>;

struct State {
    client_state: ClientState,
    /// Counts `authenticate` calls so that a stale timer does not end a newer attempt.
    auth_attempt: u64,
    auth_waiters: Vec<AuthWaiter>,
    subscriptions: HashMap<String, Vec<(SubscriptionId, HandlerId)>>,
    next_subscription: u64,
    shut_down: bool,
    /// Rooms asked for with `join_rooms` and not left since: what a resumed connection asks
    /// for again. Only what the application asked, so bounded by it.
    rooms: BTreeSet<String>,
    /// Whether the connection authenticated once: a reconnection then resumes.
    was_authenticated: bool,
    /// A reconnection is being resumed: the next `authenticated` completes it.
    resuming: bool,
}

struct Shared {
    identifier: String,
    options: HelperOptions,
    socket: Socket,
    state: Mutex<State>,
}

/// A managed Socket.IO client with the Ignis authentication flow.
///
/// ```no_run
/// use ignis_client::{Client, HelperOptions, SocketIoClientHelper, Subscription};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let options = HelperOptions::new(
///     "billing-service",
///     Client::builder("http://127.0.0.1:3000")
///         .path("/io")
///         .header("authorization", "Bearer token"),
/// )
/// .on_connected(|| println!("connected"))
/// .on_authenticated(|payload| println!("authenticated as {:?}", payload.get("id")));
/// let helper = SocketIoClientHelper::new(options)?;
/// helper.connect_and_wait().await?;
/// helper.authenticate_and_wait().await?;
/// helper.subscribe(Subscription::sync("invoice:paid", |event| {
///     println!("paid: {:?}", event.args);
/// }));
/// helper.join_rooms(&["invoices"]);
/// helper.emit("invoice:ack", &serde_json::json!({ "id": 7 }))?;
/// helper.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SocketIoClientHelper {
    shared: Arc<Shared>,
}

/// The original's name of [`SocketIoClientHelper`] (`SocketIOClientHelper` in the TypeScript
/// Ignis), kept so that code ported from it reads the same.
pub type SocketIOClientHelper = SocketIoClientHelper;

impl std::fmt::Debug for SocketIoClientHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIoClientHelper")
            .field("identifier", &self.shared.identifier)
            .field("state", &self.state())
            .finish()
    }
}

fn guarded(identifier: &str, what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!(identifier, "the {what} callback panicked");
    }
}

impl SocketIoClientHelper {
    /// Creates the socket, registers the internal listeners and, unless `auto_connect` is off,
    /// starts connecting. Must run inside a tokio runtime.
    pub fn new(options: HelperOptions) -> Result<SocketIoClientHelper, HelperError> {
        let manager = options.client.clone().build()?;
        let socket = manager.socket(&options.namespace)?;
        let helper = SocketIoClientHelper {
            shared: Arc::new(Shared {
                identifier: options.identifier.clone(),
                socket,
                state: Mutex::new(State {
                    client_state: ClientState::Unauthorized,
                    auth_attempt: 0,
                    auth_waiters: Vec::new(),
                    subscriptions: HashMap::new(),
                    next_subscription: 0,
                    shut_down: false,
                    rooms: BTreeSet::new(),
                    was_authenticated: false,
                    resuming: false,
                }),
                options,
            }),
        };
        helper.register_internal_listeners();
        if helper.shared.options.auto_connect {
            helper.shared.socket.open();
        }
        Ok(helper)
    }

    fn register_internal_listeners(&self) {
        let socket = &self.shared.socket;
        let weak = Arc::downgrade(&self.shared);
        socket.on_connect(move || {
            let Some(shared) = weak.upgrade() else { return };
            let resume = {
                let mut state = shared.state.lock();
                if state.shut_down {
                    return;
                }
                let resume = shared.options.resume && state.was_authenticated;
                state.resuming = resume;
                resume
            };
            if let Some(cb) = &shared.options.on_connected {
                guarded(&shared.identifier, "on_connected", || cb());
            }
            if resume {
                let helper = SocketIoClientHelper { shared };
                // The application's `on_connected` may have authenticated already.
                if helper.state() == ClientState::Unauthorized
                    && let Err(e) = helper.start_authenticate(None)
                {
                    tracing::warn!(identifier = %helper.shared.identifier, "cannot authenticate again: {e}");
                }
            }
        });
        let weak = Arc::downgrade(&self.shared);
        socket.on_disconnect(move |reason| {
            let Some(shared) = weak.upgrade() else { return };
            let (waiters, shut_down) = {
                let mut state = shared.state.lock();
                state.client_state = ClientState::Unauthorized;
                (std::mem::take(&mut state.auth_waiters), state.shut_down)
            };
            for waiter in waiters {
                let _ = waiter.send(Err(HelperError::Disconnected));
            }
            if !shut_down && let Some(cb) = &shared.options.on_disconnected {
                guarded(
                    &shared.identifier,
                    "on_disconnected",
                    || cb(reason.as_str()),
                );
            }
        });
        let weak = Arc::downgrade(&self.shared);
        socket.on_connect_error(move |err| {
            if let Some(shared) = weak.upgrade()
                && !shared.state.lock().shut_down
                && let Some(cb) = &shared.options.on_error
            {
                let err = HelperError::Connect(err.clone());
                guarded(&shared.identifier, "on_error", || cb(&err));
            }
        });
        let weak = Arc::downgrade(&self.shared);
        socket.on(EVENT_AUTHENTICATED, move |event| {
            let Some(shared) = weak.upgrade() else { return };
            let payload = event.args.into_iter().next().unwrap_or(Value::Null);
            let (waiters, shut_down, resumed) = {
                let mut state = shared.state.lock();
                state.client_state = ClientState::Authenticated;
                state.was_authenticated = true;
                let resumed = std::mem::take(&mut state.resuming);
                (std::mem::take(&mut state.auth_waiters), state.shut_down, resumed)
            };
            for waiter in waiters {
                let _ = waiter.send(Ok(payload.clone()));
            }
            if !shut_down && let Some(cb) = &shared.options.on_authenticated {
                guarded(&shared.identifier, "on_authenticated", || cb(&payload));
            }
            if resumed && !shut_down {
                let recovered = shared.socket.recovered();
                let rooms: Vec<String> = shared.state.lock().rooms.iter().cloned().collect();
                if !recovered && !rooms.is_empty() {
                    let payload = serde_json::json!({ "rooms": rooms });
                    if let Err(e) = shared.socket.emit(EVENT_JOIN, &payload) {
                        tracing::warn!(identifier = %shared.identifier, "cannot join the rooms again: {e}");
                    }
                }
                tracing::info!(identifier = %shared.identifier, recovered, rooms = rooms.len(), "connection resumed");
                if let Some(cb) = &shared.options.on_resumed {
                    guarded(&shared.identifier, "on_resumed", || cb(recovered));
                }
            }
        });
        let weak = Arc::downgrade(&self.shared);
        socket.on(EVENT_UNAUTHENTICATE, move |event| {
            let Some(shared) = weak.upgrade() else { return };
            let message = event
                .args
                .first()
                .and_then(|data| data.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let (waiters, shut_down) = {
                let mut state = shared.state.lock();
                state.client_state = ClientState::Unauthorized;
                (std::mem::take(&mut state.auth_waiters), state.shut_down)
            };
            for waiter in waiters {
                let _ = waiter.send(Err(HelperError::Unauthenticated(message.clone())));
            }
            if !shut_down && let Some(cb) = &shared.options.on_unauthenticated {
                guarded(&shared.identifier, "on_unauthenticated", || cb(&message));
            }
        });
        let identifier = self.shared.identifier.clone();
        socket.on(EVENT_PING, move |event| {
            tracing::debug!(identifier, args = ?event.args, "ping");
        });
    }

    /// The logger scope given in the options.
    pub fn identifier(&self) -> &str {
        &self.shared.identifier
    }

    /// The authentication state.
    pub fn state(&self) -> ClientState {
        self.shared.state.lock().client_state
    }

    /// The underlying socket.
    pub fn socket(&self) -> &Socket {
        &self.shared.socket
    }

    /// Whether the socket is connected.
    pub fn connected(&self) -> bool {
        self.shared.socket.connected()
    }

    /// Whether the last connection recovered the previous session (connection state recovery
    /// on the server): same id, rooms kept, missed events delivered.
    pub fn recovered(&self) -> bool {
        self.shared.socket.recovered()
    }

    /// Sends `authenticate` and moves to `authenticating` at once; does nothing (and says so
    /// with `false` and a warning) when not connected or not `unauthorized`.
    ///
    /// Without an answer within the authenticate timeout the state goes back to
    /// `unauthorized` and `on_error` gets [`HelperError::AuthenticateTimeout`].
    pub fn authenticate(&self) -> bool {
        self.start_authenticate(None).is_ok()
    }

    /// [`authenticate`](Self::authenticate), then waits for the answer: the `authenticated`
    /// payload, or why there was none.
    pub async fn authenticate_and_wait(&self) -> Result<Value, HelperError> {
        let (tx, rx) = oneshot::channel();
        self.start_authenticate(Some(tx))?;
        rx.await.unwrap_or(Err(HelperError::Shutdown))
    }

    fn start_authenticate(&self, waiter: Option<AuthWaiter>) -> Result<(), HelperError> {
        let connected = self.shared.socket.connected();
        let attempt = {
            let mut state = self.shared.state.lock();
            if state.shut_down {
                return Err(HelperError::Shutdown);
            }
            if !connected || state.client_state != ClientState::Unauthorized {
                tracing::warn!(
                    identifier = %self.shared.identifier,
                    state = %state.client_state,
                    connected,
                    "cannot authenticate now"
                );
                return Err(HelperError::CannotAuthenticate(
                    state.client_state,
                    connected,
                ));
            }
            state.client_state = ClientState::Authenticating;
            state.auth_attempt += 1;
            state.auth_waiters.extend(waiter);
            state.auth_attempt
        };
        if let Err(e) = self.shared.socket.emit_args(EVENT_AUTHENTICATE, Vec::new()) {
            let waiters = {
                let mut state = self.shared.state.lock();
                state.client_state = ClientState::Unauthorized;
                std::mem::take(&mut state.auth_waiters)
            };
            for w in waiters {
                let _ = w.send(Err(HelperError::Client(e.clone())));
            }
            return Err(HelperError::Client(e));
        }
        let weak = Arc::downgrade(&self.shared);
        let timeout = self.shared.options.authenticate_timeout;
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let Some(shared) = weak.upgrade() else { return };
            let waiters = {
                let mut state = shared.state.lock();
                if state.auth_attempt != attempt
                    || state.client_state != ClientState::Authenticating
                {
                    return;
                }
                state.client_state = ClientState::Unauthorized;
                std::mem::take(&mut state.auth_waiters)
            };
            for w in waiters {
                let _ = w.send(Err(HelperError::AuthenticateTimeout));
            }
            if let Some(cb) = &shared.options.on_error {
                guarded(&shared.identifier, "on_error", || {
                    cb(&HelperError::AuthenticateTimeout)
                });
            }
        });
        Ok(())
    }

    /// Registers a user handler. With `ignore_duplicate` (the default) nothing happens when
    /// the event already has a user handler; the helper's own listeners do not count. A
    /// subscription without a handler is refused with a warning. Gives the id that
    /// [`unsubscribe`](Self::unsubscribe) takes.
    pub fn subscribe(&self, subscription: Subscription) -> Option<SubscriptionId> {
        let Subscription {
            event,
            handler,
            ignore_duplicate,
        } = subscription;
        let Some(handler) = handler else {
            tracing::warn!(identifier = %self.shared.identifier, event, "subscribe without a handler");
            return None;
        };
        let mut state = self.shared.state.lock();
        if state.shut_down {
            return None;
        }
        let existing = state.subscriptions.get(&event).map_or(0, Vec::len);
        if ignore_duplicate && existing > 0 {
            tracing::info!(identifier = %self.shared.identifier, event, "already subscribed");
            return None;
        }
        state.next_subscription += 1;
        let id = SubscriptionId(state.next_subscription);
        let identifier = self.shared.identifier.clone();
        let name = event.clone();
        let handler_id = self.shared.socket.on(event.clone(), move |ev| {
            subscription::run(&identifier, &name, &handler, ev);
        });
        state
            .subscriptions
            .entry(event)
            .or_default()
            .push((id, handler_id));
        Some(id)
    }

    /// [`subscribe`](Self::subscribe) for each entry.
    pub fn subscribe_many(
        &self,
        subscriptions: impl IntoIterator<Item = Subscription>,
    ) -> Vec<Option<SubscriptionId>> {
        subscriptions
            .into_iter()
            .map(|s| self.subscribe(s))
            .collect()
    }

    /// Removes one user handler of `event` (`Some(id)`) or all of them (`None`); the helper's
    /// own listeners stay. Gives how many handlers were removed.
    pub fn unsubscribe(&self, event: &str, id: Option<SubscriptionId>) -> usize {
        let mut state = self.shared.state.lock();
        let Some(list) = state.subscriptions.get_mut(event) else {
            tracing::info!(identifier = %self.shared.identifier, event, "no subscription to remove");
            return 0;
        };
        let mut removed = 0;
        list.retain(|(sub, handler)| {
            if id.is_none_or(|id| id == *sub) {
                self.shared.socket.off(*handler);
                removed += 1;
                false
            } else {
                true
            }
        });
        if list.is_empty() {
            state.subscriptions.remove(event);
        }
        removed
    }

    /// [`unsubscribe`](Self::unsubscribe) of every handler of each event.
    pub fn unsubscribe_many<'a>(&self, events: impl IntoIterator<Item = &'a str>) -> usize {
        events.into_iter().map(|e| self.unsubscribe(e, None)).sum()
    }

    /// How many user handlers `event` has.
    pub fn subscription_count(&self, event: &str) -> usize {
        self.shared
            .state
            .lock()
            .subscriptions
            .get(event)
            .map_or(0, Vec::len)
    }

    /// Emits `topic` with `data`. Fails with the reference's errors when not connected or when
    /// the topic is empty (checked in that order).
    pub fn emit<T: Serialize + ?Sized>(&self, topic: &str, data: &T) -> Result<(), HelperError> {
        if !self.shared.socket.connected() {
            return Err(HelperError::InvalidState);
        }
        if topic.is_empty() {
            return Err(HelperError::TopicRequired);
        }
        self.shared.socket.emit(topic, data)?;
        Ok(())
    }

    /// [`emit`](Self::emit), then runs `callback` on a new task once the packet is queued.
    pub fn emit_then<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &T,
        callback: impl FnOnce() + Send + 'static,
    ) -> Result<(), HelperError> {
        self.emit(topic, data)?;
        let identifier = self.shared.identifier.clone();
        tokio::spawn(async move { guarded(&identifier, "emit", callback) });
        Ok(())
    }

    /// Asks the server to join `rooms` (`join {rooms}`); a warning and nothing else when not
    /// connected.
    pub fn join_rooms(&self, rooms: &[&str]) {
        self.rooms_request(EVENT_JOIN, rooms);
    }

    /// Asks the server to leave `rooms` (`leave {rooms}`); a warning and nothing else when not
    /// connected.
    pub fn leave_rooms(&self, rooms: &[&str]) {
        self.rooms_request(EVENT_LEAVE, rooms);
    }

    fn rooms_request(&self, event: &str, rooms: &[&str]) {
        if !self.shared.socket.connected() {
            tracing::warn!(identifier = %self.shared.identifier, event, "not connected");
            return;
        }
        if self.shared.options.resume {
            let mut state = self.shared.state.lock();
            for room in rooms {
                if event == EVENT_JOIN {
                    state.rooms.insert((*room).to_owned());
                } else {
                    state.rooms.remove(*room);
                }
            }
        }
        let payload = serde_json::json!({ "rooms": rooms });
        if let Err(e) = self.shared.socket.emit(event, &payload) {
            tracing::warn!(identifier = %self.shared.identifier, event, "cannot send: {e}");
        }
    }

    /// Starts connecting (reconnections included) in the background.
    pub fn connect(&self) {
        if self.shared.state.lock().shut_down {
            tracing::warn!(identifier = %self.shared.identifier, "connect after shutdown");
            return;
        }
        self.shared.socket.open();
    }

    /// Connects and waits for the namespace connection.
    pub async fn connect_and_wait(&self) -> Result<(), HelperError> {
        if self.shared.state.lock().shut_down {
            return Err(HelperError::Shutdown);
        }
        self.shared.socket.connect().await?;
        Ok(())
    }

    /// Disconnects; the state becomes `unauthorized`.
    pub fn disconnect(&self) {
        self.shared.socket.disconnect();
        self.shared.state.lock().client_state = ClientState::Unauthorized;
    }

    /// Disconnects for good: user handlers removed, callbacks silenced, state `unauthorized`.
    /// `connected()` is false as soon as this returns; the helper cannot be used again.
    pub fn shutdown(&self) {
        let subscriptions = {
            let mut state = self.shared.state.lock();
            state.shut_down = true;
            std::mem::take(&mut state.subscriptions)
        };
        for (_, handler) in subscriptions.into_values().flatten() {
            self.shared.socket.off(handler);
        }
        self.shared.socket.disconnect();
        self.shared.socket.manager().close();
        self.shared.state.lock().client_state = ClientState::Unauthorized;
    }
}
