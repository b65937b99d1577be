//! What a session sends: messages shared by many sessions ([`SharedMessage`], [`Round`]),
//! messages written in place for one ([`TextMessage`]), and the items of the outbound queue
//! ([`Outgoing`], [`Frame`]).

use std::sync::{Arc, OnceLock};

use bytes::{Buf, Bytes};
use ignis_proto::engineio::{Data, Packet, Str};

use crate::error::HeadroomError;
use crate::session::pool::{SpareBuffers, Spares};

thread_local! {
    /// Buffers of [`TextMessage`]s whose frames were written.
    static SPARE_TEXTS: Spares<Vec<u8>> = const { Spares::new() };
}

/// A message meant for many sessions: encoded once, and turned into a WebSocket frame at most
/// once whatever the number of recipients.
pub struct SharedMessage {
    pub(super) data: Data,
    compress: bool,
    frame: OnceLock<Bytes>,
    deflated: OnceLock<Bytes>,
}

impl SharedMessage {
    /// A message shared by every session it is sent to.
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

    /// The message's payload.
    pub fn data(&self) -> &Data {
        &self.data
    }

    pub(crate) fn ws_frame(&self) -> &Bytes {
        self.frame
            .get_or_init(|| crate::session::frame::message_frame(&self.data))
    }

    pub(crate) fn ws_frame_deflated(&self, deflate: &crate::session::frame::Compression) -> &Bytes {
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
///
/// [`Socket::send_round`]: crate::session::Socket::send_round
pub struct Round {
    pub(super) messages: Vec<Arc<SharedMessage>>,
    /// Whether permessage-deflate may compress one of the messages.
    pub(super) compressible: bool,
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

    /// Whether the round carries no message.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Every message's uncompressed WebSocket frame, back to back.
    pub(super) fn frames(&self) -> &Bytes {
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
///
/// [`Socket::send_text`]: crate::session::Socket::send_text
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

    /// Bytes of the text, without the headroom.
    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(TEXT_HEADROOM)
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
    pub(super) fn into_owned_frame(self) -> Frame {
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
    ///
    /// [`Socket::send_text`]: crate::session::Socket::send_text
    /// [`Outbox::sink`]: crate::session::Outbox::sink
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::pool::Reusable;

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
            let copied = crate::session::frame::message_frame(&Data::Text(Str::from(text)));
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
