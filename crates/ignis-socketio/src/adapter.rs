//! Adapters: who is in which room, and how a broadcast reaches its recipients.
//!
//! Every namespace has one adapter. [`MemoryAdapter`], the default, serves a single node. A
//! cluster adapter (Redis) implements the same trait: it keeps the local rooms the same way and
//! also forwards broadcasts and requests to the other nodes, which is why the operations that may
//! wait for other nodes return futures.
//!
//! This module is the API for writing an adapter, public on purpose: the [`Adapter`] trait and
//! its factory, what it is given ([`BroadcastOptions`], [`AckCollector`] for the answers of a
//! broadcast with acknowledgements) and what it returns ([`RemoteSocket`], [`AdapterError`]),
//! and the building blocks a cluster adapter reuses for its local side ([`RoomIndex`],
//! [`MemoryAdapter::broadcast_local`], [`MemoryAdapter::index`]). The `ignis-redis` adapters are
//! written with nothing else.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ignis_engine::{Sid, SidHash, SidMap, SidSet};
use ignis_proto::Value;
use ignis_proto::socketio::Packet;
use parking_lot::RwLock;

pub use crate::error::AdapterError;
use crate::namespace::Namespace;
use crate::observer::RoomWatch;
use crate::recovery::SessionData;

/// A room name. Every socket is in the room named by its own id.
pub type Room = Arc<str>;

/// A boxed future, for the adapter operations that may wait on other nodes.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Modifiers of a broadcast.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastFlags {
    /// Drop the packet for clients that are not ready to receive it instead of queueing it.
    pub volatile: bool,
    /// Whether compression is wanted (`None`: the default, compress).
    pub compress: Option<bool>,
    /// Only this node.
    pub local: bool,
    /// How long to wait for acknowledgements.
    pub timeout: Option<Duration>,
}

/// Who a broadcast is for: sockets in any of `rooms` (everyone when empty), minus the sockets in
/// any of `except`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BroadcastOptions {
    /// The rooms whose sockets get the packet; empty for every socket of the namespace.
    pub rooms: Vec<Room>,
    /// The rooms whose sockets are left out, even when they are in `rooms`.
    pub except: Vec<Room>,
    /// How the packet is sent (volatile, local, compressed, the ack timeout).
    pub flags: BroadcastFlags,
}

/// A socket as seen by `fetch_sockets`, possibly on another node.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSocket {
    /// The socket's id.
    pub id: Sid,
    /// The handshake, in the JSON shape of the reference.
    pub handshake: Value,
    /// The rooms the socket is in, its own-id room first.
    pub rooms: Vec<Room>,
    /// The application data of the socket (`socket.data`).
    pub data: Value,
}

/// Answers collected by a broadcast with acknowledgements.
pub trait AckCollector: Send + Sync {
    /// A node reports how many clients got the packet.
    fn expect(&self, clients: usize);
    /// A client answered.
    fn answer(&self, sid: Sid, args: Vec<Value>);
    /// A client of another node answered; cluster protocols do not say which client, and
    /// Node's carries only the first argument of its answer.
    fn answer_remote(&self, args: Vec<Value>);
}

