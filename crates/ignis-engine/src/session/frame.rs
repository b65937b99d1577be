//! How a session's queued items become WebSocket frames (plain, or compressed with the shared
//! per-thread deflate contexts of [`Compression`]), and the direct write of those frames to a
//! connection's socket by the senders themselves ([`DirectSink`]).
//!
//! This is the session's side of the WebSocket fast path: senders write from here, the
//! connection's task ([`crate::transport::driver`]) writes the rest with the same functions.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use ignis_proto::engineio::{Data, Packet};
use ignis_ws::OpCode;
use ignis_ws::deflate::{DeflateConfig, Deflater};
use smallvec::SmallVec;
use tokio::net::TcpStream;

use crate::config::PerMessageDeflate;
use crate::session::{Frame, Outgoing};

/// The negotiated permessage-deflate settings, shared by all connections: the server answers
/// every offer with both no-context-takeover flags, so no compression state outlives a message
/// and every connection can use the same per-thread contexts.
pub(crate) struct Compression {
    pub(crate) config: DeflateConfig,
    /// The window the server compresses with unless a client asks for a smaller one.
    pub(crate) window_bits: u8,
}

impl Compression {
    pub(crate) fn new(options: PerMessageDeflate) -> Compression {
        let window_bits = options.server_max_window_bits.clamp(9, 15);
        let mut config = DeflateConfig::stateless();
        config.threshold = options.threshold;
        config.level = options.level;
        // 15 is the protocol's default: no need to say it.
        config.server_max_window_bits = (window_bits < 15).then_some(window_bits);
        Compression {
            config,
            window_bits,
        }
    }

    /// A frame for `data`, compressed with the default window when it is long enough.
    pub(crate) fn message_frame(&self, data: &Data) -> Bytes {
        self.message_frame_with(data, self.window_bits)
    }

    /// A frame for `data`, compressed with a window of `bits` when it is long enough.
    pub(crate) fn message_frame_with(&self, data: &Data, bits: u8) -> Bytes {
        if data.len() < self.config.threshold {
            return message_frame(data);
        }
        let (opcode, payload) = match data {
            Data::Text(s) => {
                let mut v = Vec::with_capacity(s.len() + 1);
                v.push(b'4');
                v.extend_from_slice(s.as_bytes());
                (OpCode::Text, v)
            }
            Data::Binary(b) => (OpCode::Binary, b.to_vec()),
        };
        DEFLATER.with(|cell| {
            let mut slot = cell.borrow_mut();
            // One context per thread, rebuilt only when a connection negotiated another window.
            if slot.as_ref().is_none_or(|(b, _)| *b != bits) {
                *slot = Some((bits, Deflater::new(self.config.level, bits, true)));
            }
            let Some((_, deflater)) = slot.as_mut() else {
                return ignis_ws::server_frame(opcode, &payload);
            };
            match ignis_ws::server_frame_compressed(opcode, &payload, deflater) {
                Ok(frame) => frame,
                Err(e) => {
                    // The message must not be lost: send it uncompressed.
                    tracing::warn!(error = %e, "deflate failed");
                    *slot = None;
                    ignis_ws::server_frame(opcode, &payload)
                }
            }
        })
    }
}

thread_local! {
    static DEFLATER: RefCell<Option<(u8, Deflater)>> = const { RefCell::new(None) };
}

/// The frame of a `message` packet: a text frame `4<text>` or a binary frame.
pub(crate) fn message_frame(data: &Data) -> Bytes {
    match data {
        Data::Text(s) => text_frame(b'4', s.as_bytes()),
        Data::Binary(b) => ignis_ws::server_frame(OpCode::Binary, b),
    }
}

pub(crate) fn text_frame(type_char: u8, rest: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(rest.len() + 11);
    ignis_ws::encode_frame_header(true, false, OpCode::Text, rest.len() + 1, None, &mut frame);
    frame.put_u8(type_char);
    frame.put_slice(rest);
    frame.freeze()
}

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

