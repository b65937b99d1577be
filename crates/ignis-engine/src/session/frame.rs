//! WebSocket frames of Engine.IO messages and packets, plain or compressed with the shared
//! per-thread deflate contexts of [`Compression`], and the gathered write of several frames
//! ([`write_frames`]).

use std::cell::RefCell;
use std::io::{self, IoSlice};

use bytes::{BufMut, Bytes, BytesMut};
use ignis_proto::engineio::{Data, Packet};
use ignis_ws::OpCode;
use ignis_ws::deflate::{DeflateConfig, Deflater};
use smallvec::SmallVec;
use tokio::net::TcpStream;

use crate::config::PerMessageDeflate;

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
