//! Incoming frames to messages: validation (RFC 6455 §5, with the `ws`
//! library's choices where the RFC leaves room) and reassembly of fragments.
//!
//! The decoder owns no read buffer. The caller reads into whatever buffer it
//! likes (the engine uses one per thread) and passes the unread bytes; each
//! call consumes at most one frame, and only a complete one. An idle decoder
//! is a few words; a heap block exists only while a fragmented message is in
//! flight.

use bytes::Bytes;

use crate::close::{CloseCode, CloseFrame};
use crate::deflate::{InflateError, Inflater};
use crate::frame::{HeaderStatus, MAX_CONTROL_PAYLOAD, apply_mask, parse_frame_header};

/// Which end of the connection this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

impl Role {
    /// The other end.
    pub const fn peer(self) -> Role {
        match self {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        }
    }
}

/// A frame or message broke the protocol. The connection must be failed:
/// send a close frame with [`ProtocolError::close_code`] and stop reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// RSV2 or RSV3 is set: no extension that uses them is supported.
    #[error("RSV2 and RSV3 must be clear")]
    ReservedBits,
    /// RSV1 is set without permessage-deflate, or on a control or continuation frame.
    #[error("RSV1 must be clear")]
    UnexpectedRsv1,
    /// An opcode RFC 6455 reserves (3-7, 11-15).
    #[error("invalid opcode {0}")]
    InvalidOpcode(u8),
    /// A continuation frame arrived with no fragmented message in progress.
    #[error("continuation frame without a message to continue")]
    UnexpectedContinuation,
    /// A text or binary frame arrived while a fragmented message awaits its continuation.
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// A ping, pong or close frame without the FIN bit.
    #[error("control frames must not be fragmented")]
    FragmentedControl,
    /// A control frame's payload is longer than 125 bytes (the length given).
    #[error("control frame payload of {0} bytes exceeds 125")]
    ControlTooLong(u8),
    /// A client frame is not masked (server role).
    #[error("MASK must be set")]
    UnmaskedFrame,
    /// A server frame is masked (client role).
    #[error("MASK must be clear")]
    MaskedFrame,
    /// A 64-bit payload length with its most significant bit set.
    #[error("payload length has the most significant bit set")]
    InvalidLength,
    /// The message, reassembled or inflated, is longer than `limit` bytes (the decoder's maximum).
    #[error("message exceeds the {limit}-byte limit")]
    MessageTooBig {
        /// The maximum message size, in bytes.
        limit: usize,
    },
    /// A close frame with a 1-byte payload, too short for a status code.
    #[error("close frame payload of 1 byte")]
    InvalidClosePayload,
    /// A close frame whose status code may not appear on the wire.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// A text message or a close reason that is not valid UTF-8.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A compressed message that does not inflate.
    #[error("invalid compressed data")]
    InvalidCompressedData,
}

impl ProtocolError {
    /// The status code to close the connection with, as `ws` chooses it.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCompressedData => {
                CloseCode::INVALID_PAYLOAD
            }
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl From<InflateError> for ProtocolError {
    fn from(err: InflateError) -> Self {
        match err {
            InflateError::TooBig { limit } => ProtocolError::MessageTooBig { limit },
            InflateError::Corrupt => ProtocolError::InvalidCompressedData,
        }
    }
}

/// A complete message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Always valid UTF-8.
    Text(Bytes),
    /// Binary data.
    Binary(Bytes),
    /// A ping; answer it with a pong carrying the same bytes.
    Ping(Bytes),
    /// A pong, answering a ping (or unsolicited, as a heartbeat).
    Pong(Bytes),
    /// `None` when the close frame had no body (code 1005 locally).
    Close(Option<CloseFrame>),
    /// A permessage-deflate message (RSV1 was set), still compressed, so
    /// the caller can inflate with whichever [`Inflater`] it holds.
    Compressed(CompressedMessage),
}

/// A data message whose payload is still DEFLATE-compressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedMessage {
    text: bool,
    payload: Bytes,
    limit: usize,
}

impl CompressedMessage {
    /// Whether the message is Text (otherwise Binary).
    pub fn is_text(&self) -> bool {
        self.text
    }

    /// The compressed bytes, all fragments joined, without the trailer.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// Inflates under the decoder's size limit and, for text, checks UTF-8.
    /// Returns [`Message::Text`] or [`Message::Binary`].
    pub fn inflate(&self, inflater: &mut Inflater) -> Result<Message, ProtocolError> {
        let data = inflater.inflate(&self.payload, self.limit)?;
        if self.text {
            if std::str::from_utf8(&data).is_err() {
                return Err(ProtocolError::InvalidUtf8);
            }
            Ok(Message::Text(Bytes::from(data)))
        } else {
            Ok(Message::Binary(Bytes::from(data)))
        }
    }
}

