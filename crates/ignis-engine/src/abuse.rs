//! What the engine refuses or cuts to protect itself from a client, counted: the counters are
//! atomics bumped only when a limit is hit, so a server that is not attacked pays nothing.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::config::EngineConfig;
use crate::error::IpRefusal;

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

/// The per-IP limits: connections open at once and handshakes per second (a token bucket),
/// kept in a table of bounded size, split in shards so that accepts on different threads
/// rarely meet on one lock. Only built when a limit is set.
pub(crate) struct IpLimiter {
    max_connections: u32,
    /// Tokens per second; 0 is no handshake limit.
    rate: u32,
    burst: u32,
    /// Most entries per shard.
    shard_cap: usize,
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    counters: Arc<Counters>,
}

const SHARDS: usize = 16;
/// The least time between two sweeps of a full shard: a sweep visits every entry of it.
const SWEEP_EVERY: Duration = Duration::from_millis(100);

#[derive(Default)]
struct Shard {
    map: HashMap<IpAddr, Entry>,
    last_sweep: Option<Instant>,
}

struct Entry {
    connections: u32,
    tokens: f32,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl IpLimiter {
    pub(crate) fn new(config: &EngineConfig, counters: Arc<Counters>) -> Option<Arc<IpLimiter>> {
        if config.max_connections_per_ip == 0 && config.handshakes_per_second_per_ip == 0 {
            return None;
        }
        Some(Arc::new(IpLimiter {
            max_connections: config.max_connections_per_ip,
            rate: config.handshakes_per_second_per_ip,
            burst: config.handshake_burst_per_ip.max(1),
            shard_cap: config.max_tracked_ips.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            counters,
        }))
    }

    /// The key of an address: an IPv6 client is counted by its /64, which one subscriber
    /// usually holds whole (each address of it would be a table entry of its own).
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let bits = u128::from(v6) & !((1u128 << 64) - 1);
                    IpAddr::V6(Ipv6Addr::from(bits))
                }
            },
            v4 => v4,
        }
    }

    fn shard(&self, key: &IpAddr) -> &Mutex<Shard> {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        &self.shards[index]
    }

    /// Whether an entry says nothing a fresh one would not: no connection, a full bucket.
    fn idle(&self, entry: &Entry, now: Instant) -> bool {
        entry.connections == 0
            && (self.rate == 0
                || entry.tokens + now.duration_since(entry.at).as_secs_f32() * self.rate as f32
                    >= self.burst as f32)
    }

    /// Runs `f` on the entry of `ip`, made if needed; `None` when the table is full.
    fn with_entry<T>(&self, ip: IpAddr, f: impl FnOnce(&mut Entry, Instant) -> T) -> Option<T> {
        let key = Self::key(ip);
        let now = Instant::now();
        let mut shard = self.shard(&key).lock();
        if !shard.map.contains_key(&key) && shard.map.len() >= self.shard_cap {
            let due = shard
                .last_sweep
                .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY);
            if due {
                shard.last_sweep = Some(now);
                shard.map.retain(|_, entry| !self.idle(entry, now));
            }
            if shard.map.len() >= self.shard_cap {
                Counters::bump(&self.counters.ip_table_full);
                return None;
            }
        }
        let entry = shard.map.entry(key).or_insert(Entry {
            connections: 0,
            tokens: self.burst as f32,
            at: now,
        });
        Some(f(entry, now))
    }

    /// Counts a new connection from `ip`, unless it has too many already; `None` when
    /// connections are not limited.
    pub(crate) fn connect(
        self: &Arc<Self>,
        ip: IpAddr,
    ) -> Result<Option<ConnectionPermit>, IpRefusal> {
        if self.max_connections == 0 {
            return Ok(None);
        }
        let max = self.max_connections;
        let admitted = self
            .with_entry(ip, |entry, _| {
                if entry.connections >= max {
                    return false;
                }
                entry.connections += 1;
                true
            })
            .ok_or(IpRefusal::TableFull)?;
        if !admitted {
            Counters::bump(&self.counters.ip_connections_refused);
            return Err(IpRefusal::TooManyConnections);
        }
        Ok(Some(ConnectionPermit(Arc::new(Counted {
            limiter: Arc::clone(self),
            ip,
        }))))
    }

    /// Takes a token of `ip`'s handshake bucket, if it has one.
    pub(crate) fn handshake(&self, ip: IpAddr) -> Result<(), IpRefusal> {
        if self.rate == 0 {
            return Ok(());
        }
        let (rate, burst) = (self.rate as f32, self.burst as f32);
        let allowed = self
            .with_entry(ip, |entry, now| {
                let refill = now.duration_since(entry.at).as_secs_f32() * rate;
                entry.tokens = (entry.tokens + refill).min(burst);
                entry.at = now;
                if entry.tokens >= 1.0 {
                    entry.tokens -= 1.0;
                    true
                } else {
                    false
                }
            })
            .ok_or(IpRefusal::TableFull)?;
        if !allowed {
            Counters::bump(&self.counters.ip_handshakes_refused);
            return Err(IpRefusal::TooManyHandshakes);
        }
        Ok(())
    }

    fn disconnect(&self, ip: IpAddr) {
        let key = Self::key(ip);
        let now = Instant::now();
        let mut shard = self.shard(&key).lock();
        if let Some(entry) = shard.map.get_mut(&key) {
            entry.connections = entry.connections.saturating_sub(1);
            if self.idle(entry, now) {
                shard.map.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map.len()).sum()
    }
}

