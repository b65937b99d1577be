//! Connection state recovery: a client that lost its connection for less than
//! `max_disconnection_duration` gets its id, rooms and data back, and the packets it missed.
//!
//! Every event broadcast without an acknowledgement and not volatile gets an offset as its last
//! argument and is kept for that long; the client sends back the last offset it saw.
//!
//! A restore comes in two steps, [`Recovery::take_session`] then [`Recovery::missed`], with the
//! socket put back in its rooms between them (see `engine_handler.rs`): every broadcast is then
//! either stamped before the lookup of the missed packets (and replayed) or made once the socket
//! is in its rooms again (and delivered live), and none falls between the two.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ignis_engine::Sid;
use ignis_proto::Value;
use ignis_proto::socketio::{Packet, PacketKind};
use ignis_proto::value::Map;
use parking_lot::Mutex;

use crate::adapter::{BroadcastOptions, Room};

/// Options of connection state recovery.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// How long a disconnected session (and the packets it might miss) is kept.
    pub max_disconnection_duration: Duration,
    /// Whether a recovered socket skips the namespace middlewares.
    pub skip_middlewares: bool,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
        }
    }
}

/// What a socket leaves behind for connection state recovery.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionData {
    /// The socket's id, which a recovered socket keeps.
    pub sid: Sid,
    /// The private id the client sends back to recover.
    pub pid: Arc<str>,
    /// The rooms the socket was in.
    pub rooms: Vec<Room>,
    /// The socket's application data (`socket.data`).
    pub data: Value,
    /// The server's own values of the socket ([`Socket::session_value`](crate::Socket::session_value)),
    /// which clients never see: what a library on top keeps of a socket across a recovery.
    pub values: Map,
}

struct Kept {
    session: SessionData,
    disconnected_at: Instant,
}

struct Stored {
    /// The number in the packet's offset.
    n: u64,
    at: Instant,
    opts: BroadcastOptions,
    packet: Packet,
}

/// The packets kept for replay, in the order of their numbers.
struct Packets {
    kept: VecDeque<Stored>,
    /// The number the next stamped packet gets.
    next: u64,
}

impl Packets {
    /// Whether every packet numbered after `n` is still kept.
    fn kept_after(&self, n: u64) -> bool {
        self.kept.front().map_or(self.next, |p| p.n) <= n.saturating_add(1)
    }
}

/// The in-memory store of one namespace.
pub struct Recovery {
    config: RecoveryConfig,
    sessions: Mutex<HashMap<Arc<str>, Kept>>,
    packets: Mutex<Packets>,
    /// Makes offsets from different server runs differ.
    epoch: u64,
}

impl Recovery {
    pub(crate) fn new(config: RecoveryConfig) -> Recovery {
        Recovery {
            config,
            sessions: Mutex::new(HashMap::new()),
            packets: Mutex::new(Packets {
                kept: VecDeque::new(),
                next: 0,
            }),
            epoch: rand::random::<u32>() as u64,
        }
    }

    /// The options recovery was turned on with.
    pub fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// A new private session id for a socket.
    pub(crate) fn new_pid() -> Arc<str> {
        Arc::from(Sid::generate().as_str())
    }

