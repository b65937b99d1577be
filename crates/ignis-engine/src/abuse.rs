//! What the engine refuses or cuts to protect itself from a client, counted: the counters are
//! atomics bumped only when a limit is hit, so a server that is not attacked pays nothing.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of [`crate::Engine::abuse_counters`]: how many times each limit of the engine was
/// hit since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AbuseCounters {
    /// Times a WebSocket connection stopped being read because it owed a pong it did not read
    /// (a ping flood from a client that never reads). Reading resumes once its output drains.
    pub ping_flood_pauses: u64,
    /// Sessions closed ("outbound queue full") for passing `max_queued_messages`.
    pub queue_full_messages: u64,
    /// Sessions closed ("outbound queue full") for passing `max_queued_bytes`.
    pub queue_full_bytes: u64,
    /// Requests answered `408` because their body did not arrive within `body_timeout`.
    pub body_timeouts: u64,
    /// Requests answered `413` (a polling body over `max_http_buffer_size`, or, on connections
    /// served by [`crate::serve_http`], any answer `413` of the application).
    pub bodies_too_large: u64,
    /// Connections closed at accept for passing `max_connections_per_ip`.
    pub ip_connections_refused: u64,
    /// Handshakes answered `429` for passing `handshakes_per_second_per_ip`.
    pub ip_handshakes_refused: u64,
    /// Connections or handshakes refused because the per-IP table was full of addresses that
    /// are all in use (see `max_tracked_ips`).
    pub ip_table_full: u64,
}

/// The live counters behind [`AbuseCounters`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) ping_flood_pauses: AtomicU64,
    pub(crate) queue_full_messages: AtomicU64,
    pub(crate) queue_full_bytes: AtomicU64,
    pub(crate) body_timeouts: AtomicU64,
    pub(crate) bodies_too_large: AtomicU64,
    pub(crate) ip_connections_refused: AtomicU64,
    pub(crate) ip_handshakes_refused: AtomicU64,
    pub(crate) ip_table_full: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AbuseCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AbuseCounters {
            ping_flood_pauses: get(&self.ping_flood_pauses),
            queue_full_messages: get(&self.queue_full_messages),
            queue_full_bytes: get(&self.queue_full_bytes),
            body_timeouts: get(&self.body_timeouts),
            bodies_too_large: get(&self.bodies_too_large),
            ip_connections_refused: get(&self.ip_connections_refused),
            ip_handshakes_refused: get(&self.ip_handshakes_refused),
            ip_table_full: get(&self.ip_table_full),
        }
    }
}
