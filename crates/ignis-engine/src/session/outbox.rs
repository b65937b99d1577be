//! A session's bounded outbound queue ([`Outbox`], [`QueueLimits`]) and the per-thread pool of
//! the buffers that queues and outputs are made of ([`Spares`]).

use std::collections::VecDeque;
use std::task::Waker;

use crate::session::message::Outgoing;
use crate::session::pool::{SpareBuffers, Spares, replace_unallocated};
use crate::session::sink::DirectSink;

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
/// task yields (see [`DeliveryBatch`]): broadcasts that come faster than the flushes then share
/// one write per connection, as an event loop would coalesce them.
///
/// [`DeliveryBatch`]: crate::session::DeliveryBatch
pub(crate) struct Outbox {
    pub(super) queue: VecDeque<Outgoing>,
    /// Messages in the queue beyond one per item: the frames of a [`Round`] are one item that
    /// counts as many messages as it carries, for the bound on what a client may leave unread.
    ///
    /// [`Round`]: crate::session::Round
    pub(super) extra: u32,
    /// Bytes the queue holds (see [`Outgoing::size`]).
    pub(super) bytes: u32,
    /// Bytes the WebSocket task held in its output when it last looked (it took the queue, or
    /// went to sleep): what the session holds is this and `bytes`.
    pub(super) held: u32,
    /// The last refusal was for the byte bound (not the message bound).
    pub(super) full_by_bytes: bool,
    /// Where senders may write directly; set while a WebSocket carries the session.
    pub(super) sink: Option<DirectSink>,
    /// The WebSocket task is running and looks at the queue before it sleeps.
    pub(super) task_awake: bool,
    /// The WebSocket task holds frames the socket did not take yet.
    pub(super) output_pending: bool,
    /// A flush of this queue is scheduled (see [`DeliveryBatch`]).
    ///
    /// [`DeliveryBatch`]: crate::session::DeliveryBatch
    pub(super) flush_scheduled: bool,
    /// The WebSocket task's waker, for when it sleeps (`task_awake` false). Kept while it runs
    /// too, so that going to sleep again costs no clone; taken by whoever wakes it.
    pub(super) waker: Option<Waker>,
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
        self.sink.as_ref().is_some_and(DirectSink::is_direct)
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

thread_local! {
    pub(crate) static SPARE_QUEUES: Spares<VecDeque<Outgoing>> = const { Spares::new() };
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
