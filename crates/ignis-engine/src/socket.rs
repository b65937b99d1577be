//! One Engine.IO session: its outbound queue, its transport state and its heartbeat bookkeeping.
//!
//! The session is shared between the request handlers (polling GET/POST), the task that drives
//! the session (heartbeat, timeouts, or the WebSocket reader and writer) and the layer above,
//! which queues messages from anywhere. Every field is either atomic or behind a short lock that
//! is never held across an await.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Waker;
use std::time::Instant;

use bytes::{Buf, Bytes};
use ignis_proto::engineio::{Data, Packet, Str};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::sid::Sid;

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
    Polling,
    WebSocket,
}

/// A message meant for many sessions: encoded once, and turned into a WebSocket frame at most
/// once whatever the number of recipients.
pub struct SharedMessage {
    data: Data,
    compress: bool,
    frame: OnceLock<Bytes>,
    deflated: OnceLock<Bytes>,
}

impl SharedMessage {
    pub fn new(data: Data) -> Arc<SharedMessage> {
        Self::with_compression(data, true)
    }

    /// A message that permessage-deflate may compress (`compress`) or must send as it is.
    pub fn with_compression(data: Data, compress: bool) -> Arc<SharedMessage> {
        Arc::new(SharedMessage {
            data,
            compress,
            frame: OnceLock::new(),
            deflated: OnceLock::new(),
        })
    }

    /// A text message built with its WebSocket frame in place (see [`TextMessage`]).
    pub fn text_with_headroom(
        buf: Vec<u8>,
        compress: bool,
    ) -> Result<Arc<SharedMessage>, HeadroomError> {
        Ok(TextMessage::new(buf)?.into_shared(compress))
    }

    /// Whether permessage-deflate may compress the message.
    pub fn compress(&self) -> bool {
        self.compress
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub(crate) fn ws_frame(&self) -> &Bytes {
        self.frame
            .get_or_init(|| crate::websocket::message_frame(&self.data))
    }

    pub(crate) fn ws_frame_deflated(&self, deflate: &crate::websocket::Compression) -> &Bytes {
        self.deflated
            .get_or_init(|| deflate.message_frame(&self.data))
    }
}

impl std::fmt::Debug for SharedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMessage")
            .field("data", &self.data)
            .finish()
    }
}

/// The messages of one or more broadcasts to the same sessions, delivered together with
/// [`Socket::send_round`]: a session without compression gets all of them in one write of
/// their frames laid end to end, made once for every recipient.
pub struct Round {
    messages: Vec<Arc<SharedMessage>>,
    /// Whether permessage-deflate may compress one of the messages.
    compressible: bool,
    frames: OnceLock<Bytes>,
}

impl Round {
    /// The messages, in the order sessions get them.
    pub fn new(messages: Vec<Arc<SharedMessage>>) -> Round {
        Round {
            compressible: messages.iter().any(|m| m.compress()),
            messages,
            frames: OnceLock::new(),
        }
    }

    /// How many messages the round carries.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Every message's uncompressed WebSocket frame, back to back.
    fn frames(&self) -> &Bytes {
        self.frames.get_or_init(|| match &self.messages[..] {
            [one] => one.ws_frame().clone(),
            many => {
                let mut all = Vec::with_capacity(many.iter().map(|m| m.ws_frame().len()).sum());
                for message in many {
                    all.extend_from_slice(message.ws_frame());
                }
                Bytes::from(all)
            }
        })
    }
}

impl std::fmt::Debug for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Round")
            .field("messages", &self.messages.len())
            .finish()
    }
}

/// How many bytes a buffer given to [`TextMessage::new`] keeps in front of its
/// text: the longest header of a server's WebSocket frame (10 bytes) and the Engine.IO type.
pub const TEXT_HEADROOM: usize = 11;

/// A text message written after [`TEXT_HEADROOM`] bytes of its buffer, which the engine may
/// overwrite: its WebSocket frame is then made in place, sharing one buffer with the message
/// instead of being copied out of it. The headroom's content does not matter.
///
/// Sent to one session with [`Socket::send_text`], it becomes just that frame when a WebSocket
/// without compression carries the session.
#[derive(Debug)]
pub struct TextMessage {
    buf: Vec<u8>,
}

