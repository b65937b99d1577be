//! Broadcast fan-out: broadcasts are queued for their recipients once the broadcasting task
//! yields, several at a time, with one visit to each recipient for all of them.
//!
//! Queueing a broadcast for each recipient as it is made costs, per recipient and per broadcast,
//! a lock and the cache lines of the session, which the thread that writes the session took
//! last: at thousands of broadcasts a second to a thousand clients that was most of the server's
//! user time (a tenth of all its time on one `lock cmpxchg`). Gathered, the broadcasts made
//! meanwhile to the same recipients go to each in one visit, and leave in one write of their
//! frames laid end to end (see [`ignis_engine::Round`]), the way an event loop that reads many
//! requests per round answers them.
//!
//! Where a broadcast leaves: [`Namespace::deliver`] encodes it once and hands it to
//! [`Fanout::submit`]; a round (a task spawned once per round, or the broadcaster itself past
//! the bound below) takes every pending broadcast and queues them in order, consecutive ones to
//! the same recipients together, through `Namespace::queue_round`, which writes each
//! recipient's session.
//!
//! Deferring must not reorder what one client receives: whatever the server sends to a
//! session after a broadcast (an emit, an acknowledgement, a disconnect) must come after it. So
//! every such send first settles ([`Fanout::settle`]): it queues the broadcasts still pending,
//! waiting for one being queued by another thread, which costs one atomic load when nothing is
//! pending. That rule is kept in one place, the outbound path of [`crate::outbound`], which
//! every send to one client takes; the same goes for what decides whether a socket gets
//! broadcasts at all (being connected, having broadcasts held), which is read when a broadcast
//! is queued.
//!
//! The state is the server's: each [`SocketIo`](crate::SocketIo) owns one [`Fanout`], which its
//! namespaces hold, so two servers in one process neither wait for nor queue each other's
//! broadcasts, and each has its own bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ignis_engine::{Round, Sid};
use parking_lot::Mutex;

use crate::namespace::Namespace;
use crate::outbound::Messages;
use crate::stats::IoCounters;

/// A broadcast made and not queued for its recipients yet.
pub(crate) struct Broadcast {
    pub(crate) ns: Arc<Namespace>,
    pub(crate) sids: Arc<[Sid]>,
    pub(crate) part: Part,
    pub(crate) volatile: bool,
}

/// One broadcast's messages, with its recovery offset if it has one: a socket being restored
/// keeps them apart, to skip those it gets again among the missed packets.
pub(crate) struct Part {
    pub(crate) offset: Option<Arc<str>>,
    pub(crate) messages: Messages,
}

impl Broadcast {
    /// Whether `other` goes to the same sessions in the same way.
    fn same_recipients(&self, other: &Broadcast) -> bool {
        Arc::ptr_eq(&self.ns, &other.ns)
            && self.volatile == other.volatile
            && self.sids == other.sids
    }
}

/// The fan-out of one server: its broadcasts not queued yet, and the lock that queues them in
/// order. Each [`SocketIo`](crate::SocketIo) has its own, shared by its namespaces: a server
/// never waits for another's broadcasts, nor queues them.
pub(crate) struct Fanout {
    /// Broadcasts waiting to be queued, in the order they were made.
    pending: Mutex<Pending>,
    /// Broadcasts made and not queued yet: pending, or being queued. What a send reads first,
    /// and most of the time alone.
    unsettled: AtomicUsize,
    /// A task that settles is spawned and has not started yet.
    scheduled: AtomicBool,
    /// Held while broadcasts are queued: they are queued in order, one thread at a time, and a
    /// sender that must come after them waits here.
    settling: Mutex<()>,
    /// The server's counters: every send to a client, and every broadcast, passes here.
    pub(crate) stats: IoCounters,
}

struct Pending {
    broadcasts: Vec<Broadcast>,
    /// Recipients of the pending broadcasts, all told.
    deliveries: usize,
}

/// How many deliveries may wait for a round, per server. Past this, whoever broadcasts queues
/// what is pending itself, and its caller waits: broadcasts made faster than they reach the
/// clients slow down their senders (a REST call is answered later) instead of piling up here.
/// It is 64 broadcasts to 2 000 clients, 2 MiB of session ids.
const MAX_PENDING_DELIVERIES: usize = 128 * 1024;

impl Fanout {
    pub(crate) fn new() -> Arc<Fanout> {
        Arc::new(Fanout {
            pending: Mutex::new(Pending {
                broadcasts: Vec::new(),
                deliveries: 0,
            }),
            unsettled: AtomicUsize::new(0),
            scheduled: AtomicBool::new(false),
            settling: Mutex::new(()),
            stats: IoCounters::default(),
        })
    }