/// The operations of a namespace that involve rooms.
pub trait Adapter: Send + Sync + 'static {
    /// Called once, right after the namespace that owns the adapter is created. A cluster
    /// adapter keeps the `Weak` to deliver what other nodes send (a strong reference would keep
    /// the namespace alive forever).
    fn attach(&self, namespace: std::sync::Weak<Namespace>) {
        let _ = namespace;
    }

    /// Adds a socket to rooms. A room named like another socket's id is never joined (see
    /// [`RoomRefusal::SocketIdRoom`]).
    fn add_all(&self, sid: Sid, rooms: &[Room]);

    /// Adds a socket to rooms, in order, while it is in fewer than `max` rooms (its own
    /// included); returns the rooms refused. The default looks the socket's rooms up first,
    /// then adds the rest: an adapter that keeps a [`RoomIndex`] does both under one lock
    /// ([`RoomIndex::add_all_bounded`]).
    fn add_all_bounded(&self, sid: Sid, rooms: &[Room], max: usize) -> Vec<RefusedRoom> {
        let held: std::collections::HashSet<Room> = self.socket_rooms(sid).into_iter().collect();
        let mut count = held.len();
        let mut accepted: Vec<Room> = Vec::new();
        let mut refused = Vec::new();
        for room in rooms {
            if is_foreign_socket_room(sid, room) {
                refused.push(RefusedRoom {
                    room: Arc::clone(room),
                    reason: RoomRefusal::SocketIdRoom,
                });
            } else if held.contains(room) || accepted.contains(room) {
                continue;
            } else if count >= max {
                refused.push(RefusedRoom {
                    room: Arc::clone(room),
                    reason: RoomRefusal::RoomLimit,
                });
            } else {
                count += 1;
                accepted.push(Arc::clone(room));
            }
        }
        if !accepted.is_empty() {
            self.add_all(sid, &accepted);
        }
        refused
    }
    /// Removes a socket from a room.
    fn del(&self, sid: Sid, room: &str);
    /// Removes a socket from every room.
    fn del_all(&self, sid: Sid);
    /// The rooms of a local socket, in the order it joined them.
    fn socket_rooms(&self, sid: Sid) -> Vec<Room>;
    /// The local sockets a broadcast with these options reaches.
    fn local_sockets(&self, opts: &BroadcastOptions) -> Vec<Sid>;
    /// The local rooms.
    fn local_rooms(&self) -> Vec<Room>;

    /// Sends a packet to every matching socket (on every node unless `flags.local`).
    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError>;

    /// Sends a packet as [`Adapter::broadcast`] does, and resolves once the cluster took it:
    /// for an adapter that writes to a log (the Redis streams adapter), once the entry is
    /// in the log, so that broadcasts confirmed one after another, from any node, are
    /// delivered everywhere in that order. It fails when the cluster could not take it in
    /// the adapter's bound. The default broadcasts at once and resolves `Ok`: for adapters
    /// that do not wait for the cluster, or have none.
    fn broadcast_confirmed<'a>(
        &'a self,
        ns: &'a Namespace,
        packet: Packet,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        let sent = self.broadcast(ns, packet, opts);
        Box::pin(std::future::ready(sent))
    }

    /// Sends a packet that asks for an acknowledgement; answers go to `collector`.
    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) -> Result<(), AdapterError>;

    /// How many nodes serve this namespace.
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>>;

    /// Every matching socket of the cluster.
    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<Vec<RemoteSocket>, AdapterError>>;

    /// Makes every matching socket of the cluster join `rooms`.
    fn add_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>>;

    /// Makes every matching socket of the cluster leave `rooms`.
    fn del_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>>;

    /// Disconnects every matching socket of the cluster.
    fn disconnect_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'a, Result<(), AdapterError>>;

    /// Every room of the cluster.
    fn all_rooms<'a>(&'a self, ns: &'a Namespace)
    -> BoxFuture<'a, Result<Vec<Room>, AdapterError>>;

    /// Keeps a disconnected socket's session for connection state recovery (only called when
    /// recovery is on). The default keeps it in the namespace's in-memory store; an adapter
    /// with a shared store (Redis streams, a database) keeps it there instead.
    fn persist_session(&self, ns: &Namespace, session: SessionData) {
        if let Some(recovery) = ns.recovery() {
            recovery.persist(session);
        }
    }

    /// Takes the session of `pid` for a socket that comes back, if it can be recovered: the
    /// session is still kept, and so is everything sent after `offset`, the last packet the
    /// client saw. The default asks the namespace's in-memory store.
    ///
    /// The missed packets are asked for afterwards ([`Adapter::missed_packets`]), once the
    /// socket is back in its rooms: a broadcast made in between then reaches it live.
    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        let session = ns.recovery().and_then(|r| r.take_session(pid, offset));
        Box::pin(async move { session })
    }

    /// The packets sent after `offset` that reached a socket in `rooms`, in the order they
    /// were sent, each with its offset as its last argument; `None` when they can no longer be
    /// told (the offset is unknown, or packets after it were dropped). Called once the restored
    /// socket is in its rooms again: it must include every packet sent before the call (a
    /// packet also delivered live is skipped by its offset).
    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        let missed = ns.recovery().and_then(|r| r.missed(rooms, offset));
        Box::pin(async move { missed })
    }

    /// With recovery on, sends an event emitted to one socket with the offset this adapter
    /// gives it: calls `send` with the offset and returns true. False (the default) leaves the
    /// offset to the namespace's in-memory store, which also keeps the event for replay.
    ///
    /// An adapter whose offsets are places in a log that every node reads (a Redis stream)
    /// gives the place up to which this node has handed broadcasts out: the socket has been
    /// given every broadcast up to there, so a restore from it, on any node, misses none and
    /// repeats none. `send` runs under the lock that orders those hand-outs, so that no
    /// broadcast goes out between reading the place and sending. The event itself is not
    /// replayed (in Node it is; here a direct emit does not cost a trip through Redis).
    fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
        let _ = send;
        false
    }

    /// Emits an event to the other nodes' namespace handlers (`serverSideEmit`); with `ack`,
    /// collects one answer per other node.
    fn server_side_emit<'a>(
        &'a self,
        ns: &'a Namespace,
        args: Vec<Value>,
        ack: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>>;
}

