//! The broadcasts of a cluster adapter, which take the same steps in both protocols; the
//! protocol passes in how it encodes and publishes.

use std::sync::Arc;

use ignis_socketio::adapter::AckCollector;
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{
    Adapter, AdapterError, BroadcastOptions, DEFAULT_ACK_TIMEOUT, MemoryAdapter, Namespace, Sid,
};

use crate::connection::RedisError;
use crate::requests::AckRequests;

pub(crate) fn unavailable(e: RedisError) -> AdapterError {
    AdapterError::Unavailable(e.to_string())
}

/// Whether every target room is the own room of a socket of this node, in which case no other
/// node can have a recipient.
fn only_local_sockets(ns: &Namespace, opts: &BroadcastOptions) -> bool {
    !opts.rooms.is_empty()
        && opts
            .rooms
            .iter()
            .all(|r| Sid::parse(r).is_some_and(|sid| ns.get_socket(sid).is_some()))
}

/// Delivers to the local sockets and, unless no other node can have a recipient, publishes
/// what `encode` made of the packet. The packet is encoded first, so that a packet that cannot
/// go out reaches nobody.
pub(crate) fn broadcast<M>(
    local: &MemoryAdapter,
    ns: &Namespace,
    packet: Packet,
    opts: &BroadcastOptions,
    encode: impl FnOnce(&Packet) -> Result<M, AdapterError>,
    publish: impl FnOnce(M) -> Result<(), AdapterError>,
) -> Result<(), AdapterError> {
    let remote = if opts.flags.local || only_local_sockets(ns, opts) {
        None
    } else {
        Some(encode(&packet)?)
    };
    local.broadcast(ns, packet, opts)?;
    match remote {
        Some(msg) => publish(msg),
        None => Ok(()),
    }
}

/// Delivers to the local sockets and, unless the broadcast is local, registers it in `acks`
/// and publishes the request `encode` made of the request id, the packet and the options
/// (which carry the timeout, for the other nodes to know how long to forward answers). A
/// failed publishing is reported after the local delivery, which happens anyway.
#[allow(clippy::too_many_arguments)]
pub(crate) fn broadcast_with_ack<M>(
    local: &MemoryAdapter,
    acks: &AckRequests,
    ns: &Namespace,
    packet: Packet,
    opts: &BroadcastOptions,
    collector: Arc<dyn AckCollector>,
    new_id: fn() -> String,
    encode: impl FnOnce(&str, &Packet, BroadcastOptions) -> Result<M, AdapterError>,
    publish: impl FnOnce(M) -> Result<(), AdapterError>,
) -> Result<(), AdapterError> {
    let mut published = Ok(());
    if !opts.flags.local {
        let request_id = new_id();
        let timeout = opts.flags.timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
        let mut wire_opts = opts.clone();
        wire_opts.flags.timeout = Some(timeout);
        let msg = encode(&request_id, &packet, wire_opts)?;
        acks.register(request_id, &collector, timeout)?;
        published = publish(msg);
    }
    local.broadcast_with_ack_local(ns, packet, opts, collector);
    published
}
