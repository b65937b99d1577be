//! A client's connection to one namespace: its events, acknowledgements, rooms and data.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ignis_engine::Sid;
use ignis_proto::Value;
use ignis_proto::socketio::{EventName, Packet, PacketKind};
use ignis_proto::value::Map;
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::adapter::{AckCollector, BroadcastOptions, RemoteSocket, Room};
use crate::engine_handler::EngineSocket;
use crate::error::JoinError;
use crate::handler::{AnyHandler, DisconnectHandler, EventHandler, Handlers, SocketHandlers, run};
use crate::handshake::Handshake;
use crate::limits::{Bucket, Refusal};
use crate::namespace::Namespace;
use crate::operators::Operators;
use crate::outbound::{self, IntoArgs, Outbound};
use crate::recovery::SessionData;
use crate::{AckError, EmitError};

/// A shared handle on a socket.
pub type SocketRef = Arc<Socket>;

/// Why a socket left its namespace; the strings are the reference's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The server called `disconnect` on the socket.
    ServerNamespaceDisconnect,
    /// The client left the namespace.
    ClientNamespaceDisconnect,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The connection closed (the client went away or the network failed).
    TransportClose,
    /// The transport failed.
    TransportError,
    /// The client missed a heartbeat.
    PingTimeout,
    /// The client sent something that is not Socket.IO.
    ParseError,
    /// The server closed the connection.
    ForcedClose,
    /// The server closed the whole connection (`disconnect(true)`).
    ForcedServerClose,
    /// The client did not read fast enough; its outbound queue filled up.
    SlowClient,
    /// The client kept sending events past its event rate (see `SocketLimits::event_rate`).
    TooManyEvents,
    /// The client sent a binary event larger than `SocketLimits::max_event_payload`.
    PayloadTooLarge,
}

impl DisconnectReason {
    /// The reason as the reference words it, the string a client sees.
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ServerNamespaceDisconnect => "server namespace disconnect",
            DisconnectReason::ClientNamespaceDisconnect => "client namespace disconnect",
            DisconnectReason::ServerShuttingDown => "server shutting down",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::ParseError => "parse error",
            DisconnectReason::ForcedClose => "forced close",
            DisconnectReason::ForcedServerClose => "forced server close",
            DisconnectReason::SlowClient => "outbound queue full",
            DisconnectReason::TooManyEvents => "too many events",
            DisconnectReason::PayloadTooLarge => "payload too large",
        }
    }

    /// Whether connection state recovery may restore the socket after this.
    pub fn is_recoverable(self) -> bool {
        matches!(
            self,
            DisconnectReason::TransportError
                | DisconnectReason::TransportClose
                | DisconnectReason::ForcedClose
                | DisconnectReason::PingTimeout
                | DisconnectReason::ServerShuttingDown
                | DisconnectReason::ForcedServerClose
        )
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event received from a client.
#[derive(Debug)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments after the name.
    pub args: Vec<Value>,
    /// The client's acknowledgement, answered at most once (`answered`): a flag rather than
    /// a lock around it, as every acknowledged event passes here.
    ack: Option<AckSender>,
    answered: AtomicBool,
}

impl Event {
    /// Argument `index` deserialised into `T`.
    pub fn arg<T: DeserializeOwned>(
        &self,
        index: usize,
    ) -> Result<T, ignis_proto::value::ValueError> {
        ignis_proto::value::from_value(self.args.get(index).cloned().unwrap_or(Value::Null))
    }

    /// The first argument deserialised into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ignis_proto::value::ValueError> {
        self.arg(0)
    }

    /// Whether the client waits for an acknowledgement (not yet answered).
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some() && !self.answered.load(Ordering::Acquire)
    }

    /// Takes the acknowledgement, to answer later or elsewhere.
    pub fn take_ack(&self) -> Option<AckSender> {
        let ack = self.unanswered()?;
        Some(AckSender {
            socket: ack.socket.clone(),
            id: ack.id,
        })
    }

    /// The acknowledgement, for the one caller that answers it.
    fn unanswered(&self) -> Option<&AckSender> {
        let ack = self.ack.as_ref()?;
        (!self.answered.swap(true, Ordering::AcqRel)).then_some(ack)
    }

    /// Answers the acknowledgement, if the client asked for one and it was not answered yet:
    /// any [`IntoArgs`], such as `&data` (one argument), `vec![..]` (one per value),
    /// [`Args::values(&event.args)`](crate::Args::values) (the event's own arguments, not copied) or
    /// `&EncodedArgs` (encoded once). Data that cannot be serialised is logged, not sent.
    pub fn ack<'a>(&self, args: impl IntoArgs<'a>) {
        if let Some(ack) = self.unanswered() {
            ack.answer(args);
        }
    }
}

