//! The batched flush of broadcasts: the sessions a broadcast queued to are written once the
//! broadcasting task yields ([`DeliveryBatch`]), so that broadcasts that come faster than the
//! writes share one write per connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

/// A session whose queue a scheduled flush writes out.
pub(crate) trait Flush: Send + Sync {
    fn flush_queued(&self);
}

/// The recipients of one broadcast whose messages [`Socket::send_shared_in`] queued. Dropping
/// the batch schedules their flush, which runs once the broadcasting task yields; flushes still
/// pending then take the queued messages of later broadcasts along.
///
/// [`Socket::send_shared_in`]: crate::session::Socket::send_shared_in
#[derive(Default)]
pub struct DeliveryBatch {
    pub(super) sessions: Vec<Arc<dyn Flush>>,
}

impl DeliveryBatch {
    /// A batch with nothing queued yet.
    pub fn new() -> DeliveryBatch {
        DeliveryBatch::default()
    }
}

impl std::fmt::Debug for DeliveryBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryBatch")
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Drop for DeliveryBatch {
    fn drop(&mut self) {
        if self.sessions.is_empty() {
            return;
        }
        let sessions = std::mem::take(&mut self.sessions);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to defer to: write now.
            for session in sessions {
                session.flush_queued();
            }
            return;
        };
        PENDING_FLUSH.lock().extend(sessions);
        if !FLUSH_SCHEDULED.swap(true, Ordering::AcqRel) {
            // Whatever the guard still holds is written when it drops: if the runtime drops the
            // task (it is shutting down), before or during the flush. A flush that never ran
            // would leave its sessions waiting for it forever.
            let mut flush = PendingFlush { taken: None };
            runtime.spawn(async move {
                // Let the tasks that are ready run first: broadcasts they make meanwhile join
                // this flush instead of costing writes of their own.
                tokio::task::yield_now().await;
                let sessions = flush.take();
                // Past the first chunk, each chunk is a task of its own: a worker with nothing
                // to do takes one, so a broadcast to many sessions is written by every core at
                // once (the last recipient waits for a share of the writes, not all of them),
                // and a long flush does not hold up the requests that make the next broadcasts.
                while sessions.len() > FLUSH_CHUNK {
                    let chunk = FlushChunk(sessions.split_off(sessions.len() - FLUSH_CHUNK));
                    tokio::spawn(async move { drop(chunk) });
                }
                for session in sessions.drain(..) {
                    session.flush_queued();
                }
            });
        }
    }
}

/// How many sessions one task of a flush writes.
const FLUSH_CHUNK: usize = 128;

/// Sessions of a flush written by a task of their own: when the task runs, or, should the
/// runtime drop the task unpolled (it is shutting down), then.
struct FlushChunk(Vec<Arc<dyn Flush>>);

impl Drop for FlushChunk {
    fn drop(&mut self) {
        for session in self.0.drain(..) {
            session.flush_queued();
        }
    }
}

/// The scheduled flush's sessions; whatever it still holds is written when it drops.
struct PendingFlush {
    /// The sessions taken from [`PENDING_FLUSH`], once the flush started.
    taken: Option<Vec<Arc<dyn Flush>>>,
}

impl PendingFlush {
    /// Takes the sessions waiting for this flush; broadcasts made from now on schedule another.
    fn take(&mut self) -> &mut Vec<Arc<dyn Flush>> {
        FLUSH_SCHEDULED.store(false, Ordering::Release);
        let sessions = std::mem::take(&mut *PENDING_FLUSH.lock());
        self.taken.insert(sessions)
    }
}

impl Drop for PendingFlush {
    fn drop(&mut self) {
        let sessions = match self.taken.take() {
            Some(sessions) => sessions,
            None => {
                FLUSH_SCHEDULED.store(false, Ordering::Release);
                std::mem::take(&mut *PENDING_FLUSH.lock())
            }
        };
        for session in sessions {
            session.flush_queued();
        }
    }
}

/// Sessions waiting for the scheduled flush, across every engine of the process.
static PENDING_FLUSH: Mutex<Vec<Arc<dyn Flush>>> = Mutex::new(Vec::new());
static FLUSH_SCHEDULED: AtomicBool = AtomicBool::new(false);