impl TextMessage {
    /// An empty buffer for a new message: the headroom, then room for the text. It is one that
    /// held a message this thread wrote to a WebSocket before, when there is one, so that
    /// messages to one session do not cost an allocation and a free each.
    #[inline]
    pub fn buffer() -> Vec<u8> {
        let mut buf = SPARE_TEXTS.take();
        // The headroom's content does not matter: a kept buffer (which held a frame, longer than
        // the headroom) keeps whatever its first bytes were.
        if buf.len() >= TEXT_HEADROOM {
            buf.truncate(TEXT_HEADROOM);
        } else {
            buf.clear();
            buf.reserve_exact(128);
            buf.extend_from_slice(&[0; TEXT_HEADROOM]);
        }
        buf
    }

    /// Checks that `buf` holds the headroom and UTF-8 text after it.
    pub fn new(buf: Vec<u8>) -> Result<TextMessage, HeadroomError> {
        if buf.len() < TEXT_HEADROOM {
            return Err(HeadroomError::TooShort);
        }
        let text = &buf[TEXT_HEADROOM..];
        if !text.is_ascii() && std::str::from_utf8(text).is_err() {
            return Err(HeadroomError::NotUtf8);
        }
        Ok(TextMessage { buf })
    }

    /// Like [`TextMessage::new`] without the UTF-8 check, for a writer that writes nothing but
    /// `str`s (the JSON encoder), whose output needs no second look: on the small messages of an
    /// echo that look costs as much as framing them. Text that is not UTF-8 anyway would be
    /// that writer's bug: it makes a malformed frame, which the client refuses; nothing unsafe
    /// follows (a shared message checks its text again).
    pub fn written_as_utf8(buf: Vec<u8>) -> Result<TextMessage, HeadroomError> {
        if buf.len() < TEXT_HEADROOM {
            return Err(HeadroomError::TooShort);
        }
        Ok(TextMessage { buf })
    }

    /// Writes the frame header and the Engine.IO type in the headroom; returns the buffer and
    /// where the frame starts in it.
    fn frame_in_place(mut self) -> (Vec<u8>, usize) {
        // The frame's payload is the Engine.IO type and the text, its header right before.
        let payload_len = self.buf.len() - TEXT_HEADROOM + 1;
        let mut header = [0u8; TEXT_HEADROOM - 1];
        let left = {
            let mut slot = &mut header[..];
            ignis_ws::encode_frame_header(
                true,
                false,
                ignis_ws::OpCode::Text,
                payload_len,
                None,
                &mut slot,
            );
            slot.len()
        };
        let header_len = header.len() - left;
        let frame_start = TEXT_HEADROOM - 1 - header_len;
        self.buf[frame_start..TEXT_HEADROOM - 1].copy_from_slice(&header[..header_len]);
        self.buf[TEXT_HEADROOM - 1] = b'4';
        (self.buf, frame_start)
    }

    /// The message's uncompressed WebSocket frame, alone.
    pub fn into_frame(self) -> Bytes {
        let (buf, frame_start) = self.frame_in_place();
        let mut bytes = Bytes::from(buf);
        bytes.advance(frame_start);
        bytes
    }

    /// The frame for one session: the buffer stays as it is, where `Bytes` would allocate a
    /// shared header for it (its length is never its capacity) and free two blocks later.
    fn into_owned_frame(self) -> Frame {
        let (buf, start) = self.frame_in_place();
        Frame::Owned { buf, start }
    }

    /// The message as a [`SharedMessage`], its frame already made.
    pub fn into_shared(self, compress: bool) -> Arc<SharedMessage> {
        let (buf, frame_start) = self.frame_in_place();
        let bytes = Bytes::from(buf);
        let text = bytes.slice(TEXT_HEADROOM..);
        // `new` checked the text; `from_utf8` only repeats a cheap check.
        let text = Str::from_utf8(text).unwrap_or_default();
        Arc::new(SharedMessage {
            data: Data::Text(text),
            compress,
            frame: OnceLock::from(bytes.slice(frame_start..)),
            deflated: OnceLock::new(),
        })
    }
}

