//! What the admin UI hears of the server's sockets, handed to a task that emits it to the admin
//! namespace: the observer's calls come from the tasks of the sockets (some with a room index
//! locked), which must not wait for, or call back into, a broadcast.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ignis_socketio::proto::value::Map;
use ignis_socketio::{
    DisconnectReason, Namespace, Sid, Socket, SocketObserver, SocketRef, Value, iso_timestamp,
};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::serialize;

/// Events waiting for the forwarding task at most; past it they are dropped (and counted): the
/// UI then misses them until it reconnects and gets `all_sockets` again.
const QUEUE: usize = 8192;

/// An event for the admin namespace: its name and arguments.
pub(crate) type Outgoing = (&'static str, Vec<Value>);

pub(crate) struct Watcher {
    /// The admin namespace, whose own sockets are not counted in the aggregated events.
    admin: Arc<str>,
    tx: mpsc::Sender<Outgoing>,
    dropped: AtomicU64,
    /// `(second, type, subtype) -> count`, for the dashboard's charts (`aggregatedEvents`).
    aggregated: Mutex<HashMap<(u64, &'static str, &'static str), u64>>,
}

impl Watcher {
    pub(crate) fn new(admin: Arc<str>) -> (Arc<Watcher>, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let watcher = Arc::new(Watcher {
            admin,
            tx,
            dropped: AtomicU64::new(0),
            aggregated: Mutex::new(HashMap::new()),
        });
        (watcher, rx)
    }

    fn send(&self, event: &'static str, args: Vec<Value>) {
        // Closed: the UI was stopped (`AdminUi::stop`), and nothing is waited for.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send((event, args)) {
            let before = self.dropped.fetch_add(1, Ordering::Relaxed);
            if before.is_power_of_two() {
                tracing::warn!(
                    dropped = before + 1,
                    "admin UI: events dropped, the admin namespace does not keep up"
                );
            }
        }
    }

    fn count(&self, kind: &'static str, subtype: &'static str) {
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut aggregated = self.aggregated.lock();
        // Taken every stats interval; the bound only matters if stats stop going out.
        if aggregated.len() < 4096 {
            *aggregated.entry((second, kind, subtype)).or_insert(0) += 1;
        }
    }

    /// The aggregated events since the last call, in the reference's shape.
    pub(crate) fn take_aggregated(&self) -> Vec<Value> {
        let taken = std::mem::take(&mut *self.aggregated.lock());
        taken
            .into_iter()
            .map(|((second, kind, subtype), count)| {
                let mut m = Map::with_capacity(4);
                m.insert("timestamp", Value::from_u64(second * 1000));
                m.insert("type", kind);
                if !subtype.is_empty() {
                    m.insert("subType", subtype);
                }
                m.insert("count", Value::from_u64(count));
                Value::Map(m)
            })
            .collect()
    }
}

fn now() -> Value {
    Value::from(iso_timestamp(SystemTime::now()))
}

impl SocketObserver for Watcher {
    fn connected(&self, socket: &SocketRef) {
        if socket.namespace().name() != &*self.admin {
            self.count("rawConnection", "");
        }
        self.send("socket_connected", vec![serialize::socket(socket), now()]);
    }

    fn disconnected(&self, socket: &Socket, reason: DisconnectReason) {
        if socket.namespace().name() != &*self.admin {
            self.count("rawDisconnection", reason.as_str());
        }
        self.send(
            "socket_disconnected",
            vec![
                Value::from(socket.namespace().name()),
                Value::from(socket.id().as_str()),
                Value::from(reason.as_str()),
                now(),
            ],
        );
    }

    fn joined(&self, nsp: &str, sid: Sid, room: &str) {
        self.send(
            "room_joined",
            vec![
                Value::from(nsp),
                Value::from(room),
                Value::from(sid.as_str()),
                now(),
            ],
        );
    }

    fn left(&self, nsp: &str, sid: Sid, room: &str) {
        self.send(
            "room_left",
            vec![
                Value::from(nsp),
                Value::from(room),
                Value::from(sid.as_str()),
                now(),
            ],
        );
    }

    fn upgraded(&self, socket: &SocketRef) {
        let mut m = Map::with_capacity(3);
        m.insert("id", socket.id().as_str());
        m.insert("nsp", socket.namespace().name());
        m.insert("transport", serialize::transport_name(socket.transport()));
        self.send("socket_updated", vec![Value::Map(m)]);
    }
}

/// Emits what the watcher heard to the admin namespace (every node's, with a cluster adapter).
pub(crate) async fn forward(admin: Arc<Namespace>, mut events: mpsc::Receiver<Outgoing>) {
    while let Some((event, args)) = events.recv().await {
        if let Err(e) = admin.operators().emit(event, args) {
            tracing::debug!(event, error = %e, "admin UI: event not sent");
        }
    }
}
