//! The byte streams a connection runs on: [`Stream`], plain TCP or TLS over TCP, for the
//! connection's first read, the direct path and hyper; and [`Link`], the same stream as the
//! WebSocket driver ([`crate::transport::driver`]) reads and writes it, without blocking.
//!
//! A plain connection's socket is shared with the session's sink, so that senders write to it
//! themselves while the connection's task sleeps. A TLS connection's state (rustls's) belongs to
//! one writer, the task: senders queue and wake it, and it writes for them.

use std::io;
#[cfg(feature = "tls")]
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "tls")]
use std::task::Waker;
use std::task::{Context, Poll};
#[cfg(feature = "tls")]
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;

use crate::session::frame::write_frames;

/// A TLS connection as the engine serves it.
#[cfg(feature = "tls")]
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// An accepted connection's byte stream: plain TCP, or TLS over TCP (feature `tls`).
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS, its handshake complete (boxed: rustls's state is large, and rare next to TCP).
    #[cfg(feature = "tls")]
    Tls(Box<TlsStream>),
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stream::Tcp(s) => f.debug_tuple("Tcp").field(s).finish(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => f.debug_tuple("Tls").field(s.get_ref().0).finish(),
        }
    }
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Stream {
        Stream::Tcp(stream)
    }
}

#[cfg(feature = "tls")]
impl From<TlsStream> for Stream {
    fn from(stream: TlsStream) -> Stream {
        Stream::Tls(Box::new(stream))
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}

/// Reads what a TCP socket holds. A read that does not fill `buf` took everything there was,
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

/// How long a TLS connection's end may take to send its close_notify.
#[cfg(feature = "tls")]
const TLS_CLOSE_TIME: Duration = Duration::from_secs(1);

/// A WebSocket connection's stream as its driver uses it: readiness to wait on, and reads and
/// writes that never wait (`WouldBlock` instead).
pub(crate) enum Link {
    /// Shared with the session's sink (see [`Link::sink_stream`]).
    Tcp(Arc<TcpStream>),
    /// A TLS stream, which the driver alone reads and writes.
    #[cfg(feature = "tls")]
    Tls {
        stream: Box<TlsStream>,
        /// The last read took data: rustls may hold more plaintext (or the socket more records)
        /// than that read returned, without the socket becoming readable again.
        more: bool,
    },
}

impl Link {
    pub(crate) fn new(stream: Stream) -> Link {
        match stream {
            Stream::Tcp(s) => Link::Tcp(Arc::new(s)),
            #[cfg(feature = "tls")]
            Stream::Tls(stream) => Link::Tls { stream, more: true },
        }
    }

    /// The socket senders may write to themselves: a plain connection's. A TLS connection has
    /// none (senders queue, and the driver writes).
    pub(crate) fn sink_stream(&self) -> Option<&Arc<TcpStream>> {
        match self {
            Link::Tcp(s) => Some(s),
            #[cfg(feature = "tls")]
            Link::Tls { .. } => None,
        }
    }

    /// Ready when a read may find something (data, the end, or a failure).
    pub(crate) fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Link::Tcp(s) => s.poll_read_ready(cx),
            #[cfg(feature = "tls")]
            Link::Tls { stream, more } => {
                if *more {
                    return Poll::Ready(Ok(()));
                }
                stream.get_ref().0.poll_read_ready(cx)
            }
        }
    }

    /// Reads into `buf` without waiting: the bytes read (0 at the end of the stream) and
    /// whether another read may find more at once; `WouldBlock` when there is nothing.
    pub(crate) fn try_read(&mut self, buf: &mut [u8]) -> io::Result<(usize, bool)> {
        match self {
            Link::Tcp(s) => read_clearing(s, buf).map(|n| (n, n == buf.len())),
            #[cfg(feature = "tls")]
            Link::Tls { stream, more } => {
                // Polled without the task's waker: a read that finds nothing leaves the socket's
                // readiness cleared, and `poll_readable` then registers the task's waker.
                let mut cx = Context::from_waker(Waker::noop());
                let mut read = ReadBuf::new(buf);
                match Pin::new(&mut **stream).poll_read(&mut cx, &mut read) {
                    Poll::Ready(Ok(())) => {
                        let n = read.filled().len();
                        *more = n > 0;
                        Ok((n, *more))
                    }
                    Poll::Ready(Err(e)) => Err(e),
                    Poll::Pending => {
                        *more = false;
                        Err(io::ErrorKind::WouldBlock.into())
                    }
                }
            }
        }
    }

    /// Whether bytes written are still held on the way to the socket (a TLS connection's
    /// records that the socket did not take): the driver waits until the socket takes them.
    pub(crate) fn holds_output(&self) -> bool {
        match self {
            Link::Tcp(_) => false,
            #[cfg(feature = "tls")]
            Link::Tls { stream, .. } => stream.get_ref().1.wants_write(),
        }
    }

    /// Ready when the socket may take more.
    pub(crate) fn poll_writable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Link::Tcp(s) => s.poll_write_ready(cx),
            #[cfg(feature = "tls")]
            Link::Tls { stream, .. } => {
                if stream.get_ref().1.wants_write() {
                    Pin::new(&mut **stream).poll_flush(cx)
                } else {
                    stream.get_ref().0.poll_write_ready(cx)
                }
            }
        }
    }

    /// Writes the leading `frames` as far as the stream takes them without waiting; returns
    /// how many bytes it took, or `WouldBlock`.
    pub(crate) fn try_write<'a, I>(&mut self, frames: I) -> io::Result<usize>
    where
        I: Iterator<Item = &'a [u8]> + Clone,
    {
        match self {
            Link::Tcp(s) => write_frames(s, frames),
            #[cfg(feature = "tls")]
            Link::Tls { stream, .. } => {
                let mut cx = Context::from_waker(Waker::noop());
                // rustls encrypts into its own bounded buffer (64 KiB by default), which then
                // goes to the socket in one vectored write.
                let mut taken = 0;
                for frame in frames {
                    let n = stream.get_mut().1.writer().write(frame)?;
                    taken += n;
                    if n < frame.len() {
                        break;
                    }
                }
                if let Poll::Ready(Err(e)) = Pin::new(&mut **stream).poll_flush(&mut cx) {
                    return Err(e);
                }
                if taken == 0 {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(taken)
            }
        }
    }

    /// Ends the connection: the end of the server's side (a TLS close_notify first, within
    /// a second), unless senders still hold the socket.
    pub(crate) async fn shutdown(self) {
        match self {
            Link::Tcp(s) => {
                if let Ok(mut s) = Arc::try_unwrap(s) {
                    let _ = s.shutdown().await;
                }
            }
            #[cfg(feature = "tls")]
            Link::Tls { mut stream, .. } => {
                let _ = tokio::time::timeout(TLS_CLOSE_TIME, stream.shutdown()).await;
            }
        }
    }
}