/// A connection counted against its IP address's limit; once it and its clones are dropped
/// (when the connection ends), the connection is counted out. A WebSocket upgraded through
/// hyper outlives the task of its connection: the request carries a clone of the permit
/// ([`ConnectionGuard::attach`]) and the WebSocket's task keeps it.
#[derive(Clone)]
pub struct ConnectionPermit(Arc<Counted>);

struct Counted {
    limiter: Arc<IpLimiter>,
    ip: IpAddr,
}

impl std::fmt::Debug for ConnectionPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionPermit")
            .field("ip", &self.0.ip)
            .finish()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.limiter.disconnect(self.ip);
    }
}

/// What a connection's task keeps for its life besides the connection: nothing (`()`, when
/// connections are not limited) or its [`ConnectionPermit`]. Generic so that, without a limit,
/// a connection's task holds not even an empty slot.
pub trait ConnectionGuard: Clone + Send + Sync + 'static {
    /// Lets a request of the connection carry the guard, for a WebSocket that hyper upgrades.
    fn attach(&self, extensions: &mut http::Extensions);
}

impl ConnectionGuard for () {
    fn attach(&self, _extensions: &mut http::Extensions) {}
}

impl ConnectionGuard for ConnectionPermit {
    fn attach(&self, extensions: &mut http::Extensions) {
        extensions.insert(self.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(connections: u32, rate: u32, burst: u32, cap: usize) -> Arc<IpLimiter> {
        let config = EngineConfig {
            max_connections_per_ip: connections,
            handshakes_per_second_per_ip: rate,
            handshake_burst_per_ip: burst,
            max_tracked_ips: cap,
            ..EngineConfig::default()
        };
        IpLimiter::new(&config, Arc::default()).unwrap()
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn connections_are_counted_per_address_and_counted_out() {
        let limiter = limiter(2, 0, 1, 1000);
        let a = limiter.connect(ip(1)).unwrap();
        let b = limiter.connect(ip(1)).unwrap();
        let b_again = b.clone();
        drop(b);
        assert_eq!(
            limiter.connect(ip(1)).unwrap_err(),
            IpRefusal::TooManyConnections
        );
        let _other = limiter.connect(ip(2)).unwrap();
        drop(a);
        let _c = limiter.connect(ip(1)).unwrap();
        // A clone keeps the connection counted.
        assert!(limiter.connect(ip(1)).is_err());
        drop(b_again);
        assert!(limiter.connect(ip(1)).is_ok());
        assert_eq!(limiter.counters.snapshot().ip_connections_refused, 2);
    }

    #[test]
    fn handshakes_take_tokens_from_a_bucket() {
        let limiter = limiter(0, 1, 3, 1000);
        for _ in 0..3 {
            limiter.handshake(ip(1)).unwrap();
        }
        assert_eq!(
            limiter.handshake(ip(1)).unwrap_err(),
            IpRefusal::TooManyHandshakes
        );
        limiter.handshake(ip(2)).unwrap();
        assert_eq!(limiter.counters.snapshot().ip_handshakes_refused, 1);
    }

    #[test]
    fn the_table_is_bounded() {
        // 16 shards of one entry: addresses with a connection fill them, and once every
        // shard is taken the next new address is refused; a closed connection frees its entry.
        let limiter = limiter(1, 0, 1, 16);
        let mut held = Vec::new();
        let mut refused = None;
        for n in 0..10_000 {
            match limiter.connect(ip(n)) {
                Ok(permit) => held.push(permit),
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert_eq!(refused, Some(IpRefusal::TableFull));
        assert!(limiter.tracked() <= 16);
        assert_eq!(limiter.counters.snapshot().ip_table_full, 1);
        held.clear();
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let limiter = limiter(1, 0, 1, 1000);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let _held = limiter.connect(a).unwrap();
        assert!(limiter.connect(b).is_err());
        assert!(limiter.connect("2001:db8:1:3::1".parse().unwrap()).is_ok());
    }
}
