//! The adapter of one namespace over Redis, written once for every protocol: [`Core`] keeps the
//! local sockets (a [`MemoryAdapter`]), publishes what each operation asks of the other nodes,
//! applies their operations to its own sockets, and collects their answers. A protocol is a
//! [`Driver`]: how the core's requests and replies are written, how they travel, and how many
//! nodes there are. The classic protocol of `@socket.io/redis-adapter` is one (`adapter.rs`); the
//! messages of `socket.io-adapter`'s `ClusterAdapter` are another, over any
//! [`Transport`](crate::cluster_core::Transport) (`cluster_core.rs`: sharded pub/sub, streams).
//!
//! A driver's listener decodes what arrives and hands it to [`Core::apply`] (an operation of
//! another node) or [`Core::on_response`] (an answer to a request of this node).

use std::collections::HashSet;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use ignis_socketio::adapter::{AckCollector, BoxFuture, RoomIndex};
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::{
    Adapter, AdapterError, BroadcastFlags, BroadcastOptions, MemoryAdapter, Namespace,
    RemoteSocket, Room, SessionData, Sid, Value,
};

use crate::cluster;
use crate::protocol::Target;
use crate::requests::{AckRequests, Requests};
use crate::serve::{self, AckReply, Membership, RemoteTasks};
use crate::stats::RedisCounters;

/// What this node asks of the other nodes, for a [`Driver`] to write.
pub(crate) enum Outgoing<'a> {
    /// A broadcast without acknowledgements.
    Broadcast {
        packet: &'a Packet,
        opts: &'a BroadcastOptions,
    },
    /// A broadcast whose clients' acknowledgements come back; `opts.flags.timeout` is set.
    BroadcastWithAck {
        request_id: String,
        packet: &'a Packet,
        opts: BroadcastOptions,
    },
    /// `sockets_join` (`join`) or `sockets_leave`.
    Rooms {
        join: bool,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    },
    /// `disconnect_sockets`.
    Disconnect {
        opts: &'a BroadcastOptions,
        close: bool,
    },
    /// `fetch_sockets`: every other node answers with its matching sockets.
    Fetch {
        request_id: String,
        opts: &'a BroadcastOptions,
    },
    /// `all_rooms`, for a driver whose protocol has the request ([`Driver::asks_for_rooms`]).
    AllRooms { request_id: String },
    /// A server-side event; with a request id, every other node answers once.
    ServerSideEmit {
        request_id: Option<String>,
        args: &'a [Value],
    },
}

/// What another node asks of this one, as a [`Driver`] read it.
pub(crate) enum Incoming {
    /// Deliver to the matching local sockets.
    Broadcast {
        packet: Packet,
        opts: BroadcastOptions,
    },
    /// Deliver, and forward the clients' acknowledgements for `opts.flags.timeout`.
    BroadcastWithAck {
        request_id: String,
        packet: Packet,
        opts: BroadcastOptions,
    },
    /// Make the target sockets join (`join`) or leave `rooms`; a legacy request for one socket
    /// with an id wants [`Reply::Done`].
    Rooms {
        join: bool,
        target: Target,
        rooms: Vec<Room>,
        request_id: Option<String>,
    },
    /// Disconnect the target sockets; as for [`Incoming::Rooms`], a legacy one wants an answer.
    Disconnect {
        target: Target,
        close: bool,
        request_id: Option<String>,
    },
    /// Answer with the matching local sockets.
    Fetch {
        request_id: String,
        opts: BroadcastOptions,
    },
    /// Answer with the local rooms.
    AllRooms { request_id: String },
    /// Answer with the ids of the local sockets in any of `rooms` (a legacy request).
    SocketIds {
        request_id: String,
        rooms: Vec<Room>,
    },
    /// Run the namespace's handler of a server-side event; with a request id, answer with
    /// what it acknowledges.
    ServerSideEmit {
        request_id: Option<String>,
        data: Vec<Value>,
    },
}

