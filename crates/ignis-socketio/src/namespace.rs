//! Namespaces: their sockets, middlewares, connection handler and adapter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use ignis_engine::{Round, Sid, SidMap};
use ignis_proto::Value;
use ignis_proto::socketio::Packet;
use parking_lot::RwLock;
use smallvec::SmallVec;

use crate::adapter::{AckCollector, Adapter, BroadcastFlags, RefusedRoom, Room, RoomRefusal};
use crate::fanout::{self, Fanout};
use crate::handler::{ConnectHandler, Middleware, ServerEventHandler};
use crate::limits::{Limits, Refusal, SocketLimits};
use crate::observer::Observers;
use crate::operators::Operators;
use crate::outbound::IntoArgs;
use crate::outbound::{self, ParserKind};
use crate::recovery::Recovery;
use crate::socket::{IntoRooms, SocketRef};
use crate::{ConnectError, EmitError};

/// A namespace: a channel of its own over the shared connection of a client.
pub struct Namespace {
    /// This namespace, for the broadcasts it defers (see [`crate::fanout`]).
    me: Weak<Namespace>,
    name: String,
    adapter: Arc<dyn Adapter>,
    parser: ParserKind,
    sockets: RwLock<SidMap<SocketRef>>,
    /// The local sockets by private id, when recovery is on, until their session is kept (see
    /// [`Namespace::socket_by_pid`]).
    pids: RwLock<HashMap<Arc<str>, SocketRef>>,
    middlewares: RwLock<Vec<Middleware>>,
    on_connect: RwLock<Option<ConnectHandler>>,
    server_events: RwLock<HashMap<String, ServerEventHandler>>,
    /// Acknowledgement ids are unique per namespace, since a broadcast with acknowledgements
    /// sends one packet (one id) to many sockets.
    ack_ids: AtomicU64,
    recovery: Option<Arc<Recovery>>,
    /// The server's per-socket limits and their counters.
    limits: Arc<Limits>,
    /// The server's broadcasts not queued yet, which every send to one of its sockets comes
    /// after (see [`crate::fanout`]).
    fanout: Arc<Fanout>,
    /// The server's observers (see [`crate::observer`]).
    observers: Arc<Observers>,
}

impl Namespace {
    pub(crate) fn new(
        name: String,
        adapter: Arc<dyn Adapter>,
        parser: ParserKind,
        recovery: Option<Arc<Recovery>>,
        limits: Arc<Limits>,
        fanout: Arc<Fanout>,
        observers: Arc<Observers>,
    ) -> Arc<Namespace> {
        Arc::new_cyclic(|me| Namespace {
            me: Weak::clone(me),
            name,
            adapter,
            parser,
            sockets: RwLock::new(SidMap::default()),
            pids: RwLock::new(HashMap::new()),
            middlewares: RwLock::new(Vec::new()),
            on_connect: RwLock::new(None),
            server_events: RwLock::new(HashMap::new()),
            ack_ids: AtomicU64::new(0),
            recovery,
            limits,
            fanout,
            observers,
        })
    }

    /// The observers of the server this namespace belongs to.
    pub(crate) fn observers(&self) -> &Arc<Observers> {
        &self.observers
    }

    /// The fan-out of the server this namespace belongs to.
    #[inline]
    pub(crate) fn fanout(&self) -> &Arc<Fanout> {
        &self.fanout
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The per-socket limits of the server.
    pub fn socket_limits(&self) -> &SocketLimits {
        &self.limits.config
    }

    /// Counts (and logs) the rooms a socket was refused.
    pub(crate) fn count_refused_rooms(&self, sid: Sid, refused: &[RefusedRoom]) {
        if refused.is_empty() {
            return;
        }
        let mut limit = 0;
        let mut foreign = 0;
        for r in refused {
            match r.reason {
                RoomRefusal::RoomLimit => limit += 1,
                RoomRefusal::SocketIdRoom => foreign += 1,
            }
        }
        self.limits.counters.add(Refusal::RoomLimit, limit);
        self.limits.counters.add(Refusal::SocketIdRoom, foreign);
        tracing::debug!(%sid, nsp = %self.name, at_limit = limit, socket_id_rooms = foreign, "rooms refused");
    }

    /// The namespace's name (`/`, `/chat`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The adapter that keeps the namespace's rooms and sends its broadcasts.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    pub(crate) fn parser(&self) -> ParserKind {
        self.parser
    }

    /// The in-memory store of connection state recovery, when recovery is on: an adapter with
    /// a store of its own reads its options here.
    pub fn recovery(&self) -> Option<&Arc<Recovery>> {
        self.recovery.as_ref()
    }

    /// A new acknowledgement id, for a cluster adapter that delivers a broadcast with
    /// acknowledgements from another node.
    pub fn next_ack_id(&self) -> u64 {
        self.ack_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Sets the handler that runs for every socket that joins the namespace.
    pub fn on_connect<F, Fut>(&self, handler: F)
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: ConnectHandler = Arc::new(move |s| Box::pin(handler(s)));
        *self.on_connect.write() = Some(handler);
    }