    /// Gives an event packet its offset and keeps it, if it is one that can be replayed, then
    /// hands it to `deliver`.
    ///
    /// For a packet that gets an offset, `deliver` runs under the store's lock: offsets are then
    /// handed out in the order broadcasts pick their recipients and queue their packets, so a
    /// client sees them in increasing order (two broadcasters on two threads could otherwise
    /// queue them the other way round, and the client's last offset would skip one), and the
    /// lookup of a restoring socket's missed packets falls wholly before or after a broadcast.
    pub(crate) fn stamp_and_deliver(
        &self,
        mut packet: Packet,
        opts: &BroadcastOptions,
        deliver: impl FnOnce(Packet),
    ) {
        let replayable =
            matches!(&packet.kind, PacketKind::Event { id: None, .. }) && !opts.flags.volatile;
        if !replayable {
            deliver(packet);
            return;
        }
        let now = Instant::now();
        let mut packets = self.packets.lock();
        let n = packets.next;
        packets.next += 1;
        if let PacketKind::Event { args, .. } = &mut packet.kind {
            args.push(Value::Str(format!("{:x}-{:x}", self.epoch, n)));
        }
        let horizon = self.config.max_disconnection_duration;
        while packets
            .kept
            .front()
            .is_some_and(|p| now.duration_since(p.at) > horizon)
        {
            packets.kept.pop_front();
        }
        packets.kept.push_back(Stored {
            n,
            at: now,
            opts: opts.clone(),
            packet: packet.clone(),
        });
        deliver(packet);
    }

    /// Keeps a session until `max_disconnection_duration` has passed.
    pub fn persist(&self, session: SessionData) {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let horizon = self.config.max_disconnection_duration;
        sessions.retain(|_, s| now.duration_since(s.disconnected_at) <= horizon);
        sessions.insert(
            Arc::clone(&session.pid),
            Kept {
                session,
                disconnected_at: now,
            },
        );
    }

    /// Takes the session of `pid` out of the store, if it is still kept and so is every packet
    /// stamped after `offset`: only then can [`Recovery::missed`] give back all the client
    /// missed. The caller puts the socket back in its rooms, then asks what it missed.
    pub fn take_session(&self, pid: &str, offset: &str) -> Option<SessionData> {
        let Some(n) = self.offset_number(offset) else {
            tracing::debug!(offset, "not recovered: unknown offset");
            return None;
        };
        let mut sessions = self.sessions.lock();
        let Some(kept) = sessions.get(pid) else {
            tracing::debug!("not recovered: no session kept for this private id");
            return None;
        };
        if kept.disconnected_at.elapsed() > self.config.max_disconnection_duration {
            tracing::debug!("not recovered: session expired");
            return None;
        }
        if !self.packets.lock().kept_after(n) {
            tracing::debug!(offset, "not recovered: packets after the offset dropped");
            return None;
        }
        sessions.remove(pid).map(|kept| kept.session)
    }

    /// The packets stamped after `offset` that reached a socket in `rooms`, in order; `None`
    /// when the offset is not one of this store's, or packets after it are no longer kept.
    pub fn missed(&self, rooms: &[Room], offset: &str) -> Option<Vec<Packet>> {
        let n = self.offset_number(offset)?;
        let packets = self.packets.lock();
        if !packets.kept_after(n) {
            return None;
        }
        // Kept in the order of their numbers: the first after `n` is found by halving.
        let start = packets.kept.partition_point(|p| p.n <= n);
        Some(
            packets
                .kept
                .range(start..)
                .filter(|p| reaches(rooms, &p.opts))
                .map(|p| p.packet.clone())
                .collect(),
        )
    }

    /// The number of an offset this store handed out.
    fn offset_number(&self, offset: &str) -> Option<u64> {
        let (epoch, n) = offset.split_once('-')?;
        if u64::from_str_radix(epoch, 16).ok()? != self.epoch {
            return None;
        }
        let n = u64::from_str_radix(n, 16).ok()?;
        (n < self.packets.lock().next).then_some(n)
    }
}

/// The offset a stamped event carries: its last argument.
pub(crate) fn offset_of(packet: &Packet) -> Option<&str> {
    match &packet.kind {
        PacketKind::Event { args, id: None, .. } => args.last().and_then(Value::as_str),
        _ => None,
    }
}

/// Whether a socket in `rooms` was a recipient of a broadcast with `opts`.
fn reaches(rooms: &[Room], opts: &BroadcastOptions) -> bool {
    let included = opts.rooms.is_empty() || opts.rooms.iter().any(|r| rooms.contains(r));
    let excluded = opts.except.iter().any(|r| rooms.contains(r));
    included && !excluded
}
