//! The task that drives one WebSocket connection: it reads frames into packets for the
//! session ([`crate::session::packet::handle_packet`]), writes what the session queued, and
//! keeps the heartbeat.
//!
//! One task drives each connection. It reads with `try_read` into a per-thread buffer only when
//! the socket is readable, so an idle connection holds no read buffer; it writes everything
//! queued with vectored writes; and it compresses with per-thread, stateless deflate contexts.
//! Its loop ([`Connection::serve`]) takes a step ([`Connection::step`]: the session's queue to
//! the output, the output to the socket, a requested close), then waits for a wake
//! ([`Connection::poll_wake`]) and acts on it: a readable socket is read and its packets applied,
//! the timer sends a ping or ends a silent session, a sender's wake needs only the next step.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ignis_proto::engineio::{Data, Packet, Str};
use ignis_ws::deflate::{Inflater, Negotiated};
use ignis_ws::{CloseCode, CompressedMessage, Decoder, Message, OpCode, Role};
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::abuse::Counters;
use crate::engine::{Handler, Inner};
use crate::session::frame::{text_frame, write_frames};
use crate::session::message::Frame;
use crate::session::outbox::SPARE_QUEUES;
use crate::session::packet::handle_packet;
use crate::session::pool::{SpareBuffers, Spares, replace_unallocated};
use crate::session::sink::{DirectSink, frame_of};
use crate::session::{CloseReason, Socket, TransportKind};

thread_local! {
    /// Where every connection of this thread reads into.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
    static INFLATER: RefCell<Option<Inflater>> = const { RefCell::new(None) };
    /// Output buffers that fell empty (see [`Spares`]).
    static SPARE_OUTPUTS: Spares<VecDeque<Frame>> = const { Spares::new() };
}

/// Reads what the socket holds. A read that does not fill `buf` took everything there was,
/// so the socket's readiness is cleared then too, not only on `WouldBlock`: otherwise the task
/// would wake again at once for a read that finds nothing, one wasted system call per message.
/// A clear never hides data that arrives later: that raises readiness anew, and tokio does not
/// clear what was raised after the read began.
fn read_clearing(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    let mut short = None;
    let result = stream.try_io(Interest::READABLE, || match stream.try_read(buf) {
        Ok(n) if n > 0 && n < buf.len() => {
            short = Some(n);
            Err(io::ErrorKind::WouldBlock.into())
        }
        other => other,
    });
    match short {
        Some(n) => Ok(n),
        None => result,
    }
}

fn close_frame(code: Option<CloseCode>) -> Frame {
    Frame::Shared(match code {
        Some(code) => ignis_ws::encode_close(code, ""),
        None => ignis_ws::server_frame(OpCode::Close, &[]),
    })
}

/// What woke a connection's task.
enum Wake {
    /// The socket is readable (data, a close or a failure: `read` finds out which).
    Readable,
    /// The socket is writable while the task holds output.
    Writable,
    Failed(io::Error),
    /// Something was queued, or the session has news for the task (see `Connection::poll_wake`).
    Queued,
    Timer,
}

/// Why a connection's task stops.
pub(super) enum Stop {
    /// The session ended (already finalized, or to be with this reason).
    Session(Option<CloseReason>),
    /// Only this WebSocket ends (a failed probe); the session goes on over polling.
    ProbeFailed,
}

/// The timer was polled with the task's waker since it was last reset (see `poll_wake`).
const TIMER_ARMED: u8 = 1;
/// The output's last frame is a pong not written yet (see [`Connection::queue_pong`]).
const PONG_QUEUED: u8 = 2;
/// A close frame is in the output: nothing follows it, and no second one is written.
const CLOSE_QUEUED: u8 = 4;
/// The last [`Connection::read`] stopped at [`READS_PER_WAKE`] with more to read: the task
/// yields before it reads again.
const READ_BUDGET_SPENT: u8 = 8;

/// Full buffers one wake-up reads at most (4 MiB) before the task yields. A client that sends
/// without pause would otherwise keep its task reading, and its worker thread, for as long as it
/// sends: the task would neither look at its own session (closed for a full queue, say) nor let
/// the other connections of that worker run.
const READS_PER_WAKE: usize = 64;

