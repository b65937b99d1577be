//! A session's bounded outbound queue ([`Outbox`], [`QueueLimits`]) and the per-thread pool of
//! the buffers that queues and outputs are made of ([`Spares`]).

use std::collections::VecDeque;
use std::task::Waker;

use crate::session::Outgoing;

/// A session's outbound queue and who may write to the client.
///
/// Once a WebSocket carries the session, a sender writes its frames to the socket itself when
/// nothing is ahead of them: nothing queued, no output held by the connection's task, and that
/// task asleep. This spares the task a wake-up, a poll and often a hop to the other CPU for
/// every message of a quiet connection. When the task is awake (it is reading, and the messages
/// its handlers send should leave in one write) or the client is not keeping up, senders queue,
/// and the task takes the queue before it sleeps: it needs no wake-up then either.
///
/// A broadcast queues instead, and leaves the writing to a flush that runs once the broadcasting
/// task yields (see [`DeliveryBatch`](crate::session::DeliveryBatch)): broadcasts that come faster than the flushes then share
/// one write per connection, as an event loop would coalesce them.
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Outgoing>,
    /// Messages in the queue beyond one per item: the frames of a [`Round`](crate::session::Round) are one item that
    /// counts as many messages as it carries, for the bound on what a client may leave unread.
    pub(super) extra: u32,
    /// Bytes the queue holds (see [`Outgoing::size`]).
    pub(super) bytes: u32,
    /// Bytes the WebSocket task held in its output when it last looked (it took the queue, or
    /// went to sleep): what the session holds is this and `bytes`.
    pub(crate) held: u32,
    /// The last refusal was for the byte bound (not the message bound).
    pub(super) full_by_bytes: bool,
    /// Where senders may write directly; set while a WebSocket carries the session.
    pub(crate) sink: Option<crate::session::frame::DirectSink>,
    /// The WebSocket task is running and looks at the queue before it sleeps.
    pub(crate) task_awake: bool,
    /// The WebSocket task holds frames the socket did not take yet.
    pub(crate) output_pending: bool,
    /// A flush of this queue is scheduled (see [`DeliveryBatch`](crate::session::DeliveryBatch)).
    pub(super) flush_scheduled: bool,
    /// The WebSocket task's waker, for when it sleeps (`task_awake` false). Kept while it runs
    /// too, so that going to sleep again costs no clone; taken by whoever wakes it.
    pub(crate) waker: Option<Waker>,
}

impl Outbox {
    pub(super) fn new() -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            extra: 0,
            bytes: 0,
            held: 0,
            full_by_bytes: false,
            sink: None,
            task_awake: false,
            output_pending: false,
            flush_scheduled: false,
            waker: None,
        }
    }

    /// The WebSocket task's waker, to wake it with once the lock is released, when the task
    /// sleeps. An awake task needs none: it looks at the queue and at the session's state under
    /// this lock before it sleeps (see `Connection::fall_asleep`).
    pub(super) fn sleeping_task(&mut self) -> Option<Waker> {
        if self.task_awake {
            None
        } else {
            self.waker.take()
        }
    }

    /// Gives an empty queue one of this thread's spare buffers, so that queueing does not
    /// allocate; the WebSocket task gives it back once it took the queue.
    pub(super) fn spare_queue(&mut self) {
        if self.queue.capacity() == 0 {
            replace_unallocated(&mut self.queue, SPARE_QUEUES.take());
        }
    }

    /// How many messages the queue holds.
    pub(super) fn queued(&self) -> usize {
        self.queue.len() + self.extra as usize
    }

    /// Takes the whole queue.
    pub(super) fn take_queue(&mut self) -> VecDeque<Outgoing> {
        self.extra = 0;
        self.bytes = 0;
        std::mem::take(&mut self.queue)
    }

    /// Counts `n` more bytes in the queue.
    pub(super) fn add_bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(to_u32(n));
    }

    /// Whether `count` more messages of `bytes` bytes in all would pass a bound of `limits`
    /// (noting which). A session that holds nothing takes one message whatever its size: the
    /// byte bound is for what a client leaves unread, not for what the server sends.
    pub(super) fn over(&mut self, count: usize, bytes: usize, limits: &QueueLimits) -> bool {
        if self.queued() + count > limits.messages as usize {
            self.full_by_bytes = false;
            return true;
        }
        let holding = self.bytes as usize + self.held as usize;
        if holding > 0 && holding + bytes > limits.bytes as usize {
            self.full_by_bytes = true;
            return true;
        }
        false
    }

    /// Whether a sender may write to the socket now, ahead of nobody.
    pub(super) fn writable_now(&self) -> bool {
        self.sink.is_some()
            && !self.task_awake
            && !self.output_pending
            && !self.flush_scheduled
            && self.queue.is_empty()
    }

    /// Whether a sender that queued must wake the task that writes: not when a WebSocket task
    /// will look at the queue anyway.
    pub(super) fn needs_wake(&self) -> bool {
        self.sink.is_none() || !(self.task_awake || self.output_pending || self.flush_scheduled)
    }

    /// Whether a volatile message is dropped: when the client has not taken what came before.
    pub(super) fn congested(&self) -> bool {
        self.output_pending || (self.sink.is_none() && !self.queue.is_empty())
    }
}

