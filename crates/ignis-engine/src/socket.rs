//! One Engine.IO session: its outbound queue, its transport state and its heartbeat bookkeeping.
//!
//! The session is shared between the request handlers (polling GET/POST), the task that drives
//! the session (heartbeat, timeouts, or the WebSocket reader and writer) and the layer above,
//! which queues messages from anywhere. Every field is either atomic or behind a short lock that
//! is never held across an await.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use ignis_proto::engineio::{Data, Packet};
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

    fn code(self) -> u8 {
        self as u8 + 1
    }

    fn from_code(code: u8) -> Option<CloseReason> {
        use CloseReason::*;
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

/// One item of a session's outbound queue.
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    Packet(Packet),
    Shared(Arc<SharedMessage>),
}

impl Outgoing {
    pub(crate) fn to_packet(&self) -> Packet {
        match self {
            Outgoing::Packet(p) => p.clone(),
            Outgoing::Shared(m) => Packet::Message(m.data.clone()),
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
    pub(crate) outbox: Mutex<VecDeque<Outgoing>>,
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
    max_queued: usize,
    /// Set while a polling GET / POST is being served, to refuse overlapping ones.
    pub(crate) get_pending: AtomicBool,
    pub(crate) post_pending: AtomicBool,
}

impl<D> Socket<D> {
    pub(crate) fn new(id: Sid, data: D, transport: TransportKind, max_queued: usize) -> Self {
        Socket {
            id,
            data,
            outbox: Mutex::new(VecDeque::new()),
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
            max_queued,
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

    pub(crate) fn push_packet(&self, packet: Packet) -> Result<(), SendError> {
        self.push(std::iter::once(Outgoing::Packet(packet)), false)
    }

    fn push(
        &self,
        items: impl ExactSizeIterator<Item = Outgoing>,
        volatile: bool,
    ) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        {
            let mut outbox = self.outbox.lock();
            if volatile && !outbox.is_empty() {
                return Ok(());
            }
            if outbox.len() + items.len() > self.max_queued {
                drop(outbox);
                self.request_close(CloseReason::SlowClient);
                return Err(SendError::QueueFull);
            }
            outbox.extend(items);
        }
        self.writable.notify_one();
        Ok(())
    }

    pub(crate) fn take_outbox(&self) -> VecDeque<Outgoing> {
        std::mem::take(&mut *self.outbox.lock())
    }

    /// Closes the session: what is queued is still delivered, then the transport is closed.
    pub fn close(&self) {
        self.request_close(CloseReason::ForcedClose);
    }

    pub(crate) fn request_close(&self, reason: CloseReason) {
        if self
            .close_request
            .compare_exchange(0, reason.code(), Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.driver.notify_one();
            self.writable.notify_one();
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
