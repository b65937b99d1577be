//! The cluster adapter of `socket.io-adapter` (`ClusterAdapter`), written once over a small
//! [`Transport`]: what a node publishes for each operation, how it applies the messages of the
//! other nodes to its own sockets, and how it collects their answers. The sharded adapter
//! carries the messages over SPUBLISH/SSUBSCRIBE, the streams adapter over a Redis stream and
//! PUBLISH/SUBSCRIBE; both hand what they receive to [`Core::on_message`] and
//! [`Core::on_response`].

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ignis_socketio::adapter::{AckCollector, BoxFuture, RoomIndex};
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::{
    Adapter, AdapterError, BroadcastOptions, MemoryAdapter, Namespace, RemoteSocket, Room,
    SessionData, Sid, Value,
};

use crate::cluster;
use crate::requests::{AckRequests, Requests};
use crate::serve::{self, AckReply, Membership, RemoteTasks};
use crate::sharded_protocol::{Body, Message, random_id};
use crate::stats::RedisCounters;

/// How the messages of the cluster protocol travel between nodes.
pub(crate) trait Transport: Send + Sync + Sized + 'static {
    /// A message ready to go out: encoded before any local delivery, so that a message that
    /// cannot be encoded reaches nobody.
    type Encoded: Send + 'static;

    /// Encodes a message for [`Transport::send`] or [`Transport::send_nowait`].
    fn encode(&self, msg: &Message) -> Result<Self::Encoded, AdapterError>;

    /// Sends after everything sent before, and waits until Redis took it.
    fn send(&self, msg: Self::Encoded) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Sends after everything sent before, without waiting.
    fn send_nowait(&self, msg: Self::Encoded) -> Result<(), AdapterError>;

    /// Answers the node `requester`, without waiting.
    fn respond(&self, requester: &str, msg: &Message) -> Result<(), AdapterError>;

    /// How many nodes serve the namespace, this one included.
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>>;

    /// Whether broadcasts come back to their sender, which delivers them to its own sockets
    /// then (a log that gives each its offset), rather than at once.
    fn echoes_broadcasts(&self) -> bool {
        false
    }

    /// With recovery on, sends an event to one socket with this transport's offset (see
    /// [`Adapter::send_with_offset`](ignis_socketio::Adapter::send_with_offset)); false when it
    /// has none.
    fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
        let _ = send;
        false
    }

    /// Whether [`Transport::rooms_changed`] wants to hear of rooms.
    fn watches_rooms(&self) -> bool {
        false
    }

    /// Rooms appeared on this node (`created`) or left it (`deleted`), each with whether it is
    /// public (not the id of a local socket). Called under the room index's lock, so that the
    /// changes come in the order they happened.
    fn rooms_changed(&self, created: &[(&Room, bool)], deleted: &[(&Room, bool)]) {
        let _ = (created, deleted);
    }

    /// See [`Adapter::persist_session`]; the default keeps the session in memory.
    fn persist_session(&self, ns: &Namespace, session: SessionData) {
        if let Some(recovery) = ns.recovery() {
            recovery.persist(session);
        }
    }

    /// See [`Adapter::restore_session`].
    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        let session = ns.recovery().and_then(|r| r.take_session(pid, offset));
        Box::pin(async move { session })
    }

    /// See [`Adapter::missed_packets`].
    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        let missed = ns.recovery().and_then(|r| r.missed(rooms, offset));
        Box::pin(async move { missed })
    }
}

pub(crate) enum Collected {
    Sockets(Vec<RemoteSocket>),
    Acks(Vec<Value>),
}

/// Limits of the work the other nodes cause on this one.
#[derive(Clone)]
pub(crate) struct CoreLimits {
    pub requests_timeout: Duration,
    pub max_pending_requests: usize,
    pub max_remote_tasks: usize,
    /// Where requests to the other nodes are counted: the connection's counters.
    pub counters: Arc<RedisCounters>,
}

/// The adapter of one namespace, over transport `T`.
pub(crate) struct Core<T: Transport> {
    pub(crate) local: MemoryAdapter,
    pub(crate) uid: String,
    pub(crate) nsp: String,
    pub(crate) transport: T,
    /// The core itself, for the replies that outlive a message.
    me: Weak<Core<T>>,
    requests_timeout: Duration,
    ns: OnceLock<Weak<Namespace>>,
    pending: Requests<Collected>,
    ack_requests: AckRequests,
    remote_tasks: RemoteTasks,
}