/// Buffers that fell empty, kept per thread for the next one that needs a buffer of their kind.
///
/// The queue of every message to a connection goes through one: the senders' queue, then the
/// WebSocket task's output; and so does the text of every message a handler sends to one
/// session ([`TextMessage::buffer`](crate::session::TextMessage::buffer)). A connection keeps none of them once idle (idle memory per
/// connection is what bounds how many the server holds), and allocating each anew for every
/// message costs an allocation and a free apiece; a few buffers per thread serve every
/// connection instead.
pub(crate) struct Spares<B>(std::cell::RefCell<Vec<B>>);

/// How many buffers a thread keeps per kind: more come from bursts, which allocate anyway.
const SPARES: usize = 4;

/// A buffer [`Spares`] can keep.
pub(crate) trait Reusable: Default {
    /// The largest capacity worth keeping: larger buffers come from rare large messages.
    const MAX_KEPT: usize;
    fn capacity(&self) -> usize;
    /// Readies the buffer for its next user, before it is kept.
    fn reset(&mut self);
}

impl<T> Reusable for VecDeque<T> {
    const MAX_KEPT: usize = 64;
    fn capacity(&self) -> usize {
        VecDeque::capacity(self)
    }
    fn reset(&mut self) {
        // Most queues come back empty: `clear` would still walk their (empty) contents.
        if !self.is_empty() {
            self.clear();
        }
    }
}

impl Reusable for Vec<u8> {
    const MAX_KEPT: usize = 2048;
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
    fn reset(&mut self) {
        // Bytes have nothing to drop: the next user sets the length it needs (see
        // `TextMessage::buffer`).
    }
}

impl<B> Spares<B> {
    pub(crate) const fn new() -> Spares<B> {
        Spares(std::cell::RefCell::new(Vec::new()))
    }
}

/// Spare buffers of one kind, per thread.
pub(crate) type SpareKey<B> = std::thread::LocalKey<Spares<B>>;

pub(crate) trait SpareBuffers<B> {
    /// An empty buffer, allocated if the thread has one to spare.
    fn take(&'static self) -> B;
    /// Keeps `buf`'s allocation for later, if it is small and the thread does not have enough.
    fn give(&'static self, buf: B);
}

impl<B: Reusable> SpareBuffers<B> for SpareKey<B> {
    #[inline]
    fn take(&'static self) -> B {
        self.try_with(|spares| spares.0.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    #[inline]
    fn give(&'static self, mut buf: B) {
        let capacity = buf.capacity();
        if capacity == 0 {
            forget_unallocated(buf);
            return;
        }
        if capacity > B::MAX_KEPT {
            return;
        }
        buf.reset();
        let _ = self.try_with(move |spares| {
            if let Ok(mut spares) = spares.0.try_borrow_mut()
                && spares.len() < SPARES
            {
                spares.push(buf);
            }
        });
    }
}

/// Lets go of a buffer that holds no allocation. Dropping it would free nothing, but a queue's
/// destructor is an out-of-line call that walks its (empty) contents, which costs more than the
/// rest of taking or giving a spare buffer.
#[inline]
fn forget_unallocated<B: Reusable>(buf: B) {
    debug_assert_eq!(buf.capacity(), 0);
    std::mem::forget(buf);
}

/// Puts `new` in `slot`, which holds no allocation (see [`forget_unallocated`]).
#[inline]
pub(crate) fn replace_unallocated<B: Reusable>(slot: &mut B, new: B) {
    forget_unallocated(std::mem::replace(slot, new));
}

thread_local! {
    pub(crate) static SPARE_QUEUES: Spares<VecDeque<Outgoing>> = const { Spares::new() };
    /// Buffers of [`TextMessage`]s whose frames were written.
    pub(super) static SPARE_TEXTS: Spares<Vec<u8>> = const { Spares::new() };
}

/// A byte count as the queue keeps it: at most 4 GiB, where any bound lies below.
pub(super) fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The bounds of a session's outbound queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// Messages queued (a round's frames count as the messages they carry).
    pub(crate) messages: u32,
    /// Bytes queued, and held by the WebSocket task's output.
    pub(crate) bytes: u32,
}

impl QueueLimits {
    pub(crate) fn new(messages: usize, bytes: usize) -> QueueLimits {
        QueueLimits {
            messages: to_u32(messages),
            bytes: to_u32(bytes),
        }
    }
}