/// Answers one acknowledgement of a client's event. Dropping it without answering sends
/// nothing, like a reference handler that never calls its callback.
#[derive(Debug)]
pub struct AckSender {
    socket: Weak<Socket>,
    id: u64,
}

impl AckSender {
    /// Sends the acknowledgement with these arguments (see [`Event::ack`]). Data that cannot be
    /// serialised is logged, not sent.
    pub fn send<'a>(self, args: impl IntoArgs<'a>) {
        self.answer(args);
    }

    fn answer<'a>(&self, args: impl IntoArgs<'a>) {
        let Some(socket) = self.socket.upgrade() else {
            return;
        };
        let encoded = args.into_args().map_err(EmitError::from).and_then(|args| {
            outbound::encode_ack_args(socket.ns.parser(), socket.ns.name(), self.id, args)
                .map_err(EmitError::from)
        });
        match encoded {
            Ok(packet) => {
                let _ = socket.outbound().send(packet);
            }
            Err(e) => tracing::warn!(sid = %socket.id, error = %e, "ack cannot be encoded"),
        }
    }
}

/// Who waits for the acknowledgement of a packet the server sent.
enum AckWaiter {
    Single(oneshot::Sender<Vec<Value>>),
    Broadcast(Weak<dyn AckCollector>),
}

/// A restore of a socket: the broadcasts kept while it runs, then the offsets it replayed.
enum Restore {
    Keeping(Box<RestoreBuffer>),
    /// Done, but a round of broadcasts made before it ended may still be on its way to the
    /// socket (the fan-out runs on other tasks and cannot be waited for under the restore's
    /// lock): until `until`, such a round skips what was among the missed packets.
    /// Boxed, as `Keeping` is: every socket holds a `Restore` slot, nearly always empty.
    Finished(Box<Replayed>),
}

/// The offsets a finished restore replayed, and until when rounds are checked against them.
struct Replayed {
    offsets: std::collections::HashSet<Arc<str>>,
    until: std::time::Instant,
}

/// How long after a restore a broadcast that reaches the socket is checked against the packets
/// the restore replayed: far longer than a round of the fan-out takes.
const RESTORE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Broadcasts kept for a socket while it is restored.
#[derive(Default)]
struct RestoreBuffer {
    parts: Vec<crate::fanout::Part>,
    messages: usize,
    bytes: usize,
    /// More came than the bound allows; what came was dropped.
    overflowed: bool,
}

/// How much a restore keeps at most: the default bounds of a connection's outbound queue,
/// into which it all goes once the restore is done.
const RESTORE_MAX_MESSAGES: usize = 8192;
const RESTORE_MAX_BYTES: usize = 16 * 1024 * 1024;

impl RestoreBuffer {
    fn keep(&mut self, parts: &[crate::fanout::Part]) {
        if self.overflowed {
            return;
        }
        for part in parts {
            self.messages += part.messages.len();
            self.bytes += part.messages.iter().map(|m| m.data().len()).sum::<usize>();
            if self.messages > RESTORE_MAX_MESSAGES || self.bytes > RESTORE_MAX_BYTES {
                self.overflowed = true;
                self.parts = Vec::new();
                return;
            }
            self.parts.push(crate::fanout::Part {
                offset: part.offset.clone(),
                messages: part.messages.clone(),
            });
        }
    }
}

/// A client's connection to one namespace.
pub struct Socket {
    id: Sid,
    pub(crate) ns: Arc<Namespace>,
    pub(crate) conn: Arc<EngineSocket>,
    handshake: Handshake,
    handlers: RwLock<Handlers>,
    acks: Mutex<HashMap<u64, AckWaiter>>,
    connected: AtomicBool,
    /// While set, broadcasts and room sends pass this socket by (direct emits still reach it).
    held: AtomicBool,
    /// Set while the socket is being restored: broadcasts wait in `restore` (see
    /// [`Socket::begin_restore`]).
    restoring: AtomicBool,
    restore: Mutex<Option<Restore>>,
    /// Set while a restore keeps broadcasts aside (not during its grace, see [`Restore`]).
    keeping: AtomicBool,
    data: RwLock<Value>,
    /// The server's own values, kept with the session (see [`Socket::session_value`]).
    values: Mutex<Map>,
    recovered: bool,
    pub(crate) pid: Option<Arc<str>>,
    /// The client's events against `SocketLimits::event_rate`.
    bucket: Bucket,
}