/// Why a [`TextMessage`] refused a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadroomError {
    #[error("the buffer is shorter than its headroom")]
    TooShort,
    #[error("the text is not UTF-8")]
    NotUtf8,
}

/// The bytes of a WebSocket frame ready to be written.
#[derive(Debug)]
pub(crate) enum Frame {
    /// A frame that may be shared with other sessions.
    Shared(Bytes),
    /// A buffer only this session's frame uses, from `start` on (see [`TextMessage`]).
    Owned { buf: Vec<u8>, start: usize },
}

impl Frame {
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            Frame::Shared(bytes) => bytes,
            Frame::Owned { buf, start } => buf.get(*start..).unwrap_or_default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Lets go of a frame the socket took whole: a buffer of this session's own goes back to the
    /// thread's spares for the next [`TextMessage::buffer`].
    pub(crate) fn recycle(self) {
        if let Frame::Owned { buf, .. } = self {
            SPARE_TEXTS.give(buf);
        }
    }

    /// Drops the first `n` bytes, which the socket took.
    pub(crate) fn advance(&mut self, n: usize) {
        match self {
            Frame::Shared(bytes) => bytes.advance(n.min(bytes.len())),
            Frame::Owned { buf, start } => *start = buf.len().min(*start + n),
        }
    }
}

/// One item of a session's outbound queue.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Packet(Packet),
    Shared(Arc<SharedMessage>),
    /// A frame for this session alone ([`Socket::send_text`]), or the unwritten rest of one a
    /// sender began to write itself (see [`Outbox::sink`]); only ever queued on a session whose
    /// transport is WebSocket.
    Frame(Frame),
}

impl Outgoing {
    /// The bytes the item holds for its session, for the byte bound of the queue: a shared
    /// message counts whole for every session that holds it.
    pub(crate) fn size(&self) -> usize {
        match self {
            Outgoing::Packet(Packet::Message(data)) => data.len(),
            Outgoing::Packet(Packet::Open(s) | Packet::Ping(s) | Packet::Pong(s)) => s.len() + 1,
            Outgoing::Packet(_) => 1,
            Outgoing::Shared(m) => m.data.len(),
            Outgoing::Frame(frame) => frame.len(),
        }
    }

    pub(crate) fn to_packet(&self) -> Packet {
        match self {
            Outgoing::Packet(p) => p.clone(),
            Outgoing::Shared(m) => Packet::Message(m.data.clone()),
            // Polling never sees these: a session's queue holds them only once its WebSocket
            // took over, and polling requests then leave the queue alone.
            Outgoing::Frame(_) => Packet::Noop,
        }
    }
}

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
pub(crate) struct Outbox {
    pub(crate) queue: VecDeque<Outgoing>,
    /// Messages in the queue beyond one per item: the frames of a [`Round`] are one item that
    /// counts as many messages as it carries, for the bound on what a client may leave unread.
    extra: u32,
    /// Bytes the queue holds (see [`Outgoing::size`]).
    bytes: u32,
    /// Bytes the WebSocket task held in its output when it last looked (it took the queue, or
    /// went to sleep): what the session holds is this and `bytes`.
    pub(crate) held: u32,
    /// The last refusal was for the byte bound (not the message bound).
    full_by_bytes: bool,
    /// Where senders may write directly; set while a WebSocket carries the session.
    pub(crate) sink: Option<crate::websocket::DirectSink>,
    /// The WebSocket task is running and looks at the queue before it sleeps.
    pub(crate) task_awake: bool,
    /// The WebSocket task holds frames the socket did not take yet.
    pub(crate) output_pending: bool,
    /// A flush of this queue is scheduled (see [`DeliveryBatch`]).
    flush_scheduled: bool,
    /// The WebSocket task's waker, for when it sleeps (`task_awake` false). Kept while it runs
    /// too, so that going to sleep again costs no clone; taken by whoever wakes it.
    pub(crate) waker: Option<Waker>,
}