fn encode_error(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Other(e.to_string())
}

pub(crate) fn protocol_error(e: impl std::fmt::Display) -> AdapterError {
    encode_error(e)
}

/// Whether `room` is the id of a socket of this node (a private room, in Node's words).
fn is_private(index: &RoomIndex, room: &str) -> bool {
    Sid::parse(room).is_some_and(|sid| !index.socket_rooms(sid).is_empty())
}

impl<T: Transport> Core<T> {
    /// The core of namespace `nsp` with node id `uid`; `transport` gets the core's weak
    /// reference, for the messages it receives.
    pub(crate) fn new(
        nsp: &str,
        uid: String,
        limits: CoreLimits,
        transport: impl FnOnce(&Weak<Core<T>>) -> T,
    ) -> Arc<Core<T>> {
        Arc::new_cyclic(|me| Core {
            local: MemoryAdapter::new(),
            uid,
            nsp: nsp.to_string(),
            transport: transport(me),
            me: me.clone(),
            requests_timeout: limits.requests_timeout,
            ns: OnceLock::new(),
            pending: Requests::new(limits.max_pending_requests, limits.counters),
            ack_requests: AckRequests::new(limits.max_pending_requests),
            remote_tasks: RemoteTasks::new(nsp, limits.max_remote_tasks),
        })
    }

    pub(crate) fn ns(&self) -> Option<Arc<Namespace>> {
        self.ns.get().and_then(Weak::upgrade)
    }

    fn message(&self, body: Body) -> Message {
        Message {
            uid: Some(self.uid.clone()),
            nsp: Some(self.nsp.clone()),
            body,
        }
    }

    async fn publish(&self, body: Body) -> Result<(), AdapterError> {
        let msg = self.transport.encode(&self.message(body))?;
        self.transport.send(msg).await
    }

    /// Publishes the request `body` makes, unless `opts` keep it local.
    async fn publish_unless_local(
        &self,
        opts: &BroadcastOptions,
        body: impl FnOnce() -> Body,
    ) -> Result<(), AdapterError> {
        if opts.flags.local {
            return Ok(());
        }
        self.publish(body()).await
    }

    /// `sockets_join` (`join`) or `sockets_leave`: the other nodes first, then the local
    /// sockets, which go on even when the others cannot be told.
    async fn sockets_join_or_leave(
        &self,
        ns: &Namespace,
        opts: &BroadcastOptions,
        rooms: &[Room],
        join: bool,
    ) -> Result<(), AdapterError> {
        let published = self
            .publish_unless_local(opts, || {
                let (opts, rooms) = (opts.clone(), rooms.to_vec());
                if join {
                    Body::SocketsJoin { opts, rooms }
                } else {
                    Body::SocketsLeave { opts, rooms }
                }
            })
            .await;
        serve::join_or_leave_selected(self, &self.local, ns, opts, rooms, join);
        published
    }

    fn respond(&self, requester: Option<&str>, body: Body) {
        let Some(requester) = requester else { return };
        respond(&self.transport, &self.uid, &self.nsp, requester, body);
    }

    /// Asks every other node, and waits until each answered or the timeout.
    async fn ask_others(
        &self,
        collected: Collected,
        timeout: Duration,
        body: impl FnOnce(String) -> Body,
    ) -> Result<Collected, AdapterError> {
        let servers = self.transport.server_count().await?;
        self.pending
            .ask_others(servers, collected, timeout, random_id, |request_id| {
                let msg = self
                    .transport
                    .encode(&self.message(body(request_id.to_string())))?;
                Ok(self.transport.send(msg))
            })
            .await
    }

    /// Delivers a broadcast to the local sockets. `offset`, the broadcast's place in a log,
    /// goes to the packet as its last argument when it is one a client may ask again.
    fn deliver(&self, ns: &Namespace, mut packet: Packet, opts: &BroadcastOptions, offset: &str) {
        packet.nsp = self.nsp.as_str().into();
        if ns.recovery().is_some()
            && !opts.flags.volatile
            && let PacketKind::Event { args, id: None, .. } = &mut packet.kind
        {
            args.push(Value::from(offset));
        }
        self.local.broadcast_local(ns, packet, opts);
    }