/// Creates the adapter of each namespace.
pub trait AdapterFactory: Send + Sync + 'static {
    /// The adapter of the namespace named `namespace`, created when the namespace is.
    fn create(&self, namespace: &str) -> Arc<dyn Adapter>;
}

impl<F, A> AdapterFactory for F
where
    F: Fn(&str) -> A + Send + Sync + 'static,
    A: Adapter,
{
    fn create(&self, namespace: &str) -> Arc<dyn Adapter> {
        Arc::new(self(namespace))
    }
}

/// Why a socket was not put in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RoomRefusal {
    /// The socket is in as many rooms as it may be (`max_rooms_per_socket`).
    RoomLimit,
    /// The name has the shape of a socket id and is not the socket's own: the room of a
    /// socket's id reaches that socket alone, so nobody else may ever join it.
    SocketIdRoom,
}

impl RoomRefusal {
    /// A short code for clients (`ROOM_LIMIT`, `SOCKET_ID_ROOM`).
    pub fn code(self) -> &'static str {
        match self {
            RoomRefusal::RoomLimit => "ROOM_LIMIT",
            RoomRefusal::SocketIdRoom => "SOCKET_ID_ROOM",
        }
    }

    /// What a client is told.
    pub fn message(self) -> &'static str {
        match self {
            RoomRefusal::RoomLimit => "the socket is in as many rooms as it may be",
            RoomRefusal::SocketIdRoom => "a room named like a socket id is that socket's own",
        }
    }
}

impl std::fmt::Display for RoomRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// A room a socket was not put in, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedRoom {
    /// The room.
    pub room: Room,
    /// Why it was refused.
    pub reason: RoomRefusal,
}

/// Whether `room` may never hold `sid`: a name of a socket id's shape other than its own. Decided
/// by the shape alone, so that it holds for ids of other nodes as well.
pub fn is_foreign_socket_room(sid: Sid, room: &str) -> bool {
    room.as_bytes() != sid.as_bytes() && Sid::parse(room).is_some()
}

/// Marks, in `Joined::own`, a socket that is not in its own room.
const NOT_IN_OWN: u32 = u32::MAX;

/// One socket's rooms.
#[derive(Debug)]
struct Joined {
    /// The rooms in the order the socket joined them. `None` is the socket's own room (at
    /// position `own`) or a room it left: a hole, so that leaving costs no shift of the
    /// rooms after it; holes are squeezed out once they are as many as the rooms.
    order: Vec<Option<Room>>,
    /// The position of the socket's own room in `order`, or [`NOT_IN_OWN`].
    own: u32,
    holes: u32,
}

impl Default for Joined {
    fn default() -> Self {
        Joined {
            order: Vec::new(),
            own: NOT_IN_OWN,
            holes: 0,
        }
    }
}

impl Joined {
    fn len(&self) -> usize {
        self.order.len() - self.holes as usize
    }

    fn in_own(&self) -> bool {
        self.own != NOT_IN_OWN
    }

    /// Appends a room and returns its position.
    fn push(&mut self, room: Option<Room>) -> u32 {
        let at = self.order.len() as u32;
        self.order.push(room);
        at
    }

    fn make_hole(&mut self, at: u32) {
        if let Some(slot) = self.order.get_mut(at as usize) {
            *slot = None;
            self.holes += 1;
        }
    }
}

/// Room membership of the local sockets of one namespace.
///
/// Every socket is in the room named by its own id, so that room is not stored as a set of
/// one: a socket's list marks it, and a lookup of a room whose name is a socket id consults
/// that socket's list. No other socket can be in that room ([`RoomRefusal::SocketIdRoom`]).
/// Room names are shared: a socket that joins an existing room keeps the index's own name.
///
/// Every operation costs a constant number of hash operations per room (leaving included:
/// a room's members know where the room is in their join order), so the work of one request
/// is bounded by the rooms it names.
#[derive(Debug, Default)]
pub struct RoomIndex {
    /// Each room's members, each with the position of the room in its `Joined::order`.
    rooms: HashMap<Room, SidMap<u32>>,
    sids: SidMap<Joined>,
    /// The namespace's observers, told of every join and leave (see [`crate::observer`]).
    watch: Option<RoomWatch>,
}

