//! A socket: the client's connection to one namespace, multiplexed with the other namespaces of
//! its [`Manager`] over one Engine.IO connection.

use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ignis_proto::Value;
use ignis_proto::engineio::Data;
use ignis_proto::socketio::{EncodeError, Packet, PacketKind, is_reserved_event};
use ignis_proto::value::Map;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::codec;
use crate::engine::OutQueue;
use crate::error::{AckError, ConnectError, DisconnectReason, Error};
use crate::event::{AckResponder, Event};
use crate::manager::{Manager, ManagerInner};
use crate::options::{Options, Transport};

/// Identifies a registered handler, to remove it with [`Socket::off`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandlerId(u64);

type EventFn = Arc<dyn Fn(Event) + Send + Sync>;
type ConnectFn = Arc<dyn Fn() + Send + Sync>;
type DisconnectFn = Arc<dyn Fn(DisconnectReason) + Send + Sync>;
type ErrorFn = Arc<dyn Fn(&ConnectError) + Send + Sync>;

#[derive(Default)]
struct Handlers {
    next_id: u64,
    events: HashMap<String, Vec<(HandlerId, EventFn)>>,
    any: Vec<(HandlerId, EventFn)>,
    connect: Vec<(HandlerId, ConnectFn)>,
    disconnect: Vec<(HandlerId, DisconnectFn)>,
    connect_error: Vec<(HandlerId, ErrorFn)>,
}

impl Handlers {
    fn id(&mut self) -> HandlerId {
        self.next_id += 1;
        HandlerId(self.next_id)
    }

    fn remove(&mut self, id: HandlerId) -> bool {
        fn strip<T>(list: &mut Vec<(HandlerId, T)>, id: HandlerId) -> bool {
            let before = list.len();
            list.retain(|(h, _)| *h != id);
            list.len() != before
        }
        let mut removed = false;
        self.events.retain(|_, list| {
            removed |= strip(list, id);
            !list.is_empty()
        });
        removed
            || strip(&mut self.any, id)
            || strip(&mut self.connect, id)
            || strip(&mut self.disconnect, id)
            || strip(&mut self.connect_error, id)
    }
}

/// An acknowledgement the client waits for.
struct AckSlot {
    tx: oneshot::Sender<Result<Vec<Value>, AckError>>,
    /// Whether the event left the send buffer; only those fail when the connection drops.
    sent: bool,
}

#[derive(Default)]
struct State {
    /// The socket wants to be connected (socket.io-client's `active`).
    active: bool,
    connected: bool,
    /// CONNECT was sent on the current connection.
    connecting: bool,
    id: Option<String>,
    pid: Option<String>,
    last_offset: Option<String>,
    recovered: bool,
    out: Option<Arc<OutQueue>>,
    next_ack: u64,
    acks: HashMap<u64, AckSlot>,
    send_buffer: VecDeque<(Option<u64>, Vec<Data>)>,
    receive_buffer: Vec<Event>,
    waiters: Vec<oneshot::Sender<Result<(), ConnectError>>>,
}

impl State {
    /// Fails the acknowledgements of events already sent: their answer cannot come any more.
    fn fail_sent_acks(&mut self) {
        let sent: Vec<u64> = self
            .acks
            .iter()
            .filter(|(_, slot)| slot.sent)
            .map(|(id, _)| *id)
            .collect();
        for id in sent {
            if let Some(slot) = self.acks.remove(&id) {
                let _ = slot.tx.send(Err(AckError::Disconnected));
            }
        }
    }
}

pub(crate) struct SocketInner {
    pub(crate) nsp: String,
    options: Arc<Options>,
    state: Mutex<State>,
    handlers: RwLock<Handlers>,
}

/// Runs a user callback; a panic in it is logged and does not take the connection down.
fn guarded(what: &str, f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("a {what} handler panicked");
    }
}

impl SocketInner {
    pub(crate) fn new(nsp: String, options: Arc<Options>) -> SocketInner {
        SocketInner {
            nsp,
            options,
            state: Mutex::new(State::default()),
            handlers: RwLock::new(Handlers::default()),
        }
    }

    pub(crate) fn is_active(&self) -> bool {
        self.state.lock().active
    }

