//! What a Redis connection and the adapters over it count, for monitoring: the state of its
//! connections, reconnects and errors, and this node's requests to the other nodes with their
//! latency. [`RedisConnection::stats`](crate::RedisConnection::stats) reads them into a
//! [`RedisStats`]. Nothing here is on a per-message path: a request to other nodes, a
//! reconnection or a failed publish is counted with a relaxed atomic add.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the request latency buckets, in seconds: from a node next door (a
/// millisecond) to the default request timeout (5 s) and past it.
pub const REQUEST_LATENCY_BOUNDS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A latency histogram of atomic buckets, for a path taken once per request.
#[derive(Default)]
pub(crate) struct Latency {
    /// Observations at or under each bound (not cumulative), then those above the last.
    buckets: [AtomicU64; REQUEST_LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let index = REQUEST_LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(REQUEST_LATENCY_BOUNDS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn snapshot(&self) -> LatencySnapshot {
        let mut cumulative = 0;
        let mut buckets = [0; REQUEST_LATENCY_BOUNDS.len()];
        for (i, slot) in buckets.iter_mut().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            *slot = cumulative;
        }
        let count = cumulative + self.buckets[REQUEST_LATENCY_BOUNDS.len()].load(Ordering::Relaxed);
        LatencySnapshot {
            cumulative: buckets,
            count,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// A latency histogram read at one time, in Prometheus's shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencySnapshot {
    /// Observations at or under each of [`REQUEST_LATENCY_BOUNDS`] (cumulative).
    pub cumulative: [u64; REQUEST_LATENCY_BOUNDS.len()],
    /// Every observation.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

/// The counters of one connection, shared by its tasks and by the adapters over it.
#[derive(Default)]
pub(crate) struct RedisCounters {
    pub(crate) reconnects: AtomicU64,
    pub(crate) connection_errors: AtomicU64,
    pub(crate) publish_errors: AtomicU64,
    pub(crate) publish_queue_full: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) request_timeouts: AtomicU64,
    pub(crate) request_errors: AtomicU64,
    pub(crate) request_latency: Latency,
}

/// How a request to the other nodes ended.
pub(crate) enum RequestOutcome {
    Answered,
    TimedOut,
    Failed,
}

impl RedisCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request to the other nodes that ended after `elapsed`.
    pub(crate) fn request(&self, outcome: RequestOutcome, elapsed: Duration) {
        Self::bump(&self.requests);
        match outcome {
            RequestOutcome::Answered => {}
            RequestOutcome::TimedOut => Self::bump(&self.request_timeouts),
            RequestOutcome::Failed => Self::bump(&self.request_errors),
        }
        self.request_latency.observe(elapsed);
    }

    pub(crate) fn snapshot(&self, state: ConnectionState) -> RedisStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RedisStats {
            state,
            reconnects: get(&self.reconnects),
            connection_errors: get(&self.connection_errors),
            publish_errors: get(&self.publish_errors),
            publish_queue_full: get(&self.publish_queue_full),
            requests: get(&self.requests),
            request_timeouts: get(&self.request_timeouts),
            request_errors: get(&self.request_errors),
            request_latency: self.request_latency.snapshot(),
        }
    }
}

/// Whether each connection to Redis is up, as far as the connection knows (a lost connection
/// is noticed at its next use, or when the server closes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionState {
    /// The classic (SUBSCRIBE/PSUBSCRIBE) subscriber connection.
    pub subscriber_up: bool,
    /// The connection that publishes and runs commands: its last publish succeeded.
    pub publisher_up: bool,
    /// The sharded (SSUBSCRIBE) subscriber; `None` when nothing wants a sharded channel.
    pub sharded_subscriber_up: Option<bool>,
}

/// A snapshot of a Redis connection's figures, since it was made.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RedisStats {
    /// The connections' state now.
    pub state: ConnectionState,
    /// Subscriber connections made again after one was lost.
    pub reconnects: u64,
    /// Subscriber connections that failed to open, to restore their subscriptions, or that
    /// were lost.
    pub connection_errors: u64,
    /// Publishes Redis refused or that failed on the way (one per batch of messages).
    pub publish_errors: u64,
    /// Messages refused because the publish queue was full.
    pub publish_queue_full: u64,
    /// Requests of this node to the other nodes (fetch sockets, rooms, server-side emits with
    /// acknowledgements...), however they ended.
    pub requests: u64,
    /// Those that did not get every answer in time.
    pub request_timeouts: u64,
    /// Those that failed otherwise (could not be published, too many waiting).
    pub request_errors: u64,
    /// How long requests took, answered or not.
    pub request_latency: LatencySnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_cumulative() {
        let counters = RedisCounters::default();
        counters.request(RequestOutcome::Answered, Duration::from_micros(500));
        counters.request(RequestOutcome::Answered, Duration::from_millis(20));
        counters.request(RequestOutcome::TimedOut, Duration::from_secs(6));
        let stats = counters.snapshot(ConnectionState::default());
        assert_eq!(stats.requests, 3);
        assert_eq!(stats.request_timeouts, 1);
        let latency = stats.request_latency;
        assert_eq!(latency.count, 3);
        assert_eq!(latency.cumulative[0], 1);
        // 20 ms is under the 25 ms bound (index 4), not the 10 ms one.
        assert_eq!(latency.cumulative[3], 1);
        assert_eq!(latency.cumulative[4], 2);
        assert_eq!(latency.cumulative[REQUEST_LATENCY_BOUNDS.len() - 1], 2);
        assert!((latency.sum_seconds - 6.0205).abs() < 1e-6);
    }
}
