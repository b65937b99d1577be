//! A WebSocket connection's state, without its I/O: the bytes the client sent go in
//! ([`Connection::handle_input`]), the frames for the client come out ([`Connection::transmit`]),
//! and the session ([`crate::session`]) sits behind. The task that owns the socket and the
//! timer, and calls these methods, is [`crate::transport::driver`].
//!
//! # The order of calls
//! 1. [`Connection::new`], once: the session opened (or the polling session to probe), the
//!    `101` still to write first, and what the client sent after its handshake, handled.
//! 2. Then, on each turn of the driver's loop, in this order:
//!    1. [`Connection::poll_output`]: the session's queue into the output, and whether the
//!       connection stops (the session ended, or a close was asked for);
//!    2. [`Connection::transmit`] and [`Connection::written`]: the output's bytes for the
//!       socket, and how many of them it took (as often as it takes more);
//!    3. before the driver waits: [`Connection::prepare_sleep`] (false, and it does not wait,
//!       when the session has news), then what to wait for: [`Connection::wants_read`],
//!       [`Connection::wants_write`] and [`Connection::timeout`];
//!    4. after the wait: [`Connection::awake`] first, then what woke the driver:
//!       [`Connection::handle_input`] with the bytes read ([`Connection::transport_closed`]
//!       at their end), or [`Connection::handle_timeout`] when the timer fired.
//! 3. [`Connection::close`], once, with the [`Stop`] one of those returned: the close frame
//!    queued and the session ended; the driver then writes what is left (step 2.2) for a
//!    moment, and shuts the socket.
//!
//! Nothing here waits, reads or writes a socket; the one link to the socket is the session's
//! sink, which the driver hands in ([`SinkStream`]) for senders to write to themselves.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ignis_proto::engineio::{Data, Packet, Str};
use ignis_ws::deflate::{Inflater, Negotiated};
use ignis_ws::{CloseCode, CompressedMessage, Decoder, Message, OpCode, Role};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::abuse::Counters;
use crate::engine::{Deadline, Handler, Inner};
use crate::session::frame::text_frame;
use crate::session::message::Frame;
use crate::session::outbox::SPARE_QUEUES;
use crate::session::packet::handle_packet;
use crate::session::pool::{SpareBuffers, Spares, replace_unallocated};
use crate::session::sink::{DirectSink, frame_of};
use crate::session::{CloseReason, Socket, TransportKind};

thread_local! {
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
    /// Output buffers that fell empty (see [`Spares`]).
    static SPARE_OUTPUTS: Spares<VecDeque<Frame>> = const { Spares::new() };
}

/// The socket senders may write to themselves while the driver sleeps: a plain connection's
/// (see [`crate::transport::stream::Link::sink_stream`]); `None` for one only the driver writes.
pub(super) type SinkStream<'a> = Option<&'a Arc<TcpStream>>;

fn close_frame(code: Option<CloseCode>) -> Frame {
    Frame::Shared(match code {
        Some(code) => ignis_ws::encode_close(code, ""),
        None => ignis_ws::server_frame(OpCode::Close, &[]),
    })
}

/// Why a connection stops.
pub(super) enum Stop {
    /// The session ended (already finalized, or to be with this reason).
    Session(Option<CloseReason>),
    /// Only this WebSocket ends (a failed probe); the session goes on over polling.
    ProbeFailed,
}

/// The output's last frame is a pong not written yet (see [`Connection::queue_pong`]).
const PONG_QUEUED: u8 = 1;
/// A close frame is in the output: nothing follows it, and no second one is written.
const CLOSE_QUEUED: u8 = 2;

/// One WebSocket connection's state (see the module documentation for the order of calls).
pub(super) struct Connection<H: Handler> {
    inner: Arc<Inner<H>>,
    socket: Arc<Socket<H::Data>>,
    decoder: Decoder,
    deflate: Option<Negotiated>,
    /// Bytes of a frame that did not arrive whole; empty (and unallocated) most of the time.
    input: BytesMut,
    /// Frames waiting to be written; the first may have been written in part already.
    output: VecDeque<Frame>,
    probing: bool,
    /// [`PONG_QUEUED`], [`CLOSE_QUEUED`]: one byte, which the connection's padding holds (the
    /// connection is most of an idle task's memory).
    flags: u8,
}