    /// Sends CONNECT on `out` if the socket wants a connection and has not asked on this one.
    pub(crate) fn connect_on(&self, out: &Arc<OutQueue>) {
        let mut state = self.state.lock();
        if !state.active || state.connecting || state.connected {
            return;
        }
        let mut data = Map::new();
        if let Some(pid) = &state.pid {
            data.insert("pid", pid.as_str());
            if let Some(offset) = &state.last_offset {
                data.insert("offset", offset.as_str());
            }
        }
        if let Some(Value::Map(auth)) = &self.options.auth {
            for (k, v) in auth.iter() {
                data.insert(k, v.clone());
            }
        }
        let payload = (!data.is_empty() || self.options.auth.is_some()).then_some(Value::Map(data));
        let packet = Packet::connect(self.nsp.as_str(), payload);
        match codec::encode(self.options.parser, &packet).and_then(|m| out.push(m)) {
            Ok(()) => state.connecting = true,
            Err(e) => tracing::warn!(nsp = %self.nsp, "cannot send CONNECT: {e}"),
        }
    }

    /// The server accepted the connection.
    pub(crate) fn on_connect(&self, sid: String, pid: Option<String>, out: &Arc<OutQueue>) {
        let (waiters, received) = {
            let mut state = self.state.lock();
            if !state.active {
                // Disconnected while the CONNECT was on its way: leave at once.
                if let Ok(m) =
                    codec::encode(self.options.parser, &Packet::disconnect(self.nsp.as_str()))
                {
                    let _ = out.push(m);
                }
                state.connecting = false;
                return;
            }
            state.recovered = pid.is_some() && state.pid == pid;
            state.pid = pid;
            state.id = Some(sid);
            state.connected = true;
            state.connecting = false;
            state.out = Some(Arc::clone(out));
            let buffered: Vec<_> = state.send_buffer.drain(..).collect();
            for (ack, messages) in buffered {
                let pushed = out.push(messages);
                if let Some(id) = ack {
                    match pushed {
                        Ok(()) => {
                            if let Some(slot) = state.acks.get_mut(&id) {
                                slot.sent = true;
                            }
                        }
                        Err(e) => {
                            if let Some(slot) = state.acks.remove(&id) {
                                let _ = slot.tx.send(Err(AckError::Emit(e)));
                            }
                        }
                    }
                } else if let Err(e) = pushed {
                    tracing::warn!(nsp = %self.nsp, "buffered packet dropped: {e}");
                }
            }
            (
                std::mem::take(&mut state.waiters),
                std::mem::take(&mut state.receive_buffer),
            )
        };
        for waiter in waiters {
            let _ = waiter.send(Ok(()));
        }
        let handlers: Vec<ConnectFn> = self
            .handlers
            .read()
            .connect
            .iter()
            .map(|(_, f)| Arc::clone(f))
            .collect();
        for f in handlers {
            guarded("connect", || f());
        }
        for event in received {
            self.dispatch(event);
        }
    }

    /// The server refused the connection, or the connection could not be opened.
    pub(crate) fn on_connect_error(&self, err: ConnectError, deactivate: bool) {
        let waiters = {
            let mut state = self.state.lock();
            if deactivate {
                state.active = false;
            }
            state.connecting = false;
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            let _ = waiter.send(Err(err.clone()));
        }
        let handlers: Vec<ErrorFn> = self
            .handlers
            .read()
            .connect_error
            .iter()
            .map(|(_, f)| Arc::clone(f))
            .collect();
        for f in handlers {
            guarded("connect_error", || f(&err));
        }
    }

    /// The connection is gone. `reconnect` keeps the socket active for the next one.
    pub(crate) fn on_close(&self, reason: DisconnectReason, reconnect: bool) {
        let (was_connected, waiters) = {
            let mut state = self.state.lock();
            let was_connected = state.connected;
            state.connected = false;
            state.connecting = false;
            state.out = None;
            state.id = None;
            state.fail_sent_acks();
            let waiters = if reconnect {
                Vec::new()
            } else {
                state.active = false;
                std::mem::take(&mut state.waiters)
            };
            (was_connected, waiters)
        };
        for waiter in waiters {
            let _ = waiter.send(Err(ConnectError::Closed));
        }
        if was_connected {
            self.fire_disconnect(reason);
        }
    }

