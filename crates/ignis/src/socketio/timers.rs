//! The authentication deadlines and app-level pings of all the clients of a helper, kept in two
//! queues and served by one task.
//!
//! A task with its own timer per client costs a few hundred bytes for every idle connection; an
//! entry here costs 32, and a client that authenticated has one that counts (its next ping).
//!
//! Each kind of entry is scheduled a fixed delay after "now", so its queue is in due order with
//! nothing to sort: a new entry goes at the back, or a few places before it when a late ping
//! tick reschedules from its due time. Nothing is ever removed but what came due: a client that
//! authenticates or leaves keeps its stale entry until then, and whoever serves the entries
//! checks each against the client's current one (an ordered set paid a search to insert and
//! another to cancel, twice per connection).

use std::collections::VecDeque;
use std::time::Duration;

use ignis_socketio::Sid;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What is due for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// One queue per [`Kind`], each in due order.
    queues: Mutex<[VecDeque<Entry>; 2]>,
    /// Wakes the serving task when an entry became the earliest.
    wake: Notify,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            base: Instant::now(),
            queues: Mutex::new([VecDeque::new(), VecDeque::new()]),
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
            let mut queues = self.queues.lock();
            let queue = &mut queues[kind as usize];
            let mut index = queue.len();
            while index > 0 && queue[index - 1].0 > at {
                index -= 1;
            }
            queue.insert(index, entry);
            index == 0 && first_due(&queues) == Some(at)
        };
        if earliest {
            self.wake.notify_one();
        }
        entry
    }

    /// Forgets every entry.
    pub(crate) fn clear(&self) {
        for queue in self.queues.lock().iter_mut() {
            *queue = VecDeque::new();
        }
    }

    /// Waits until at least one entry is due, and takes every entry that is, in due order.
    /// Entries the caller replaced since are among them: it must check each.
    pub(crate) async fn next_due(&self) -> Vec<Entry> {
        loop {
            // Created before looking at the queue: a `notify_one` in between is not lost.
            let woken = self.wake.notified();
            let first = first_due(&self.queues.lock());
            match first {
                None => woken.await,
                Some(at) if at <= self.now_ms() => {
                    let now = self.now_ms();
                    let mut due = Vec::new();
                    for queue in self.queues.lock().iter_mut() {
                        while let Some(entry) = queue.front().copied().filter(|e| e.0 <= now) {
                            queue.pop_front();
                            due.push(entry);
                        }
                    }
                    due.sort_by_key(|e| e.0);
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

/// When the earliest entry of any queue is due.
fn first_due(queues: &[VecDeque<Entry>; 2]) -> Option<u64> {
    queues.iter().filter_map(|q| q.front().map(|e| e.0)).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn entries_come_due_in_order() {
        let timers = Timers::new();
        let (a, b, c, d) = (
            Sid::generate(),
            Sid::generate(),
            Sid::generate(),
            Sid::generate(),
        );
        timers.schedule(a, Kind::Ping, Duration::from_millis(300));
        timers.schedule(b, Kind::Deadline, Duration::from_millis(100));
        timers.schedule(c, Kind::Deadline, Duration::from_millis(200));
        // A late tick's reschedule lands before a later entry of its kind.
        timers.schedule_at(250, d, Kind::Ping);
        let start = Instant::now();
        assert_eq!(timers.next_due().await, vec![(100, b, Kind::Deadline)]);
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        assert_eq!(timers.next_due().await, vec![(200, c, Kind::Deadline)]);
        assert_eq!(timers.next_due().await, vec![(250, d, Kind::Ping)]);
        assert_eq!(timers.next_due().await, vec![(300, a, Kind::Ping)]);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_due_together_come_together_in_due_order() {
        let timers = Timers::new();
        let (a, b) = (Sid::generate(), Sid::generate());
        timers.schedule_at(20, a, Kind::Ping);
        timers.schedule_at(10, b, Kind::Deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            timers.next_due().await,
            vec![(10, b, Kind::Deadline), (20, a, Kind::Ping)]
        );
        timers.schedule_at(60, a, Kind::Ping);
        timers.clear();
        let waited = tokio::time::timeout(Duration::from_secs(1), timers.next_due()).await;
        assert!(waited.is_err(), "a cleared entry came due");
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
