//! The Engine.IO session, apart from the transports that carry it: its state, why it closed,
//! its outbound queue, the messages it sends, and what a packet from the client does to it.
//!
//! A [`Socket`] is shared between the request handlers (polling GET/POST), the task that drives
//! the session (the polling heartbeat task, or the WebSocket connection of
//! [`crate::transport::driver`]) and the layer above, which queues messages from anywhere. Every
//! field is either atomic or behind a short lock that is never held across an await.
//!
//! # The order of calls
//! 1. Opening: [`crate::engine::open_session`] makes the socket (`Socket::new`), queues the open
//!    packet and calls the handler's `on_open`.
//! 2. A transport takes it. Polling: each GET and POST first claims its slot
//!    (`claim_request`); a GET waits on `writable`, the heartbeat task on `driver_woken`. A
//!    WebSocket: its task marks itself awake (`set_task_awake`), probes an upgrade
//!    (`set_upgrading`, then `set_transport`) or starts at once, and lets senders write to its
//!    socket (`attach_sink`); each time it is out of work it offers to sleep (`task_sleeps`).
//! 3. While open, in any order and from anywhere:
//!    - the layer above sends: [`Socket::send`], [`Socket::send_text`],
//!      [`Socket::send_shared`] / [`Socket::send_shared_in`] (with a [`DeliveryBatch`]),
//!      [`Socket::send_round`]; the engine queues control packets with `push_packet`;
//!    - the transport takes what is queued (`take_outbox`, `take_outbox_for_output`) and
//!      applies each packet it reads with [`packet::handle_packet`], which records pongs and
//!      hands messages to the handler;
//!    - the heartbeat reads `heartbeat` (the last pong, a ping awaiting its pong, on the
//!      `age_ms` clock) and `is_established` to pick its next deadline
//!      ([`crate::engine::Deadline`]), and marks `ping_sent`.
//! 4. Closing: anyone may ask ([`Socket::close`], `request_close`); the driving task sees
//!    `pending_close`, calls `begin_closing`, delivers what the reason allows
//!    ([`CloseReason::delivers_queued`]), and ends the session with
//!    [`crate::engine::Inner::finalize`], which calls `mark_closed` (once) and the handler's
//!    `on_close`. A WebSocket task that ends first takes its sink back (`detach_sink`).
//!
//! Modules, each depending only on those listed before it: [`pool`] the per-thread buffer pool,
//! [`frame`] the WebSocket framing of messages and packets, [`message`] the shared message types
//! and the items of the queue, [`sink`] the senders' direct write to a connection, [`outbox`]
//! the bounded queue, [`flush`] the batched flush of broadcasts; this module the session itself,
//! and [`packet`] what one packet from the client does to it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::Waker;
use std::time::Instant;

use ignis_proto::engineio::{Data, Packet};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::error::SendError;
use crate::session::flush::Flush;
use crate::session::message::{Frame, Outgoing};
use crate::session::outbox::{Outbox, QueueLimits, SPARE_QUEUES, to_u32};
use crate::session::pool::SpareBuffers;
use crate::session::sink::DirectSink;
use crate::sid::Sid;

pub(crate) mod flush;
pub(crate) mod frame;
pub(crate) mod message;
pub(crate) mod outbox;
pub(crate) mod packet;
pub(crate) mod pool;
pub(crate) mod sink;

pub use flush::DeliveryBatch;
pub use message::{Round, SharedMessage, TEXT_HEADROOM, TextMessage};

/// Why a session ended. The strings are the reference's, which the Socket.IO layer passes on as
/// disconnect reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the connection or its transport went away.
    TransportClose,
    /// The transport failed (a protocol violation, an overlapping request, a body too large).
    TransportError,
    /// The client did not answer a ping in time.
    PingTimeout,
    /// The client sent something that is not Engine.IO.
    ParseError,
    /// The server closed the session.
    ForcedClose,
    /// The server is shutting down.
    ServerShuttingDown,
    /// The client did not read fast enough and its outbound queue filled up.
    SlowClient,
    /// The upper layer's handshake did not complete in time (Socket.IO's `connectTimeout`).
    EstablishTimeout,
}

impl CloseReason {
    /// Every reason, in declaration order (a new reason goes here too, or it is not counted).
    pub const ALL: [CloseReason; 8] = [
        CloseReason::TransportClose,
        CloseReason::TransportError,
        CloseReason::PingTimeout,
        CloseReason::ParseError,
        CloseReason::ForcedClose,
        CloseReason::ServerShuttingDown,
        CloseReason::SlowClient,
        CloseReason::EstablishTimeout,
    ];

