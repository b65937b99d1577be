//! Per-socket limits against abusive clients, and the counters of what they refused.
//!
//! Each limit has a default that a normal client never meets, and each refusal is answered
//! (an acknowledgement or an `error` event that says what and why) and counted.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

/// How many events a socket may send: a token bucket that holds `burst` events and refills at
/// `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRate {
    /// Events per second, sustained (at least 1).
    pub per_second: u32,
    /// Events that may come at once after a quiet period (at least 1). It is also the flood
    /// threshold: a socket refused more than `burst` events within one second is disconnected.
    pub burst: u32,
}

impl EventRate {
    /// `per_second` events per second, `burst` at once (each at least 1).
    pub fn new(per_second: u32, burst: u32) -> EventRate {
        EventRate {
            per_second: per_second.max(1),
            burst: burst.max(1),
        }
    }
}

/// The per-socket limits of a server (see `docs/ARCHITECTURE.md`, "Abuse limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketLimits {
    /// Rooms a socket may be in, its own-id room included. A join past it is refused
    /// ([`RoomRefusal::RoomLimit`](crate::RoomRefusal::RoomLimit)); a request that names more
    /// rooms than this is refused before any of them is looked at.
    pub max_rooms_per_socket: usize,
    /// Events a socket may send; `None`: no limit.
    pub event_rate: Option<EventRate>,
    /// Bytes of one event as received (its text and binary attachments, or its msgpack
    /// message). The engine's `max_http_buffer_size` bounds each message already; this bounds
    /// the whole event, attachments included.
    pub max_event_payload: usize,
}

/// Default of [`SocketLimits::max_rooms_per_socket`].
pub const DEFAULT_MAX_ROOMS_PER_SOCKET: usize = 1_000;
/// Default of [`SocketLimits::event_rate`]: 1 000 events per second, 1 000 at once.
pub const DEFAULT_EVENT_RATE: EventRate = EventRate {
    per_second: 1_000,
    burst: 1_000,
};
/// Default of [`SocketLimits::max_event_payload`]: the engine's default message size.
pub const DEFAULT_MAX_EVENT_PAYLOAD: usize = 1_000_000;

impl Default for SocketLimits {
    fn default() -> Self {
        SocketLimits {
            max_rooms_per_socket: DEFAULT_MAX_ROOMS_PER_SOCKET,
            event_rate: Some(DEFAULT_EVENT_RATE),
            max_event_payload: DEFAULT_MAX_EVENT_PAYLOAD,
        }
    }
}

/// What the limits refused since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AbuseCounters {
    /// Rooms not joined because the socket was at `max_rooms_per_socket`, or because the
    /// request named more rooms than that (each such request counts its rooms).
    pub rooms_refused: u64,
    /// Rooms not joined because their name is another socket's id (or has its shape).
    pub socket_id_rooms_refused: u64,
    /// Events refused because their socket went past its event rate.
    pub events_rate_limited: u64,
    /// Connections closed because their socket kept sending past its event rate.
    pub flood_disconnects: u64,
    /// Events refused because they were larger than `max_event_payload`.
    pub payloads_too_large: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    rooms_refused: AtomicU64,
    socket_id_rooms_refused: AtomicU64,
    events_rate_limited: AtomicU64,
    flood_disconnects: AtomicU64,
    payloads_too_large: AtomicU64,
}

/// What a limit refused, to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    RoomLimit,
    SocketIdRoom,
    RateLimited,
    Flood,
    PayloadTooLarge,
}

impl Counters {
    pub(crate) fn add(&self, refusal: Refusal, n: u64) {
        let counter = match refusal {
            Refusal::RoomLimit => &self.rooms_refused,
            Refusal::SocketIdRoom => &self.socket_id_rooms_refused,
            Refusal::RateLimited => &self.events_rate_limited,
            Refusal::Flood => &self.flood_disconnects,
            Refusal::PayloadTooLarge => &self.payloads_too_large,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AbuseCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AbuseCounters {
            rooms_refused: get(&self.rooms_refused),
            socket_id_rooms_refused: get(&self.socket_id_rooms_refused),
            events_rate_limited: get(&self.events_rate_limited),
            flood_disconnects: get(&self.flood_disconnects),
            payloads_too_large: get(&self.payloads_too_large),
        }
    }
}

/// The limits of a server and their counters, shared by its namespaces.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    pub(crate) config: SocketLimits,
    pub(crate) counters: Counters,
}

