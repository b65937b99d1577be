//! Connection state recovery: a client that lost its connection for less than
//! `max_disconnection_duration` gets its id, rooms and data back, and the packets it missed.
//!
//! Every event broadcast without an acknowledgement and not volatile gets an offset as its last
//! argument and is kept for that long; the client sends back the last offset it saw.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ignis_engine::Sid;
use ignis_proto::Value;
use ignis_proto::socketio::{Packet, PacketKind};
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
    pub rooms: Vec<Room>,
    pub data: Value,
}

/// A recovered session and the packets it missed, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoredSession {
    pub session: SessionData,
    pub missed: Vec<Packet>,
}

struct Kept {
    session: SessionData,
    disconnected_at: Instant,
}

struct Stored {
    offset: Arc<str>,
    at: Instant,
    opts: BroadcastOptions,
    packet: Packet,
}

/// The in-memory store of one namespace.
pub struct Recovery {
    config: RecoveryConfig,
    sessions: Mutex<HashMap<Arc<str>, Kept>>,
    packets: Mutex<VecDeque<Stored>>,
    counter: AtomicU64,
    /// Makes offsets from different server runs differ.
    epoch: u64,
}

impl Recovery {
    pub(crate) fn new(config: RecoveryConfig) -> Recovery {
        Recovery {
            config,
            sessions: Mutex::new(HashMap::new()),
            packets: Mutex::new(VecDeque::new()),
            counter: AtomicU64::new(0),
            epoch: rand::random::<u32>() as u64,
        }
    }

    pub(crate) fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    /// A new private session id for a socket.
    pub(crate) fn new_pid() -> Arc<str> {
        Arc::from(Sid::generate().as_str())
    }

    /// Gives an event packet its offset and keeps it, if it is one that can be replayed.
    pub(crate) fn stamp(&self, packet: &mut Packet, opts: &BroadcastOptions) {
        let PacketKind::Event { args, id: None, .. } = &mut packet.kind else {
            return;
        };
        if opts.flags.volatile {
            return;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let offset: Arc<str> = Arc::from(format!("{:x}-{:x}", self.epoch, n));
        args.push(Value::Str(offset.to_string()));
        let now = Instant::now();
        let mut packets = self.packets.lock();
        let horizon = self.config.max_disconnection_duration;
        while packets
            .front()
            .is_some_and(|p| now.duration_since(p.at) > horizon)
        {
            packets.pop_front();
        }
        packets.push_back(Stored {
            offset,
            at: now,
            opts: opts.clone(),
            packet: packet.clone(),
        });
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

    /// The session of `pid` and what it missed since `offset`, if both are still known.
    pub fn restore(&self, pid: &str, offset: &str) -> Option<RestoredSession> {
        let kept = self.sessions.lock().remove(pid)?;
        if kept.disconnected_at.elapsed() > self.config.max_disconnection_duration {
            return None;
        }
        let packets = self.packets.lock();
        let index = packets.iter().position(|p| &*p.offset == offset)?;
        let missed = packets
            .iter()
            .skip(index + 1)
            .filter(|p| reaches(&kept.session.rooms, &p.opts))
            .map(|p| p.packet.clone())
            .collect();
        Some(RestoredSession {
            session: kept.session,
            missed,
        })
    }
}

/// Whether a socket in `rooms` was a recipient of a broadcast with `opts`.
fn reaches(rooms: &[Room], opts: &BroadcastOptions) -> bool {
    let included = opts.rooms.is_empty() || opts.rooms.iter().any(|r| rooms.contains(r));
    let excluded = opts.except.iter().any(|r| rooms.contains(r));
    included && !excluded
}