impl Socket {
    pub(crate) fn new(
        id: Sid,
        ns: Arc<Namespace>,
        conn: Arc<EngineSocket>,
        handshake: Handshake,
        pid: Option<Arc<str>>,
        // The data and the session values of a socket restored by recovery.
        restored: Option<(Value, Map)>,
    ) -> Socket {
        let recovered = restored.is_some();
        let (data, values) = restored.unwrap_or_default();
        let bucket = Bucket::new(ns.limits().config.event_rate);
        Socket {
            id,
            ns,
            conn,
            handshake,
            handlers: RwLock::new(Handlers::default()),
            acks: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            held: AtomicBool::new(false),
            restoring: AtomicBool::new(false),
            restore: Mutex::new(None),
            keeping: AtomicBool::new(false),
            data: RwLock::new(data),
            values: Mutex::new(values),
            recovered,
            pid,
            bucket,
        }
    }

    /// The socket id, unguessable, also the name of the socket's own room.
    pub fn id(&self) -> Sid {
        self.id
    }

    /// The namespace the socket is connected to.
    pub fn namespace(&self) -> &Arc<Namespace> {
        &self.ns
    }

    /// The request that opened the connection and the client's `auth` payload.
    pub fn handshake(&self) -> &Handshake {
        &self.handshake
    }

    /// Whether the socket was restored by connection state recovery.
    pub fn recovered(&self) -> bool {
        self.recovered
    }

    /// Whether the socket is connected (it has not left its namespace).
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Holds back (or lets through again) every broadcast and room send to this socket, so that
    /// an application can keep a socket out of the traffic until it has authenticated. Packets
    /// sent with [`Socket::emit`] still reach it (when connection state recovery is off).
    pub fn hold_broadcasts(&self, held: bool) {
        self.set_broadcast_switch(&self.held, held);
    }

    /// Whether broadcasts pass this socket by.
    pub fn broadcasts_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    pub(crate) fn set_connected(&self) {
        // Broadcasts made before the socket connected do not reach it.
        self.set_broadcast_switch(&self.connected, true);
    }

    /// Sets one of the switches a round reads to decide whether this socket gets a broadcast
    /// (`connected`, `held`): the broadcasts made before the change are queued first, as things
    /// were when they were made.
    fn set_broadcast_switch(&self, switch: &AtomicBool, on: bool) {
        self.ns.fanout().settle();
        switch.store(on, Ordering::Release);
    }

