//! The task that drives one WebSocket connection: a short loop around the connection's state
//! ([`Connection`], which does no I/O) and its stream ([`Link`], plain TCP or TLS).
//!
//! Each turn of [`Driver::serve`]: the session's queue to the output
//! ([`Connection::poll_output`]), the output to the socket ([`Driver::write`]), then a wait
//! ([`Driver::poll_wake`]) for the socket (readable; writable too while output is held), the
//! timer, or a sender's wake; a readable socket is read into a per-thread buffer and fed to the
//! connection ([`Driver::read`]), a fired timer handed to it. When a step says stop, the
//! connection closes ([`Connection::close`]) and [`Driver::finish`] gives the close frame a
//! moment to leave.
//!
//! An idle connection holds no read buffer (reads go to a per-thread one, only when the socket
//! is readable) and no output buffer; on a plain connection, senders write to the socket
//! themselves while the task sleeps (the session's sink), and wake it only for what the socket
//! did not take.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use ignis_ws::deflate::Negotiated;
use tokio::time::{Instant, Sleep};

use crate::engine::{Handler, Inner};
use crate::session::Socket;
use crate::transport::connection::{Connection, Stop};
use crate::transport::stream::{Link, Stream};

thread_local! {
    /// Where every connection of this thread reads into.
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// Full buffers one wake-up reads at most (4 MiB) before the task yields. A client that sends
/// without pause would otherwise keep its task reading, and its worker thread, for as long as it
/// sends: the task would neither look at its own session (closed for a full queue, say) nor let
/// the other connections of that worker run.
const READS_PER_WAKE: usize = 64;

/// How long the close frame, and what precedes it, may take to leave.
const CLOSE_TIME: Duration = Duration::from_secs(1);

/// What woke the driver.
enum Wake {
    /// The socket is readable (data, a close or a failure: `read` finds out which).
    Readable,
    /// The socket is writable while the driver holds output.
    Writable,
    Failed(io::Error),
    /// Something was queued, or the session has news (see [`Driver::poll_wake`]).
    Queued,
    Timer,
}

/// What a [`Driver::read`] came to.
enum Read {
    /// Everything there was is read.
    Drained,
    /// [`READS_PER_WAKE`] full buffers read, and there is more: the task yields first.
    BudgetSpent,
    Stop(Stop),
}

/// One WebSocket connection: its state and its stream.
pub(super) struct Driver<H: Handler> {
    conn: Connection<H>,
    link: Link,
}

impl<H: Handler> Driver<H> {
    /// Sets up the connection of an accepted handshake on `stream` (see [`Connection::new`]).
    /// `Err` when what the client sent with its handshake already ended it (boxed: the rare
    /// end must not size every connection's task).
    pub(super) fn new(
        inner: std::sync::Arc<Inner<H>>,
        socket: std::sync::Arc<Socket<H::Data>>,
        stream: Stream,
        params: Option<Negotiated>,
        probing: bool,
        head: Option<Bytes>,
        early: &[u8],
    ) -> Result<Driver<H>, Box<(Driver<H>, Stop)>> {
        let link = Link::new(stream);
        let sink = link.sink_stream();
        match Connection::new(inner, socket, sink, params, probing, head, early) {
            Ok(conn) => Ok(Driver { conn, link }),
            Err(ended) => {
                let (conn, stop) = *ended;
                Err(Box::new((Driver { conn, link }, stop)))
            }
        }
    }

    /// The connection's future. Not an `async fn`: one keeps its argument and a moved copy of it
    /// for the whole life of the future, and this future is most of the state of an idle
    /// connection's task (and is copied whole as the task is spawned and ends). The block uses
    /// the driver where it was captured.
    pub(super) fn run(self) -> impl Future<Output = ()> + Send + 'static {
        self.run_or_end(None)
    }

    /// [`Driver::run`], or only its end when the connection stops already.
    // Not an `async fn`, on purpose: see `run`.
    #[allow(clippy::manual_async_fn)]
    pub(super) fn run_or_end(
        mut self,
        stopped: Option<Stop>,
    ) -> impl Future<Output = ()> + Send + 'static {
        async move {
            let started = Instant::now();
            // One timer for the connection's life, moved only when the deadline moves.
            let timer = tokio::time::sleep_until(self.conn.timeout(started));
            tokio::pin!(timer);
            let stop = match stopped {
                Some(stop) => stop,
                None => self.serve(timer.as_mut(), started).await,
            };
            self.conn.close(stop);
            self.finish(timer).await;
            self.link.shutdown().await;
        }
    }

    /// Serves the connection until it stops, and says why.
    async fn serve(&mut self, mut timer: Pin<&mut Sleep>, started: Instant) -> Stop {
        // Whether the timer holds the task's waker (see `poll_wake`); a local of the loop.
        let mut timer_armed = false;
        self.conn.awake();
        loop {
            // The session to the output, the output to the socket.
            if let Some(stop) = self.conn.poll_output() {
                return stop;
            }
            if let Err(e) = self.write() {
                tracing::debug!(error = %e, "websocket write failed");
                return self.conn.transport_closed();
            }
            // Wait.
            let mut first = true;
            let wake = std::future::poll_fn(|cx| {
                let first = std::mem::take(&mut first);
                self.poll_wake(cx, timer.as_mut(), &mut timer_armed, started, first)
            })
            .await;
            self.conn.awake();
            // Act on what woke the task.
            match wake {
                Wake::Failed(e) => {
                    tracing::debug!(error = %e, "websocket readiness failed");
                    return self.conn.transport_closed();
                }
                Wake::Readable => match self.read() {
                    Read::Drained => {}
                    Read::BudgetSpent => tokio::task::yield_now().await,
                    Read::Stop(stop) => return stop,
                },
                Wake::Timer => {
                    if let Some(stop) = self.conn.handle_timeout(started) {
                        return stop;
                    }
                }
                Wake::Writable | Wake::Queued => {}
            }
        }
    }

    /// Waits for what the driver must act on. The first poll puts the task to sleep
    /// ([`Connection::prepare_sleep`]); it then waits for the socket (readable; writable too
    /// while output is held) and for its timer, each of which keeps the task's waker in one
    /// slot, and for a sender or a close, which wake it with the waker kept in the outbox. A
    /// later poll that finds neither the socket nor the timer ready was woken by the latter (or
    /// spuriously: the loop then just looks around once more).
    fn poll_wake(
        &mut self,
        cx: &mut Context<'_>,
        mut timer: Pin<&mut Sleep>,
        timer_armed: &mut bool,
        started: Instant,
        first: bool,
    ) -> Poll<Wake> {
        if first {
            match self.conn.prepare_sleep(cx.waker()) {
                None => return Poll::Ready(Wake::Queued),
                // The timer holds the old waker: poll it again with this one.
                Some(true) => *timer_armed = false,
                Some(false) => {}
            }
            let deadline = self.conn.timeout(started);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
                *timer_armed = false;
            }
        }
        if self.conn.wants_read() {
            match self.link.poll_readable(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Readable),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                Poll::Pending => {}
            }
        } else if first {
            self.conn.count_paused_reads();
        }
        if self.conn.wants_write() || self.link.holds_output() {
            match self.link.poll_writable(cx) {
                Poll::Ready(Ok(())) => return Poll::Ready(Wake::Writable),
                Poll::Ready(Err(e)) => return Poll::Ready(Wake::Failed(e)),
                Poll::Pending => {}
            }
        }
        // A timer keeps the waker it was polled with until it fires or is reset, and the task's
        // waker does not change (`prepare_sleep` says when it does): polling it again on every
        // sleep would only register the same waker again.
        if !*timer_armed || timer.is_elapsed() {
            if timer.poll(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            *timer_armed = true;
        }
        if first {
            Poll::Pending
        } else {
            Poll::Ready(Wake::Queued)
        }
    }

    /// Reads what is available, up to [`READS_PER_WAKE`] full buffers, and feeds it to the
    /// connection.
    fn read(&mut self) -> Read {
        for _ in 0..READS_PER_WAKE {
            let result = READ_BUF.with(|cell| {
                let mut buf = cell.borrow_mut();
                match self.link.try_read(&mut buf) {
                    Ok((0, _)) => Err(None),
                    Ok((n, more)) => {
                        match self.conn.handle_input(&buf[..n], self.link.sink_stream()) {
                            Ok(()) => Ok(more),
                            Err(stop) => Err(Some(stop)),
                        }
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
                // A client that owes reading stops being read (see `Connection::wants_read`):
                // the driver writes first.
                Ok(true) if self.conn.wants_read() => continue,
                Ok(_) => return Read::Drained,
                Err(Some(stop)) => return Read::Stop(stop),
                Err(None) => return Read::Stop(self.conn.transport_closed()),
            }
        }
        Read::BudgetSpent
    }

    /// Writes as much of the output as the socket takes without blocking.
    fn write(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.link.try_write(self.conn.transmit()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.conn.written(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // All written: `written` gave the output's buffer back with the last frame.
        Ok(())
    }

    /// Best effort, after [`Connection::close`]: gives the close frame (and what precedes it)
    /// [`CLOSE_TIME`] to leave, on `timer`, the connection's own (no second timer in the
    /// connection's state).
    async fn finish(&mut self, mut timer: Pin<&mut Sleep>) {
        let deadline = Instant::now() + CLOSE_TIME;
        timer.as_mut().reset(deadline);
        while Instant::now() < deadline {
            if self.write().is_err() {
                break;
            }
            if !self.conn.wants_write() && !self.link.holds_output() {
                break;
            }
            let link = &mut self.link;
            let writable = std::future::poll_fn(|cx| match link.poll_writable(cx) {
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