/// Microseconds since the first call in this process.
fn now_us() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// One socket's event bucket.
///
/// Refilled lazily, only once empty: an event costs a load and a store of `tokens`, and the
/// clock is read once per refill, not per event. The tokens a refill grants are those earned
/// since the last one, capped at the burst, so over any window the rate holds. The price of
/// not reading the clock per event: the bucket cannot tell when it would have been full, so
/// after a quiet period a client may get what was left of the last refill and a full burst,
/// up to twice `burst` at once (a bucket read per event would allow `burst`). A connection's
/// events are handled one at a time, so plain loads and stores suffice; two polling requests
/// of one session racing could at worst let an event more through.
#[derive(Debug)]
pub(crate) struct Bucket {
    tokens: AtomicU32,
    refilled_at: AtomicU64,
    /// The second (since the clock's epoch) of the refusals counted in `refusals`.
    window: AtomicU32,
    refusals: AtomicU32,
}

impl Bucket {
    pub(crate) fn new(rate: Option<EventRate>) -> Bucket {
        let (tokens, at) = match rate {
            Some(rate) => (rate.burst, now_us()),
            None => (0, 0),
        };
        Bucket {
            tokens: AtomicU32::new(tokens),
            refilled_at: AtomicU64::new(at),
            window: AtomicU32::new(0),
            refusals: AtomicU32::new(0),
        }
    }

    /// Takes a token: whether one more event may be handled.
    #[inline]
    pub(crate) fn take(&self, rate: EventRate) -> bool {
        let tokens = self.tokens.load(Ordering::Relaxed);
        if tokens > 0 {
            self.tokens.store(tokens - 1, Ordering::Relaxed);
            return true;
        }
        self.refill(rate, now_us())
    }

    /// The bucket is empty: grants what was earned since the last refill, and takes one.
    #[cold]
    fn refill(&self, rate: EventRate, now: u64) -> bool {
        let per_second = u128::from(rate.per_second.max(1));
        let burst = u128::from(rate.burst.max(1));
        let last = self.refilled_at.load(Ordering::Relaxed);
        let elapsed = u128::from(now.saturating_sub(last));
        let earned = elapsed * per_second / 1_000_000;
        if earned == 0 {
            return false;
        }
        if earned >= burst {
            self.refilled_at.store(now, Ordering::Relaxed);
            self.tokens.store((burst - 1) as u32, Ordering::Relaxed);
        } else {
            // Only the time the granted tokens took is used up: the fraction of the next one
            // carries over.
            let used = (earned * 1_000_000 / per_second) as u64;
            self.refilled_at.store(last + used, Ordering::Relaxed);
            self.tokens.store((earned - 1) as u32, Ordering::Relaxed);
        }
        true
    }

    /// Counts a refused event: whether the socket floods, i.e. was refused more than `burst`
    /// events within this second.
    #[cold]
    pub(crate) fn refused(&self, rate: EventRate) -> bool {
        let second = (now_us() / 1_000_000) as u32;
        let count = if self.window.load(Ordering::Relaxed) == second {
            self.refusals.load(Ordering::Relaxed).saturating_add(1)
        } else {
            self.window.store(second, Ordering::Relaxed);
            1
        };
        self.refusals.store(count, Ordering::Relaxed);
        count > rate.burst.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_grants_its_burst_then_its_rate() {
        let rate = EventRate::new(10, 5);
        let bucket = Bucket::new(Some(rate));
        let start = bucket.refilled_at.load(Ordering::Relaxed);
        for _ in 0..5 {
            assert!(bucket.take(rate));
        }
        // Empty: nothing earned yet.
        assert!(!bucket.refill(rate, start + 50_000));
        // 250 ms at 10/s: two events, and the half event left over carries.
        assert!(bucket.refill(rate, start + 250_000));
        assert!(bucket.take(rate));
        assert_eq!(bucket.tokens.load(Ordering::Relaxed), 0);
        assert!(!bucket.refill(rate, start + 299_999));
        assert!(bucket.refill(rate, start + 300_000));
        // A long pause grants the burst, no more.
        assert!(bucket.refill(rate, start + 60_000_000));
        assert_eq!(bucket.tokens.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn refusals_past_the_burst_within_a_second_are_a_flood() {
        let rate = EventRate::new(1, 3);
        let bucket = Bucket::new(Some(rate));
        assert!(!bucket.refused(rate));
        assert!(!bucket.refused(rate));
        assert!(!bucket.refused(rate));
        // Either the fourth in the same second, or the window moved on and counts from 1.
        let second = bucket.window.load(Ordering::Relaxed);
        let flood = bucket.refused(rate);
        assert_eq!(flood, bucket.window.load(Ordering::Relaxed) == second);
    }
}