pub(super) struct Connection<H: Handler> {
    inner: Arc<Inner<H>>,
    socket: Arc<Socket<H::Data>>,
    /// Shared with senders that write directly while this task sleeps.
    stream: Arc<TcpStream>,
    decoder: Decoder,
    deflate: Option<Negotiated>,
    /// Bytes of a frame that did not arrive whole; empty (and unallocated) most of the time.
    input: BytesMut,
    /// Frames waiting to be written; the first may have been written in part already.
    output: VecDeque<Frame>,
    probing: bool,
    /// [`TIMER_ARMED`], [`PONG_QUEUED`], [`CLOSE_QUEUED`], [`READ_BUDGET_SPENT`]: one byte, which the connection's
    /// padding holds (the connection is most of an idle task's memory).
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
        stream: TcpStream,
        params: Option<Negotiated>,
        probing: bool,
        head: Option<Bytes>,
        early: &[u8],
    ) -> Result<Connection<H>, Box<(Connection<H>, Stop)>> {
        let max_message = inner.config.max_http_buffer_size;
        let mut conn = Connection {
            inner,
            socket,
            stream: Arc::new(stream),
            decoder: Decoder::new(Role::Server, max_message).with_compression(params.is_some()),
            deflate: params,
            input: BytesMut::new(),
            output: VecDeque::new(),
            probing,
            flags: 0,
        };
        // Awake from here on, as in `run`: nothing may be written to the socket around the head.
        conn.socket.set_task_awake();
        if let Some(head) = head {
            conn.output.push_back(Frame::Shared(head));
        }
        if !conn.probing {
            conn.attach_sink();
            // The open packet leaves with the head.
            conn.fill_output();
        }
        if !early.is_empty() {
            match conn.process(early) {
                Ok(used) => conn.input.extend_from_slice(&early[used..]),
                Err(stop) => {
                    let stop = stop.unwrap_or_else(|| conn.transport_closed());
                    return Err(Box::new((conn, stop)));
                }
            }
        }
        Ok(conn)
    }

    fn flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The connection's future. Not an `async fn`: one keeps its argument and a moved copy of it
    /// for the whole life of the future, and this future is most of the state of an idle
    /// connection's task (and is copied whole as the task is spawned and ends). The block uses
    /// the connection where it was captured.
    pub(super) fn run(self) -> impl Future<Output = ()> + Send + 'static {
        self.run_or_end(None)
    }

    /// [`Connection::run`], or only its end when the connection stops already.
    // Not an `async fn`, on purpose: see `run`.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run_or_end(
        mut self,
        stopped: Option<Stop>,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let started = tokio::time::Instant::now();
            // One timer for the connection's life, moved only when the deadline moves.
            let timer = tokio::time::sleep_until(self.deadline(started));
            tokio::pin!(timer);
            let stop = match stopped {
                Some(stop) => stop,
                None => self.serve(timer.as_mut(), started).await,
            };
            self.finish(stop, timer).await;
            let Connection { stream, .. } = self;
            if let Ok(mut stream) = Arc::try_unwrap(stream) {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            }
        }
    }

    /// Serves the connection until it stops, and says why.
    async fn serve(
        &mut self,
        mut timer: Pin<&mut tokio::time::Sleep>,
        started: tokio::time::Instant,
    ) -> Stop {
        self.socket.set_task_awake();
        loop {
            if let Some(stop) = self.step() {
                break stop;
            }
            let mut first = true;
            let wake = std::future::poll_fn(|cx| {
                self.poll_wake(cx, timer.as_mut(), started, std::mem::take(&mut first))
            })
            .await;
            // Before anything runs: what handlers send while the task is awake is queued and
            // leaves with the task's next write.
            self.socket.set_task_awake();
            match wake {
                Wake::Failed(e) => {
                    tracing::debug!(error = %e, "websocket readiness failed");
                    break self.transport_closed();
                }
                Wake::Readable => {
                    if let Some(stop) = self.read() {
                        break stop;
                    }
                    if self.flag(READ_BUDGET_SPENT) {
                        self.flags &= !READ_BUDGET_SPENT;
                        tokio::task::yield_now().await;
                    }
                }
                Wake::Writable | Wake::Queued => {}
                Wake::Timer => {
                    if let Some(stop) = self.on_timer(started) {
                        break stop;
                    }
                }
            }
        }
    }

    /// Lets senders write directly from now on.
    fn attach_sink(&self) {
        let compression = self
            .deflate
            .as_ref()
            .zip(self.inner.compression.as_ref())
            .map(|(params, c)| (Arc::clone(c), params.window_bits(Role::Server)));
        self.socket
            .attach_sink(DirectSink::new(Arc::clone(&self.stream), compression));
    }

    /// Waits for what the task must act on. The first poll puts the task to sleep (see
    /// [`Connection::fall_asleep`]); it then waits for the socket (readable; writable too while it
    /// holds output) and for its timer, each of which keeps the task's waker in one slot, and for
    /// a sender or a close, which wake it with the waker kept in the outbox. A later poll that
    /// finds neither the socket nor the timer ready was woken by the latter (or spuriously: the
    /// loop then just looks around once more).
    fn poll_wake(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut tokio::time::Sleep>,
        started: tokio::time::Instant,
        first: bool,
    ) -> Poll<Wake> {
        if first {
            if !self.fall_asleep(cx.waker()) {
                return Poll::Ready(Wake::Queued);
            }
            let deadline = self.deadline(started);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
                self.flags &= !TIMER_ARMED;
            }
        }
        if !self.reads_paused() {
            match self.stream.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                Poll::Pending => {}
            }
        } else if first {
            Counters::bump(&self.inner.counters.ping_flood_pauses);
        }
        if !self.output.is_empty() {
            match self.stream.poll_write_ready(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Writable),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                Poll::Pending => {}
            }
        }
        // A timer keeps the waker it was polled with until it fires or is reset, and the task's
        // waker does not change (`fall_asleep` disarms when it does): polling it again on every
        // sleep would only register the same waker again.
        if !self.flag(TIMER_ARMED) || timer.is_elapsed() {
            if timer.poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            self.flags |= TIMER_ARMED;
        }
        if first {
            Poll::Pending
        } else {
            Poll::Ready(Wake::Queued)
        }
    }

    /// Tells senders the task is about to sleep and leaves its waker with them; false, and the
    /// task stays awake, when there is news it has not acted on.
    ///
    /// No wake-up is lost: a sender queues, and a close is requested (or the session closed),
    /// before the outbox lock is taken to decide whether to wake the task. If that comes before
    /// this lock, the check below sees the news; if after, the sender finds `task_awake` false
    /// and the waker, and wakes the task.
    fn fall_asleep(&mut self, waker: &Waker) -> bool {
        // With output held, the task wakes when the socket takes it, and `step` acts then on
        // what came meanwhile; a close it saw before already keeps the output moving.
        let watch_queue = !self.probing && self.output.is_empty();
        match self.socket.task_sleeps(waker, watch_queue, &self.output) {
            None => false,
            Some(new_waker) => {
                if new_waker {
                    // The timer holds the old waker: poll it again with this one.
                    self.flags &= !TIMER_ARMED;
                }
                true
            }
        }
    }

    fn transport_closed(&self) -> Stop {
        if self.probing {
            Stop::ProbeFailed
        } else {
            Stop::Session(Some(CloseReason::TransportClose))
        }
    }

    /// Moves queued messages to the output, writes what the socket takes, and checks for a
    /// requested close. Returns a stop when the task should end.
    fn step(&mut self) -> Option<Stop> {
        if self.probing {
            if self.socket.is_closed() {
                return Some(Stop::ProbeFailed);
            }
        } else {
            if self.socket.is_closed() {
                return Some(Stop::Session(None));
            }
            if self.output.is_empty() {
                self.fill_output();
            }
            if let Some(reason) = self.socket.pending_close()
                && (!reason.delivers_queued()
                    || (self.output.is_empty() && self.socket.outbox_is_empty()))
            {
                return Some(Stop::Session(Some(reason)));
            }
        }
        if let Err(e) = self.flush() {
            tracing::debug!(error = %e, "websocket write failed");
            return Some(self.transport_closed());
        }
        None
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

    /// Writes as much of the output as the socket takes without blocking.
    fn flush(&mut self) -> io::Result<()> {
        while !self.output.is_empty() {
            match write_frames(&self.stream, self.output.iter().map(Frame::as_slice)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut written) => {
                    // Whole frames written leave the output; a frame written in part keeps
                    // only its rest.
                    while let Some(front) = self.output.front_mut() {
                        if written < front.len() {
                            front.advance(written);
                            break;
                        }
                        written -= front.len();
                        if let Some(frame) = self.output.pop_front() {
                            frame.recycle();
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.flags &= !PONG_QUEUED;
        // What senders queued meanwhile is not taken here: `fall_asleep` looks at the queue under
        // the lock it takes anyway, and keeps the task awake for it, which spares a lock round
        // trip on every wake-up that finds nothing more queued. An idle connection keeps no
        // output buffer.
        SPARE_OUTPUTS.give(std::mem::take(&mut self.output));
        Ok(())
    }

    fn deadline(&self, started: tokio::time::Instant) -> tokio::time::Instant {
        if self.probing {
            return started + self.inner.config.upgrade_timeout;
        }
        let (at_ms, _) = self.inner.next_deadline(&self.socket);
        tokio::time::Instant::from_std(self.socket.created()) + Duration::from_millis(at_ms)
    }

    fn on_timer(&mut self, started: tokio::time::Instant) -> Option<Stop> {
        if self.probing {
            if tokio::time::Instant::now() >= started + self.inner.config.upgrade_timeout {
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
        None
    }

    /// Reads what is available, up to [`READS_PER_WAKE`] full buffers, and handles every
    /// complete message.
    fn read(&mut self) -> Option<Stop> {
        for _ in 0..READS_PER_WAKE {
            let result = READ_BUF.with(|cell| {
                let mut buf = cell.borrow_mut();
                match read_clearing(&self.stream, &mut buf) {
                    Ok(0) => Err(None),
                    Ok(n) => {
                        if self.input.is_empty() {
                            let used = self.process(&buf[..n])?;
                            if used < n {
                                self.input.extend_from_slice(&buf[used..n]);
                            }
                        } else {
                            self.input.extend_from_slice(&buf[..n]);
                            let pending = std::mem::take(&mut self.input);
                            let used = self.process(&pending)?;
                            if used < pending.len() {
                                self.input.extend_from_slice(&pending[used..]);
                            }
                        }
                        Ok(n == buf.len())
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket read failed");
                        Err(None)
                    }
                }
            });
            match result {
                // A client that owes reading stops being read (see `reads_paused`): the task
                // writes first.
                Ok(true) if !self.reads_paused() => continue,
                Ok(true) => return None,
                Ok(false) => return None,
                Err(Some(stop)) => return Some(stop),
                Err(None) => return Some(self.transport_closed()),
            }
        }
        self.flags |= READ_BUDGET_SPENT;
        None
    }

    /// Decodes and handles complete frames from `data`; returns how many bytes were used.
    fn process(&mut self, data: &[u8]) -> Result<usize, Option<Stop>> {
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
                && let Some(stop) = self.on_message(message)
            {
                return Err(Some(stop));
            }
        }
        Ok(used)
    }

    fn on_message(&mut self, message: Message) -> Option<Stop> {
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
                    Ok(packet) => self.on_packet(packet),
                    Err(_) if self.probing => Some(Stop::ProbeFailed),
                    Err(_) => Some(Stop::Session(Some(CloseReason::ParseError))),
                }
            }
            Message::Binary(bytes) => self.on_packet(Packet::Message(Data::Binary(bytes))),
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

    fn on_packet(&mut self, packet: Packet) -> Option<Stop> {
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
                    self.attach_sink();
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
    /// until it reads them (see [`Connection::reads_paused`]).
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

    /// Whether the task stops reading the client: while it owes a pong that the socket does not
    /// take, the client pings without reading, and reading on would only make more to answer.
    fn reads_paused(&self) -> bool {
        self.flag(PONG_QUEUED) && !self.output.is_empty()
    }

    /// Adds a frame of the task's own (a pong, a close) to the output. When the output is empty
    /// the queue goes first: a sender that wrote part of a frame itself (which it does only
    /// while the task holds no output) left the rest in the queue, and anything written before
    /// that rest would land in the middle of its frame. When the output holds frames, the queue
    /// holds whole frames only, and the control frame may go first.
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

    /// Ends the connection: the close frame, and what precedes it, get a moment to leave (on
    /// `timer`, the connection's own: no second timer in the connection's state).
    async fn finish(&mut self, stop: Stop, mut timer: Pin<&mut tokio::time::Sleep>) {
        // Senders queue from now on; what they queue before the close goes out below.
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
        // Best effort: give the close frame (and what precedes it) a moment to leave.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        timer.as_mut().reset(deadline);
        while !self.output.is_empty() && tokio::time::Instant::now() < deadline {
            if self.flush().is_err() {
                break;
            }
            if self.output.is_empty() {
                break;
            }
            let stream = &self.stream;
            let writable = std::future::poll_fn(|cx| match stream.poll_write_ready(cx) {
                Poll::Ready(ready) => Poll::Ready(ready.is_ok()),
                Poll::Pending if timer.as_mut().poll(cx).is_ready() => Poll::Ready(false),
                Poll::Pending => Poll::Pending,
            });
            if !writable.await {
                break;
            }
        }
    }
}