impl Outbox {
    fn new() -> Outbox {
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
    fn sleeping_task(&mut self) -> Option<Waker> {
        if self.task_awake {
            None
        } else {
            self.waker.take()
        }
    }

    /// Gives an empty queue one of this thread's spare buffers, so that queueing does not
    /// allocate; the WebSocket task gives it back once it took the queue.
    fn spare_queue(&mut self) {
        if self.queue.capacity() == 0 {
            replace_unallocated(&mut self.queue, SPARE_QUEUES.take());
        }
    }

    /// How many messages the queue holds.
    fn queued(&self) -> usize {
        self.queue.len() + self.extra as usize
    }

    /// Takes the whole queue.
    fn take_queue(&mut self) -> VecDeque<Outgoing> {
        self.extra = 0;
        self.bytes = 0;
        std::mem::take(&mut self.queue)
    }

    /// Counts `n` more bytes in the queue.
    fn add_bytes(&mut self, n: usize) {
        self.bytes = self.bytes.saturating_add(to_u32(n));
    }

    /// Whether `count` more messages of `bytes` bytes in all would pass a bound of `limits`
    /// (noting which). A session that holds nothing takes one message whatever its size: the
    /// byte bound is for what a client leaves unread, not for what the server sends.
    fn over(&mut self, count: usize, bytes: usize, limits: &QueueLimits) -> bool {
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
    fn writable_now(&self) -> bool {
        self.sink.is_some()
            && !self.task_awake
            && !self.output_pending
            && !self.flush_scheduled
            && self.queue.is_empty()
    }

    /// Whether a sender that queued must wake the task that writes: not when a WebSocket task
    /// will look at the queue anyway.
    fn needs_wake(&self) -> bool {
        self.sink.is_none() || !(self.task_awake || self.output_pending || self.flush_scheduled)
    }

    /// Whether a volatile message is dropped: when the client has not taken what came before.
    fn congested(&self) -> bool {
        self.output_pending || (self.sink.is_none() && !self.queue.is_empty())
    }
}

/// Buffers that fell empty, kept per thread for the next one that needs a buffer of their kind.
///
/// The queue of every message to a connection goes through one: the senders' queue, then the
/// WebSocket task's output; and so does the text of every message a handler sends to one
/// session ([`TextMessage::buffer`]). A connection keeps none of them once idle (idle memory per
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
    static SPARE_TEXTS: Spares<Vec<u8>> = const { Spares::new() };
}

/// A byte count as the queue keeps it: at most 4 GiB, where any bound lies below.
fn to_u32(n: usize) -> u32 {
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

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("the session is closed")]
    Closed,
    #[error("the client is not reading: its outbound queue is full")]
    QueueFull,
}

const OPEN: u8 = 0;
const CLOSING: u8 = 1;
const CLOSED: u8 = 2;

/// One Engine.IO session. `D` is the state the layer above keeps for it.
pub struct Socket<D> {
    id: Sid,
    /// State of the layer above (for Socket.IO: the packet decoder and the joined namespaces).
    pub data: D,
    pub(crate) outbox: Mutex<Outbox>,
    /// Wakes whoever writes to the client: a pending polling GET or the WebSocket task.
    pub(crate) writable: Notify,
    /// Wakes the task that drives the session (close requests, pongs, transport changes).
    pub(crate) driver: Notify,
    state: AtomicU8,
    /// A close the driver has still to carry out (a `CloseReason` code, 0 for none).
    close_request: AtomicU8,
    transport: AtomicU8,
    pub(crate) upgrading: AtomicBool,
    established: AtomicBool,
    pub(crate) awaiting_pong: AtomicBool,
    /// Milliseconds since `created` of the last pong (or of the opening).
    pub(crate) last_pong_ms: AtomicU64,
    pub(crate) created: Instant,
    limits: QueueLimits,
    /// Set while a polling GET / POST is being served, to refuse overlapping ones.
    pub(crate) get_pending: AtomicBool,
    pub(crate) post_pending: AtomicBool,
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