    /// Makes a broadcast: queued for its recipients once the current task yields, or before
    /// anything else is sent to them.
    pub(crate) fn submit(self: &Arc<Self>, broadcast: Broadcast) {
        let bytes = broadcast.part.messages.iter().map(|m| m.data().len()).sum();
        self.stats.broadcast(broadcast.sids.len(), bytes);
        let backlog = {
            let mut pending = self.pending.lock();
            pending.deliveries += broadcast.sids.len();
            pending.broadcasts.push(broadcast);
            // Counted under the lock, so that whoever takes the broadcast counts it down after.
            self.unsettled.fetch_add(1, Ordering::AcqRel);
            pending.deliveries > MAX_PENDING_DELIVERIES
        };
        if backlog {
            self.settle_pending();
        } else {
            self.schedule();
        }
    }

    /// Queues every broadcast made so far for its recipients (waiting for those another thread
    /// is queueing), so that what the caller sends next comes after them. Must not be called
    /// while holding a namespace's socket map or a socket's restore lock, which a round takes.
    #[inline]
    pub(crate) fn settle(self: &Arc<Self>) {
        if self.unsettled.load(Ordering::Acquire) == 0 {
            return;
        }
        self.settle_pending();
    }

    /// Makes sure pending broadcasts get queued: by a task that runs once the current one
    /// yields, or now when there is no runtime to defer to.
    fn schedule(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.settle_pending();
            return;
        };
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            let round = RoundOnDrop(Arc::clone(self));
            runtime.spawn(async move {
                // Queues when the task ends, or when the runtime drops it unpolled (it is
                // shutting down): a broadcast is never left pending.
                let _round = round;
                // Let the tasks that are ready run first: the broadcasts they make join this
                // round.
                tokio::task::yield_now().await;
            });
        }
    }

    fn settle_pending(self: &Arc<Self>) {
        {
            let _settling = self.settling.lock();
            while self.queue_pending() {}
        }
        self.reschedule();
    }

    /// Queues what is pending; false when nothing was.
    fn queue_pending(&self) -> bool {
        let taken = {
            let mut pending = self.pending.lock();
            pending.deliveries = 0;
            std::mem::take(&mut pending.broadcasts)
        };
        if taken.is_empty() {
            return false;
        }
        let count = taken.len();
        queue_all(taken);
        self.unsettled.fetch_sub(count, Ordering::AcqRel);
        true
    }

    /// After a round: broadcasts made while it ran, whose task found the round in progress and
    /// left them to it, get a task of their own.
    fn reschedule(self: &Arc<Self>) {
        if !self.pending.lock().broadcasts.is_empty() {
            self.schedule();
        }
    }
}

/// A task's round: what is pending when it runs. It never waits for another thread's round
/// (which would take a second worker off its work); that thread schedules again if more came
/// meanwhile.
struct RoundOnDrop(Arc<Fanout>);

impl Drop for RoundOnDrop {
    fn drop(&mut self) {
        let fanout = &self.0;
        // Broadcasts made from now on schedule another task; those made before are taken
        // below, or by the round in progress.
        fanout.scheduled.store(false, Ordering::Release);
        if let Some(settling) = fanout.settling.try_lock() {
            fanout.queue_pending();
            drop(settling);
            fanout.reschedule();
        }
    }
}

/// Queues `broadcasts` in order; consecutive ones to the same recipients go together.
fn queue_all(broadcasts: Vec<Broadcast>) {
    let mut rest = broadcasts.into_iter().peekable();
    while let Some(first) = rest.next() {
        let mut group = vec![first];
        while let Some(next) = rest.next_if(|b| group[0].same_recipients(b)) {
            group.push(next);
        }
        queue_group(group);
    }
}

/// Recipients one worker writes at a time: a group to more is shared with the other workers.
const CHUNK: usize = 128;

fn queue_group(group: Vec<Broadcast>) {
    let Some(first) = group.first() else {
        return;
    };
    let messages = group
        .iter()
        .flat_map(|b| b.part.messages.iter().cloned())
        .collect();
    let ns = Arc::clone(&first.ns);
    let sids = Arc::clone(&first.sids);
    let volatile = first.volatile;
    let job = Arc::new(GroupJob {
        chunks: sids.len().div_ceil(CHUNK),
        ns,
        sids,
        round: Round::new(messages),
        parts: group.into_iter().map(|b| b.part).collect(),
        volatile,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
    });
    // The other workers write a share each, so that the last recipient waits for a share of
    // the writes, not for all of them.
    if let Ok(runtime) = tokio::runtime::Handle::try_current()
        && job.chunks > 1
    {
        let helpers = runtime
            .metrics()
            .num_workers()
            .saturating_sub(1)
            .min(job.chunks - 1);
        // One more task than helpers: a task spawned from a worker goes to that worker's LIFO
        // slot, which no other worker may take and which runs only once this task is done
        // (then finding nothing left); the next spawn moves it to the queue other workers steal
        // from, and wakes one of them.
        if helpers > 0 {
            for _ in 0..=helpers {
                let job = Arc::clone(&job);
                runtime.spawn(async move { job.work() });
            }
        }
    }
    job.work();
    // Every chunk is taken; those another worker took are being written (nothing in `work`
    // waits), and the group is queued once they are, before the next group or a sender that
    // settles goes on.
    while job.done.load(Ordering::Acquire) < job.chunks {
        std::thread::yield_now();
    }
}

