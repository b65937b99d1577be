//! What a node does on its own sockets when another node asks, whichever protocol brought
//! the request: the protocol passes in how the answers go back.

use std::sync::Arc;
use std::time::Duration;

use ignis_socketio::adapter::AckCollector;
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::{
    Adapter, BroadcastOptions, DEFAULT_ACK_TIMEOUT, MemoryAdapter, Namespace, RemoteSocket, Room,
    Sid, SocketRef, Value,
};
use tokio::sync::Semaphore;

/// Room membership of local sockets, which an adapter may watch (the sharded one subscribes
/// to the channels of the rooms it has).
pub(crate) trait Membership {
    /// A socket joins rooms.
    fn join(&self, sid: Sid, rooms: &[Room]);
    /// A socket leaves a room.
    fn leave(&self, sid: Sid, room: &str);

    fn join_or_leave(&self, sid: Sid, rooms: &[Room], join: bool) {
        if join {
            self.join(sid, rooms);
        } else {
            for room in rooms {
                self.leave(sid, room);
            }
        }
    }
}

/// Calls `f` for each connected local socket that `opts` selects.
fn for_each_selected(
    local: &MemoryAdapter,
    ns: &Namespace,
    opts: &BroadcastOptions,
    mut f: impl FnMut(Sid, SocketRef),
) {
    for sid in local.local_sockets(opts) {
        if let Some(socket) = ns.get_socket(sid) {
            f(sid, socket);
        }
    }
}

/// `sockets_join` (`join`) or `sockets_leave` of another node.
pub(crate) fn join_or_leave_selected(
    membership: &impl Membership,
    local: &MemoryAdapter,
    ns: &Namespace,
    opts: &BroadcastOptions,
    rooms: &[Room],
    join: bool,
) {
    for_each_selected(local, ns, opts, |sid, _| {
        membership.join_or_leave(sid, rooms, join);
    });
}

/// `disconnect_sockets` of another node.
pub(crate) fn disconnect_selected(
    local: &MemoryAdapter,
    ns: &Namespace,
    opts: &BroadcastOptions,
    close: bool,
) {
    for_each_selected(local, ns, opts, |_, socket| socket.disconnect_with(close));
}

/// The answer of this node to `fetch_sockets` of another node.
pub(crate) fn fetch_selected(
    local: &MemoryAdapter,
    ns: &Namespace,
    opts: &BroadcastOptions,
) -> Vec<RemoteSocket> {
    let mut sockets = Vec::new();
    for_each_selected(local, ns, opts, |_, socket| {
        sockets.push(socket.to_remote())
    });
    sockets
}

/// How a node hands the answers of its clients to a broadcast with acknowledgements back to
/// the node that sent it.
pub(crate) trait AckReply: Send + Sync + 'static {
    /// How many local clients got the packet.
    fn client_count(&self, clients: usize);
    /// A client answered.
    fn ack(&self, args: Vec<Value>);
}

struct AckForwarder<R>(R);

impl<R: AckReply> AckCollector for AckForwarder<R> {
    fn expect(&self, clients: usize) {
        self.0.client_count(clients);
    }

    fn answer(&self, _sid: Sid, args: Vec<Value>) {
        self.0.ack(args);
    }

    fn answer_remote(&self, args: Vec<Value>) {
        self.0.ack(args);
    }
}

/// The work other nodes start on this one that outlives their message: server-event handlers
/// and the forwarding of acknowledgements, bounded in number.
pub(crate) struct RemoteTasks {
    /// The namespace, for the warnings.
    nsp: String,
    permits: Arc<Semaphore>,
}

impl RemoteTasks {
    /// At most `max` at once (one at least); more are dropped with a warning.
    pub(crate) fn new(nsp: &str, max: usize) -> Self {
        RemoteTasks {
            nsp: nsp.to_string(),
            permits: Arc::new(Semaphore::new(max.max(1))),
        }
    }

    /// Runs the handler of a server event of another node, and gives its answer, if it has
    /// one, to `reply` (`None` when the sender waits for no answer).
    pub(crate) fn server_side_emit(
        &self,
        ns: &Namespace,
        data: Vec<Value>,
        reply: Option<impl FnOnce(Value) + Send + 'static>,
    ) {
        let Some(handler) = ns.dispatch_server_event(data) else {
            return;
        };
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(nsp = %self.nsp, "too many server-side events running; one from another node dropped");
            return;
        };
        tokio::spawn(async move {
            let answer = handler.await;
            drop(permit);
            if let (Some(reply), Some(answer)) = (reply, answer) {
                reply(answer);
            }
        });
    }

    /// Delivers a broadcast with acknowledgements of another node to the local sockets of
    /// `selection`, and forwards the answers through `reply` for as long as the requester
    /// listens (`timeout`).
    pub(crate) fn broadcast_with_ack(
        &self,
        local: &MemoryAdapter,
        ns: &Namespace,
        mut packet: Packet,
        selection: &BroadcastOptions,
        timeout: Option<Duration>,
        reply: impl AckReply,
    ) {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(nsp = %self.nsp, "too many broadcasts with acknowledgements running; one from another node dropped");
            return;
        };
        if let PacketKind::Event { id, .. } = &mut packet.kind {
            *id = Some(ns.next_ack_id());
        }
        let forwarder = Arc::new(AckForwarder(reply));
        // Sockets hold the forwarder weakly, so keep it alive that long (bounded, whatever the
        // peer asked).
        let keep = timeout
            .unwrap_or(DEFAULT_ACK_TIMEOUT)
            .min(Duration::from_secs(600));
        let as_dyn: Arc<dyn AckCollector> = forwarder.clone();
        local.broadcast_with_ack_local(ns, packet, selection, as_dyn);
        tokio::spawn(async move {
            tokio::time::sleep(keep).await;
            drop(forwarder);
            drop(permit);
        });
    }
}