    /// A message of the cluster protocol; `offset` is its place in a log, when it came in one.
    pub(crate) fn on_message(&self, msg: Message, offset: Option<&str>) {
        if msg.nsp.as_deref() != Some(&self.nsp) {
            return;
        }
        let own = msg.uid.as_deref() == Some(self.uid.as_str());
        let Some(ns) = self.ns() else { return };
        if own {
            // A transport that echoes broadcasts delivers this node's ones now, in log order.
            if let (
                Some(offset),
                Body::Broadcast {
                    packet,
                    opts,
                    request_id: None,
                },
            ) = (offset, msg.body)
                && self.transport.echoes_broadcasts()
            {
                self.deliver(&ns, packet, &opts, offset);
            }
            return;
        }
        let requester = msg.uid.as_deref();
        match msg.body {
            Body::Broadcast {
                mut packet,
                opts,
                request_id: None,
            } => match offset {
                Some(offset) => self.deliver(&ns, packet, &opts, offset),
                None => {
                    packet.nsp = self.nsp.as_str().into();
                    let _ = self.local.broadcast(&ns, packet, &opts);
                }
            },
            Body::Broadcast {
                packet,
                opts,
                request_id: Some(id),
            } => self.on_broadcast_with_ack(&ns, packet, opts, id, requester),
            Body::SocketsJoin { opts, rooms } => {
                serve::join_or_leave_selected(self, &self.local, &ns, &opts, &rooms, true);
            }
            Body::SocketsLeave { opts, rooms } => {
                serve::join_or_leave_selected(self, &self.local, &ns, &opts, &rooms, false);
            }
            Body::DisconnectSockets { opts, close } => {
                serve::disconnect_selected(&self.local, &ns, &opts, close);
            }
            Body::FetchSockets { opts, request_id } => {
                let sockets = serve::fetch_selected(&self.local, &ns, &opts);
                self.respond(
                    requester,
                    Body::FetchSocketsResponse {
                        request_id,
                        sockets,
                    },
                );
            }
            Body::ServerSideEmit { packet, request_id } => {
                self.on_server_side_emit(&ns, packet, request_id, requester);
            }
            // Responses may come with the requests too; Node reads them as responses.
            body @ (Body::FetchSocketsResponse { .. }
            | Body::ServerSideEmitResponse { .. }
            | Body::BroadcastClientCount { .. }
            | Body::BroadcastAck { .. }) => self.on_response(body),
            // Heartbeats belong to adapters that count nodes by them; the Redis ones count
            // subscribers, as Node's do.
            Body::InitialHeartbeat | Body::Heartbeat | Body::AdapterClose => {}
        }
    }

    fn on_server_side_emit(
        &self,
        ns: &Namespace,
        packet: Vec<Value>,
        request_id: Option<String>,
        requester: Option<&str>,
    ) {
        let reply = request_id
            .zip(requester.map(str::to_owned))
            .map(|(request_id, requester)| {
                let target = ResponseTarget::capture(self);
                move |answer: Value| {
                    target.send(
                        &requester,
                        Body::ServerSideEmitResponse {
                            request_id,
                            packet: Some(answer),
                        },
                    );
                }
            });
        self.remote_tasks.server_side_emit(ns, packet, reply);
    }

