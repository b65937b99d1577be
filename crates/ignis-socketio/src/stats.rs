//! What a Socket.IO server counts as it runs, for monitoring: events in, packets out, broadcasts
//! and their recipients, volatile drops and failed sends. [`SocketIo::stats`](crate::SocketIo::stats)
//! reads them into an [`IoStats`].
//!
//! The counters are the server's (its [`Fanout`](crate::fanout) owns them, as every send to a
//! client goes through it), not the process's. Those on a per-message path are
//! [`ShardedCounter`]s: a relaxed add to a slot of the calling thread.

use std::sync::atomic::{AtomicU64, Ordering};

use ignis_engine::ShardedCounter;

/// The counters of one server.
#[derive(Default)]
pub(crate) struct IoCounters {
    pub(crate) events_received: ShardedCounter,
    pub(crate) packets_sent: ShardedCounter,
    pub(crate) bytes_sent: ShardedCounter,
    pub(crate) send_failures: AtomicU64,
    pub(crate) broadcasts: ShardedCounter,
    pub(crate) broadcast_recipients: ShardedCounter,
    pub(crate) broadcast_bytes: ShardedCounter,
    pub(crate) volatile_drops: ShardedCounter,
}

impl IoCounters {
    pub(crate) fn send_failed(&self) {
        self.send_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a broadcast of `bytes` (its messages' payload) to `recipients` sockets.
    #[inline]
    pub(crate) fn broadcast(&self, recipients: usize, bytes: usize) {
        self.broadcasts.add(1);
        self.broadcast_recipients.add(recipients as u64);
        self.broadcast_bytes
            .add((bytes as u64).saturating_mul(recipients as u64));
    }

    pub(crate) fn snapshot(&self) -> IoStats {
        IoStats {
            events_received: self.events_received.get(),
            packets_sent: self.packets_sent.get(),
            bytes_sent: self.bytes_sent.get(),
            send_failures: self.send_failures.load(Ordering::Relaxed),
            broadcasts: self.broadcasts.get(),
            broadcast_recipients: self.broadcast_recipients.get(),
            broadcast_bytes: self.broadcast_bytes.get(),
            volatile_drops: self.volatile_drops.get(),
        }
    }
}

/// A snapshot of a server's counters, since it was built (see
/// [`SocketIo::stats`](crate::SocketIo::stats)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoStats {
    /// EVENT packets received from clients and admitted (not refused by a limit).
    pub events_received: u64,
    /// Packets sent to one client (events, acknowledgements, CONNECT answers and errors,
    /// DISCONNECTs), not counting broadcasts.
    pub packets_sent: u64,
    /// Bytes of those packets' Engine.IO messages (payload, without transport framing).
    pub bytes_sent: u64,
    /// Sends to one client that failed: its session was closed, or its queue full.
    pub send_failures: u64,
    /// Broadcasts made (to rooms, to everyone, with or without acknowledgements).
    pub broadcasts: u64,
    /// Recipients of those broadcasts, all told: one per broadcast and socket it was meant for.
    pub broadcast_recipients: u64,
    /// Bytes of the broadcasts' messages times their recipients.
    pub broadcast_bytes: u64,
    /// Rounds of volatile broadcasts not sent to a socket because it had not taken what came
    /// before (one per socket and round, a round carrying one broadcast or several).
    pub volatile_drops: u64,
}