impl RoomIndex {
    /// Adds a socket to rooms (no limit on how many); returns the rooms it may not join.
    pub fn add_all(&mut self, sid: Sid, rooms: &[Room]) -> Vec<RefusedRoom> {
        self.add_all_bounded(sid, rooms, usize::MAX)
    }

    /// Adds a socket to rooms, in order, as long as it is in fewer than `max` rooms (its own
    /// included); returns the rooms refused, in the order asked.
    pub fn add_all_bounded(&mut self, sid: Sid, rooms: &[Room], max: usize) -> Vec<RefusedRoom> {
        let mut refused = Vec::new();
        let joined = self.sids.entry(sid).or_default();
        for room in rooms {
            if room.as_bytes() == sid.as_bytes() {
                if !joined.in_own() {
                    if joined.len() >= max {
                        refused.push(RefusedRoom {
                            room: Arc::clone(room),
                            reason: RoomRefusal::RoomLimit,
                        });
                        continue;
                    }
                    joined.own = joined.push(None);
                    RoomWatch::joined(&self.watch, sid, room);
                }
                continue;
            }
            if Sid::parse(room).is_some() {
                refused.push(RefusedRoom {
                    room: Arc::clone(room),
                    reason: RoomRefusal::SocketIdRoom,
                });
                continue;
            }
            let full = joined.len() >= max;
            // One lookup: an existing room keeps its own name.
            let name = match self.rooms.entry(Arc::clone(room)) {
                Entry::Occupied(mut members) => {
                    if members.get().contains_key(&sid) {
                        continue;
                    }
                    if full {
                        refused.push(RefusedRoom {
                            room: Arc::clone(room),
                            reason: RoomRefusal::RoomLimit,
                        });
                        continue;
                    }
                    members.get_mut().insert(sid, joined.order.len() as u32);
                    Arc::clone(members.key())
                }
                Entry::Vacant(slot) => {
                    if full {
                        refused.push(RefusedRoom {
                            room: Arc::clone(room),
                            reason: RoomRefusal::RoomLimit,
                        });
                        continue;
                    }
                    let name = Arc::clone(slot.key());
                    let mut members = SidMap::with_capacity_and_hasher(1, SidHash::default());
                    members.insert(sid, joined.order.len() as u32);
                    slot.insert(members);
                    name
                }
            };
            RoomWatch::joined(&self.watch, sid, &name);
            joined.push(Some(name));
        }
        refused
    }

    /// How many rooms a local socket is in, its own included.
    pub fn room_count(&self, sid: Sid) -> usize {
        self.sids.get(&sid).map_or(0, Joined::len)
    }

    /// Takes a local socket out of one room.
    pub fn del(&mut self, sid: Sid, room: &str) {
        let Some(joined) = self.sids.get_mut(&sid) else {
            return;
        };
        if room.as_bytes() == sid.as_bytes() {
            if joined.in_own() {
                let at = joined.own;
                joined.own = NOT_IN_OWN;
                RoomWatch::left(&self.watch, sid, room);
                // Already `None`: only counted as a hole now.
                if (at as usize) < joined.order.len() {
                    joined.holes += 1;
                }
            }
        } else {
            let Some(members) = self.rooms.get_mut(room) else {
                return;
            };
            let Some(at) = members.remove(&sid) else {
                return;
            };
            if members.is_empty() {
                self.rooms.remove(room);
            }
            RoomWatch::left(&self.watch, sid, room);
            joined.make_hole(at);
        }
        if joined.holes as usize >= joined.len().max(8) {
            Self::squeeze(&mut self.rooms, sid, joined);
        }
    }

    /// Removes the holes of a socket's list; the rooms it is in learn their new positions.
    fn squeeze(rooms: &mut HashMap<Room, SidMap<u32>>, sid: Sid, joined: &mut Joined) {
        let own = joined.own;
        let mut order = Vec::with_capacity(joined.len());
        let mut new_own = NOT_IN_OWN;
        for (at, slot) in std::mem::take(&mut joined.order).into_iter().enumerate() {
            let to = order.len() as u32;
            match slot {
                Some(room) => {
                    if let Some(position) = rooms.get_mut(&room).and_then(|m| m.get_mut(&sid)) {
                        *position = to;
                    }
                    order.push(Some(room));
                }
                None if at as u32 == own => {
                    new_own = to;
                    order.push(None);
                }
                None => {}
            }
        }
        joined.order = order;
        joined.own = new_own;
        joined.holes = 0;
    }