/// This node's answer to a request of another node, for a [`Driver`] to write.
pub(crate) enum Reply {
    /// The local sockets in the asked rooms (legacy).
    SocketIds(Vec<Sid>),
    /// The local rooms.
    Rooms(Vec<Room>),
    /// A legacy request for one socket was carried out.
    Done,
    /// The local sockets a fetch selected.
    Sockets(Vec<RemoteSocket>),
    /// The local handler's acknowledgement of a server-side event.
    EmitAck(Value),
    /// How many local clients got a broadcast with acknowledgements.
    ClientCount(usize),
    /// One client's acknowledgement: its first argument, if it had any.
    Ack(Option<Value>),
}

/// What a request of this node collects from the other nodes, and an answer read as the
/// piece it adds ([`Driver::read_answer`]).
pub(crate) enum Collected {
    Rooms(Vec<Room>),
    Sockets(Vec<RemoteSocket>),
    Acks(Vec<Value>),
}

impl Collected {
    /// Adds `answer` when it is of the same kind; false when it is not (and so does not count).
    fn add(&mut self, answer: Collected) -> bool {
        match (self, answer) {
            (Collected::Rooms(all), Collected::Rooms(more)) => {
                for room in more {
                    if !all.contains(&room) {
                        all.push(room);
                    }
                }
            }
            (Collected::Sockets(all), Collected::Sockets(more)) => all.extend(more),
            (Collected::Acks(all), Collected::Acks(more)) => all.extend(more),
            _ => return false,
        }
        true
    }
}

/// An answer of another node to a broadcast with acknowledgements of this one.
pub(crate) enum AckAnswer {
    /// How many of its clients got the packet.
    ClientCount(usize),
    /// One of its clients answered with these arguments.
    Ack(Vec<Value>),
}

/// A protocol between the nodes: how the core's messages are written and read, and how they
/// travel. Everything else (what to send when, what to do with what arrives, the collection of
/// answers) is the core's.
pub(crate) trait Driver: Send + Sync + Sized + 'static {
    /// A message ready to go out: encoded before any local delivery, so that a message that
    /// cannot be encoded reaches nobody.
    type Encoded: Send + 'static;
    /// An answer to a request of this node, as decoded.
    type Response: Send + 'static;

    /// A new request id, in the protocol's format.
    fn request_id() -> String;

    /// Writes a request of node `uid` in namespace `nsp`.
    fn encode(
        &self,
        uid: &str,
        nsp: &str,
        request: Outgoing<'_>,
    ) -> Result<Self::Encoded, AdapterError>;

    /// Sends after everything sent before, and waits until Redis took it.
    fn send(&self, msg: Self::Encoded) -> BoxFuture<'static, Result<(), AdapterError>>;

    /// Sends after everything sent before, without waiting.
    fn send_nowait(&self, msg: Self::Encoded) -> Result<(), AdapterError>;

    /// Answers request `request_id` of node `requester` (`None` when the request did not say
    /// who sent it) for node `uid` of namespace `nsp`, without waiting.
    fn reply(
        &self,
        uid: &str,
        nsp: &str,
        requester: Option<&str>,
        request_id: &str,
        reply: Reply,
    ) -> Result<(), AdapterError>;

    /// How many nodes serve the namespace, this one included.
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>>;

    /// The request a response answers.
    fn response_to(response: &Self::Response) -> Option<&str>;

    /// What a response adds to a request that collects like `collecting`; `None` when it is
    /// no answer to such a request (it does not count then).
    fn read_answer(response: Self::Response, collecting: &Collected) -> Option<Collected>;

    /// A response read as an answer to a broadcast with acknowledgements.
    fn read_ack_answer(response: Self::Response) -> Option<AckAnswer>;

    /// Whether the protocol has an `all_rooms` request; without one, the rooms are gathered
    /// from `fetch_sockets`.
    fn asks_for_rooms(&self) -> bool {
        false
    }

    /// Whether broadcasts come back to their sender, which delivers them to its own sockets
    /// then (a log that gives each its offset), rather than at once.
    fn echoes_broadcasts(&self) -> bool {
        false
    }

    /// Whether [`Driver::rooms_changed`] wants to hear of rooms.
    fn watches_rooms(&self) -> bool {
        false
    }

    /// Rooms appeared on this node (`created`) or left it (`deleted`), each with whether it is
    /// public (not the id of a local socket). Called under the room index's lock, so that the
    /// changes come in the order they happened.
    fn rooms_changed(&self, created: &[(&Room, bool)], deleted: &[(&Room, bool)]) {
        let _ = (created, deleted);
    }

    /// See [`Adapter::send_with_offset`]; by default the local adapter's.
    fn send_with_offset(&self, local: &MemoryAdapter, send: &mut dyn FnMut(&str)) -> bool {
        local.send_with_offset(send)
    }

    /// See [`Adapter::persist_session`]; by default the local adapter's.
    fn persist_session(&self, local: &MemoryAdapter, ns: &Namespace, session: SessionData) {
        local.persist_session(ns, session);
    }

    /// See [`Adapter::restore_session`]; by default the local adapter's.
    fn restore_session<'a>(
        &'a self,
        local: &'a MemoryAdapter,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        local.restore_session(ns, pid, offset)
    }

    /// See [`Adapter::missed_packets`]; by default the local adapter's.
    fn missed_packets<'a>(
        &'a self,
        local: &'a MemoryAdapter,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        local.missed_packets(ns, rooms, offset)
    }
}