/// The result of one [`Decoder::decode`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used; the caller drops them and keeps the rest.
    /// 0 means the next frame is not complete yet.
    pub consumed: usize,
    /// A message, when this frame completed one.
    pub message: Option<Message>,
    /// When `consumed` is 0: how many bytes the pending frame needs in all
    /// (a lower bound while its header is incomplete). 0 otherwise.
    pub needed: usize,
}

impl Decoded {
    fn incomplete(needed: usize) -> Decoded {
        Decoded {
            consumed: 0,
            message: None,
            needed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataKind {
    Text,
    Binary,
}

/// A fragmented message in flight.
#[derive(Debug)]
struct Partial {
    kind: DataKind,
    compressed: bool,
    payload: Vec<u8>,
    /// Prefix of `payload` already known to be valid UTF-8 (uncompressed
    /// text only), so bad text fails at the fragment that breaks it.
    utf8_valid_up_to: usize,
}

/// Turns frames into messages.
#[derive(Debug)]
pub struct Decoder {
    role: Role,
    compression: bool,
    max_message_size: usize,
    partial: Option<Box<Partial>>,
}

impl Decoder {
    /// `max_message_size` bounds a data message: the sum of its fragments'
    /// payloads and, once inflated, its decompressed size. Unlike `ws`, 0 is
    /// not "unlimited": pass `usize::MAX` for that.
    pub fn new(role: Role, max_message_size: usize) -> Decoder {
        Decoder {
            role,
            compression: false,
            max_message_size,
            partial: None,
        }
    }

    /// Allows RSV1 on the first frame of data messages: set when
    /// permessage-deflate was negotiated.
    pub fn with_compression(mut self, enabled: bool) -> Decoder {
        self.compression = enabled;
        self
    }

    /// Which side of the connection this decoder reads for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The longest message, in bytes, this decoder accepts.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Whether a fragmented message is being reassembled.
    pub fn in_message(&self) -> bool {
        self.partial.is_some()
    }

    /// Decodes at most one frame from the start of `src`.
    ///
    /// Header checks happen as soon as the header bytes are there, before
    /// the payload arrives, so an oversized or malformed frame is refused
    /// without buffering it. After an error the decoder must not be used
    /// again; after a [`Message::Close`] the caller should stop reading.
    pub fn decode(&mut self, src: &[u8]) -> Result<Decoded, ProtocolError> {
        let (b0, b1) = match src {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(Decoded::incomplete(2)),
        };
        self.check_first_bytes(b0, b1)?;
        let header = match parse_frame_header(src) {
            Ok(header) => header,
            Err(HeaderStatus::Incomplete(needed)) => return Ok(Decoded::incomplete(needed)),
            Err(HeaderStatus::InvalidLength) => return Err(ProtocolError::InvalidLength),
        };
        let is_data = header.opcode < 0x8;
        if is_data {
            let buffered = self.partial.as_ref().map_or(0, |p| p.payload.len());
            let total = (buffered as u64).saturating_add(header.payload_len);
            if total > self.max_message_size as u64 {
                return Err(ProtocolError::MessageTooBig {
                    limit: self.max_message_size,
                });
            }
        }
        // Bounded by max_message_size (data) or 125 (control), so it fits.
        let payload_len =
            usize::try_from(header.payload_len).map_err(|_| ProtocolError::MessageTooBig {
                limit: self.max_message_size,
            })?;
        let frame_len =
            header
                .header_len
                .checked_add(payload_len)
                .ok_or(ProtocolError::MessageTooBig {
                    limit: self.max_message_size,
                })?;
        let Some(raw) = src.get(header.header_len..frame_len) else {
            return Ok(Decoded::incomplete(frame_len));
        };

        let message = match header.opcode {
            0x8 => Some(Message::Close(close_body(self.unmask(raw, header.mask))?)),
            0x9 => Some(Message::Ping(Bytes::from(self.unmask(raw, header.mask)))),
            0xA => Some(Message::Pong(Bytes::from(self.unmask(raw, header.mask)))),
            0x0 => self.continue_message(raw, header.mask, header.fin)?,
            opcode => {
                let kind = if opcode == 0x1 {
                    DataKind::Text
                } else {
                    DataKind::Binary
                };
                self.start_message(kind, header.rsv1, raw, header.mask, header.fin)?
            }
        };
        Ok(Decoded {
            consumed: frame_len,
            message,
            needed: 0,
        })
    }

    /// The checks that only need the first two bytes, in `ws`'s order.
    fn check_first_bytes(&self, b0: u8, b1: u8) -> Result<(), ProtocolError> {
        if b0 & 0x30 != 0 {
            return Err(ProtocolError::ReservedBits);
        }
        let rsv1 = b0 & 0x40 != 0;
        if rsv1 && !self.compression {
            return Err(ProtocolError::UnexpectedRsv1);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0F;
        let len7 = b1 & 0x7F;
        match opcode {
            0x0 => {
                if rsv1 {
                    return Err(ProtocolError::UnexpectedRsv1);
                }
                if self.partial.is_none() {
                    return Err(ProtocolError::UnexpectedContinuation);
                }
            }
            0x1 | 0x2 => {
                if self.partial.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
            }
            0x8..=0xA => {
                if !fin {
                    return Err(ProtocolError::FragmentedControl);
                }
                if rsv1 {
                    return Err(ProtocolError::UnexpectedRsv1);
                }
                if usize::from(len7) > MAX_CONTROL_PAYLOAD {
                    return Err(ProtocolError::ControlTooLong(len7));
                }
                if opcode == 0x8 && len7 == 1 {
                    return Err(ProtocolError::InvalidClosePayload);
                }
            }
            other => return Err(ProtocolError::InvalidOpcode(other)),
        }
        let masked = b1 & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => Err(ProtocolError::MaskedFrame),
            _ => Ok(()),
        }
    }

    fn unmask(&self, raw: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut data = raw.to_vec();
        if let Some(key) = mask {
            apply_mask(&mut data, key, 0);
        }
        data
    }

    fn start_message(
        &mut self,
        kind: DataKind,
        compressed: bool,
        raw: &[u8],
        mask: Option<[u8; 4]>,
        fin: bool,
    ) -> Result<Option<Message>, ProtocolError> {
        let payload = self.unmask(raw, mask);
        if fin {
            return self.finish(kind, compressed, payload).map(Some);
        }
        let mut partial = Box::new(Partial {
            kind,
            compressed,
            payload,
            utf8_valid_up_to: 0,
        });
        check_text_prefix(&mut partial)?;
        self.partial = Some(partial);
        Ok(None)
    }

    fn continue_message(
        &mut self,
        raw: &[u8],
        mask: Option<[u8; 4]>,
        fin: bool,
    ) -> Result<Option<Message>, ProtocolError> {
        let max = self.max_message_size;
        let Some(partial) = self.partial.as_mut() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let start = partial.payload.len();
        let needed = start + raw.len();
        if needed > partial.payload.capacity() {
            // Doubling, but never past the limit the header check enforced.
            let target = needed.max(partial.payload.capacity().saturating_mul(2).min(max));
            partial.payload.reserve_exact(target - start);
        }
        partial.payload.extend_from_slice(raw);
        if let Some(key) = mask {
            apply_mask(&mut partial.payload[start..], key, 0);
        }
        check_text_prefix(partial)?;
        if !fin {
            return Ok(None);
        }
        let Some(partial) = self.partial.take() else {
            return Err(ProtocolError::UnexpectedContinuation);
        };
        let Partial {
            kind,
            compressed,
            payload,
            ..
        } = *partial;
        self.finish(kind, compressed, payload).map(Some)
    }

    fn finish(
        &self,
        kind: DataKind,
        compressed: bool,
        payload: Vec<u8>,
    ) -> Result<Message, ProtocolError> {
        if compressed {
            return Ok(Message::Compressed(CompressedMessage {
                text: kind == DataKind::Text,
                payload: Bytes::from(payload),
                limit: self.max_message_size,
            }));
        }
        match kind {
            DataKind::Text => {
                if !is_utf8(&payload) {
                    return Err(ProtocolError::InvalidUtf8);
                }
                Ok(Message::Text(Bytes::from(payload)))
            }
            DataKind::Binary => Ok(Message::Binary(Bytes::from(payload))),
        }
    }
}

/// Whether `bytes` is UTF-8. Most traffic is ASCII, which a word-at-a-time check clears in a
/// fraction of the full validation's instructions on short messages.
fn is_utf8(bytes: &[u8]) -> bool {
    bytes.is_ascii() || std::str::from_utf8(bytes).is_ok()
}

/// Validates the newly received part of uncompressed text, allowing a
/// character to be cut at the end (it may continue in the next fragment).
fn check_text_prefix(partial: &mut Partial) -> Result<(), ProtocolError> {
    if partial.kind != DataKind::Text || partial.compressed {
        return Ok(());
    }
    let unchecked = partial
        .payload
        .get(partial.utf8_valid_up_to..)
        .unwrap_or_default();
    match std::str::from_utf8(unchecked) {
        Ok(_) => partial.utf8_valid_up_to = partial.payload.len(),
        Err(e) if e.error_len().is_none() => partial.utf8_valid_up_to += e.valid_up_to(),
        Err(_) => return Err(ProtocolError::InvalidUtf8),
    }
    Ok(())
}

fn close_body(payload: Vec<u8>) -> Result<Option<CloseFrame>, ProtocolError> {
    let (code, reason) = match payload.as_slice() {
        [] => return Ok(None),
        [hi, lo, reason @ ..] => (u16::from_be_bytes([*hi, *lo]), reason),
        [_] => return Err(ProtocolError::InvalidClosePayload),
    };
    let code = CloseCode(code);
    if !code.is_valid_on_wire() {
        return Err(ProtocolError::InvalidCloseCode(code.0));
    }
    if std::str::from_utf8(reason).is_err() {
        return Err(ProtocolError::InvalidUtf8);
    }
    let reason = Bytes::from(payload).slice(2..);
    Ok(Some(CloseFrame { code, reason }))
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