    /// The position of this reason in [`CloseReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short name of its own for each reason (`as_str` gives two the same string, as the
    /// reference does), fit for a metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport_close",
            CloseReason::TransportError => "transport_error",
            CloseReason::PingTimeout => "ping_timeout",
            CloseReason::ParseError => "parse_error",
            CloseReason::ForcedClose => "forced_close",
            CloseReason::ServerShuttingDown => "server_shutting_down",
            CloseReason::SlowClient => "slow_client",
            CloseReason::EstablishTimeout => "establish_timeout",
        }
    }

    /// The reason as the reference words it (`"transport close"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::TransportClose => "transport close",
            CloseReason::TransportError => "transport error",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ParseError => "parse error",
            CloseReason::ForcedClose => "forced close",
            CloseReason::ServerShuttingDown => "server shutting down",
            CloseReason::SlowClient => "outbound queue full",
            CloseReason::EstablishTimeout => "forced close",
        }
    }

    /// Whether what was queued before the close still goes out first: only when the server
    /// closes in good order. A failed session (a client too slow, a timeout, a broken stream)
    /// ends at once, whatever it still held: waiting for a client that does not read would keep
    /// it, and all it holds, forever.
    pub(crate) fn delivers_queued(self) -> bool {
        matches!(
            self,
            CloseReason::ForcedClose | CloseReason::ServerShuttingDown
        )
    }

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<CloseReason> {
        use CloseReason::*;
        if code == SLOW_CLIENT_BY_BYTES {
            return Some(SlowClient);
        }
        [
            TransportClose,
            TransportError,
            PingTimeout,
            ParseError,
            ForcedClose,
            ServerShuttingDown,
            SlowClient,
            EstablishTimeout,
        ]
        .get(usize::from(code).checked_sub(1)?)
        .copied()
    }
}

/// The close code of [`CloseReason::SlowClient`] when the byte bound was passed rather than the
/// message bound: the same reason for the layer above, told apart for the counters.
const SLOW_CLIENT_BY_BYTES: u8 = 100;

/// The transport a session currently uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// A polling request in flight (see [`Socket::claim_request`]): the client may go away while a
/// GET waits, which drops the request's future and with it the claim.
pub(crate) struct RequestClaim<'a>(&'a AtomicBool);

impl Drop for RequestClaim<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

/// One Engine.IO session. `D` is the state the layer above keeps for it.
pub struct Socket<D> {
    id: Sid,
    /// State of the layer above (for Socket.IO: the packet decoder and the joined namespaces).
    pub data: D,
    outbox: Mutex<Outbox>,
    /// Wakes whoever writes to the client: a pending polling GET or the WebSocket task.
    writable: Notify,
    /// Wakes the task that drives the session (close requests, pongs, transport changes).
    driver: Notify,
    state: AtomicU8,
    /// A close the driver has still to carry out (a `CloseReason` code, 0 for none).
    close_request: AtomicU8,
    transport: AtomicU8,
    upgrading: AtomicBool,
    established: AtomicBool,
    awaiting_pong: AtomicBool,
    /// Milliseconds since `created` of the last pong (or of the opening).
    last_pong_ms: AtomicU64,
    created: Instant,
    limits: QueueLimits,
    /// Set while a polling GET / POST is being served, to refuse overlapping ones.
    get_pending: AtomicBool,
    post_pending: AtomicBool,
}

impl<D> Socket<D> {
    pub(crate) fn new(id: Sid, data: D, transport: TransportKind, limits: QueueLimits) -> Self {
        Socket {
            id,
            data,
            outbox: Mutex::new(Outbox::new()),
            writable: Notify::new(),
            driver: Notify::new(),
            state: AtomicU8::new(OPEN),
            close_request: AtomicU8::new(0),
            transport: AtomicU8::new(transport as u8),
            upgrading: AtomicBool::new(false),
            established: AtomicBool::new(false),
            awaiting_pong: AtomicBool::new(false),
            last_pong_ms: AtomicU64::new(0),
            created: Instant::now(),
            limits,
            get_pending: AtomicBool::new(false),
            post_pending: AtomicBool::new(false),
        }
    }

    /// The session id (`sid`).
    pub fn id(&self) -> Sid {
        self.id
    }