    fn fire_disconnect(&self, reason: DisconnectReason) {
        let handlers: Vec<DisconnectFn> = self
            .handlers
            .read()
            .disconnect
            .iter()
            .map(|(_, f)| Arc::clone(f))
            .collect();
        for f in handlers {
            guarded("disconnect", || f(reason));
        }
    }

    /// An event from the server; held until the namespace connection completes.
    pub(crate) fn on_event(self: &Arc<Self>, name: String, mut args: Vec<Value>, id: Option<u64>) {
        let event = {
            let mut state = self.state.lock();
            let mut offset = None;
            // With recovery on, the server appends an offset to every event without an ack id.
            if state.pid.is_some()
                && id.is_none()
                && matches!(args.last(), Some(Value::Str(_)))
                && let Some(Value::Str(o)) = args.pop()
            {
                state.last_offset = Some(o.clone());
                offset = Some(o);
            }
            let event = Event {
                name,
                args,
                offset,
                ack: id.map(|id| AckResponder {
                    socket: Arc::downgrade(self),
                    id,
                    sent: Arc::new(AtomicBool::new(false)),
                }),
            };
            if !state.connected {
                if state.receive_buffer.len() >= self.options.max_buffered_packets {
                    tracing::warn!(nsp = %self.nsp, event = %event.name, "receive buffer full, event dropped");
                } else {
                    state.receive_buffer.push(event);
                }
                return;
            }
            event
        };
        self.dispatch(event);
    }

    fn dispatch(&self, event: Event) {
        let (specific, any): (Vec<EventFn>, Vec<EventFn>) = {
            let handlers = self.handlers.read();
            (
                handlers
                    .events
                    .get(&event.name)
                    .map(|list| list.iter().map(|(_, f)| Arc::clone(f)).collect())
                    .unwrap_or_default(),
                handlers.any.iter().map(|(_, f)| Arc::clone(f)).collect(),
            )
        };
        for f in any.iter().chain(specific.iter()) {
            let event = event.clone();
            guarded("event", || f(event));
        }
    }

    pub(crate) fn on_ack(&self, id: u64, args: Vec<Value>) {
        if let Some(slot) = self.state.lock().acks.remove(&id) {
            let _ = slot.tx.send(Ok(args));
        }
    }

    /// The server disconnected the socket.
    pub(crate) fn on_server_disconnect(&self) {
        let was_connected = {
            let mut state = self.state.lock();
            let was = state.connected;
            state.active = false;
            state.connected = false;
            state.connecting = false;
            state.out = None;
            state.id = None;
            state.fail_sent_acks();
            was
        };
        if was_connected {
            self.fire_disconnect(DisconnectReason::IoServerDisconnect);
        }
    }

    pub(crate) fn send_ack(&self, id: u64, args: Vec<Value>) -> Result<(), Error> {
        let packet = Packet::ack(self.nsp.as_str(), id, args);
        let messages = codec::encode(self.options.parser, &packet)?;
        let state = self.state.lock();
        match (&state.out, state.connected) {
            (Some(out), true) => out.push(messages),
            _ => Err(Error::NotConnected),
        }
    }

    /// Sends an event now, or keeps it for when the socket connects.
    fn send_event(
        &self,
        event: &str,
        args: Vec<Value>,
        ack: Option<oneshot::Sender<Result<Vec<Value>, AckError>>>,
    ) -> Result<Option<u64>, Error> {
        if is_reserved_event(event) {
            return Err(Error::ReservedEvent(event.to_owned()));
        }
        let mut state = self.state.lock();
        let id = ack.as_ref().map(|_| {
            let id = state.next_ack;
            state.next_ack = state.next_ack.wrapping_add(1);
            id
        });
        let packet = Packet::event(self.nsp.as_str(), event, args, id);
        let messages = codec::encode(self.options.parser, &packet).map_err(|e| match e {
            Error::Encode(inner) if matches!(*inner, EncodeError::ReservedEventName(_)) => {
                Error::ReservedEvent(event.to_owned())
            }
            other => other,
        })?;
        let sent = match (&state.out, state.connected) {
            (Some(out), true) => {
                out.push(messages)?;
                true
            }
            _ => {
                if state.send_buffer.len() >= self.options.max_buffered_packets {
                    return Err(Error::BufferFull(self.options.max_buffered_packets));
                }
                state.send_buffer.push_back((id, messages));
                false
            }
        };
        if let (Some(id), Some(tx)) = (id, ack) {
            state.acks.insert(id, AckSlot { tx, sent });
        }
        Ok(id)
    }
}