    fn on_broadcast_with_ack(
        &self,
        ns: &Namespace,
        mut packet: Packet,
        opts: BroadcastOptions,
        request_id: String,
        requester: Option<&str>,
    ) {
        let Some(requester) = requester else { return };
        packet.nsp = self.nsp.as_str().into();
        let reply = AckForwarder {
            target: ResponseTarget::capture(self),
            requester: requester.to_string(),
            request_id,
        };
        let timeout = opts.flags.timeout;
        let selection = BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            flags: ignis_socketio::BroadcastFlags {
                volatile: opts.flags.volatile,
                compress: opts.flags.compress,
                ..Default::default()
            },
        };
        self.remote_tasks
            .broadcast_with_ack(&self.local, ns, packet, &selection, timeout, reply);
    }

    /// A response to a request of this node.
    pub(crate) fn on_response(&self, body: Body) {
        let Some(request_id) = body.response_to() else {
            return;
        };
        if let Some(collector) = self.ack_requests.collector(request_id) {
            let Some(collector) = collector.upgrade() else {
                return;
            };
            match body {
                Body::BroadcastClientCount { client_count, .. } => {
                    collector.expect(usize::try_from(client_count).unwrap_or(usize::MAX));
                }
                Body::BroadcastAck { packet, .. } => {
                    collector.answer_remote(packet.map_or(Vec::new(), |v| vec![v]));
                }
                _ => {}
            }
            return;
        }
        let request_id = request_id.to_string();
        self.pending
            .answer(&request_id, |collected| match (collected, body) {
                (Collected::Sockets(all), Body::FetchSocketsResponse { sockets, .. }) => {
                    all.extend(sockets);
                    true
                }
                (Collected::Acks(all), Body::ServerSideEmitResponse { packet, .. }) => {
                    all.push(packet.unwrap_or_default());
                    true
                }
                _ => false,
            });
    }

    /// Room changes of a socket leaving every room, for the transport.
    fn leave_all(&self, sid: Sid) {
        let mut index = self.local.index().write();
        if !self.transport.watches_rooms() {
            index.del_all(sid);
            return;
        }
        let rooms = index.socket_rooms(sid);
        let public: Vec<bool> = rooms.iter().map(|r| !is_private(&index, r)).collect();
        index.del_all(sid);
        let deleted: Vec<(&Room, bool)> = rooms
            .iter()
            .zip(public)
            .filter(|(room, _)| !index.has_room(room))
            .collect();
        if !deleted.is_empty() {
            self.transport.rooms_changed(&[], &deleted);
        }
    }
}

/// Where a reply to another node goes: the core, held weakly, since replies outlive messages.
struct ResponseTarget<T: Transport> {
    core: Weak<Core<T>>,
}

impl<T: Transport> ResponseTarget<T> {
    fn capture(core: &Core<T>) -> Self {
        ResponseTarget {
            core: core.me.clone(),
        }
    }

    fn send(&self, requester: &str, body: Body) {
        if let Some(core) = self.core.upgrade() {
            respond(&core.transport, &core.uid, &core.nsp, requester, body);
        }
    }
}

fn respond<T: Transport>(transport: &T, uid: &str, nsp: &str, requester: &str, body: Body) {
    let msg = Message {
        uid: Some(uid.to_string()),
        nsp: Some(nsp.to_string()),
        body,
    };
    if let Err(e) = transport.respond(requester, &msg) {
        tracing::debug!(%nsp, error = %e, "response to another node not sent");
    }
}

/// Answers the node that sent a broadcast with acknowledgements.
struct AckForwarder<T: Transport> {
    target: ResponseTarget<T>,
    requester: String,
    request_id: String,
}

impl<T: Transport> AckReply for AckForwarder<T> {
    fn client_count(&self, clients: usize) {
        self.target.send(
            &self.requester,
            Body::BroadcastClientCount {
                request_id: self.request_id.clone(),
                client_count: clients as u64,
            },
        );
    }

    fn ack(&self, args: Vec<Value>) {
        // Node passes on the first argument of a client's acknowledgement only.
        self.target.send(
            &self.requester,
            Body::BroadcastAck {
                request_id: self.request_id.clone(),
                packet: args.into_iter().next(),
            },
        );
    }
}

// Room membership goes through `join`, `leave` and `Core::leave_all`, which tell the transport
// when a room appears on this node or goes, as Node's `create-room` and `delete-room` events.
impl<T: Transport> Membership for Core<T> {
    fn join(&self, sid: Sid, rooms: &[Room]) {
        let mut index = self.local.index().write();
        if !self.transport.watches_rooms() {
            index.add_all(sid, rooms);
            return;
        }
        let mut created: Vec<&Room> = Vec::new();
        let mut seen = HashSet::new();
        for room in rooms {
            if !index.has_room(room) && seen.insert(room) {
                created.push(room);
            }
        }
        index.add_all(sid, rooms);
        let created: Vec<(&Room, bool)> = created
            .into_iter()
            // A room the index refused (another socket's id) was not created.
            .filter(|room| index.has_room(room))
            .map(|room| (room, !is_private(&index, room)))
            .collect();
        if !created.is_empty() {
            self.transport.rooms_changed(&created, &[]);
        }
    }

