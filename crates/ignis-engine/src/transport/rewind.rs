//! A new connection's I/O: its first read ([`read_first`]), and the stream that replays those
//! bytes to whoever serves the connection next ([`Rewind`]).

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::transport::stream::Stream;

/// The largest first read the direct path looks at; a longer head goes to hyper, which has its
/// own limits (and answers `431` past them).
pub(crate) const FIRST_READ_MAX: usize = 16 * 1024;

thread_local! {
    /// Where every new connection of this thread reads its first bytes.
    static FIRST_READ: RefCell<Vec<u8>> = RefCell::new(vec![0; FIRST_READ_MAX]);
}

/// A connection whose first bytes were read already: reads return those bytes first, then
/// what the socket gives. Writes go straight to the socket.
///
/// Its shutdown lingers: it sends the end of the server's side, then reads and drops what the
/// client still sends until the client closes, for at most [`LINGER_TIME`] (and
/// [`LINGER_IDLE`] without data) and [`LINGER_BYTES`]. hyper shuts a connection down before it
/// drops it; a socket closed with unread data is reset, and the reset destroys the answer in
/// the client's buffers before it reads it: a client that sends a body over the limit, without
/// waiting for `100 Continue`, would see a reset instead of the `413`.
#[derive(Debug)]
pub struct Rewind {
    prefix: Bytes,
    stream: Stream,
    /// Set once the shutdown began.
    linger: Option<Box<Linger>>,
}

/// The longest a shutdown reads what the client still sends.
pub const LINGER_TIME: Duration = Duration::from_secs(10);
/// The longest a shutdown waits for more from a client that sends nothing.
pub const LINGER_IDLE: Duration = Duration::from_secs(2);
/// The most bytes a shutdown reads and drops.
pub const LINGER_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug)]
struct Linger {
    timer: Pin<Box<tokio::time::Sleep>>,
    until: tokio::time::Instant,
    drained: u64,
}

impl Rewind {
    /// A connection (a [`TcpStream`] or a [`Stream`]) with nothing read yet.
    pub fn new(stream: impl Into<Stream>) -> Rewind {
        Rewind::with_prefix(stream, Bytes::new())
    }

    /// A connection whose first bytes, `prefix`, were read already.
    pub fn with_prefix(stream: impl Into<Stream>, prefix: Bytes) -> Rewind {
        Rewind {
            prefix,
            stream: stream.into(),
            linger: None,
        }
    }

    /// The stream, and the bytes read from it that were not read from the rewind yet.
    pub fn into_parts(self) -> (Stream, Bytes) {
        (self.stream, self.prefix)
    }

    /// The lingering part of the shutdown: reads and drops until the client closes or a bound
    /// is reached (see [`Rewind`]).
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(linger) = self.linger.as_mut() else {
            return Poll::Ready(());
        };
        let mut buf = [0u8; 8192];
        loop {
            let mut read = ReadBuf::new(&mut buf);
            match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    linger.drained += read.filled().len() as u64;
                    if linger.drained > LINGER_BYTES {
                        return Poll::Ready(());
                    }
                    let next = (tokio::time::Instant::now() + LINGER_IDLE).min(linger.until);
                    linger.timer.as_mut().reset(next);
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => return linger.timer.as_mut().poll(cx),
            }
        }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.linger.is_none() {
            std::task::ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
            let now = tokio::time::Instant::now();
            this.linger = Some(Box::new(Linger {
                timer: Box::pin(tokio::time::sleep_until(now + LINGER_IDLE)),
                until: now + LINGER_TIME,
                drained: 0,
            }));
        }
        this.poll_linger(cx).map(Ok)
    }
}

/// A new connection and the first bytes its client sent (see [`read_first`]).
#[derive(Debug)]
pub struct FirstRead {
    pub(crate) stream: Stream,
    pub(crate) data: Bytes,
}

impl FirstRead {
    /// The bytes read.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Back to a stream for hyper, the bytes read replayed first.
    pub fn into_rewind(self) -> Rewind {
        Rewind::with_prefix(self.stream, self.data)
    }
}

/// Waits for the first bytes of a new connection (a [`TcpStream`] or a [`Stream`]) and reads
/// what has arrived (at most 16 KiB). `None` when the client closed or the socket failed before
/// sending anything. Cancel-safe: dropping the future drops the connection, which had said
/// nothing.
pub async fn read_first(stream: impl Into<Stream>) -> Option<FirstRead> {
    match stream.into() {
        Stream::Tcp(stream) => read_first_tcp(stream).await,
        #[cfg(feature = "tls")]
        Stream::Tls(stream) => read_first_tls(stream).await,
    }
}

/// [`read_first`] on a TLS stream: what its first records held.
#[cfg(feature = "tls")]
async fn read_first_tls(mut stream: Box<crate::transport::stream::TlsStream>) -> Option<FirstRead> {
    let mut buf = vec![0; FIRST_READ_MAX];
    let n = match tokio::io::AsyncReadExt::read(&mut *stream, &mut buf).await {
        Ok(0) => return None,
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "connection failed before its first request");
            return None;
        }
    };
    Some(FirstRead {
        stream: Stream::Tls(stream),
        data: Bytes::copy_from_slice(&buf[..n]),
    })
}

async fn read_first_tcp(stream: TcpStream) -> Option<FirstRead> {
    loop {
        if let Err(e) = stream.readable().await {
            tracing::debug!(error = %e, "connection failed before its first request");
            return None;
        }
        let read = FIRST_READ.with(|cell| {
            let mut buf = cell.borrow_mut();
            let mut got = None;
            // The read runs inside `try_io` so that a short read, which took everything the
            // socket had, can say so: otherwise the connection's first wait for data returns at
            // once, for a read that finds nothing. The readiness cleared is the one seen before
            // the read: data that arrived meanwhile keeps the socket readable.
            let outcome = stream.try_io(Interest::READABLE, || {
                let n = stream.try_read(&mut buf)?;
                got = Some(n);
                if n > 0 && n < buf.len() {
                    Err(io::ErrorKind::WouldBlock.into())
                } else {
                    Ok(())
                }
            });
            match (got, outcome) {
                (Some(0), _) => Err(None),
                (Some(n), _) => Ok(Some(Bytes::copy_from_slice(&buf[..n]))),
                (None, Err(e))
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    Ok(None)
                }
                (None, Err(e)) => Err(Some(e)),
                (None, Ok(())) => Ok(None),
            }
        });
        match read {
            Ok(Some(data)) => {
                return Some(FirstRead {
                    stream: Stream::Tcp(stream),
                    data,
                });
            }
            Ok(None) => continue,
            Err(e) => {
                if let Some(e) = e {
                    tracing::debug!(error = %e, "connection failed before its first request");
                }
                return None;
            }
        }
    }
}

/// What became of a connection given to [`Engine::serve_direct`].
///
/// [`Engine::serve_direct`]: crate::Engine::serve_direct
#[derive(Debug)]
pub enum Handoff {
    /// The engine served it to the end (a WebSocket connection that closed, or an answer after
    /// which the connection closes).
    Done,
    /// For hyper: every byte the engine read and did not consume is replayed first.
    Http(Rewind),
}