    /// Takes a local socket out of every room, its own included (it left the namespace).
    pub fn del_all(&mut self, sid: Sid) {
        let Some(joined) = self.sids.remove(&sid) else {
            return;
        };
        let own = joined.own;
        for (at, slot) in joined.order.into_iter().enumerate() {
            let Some(room) = slot else {
                if at as u32 == own {
                    RoomWatch::left(&self.watch, sid, sid.as_str());
                }
                continue;
            };
            if let Some(members) = self.rooms.get_mut(&room) {
                members.remove(&sid);
                if members.is_empty() {
                    self.rooms.remove(&room);
                }
            }
            RoomWatch::left(&self.watch, sid, &room);
        }
    }

    /// Tells the observers of `watch` of every join and leave from now on.
    pub(crate) fn set_watch(&mut self, watch: RoomWatch) {
        self.watch = Some(watch);
    }

    /// The rooms a local socket is in, its own-id room first, in the order it joined them.
    pub fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        let Some(joined) = self.sids.get(&sid) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(joined.len());
        for (at, slot) in joined.order.iter().enumerate() {
            match slot {
                Some(room) => out.push(Arc::clone(room)),
                None if at as u32 == joined.own => out.push(Arc::from(sid.as_str())),
                None => {}
            }
        }
        out
    }

    /// Every room that has a local socket in it.
    pub fn rooms(&self) -> Vec<Room> {
        let mut rooms: Vec<Room> = self.rooms.keys().cloned().collect();
        for (sid, joined) in &self.sids {
            if joined.in_own() && !self.rooms.contains_key(sid.as_str()) {
                rooms.push(Arc::from(sid.as_str()));
            }
        }
        rooms
    }

    /// The socket whose own room `room` is, if that socket is in it.
    fn owner(&self, room: &str) -> Option<Sid> {
        let sid = Sid::parse(room)?;
        self.sids
            .get(&sid)
            .is_some_and(Joined::in_own)
            .then_some(sid)
    }

    /// Calls `f` once for each socket a broadcast with `opts` reaches.
    pub fn for_each(&self, opts: &BroadcastOptions, mut f: impl FnMut(Sid)) {
        let except_sets: Vec<&SidMap<u32>> = opts
            .except
            .iter()
            .filter_map(|room| self.rooms.get(room))
            .collect();
        let except_owners: Vec<Sid> = opts
            .except
            .iter()
            .filter_map(|room| self.owner(room))
            .collect();
        let excluded = |sid: &Sid| {
            except_owners.contains(sid) || except_sets.iter().any(|m| m.contains_key(sid))
        };
        if opts.rooms.is_empty() {
            for sid in self.sids.keys() {
                if !excluded(sid) {
                    f(*sid);
                }
            }
        } else if let [room] = opts.rooms.as_slice() {
            // A socket is never stored in its own room's set: no duplicate here.
            if let Some(owner) = self.owner(room)
                && !excluded(&owner)
            {
                f(owner);
            }
            if let Some(members) = self.rooms.get(room) {
                for sid in members.keys() {
                    if !excluded(sid) {
                        f(*sid);
                    }
                }
            }
        } else {
            let mut seen = SidSet::default();
            for room in &opts.rooms {
                if let Some(owner) = self.owner(room)
                    && !excluded(&owner)
                    && seen.insert(owner)
                {
                    f(owner);
                }
                if let Some(members) = self.rooms.get(room) {
                    for sid in members.keys() {
                        if !excluded(sid) && seen.insert(*sid) {
                            f(*sid);
                        }
                    }
                }
            }
        }
    }

    /// The local sockets that `opts` selects.
    pub fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let mut out = Vec::new();
        self.for_each(opts, |sid| out.push(sid));
        out
    }

    /// Whether any local socket is in `room` (a socket's own-id room included).
    pub fn has_room(&self, room: &str) -> bool {
        self.rooms.contains_key(room) || self.owner(room).is_some()
    }
}

/// The default adapter: everything happens on this node.
#[derive(Debug, Default)]
pub struct MemoryAdapter {
    index: RwLock<RoomIndex>,
}

impl MemoryAdapter {
    /// An adapter with no room yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Local delivery, shared with cluster adapters built on this one.
    pub fn broadcast_local(&self, ns: &Namespace, packet: Packet, opts: &BroadcastOptions) {
        let sids = self.index.read().sockets(opts);
        ns.deliver(packet, &sids, &opts.flags);
    }