    fn leave(&self, sid: Sid, room: &str) {
        let mut index = self.local.index().write();
        if !self.transport.watches_rooms() {
            index.del(sid, room);
            return;
        }
        let public = !is_private(&index, room);
        index.del(sid, room);
        if !index.has_room(room) {
            let room: Room = Arc::from(room);
            self.transport.rooms_changed(&[], &[(&room, public)]);
        }
    }
}

impl<T: Transport> Adapter for Core<T> {
    fn attach(&self, namespace: Weak<Namespace>) {
        self.local.watch(&namespace);
        let _ = self.ns.set(namespace);
    }

    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        self.join(sid, rooms);
    }

    fn del(&self, sid: Sid, room: &str) {
        self.leave(sid, room);
    }

    fn del_all(&self, sid: Sid) {
        self.leave_all(sid);
    }

    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.local.socket_rooms(sid)
    }

    fn local_sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.local.local_sockets(opts)
    }

    fn local_rooms(&self) -> Vec<Room> {
        self.local.local_rooms()
    }

    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        let message = |packet: &Packet| {
            self.transport.encode(&self.message(Body::Broadcast {
                packet: packet.clone(),
                opts: opts.clone(),
                request_id: None,
            }))
        };
        if self.transport.echoes_broadcasts() {
            if opts.flags.local {
                // Not in the log, so without an offset: a client's last offset stays one
                // that every node can find.
                self.local.broadcast_local(ns, packet, opts);
                return Ok(());
            }
            // Delivered here too when it comes back with its offset: every node, this one
            // included, sees the broadcasts in the order of the log.
            let msg = message(&packet)?;
            return self.transport.send_nowait(msg);
        }
        cluster::broadcast(&self.local, ns, packet, opts, message, |msg| {
            self.transport.send_nowait(msg)
        })
    }

    /// As [`Adapter::broadcast`], resolving once Redis took the message (the stream entry
    /// added, the message published), within the transport's bound.
    fn broadcast_confirmed<'a>(
        &'a self,
        ns: &'a Namespace,
        packet: Packet,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        let message = |packet: &Packet| {
            self.transport.encode(&self.message(Body::Broadcast {
                packet: packet.clone(),
                opts: opts.clone(),
                request_id: None,
            }))
        };
        let mut remote = None;
        let sent = if self.transport.echoes_broadcasts() {
            if opts.flags.local {
                self.local.broadcast_local(ns, packet, opts);
                Ok(())
            } else {
                message(&packet).map(|msg| remote = Some(msg))
            }
        } else {
            cluster::broadcast(&self.local, ns, packet, opts, message, |msg| {
                remote = Some(msg);
                Ok(())
            })
        };
        let confirmed = match (sent, remote) {
            (Err(e), _) => Err(e),
            (Ok(()), None) => Ok(None),
            (Ok(()), Some(msg)) => Ok(Some(self.transport.send(msg))),
        };
        Box::pin(async move {
            match confirmed? {
                Some(sending) => sending.await,
                None => Ok(()),
            }
        })
    }

    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) -> Result<(), AdapterError> {
        cluster::broadcast_with_ack(
            &self.local,
            &self.ack_requests,
            ns,
            packet,
            opts,
            collector,
            random_id,
            |request_id, packet, wire_opts| {
                self.transport.encode(&self.message(Body::Broadcast {
                    packet: packet.clone(),
                    opts: wire_opts,
                    request_id: Some(request_id.to_string()),
                }))
            },
            |msg| self.transport.send_nowait(msg),
        )
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        self.transport.server_count()
    }

    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<Vec<RemoteSocket>, AdapterError>> {
        Box::pin(async move {
            let local = self.local.fetch_sockets(ns, opts).await?;
            if opts.flags.local {
                return Ok(local);
            }
            let timeout = opts.flags.timeout.unwrap_or(self.requests_timeout);
            match self
                .ask_others(Collected::Sockets(local), timeout, |request_id| {
                    Body::FetchSockets {
                        opts: opts.clone(),
                        request_id,
                    }
                })
                .await?
            {
                Collected::Sockets(all) => Ok(all),
                Collected::Acks(_) => Ok(Vec::new()),
            }
        })
    }

    fn add_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(self.sockets_join_or_leave(ns, opts, rooms, true))
    }

    fn del_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(self.sockets_join_or_leave(ns, opts, rooms, false))
    }

    fn disconnect_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(async move {
            // Published before the local sockets go, since their rooms select the others.
            let published = self
                .publish_unless_local(opts, || Body::DisconnectSockets {
                    opts: opts.clone(),
                    close,
                })
                .await;
            serve::disconnect_selected(&self.local, ns, opts, close);
            published
        })
    }

    /// The protocol has no request for rooms: they are gathered from `fetch_sockets` over the
    /// whole cluster (Node's cluster adapters have no `allRooms` at all).
    fn all_rooms<'a>(
        &'a self,
        ns: &'a Namespace,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move {
            let sockets = self.fetch_sockets(ns, &BroadcastOptions::default()).await?;
            let mut rooms: Vec<Room> = self.local.local_rooms();
            let mut seen: HashSet<Room> = rooms.iter().cloned().collect();
            for room in sockets.into_iter().flat_map(|s| s.rooms) {
                if seen.insert(Arc::clone(&room)) {
                    rooms.push(room);
                }
            }
            Ok(rooms)
        })
    }

    fn persist_session(&self, ns: &Namespace, session: SessionData) {
        self.transport.persist_session(ns, session);
    }

    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        self.transport.restore_session(ns, pid, offset)
    }

    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        self.transport.missed_packets(ns, rooms, offset)
    }

    fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
        self.transport.send_with_offset(send)
    }

    fn server_side_emit<'a>(
        &'a self,
        _ns: &'a Namespace,
        args: Vec<Value>,
        ack: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        Box::pin(async move {
            let Some(timeout) = ack else {
                return self
                    .publish(Body::ServerSideEmit {
                        packet: args,
                        request_id: None,
                    })
                    .await
                    .map(|()| Vec::new());
            };
            match self
                .ask_others(Collected::Acks(Vec::new()), timeout, |request_id| {
                    Body::ServerSideEmit {
                        packet: args,
                        request_id: Some(request_id),
                    }
                })
                .await?
            {
                Collected::Acks(acks) => Ok(acks),
                Collected::Sockets(_) => Ok(Vec::new()),
            }
        })
    }
}