/// The recipients of a group, written chunk by chunk by whichever worker takes each.
struct GroupJob {
    ns: Arc<Namespace>,
    sids: Arc<[Sid]>,
    round: Round,
    /// The round's broadcasts one by one, for recipients being restored.
    parts: Vec<Part>,
    volatile: bool,
    chunks: usize,
    /// The next chunk to take.
    next: AtomicUsize,
    /// Chunks written.
    done: AtomicUsize,
}

impl GroupJob {
    /// Writes chunks until none is left to take. A helper that starts late finds none.
    fn work(&self) {
        loop {
            let chunk = self.next.fetch_add(1, Ordering::AcqRel);
            if chunk >= self.chunks {
                return;
            }
            let start = chunk * CHUNK;
            let end = (start + CHUNK).min(self.sids.len());
            self.ns.queue_round(
                &self.sids[start..end],
                &self.round,
                &self.parts,
                self.volatile,
            );
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SocketIo;
    use crate::adapter::BroadcastFlags;
    use ignis_proto::socketio::Packet;

    fn pending_deliveries(io: &SocketIo) -> usize {
        io.main_namespace().fanout().pending.lock().deliveries
    }

    #[tokio::test]
    async fn broadcasts_made_faster_than_rounds_run_wait_for_them_instead_of_piling_up() {
        let io = SocketIo::builder().build();
        let ns = io.main_namespace();
        // Recipients that are not connected: rounds skip them, and cost nothing.
        let sids: Vec<Sid> = (0..10_000).map(|_| Sid::generate()).collect();
        let packet = Packet::event("/", "tick", vec![], None);
        // This task never yields, so the round its first broadcast scheduled never runs: only
        // the bound keeps the pending broadcasts from growing to a million deliveries.
        for _ in 0..100 {
            ns.deliver(packet.clone(), &sids, &BroadcastFlags::default());
            let pending = pending_deliveries(&io);
            assert!(
                pending <= MAX_PENDING_DELIVERIES,
                "{pending} deliveries pending"
            );
        }
        assert!(pending_deliveries(&io) > 0);
        ns.fanout().settle();
        assert_eq!(pending_deliveries(&io), 0);
    }

    #[tokio::test]
    async fn servers_in_one_process_neither_count_nor_settle_each_others_broadcasts() {
        let a = SocketIo::builder().build();
        let b = SocketIo::builder().build();
        let (a_ns, b_ns) = (a.main_namespace(), b.main_namespace());
        assert!(!Arc::ptr_eq(a_ns.fanout(), b_ns.fanout()));
        let sids: Vec<Sid> = (0..10_000).map(|_| Sid::generate()).collect();
        let packet = Packet::event("/", "tick", vec![], None);
        // Server A just below its bound: this task never yields, so nothing is queued yet.
        let below = MAX_PENDING_DELIVERIES / sids.len();
        for _ in 0..below {
            a_ns.deliver(packet.clone(), &sids, &BroadcastFlags::default());
        }
        assert_eq!(pending_deliveries(&a), below * sids.len());
        // B's broadcasts count against B's bound only, and B's settle leaves A's alone: with
        // one fan-out for the process, this broadcast would have gone past the bound and
        // queued A's broadcasts, as would B's settle.
        b_ns.deliver(packet.clone(), &sids, &BroadcastFlags::default());
        assert_eq!(pending_deliveries(&b), sids.len());
        b_ns.fanout().settle();
        assert_eq!(pending_deliveries(&b), 0);
        assert_eq!(pending_deliveries(&a), below * sids.len());
        assert_eq!(a_ns.fanout().unsettled.load(Ordering::Acquire), below);
        a_ns.fanout().settle();
        assert_eq!(pending_deliveries(&a), 0);
        assert_eq!(a_ns.fanout().unsettled.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_round_dropped_unpolled_still_queues_its_broadcasts() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let io = SocketIo::builder().build();
        let ns = io.main_namespace();
        let sids: Vec<Sid> = (0..10).map(|_| Sid::generate()).collect();
        runtime.block_on(async {
            // Scheduled on this runtime, and never run: the runtime stops at once.
            ns.deliver(
                Packet::event("/", "tick", vec![], None),
                &sids,
                &BroadcastFlags::default(),
            );
        });
        assert_eq!(pending_deliveries(&io), sids.len());
        drop(runtime);
        assert_eq!(pending_deliveries(&io), 0);
        assert_eq!(ns.fanout().unsettled.load(Ordering::Acquire), 0);
    }
}
