//! The senders' side of the WebSocket fast path: a session's queued items as frames for its
//! connection ([`frame_of`]), written to the connection's socket by the senders themselves when
//! nothing is ahead of them ([`DirectSink`]). The connection's task
//! ([`crate::transport::driver`]) writes the rest with the same functions.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use ignis_proto::engineio::Packet;
use smallvec::SmallVec;
use tokio::net::TcpStream;

use crate::session::frame::{Compression, packet_frame, write_frames};
use crate::session::message::{Frame, Outgoing};

/// The compression a connection negotiated: the shared settings and the window it writes with.
pub(crate) type ConnCompression<'a> = Option<(&'a Compression, u8)>;

/// The frame of one queued item for a connection with this compression.
pub(crate) fn frame_of(item: Outgoing, compression: ConnCompression<'_>) -> Frame {
    Frame::Shared(match (item, compression) {
        (Outgoing::Frame(frame), _) => return frame,
        // Frames compressed with the default window are shared by every recipient.
        (Outgoing::Shared(m), _) if !m.compress() => m.ws_frame().clone(),
        (Outgoing::Shared(m), Some((c, bits))) if bits == c.window_bits => {
            m.ws_frame_deflated(c).clone()
        }
        (Outgoing::Shared(m), Some((c, bits))) => c.message_frame_with(m.data(), bits),
        (Outgoing::Shared(m), None) => m.ws_frame().clone(),
        (Outgoing::Packet(Packet::Message(data)), Some((c, bits))) => {
            c.message_frame_with(&data, bits)
        }
        (Outgoing::Packet(p), _) => packet_frame(&p),
    })
}

/// What a sender needs to write to a WebSocket session's socket itself (see
/// [`crate::session::Outbox`]). A connection whose socket only its task writes (TLS) has a sink
/// without a stream: senders then queue and wake the task, as they do while it is awake.
pub(crate) struct DirectSink {
    stream: Option<Arc<TcpStream>>,
    compression: Option<(Arc<Compression>, u8)>,
}

impl DirectSink {
    /// The sink of a connection over `stream` (none: only the task writes) that writes with
    /// `compression` (the shared settings and the window it negotiated), if any.
    pub(crate) fn new(
        stream: Option<Arc<TcpStream>>,
        compression: Option<(Arc<Compression>, u8)>,
    ) -> DirectSink {
        DirectSink {
            stream,
            compression,
        }
    }

    /// Whether senders may write to the socket themselves.
    #[inline]
    pub(crate) fn is_direct(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether the connection negotiated permessage-deflate.
    pub(crate) fn compresses(&self) -> bool {
        self.compression.is_some()
    }

    /// Writes the frames of `items` as far as the socket takes them without blocking, and
    /// returns what is left: empty when all went out (or when a `volatile` message found the
    /// socket full and was dropped, as volatile messages are).
    pub(crate) fn write(
        &self,
        items: impl Iterator<Item = Outgoing>,
        volatile: bool,
    ) -> SmallVec<[Frame; 4]> {
        // Called for every recipient of every message: a few frames stay off the heap.
        let compression = self.compression.as_ref().map(|(c, bits)| (&**c, *bits));
        // Without compression a broadcast's frame is written from the shared message itself,
        // and only what the socket does not take becomes a frame of its own: cloning the frame
        // for every recipient (a reference count that both workers touch, once up and once down
        // per delivery) cost more than the rest of a delivery's user time at high rates.
        // Packets (rare here), and everything on a compressed connection, are framed first.
        let items: SmallVec<[Outgoing; 4]> = items
            .map(|item| match (item, compression) {
                (Outgoing::Shared(m), None) => Outgoing::Shared(m),
                (item, compression) => Outgoing::Frame(frame_of(item, compression)),
            })
            .collect();
        match &self.stream {
            Some(stream) => write_items(stream, items, volatile),
            // Never here: senders write only to a direct sink (`Outbox::writable_now`).
            None => items.into_iter().map(|item| frame_of(item, None)).collect(),
        }
    }

    /// Writes `frames` as far as the socket takes them without blocking; returns the rest, if
    /// any (none either when a `volatile` write found the socket full: it is dropped).
    pub(crate) fn write_bytes(&self, frames: &Bytes, volatile: bool) -> Option<Frame> {
        // Straight to the socket, past tokio's readiness: reading it costs a cache miss per
        // recipient of a broadcast (a line no other step of the write touches), and when the
        // socket is full the task this leaves the rest to finds out through tokio, which then
        // clears the readiness.
        let Some(stream) = &self.stream else {
            // Never here: senders write only to a direct sink (`Outbox::writable_now`).
            return Some(Frame::Shared(frames.clone()));
        };
        match socket2::SockRef::from(&**stream).send(frames) {
            Ok(n) if n >= frames.len() => None,
            Ok(n) => Some(Frame::Shared(frames.slice(n..))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && volatile => None,
            // Full, interrupted or failed: the task writes it, and sees the failure itself.
            Err(_) => Some(Frame::Shared(frames.clone())),
        }
    }
}

/// Writes the frames of `items` (framed already, or shared messages sent uncompressed) as far
/// as the socket takes them, and returns what is left; see [`DirectSink::write`].
fn write_items(
    stream: &TcpStream,
    mut items: SmallVec<[Outgoing; 4]>,
    volatile: bool,
) -> SmallVec<[Frame; 4]> {
    fn bytes(item: &Outgoing) -> &[u8] {
        match item {
            Outgoing::Shared(m) => m.ws_frame(),
            Outgoing::Frame(frame) => frame.as_slice(),
            // Never here: `DirectSink::write` frames packets first.
            Outgoing::Packet(_) => &[],
        }
    }
    let mut written = match write_frames(stream, items.iter().map(bytes)) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && volatile => return SmallVec::new(),
        // Full, interrupted or failed: the task writes it, and sees the failure itself.
        Err(_) => 0,
    };
    // Frames written whole leave (in order, so that their buffers can be reused); a frame
    // written in part keeps only its rest.
    let mut whole = 0;
    for item in items.iter() {
        let len = bytes(item).len();
        if written < len {
            break;
        }
        written -= len;
        whole += 1;
    }
    for item in items.drain(..whole) {
        if let Outgoing::Frame(frame) = item {
            frame.recycle();
        }
    }
    let mut rest: SmallVec<[Frame; 4]> =
        items.into_iter().map(|item| frame_of(item, None)).collect();
    if let Some(first) = rest.first_mut() {
        first.advance(written);
    }
    rest
}
