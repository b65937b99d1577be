//! What an engine counts as it runs, for monitoring: handshakes, upgrades, closes by reason,
//! and the messages and bytes that came in. [`Engine::stats`](crate::Engine::stats) reads them
//! into an [`EngineStats`].
//!
//! Counters on a path every message takes are [`ShardedCounter`]s: each thread adds to a slot
//! of its own cache line, with a plain load and store rather than a locked add, so counting
//! costs a message about what a local variable would; a read sums the slots.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::session::{CloseReason, TransportKind};

/// Slots of a [`ShardedCounter`]: more than the threads of a usual runtime (its workers and the
/// few blocking threads that count), so that every counting thread has one alone.
const SHARDS: usize = 16;

/// The slot that threads beyond the first `SHARDS - 1` share, added to with a locked add.
const SHARED: usize = SHARDS - 1;

/// One slot, alone on its cache line (128 bytes: adjacent-line prefetch pairs lines on x86).
#[derive(Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A counter for hot paths: an add goes to the calling thread's slot, which no other thread
/// writes; [`ShardedCounter::get`] sums the slots.
pub struct ShardedCounter {
    slots: [Slot; SHARDS],
}

impl Default for ShardedCounter {
    fn default() -> Self {
        ShardedCounter {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl std::fmt::Debug for ShardedCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ShardedCounter").field(&self.get()).finish()
    }
}

/// Slots owned by no living thread, and the next never given out.
struct FreeSlots {
    returned: Vec<usize>,
    next: usize,
}

static FREE_SLOTS: Mutex<FreeSlots> = Mutex::new(FreeSlots {
    returned: Vec::new(),
    next: 0,
});

/// A thread's own slot, given back when the thread ends so that a runtime's blocking threads,
/// which come and go, do not use the slots up.
struct OwnSlot(usize);

impl OwnSlot {
    fn take() -> OwnSlot {
        let Ok(mut free) = FREE_SLOTS.lock() else {
            return OwnSlot(SHARED);
        };
        if let Some(index) = free.returned.pop() {
            return OwnSlot(index);
        }
        if free.next < SHARED {
            free.next += 1;
            return OwnSlot(free.next - 1);
        }
        OwnSlot(SHARED)
    }
}

impl Drop for OwnSlot {
    fn drop(&mut self) {
        // The lock orders this thread's last adds before the next owner's first.
        if self.0 != SHARED
            && let Ok(mut free) = FREE_SLOTS.lock()
        {
            free.returned.push(self.0);
        }
    }
}

thread_local! {
    static OWN_SLOT: OwnSlot = OwnSlot::take();
}

impl ShardedCounter {
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        // A thread ending (its thread-locals gone) counts in the shared slot.
        let index = OWN_SLOT.try_with(|own| own.0).unwrap_or(SHARED);
        let slot = &self.slots[index].0;
        if index == SHARED {
            slot.fetch_add(n, Ordering::Relaxed);
        } else {
            // Only this thread writes the slot: no add of another can fall between the two.
            slot.store(
                slot.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        }
    }

    /// The total so far (a concurrent add may or may not be in it).
    pub fn get(&self) -> u64 {
        self.slots
            .iter()
            .map(|slot| slot.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// The engine's counters, per engine.
#[derive(Default)]
pub(crate) struct EngineCounters {
    pub(crate) handshakes: [AtomicU64; 2],
    pub(crate) upgrades: AtomicU64,
    pub(crate) closes: [AtomicU64; CloseReason::ALL.len()],
    pub(crate) messages_in: ShardedCounter,
    pub(crate) bytes_in: ShardedCounter,
}

fn transport_index(kind: TransportKind) -> usize {
    match kind {
        TransportKind::Polling => 0,
        TransportKind::WebSocket => 1,
    }
}

impl EngineCounters {
    pub(crate) fn handshake(&self, kind: TransportKind) {
        self.handshakes[transport_index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        // `get`: a reason added to the enum but not to `CloseReason::ALL` goes uncounted rather
        // than panicking on a close.
        if let Some(counter) = self.closes.get(reason.index()) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A snapshot of an engine's figures (see [`Engine::stats`](crate::Engine::stats)). Counters
/// count since the engine was made; `open_*` are the sessions open now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStats {
    /// Sessions open now on long-polling (not upgraded, or never to be).
    pub open_polling: u64,
    /// Sessions open now on a WebSocket.
    pub open_websocket: u64,
    /// Sessions opened by a long-polling handshake.
    pub handshakes_polling: u64,
    /// Sessions opened by a direct WebSocket handshake.
    pub handshakes_websocket: u64,
    /// Long-polling sessions upgraded to a WebSocket.
    pub upgrades: u64,
    /// Sessions ended, by reason, in the order of [`CloseReason::ALL`].
    pub closes: [(CloseReason, u64); CloseReason::ALL.len()],
    /// Engine.IO messages received from clients.
    pub messages_in: u64,
    /// Bytes of those messages (their payload, without the transport's framing).
    pub bytes_in: u64,
}

impl EngineCounters {
    pub(crate) fn snapshot(&self, open_polling: u64, open_websocket: u64) -> EngineStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EngineStats {
            open_polling,
            open_websocket,
            handshakes_polling: get(&self.handshakes[0]),
            handshakes_websocket: get(&self.handshakes[1]),
            upgrades: get(&self.upgrades),
            closes: std::array::from_fn(|i| (CloseReason::ALL[i], get(&self.closes[i]))),
            messages_in: self.messages_in.get(),
            bytes_in: self.bytes_in.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharded_counter_sums_every_thread() {
        let counter = std::sync::Arc::new(ShardedCounter::default());
        // Two waves of more threads than slots: some share a slot, and the second wave takes
        // over the slots the first gave back, counting on from what they hold.
        for wave in 1..=2u64 {
            let threads: Vec<_> = (0..20)
                .map(|_| {
                    let counter = counter.clone();
                    std::thread::spawn(move || {
                        for _ in 0..1000 {
                            counter.add(2);
                        }
                    })
                })
                .collect();
            for thread in threads {
                assert!(thread.join().is_ok());
            }
            assert_eq!(counter.get(), wave * 40_000);
        }
    }

    #[test]
    fn every_close_reason_has_its_own_slot() {
        for (i, reason) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
        let labels: std::collections::HashSet<_> =
            CloseReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), CloseReason::ALL.len());
    }
}