    /// Local delivery of a broadcast with acknowledgements, shared with cluster adapters built on
    /// this one: the answers go to `collector`.
    pub fn broadcast_with_ack_local(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) {
        let sids = self.index.read().sockets(opts);
        ns.deliver_with_ack(packet, &sids, &opts.flags, collector);
    }

    /// The local rooms, for cluster adapters built on this one.
    pub fn index(&self) -> &RwLock<RoomIndex> {
        &self.index
    }

    /// Tells the observers of `namespace`'s server (see [`crate::observer`]) of the joins and
    /// leaves of this index. [`Adapter::attach`] does it; a cluster adapter that keeps its local
    /// rooms in a `MemoryAdapter` calls it from its own `attach`.
    pub fn watch(&self, namespace: &std::sync::Weak<Namespace>) {
        if let Some(ns) = namespace.upgrade() {
            self.index.write().set_watch(RoomWatch {
                nsp: Arc::from(ns.name()),
                observers: Arc::clone(ns.observers()),
            });
        }
    }
}

/// Rooms added under one hold of the index's lock: a socket joining many rooms (an
/// application's or an operator's request; a client's is bounded by `max_rooms_per_socket`)
/// lets the namespace's broadcasts through between chunks.
const ROOMS_PER_LOCK: usize = 256;