    /// The transport the session uses now.
    pub fn transport(&self) -> TransportKind {
        if self.transport.load(Ordering::Acquire) == TransportKind::WebSocket as u8 {
            TransportKind::WebSocket
        } else {
            TransportKind::Polling
        }
    }

    pub(crate) fn set_transport(&self, kind: TransportKind) {
        self.transport.store(kind as u8, Ordering::Release);
    }

    /// Whether the session is still open (not closing nor closed).
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// Tells the engine the upper layer's handshake completed (cancels the establish timeout).
    pub fn mark_established(&self) {
        self.established.store(true, Ordering::Release);
    }

    pub(crate) fn is_established(&self) -> bool {
        self.established.load(Ordering::Acquire)
    }

    /// Queues a text or binary message.
    pub fn send(&self, data: Data) -> Result<(), SendError> {
        self.push(
            std::iter::once(Outgoing::Packet(Packet::Message(data))),
            false,
        )
    }

    /// Queues messages that must reach the client back to back (a Socket.IO packet and its
    /// binary attachments). `volatile` messages are dropped instead of queued when the client
    /// has not yet taken what was queued before.
    pub fn send_shared(
        &self,
        messages: &[Arc<SharedMessage>],
        volatile: bool,
    ) -> Result<(), SendError> {
        self.push(
            messages.iter().map(|m| Outgoing::Shared(Arc::clone(m))),
            volatile,
        )
    }

    /// Like [`Socket::send_shared`], for one recipient of a broadcast: the messages are queued,
    /// and written when `batch` is dropped and the broadcasting task yields, together with
    /// whatever other broadcasts queued for this session meanwhile.
    pub fn send_shared_in(
        self: &Arc<Self>,
        messages: &[Arc<SharedMessage>],
        volatile: bool,
        batch: &mut DeliveryBatch,
    ) -> Result<(), SendError>
    where
        D: Send + Sync + 'static,
    {
        self.enqueue(volatile, |outbox| {
            let bytes = messages.iter().map(|m| m.data.len()).sum();
            if outbox.over(messages.len(), bytes, &self.limits) {
                return Err(SendError::QueueFull);
            }
            outbox.add_bytes(bytes);
            let schedule = outbox.writable_now();
            outbox.spare_queue();
            outbox
                .queue
                .extend(messages.iter().map(|m| Outgoing::Shared(Arc::clone(m))));
            if schedule {
                outbox.flush_scheduled = true;
                batch.sessions.push(Arc::clone(self) as Arc<dyn Flush>);
                return Ok(false);
            }
            Ok(outbox.needs_wake())
        })
        .map(drop)
    }

    pub(crate) fn push_packet(&self, packet: Packet) -> Result<(), SendError> {
        self.push(std::iter::once(Outgoing::Packet(packet)), false)
    }

    fn push(
        &self,
        items: impl ExactSizeIterator<Item = Outgoing>,
        volatile: bool,
    ) -> Result<(), SendError> {
        self.enqueue(volatile, |outbox| self.admit(outbox, items, volatile))
            .map(drop)
    }

    /// Writes `items` to the socket when the session is quiet, else queues them; `Ok(true)`
    /// when the writer must be woken.
    fn admit(
        &self,
        outbox: &mut Outbox,
        items: impl ExactSizeIterator<Item = Outgoing>,
        volatile: bool,
    ) -> Result<bool, SendError> {
        if outbox.writable_now()
            && let Some(sink) = &outbox.sink
        {
            let rest = sink.write(items, volatile);
            if rest.is_empty() {
                return Ok(false);
            }
            // The socket took part of it: the task writes the rest when it can. The client is
            // behind from now on (volatile messages are dropped) until the task, awake, has
            // written the rest and says otherwise as it goes to sleep.
            outbox.add_bytes(rest.iter().map(Frame::len).sum());
            outbox.queue.extend(rest.into_iter().map(Outgoing::Frame));
            outbox.output_pending = true;
            return Ok(true);
        }
        let count = items.len();
        if outbox.over(count, 0, &self.limits) {
            return Err(SendError::QueueFull);
        }
        outbox.spare_queue();
        let before = outbox.queue.len();
        // Measured as they are queued: the items come one by one (a second pass over the
        // queue's tail cost more than the rest of the bound).
        let mut bytes = 0;
        outbox
            .queue
            .extend(items.inspect(|item| bytes += item.size()));
        if outbox.over(0, bytes, &self.limits) {
            outbox.queue.truncate(before);
            return Err(SendError::QueueFull);
        }
        outbox.add_bytes(bytes);
        Ok(outbox.needs_wake())
    }