    /// The way to this socket's client: every packet sent to it, and the close of its
    /// connection, go out through here (see [`crate::outbound`]).
    #[inline]
    pub(crate) fn outbound(&self) -> Outbound<'_> {
        Outbound::new(self.ns.fanout(), &self.conn)
    }

    /// The id of the client's connection (the Engine.IO session), shared by its sockets in
    /// every namespace. It lets whoever knows it send on the client's behalf over HTTP
    /// long-polling: never show it whole.
    pub fn client_id(&self) -> Sid {
        self.conn.id()
    }

    /// The transport the connection uses now.
    pub fn transport(&self) -> ignis_engine::TransportKind {
        self.conn.transport()
    }

    /// Application data attached to the socket (`socket.data`), visible through `fetch_sockets`.
    pub fn data(&self) -> Value {
        self.data.read().clone()
    }

    /// Replaces the application data of the socket (see [`Socket::data`]).
    pub fn set_data(&self, value: Value) {
        *self.data.write() = value;
    }

    /// A value the server keeps with the socket under `key`: never sent to the client nor
    /// shown by `fetch_sockets`, and kept with the session, so that a socket restored by
    /// connection state recovery has it back. What a library on top of the server remembers
    /// of a socket (the Ignis component, whether it authenticated) without taking a part of
    /// the application's [`Socket::data`].
    pub fn session_value(&self, key: &str) -> Option<Value> {
        self.values.lock().get(key).cloned()
    }

    /// Sets (or with `None` removes) a value kept with the socket (see
    /// [`Socket::session_value`]).
    pub fn set_session_value(&self, key: &str, value: Option<Value>) {
        let mut values = self.values.lock();
        match value {
            Some(value) => {
                values.insert(key, value);
            }
            None => {
                values.remove(key);
            }
        }
    }

    /// Starts a restore: until [`Socket::finish_restore`], every broadcast that reaches the
    /// socket is kept aside (bounded), not sent.
    ///
    /// Why: the restored socket is put in its rooms first, and only then are its missed
    /// packets looked up, so that no broadcast falls between the two (one made after the
    /// lookup and before the join would be neither replayed nor delivered). Broadcasts made
    /// once it is in its rooms must still reach the client after the missed packets, which are
    /// older; and those made before the lookup are among the missed packets as well, which
    /// their offsets tell.
    pub(crate) fn begin_restore(&self) {
        *self.restore.lock() = Some(Restore::Keeping(Box::default()));
        self.keeping.store(true, Ordering::Release);
        self.restoring.store(true, Ordering::Release);
    }

    /// Whether a restore keeps broadcasts aside right now (its grace excluded).
    #[inline]
    pub(crate) fn keeping_for_restore(&self) -> bool {
        self.keeping.load(Ordering::Acquire)
    }

    /// Whether broadcasts are kept aside for a restore in progress.
    #[inline]
    pub(crate) fn restoring(&self) -> bool {
        self.restoring.load(Ordering::Acquire)
    }

    /// Keeps a round of broadcasts for a restore in progress, or, when it has just finished,
    /// sends it (after what the restore sent) but for the broadcasts the restore replayed.
    /// Volatile broadcasts are dropped during a restore, as for a client that is not ready.
    pub(crate) fn keep_for_restore(
        &self,
        round: &ignis_engine::Round,
        parts: &[crate::fanout::Part],
        volatile: bool,
    ) {
        let mut restore = self.restore.lock();
        match restore.as_mut() {
            Some(Restore::Keeping(buffer)) => {
                if !volatile {
                    buffer.keep(parts);
                }
            }
            Some(Restore::Finished(replayed)) if std::time::Instant::now() < replayed.until => {
                if !self.connected() || self.broadcasts_held() {
                    return;
                }
                let late = parts.iter().any(|part| {
                    part.offset
                        .as_deref()
                        .is_some_and(|offset| replayed.offsets.contains(offset))
                });
                if !late {
                    self.send_round_live(round, volatile);
                    return;
                }
                // Sent without settling, as the restore's own packets (see `finish_restore`).
                let out = self.outbound();
                for part in parts {
                    if !part
                        .offset
                        .as_deref()
                        .is_some_and(|offset| replayed.offsets.contains(offset))
                    {
                        let _ = out.send_settled(&part.messages);
                    }
                }
            }
            _ => {
                // No restore, or its grace is over: broadcasts go straight through again.
                *restore = None;
                self.restoring.store(false, Ordering::Release);
                if self.connected() && !self.broadcasts_held() {
                    self.send_round_live(round, volatile);
                }
            }
        }
    }

    fn send_round_live(&self, round: &ignis_engine::Round, volatile: bool) {
        if let Ok(false) = self.conn.send_round(round, volatile) {
            self.ns.fanout().stats.volatile_drops.add(1);
        }
    }

    /// Ends a restore: sends the missed packets in order, then the broadcasts kept meanwhile
    /// except those among the missed packets. A round already on its way skips the missed
    /// packets too, for a grace period ([`RESTORE_GRACE`]); after it broadcasts go straight
    /// through. False when more was kept than the bound allows: nothing is sent then,
    /// broadcasts stay kept back, and the caller closes the connection (the session is kept
    /// again, and the client, which got nothing, comes back with the same offset).
    pub(crate) fn finish_restore(&self, missed: &[Packet]) -> bool {
        // Broadcasts made so far are kept before the lock is taken: the fan-out may be waiting
        // for this lock, and nothing below may wait for the fan-out.
        let out = self.outbound();
        out.settle();
        let mut restore = self.restore.lock();
        let kept = match restore.take() {
            Some(Restore::Keeping(buffer)) if buffer.overflowed => {
                *restore = Some(Restore::Keeping(buffer));
                return false;
            }
            Some(Restore::Keeping(buffer)) => Some(buffer),
            _ => None,
        };
        // Sent without settling (not through `send_packet`, which would wait for the fan-out
        // while this lock is held): a round that waits on the lock sends after these.
        for packet in missed {
            match outbound::encode(self.ns.parser(), packet) {
                Ok(messages) => {
                    let _ = out.send_settled(&messages);
                }
                Err(e) => {
                    tracing::warn!(sid = %self.id, error = %e, "missed packet cannot be encoded")
                }
            }
        }
        let replayed: std::collections::HashSet<Arc<str>> = missed
            .iter()
            .filter_map(crate::recovery::offset_of)
            .map(Arc::from)
            .collect();
        if let Some(kept) = kept {
            for part in &kept.parts {
                if part
                    .offset
                    .as_deref()
                    .is_some_and(|offset| replayed.contains(offset))
                {
                    continue;
                }
                let _ = out.send_settled(&part.messages);
            }
        }
        self.keeping.store(false, Ordering::Release);
        if replayed.is_empty() {
            *restore = None;
            self.restoring.store(false, Ordering::Release);
        } else {
            // `restoring` stays set: the next rounds come through `keep_for_restore`.
            *restore = Some(Restore::Finished(Box::new(Replayed {
                offsets: replayed,
                until: std::time::Instant::now() + RESTORE_GRACE,
            })));
        }
        true
    }

    /// Registers a handler for an event. Several handlers of one event all run, in order.
    pub fn on<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(SocketRef, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.handlers
            .write()
            .on(event.into(), EventHandler::from_async(handler));
    }

    /// Registers a handler that does all its work before it returns. It runs in place, in the
    /// order the packets arrived, with no future to allocate and poll: the cheaper choice for a
    /// handler that never waits. It may still start work of its own with `tokio::spawn`.
    pub fn on_sync<F>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(SocketRef, Event) + Send + Sync + 'static,
    {
        self.handlers
            .write()
            .on(event.into(), EventHandler::from_sync(handler));
    }

    /// Adds a table of handlers shared with other sockets: its handlers run as if they had been
    /// registered here, now, one by one.
    pub fn attach(&self, handlers: &Arc<SocketHandlers>) {
        self.handlers.write().attach(handlers);
    }

    /// Removes every handler of an event.
    pub fn off(&self, event: &str) {
        self.handlers.write().off(event);
    }

    /// Registers a handler that sees every event, before the event's own handlers.
    pub fn on_any<F, Fut>(&self, handler: F)
    where
        F: Fn(SocketRef, String, Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: AnyHandler = Arc::new(move |s, n, a| Box::pin(handler(s, n, a)));
        self.handlers.write().on_any(handler);
    }

    /// Runs when the socket is about to leave its namespace; its rooms are still there.
    pub fn on_disconnecting<F, Fut>(&self, handler: F)
    where
        F: Fn(SocketRef, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: DisconnectHandler = Arc::new(move |s, r| Box::pin(handler(s, r)));
        self.handlers.write().on_disconnecting(handler);
    }

    /// Runs once the socket left its namespace.
    pub fn on_disconnect<F, Fut>(&self, handler: F)
    where
        F: Fn(SocketRef, DisconnectReason) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: DisconnectHandler = Arc::new(move |s, r| Box::pin(handler(s, r)));
        self.handlers.write().on_disconnect(handler);
    }

    /// Sends an event to this socket's client, with any [`IntoArgs`]: `&data` (one argument),
    /// `vec![..]` (one per value), [`Args::values`](crate::Args::values) (borrowed, not copied) or `&EncodedArgs`.
    pub fn emit<'a>(&self, event: &str, args: impl IntoArgs<'a>) -> Result<(), EmitError> {
        args.into_args()?
            .with_values(|values| self.emit_cow(event, values))
    }

    fn emit_cow(&self, event: &str, args: Cow<'_, [Value]>) -> Result<(), EmitError> {
        check_event_name(event)?;
        if !self.connected() {
            return Err(EmitError::Disconnected);
        }
        if let Some(recovery) = self.ns.recovery() {
            let mut args = Some(args);
            let mut sent = Ok(());
            // The adapter's offset (a place in a log every node reads), if it gives one.
            let stamped = self.ns.adapter().send_with_offset(&mut |offset| {
                let Some(args) = args.take() else { return };
                let mut args = args.into_owned();
                args.push(Value::Str(offset.to_string()));
                sent = self.send_packet(&Packet::event(self.ns.name(), event, args, None));
            });
            if stamped {
                return sent;
            }
            // Else with an offset of the in-memory store, and kept for replay as a send to the
            // socket's own room; but sent to the socket itself, as without recovery: a socket
            // whose broadcasts are held still gets it (an application's answers to a client it
            // has not admitted).
            let args = args.map(Cow::into_owned).unwrap_or_default();
            let opts = BroadcastOptions {
                rooms: vec![Arc::from(self.id.as_str())],
                ..Default::default()
            };
            let packet = Packet::event(self.ns.name(), event, args, None);
            recovery.stamp_and_deliver(packet, &opts, |packet| sent = self.send_packet(&packet));
            return sent;
        }
        let packet = outbound::encode_event(self.ns.parser(), self.ns.name(), event, args, None)?;
        self.outbound()
            .send(packet)
            .map_err(|_| EmitError::Disconnected)
    }

    /// Sends an event and waits for the client's acknowledgement.
    pub async fn emit_with_ack<'a>(
        &self,
        event: &str,
        args: impl IntoArgs<'a>,
        timeout: Duration,
    ) -> Result<Vec<Value>, AckError> {
        check_event_name(event).map_err(AckError::Emit)?;
        let args = args
            .into_args()
            .map_err(|e| AckError::Emit(e.into()))?
            .into_vec();
        if !self.connected() {
            return Err(AckError::Emit(EmitError::Disconnected));
        }
        let id = self.ns.next_ack_id();
        let (tx, rx) = oneshot::channel();
        self.acks.lock().insert(id, AckWaiter::Single(tx));
        let packet = Packet::event(self.ns.name(), event, args, Some(id));
        if let Err(e) = self.send_packet(&packet) {
            self.acks.lock().remove(&id);
            return Err(AckError::Emit(e));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(args)) => Ok(args),
            Ok(Err(_)) => Err(AckError::Disconnected),
            Err(_) => {
                self.acks.lock().remove(&id);
                Err(AckError::Timeout)
            }
        }
    }

    pub(crate) fn send_packet(&self, packet: &Packet) -> Result<(), EmitError> {
        let messages = outbound::encode(self.ns.parser(), packet)?;
        self.outbound()
            .send(messages)
            .map_err(|_| EmitError::Disconnected)
    }

    pub(crate) fn register_collector(&self, id: u64, collector: &Arc<dyn AckCollector>) {
        let mut acks = self.acks.lock();
        if acks.len() >= 64 {
            // Forget broadcasts whose caller stopped waiting.
            acks.retain(|_, w| match w {
                AckWaiter::Single(tx) => !tx.is_closed(),
                AckWaiter::Broadcast(c) => c.strong_count() > 0,
            });
        }
        acks.insert(id, AckWaiter::Broadcast(Arc::downgrade(collector)));
    }

    /// Joins rooms, as [`Socket::try_join`] does; refusals are logged and counted.
    pub fn join(&self, rooms: impl IntoRooms) {
        if let Err(e) = self.try_join(rooms) {
            tracing::debug!(sid = %self.id, error = %e, "join refused");
        }
    }

    /// Joins rooms, in order, while the socket is in fewer than `max_rooms_per_socket` rooms
    /// (its own included), and never a room named like another socket's id
    /// ([`RoomRefusal::SocketIdRoom`](crate::RoomRefusal::SocketIdRoom)); says which rooms were refused.
    pub fn try_join(&self, rooms: impl IntoRooms) -> Result<(), JoinError> {
        let rooms = rooms.into_rooms();
        self.check_room_count(rooms.len())?;
        let max = self.ns.limits().config.max_rooms_per_socket;
        let refused = self.ns.adapter().add_all_bounded(self.id, &rooms, max);
        if refused.is_empty() {
            return Ok(());
        }
        self.ns.count_refused_rooms(self.id, &refused);
        Err(JoinError::Refused(refused))
    }

    /// Refuses (and counts) a request that names more rooms than a socket may be in, before
    /// its names are even read: what [`Socket::try_join`] checks first, for a handler that
    /// gets the names from a client.
    pub fn check_room_count(&self, asked: usize) -> Result<(), JoinError> {
        let max = self.ns.limits().config.max_rooms_per_socket;
        if asked <= max {
            return Ok(());
        }
        self.ns
            .limits()
            .counters
            .add(Refusal::RoomLimit, asked as u64);
        Err(JoinError::TooManyRooms { asked, max })
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        self.ns.adapter().del(self.id, room);
    }

    /// The rooms the socket is in, its own-id room first, in the order it joined them.
    pub fn rooms(&self) -> Vec<Room> {
        self.ns.adapter().socket_rooms(self.id)
    }

    /// Sends to the sockets in `room`, except this one.
    pub fn to(&self, room: impl IntoRooms) -> Operators {
        self.broadcast().to(room)
    }

    /// Sends to every socket of the namespace except those in `room` and this one.
    pub fn except(&self, room: impl IntoRooms) -> Operators {
        self.broadcast().except(room)
    }

    /// Sends to every socket of the namespace except this one.
    pub fn broadcast(&self) -> Operators {
        Operators::new(Arc::clone(&self.ns)).except(self.id.as_str())
    }

    /// Operators that send to this socket only, dropping the packet if the client is not ready
    /// to take it.
    pub fn volatile(&self) -> Operators {
        Operators::new(Arc::clone(&self.ns))
            .to(self.id.as_str())
            .volatile()
    }

    /// Operators that send to this socket only, with permessage-deflate allowed or not.
    pub fn compress(&self, compress: bool) -> Operators {
        Operators::new(Arc::clone(&self.ns))
            .to(self.id.as_str())
            .compress(compress)
    }

    /// Closes the underlying connection (every namespace of the client); the client sees a
    /// transport close and reconnects, with its state recovered when recovery is on.
    pub fn close_connection(&self) {
        // What the connection closes after includes the broadcasts made before.
        self.outbound().close();
    }

    /// Leaves the namespace; the client sees "io server disconnect".
    pub fn disconnect(&self) {
        self.disconnect_with(false);
    }

    /// Leaves the namespace, and with `close` closes the whole connection too.
    pub fn disconnect_with(&self, close: bool) {
        if !self.connected() {
            return;
        }
        if close {
            crate::engine_handler::disconnect_all(&self.conn);
            self.outbound().close();
        } else {
            let _ = self.send_packet(&Packet::disconnect(self.ns.name()));
            if let Some(me) = self.ns.get_socket(self.id) {
                me.close(DisconnectReason::ServerNamespaceDisconnect);
            }
        }
    }

    /// Leaves the namespace for `reason` and runs the disconnect handlers.
    pub(crate) fn close(self: &Arc<Self>, reason: DisconnectReason) {
        if !self.connected.swap(false, Ordering::AcqRel) {
            return;
        }
        let handlers = self.handlers.read().clone();
        for handler in handlers.disconnecting() {
            run(handler(Arc::clone(self), reason));
        }
        // The rooms as they were, before the socket leaves them.
        let kept = match &self.pid {
            Some(pid) if reason.is_recoverable() => Some((Arc::clone(pid), self.rooms())),
            _ => None,
        };
        self.ns.adapter().del_all(self.id);
        self.ns.remove_socket(self);
        self.ns
            .observers()
            .each(|o| o.disconnected(self.as_ref(), reason));
        crate::engine_handler::forget(&self.conn, self.ns.name());
        // Waiters of acknowledgements learn that none will come.
        self.acks.lock().clear();
        for handler in handlers.disconnect() {
            run(handler(Arc::clone(self), reason));
        }
        // Kept only now: a client that comes back at once cannot be restored (with this
        // socket's id) while this socket is still in the namespace, its rooms or the records
        // its disconnect handlers clean up.
        if let Some((pid, rooms)) = kept {
            let session = SessionData {
                sid: self.id,
                pid,
                rooms,
                data: self.data(),
                values: self.values.lock().clone(),
            };
            self.ns.adapter().persist_session(&self.ns, session);
        }
        // Only now: a client that comes back meanwhile waits for the session (see
        // `engine_handler.rs`).
        self.ns.forget_pid(self);
        // Handlers may hold the socket in their closures: drop them to break the cycle.
        *self.handlers.write() = Handlers::default();
        tracing::debug!(sid = %self.id, nsp = self.ns.name(), reason = reason.as_str(), "socket disconnected");
    }

    pub(crate) fn on_event(self: &Arc<Self>, event: EventName, args: Vec<Value>, id: Option<u64>) {
        let name = event_name(event);
        let handlers = self.handlers.read().clone();
        for handler in handlers.any() {
            run(handler(Arc::clone(self), name.clone(), args.clone()));
        }
        let mut ack = id.map(|id| AckSender {
            socket: Arc::downgrade(self),
            id,
        });
        let matching = handlers.matching(&name);
        // Only the first handler may answer the acknowledgement; the last one takes the name
        // and the arguments, the others get copies.
        let mut name = Some(name);
        let mut args = Some(args);
        let last = matching.len().saturating_sub(1);
        for (i, handler) in matching.into_iter().enumerate() {
            let (name, args) = if i == last {
                (name.take(), args.take())
            } else {
                (name.clone(), args.clone())
            };
            let event = Event {
                name: name.unwrap_or_default(),
                args: args.unwrap_or_default(),
                ack: ack.take(),
                answered: AtomicBool::new(false),
            };
            handler.call(Arc::clone(self), event);
        }
    }

    pub(crate) fn on_ack(&self, id: u64, args: Vec<Value>) {
        let waiter = self.acks.lock().remove(&id);
        match waiter {
            Some(AckWaiter::Single(tx)) => {
                let _ = tx.send(args);
            }
            Some(AckWaiter::Broadcast(collector)) => {
                if let Some(c) = collector.upgrade() {
                    c.answer(self.id, args);
                }
            }
            None => tracing::debug!(sid = %self.id, id, "acknowledgement nobody waits for"),
        }
    }

    /// Whether the limits let an event of `size` bytes through.
    #[inline]
    fn admit(&self, size: usize) -> Option<Refusal> {
        let limits = &self.ns.limits().config;
        // The token first: a client that floods with oversized events is rate limited too.
        if let Some(rate) = limits.event_rate
            && !self.bucket.take(rate)
        {
            return Some(Refusal::RateLimited);
        }
        (size > limits.max_event_payload).then_some(Refusal::PayloadTooLarge)
    }

    /// Answers an event the limits refused; a client that floods loses its connection.
    #[cold]
    fn refuse_event(&self, event: EventName, id: Option<u64>, refusal: Refusal, size: usize) {
        let limits = self.ns.limits();
        let config = &limits.config;
        limits.counters.add(refusal, 1);
        let name = event_name(event);
        let (code, message, flood) = match (refusal, config.event_rate) {
            (Refusal::RateLimited, Some(rate)) => {
                let flood = self.bucket.refused(rate);
                let message = format!(
                    "too many events: at most {} per second, {} at once{}",
                    rate.per_second,
                    rate.burst,
                    if flood { "; disconnected" } else { "" }
                );
                ("RATE_LIMITED", message, flood)
            }
            _ => {
                let message = format!(
                    "event of {size} bytes: at most {} bytes",
                    config.max_event_payload
                );
                ("PAYLOAD_TOO_LARGE", message, false)
            }
        };
        tracing::debug!(sid = %self.id, event = %name, code, "event refused");
        self.send_refusal(id, &name, code, &message);
        if flood {
            limits.counters.add(Refusal::Flood, 1);
            tracing::info!(sid = %self.id, nsp = self.ns.name(), "event flood: connection closed");
            crate::engine_handler::close_for(
                self.ns.fanout(),
                &self.conn,
                DisconnectReason::TooManyEvents,
            );
        }
    }

    /// Tells the client what was refused: `{error: {event, code, message}}` as the
    /// acknowledgement it asked for, else an `error` event `{event, code, message}`. Sent on
    /// the socket itself, held broadcasts and recovery aside.
    pub(crate) fn send_refusal(&self, ack: Option<u64>, event: &str, code: &str, message: &str) {
        let mut error = ignis_proto::value::Map::with_capacity(3);
        error.insert("event", event);
        error.insert("code", code);
        error.insert("message", message);
        let parser = self.ns.parser();
        let encoded = match ack {
            Some(id) => {
                let mut reply = ignis_proto::value::Map::with_capacity(1);
                reply.insert("error", Value::Map(error));
                outbound::encode_ack(
                    parser,
                    self.ns.name(),
                    id,
                    Cow::Owned(vec![Value::Map(reply)]),
                )
            }
            None => outbound::encode_event(
                parser,
                self.ns.name(),
                "error",
                Cow::Owned(vec![Value::Map(error)]),
                None,
            ),
        };
        if let Ok(packet) = encoded {
            let _ = self.outbound().send(packet);
        }
    }

    pub(crate) fn on_packet(self: &Arc<Self>, packet: Packet, size: usize) {
        match packet.kind {
            PacketKind::Event { event, args, id } => match self.admit(size) {
                None => {
                    self.ns.fanout().stats.events_received.add(1);
                    self.on_event(event, args, id)
                }
                Some(refusal) => self.refuse_event(event, id, refusal, size),
            },
            PacketKind::Ack { args, id } => self.on_ack(id, args),
            PacketKind::Disconnect => self.close(DisconnectReason::ClientNamespaceDisconnect),
            PacketKind::Connect(_) | PacketKind::ConnectError(_) => {}
        }
    }

    /// The socket as `fetch_sockets` reports it.
    pub fn to_remote(&self) -> RemoteSocket {
        RemoteSocket {
            id: self.id,
            handshake: self.handshake.to_value(),
            rooms: self.rooms(),
            data: self.data(),
        }
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("nsp", &self.ns.name())
            .finish()
    }
}