/// A connection to one namespace. Clones are handles to the same socket.
///
/// Handlers run on the connection's task, in the order events arrive: keep them short and
/// spawn a task for anything that waits. A handler that panics is logged and skipped.
#[derive(Clone)]
pub struct Socket {
    pub(crate) manager: Arc<ManagerInner>,
    pub(crate) inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("nsp", &self.inner.nsp)
            .field("id", &self.id())
            .field("connected", &self.connected())
            .finish()
    }
}

impl Socket {
    /// The namespace this socket is connected to (`/` for the main one).
    pub fn nsp(&self) -> &str {
        &self.inner.nsp
    }

    /// The id the server gave this socket; `None` while not connected.
    pub fn id(&self) -> Option<String> {
        self.inner.state.lock().id.clone()
    }

    /// Whether the socket is connected to its namespace.
    pub fn connected(&self) -> bool {
        self.inner.state.lock().connected
    }

    /// Whether the socket wants to be connected: it is, or it is (re)connecting.
    pub fn active(&self) -> bool {
        self.inner.state.lock().active
    }

    /// Whether the last connection restored the previous session (connection state recovery):
    /// same id, rooms kept, missed events delivered.
    pub fn recovered(&self) -> bool {
        self.inner.state.lock().recovered
    }

    /// The transport of the current connection.
    pub fn transport(&self) -> Option<Transport> {
        self.inner.state.lock().out.as_ref().map(|o| o.transport())
    }

    /// The manager that carries this socket.
    pub fn manager(&self) -> Manager {
        Manager {
            inner: Arc::clone(&self.manager),
        }
    }

    fn register(&self, add: impl FnOnce(&mut Handlers, HandlerId)) -> HandlerId {
        let mut handlers = self.inner.handlers.write();
        let id = handlers.id();
        add(&mut handlers, id);
        id
    }

    /// Calls `handler` for every `event` from the server.
    pub fn on(
        &self,
        event: impl Into<String>,
        handler: impl Fn(Event) + Send + Sync + 'static,
    ) -> HandlerId {
        let event = event.into();
        self.register(|h, id| {
            h.events
                .entry(event)
                .or_default()
                .push((id, Arc::new(handler)))
        })
    }

    /// Calls `handler` for every event from the server, before the event's own handlers.
    pub fn on_any(&self, handler: impl Fn(Event) + Send + Sync + 'static) -> HandlerId {
        self.register(|h, id| h.any.push((id, Arc::new(handler))))
    }

    /// Calls `handler` every time the socket connects (reconnections included).
    pub fn on_connect(&self, handler: impl Fn() + Send + Sync + 'static) -> HandlerId {
        self.register(|h, id| h.connect.push((id, Arc::new(handler))))
    }

    /// Calls `handler` every time the socket loses its connection.
    pub fn on_disconnect(
        &self,
        handler: impl Fn(DisconnectReason) + Send + Sync + 'static,
    ) -> HandlerId {
        self.register(|h, id| h.disconnect.push((id, Arc::new(handler))))
    }

    /// Calls `handler` when a connection attempt fails (`connect_error`).
    pub fn on_connect_error(
        &self,
        handler: impl Fn(&ConnectError) + Send + Sync + 'static,
    ) -> HandlerId {
        self.register(|h, id| h.connect_error.push((id, Arc::new(handler))))
    }

    /// Removes one handler; whether it was registered.
    pub fn off(&self, id: HandlerId) -> bool {
        self.inner.handlers.write().remove(id)
    }

    /// Removes every handler of `event`; how many there were.
    pub fn off_event(&self, event: &str) -> usize {
        self.inner
            .handlers
            .write()
            .events
            .remove(event)
            .map_or(0, |l| l.len())
    }

    /// Removes every handler of every kind.
    pub fn off_all(&self) {
        let mut handlers = self.inner.handlers.write();
        let next_id = handlers.next_id;
        *handlers = Handlers {
            next_id,
            ..Handlers::default()
        };
    }

    /// How many handlers `event` has.
    pub fn listener_count(&self, event: &str) -> usize {
        self.inner
            .handlers
            .read()
            .events
            .get(event)
            .map_or(0, Vec::len)
    }