    /// Adds a middleware: it runs, in the order added, before a socket joins the namespace, and
    /// refuses it with an error (which the client gets as `connect_error`).
    pub fn use_middleware<F, Fut>(&self, middleware: F)
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        let middleware: Middleware = Arc::new(move |s| Box::pin(middleware(s)));
        self.middlewares.write().push(middleware);
    }

    /// Handles events other nodes send with `server_side_emit`; the returned value, if any, is
    /// the acknowledgement.
    pub fn on_server_event<F, Fut>(&self, event: impl Into<String>, handler: F)
    where
        F: Fn(Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Value>> + Send + 'static,
    {
        let handler: ServerEventHandler = Arc::new(move |args| Box::pin(handler(args)));
        self.server_events.write().insert(event.into(), handler);
    }

    /// Emits an event to this namespace on the other nodes of the cluster (`serverSideEmit`);
    /// their [`Namespace::on_server_event`] handlers run. A single node has no other node, so
    /// this does nothing there.
    pub async fn server_side_emit(&self, event: &str, args: Vec<Value>) -> Result<(), EmitError> {
        crate::socket::check_event_name(event)?;
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::from(event));
        all.extend(args);
        self.adapter.server_side_emit(self, all, None).await?;
        Ok(())
    }

    /// Like [`Namespace::server_side_emit`], and collects one answer per other node within
    /// `timeout` (`serverSideEmitWithAck`).
    pub async fn server_side_emit_with_ack(
        &self,
        event: &str,
        args: Vec<Value>,
        timeout: std::time::Duration,
    ) -> Result<Vec<Value>, EmitError> {
        crate::socket::check_event_name(event)?;
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Value::from(event));
        all.extend(args);
        Ok(self
            .adapter
            .server_side_emit(self, all, Some(timeout))
            .await?)
    }

    /// Runs the handler of an event from another node (`[event, ...args]`).
    pub fn dispatch_server_event(
        &self,
        mut args: Vec<Value>,
    ) -> Option<crate::adapter::BoxFuture<'static, Option<Value>>> {
        if args.is_empty() {
            return None;
        }
        let event = args.remove(0);
        let handler = self.server_events.read().get(event.as_str()?).cloned()?;
        Some(handler(args))
    }

    pub(crate) fn push_middleware(&self, middleware: Middleware) {
        self.middlewares.write().push(middleware);
    }

    pub(crate) fn set_connect_handler(&self, handler: ConnectHandler) {
        *self.on_connect.write() = Some(handler);
    }

    pub(crate) fn middlewares(&self) -> Vec<Middleware> {
        self.middlewares.read().clone()
    }

    pub(crate) fn connect_handler(&self) -> Option<ConnectHandler> {
        self.on_connect.read().clone()
    }

    /// A local socket of this namespace.
    pub fn get_socket(&self, sid: Sid) -> Option<SocketRef> {
        self.sockets.read().get(&sid).cloned()
    }

    /// The local sockets.
    pub fn sockets(&self) -> Vec<SocketRef> {
        self.sockets.read().values().cloned().collect()
    }

    /// How many sockets are connected to the namespace on this node.
    pub fn socket_count(&self) -> usize {
        self.sockets.read().len()
    }

    pub(crate) fn add_socket(&self, socket: SocketRef) {
        if let Some(pid) = &socket.pid {
            self.pids
                .write()
                .insert(Arc::clone(pid), Arc::clone(&socket));
        }
        self.sockets.write().insert(socket.id(), socket);
    }

    /// The local socket of a private id, from its connect until its session is kept when it
    /// leaves: a client that comes back with the id while it is here left a connection this
    /// server has not yet seen fail, or is seeing fail right now.
    pub(crate) fn socket_by_pid(&self, pid: &str) -> Option<SocketRef> {
        self.pids.read().get(pid).cloned()
    }

    /// Forgets `socket`'s private id (unless a socket that recovered it holds it by now).
    pub(crate) fn forget_pid(&self, socket: &SocketRef) {
        if let Some(pid) = &socket.pid {
            let mut pids = self.pids.write();
            if pids.get(pid).is_some_and(|s| Arc::ptr_eq(s, socket)) {
                pids.remove(pid);
            }
        }
    }

    /// Removes `socket`, unless its id is another socket's by now (a recovered socket keeps
    /// the id of the one that left).
    pub(crate) fn remove_socket(&self, socket: &SocketRef) {
        let mut sockets = self.sockets.write();
        if sockets
            .get(&socket.id())
            .is_some_and(|s| Arc::ptr_eq(s, socket))
        {
            sockets.remove(&socket.id());
        }
    }

    /// Broadcast operators over this namespace.
    pub fn operators(self: &Arc<Self>) -> Operators {
        Operators::new(Arc::clone(self))
    }

    /// Sends to the sockets in `room`.
    pub fn to(self: &Arc<Self>, room: impl IntoRooms) -> Operators {
        self.operators().to(room)
    }

    /// Sends to every socket except those in `room`.
    pub fn except(self: &Arc<Self>, room: impl IntoRooms) -> Operators {
        self.operators().except(room)
    }

    /// Sends an event to every socket of the namespace (see [`Operators::emit`]).
    pub fn emit<'a>(
        self: &Arc<Self>,
        event: &str,
        args: impl IntoArgs<'a>,
    ) -> Result<(), EmitError> {
        self.operators().emit(event, args)
    }

    /// Encodes `packet` once and sends the same bytes to every socket in `sids`.
    ///
    /// The messages are queued once the calling task yields, together with the other
    /// broadcasts made meanwhile (see the `fanout` module), and in any case before anything this
    /// process sends to those sockets afterwards: an emit, an acknowledgement or a disconnect
    /// that follows the broadcast reaches the client after it.
    pub fn deliver(&self, packet: Packet, sids: &[Sid], flags: &BroadcastFlags) {
        if sids.is_empty() {
            return;
        }
        let messages = match outbound::encode_with(
            self.parser,
            &packet,
            flags.compress != Some(false),
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(nsp = %self.name, error = %e, "broadcast packet cannot be encoded");
                return;
            }
        };
        let Some(ns) = self.me.upgrade() else {
            // Dropped already: nobody is left to deliver to.
            return;
        };
        // A socket being restored tells the packets it gets again among the missed ones by
        // their offsets.
        let offset = match self.recovery {
            Some(_) if !flags.volatile => crate::recovery::offset_of(&packet).map(Arc::from),
            _ => None,
        };
        self.fanout.submit(fanout::Broadcast {
            ns,
            sids: Arc::from(sids),
            part: fanout::Part { offset, messages },
            volatile: flags.volatile,
        });
    }

    /// Queues `round` for every socket in `sids` that is connected and takes broadcasts; a
    /// socket being restored keeps `parts`, the round's broadcasts one by one, for later
    /// (see `Socket::begin_restore`).
    pub(crate) fn queue_round(
        &self,
        sids: &[Sid],
        round: &Round,
        parts: &[fanout::Part],
        volatile: bool,
    ) {
        /// Recipients looked up and warmed before any of them is written.
        const AHEAD: usize = 16;
        let sockets = self.sockets.read();
        let mut dropped = 0;
        for chunk in sids.chunks(AHEAD) {
            // Between two writes (system calls) the processor fetches one recipient's memory
            // after another, and at low rates none of it is cached: most of a delivery's user
            // time. Looked up and read first, a few at a time, they are fetched together.
            let ready: SmallVec<[&crate::engine_handler::EngineSocket; AHEAD]> = chunk
                .iter()
                .filter_map(|sid| sockets.get(sid))
                .filter(|socket| {
                    if socket.restoring() {
                        socket.keep_for_restore(round, parts, volatile);
                        return false;
                    }
                    socket.connected() && !socket.broadcasts_held()
                })
                .map(|socket| &*socket.conn)
                .collect();
            for conn in &ready {
                conn.warm();
            }
            for conn in ready {
                if let Ok(false) = conn.send_round(round, volatile) {
                    dropped += 1;
                }
            }
        }
        if dropped > 0 {
            self.fanout.stats.volatile_drops.add(dropped);
        }
    }

    /// Like [`Namespace::deliver`], for a packet that asks every recipient for an
    /// acknowledgement: answers go to `collector`, which first learns how many to expect.
    pub fn deliver_with_ack(
        &self,
        packet: Packet,
        sids: &[Sid],
        flags: &BroadcastFlags,
        collector: Arc<dyn AckCollector>,
    ) {
        let id = match &packet.kind {
            ignis_proto::socketio::PacketKind::Event { id: Some(id), .. } => *id,
            _ => {
                collector.expect(0);
                return;
            }
        };
        // Sent at once, not deferred, so that the collector learns now how many answers to
        // expect; after the broadcasts made before, as any other send.
        self.fanout.settle();
        let messages = match outbound::encode_with(
            self.parser,
            &packet,
            flags.compress != Some(false),
        ) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(nsp = %self.name, error = %e, "broadcast packet cannot be encoded");
                collector.expect(0);
                return;
            }
        };
        self.fanout
            .stats
            .broadcast(sids.len(), messages.iter().map(|m| m.data().len()).sum());
        let mut batch = ignis_engine::DeliveryBatch::new();
        let sockets = self.sockets.read();
        let mut count = 0;
        for sid in sids {
            if let Some(socket) = sockets.get(sid)
                && socket.connected()
                && !socket.broadcasts_held()
                // Not replayable, so not kept for a restore either: it would pass the replay.
                && !socket.keeping_for_restore()
            {
                socket.register_collector(id, &collector);
                if socket
                    .conn
                    .send_shared_in(&messages, flags.volatile, &mut batch)
                    .is_ok()
                {
                    count += 1;
                }
            }
        }
        collector.expect(count);
    }

    /// Rooms that exist on this node.
    pub fn local_rooms(&self) -> Vec<Room> {
        self.adapter.local_rooms()
    }
}

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespace")
            .field("name", &self.name)
            .finish()
    }
}
