//! Observers: what a tool that watches a server (the Socket.IO Admin UI, say) hears of its
//! sockets, in every namespace: connects, disconnects, room joins and leaves, transport upgrades.
//!
//! Nothing on the paths of a message (a broadcast to each recipient, an event, an
//! acknowledgement) looks at observers. The places that call them (a socket's connect and
//! disconnect, a room join or leave, an upgrade) read one atomic flag when no observer is set,
//! which is the default.
//!
//! Room joins and leaves are told by [`RoomIndex`](crate::adapter::RoomIndex), where every
//! adapter of this workspace keeps its local rooms, whoever asked for the change (the socket, the
//! server, another node): an adapter that keeps rooms elsewhere does not tell them. They are told
//! while the index is locked, so an observer must not call back into the namespace's adapter from
//! there (emit, join, look rooms up): it should hand what it heard to a task of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ignis_engine::Sid;
use parking_lot::RwLock;

use crate::socket::{DisconnectReason, Socket, SocketRef};

/// Hears about the sockets of a server (see [`SocketIo::observe`](crate::SocketIo::observe)).
/// Every method does nothing by default. Calls come from the tasks that make the changes and
/// must return quickly.
pub trait SocketObserver: Send + Sync + 'static {
    /// A socket joined a namespace (connected, or restored by connection state recovery); it is
    /// in its rooms already.
    fn connected(&self, socket: &SocketRef) {
        let _ = socket;
    }

    /// A socket left its namespace, after it left its rooms.
    fn disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        let _ = (socket, reason);
    }

    /// A local socket of namespace `nsp` joined `room` (it was not in it). Called with the
    /// namespace's room index locked: see the module documentation.
    fn joined(&self, nsp: &str, sid: Sid, room: &str) {
        let _ = (nsp, sid, room);
    }

    /// A local socket of namespace `nsp` left `room`, by itself or because it disconnected.
    /// Called with the namespace's room index locked: see the module documentation.
    fn left(&self, nsp: &str, sid: Sid, room: &str) {
        let _ = (nsp, sid, room);
    }

    /// The connection of `socket` moved from HTTP long-polling to WebSocket. Called once for each
    /// namespace the client is connected to.
    fn upgraded(&self, socket: &SocketRef) {
        let _ = socket;
    }
}

/// The observers of one server, shared by its namespaces and their room indexes.
#[derive(Default)]
pub(crate) struct Observers {
    /// Whether `list` holds any: the one read on the paths that call observers.
    any: AtomicBool,
    list: RwLock<Vec<Arc<dyn SocketObserver>>>,
}

impl Observers {
    pub(crate) fn add(&self, observer: Arc<dyn SocketObserver>) {
        let mut list = self.list.write();
        list.push(observer);
        self.any.store(true, Ordering::Release);
    }

    /// Whether any observer is set.
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// Calls `f` on every observer; one atomic load when there is none.
    #[inline]
    pub(crate) fn each(&self, f: impl FnMut(&dyn SocketObserver)) {
        if self.any.load(Ordering::Acquire) {
            self.each_slow(f);
        }
    }

    #[cold]
    fn each_slow(&self, mut f: impl FnMut(&dyn SocketObserver)) {
        for observer in self.list.read().iter() {
            f(observer.as_ref());
        }
    }
}

/// What a room index needs to tell its namespace's observers of joins and leaves.
#[derive(Clone)]
pub(crate) struct RoomWatch {
    pub(crate) nsp: Arc<str>,
    pub(crate) observers: Arc<Observers>,
}

impl RoomWatch {
    #[inline]
    pub(crate) fn joined(watch: &Option<RoomWatch>, sid: Sid, room: &str) {
        if let Some(w) = watch {
            w.observers.each(|o| o.joined(&w.nsp, sid, room));
        }
    }

    #[inline]
    pub(crate) fn left(watch: &Option<RoomWatch>, sid: Sid, room: &str) {
        if let Some(w) = watch {
            w.observers.each(|o| o.left(&w.nsp, sid, room));
        }
    }
}

impl std::fmt::Debug for RoomWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomWatch").field("nsp", &self.nsp).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ignis_engine::Sid;
    use parking_lot::Mutex;

    use super::SocketObserver;
    use crate::SocketIo;
    use crate::adapter::Room;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl SocketObserver for Record {
        fn joined(&self, nsp: &str, sid: Sid, room: &str) {
            let who = if room == sid.as_str() { "own" } else { room };
            self.0.lock().push(format!("join {nsp} {who}"));
        }
        fn left(&self, nsp: &str, sid: Sid, room: &str) {
            let who = if room == sid.as_str() { "own" } else { room };
            self.0.lock().push(format!("leave {nsp} {who}"));
        }
    }

    fn rooms(names: &[&str]) -> Vec<Room> {
        names.iter().map(|n| Arc::from(*n)).collect()
    }

    #[tokio::test]
    async fn joins_and_leaves_are_told_whoever_makes_them() {
        let io = SocketIo::builder().build();
        let before = io.ns("/before", |_| async {});
        let record = Arc::new(Record::default());
        io.observe(record.clone());
        // A namespace made after the observer is told too.
        let after = io.ns("/after", |_| async {});
        let sid = Sid::generate();

        let adapter = before.adapter();
        adapter.add_all(sid, &rooms(&[sid.as_str(), "a", "b", "a"]));
        // Refused (another socket's id) or already held: nothing to tell.
        adapter.add_all(sid, &rooms(&[Sid::generate().as_str(), "b"]));
        adapter.del(sid, "a");
        adapter.del(sid, "never");
        after.adapter().add_all(sid, &rooms(&["x"]));
        adapter.del_all(sid);
        assert_eq!(
            *record.0.lock(),
            [
                "join /before own",
                "join /before a",
                "join /before b",
                "leave /before a",
                "join /after x",
                "leave /before own",
                "leave /before b",
            ]
        );
    }
}