/// Limits of the work the other nodes cause on this one.
#[derive(Clone)]
pub(crate) struct CoreLimits {
    pub(crate) requests_timeout: Duration,
    pub(crate) max_pending_requests: usize,
    pub(crate) max_remote_tasks: usize,
    /// Where requests to the other nodes are counted: the connection's counters.
    pub(crate) counters: Arc<RedisCounters>,
}

/// The adapter of one namespace, over driver `D` (named `transport`, as most drivers are one).
pub(crate) struct Core<D: Driver> {
    pub(crate) local: MemoryAdapter,
    pub(crate) uid: String,
    pub(crate) nsp: String,
    pub(crate) transport: D,
    /// The core itself, for the replies that outlive a message.
    me: Weak<Core<D>>,
    requests_timeout: Duration,
    ns: OnceLock<Weak<Namespace>>,
    pending: Requests<Collected>,
    ack_requests: AckRequests,
    remote_tasks: RemoteTasks,
}

/// An error of the protocol's encoding, as the adapter reports it.
pub(crate) fn protocol_error(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Other(e.to_string())
}

/// Whether `room` is the id of a socket of this node (a private room, in Node's words).
fn is_private(index: &RoomIndex, room: &str) -> bool {
    Sid::parse(room).is_some_and(|sid| !index.socket_rooms(sid).is_empty())
}

