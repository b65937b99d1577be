//! The authentication deadlines and app-level pings of all the clients of a helper, kept in one
//! ordered set and served by one task.
//!
//! A task with its own timer per client costs a few hundred bytes for every idle connection; an
//! entry here costs a few dozen, and a client that authenticated has exactly one (its next
//! ping).

use std::collections::BTreeSet;
use std::time::Duration;

use ignis_socketio::Sid;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What is due for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// The client must have authenticated by now.
    Deadline,
    /// Time for the next app-level `ping`.
    Ping,
}

/// One scheduled entry: when (milliseconds after the set's creation), whom, what.
pub(crate) type Entry = (u64, Sid, Kind);

pub(crate) struct Timers {
    base: Instant,
    queue: Mutex<BTreeSet<Entry>>,
    /// Wakes the serving task when an entry became the earliest.
    wake: Notify,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            base: Instant::now(),
            queue: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.base.elapsed().as_millis() as u64
    }

    /// Schedules `kind` for `sid` after `delay` (from now), and returns the entry.
    pub(crate) fn schedule(&self, sid: Sid, kind: Kind, delay: Duration) -> Entry {
        self.schedule_at(self.now_ms() + delay.as_millis() as u64, sid, kind)
    }

    pub(crate) fn schedule_at(&self, at: u64, sid: Sid, kind: Kind) -> Entry {
        let entry = (at, sid, kind);
        let earliest = {
            let mut queue = self.queue.lock();
            queue.insert(entry);
            queue.first() == Some(&entry)
        };
        if earliest {
            self.wake.notify_one();
        }
        entry
    }

    pub(crate) fn cancel(&self, entry: &Entry) {
        self.queue.lock().remove(entry);
    }

    pub(crate) fn clear(&self) {
        self.queue.lock().clear();
    }

    /// Waits until at least one entry is due, and takes every entry that is.
    pub(crate) async fn next_due(&self) -> Vec<Entry> {
        loop {
            // Created before looking at the queue: a `notify_one` in between is not lost.
            let woken = self.wake.notified();
            let first = self.queue.lock().first().map(|e| e.0);
            match first {
                None => woken.await,
                Some(at) if at <= self.now_ms() => {
                    let now = self.now_ms();
                    let mut queue = self.queue.lock();
                    let mut due = Vec::new();
                    while let Some(entry) = queue.first().copied().filter(|e| e.0 <= now) {
                        queue.pop_first();
                        due.push(entry);
                    }
                    return due;
                }
                Some(at) => {
                    let deadline = self.base + Duration::from_millis(at);
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {}
                        _ = woken => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_come_due_in_order_and_cancelled_ones_never() {
        let timers = Timers::new();
        let (a, b, c) = (Sid::generate(), Sid::generate(), Sid::generate());
        timers.schedule(a, Kind::Ping, Duration::from_millis(300));
        let cancelled = timers.schedule(b, Kind::Deadline, Duration::from_millis(100));
        timers.schedule(c, Kind::Deadline, Duration::from_millis(200));
        timers.cancel(&cancelled);
        let start = Instant::now();
        let due = timers.next_due().await;
        assert_eq!(due, vec![(200, c, Kind::Deadline)]);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
        let due = timers.next_due().await;
        assert_eq!(due, vec![(300, a, Kind::Ping)]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_entry_wakes_the_waiting_task() {
        let timers = std::sync::Arc::new(Timers::new());
        let a = Sid::generate();
        timers.schedule(a, Kind::Ping, Duration::from_secs(30));
        let waiter = {
            let timers = timers.clone();
            tokio::spawn(async move { timers.next_due().await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let b = Sid::generate();
        timers.schedule(b, Kind::Deadline, Duration::from_secs(1));
        let due = waiter.await.unwrap();
        assert_eq!(due, vec![(1010, b, Kind::Deadline)]);
    }
}
