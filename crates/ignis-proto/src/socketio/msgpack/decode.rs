//! Decoding msgpack packets: any valid msgpack encoding, read the way notepack.io reads it.

use bytes::Bytes;

use crate::notepack::{self, NotepackError};
use crate::socketio::error::DecodeError;
use crate::socketio::packet::{Packet, PacketType};
use crate::socketio::shape::build_kind;
use crate::value::Value;

impl From<NotepackError> for DecodeError {
    fn from(e: NotepackError) -> Self {
        match e {
            NotepackError::Truncated => DecodeError::Truncated,
            NotepackError::TrailingBytes(n) => DecodeError::TrailingBytes(n),
            NotepackError::Invalid(what) => DecodeError::InvalidMsgpack(what),
            NotepackError::InvalidUtf8 => DecodeError::InvalidUtf8,
            NotepackError::TooDeep => DecodeError::TooDeep,
            NotepackError::TooLarge => DecodeError::InvalidMsgpack("length too large"),
        }
    }
}

/// Decodes one msgpack message into a packet.
///
/// Values are read by [`notepack::decode`]: every msgpack encoding, notepack's meanings for its
/// extensions (`undefined` is an absent key, dates become the ISO-8601 string a JSON client
/// would have received), integer map keys as their decimal string, binary sharing `data`'s
/// buffer.
///
/// Checks what socket.io-msgpack-parser checks (`type` an integer from 0 to 4, `nsp` a string,
/// `data` of the right shape, `id` an integer) and a little more, as the default parser does:
/// the event name must be a non-reserved string or a number, an ACK needs an id, only EVENT and
/// ACK may carry one, and ids are non-negative 64-bit integers.
pub fn decode_msgpack(data: &Bytes) -> Result<Packet, DecodeError> {
    // Refuse anything but a map before decoding a possibly large value.
    match data.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => {}
        Some(_) => return Err(DecodeError::InvalidMsgpack("packet is not a map")),
        None => return Err(DecodeError::Truncated),
    }
    let Value::Map(mut map) = notepack::decode(data)? else {
        return Err(DecodeError::InvalidMsgpack("packet is not a map"));
    };
    let kind = map
        .remove("type")
        .as_ref()
        .and_then(integer)
        .and_then(|n| u8::try_from(n).ok())
        .and_then(PacketType::from_u8)
        .filter(|t| (*t as u8) <= PacketType::ConnectError as u8)
        .ok_or(DecodeError::UnknownType)?;
    let Some(Value::Str(nsp)) = map.remove("nsp") else {
        return Err(DecodeError::InvalidNamespace);
    };
    let id = match map.remove("id") {
        None => None,
        Some(v) => Some(
            integer(&v)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(DecodeError::InvalidAckId)?,
        ),
    };
    let kind = build_kind(kind, map.remove("data"), id)?;
    Ok(Packet {
        nsp: nsp.into(),
        kind,
    })
}

/// An integral number, as JavaScript's `Number.isInteger` sees it (so `2.0` is an integer).
fn integer(v: &Value) -> Option<i128> {
    match *v {
        Value::Int(n) => Some(n.into()),
        Value::UInt(n) => Some(n.into()),
        // Exact for every integral f64 below 2^127; larger ones fail every range check anyway.
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 1.7e38 => Some(f as i128),
        _ => None,
    }
}