/// An event's name as a string (a number's digits).
fn event_name(event: EventName) -> String {
    match event.into_value() {
        Value::Str(name) => name,
        other => EventName::try_from(other)
            .map(|n| n.to_string())
            .unwrap_or_default(),
    }
}

/// Event names the protocol reserves for itself.
pub(crate) fn check_event_name(event: &str) -> Result<(), EmitError> {
    if ignis_proto::socketio::is_reserved_event(event) {
        Err(EmitError::ReservedEvent(event.to_string()))
    } else {
        Ok(())
    }
}

/// One room or several.
pub trait IntoRooms {
    /// The rooms, one per name.
    fn into_rooms(self) -> Vec<Room>;
}

impl IntoRooms for &str {
    fn into_rooms(self) -> Vec<Room> {
        vec![Arc::from(self)]
    }
}

impl IntoRooms for String {
    fn into_rooms(self) -> Vec<Room> {
        vec![Arc::from(self)]
    }
}

impl IntoRooms for &String {
    fn into_rooms(self) -> Vec<Room> {
        vec![Arc::from(self.as_str())]
    }
}

impl IntoRooms for Room {
    fn into_rooms(self) -> Vec<Room> {
        vec![self]
    }
}

impl IntoRooms for Sid {
    fn into_rooms(self) -> Vec<Room> {
        vec![Arc::from(self.as_str())]
    }
}

impl<T: IntoRooms> IntoRooms for Vec<T> {
    fn into_rooms(self) -> Vec<Room> {
        self.into_iter().flat_map(IntoRooms::into_rooms).collect()
    }
}

impl<T: IntoRooms + Clone> IntoRooms for &[T] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter()
            .cloned()
            .flat_map(IntoRooms::into_rooms)
            .collect()
    }
}

impl<const N: usize> IntoRooms for [&str; N] {
    fn into_rooms(self) -> Vec<Room> {
        self.iter().map(|s| Arc::from(*s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every socket holds a restore slot and an event a flag for its acknowledgement: both
    /// stay small, as they are paid for by every idle connection and every event.
    #[test]
    fn per_socket_slots_stay_small() {
        assert!(std::mem::size_of::<Mutex<Option<Restore>>>() <= 3 * std::mem::size_of::<usize>());
        assert!(std::mem::size_of::<Option<AckSender>>() <= 2 * std::mem::size_of::<usize>());
    }
}