impl<H: Handler> Connection<H> {
    /// Sets up the connection of an accepted handshake: `head` is the `101` still to write
    /// (none when hyper wrote it), `early` what the client sent after its handshake. `Err` when
    /// those bytes already ended it (boxed: the rare end must not size every connection's task).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        inner: Arc<Inner<H>>,
        socket: Arc<Socket<H::Data>>,
        sink: SinkStream<'_>,
        params: Option<Negotiated>,
        probing: bool,
        head: Option<Bytes>,
        early: &[u8],
    ) -> Result<Connection<H>, Box<(Connection<H>, Stop)>> {
        let max_message = inner.config.max_http_buffer_size;
        let mut conn = Connection {
            inner,
            socket,
            decoder: Decoder::new(Role::Server, max_message).with_compression(params.is_some()),
            deflate: params,
            input: BytesMut::new(),
            output: VecDeque::new(),
            probing,
            flags: 0,
        };
        // Awake from here on, as in the driver's loop: nothing may be written to the socket
        // around the head.
        conn.awake();
        if let Some(head) = head {
            conn.output.push_back(Frame::Shared(head));
        }
        if !conn.probing {
            conn.attach_sink(sink);
            // The open packet leaves with the head.
            conn.fill_output();
        }
        if !early.is_empty()
            && let Err(stop) = conn.handle_input(early, sink)
        {
            return Err(Box::new((conn, stop)));
        }
        Ok(conn)
    }

    fn flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    // 2.1: the session's queue to the output.

    /// Moves what the session queued to the output (when it holds nothing: see
    /// [`Connection::prepare_sleep`]), and says whether the connection stops: the session
    /// ended, or a close was asked for that needs no more writing first.
    pub(super) fn poll_output(&mut self) -> Option<Stop> {
        if self.probing {
            // A session that is closing has nothing to upgrade to. A probe that went on would
            // also never sleep: the session reports a close it has not acted on as news.
            let closing = self.socket.is_closed() || self.socket.pending_close().is_some();
            return closing.then_some(Stop::ProbeFailed);
        }
        if self.socket.is_closed() {
            return Some(Stop::Session(None));
        }
        if self.output.is_empty() {
            self.fill_output();
        }
        match self.socket.pending_close() {
            Some(reason)
                if !reason.delivers_queued()
                    || (self.output.is_empty() && self.socket.outbox_is_empty()) =>
            {
                Some(Stop::Session(Some(reason)))
            }
            _ => None,
        }
    }

    fn fill_output(&mut self) {
        let mut items = self.socket.take_outbox_for_output();
        if items.is_empty() {
            SPARE_QUEUES.give(items);
            return;
        }
        if self.output.capacity() == 0 {
            replace_unallocated(&mut self.output, SPARE_OUTPUTS.take());
        }
        let compression = self
            .deflate
            .as_ref()
            .zip(self.inner.compression.as_ref())
            .map(|(params, c)| (&**c, params.window_bits(Role::Server)));
        self.flags &= !PONG_QUEUED;
        for item in items.drain(..) {
            self.output.push_back(frame_of(item, compression));
        }
        SPARE_QUEUES.give(items);
    }

    // 2.2: the output to the socket.

    /// The output's frames, in order, for the socket (the first one's rest when the socket
    /// took part of it).
    pub(super) fn transmit(&self) -> impl Iterator<Item = &[u8]> + Clone {
        self.output.iter().map(Frame::as_slice)
    }

    /// The socket took `written` bytes of [`Connection::transmit`]'s.
    pub(super) fn written(&mut self, mut written: usize) {
        // Whole frames written leave the output; a frame written in part keeps only its rest.
        while let Some(front) = self.output.front_mut() {
            if written < front.len() {
                front.advance(written);
                return;
            }
            written -= front.len();
            if let Some(frame) = self.output.pop_front() {
                frame.recycle();
            }
        }
        self.flags &= !PONG_QUEUED;
        // What senders queued meanwhile is not taken here: `prepare_sleep` looks at the queue
        // under the lock it takes anyway, and keeps the driver awake for it, which spares a
        // lock round trip on every wake-up that finds nothing more queued. An idle connection
        // keeps no output buffer.
        SPARE_OUTPUTS.give(std::mem::take(&mut self.output));
    }

    /// Whether the output holds frames for the socket.
    pub(super) fn wants_write(&self) -> bool {
        !self.output.is_empty()
    }

    // 2.3: before the driver waits.

    /// Tells senders the driver is about to sleep and leaves its waker with them: `None`, and
    /// the driver stays awake, when there is news it has not acted on; otherwise whether the
    /// waker kept changed (a timer polled with the old one must be polled again).
    ///
    /// No wake-up is lost: a sender queues, and a close is requested (or the session closed),
    /// before the outbox lock is taken to decide whether to wake the driver. If that comes
    /// before this lock, the check sees the news; if after, the sender finds the driver asleep,
    /// and its waker, and wakes it.
    pub(super) fn prepare_sleep(&mut self, waker: &std::task::Waker) -> Option<bool> {
        // With output held, the driver wakes when the socket takes it, and `poll_output` acts
        // then on what came meanwhile; a close it saw before already keeps the output moving.
        let watch_queue = !self.probing && self.output.is_empty();
        self.socket.task_sleeps(waker, watch_queue, &self.output)
    }

    /// Whether the driver reads the client. Not while it owes a pong that the socket does not
    /// take: the client pings without reading, and reading on would only make more to answer.
    /// The first time the driver finds reads paused on a wake-up, it calls
    /// [`Connection::count_paused_reads`].
    pub(super) fn wants_read(&self) -> bool {
        !self.flag(PONG_QUEUED) || self.output.is_empty()
    }

    /// Counts a wait with reads paused (see [`Connection::wants_read`]).
    pub(super) fn count_paused_reads(&self) {
        Counters::bump(&self.inner.counters.ping_flood_pauses);
    }

    /// When the driver's timer fires next: the probe's end, or the session's next heartbeat
    /// deadline, `started` being when the driver began.
    pub(super) fn timeout(&self, started: Instant) -> Instant {
        if self.probing {
            return started + self.inner.config.upgrade_timeout;
        }
        let (at_ms, _) = self.inner.next_deadline(&self.socket);
        Instant::from_std(self.socket.created()) + Duration::from_millis(at_ms)
    }

    // 2.4: after the wait.

    /// The driver runs: what handlers send from now on is queued, and leaves with its next
    /// write. Called before anything else on each wake-up.
    pub(super) fn awake(&self) {
        self.socket.set_task_awake();
    }

    /// Handles `data`, the bytes read: every complete frame is decoded and applied (packets to
    /// the session, pings answered, a close answered), the rest kept for the next read.
    /// `sink`: see [`SinkStream`] (an upgrade lets senders write from then on).
    pub(super) fn handle_input(&mut self, data: &[u8], sink: SinkStream<'_>) -> Result<(), Stop> {
        let result = if self.input.is_empty() {
            self.process(data, sink).map(|used| {
                // Nearly always every byte: a read rarely ends inside a frame.
                if used < data.len() {
                    self.input.extend_from_slice(&data[used..]);
                }
            })
        } else {
            // The rest of a frame that began in an earlier read.
            self.input.extend_from_slice(data);
            let pending = std::mem::take(&mut self.input);
            self.process(&pending, sink)
                .map(|used| self.input.extend_from_slice(&pending[used..]))
        };
        result.map_err(|stop| stop.unwrap_or_else(|| self.transport_closed()))
    }

    /// Why the connection stops when its stream ended or failed.
    pub(super) fn transport_closed(&self) -> Stop {
        if self.probing {
            Stop::ProbeFailed
        } else {
            Stop::Session(Some(CloseReason::TransportClose))
        }
    }

    /// The timer fired (`started` as for [`Connection::timeout`]): a probe that took too long
    /// fails, and a session's deadline due is acted on (a ping sent, or a silent session
    /// ended). A timer early for a deadline that moved does nothing.
    pub(super) fn handle_timeout(&mut self, started: Instant) -> Option<Stop> {
        if self.probing {
            if Instant::now() >= started + self.inner.config.upgrade_timeout {
                tracing::debug!(sid = %self.socket.id(), "upgrade timed out");
                return Some(Stop::ProbeFailed);
            }
            return None;
        }
        let (at_ms, what) = self.inner.next_deadline(&self.socket);
        if self.socket.age_ms() < at_ms {
            return None;
        }
        if !self.inner.on_deadline(&self.socket, what) {
            return Some(Stop::Session(None));
        }
        // The establish deadline does not move once due: a connection that went on would find
        // its timer due at every wait, and never sleep (a client that sends no CONNECT and reads
        // nothing, while a close that delivers its queue waits for the socket). It ends now.
        if what == Deadline::Establish {
            return Some(Stop::Session(self.socket.pending_close()));
        }
        None
    }

    // 3: the end.

    /// Ends the connection for `stop`: senders queue from now on, the close frame is queued
    /// (after what the reason lets go out first), and the session ends. The driver then gives
    /// the output a moment to leave.
    pub(super) fn close(&mut self, stop: Stop) {
        self.socket.detach_sink();
        match stop {
            Stop::ProbeFailed => {
                self.socket.set_upgrading(false);
                self.push_close_last(None);
            }
            Stop::Session(reason) => {
                match reason {
                    // The client closed, or the connection is gone: nothing more to say.
                    Some(CloseReason::TransportClose) => {}
                    // The server closes: what was queued still goes out first.
                    _ if reason.is_none_or(CloseReason::delivers_queued) => {
                        self.queue_close(None);
                    }
                    // A failed session: what was queued is dropped.
                    _ => self.push_close_last(None),
                }
                if let Some(reason) = reason {
                    self.inner.finalize(&self.socket, reason);
                }
            }
        }
    }

    // The parts of `handle_input`.

    /// Lets senders write to `sink` themselves from now on; with none, they queue and wake the
    /// driver, which writes for them.
    fn attach_sink(&self, sink: SinkStream<'_>) {
        let compression = self
            .deflate
            .as_ref()
            .zip(self.inner.compression.as_ref())
            .map(|(params, c)| (Arc::clone(c), params.window_bits(Role::Server)));
        self.socket
            .attach_sink(DirectSink::new(sink.cloned(), compression));
    }

    /// Decodes and handles complete frames from `data`; returns how many bytes were used, or
    /// why the connection stops (`None`: its transport closed).
    fn process(&mut self, data: &[u8], sink: SinkStream<'_>) -> Result<usize, Option<Stop>> {
        let mut used = 0;
        while used < data.len() {
            let decoded = match self.decoder.decode(&data[used..]) {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(sid = %self.socket.id(), error = %e, "websocket protocol error");
                    self.queue_close(Some(e.close_code()));
                    return Err(Some(if self.probing {
                        Stop::ProbeFailed
                    } else {
                        Stop::Session(Some(CloseReason::TransportError))
                    }));
                }
            };
            if decoded.consumed == 0 {
                break;
            }
            used += decoded.consumed;
            if let Some(message) = decoded.message
                && let Some(stop) = self.on_message(message, sink)
            {
                return Err(Some(stop));
            }
        }
        Ok(used)
    }

    fn on_message(&mut self, message: Message, sink: SinkStream<'_>) -> Option<Stop> {
        let message = match message {
            Message::Compressed(compressed) => match self.inflate(&compressed) {
                Ok(m) => m,
                Err(code) => {
                    self.queue_close(Some(code));
                    return Some(Stop::Session(Some(CloseReason::TransportError)));
                }
            },
            other => other,
        };
        match message {
            Message::Text(bytes) => {
                let Ok(text) = Str::from_utf8(bytes) else {
                    return Some(Stop::Session(Some(CloseReason::ParseError)));
                };
                match Packet::decode_text(text) {
                    Ok(packet) => self.on_packet(packet, sink),
                    Err(_) if self.probing => Some(Stop::ProbeFailed),
                    Err(_) => Some(Stop::Session(Some(CloseReason::ParseError))),
                }
            }
            Message::Binary(bytes) => self.on_packet(Packet::Message(Data::Binary(bytes)), sink),
            Message::Ping(payload) => {
                self.queue_pong(&payload);
                None
            }
            Message::Pong(_) => None,
            Message::Close(_) => {
                self.queue_close(None);
                Some(self.transport_closed())
            }
            Message::Compressed(_) => None,
        }
    }

    fn inflate(&mut self, message: &CompressedMessage) -> Result<Message, CloseCode> {
        if self.deflate.is_none() {
            return Err(CloseCode::PROTOCOL_ERROR);
        }
        INFLATER.with(|cell| {
            let mut slot = cell.borrow_mut();
            // The largest window inflates whatever window the client compressed with.
            let inflater = slot.get_or_insert_with(|| Inflater::new(15, true));
            message.inflate(inflater).map_err(|e| {
                // A failed stream may leave the inflater in a bad state: start afresh.
                *slot = None;
                e.close_code()
            })
        })
    }

    fn on_packet(&mut self, packet: Packet, sink: SinkStream<'_>) -> Option<Stop> {
        if self.probing {
            return match packet {
                Packet::Ping(data) if data.as_str() == "probe" => {
                    self.flags &= !PONG_QUEUED;
                    self.output
                        .push_back(Frame::Shared(text_frame(b'3', b"probe")));
                    self.socket.set_upgrading(true);
                    // Release a waiting GET with a noop so that the client can pause polling.
                    self.socket.wake_writers();
                    None
                }
                Packet::Upgrade if self.socket.is_upgrading() => {
                    self.socket.set_transport(TransportKind::WebSocket);
                    self.inner
                        .stats
                        .upgrades
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.socket.set_upgrading(false);
                    self.probing = false;
                    self.attach_sink(sink);
                    // Wake the polling driver so that it stops, and any GET still waiting.
                    self.socket.wake_driver();
                    self.socket.wake_writers();
                    tracing::debug!(sid = %self.socket.id(), "upgraded to websocket");
                    self.inner.handler.on_upgrade(&self.socket);
                    None
                }
                _ => Some(Stop::ProbeFailed),
            };
        }
        if handle_packet(&self.inner, &self.socket, packet) {
            None
        } else {
            Some(Stop::Session(None))
        }
    }

    /// Queues a close frame, after what senders queued: the answer to the client's close, or a
    /// close for a WebSocket protocol error it made. Like the reference, the server closes
    /// without a status code (the peer sees 1005); a protocol violation carries its code.
    fn queue_close(&mut self, code: Option<CloseCode>) {
        if !self.flag(CLOSE_QUEUED) {
            self.push_control(close_frame(code));
            self.flags |= CLOSE_QUEUED;
        }
    }

    /// Owes the client a pong for its ping. RFC 6455 (5.5.3) lets an endpoint answer only the
    /// most recent of several pings: while the pong owed is still unwritten, the new one takes
    /// its place. So a client that pings and never reads is owed two pongs at most (one the
    /// socket may have begun to take, one behind it), however fast it pings, and reading stops
    /// until it reads them (see [`Connection::wants_read`]).
    fn queue_pong(&mut self, payload: &[u8]) {
        if self.flag(CLOSE_QUEUED) {
            return;
        }
        let pong = Frame::Shared(ignis_ws::server_frame(OpCode::Pong, payload));
        // Only the output's first frame can have been written in part: the pong owed is
        // replaced when it is behind that.
        if self.flag(PONG_QUEUED)
            && self.output.len() >= 2
            && let Some(last) = self.output.back_mut()
        {
            *last = pong;
            return;
        }
        self.push_control(pong);
        self.flags |= PONG_QUEUED;
    }

    /// Adds a frame of the connection's own (a pong, a close) to the output. When the output
    /// is empty the queue goes first: a sender that wrote part of a frame itself (which it does
    /// only while the driver holds no output) left the rest in the queue, and anything written
    /// before that rest would land in the middle of its frame. When the output holds frames,
    /// the queue holds whole frames only, and the control frame may go first.
    fn push_control(&mut self, frame: Frame) {
        if !self.probing && self.output.is_empty() {
            self.fill_output();
        }
        self.flags &= !PONG_QUEUED;
        self.output.push_back(frame);
    }

    /// Adds the close frame at the end of the output, unless one is there already (a protocol
    /// error is answered with a close that carries its code, and that is the only close).
    fn push_close_last(&mut self, code: Option<CloseCode>) {
        if !self.flag(CLOSE_QUEUED) {
            self.flags &= !PONG_QUEUED;
            self.output.push_back(close_frame(code));
            self.flags |= CLOSE_QUEUED;
        }
    }
}