    pub fn id(&self) -> Sid {
        self.id
    }

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
    /// round. `volatile` messages are dropped when the client has not taken what came before.
    pub fn send_round(&self, round: &Round, volatile: bool) -> Result<(), SendError> {
        if round.is_empty() {
            return Ok(());
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
    fn enqueue(
        &self,
        volatile: bool,
        queue: impl FnOnce(&mut Outbox) -> Result<bool, SendError>,
    ) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let (wake, task, by_bytes) = {
            let mut outbox = self.outbox.lock();
            if volatile && outbox.congested() {
                return Ok(());
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
        wake.map(drop)
    }

    pub(crate) fn take_outbox(&self) -> VecDeque<Outgoing> {
        self.outbox.lock().take_queue()
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

/// A session whose queue a scheduled flush writes out.
trait Flush: Send + Sync {
    fn flush_queued(&self);
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

/// The recipients of one broadcast whose messages [`Socket::send_shared_in`] queued. Dropping
/// the batch schedules their flush, which runs once the broadcasting task yields; flushes still
/// pending then take the queued messages of later broadcasts along.
#[derive(Default)]
pub struct DeliveryBatch {
    sessions: Vec<Arc<dyn Flush>>,
}

impl DeliveryBatch {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_headroom(text: &str) -> Vec<u8> {
        let mut buf = vec![0xAA; TEXT_HEADROOM];
        buf.extend_from_slice(text.as_bytes());
        buf
    }

    #[test]
    fn a_frame_made_in_the_headroom_is_the_frame_made_by_copying() {
        // Each length class of the frame header: 7 bits, 16 bits, 64 bits.
        for len in [0, 1, 124, 125, 126, 65_534, 65_535, 70_000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            let message = SharedMessage::text_with_headroom(with_headroom(&text), true).unwrap();
            assert_eq!(message.data(), &Data::Text(Str::from(text.clone())));
            let copied = crate::websocket::message_frame(&Data::Text(Str::from(text)));
            assert_eq!(message.ws_frame(), &copied, "length {len}");
            assert!(message.compress());
        }
    }

    #[test]
    fn a_written_frame_gives_its_buffer_to_the_next_message() {
        let mut first = TextMessage::buffer();
        assert_eq!(first.len(), TEXT_HEADROOM);
        first.extend_from_slice(b"a message long enough to tell its buffer apart");
        let frame = TextMessage::new(first).unwrap().into_owned_frame();
        let Frame::Owned { buf, .. } = &frame else {
            panic!("a frame of its own");
        };
        let address = buf.as_ptr();
        frame.recycle();

        // The same allocation comes back, cut to the headroom: the new text starts right after
        // it, and nothing of the old message shows.
        let mut second = TextMessage::buffer();
        assert_eq!(second.as_ptr(), address);
        assert_eq!(second.len(), TEXT_HEADROOM);
        second.extend_from_slice(b"ok");
        let frame = TextMessage::new(second).unwrap().into_frame();
        assert_eq!(&frame[..], b"\x81\x034ok");
    }

    #[test]
    fn a_large_buffer_is_not_kept() {
        let mut big = TextMessage::buffer();
        big.resize(TEXT_HEADROOM + 64 * 1024, b'x');
        let frame = TextMessage::new(big).unwrap().into_owned_frame();
        frame.recycle();
        let fresh = TextMessage::buffer();
        assert_eq!(fresh.len(), TEXT_HEADROOM);
        assert!(fresh.capacity() <= <Vec<u8> as Reusable>::MAX_KEPT);
    }

    #[test]
    fn a_bad_buffer_is_refused() {
        assert_eq!(
            SharedMessage::text_with_headroom(vec![0; TEXT_HEADROOM - 1], false).unwrap_err(),
            HeadroomError::TooShort
        );
        let mut buf = with_headroom("ok");
        buf.push(0xff);
        assert_eq!(
            SharedMessage::text_with_headroom(buf, false).unwrap_err(),
            HeadroomError::NotUtf8
        );
    }
}
