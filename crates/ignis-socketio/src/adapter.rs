//! Adapters: who is in which room, and how a broadcast reaches its recipients.
//!
//! Every namespace has one adapter. [`MemoryAdapter`], the default, serves a single node. A
//! cluster adapter (Redis) implements the same trait: it keeps the local rooms the same way and
//! also forwards broadcasts and requests to the other nodes, which is why the operations that may
//! wait for other nodes return futures.

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

use crate::namespace::Namespace;
use crate::recovery::{RestoredSession, SessionData};

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
    pub rooms: Vec<Room>,
    pub except: Vec<Room>,
    pub flags: BroadcastFlags,
}

/// Why an adapter operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("timed out waiting for the other nodes")]
    Timeout,
    #[error("the cluster is unreachable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

/// A socket as seen by `fetch_sockets`, possibly on another node.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSocket {
    pub id: Sid,
    /// The handshake, in the JSON shape of the reference.
    pub handshake: Value,
    pub rooms: Vec<Room>,
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

    /// Adds a socket to rooms.
    fn add_all(&self, sid: Sid, rooms: &[Room]);
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

    /// The session of `pid` and the packets it missed after `offset`, if it can be recovered.
    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<RestoredSession>> {
        let restored = ns.recovery().and_then(|r| r.restore(pid, offset));
        Box::pin(async move { restored })
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

/// Room membership of the local sockets of one namespace.
///
/// Every socket is in the room named by its own id, so that room is not stored as a set of
/// one: a socket's list marks it, and a lookup of a room whose name is a socket id consults
/// that socket's list (other sockets that join that room are stored as in any other room).
/// Room names are shared: a socket that joins an existing room keeps the index's own name.
#[derive(Debug, Default)]
pub struct RoomIndex {
    rooms: HashMap<Room, SidSet>,
    /// Each socket's rooms in the order it joined them; `None` is its own room (sockets join
    /// few rooms, so a vector beats a set here).
    sids: SidMap<Vec<Option<Room>>>,
}

impl RoomIndex {
    pub fn add_all(&mut self, sid: Sid, rooms: &[Room]) {
        let joined = self.sids.entry(sid).or_default();
        for room in rooms {
            if room.as_bytes() == sid.as_bytes() {
                if !joined.contains(&None) {
                    joined.push(None);
                }
                continue;
            }
            if joined.iter().any(|r| r.as_deref() == Some(&**room)) {
                continue;
            }
            // One lookup: an existing room keeps its own name.
            let name = match self.rooms.entry(Arc::clone(room)) {
                Entry::Occupied(mut members) => {
                    members.get_mut().insert(sid);
                    Arc::clone(members.key())
                }
                Entry::Vacant(slot) => {
                    let name = Arc::clone(slot.key());
                    let mut members = SidSet::with_capacity_and_hasher(1, SidHash::default());
                    members.insert(sid);
                    slot.insert(members);
                    name
                }
            };
            joined.push(Some(name));
        }
    }

    pub fn del(&mut self, sid: Sid, room: &str) {
        let own = room.as_bytes() == sid.as_bytes();
        if let Some(joined) = self.sids.get_mut(&sid) {
            joined.retain(|r| match r {
                None => !own,
                Some(r) => &**r != room,
            });
        }
        if own {
            return;
        }
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(&sid);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    pub fn del_all(&mut self, sid: Sid) {
        let Some(joined) = self.sids.remove(&sid) else {
            return;
        };
        for room in joined.into_iter().flatten() {
            if let Some(members) = self.rooms.get_mut(&room) {
                members.remove(&sid);
                if members.is_empty() {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    pub fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.sids
            .get(&sid)
            .map(|joined| {
                joined
                    .iter()
                    .map(|r| match r {
                        Some(r) => Arc::clone(r),
                        None => Arc::from(sid.as_str()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn rooms(&self) -> Vec<Room> {
        let mut rooms: Vec<Room> = self.rooms.keys().cloned().collect();
        for (sid, joined) in &self.sids {
            if joined.contains(&None) && !self.rooms.contains_key(sid.as_str()) {
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
            .is_some_and(|joined| joined.contains(&None))
            .then_some(sid)
    }

    /// Calls `f` once for each socket a broadcast with `opts` reaches.
    pub fn for_each(&self, opts: &BroadcastOptions, mut f: impl FnMut(Sid)) {
        let except_sets: Vec<&SidSet> = opts
            .except
            .iter()
            .filter_map(|room| self.rooms.get(room))
            .collect();
        let except_owners: Vec<Sid> = opts
            .except
            .iter()
            .filter_map(|room| self.owner(room))
            .collect();
        let excluded =
            |sid: &Sid| except_owners.contains(sid) || except_sets.iter().any(|m| m.contains(sid));
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
                for sid in members {
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
                    for sid in members {
                        if !excluded(sid) && seen.insert(*sid) {
                            f(*sid);
                        }
                    }
                }
            }
        }
    }

    pub fn sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        let mut out = Vec::new();
        self.for_each(opts, |sid| out.push(sid));
        out
    }

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
    pub fn new() -> Self {
        Self::default()
    }

    /// Local delivery, shared with cluster adapters built on this one.
    pub fn broadcast_local(&self, ns: &Namespace, packet: Packet, opts: &BroadcastOptions) {
        let sids = self.index.read().sockets(opts);
        ns.deliver(packet, &sids, &opts.flags);
    }

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

    pub fn index(&self) -> &RwLock<RoomIndex> {
        &self.index
    }
}

impl Adapter for MemoryAdapter {
    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        self.index.write().add_all(sid, rooms);
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
        mut packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        if let Some(recovery) = ns.recovery() {
            recovery.stamp(&mut packet, opts);
        }
        self.broadcast_local(ns, packet, opts);
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
        for sid in self.local_sockets(opts) {
            if ns.get_socket(sid).is_some() {
                self.add_all(sid, rooms);
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
    fn a_sockets_own_room_behaves_like_any_room() {
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

        // Another socket joins a's room: both are reached, once each.
        idx.add_all(b, &[own(a)]);
        assert_eq!(to(&idx, vec![own(a)], vec![]), sorted(vec![a, b]));
        assert_eq!(
            to(&idx, vec![own(a), room("lobby")], vec![]),
            sorted(vec![a, b])
        );
        assert_eq!(to(&idx, vec![], vec![own(a)]), vec![c]);
        let mut rooms = idx.rooms();
        rooms.sort();
        let mut expected = vec![own(a), own(b), own(c), room("lobby")];
        expected.sort();
        assert_eq!(rooms, expected, "each room once");

        // a leaves its own room: only b is left in it.
        idx.del(a, a.as_str());
        assert_eq!(idx.socket_rooms(a), vec![room("lobby")]);
        assert_eq!(to(&idx, vec![own(a)], vec![]), vec![b]);
        idx.del(b, a.as_str());
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