    /// Queues a text message for this session alone: on a WebSocket without compression it
    /// travels as its bare frame, with nothing shared to count or to frame later.
    pub fn send_text(&self, text: TextMessage) -> Result<(), SendError> {
        let mut text = Some(text);
        self.enqueue(false, |outbox| {
            let item = text.take().map(|text| match &outbox.sink {
                Some(sink) if !sink.compresses() => Outgoing::Frame(text.into_owned_frame()),
                _ => Outgoing::Shared(text.into_shared(true)),
            });
            self.admit(outbox, item.into_iter(), false)
        })
        .map(drop)
    }

    /// Reads the lines of this session that [`Socket::send_round`] starts with, so that a
    /// fan-out warming several sessions before writing to any of them waits for their memory
    /// once, together, instead of once per session between two writes.
    #[inline]
    pub fn warm(&self) {
        std::hint::black_box((self.is_open(), self.outbox.is_locked()));
    }

    /// Queues the messages of `round` for this session, or writes them at once when the session
    /// is quiet: the broadcasting side of a fan-out that writes every recipient itself, once per
    /// round. `volatile` messages are dropped when the client has not taken what came before:
    /// then the answer is `Ok(false)`, for a caller that counts them.
    pub fn send_round(&self, round: &Round, volatile: bool) -> Result<bool, SendError> {
        if round.is_empty() {
            return Ok(true);
        }
        self.enqueue(volatile, |outbox| {
            let as_frames = outbox
                .sink
                .as_ref()
                .is_some_and(|sink| !(round.compressible && sink.compresses()));
            if as_frames
                && outbox.writable_now()
                && let Some(sink) = &outbox.sink
            {
                let Some(rest) = sink.write_bytes(round.frames(), volatile) else {
                    return Ok(false);
                };
                // Behind from now on, as after a sender's partial write (see `Socket::admit`).
                outbox.add_bytes(rest.len());
                outbox.queue.push_back(Outgoing::Frame(rest));
                outbox.output_pending = true;
                return Ok(true);
            }
            let bytes = if as_frames {
                round.frames().len()
            } else {
                round.messages.iter().map(|m| m.data.len()).sum()
            };
            if outbox.over(round.len(), bytes, &self.limits) {
                return Err(SendError::QueueFull);
            }
            outbox.add_bytes(bytes);
            outbox.spare_queue();
            if as_frames {
                outbox
                    .queue
                    .push_back(Outgoing::Frame(Frame::Shared(round.frames().clone())));
                outbox.extra = outbox.extra.saturating_add(to_u32(round.len() - 1));
            } else {
                outbox.queue.extend(
                    round
                        .messages
                        .iter()
                        .map(|m| Outgoing::Shared(Arc::clone(m))),
                );
            }
            Ok(outbox.needs_wake())
        })
    }

