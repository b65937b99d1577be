//! What one packet from the client does to its session, whatever transport carried it.

use std::sync::Arc;

use ignis_proto::engineio::Packet;

use crate::engine::{Handler, Inner};
use crate::session::{CloseReason, Socket};

/// Applies one packet from the client; false once the session is closed.
pub(crate) fn handle_packet<H: Handler>(
    inner: &Inner<H>,
    socket: &Arc<Socket<H::Data>>,
    packet: Packet,
) -> bool {
    if socket.is_closed() {
        return false;
    }
    match packet {
        Packet::Message(data) => {
            inner.stats.messages_in.add(1);
            inner.stats.bytes_in.add(data.len() as u64);
            inner.handler.on_message(socket, data)
        }
        Packet::Pong(_) => socket.record_pong(),
        Packet::Close => {
            inner.finalize(socket, CloseReason::TransportClose);
            return false;
        }
        Packet::Ping(_) => {
            // In v4 only the server pings.
            inner.finalize(socket, CloseReason::TransportError);
            return false;
        }
        Packet::Open(_) | Packet::Upgrade | Packet::Noop => {}
    }
    true
}