    /// Emits `event` with one argument. While disconnected the packet is kept and sent on
    /// connection (up to `max_buffered_packets`).
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), Error> {
        let value = ignis_proto::value::to_value(data)?;
        self.emit_args(event, vec![value])
    }

    /// Emits `event` with any number of arguments.
    pub fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), Error> {
        self.inner.send_event(event, args, None).map(drop)
    }

    /// Emits `event` and waits up to `timeout` for the server's acknowledgement; gives its
    /// arguments.
    pub async fn emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: Duration,
    ) -> Result<Vec<Value>, AckError> {
        let (tx, rx) = oneshot::channel();
        let id = self.inner.send_event(event, args, Some(tx))?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                if let Some(id) = id {
                    self.inner.state.lock().acks.remove(&id);
                }
                Err(AckError::Timeout)
            }
        }
    }

    /// Starts connecting (and reconnecting) in the background; see [`Socket::on_connect`].
    pub fn open(&self) {
        self.inner.state.lock().active = true;
        self.manager.activate();
    }

    /// Connects and waits until the server accepted or refused the namespace, or until the
    /// client's timeout. With reconnection on, a transport failure is reported here while the
    /// socket keeps trying in the background; call [`Socket::disconnect`] to stop it.
    pub async fn connect(&self) -> Result<(), ConnectError> {
        let rx = {
            let mut state = self.inner.state.lock();
            if state.connected {
                return Ok(());
            }
            state.active = true;
            let (tx, rx) = oneshot::channel();
            state.waiters.push(tx);
            rx
        };
        self.manager.activate();
        match tokio::time::timeout(self.inner.options.timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConnectError::Closed),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Leaves the namespace; the manager closes the connection when no socket uses it any more.
    /// Not reconnected until [`Socket::connect`] or [`Socket::open`] is called again.
    pub fn disconnect(&self) {
        let (was_connected, waiters) = {
            let mut state = self.inner.state.lock();
            let was_connected = state.connected;
            if was_connected
                && let Some(out) = &state.out
                && let Ok(m) = codec::encode(
                    self.inner.options.parser,
                    &Packet::disconnect(self.inner.nsp.as_str()),
                )
            {
                let _ = out.push(m);
            }
            state.active = false;
            state.connected = false;
            state.out = None;
            state.id = None;
            state.fail_sent_acks();
            (was_connected, std::mem::take(&mut state.waiters))
        };
        for waiter in waiters {
            let _ = waiter.send(Err(ConnectError::Closed));
        }
        if was_connected {
            self.inner
                .fire_disconnect(DisconnectReason::IoClientDisconnect);
        }
        self.manager.wake();
    }
}

/// Routes a decoded packet to its socket; whether the socket may have left its namespace (the
/// manager then closes the connection if no socket uses it).
pub(crate) fn route(socket: &Arc<SocketInner>, packet: Packet, out: &Arc<OutQueue>) -> bool {
    let leaves = matches!(
        packet.kind,
        PacketKind::Disconnect | PacketKind::ConnectError(_) | PacketKind::Connect(_)
    );
    match packet.kind {
        PacketKind::Connect(Some(data)) => match data.get("sid").and_then(Value::as_str) {
            Some(sid) => {
                let pid = data.get("pid").and_then(Value::as_str).map(str::to_owned);
                socket.on_connect(sid.to_owned(), pid, out);
            }
            None => socket.on_connect_error(
                ConnectError::Refused {
                    message: "invalid CONNECT answer (no sid)".into(),
                    data: None,
                },
                true,
            ),
        },
        PacketKind::Connect(None) => socket.on_connect_error(
            ConnectError::Refused {
                message: "invalid CONNECT answer (no payload)".into(),
                data: None,
            },
            true,
        ),
        PacketKind::ConnectError(value) => {
            let (message, data) = match value {
                Value::Str(message) => (message, None),
                Value::Map(mut map) => (
                    map.remove("message")
                        .and_then(|m| m.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    map.remove("data"),
                ),
                other => (format!("{other:?}"), None),
            };
            socket.on_connect_error(ConnectError::Refused { message, data }, true);
        }
        PacketKind::Disconnect => socket.on_server_disconnect(),
        PacketKind::Event { event, args, id } => socket.on_event(event.to_string(), args, id),
        PacketKind::Ack { args, id } => socket.on_ack(id, args),
    }
    leaves
}