/// The most frames one vectored write carries.
const MAX_SLICES: usize = 64;

/// Consecutive frames up to this many bytes in all are copied into one buffer and leave in one
/// plain `write`. Broadcasts that came faster than the writes leave several small frames per
/// connection: the kernel takes one buffer at a fraction of the cost of as many slices as
/// frames (at 4 000 broadcasts/s to 1 000 clients, 40 frames of 60 bytes per write), and the
/// copy here costs less than the difference.
const GATHER_MAX: usize = 16 * 1024;

thread_local! {
    /// Where [`write_frames`] gathers frames; the thread's, so connections own none.
    static GATHER_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes `frames` (in order, up to [`MAX_SLICES`] of them) as far as the socket takes them
/// without blocking; returns the bytes written, counted from the first frame's start.
pub(crate) fn write_frames<'a, I>(stream: &TcpStream, frames: I) -> io::Result<usize>
where
    I: Iterator<Item = &'a [u8]> + Clone,
{
    // Most writes carry one frame: it goes as it is. (The callers' iterators know their length.)
    if frames.size_hint().1.is_some_and(|n| n <= 1) {
        return match frames.clone().next() {
            Some(first) => stream.try_write(first),
            None => Ok(0),
        };
    }
    let mut total = 0;
    let mut small = 0;
    for frame in frames.clone().take(MAX_SLICES) {
        if total + frame.len() > GATHER_MAX {
            break;
        }
        total += frame.len();
        small += 1;
    }
    if small >= 2 {
        let gathered = GATHER_BUF.with(|cell| {
            let mut buf = cell.try_borrow_mut().ok()?;
            buf.clear();
            buf.reserve(total);
            for frame in frames.clone().take(small) {
                buf.extend_from_slice(frame);
            }
            Some(stream.try_write(&buf))
        });
        if let Some(result) = gathered {
            return result;
        }
    }
    let slices: SmallVec<[IoSlice<'_>; 8]> = frames.take(MAX_SLICES).map(IoSlice::new).collect();
    stream.try_write_vectored(&slices)
}

/// What a sender needs to write to a WebSocket session's socket itself (see
/// [`crate::session::Outbox`]).
pub(crate) struct DirectSink {
    stream: Arc<TcpStream>,
    compression: Option<(Arc<Compression>, u8)>,
}

impl DirectSink {
    /// The sink of a connection over `stream` that writes with `compression` (the shared
    /// settings and the window it negotiated), if any.
    pub(crate) fn new(
        stream: Arc<TcpStream>,
        compression: Option<(Arc<Compression>, u8)>,
    ) -> DirectSink {
        DirectSink {
            stream,
            compression,
        }
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
        write_items(&self.stream, items, volatile)
    }

    /// Writes `frames` as far as the socket takes them without blocking; returns the rest, if
    /// any (none either when a `volatile` write found the socket full: it is dropped).
    pub(crate) fn write_bytes(&self, frames: &Bytes, volatile: bool) -> Option<Frame> {
        // Straight to the socket, past tokio's readiness: reading it costs a cache miss per
        // recipient of a broadcast (a line no other step of the write touches), and when the
        // socket is full the task this leaves the rest to finds out through tokio, which then
        // clears the readiness.
        match socket2::SockRef::from(&*self.stream).send(frames) {
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

pub(crate) fn packet_frame(packet: &Packet) -> Bytes {
    match packet {
        Packet::Message(data) => message_frame(data),
        other => {
            // Sized for the type and the text: no growth on the way (an open packet is 100
            // bytes, which took two reallocations).
            let len = match other {
                Packet::Open(s) | Packet::Ping(s) | Packet::Pong(s) => s.len(),
                _ => 0,
            };
            let mut text = Vec::with_capacity(1 + len);
            other.encode_text(&mut text);
            ignis_ws::server_frame(OpCode::Text, &text)
        }
    }
}