/// Implements [`Adapter`] for a public adapter type whose field `core` is an
/// `Arc<Core<_>>`, by handing every call to the core.
macro_rules! forward_adapter {
    ($ty:ty) => {
        impl ::ignis_socketio::Adapter for $ty {
            fn attach(&self, namespace: ::std::sync::Weak<::ignis_socketio::Namespace>) {
                self.core.attach(namespace)
            }
            fn add_all(&self, sid: ::ignis_socketio::Sid, rooms: &[::ignis_socketio::Room]) {
                self.core.add_all(sid, rooms)
            }
            fn del(&self, sid: ::ignis_socketio::Sid, room: &str) {
                self.core.del(sid, room)
            }
            fn del_all(&self, sid: ::ignis_socketio::Sid) {
                self.core.del_all(sid)
            }
            fn socket_rooms(&self, sid: ::ignis_socketio::Sid) -> Vec<::ignis_socketio::Room> {
                self.core.socket_rooms(sid)
            }
            fn local_sockets(
                &self,
                opts: &::ignis_socketio::BroadcastOptions,
            ) -> Vec<::ignis_socketio::Sid> {
                self.core.local_sockets(opts)
            }
            fn local_rooms(&self) -> Vec<::ignis_socketio::Room> {
                self.core.local_rooms()
            }
            fn broadcast(
                &self,
                ns: &::ignis_socketio::Namespace,
                packet: ::ignis_socketio::proto::socketio::Packet,
                opts: &::ignis_socketio::BroadcastOptions,
            ) -> Result<(), ::ignis_socketio::AdapterError> {
                self.core.broadcast(ns, packet, opts)
            }
            fn broadcast_confirmed<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                packet: ::ignis_socketio::proto::socketio::Packet,
                opts: &'a ::ignis_socketio::BroadcastOptions,
            ) -> ::ignis_socketio::adapter::BoxFuture<
                'a,
                Result<(), ::ignis_socketio::AdapterError>,
            > {
                self.core.broadcast_confirmed(ns, packet, opts)
            }
            fn broadcast_with_ack(
                &self,
                ns: &::ignis_socketio::Namespace,
                packet: ::ignis_socketio::proto::socketio::Packet,
                opts: &::ignis_socketio::BroadcastOptions,
                collector: ::std::sync::Arc<dyn ::ignis_socketio::adapter::AckCollector>,
            ) -> Result<(), ::ignis_socketio::AdapterError> {
                self.core.broadcast_with_ack(ns, packet, opts, collector)
            }
            fn server_count(
                &self,
            ) -> ::ignis_socketio::adapter::BoxFuture<
                '_,
                Result<usize, ::ignis_socketio::AdapterError>,
            > {
                self.core.server_count()
            }
            fn fetch_sockets<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                opts: &'a ::ignis_socketio::BroadcastOptions,
            ) -> ::ignis_socketio::adapter::BoxFuture<
                'a,
                Result<Vec<::ignis_socketio::RemoteSocket>, ::ignis_socketio::AdapterError>,
            > {
                self.core.fetch_sockets(ns, opts)
            }
            fn add_sockets<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                opts: &'a ::ignis_socketio::BroadcastOptions,
                rooms: &'a [::ignis_socketio::Room],
            ) -> ::ignis_socketio::adapter::BoxFuture<'a, Result<(), ::ignis_socketio::AdapterError>>
            {
                self.core.add_sockets(ns, opts, rooms)
            }
            fn del_sockets<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                opts: &'a ::ignis_socketio::BroadcastOptions,
                rooms: &'a [::ignis_socketio::Room],
            ) -> ::ignis_socketio::adapter::BoxFuture<'a, Result<(), ::ignis_socketio::AdapterError>>
            {
                self.core.del_sockets(ns, opts, rooms)
            }
            fn disconnect_sockets<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                opts: &'a ::ignis_socketio::BroadcastOptions,
                close: bool,
            ) -> ::ignis_socketio::adapter::BoxFuture<'a, Result<(), ::ignis_socketio::AdapterError>>
            {
                self.core.disconnect_sockets(ns, opts, close)
            }
            fn all_rooms<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
            ) -> ::ignis_socketio::adapter::BoxFuture<
                'a,
                Result<Vec<::ignis_socketio::Room>, ::ignis_socketio::AdapterError>,
            > {
                self.core.all_rooms(ns)
            }
            fn persist_session(
                &self,
                ns: &::ignis_socketio::Namespace,
                session: ::ignis_socketio::SessionData,
            ) {
                self.core.persist_session(ns, session)
            }
            fn restore_session<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                pid: &'a str,
                offset: &'a str,
            ) -> ::ignis_socketio::adapter::BoxFuture<'a, Option<::ignis_socketio::SessionData>>
            {
                self.core.restore_session(ns, pid, offset)
            }
            fn missed_packets<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                rooms: &'a [::ignis_socketio::Room],
                offset: &'a str,
            ) -> ::ignis_socketio::adapter::BoxFuture<
                'a,
                Option<Vec<::ignis_socketio::proto::socketio::Packet>>,
            > {
                self.core.missed_packets(ns, rooms, offset)
            }
            fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
                self.core.send_with_offset(send)
            }
            fn server_side_emit<'a>(
                &'a self,
                ns: &'a ::ignis_socketio::Namespace,
                args: Vec<::ignis_socketio::Value>,
                ack: Option<::std::time::Duration>,
            ) -> ::ignis_socketio::adapter::BoxFuture<
                'a,
                Result<Vec<::ignis_socketio::Value>, ::ignis_socketio::AdapterError>,
            > {
                self.core.server_side_emit(ns, args, ack)
            }
        }
    };
}
pub(crate) use forward_adapter;
