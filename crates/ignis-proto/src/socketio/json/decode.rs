//! Decoding the default parser's text format: a small state machine per connection.

use bytes::Bytes;

use super::placeholder;
use crate::socketio::error::DecodeError;
use crate::socketio::packet::{Packet, PacketKind, PacketType};
use crate::socketio::shape::build_kind;
use crate::value::CompactString;

/// socket.io-parser's default `maxAttachments`.
pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;

/// Decodes the Socket.IO messages of one connection, in the order they arrive.
///
/// A BINARY_EVENT / BINARY_ACK header is held until its attachments have arrived; then its
/// placeholders are replaced by [`Value::Bytes`](crate::value::Value::Bytes). Idle, the decoder
/// is two words: the pending state is boxed.
///
/// After an error the decoder is reset; the caller is expected to close the connection anyway.
///
/// Decoding follows socket.io-parser 4.2 and is stricter where it would accept nonsense:
/// an empty message, an attachment count that is not plain digits, an id on a packet type other
/// than EVENT and ACK, an EVENT without payload, an ACK without id or payload, and placeholders
/// that repeat a number or leave an attachment unused are all errors.
#[derive(Debug)]
pub struct JsonDecoder {
    pending: Option<Box<Pending>>,
    max_attachments: usize,
}

/// A binary packet waiting for its attachments.
#[derive(Debug)]
struct Pending {
    nsp: CompactString,
    kind: PacketKind,
    expected: usize,
    attachments: Vec<Bytes>,
}

impl Default for JsonDecoder {
    fn default() -> Self {
        JsonDecoder::new()
    }
}

impl JsonDecoder {
    /// A decoder that accepts up to [`DEFAULT_MAX_ATTACHMENTS`] attachments per packet.
    pub fn new() -> JsonDecoder {
        JsonDecoder::with_max_attachments(DEFAULT_MAX_ATTACHMENTS)
    }

    /// A decoder that accepts up to `max` attachments per packet.
    pub fn with_max_attachments(max: usize) -> JsonDecoder {
        JsonDecoder {
            pending: None,
            max_attachments: max,
        }
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_waiting_for_attachments(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops a partly received binary packet.
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// Decodes a text message: a whole packet, or `None` for a binary packet header whose
    /// attachments are still to come.
    pub fn decode_text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if self.pending.take().is_some() {
            return Err(DecodeError::UnexpectedText);
        }
        let header = Header::parse(text, self.max_attachments)?;
        let payload = if header.payload.is_empty() {
            None
        } else {
            Some(
                super::parse::parse(header.payload)
                    .map_err(|e| DecodeError::InvalidJson(serde::de::Error::custom(e)))?,
            )
        };
        let kind = build_kind(header.kind, payload, header.id)?;
        let nsp = CompactString::from(header.nsp);
        if header.attachments == 0 {
            return Ok(Some(Packet { nsp, kind }));
        }
        placeholder::check(&kind, header.attachments)?;
        self.pending = Some(Box::new(Pending {
            nsp,
            kind,
            expected: header.attachments,
            attachments: Vec::with_capacity(header.attachments),
        }));
        Ok(None)
    }

    /// Decodes a binary message, an attachment of the pending binary packet: the packet once it
    /// is complete, `None` while attachments are missing.
    pub fn decode_binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let Some(pending) = self.pending.as_mut() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        pending.attachments.push(data);
        if pending.attachments.len() < pending.expected {
            return Ok(None);
        }
        let Some(pending) = self.pending.take() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        let Pending {
            nsp,
            mut kind,
            attachments,
            ..
        } = *pending;
        placeholder::fill(&mut kind, &attachments)?;
        Ok(Some(Packet { nsp, kind }))
    }
}

/// The parts of a text message before its JSON payload.
struct Header<'a> {
    kind: PacketType,
    attachments: usize,
    nsp: &'a str,
    id: Option<u64>,
    payload: &'a str,
}

impl<'a> Header<'a> {
    fn parse(text: &'a str, max_attachments: usize) -> Result<Header<'a>, DecodeError> {
        let bytes = text.as_bytes();
        let first = *bytes.first().ok_or(DecodeError::Empty)?;
        let kind = first
            .checked_sub(b'0')
            .and_then(PacketType::from_u8)
            .ok_or(DecodeError::UnknownType)?;
        let mut at = 1;

        let mut attachments = 0;
        if matches!(kind, PacketType::BinaryEvent | PacketType::BinaryAck) {
            let dash = bytes[at..]
                .iter()
                .position(|&b| b == b'-')
                .ok_or(DecodeError::InvalidAttachments)?
                + at;
            let count = parse_count(&bytes[at..dash])?;
            if count == 0 {
                return Err(DecodeError::InvalidAttachments);
            }
            attachments = match usize::try_from(count) {
                Ok(n) if n <= max_attachments => n,
                _ => {
                    return Err(DecodeError::TooManyAttachments {
                        count,
                        max: max_attachments,
                    });
                }
            };
            at = dash + 1;
        }

        let mut nsp = "/";
        if bytes.get(at) == Some(&b'/') {
            match bytes[at..].iter().position(|&b| b == b',') {
                Some(comma) => {
                    nsp = &text[at..at + comma];
                    at += comma + 1;
                }
                None => {
                    nsp = &text[at..];
                    at = bytes.len();
                }
            }
        }

        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let id = if digits == 0 {
            None
        } else {
            let id = parse_digits(&bytes[at..at + digits]).ok_or(DecodeError::InvalidAckId)?;
            at += digits;
            Some(id)
        };

        Ok(Header {
            kind,
            attachments,
            nsp,
            id,
            payload: &text[at..],
        })
    }
}

/// Parses an attachment count: plain ASCII digits, saturating at `u64::MAX` (which is then
/// reported as too many).
fn parse_count(digits: &[u8]) -> Result<u64, DecodeError> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(DecodeError::InvalidAttachments);
    }
    Ok(parse_digits(digits).unwrap_or(u64::MAX))
}

/// Parses a non-empty run of ASCII digits; `None` when empty, not digits, or above `u64::MAX`.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}