impl<D: Driver> Core<D> {
    /// The core of namespace `nsp` with node id `uid`; `driver` gets the core's weak
    /// reference, for the messages it receives.
    pub(crate) fn new(
        nsp: &str,
        uid: String,
        limits: CoreLimits,
        driver: impl FnOnce(&Weak<Core<D>>) -> D,
    ) -> Arc<Core<D>> {
        Arc::new_cyclic(|me| Core {
            local: MemoryAdapter::new(),
            uid,
            nsp: nsp.to_string(),
            transport: driver(me),
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

    fn encode(&self, request: Outgoing<'_>) -> Result<D::Encoded, AdapterError> {
        self.transport.encode(&self.uid, &self.nsp, request)
    }

    async fn publish(&self, request: Outgoing<'_>) -> Result<(), AdapterError> {
        let msg = self.encode(request)?;
        self.transport.send(msg).await
    }

    /// Publishes `request` unless `opts` keep it local.
    async fn publish_unless_local(
        &self,
        opts: &BroadcastOptions,
        request: Outgoing<'_>,
    ) -> Result<(), AdapterError> {
        if opts.flags.local {
            return Ok(());
        }
        self.publish(request).await
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
            .publish_unless_local(opts, Outgoing::Rooms { join, opts, rooms })
            .await;
        if self.transport.watches_rooms() {
            serve::join_or_leave_selected(self, &self.local, ns, opts, rooms, join);
        } else if join {
            // The local adapter's, which keeps sockets within their room limit.
            self.local.add_sockets(ns, opts, rooms).await?;
        } else {
            self.local.del_sockets(ns, opts, rooms).await?;
        }
        published
    }

    fn respond(&self, requester: Option<&str>, request_id: &str, reply: Reply) {
        respond(self, requester, request_id, reply);
    }

    /// Asks every other node, and waits until each answered or the timeout.
    async fn ask_others<'r>(
        &self,
        collected: Collected,
        timeout: Duration,
        request: impl FnOnce(String) -> Outgoing<'r>,
    ) -> Result<Collected, AdapterError> {
        let servers = self.transport.server_count().await?;
        self.pending
            .ask_others(servers, collected, timeout, D::request_id, |request_id| {
                let msg = self.encode(request(request_id.to_string()))?;
                Ok(self.transport.send(msg))
            })
            .await
    }

    /// Delivers a broadcast to the local sockets. `offset`, the broadcast's place in a log,
    /// goes to the packet as its last argument when it is one a client may ask again.
    pub(crate) fn deliver(
        &self,
        ns: &Namespace,
        mut packet: Packet,
        opts: &BroadcastOptions,
        offset: &str,
    ) {
        packet.nsp = self.nsp.as_str().into();
        if ns.recovery().is_some()
            && !opts.flags.volatile
            && let PacketKind::Event { args, id: None, .. } = &mut packet.kind
        {
            args.push(Value::from(offset));
        }
        self.local.broadcast_local(ns, packet, opts);
    }

    /// An operation of node `sender`; `offset` is its place in a log, when it came in one.
    /// This node's own operations are ignored (it applied them before publishing), and so are
    /// requests it is waiting on itself.
    pub(crate) fn apply(&self, sender: Option<&str>, incoming: Incoming, offset: Option<&str>) {
        if sender == Some(self.uid.as_str()) {
            return;
        }
        let Some(ns) = self.ns() else { return };
        match incoming {
            Incoming::Broadcast { mut packet, opts } => match offset {
                Some(offset) => self.deliver(&ns, packet, &opts, offset),
                None => {
                    packet.nsp = self.nsp.as_str().into();
                    let _ = self.local.broadcast(&ns, packet, &opts);
                }
            },
            Incoming::BroadcastWithAck {
                request_id,
                packet,
                opts,
            } => {
                if !self.ack_requests.contains(&request_id) {
                    self.on_broadcast_with_ack(&ns, packet, opts, request_id, sender);
                }
            }
            Incoming::Rooms {
                join,
                target,
                rooms,
                request_id,
            } => match target {
                Target::Matching(opts) => {
                    serve::join_or_leave_selected(self, &self.local, &ns, &opts, &rooms, join);
                }
                Target::Socket(sid) => {
                    let Some(sid) = Sid::parse(&sid).filter(|s| ns.get_socket(*s).is_some()) else {
                        return;
                    };
                    self.join_or_leave(sid, &rooms, join);
                    if let Some(id) = request_id {
                        self.respond(sender, &id, Reply::Done);
                    }
                }
            },
            Incoming::Disconnect {
                target,
                close,
                request_id,
            } => match target {
                Target::Matching(opts) => {
                    serve::disconnect_selected(&self.local, &ns, &opts, close);
                }
                Target::Socket(sid) => {
                    let Some(socket) = Sid::parse(&sid).and_then(|s| ns.get_socket(s)) else {
                        return;
                    };
                    socket.disconnect_with(close);
                    if let Some(id) = request_id {
                        self.respond(sender, &id, Reply::Done);
                    }
                }
            },
            Incoming::Fetch { request_id, opts } => {
                if !self.pending.contains(&request_id) {
                    let sockets = serve::fetch_selected(&self.local, &ns, &opts);
                    self.respond(sender, &request_id, Reply::Sockets(sockets));
                }
            }
            Incoming::AllRooms { request_id } => {
                if !self.pending.contains(&request_id) {
                    let rooms = self.local.local_rooms();
                    self.respond(sender, &request_id, Reply::Rooms(rooms));
                }
            }
            Incoming::SocketIds { request_id, rooms } => {
                let opts = BroadcastOptions {
                    rooms,
                    ..Default::default()
                };
                let sids = self.local.local_sockets(&opts);
                self.respond(sender, &request_id, Reply::SocketIds(sids));
            }
            Incoming::ServerSideEmit { request_id, data } => {
                let reply = request_id.map(|request_id| {
                    let target = ResponseTarget::capture(self, sender);
                    move |answer: Value| target.send(&request_id, Reply::EmitAck(answer))
                });
                self.remote_tasks.server_side_emit(&ns, data, reply);
            }
        }
    }

    fn on_broadcast_with_ack(
        &self,
        ns: &Namespace,
        mut packet: Packet,
        opts: BroadcastOptions,
        request_id: String,
        requester: Option<&str>,
    ) {
        packet.nsp = self.nsp.as_str().into();
        let reply = AckForwarder {
            target: ResponseTarget::capture(self, requester),
            request_id,
        };
        let timeout = opts.flags.timeout;
        let selection = BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            flags: BroadcastFlags {
                volatile: opts.flags.volatile,
                compress: opts.flags.compress,
                ..Default::default()
            },
        };
        self.remote_tasks
            .broadcast_with_ack(&self.local, ns, packet, &selection, timeout, reply);
    }

    /// A response to a request of this node.
    pub(crate) fn on_response(&self, response: D::Response) {
        let Some(request_id) = D::response_to(&response).map(str::to_owned) else {
            return;
        };
        if let Some(collector) = self.ack_requests.collector(&request_id) {
            let Some(collector) = collector.upgrade() else {
                return;
            };
            match D::read_ack_answer(response) {
                Some(AckAnswer::ClientCount(n)) => collector.expect(n),
                Some(AckAnswer::Ack(args)) => collector.answer_remote(args),
                None => {}
            }
            return;
        }
        self.pending.answer(&request_id, |collected| {
            D::read_answer(response, collected).is_some_and(|answer| collected.add(answer))
        });
    }

    /// Adds `sid` to `rooms`, telling the driver of the rooms that appear.
    fn join_watched(&self, sid: Sid, rooms: &[Room]) {
        let mut index = self.local.index().write();
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

    /// Takes `sid` out of `room`, telling the driver when the room goes.
    fn leave_watched(&self, sid: Sid, room: &str) {
        let mut index = self.local.index().write();
        let public = !is_private(&index, room);
        index.del(sid, room);
        if !index.has_room(room) {
            let room: Room = Arc::from(room);
            self.transport.rooms_changed(&[], &[(&room, public)]);
        }
    }

    /// Takes `sid` out of every room, telling the driver of the rooms that go.
    fn leave_all_watched(&self, sid: Sid) {
        let mut index = self.local.index().write();
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

/// Answers `requester` for the core.
fn respond<D: Driver>(core: &Core<D>, requester: Option<&str>, request_id: &str, reply: Reply) {
    let (uid, nsp) = (&core.uid, &core.nsp);
    if let Err(e) = core.transport.reply(uid, nsp, requester, request_id, reply) {
        tracing::debug!(%nsp, error = %e, "response to another node not sent");
    }
}

/// Where a reply to another node goes: the core, held weakly, since replies outlive messages,
/// and the node that asked.
struct ResponseTarget<D: Driver> {
    core: Weak<Core<D>>,
    requester: Option<String>,
}

impl<D: Driver> ResponseTarget<D> {
    fn capture(core: &Core<D>, requester: Option<&str>) -> Self {
        ResponseTarget {
            core: core.me.clone(),
            requester: requester.map(str::to_owned),
        }
    }

    fn send(&self, request_id: &str, reply: Reply) {
        if let Some(core) = self.core.upgrade() {
            respond(&core, self.requester.as_deref(), request_id, reply);
        }
    }
}

/// Answers the node that sent a broadcast with acknowledgements.
struct AckForwarder<D: Driver> {
    target: ResponseTarget<D>,
    request_id: String,
}

impl<D: Driver> AckReply for AckForwarder<D> {
    fn client_count(&self, clients: usize) {
        self.target
            .send(&self.request_id, Reply::ClientCount(clients));
    }

    fn ack(&self, args: Vec<Value>) {
        // Node passes on the first argument of a client's acknowledgement only.
        self.target
            .send(&self.request_id, Reply::Ack(args.into_iter().next()));
    }
}

// Room membership goes through `join`, `leave` and `Adapter::del_all`, which tell a driver that
// watches rooms when a room appears on this node or goes, as Node's `create-room` and
// `delete-room` events; other drivers leave it to the local adapter.
impl<D: Driver> Membership for Core<D> {
    fn join(&self, sid: Sid, rooms: &[Room]) {
        if self.transport.watches_rooms() {
            self.join_watched(sid, rooms);
        } else {
            self.local.add_all(sid, rooms);
        }
    }

    fn leave(&self, sid: Sid, room: &str) {
        if self.transport.watches_rooms() {
            self.leave_watched(sid, room);
        } else {
            self.local.del(sid, room);
        }
    }
}

impl<D: Driver> Adapter for Core<D> {
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
        if self.transport.watches_rooms() {
            self.leave_all_watched(sid);
        } else {
            self.local.del_all(sid);
        }
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
        let message = |packet: &Packet| self.encode(Outgoing::Broadcast { packet, opts });
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
    /// added, the message published), within the driver's bound.
    fn broadcast_confirmed<'a>(
        &'a self,
        ns: &'a Namespace,
        packet: Packet,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        let message = |packet: &Packet| self.encode(Outgoing::Broadcast { packet, opts });
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
            D::request_id,
            |request_id, packet, opts| {
                self.encode(Outgoing::BroadcastWithAck {
                    request_id: request_id.to_string(),
                    packet,
                    opts,
                })
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
                    Outgoing::Fetch { request_id, opts }
                })
                .await?
            {
                Collected::Sockets(all) => Ok(all),
                _ => Ok(Vec::new()),
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
                .publish_unless_local(opts, Outgoing::Disconnect { opts, close })
                .await;
            serve::disconnect_selected(&self.local, ns, opts, close);
            published
        })
    }

    /// With a protocol that has no request for rooms, they are gathered from `fetch_sockets`
    /// over the whole cluster (Node's cluster adapters have no `allRooms` at all).
    fn all_rooms<'a>(
        &'a self,
        ns: &'a Namespace,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move {
            if self.transport.asks_for_rooms() {
                let local = self.local.local_rooms();
                let timeout = self.requests_timeout;
                return match self
                    .ask_others(Collected::Rooms(local), timeout, |request_id| {
                        Outgoing::AllRooms { request_id }
                    })
                    .await?
                {
                    Collected::Rooms(all) => Ok(all),
                    _ => Ok(Vec::new()),
                };
            }
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
        self.transport.persist_session(&self.local, ns, session);
    }

    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        self.transport.restore_session(&self.local, ns, pid, offset)
    }

    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        self.transport
            .missed_packets(&self.local, ns, rooms, offset)
    }

    fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
        self.transport.send_with_offset(&self.local, send)
    }

    fn server_side_emit<'a>(
        &'a self,
        _ns: &'a Namespace,
        args: Vec<Value>,
        ack: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        Box::pin(async move {
            let Some(timeout) = ack else {
                let request = Outgoing::ServerSideEmit {
                    request_id: None,
                    args: &args,
                };
                return self.publish(request).await.map(|()| Vec::new());
            };
            match self
                .ask_others(Collected::Acks(Vec::new()), timeout, |request_id| {
                    Outgoing::ServerSideEmit {
                        request_id: Some(request_id),
                        args: &args,
                    }
                })
                .await?
            {
                Collected::Acks(acks) => Ok(acks),
                _ => Ok(Vec::new()),
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