    /// Runs `queue` on the locked outbox of an open session, unless `volatile` and the client is
    /// congested; then wakes the writer if `queue` says so, or closes the session when the queue
    /// would pass its bound.
    ///
    /// `Ok(false)` when a volatile send was dropped.
    fn enqueue(
        &self,
        volatile: bool,
        queue: impl FnOnce(&mut Outbox) -> Result<bool, SendError>,
    ) -> Result<bool, SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let (wake, task, by_bytes) = {
            let mut outbox = self.outbox.lock();
            if volatile && outbox.congested() {
                return Ok(false);
            }
            let wake = queue(&mut outbox);
            // Only a WebSocket task that carries the session (it holds the sink) writes the
            // queue; one still probing leaves it to polling.
            let task = match wake {
                Ok(true) if outbox.sink.is_some() => outbox.sleeping_task(),
                _ => None,
            };
            (wake, task, outbox.full_by_bytes)
        };
        if let Some(task) = task {
            task.wake();
        }
        match wake {
            Ok(true) => self.writable.notify_one(),
            Ok(false) => {}
            Err(SendError::QueueFull) if by_bytes => self.request_close_code(SLOW_CLIENT_BY_BYTES),
            Err(SendError::QueueFull) => self.request_close(CloseReason::SlowClient),
            Err(SendError::Closed) => {}
        }
        wake.map(|_| true)
    }

    pub(crate) fn take_outbox(&self) -> VecDeque<Outgoing> {
        self.outbox.lock().take_queue()
    }

    /// Puts the close packet back at the head of the queue of a closing session, for the next
    /// long-polling GET (see `transport::polling::get`).
    pub(crate) fn requeue_close(&self) {
        let mut outbox = self.outbox.lock();
        outbox.queue.push_front(Outgoing::Packet(Packet::Close));
        outbox.add_bytes(1);
    }

    /// Takes the queue into the WebSocket task's output, which then holds its bytes.
    pub(crate) fn take_outbox_for_output(&self) -> VecDeque<Outgoing> {
        let mut outbox = self.outbox.lock();
        outbox.held = outbox.bytes;
        outbox.take_queue()
    }

    /// Whether the session was closed for passing the byte bound of its queue.
    pub(crate) fn closed_by_bytes(&self) -> bool {
        self.close_request.load(Ordering::Acquire) == SLOW_CLIENT_BY_BYTES
    }

    pub(crate) fn outbox_is_empty(&self) -> bool {
        self.outbox.lock().queue.is_empty()
    }

    /// Closes the session: what is queued is still delivered, then the transport is closed.
    pub fn close(&self) {
        self.request_close(CloseReason::ForcedClose);
    }

    pub(crate) fn request_close(&self, reason: CloseReason) {
        self.request_close_code(reason.code());
    }

    fn request_close_code(&self, code: u8) {
        if self
            .close_request
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.driver.notify_one();
            self.writable.notify_one();
            self.wake_task();
        }
    }

    /// Wakes the WebSocket task if it sleeps, for news it must act on (a close).
    fn wake_task(&self) {
        let task = self.outbox.lock().sleeping_task();
        if let Some(task) = task {
            task.wake();
        }
    }

    pub(crate) fn pending_close(&self) -> Option<CloseReason> {
        CloseReason::from_code(self.close_request.load(Ordering::Acquire))
    }

    pub(crate) fn begin_closing(&self) -> bool {
        self.state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Marks the session closed for `reason` (unless a close was requested for another reason
    /// before); true for the one caller that did it.
    pub(crate) fn mark_closed(&self, reason: CloseReason) -> bool {
        let _ = self.close_request.compare_exchange(
            0,
            reason.code(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        let previous = self.state.swap(CLOSED, Ordering::AcqRel);
        if previous != CLOSED {
            self.driver.notify_one();
            self.writable.notify_waiters();
            self.writable.notify_one();
            self.wake_task();
            true
        } else {
            false
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// Milliseconds since the session opened: the clock of its heartbeat deadlines.
    #[inline]
    pub(crate) fn age_ms(&self) -> u64 {
        self.created.elapsed().as_millis() as u64
    }

    /// When the session opened.
    #[inline]
    pub(crate) fn created(&self) -> Instant {
        self.created
    }

    /// The heartbeat: when the last pong came (in [`Socket::age_ms`] time, 0 before any) and
    /// whether a ping waits for its pong.
    #[inline]
    pub(crate) fn heartbeat(&self) -> (u64, bool) {
        (
            self.last_pong_ms.load(Ordering::Acquire),
            self.awaiting_pong.load(Ordering::Acquire),
        )
    }

    /// A ping left: its pong is awaited.
    #[inline]
    pub(crate) fn ping_sent(&self) {
        self.awaiting_pong.store(true, Ordering::Release);
    }

    /// Whether a WebSocket is probing an upgrade of this polling session.
    #[inline]
    pub(crate) fn is_upgrading(&self) -> bool {
        self.upgrading.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn set_upgrading(&self, upgrading: bool) {
        self.upgrading.store(upgrading, Ordering::Release);
    }

    /// Wakes the polling heartbeat task, to look at its deadlines again.
    #[inline]
    pub(crate) fn wake_driver(&self) {
        self.driver.notify_one();
    }

    /// Completes when [`Socket::wake_driver`] is called.
    #[inline]
    pub(crate) fn driver_woken(&self) -> Notified<'_> {
        self.driver.notified()
    }

    /// Completes when something was queued for a waiting polling GET, or it must give up.
    #[inline]
    pub(crate) fn writable(&self) -> Notified<'_> {
        self.writable.notified()
    }

    /// Wakes every waiting polling GET (an upgrade took the session, or it ended).
    #[inline]
    pub(crate) fn wake_writers(&self) {
        self.writable.notify_waiters();
    }

    /// The WebSocket task is running: what senders queue now waits for its next write.
    #[inline]
    pub(crate) fn set_task_awake(&self) {
        self.outbox.lock().task_awake = true;
    }

    /// Lets senders write to the WebSocket's socket themselves from now on.
    pub(crate) fn attach_sink(&self, sink: DirectSink) {
        self.outbox.lock().sink = Some(sink);
    }

    /// The WebSocket task is about to sleep: it leaves its waker with the senders, and tells
    /// them what its `output` still holds. `None`, and the task stays awake, when the session
    /// closed or, with `watch_queue`, when something is queued or a close was requested: news
    /// it has not acted on. Otherwise whether the waker kept changed.
    #[inline]
    pub(crate) fn task_sleeps(
        &self,
        waker: &Waker,
        watch_queue: bool,
        output: &VecDeque<Frame>,
    ) -> Option<bool> {
        let mut outbox = self.outbox.lock();
        if self.is_closed() {
            return None;
        }
        if watch_queue && !outbox.queue.is_empty() {
            return None;
        }
        // A close asked for after the task last looked (its `wake_task` found the task awake):
        // the task acts on it before it sleeps. With output held it waits for the socket to
        // take it only for a close that delivers what is queued; any other (a slow client's)
        // ends the session now, and a socket that never takes the output would never wake it.
        if let Some(reason) = self.pending_close()
            && (watch_queue || !reason.delivers_queued())
        {
            return None;
        }
        let new_waker = match &mut outbox.waker {
            Some(kept) if kept.will_wake(waker) => false,
            slot => {
                *slot = Some(waker.clone());
                true
            }
        };
        outbox.task_awake = false;
        outbox.output_pending = !output.is_empty();
        // What the output holds, for the byte bound of the queue: nothing, nearly always.
        outbox.held = if outbox.output_pending {
            let held: usize = output.iter().map(Frame::len).sum();
            u32::try_from(held).unwrap_or(u32::MAX)
        } else {
            0
        };
        Some(new_waker)
    }

    /// The WebSocket task is ending: senders queue from now on, and wake nobody.
    pub(crate) fn detach_sink(&self) {
        let mut outbox = self.outbox.lock();
        outbox.sink = None;
        outbox.task_awake = true;
        outbox.waker = None;
    }

    /// Claims the session's one polling GET (or, `post`, POST) in flight; `None` when one is in
    /// flight already. The claim ends when the guard drops, however the request ends.
    pub(crate) fn claim_request(&self, post: bool) -> Option<RequestClaim<'_>> {
        let flag = if post {
            &self.post_pending
        } else {
            &self.get_pending
        };
        (!flag.swap(true, Ordering::AcqRel)).then_some(RequestClaim(flag))
    }

    pub(crate) fn record_pong(&self) {
        let now = self.created.elapsed().as_millis() as u64;
        self.last_pong_ms.store(now, Ordering::Release);
        self.awaiting_pong.store(false, Ordering::Release);
        // The WebSocket task is not woken: its deadline only moved later, and its timer, when
        // it fires early, finds nothing due and is set again.
        self.driver.notify_one();
    }
}

impl<D> std::fmt::Debug for Socket<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("transport", &self.transport())
            .finish()
    }
}

impl<D: Send + Sync + 'static> Flush for Socket<D> {
    fn flush_queued(&self) {
        let task = {
            let mut guard = self.outbox.lock();
            let outbox = &mut *guard;
            outbox.flush_scheduled = false;
            if outbox.queue.is_empty() {
                return;
            }
            // An awake task, or one waiting to write what it holds, takes the queue itself.
            if outbox.task_awake || outbox.output_pending {
                return;
            }
            // Polling takes the queue with its next request.
            if outbox.sink.is_none() {
                None
            } else {
                let mut items = outbox.take_queue();
                let rest = outbox
                    .sink
                    .as_ref()
                    .map(|sink| sink.write(items.drain(..), false))
                    .unwrap_or_default();
                SPARE_QUEUES.give(items);
                if rest.is_empty() {
                    return;
                }
                outbox.add_bytes(rest.iter().map(Frame::len).sum());
                outbox.queue.extend(rest.into_iter().map(Outgoing::Frame));
                // Behind, as after a sender's partial write (see `Socket::admit`).
                outbox.output_pending = true;
                outbox.sleeping_task()
            }
        };
        if let Some(task) = task {
            task.wake();
        }
        self.writable.notify_one();
    }
}