impl Adapter for MemoryAdapter {
    fn attach(&self, namespace: std::sync::Weak<Namespace>) {
        self.watch(&namespace);
    }

    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        self.add_all_bounded(sid, rooms, usize::MAX);
    }

    fn add_all_bounded(&self, sid: Sid, rooms: &[Room], max: usize) -> Vec<RefusedRoom> {
        let mut refused = Vec::new();
        for chunk in rooms.chunks(ROOMS_PER_LOCK) {
            let mut more = self.index.write().add_all_bounded(sid, chunk, max);
            refused.append(&mut more);
        }
        refused
    }

    fn del(&self, sid: Sid, room: &str) {
        self.index.write().del(sid, room);
    }

    fn del_all(&self, sid: Sid) {
        self.index.write().del_all(sid);
    }

    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.index.read().socket_rooms(sid)
    }

    fn local_sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.index.read().sockets(opts)
    }

    fn local_rooms(&self) -> Vec<Room> {
        self.index.read().rooms()
    }

    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        match ns.recovery() {
            Some(recovery) => recovery.stamp_and_deliver(packet, opts, |packet| {
                self.broadcast_local(ns, packet, opts)
            }),
            None => self.broadcast_local(ns, packet, opts),
        }
        Ok(())
    }

    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) -> Result<(), AdapterError> {
        self.broadcast_with_ack_local(ns, packet, opts, collector);
        Ok(())
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async { Ok(1) })
    }

    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<Vec<RemoteSocket>, AdapterError>> {
        let sids = self.local_sockets(opts);
        let sockets = sids
            .into_iter()
            .filter_map(|sid| ns.get_socket(sid))
            .map(|s| s.to_remote())
            .collect();
        Box::pin(async move { Ok(sockets) })
    }

    fn add_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        let max = ns.limits().config.max_rooms_per_socket;
        for sid in self.local_sockets(opts) {
            if ns.get_socket(sid).is_some() {
                let refused = self.add_all_bounded(sid, rooms, max);
                ns.count_refused_rooms(sid, &refused);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn del_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        for sid in self.local_sockets(opts) {
            if ns.get_socket(sid).is_some() {
                for room in rooms {
                    self.del(sid, room);
                }
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn disconnect_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        for sid in self.local_sockets(opts) {
            if let Some(socket) = ns.get_socket(sid) {
                socket.disconnect_with(close);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn all_rooms<'a>(
        &'a self,
        _ns: &'a Namespace,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        let rooms = self.local_rooms();
        Box::pin(async move { Ok(rooms) })
    }

    fn server_side_emit<'a>(
        &'a self,
        _ns: &'a Namespace,
        _args: Vec<Value>,
        _ack: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        // A single node has no other node to reach.
        Box::pin(async { Ok(Vec::new()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> Room {
        Arc::from(s)
    }

    #[test]
    fn rooms_keep_join_order_and_targets_dedupe() {
        let mut idx = RoomIndex::default();
        let (a, b, c) = (Sid::generate(), Sid::generate(), Sid::generate());
        idx.add_all(a, &[room("a"), room("x"), room("y")]);
        idx.add_all(b, &[room("b"), room("x")]);
        idx.add_all(c, &[room("c"), room("y")]);
        assert_eq!(idx.socket_rooms(a), vec![room("a"), room("x"), room("y")]);

        let mut to_xy = idx.sockets(&BroadcastOptions {
            rooms: vec![room("x"), room("y")],
            ..Default::default()
        });
        to_xy.sort();
        let mut expected = vec![a, b, c];
        expected.sort();
        assert_eq!(
            to_xy, expected,
            "a socket in two target rooms is reached once"
        );

        let all_but_y = idx.sockets(&BroadcastOptions {
            except: vec![room("y")],
            ..Default::default()
        });
        assert_eq!(all_but_y, vec![b]);

        idx.del(a, "x");
        assert_eq!(idx.socket_rooms(a), vec![room("a"), room("y")]);
        idx.del_all(c);
        assert!(!idx.has_room("c"));
        assert!(idx.has_room("y"));
        idx.del_all(a);
        assert!(!idx.has_room("y"));
    }

    fn sorted(mut v: Vec<Sid>) -> Vec<Sid> {
        v.sort();
        v
    }

    #[test]
    fn a_sockets_own_room_holds_that_socket_alone() {
        let mut idx = RoomIndex::default();
        let (a, b, c) = (Sid::generate(), Sid::generate(), Sid::generate());
        let own = |s: Sid| room(s.as_str());
        idx.add_all(a, &[own(a), room("lobby")]);
        idx.add_all(b, &[own(b), room("lobby")]);
        idx.add_all(c, &[own(c)]);
        assert_eq!(idx.socket_rooms(a), vec![own(a), room("lobby")]);
        assert!(idx.has_room(a.as_str()));
        fn to(idx: &RoomIndex, rooms: Vec<Room>, except: Vec<Room>) -> Vec<Sid> {
            sorted(idx.sockets(&BroadcastOptions {
                rooms,
                except,
                ..Default::default()
            }))
        }
        assert_eq!(to(&idx, vec![own(a)], vec![]), vec![a]);
        assert_eq!(to(&idx, vec![], vec![own(a)]), sorted(vec![b, c]));
        assert_eq!(to(&idx, vec![room("lobby")], vec![own(b)]), vec![a]);
        assert_eq!(to(&idx, vec![own(a), own(c)], vec![]), sorted(vec![a, c]));

        // Another socket asks for a's room: refused, whatever the path, and a's room still
        // reaches a alone.
        assert_eq!(
            idx.add_all(b, &[own(a), room("lobby"), own(b)]),
            vec![RefusedRoom {
                room: own(a),
                reason: RoomRefusal::SocketIdRoom
            }]
        );
        assert_eq!(to(&idx, vec![own(a)], vec![]), vec![a]);
        assert_eq!(
            to(&idx, vec![own(a), room("lobby")], vec![]),
            sorted(vec![a, b])
        );
        assert_eq!(to(&idx, vec![], vec![own(a)]), sorted(vec![b, c]));
        let mut rooms = idx.rooms();
        rooms.sort();
        let mut expected = vec![own(a), own(b), own(c), room("lobby")];
        expected.sort();
        assert_eq!(rooms, expected, "each room once");
        // A name of a socket id's shape that is nobody's (or another node's) is refused too.
        let elsewhere = Sid::generate();
        assert_eq!(idx.add_all(b, &[own(elsewhere)]).len(), 1);
        assert!(!idx.has_room(elsewhere.as_str()));

        // a leaves its own room: nobody is in it any more.
        idx.del(a, a.as_str());
        assert_eq!(idx.socket_rooms(a), vec![room("lobby")]);
        assert!(!idx.has_room(a.as_str()));
        assert!(to(&idx, vec![own(a)], vec![]).is_empty());
        // Still a socket of the namespace: broadcasts to everyone reach it.
        assert_eq!(to(&idx, vec![], vec![]), sorted(vec![a, b, c]));
        idx.add_all(a, &[own(a)]);
        assert_eq!(idx.socket_rooms(a), vec![room("lobby"), own(a)]);

        idx.del_all(c);
        assert!(!idx.has_room(c.as_str()));
        assert!(to(&idx, vec![own(c)], vec![]).is_empty());
    }

    /// Joins and leaves cost a few hash operations per room, however many rooms the socket
    /// holds, and the list stays in join order through the holes left by leaves.
    #[test]
    fn many_rooms_keep_their_order_through_leaves() {
        let mut idx = RoomIndex::default();
        let (a, b) = (Sid::generate(), Sid::generate());
        let names: Vec<Room> = (0..5_000).map(|i| room(&format!("r{i}"))).collect();
        assert!(idx.add_all(a, &[room(a.as_str())]).is_empty());
        assert!(idx.add_all(a, &names).is_empty());
        assert!(idx.add_all(b, &names[..10]).is_empty());
        // Joining again changes nothing.
        assert!(idx.add_all(a, &names).is_empty());
        assert_eq!(idx.room_count(a), 5_001);
        // Leave every room but those whose number is a multiple of 7, in an unrelated order
        // (holes are squeezed out several times on the way).
        for i in (0..5_000).rev().filter(|i| i % 7 != 0) {
            idx.del(a, &format!("r{i}"));
        }
        let mut expected = vec![room(a.as_str())];
        expected.extend(
            (0..5_000)
                .filter(|i| i % 7 == 0)
                .map(|i| room(&format!("r{i}"))),
        );
        assert_eq!(idx.socket_rooms(a), expected);
        assert_eq!(idx.room_count(a), expected.len());
        // Positions are right after the squeezes: leaving and joining still work.
        idx.del(a, "r7");
        idx.del(a, a.as_str());
        assert!(idx.add_all(a, &[room("r1"), room(a.as_str())]).is_empty());
        let mut expected: Vec<Room> = (0..5_000)
            .filter(|i| i % 7 == 0 && *i != 7)
            .map(|i| room(&format!("r{i}")))
            .collect();
        expected.push(room("r1"));
        expected.push(room(a.as_str()));
        assert_eq!(idx.socket_rooms(a), expected);
        // b's rooms were not touched, and the rooms a left hold b alone.
        assert_eq!(idx.socket_rooms(b), names[..10].to_vec());
        let in_r3 = idx.sockets(&BroadcastOptions {
            rooms: vec![room("r3")],
            ..Default::default()
        });
        assert_eq!(in_r3, vec![b]);
        idx.del_all(a);
        idx.del_all(b);
        assert!(idx.rooms().is_empty());
    }

    #[test]
    fn a_bounded_join_stops_at_the_limit_and_names_the_rest() {
        let mut idx = RoomIndex::default();
        let a = Sid::generate();
        let own = room(a.as_str());
        let asked = [
            own.clone(),
            room("x"),
            room("y"),
            room("x"),
            room("z"),
            room("w"),
        ];
        let refused = idx.add_all_bounded(a, &asked, 3);
        assert_eq!(idx.socket_rooms(a), vec![own.clone(), room("x"), room("y")]);
        let refused: Vec<(Room, RoomRefusal)> =
            refused.into_iter().map(|r| (r.room, r.reason)).collect();
        assert_eq!(
            refused,
            vec![
                (room("z"), RoomRefusal::RoomLimit),
                (room("w"), RoomRefusal::RoomLimit)
            ]
        );
        assert!(!idx.has_room("z"), "a refused room is not created");
        // At the limit, a room already held is no refusal; after a leave there is room again.
        assert!(idx.add_all_bounded(a, &[room("x")], 3).is_empty());
        idx.del(a, "x");
        assert!(idx.add_all_bounded(a, &[room("z")], 3).is_empty());
        assert_eq!(idx.socket_rooms(a), vec![own, room("y"), room("z")]);
    }

    /// The memory adapter takes its lock per chunk of rooms; the limit holds across chunks.
    #[test]
    fn a_large_join_through_the_memory_adapter_stops_at_the_limit() {
        let adapter = MemoryAdapter::new();
        let a = Sid::generate();
        let names: Vec<Room> = (0..1_000).map(|i| room(&format!("r{i}"))).collect();
        let refused = adapter.add_all_bounded(a, &names, 600);
        assert_eq!(adapter.socket_rooms(a), names[..600].to_vec());
        let refused: Vec<Room> = refused.into_iter().map(|r| r.room).collect();
        assert_eq!(refused, names[600..].to_vec());
        adapter.del_all(a);
        assert!(adapter.local_rooms().is_empty());
    }

    #[test]
    fn room_names_are_shared() {
        let mut idx = RoomIndex::default();
        let (a, b) = (Sid::generate(), Sid::generate());
        idx.add_all(a, &[room("lobby")]);
        idx.add_all(b, &[room("lobby")]);
        let ra = idx.socket_rooms(a).remove(0);
        let rb = idx.socket_rooms(b).remove(0);
        assert!(Arc::ptr_eq(&ra, &rb));
    }
}
