//! Decoding msgpack packets: any valid msgpack encoding, read the way notepack.io reads it.

use std::collections::HashSet;

use bytes::Bytes;

use super::date;
use crate::socketio::error::DecodeError;
use crate::socketio::packet::{Packet, PacketType};
use crate::socketio::shape::{MAX_DEPTH, build_kind};
use crate::value::{Map, Value};

/// Decodes one msgpack message into a packet.
///
/// Accepts every msgpack encoding of a value, with notepack's meanings for its extensions:
/// `fixext 1` type 0 is `undefined` (an absent key at the top level, dropped from objects,
/// `null` in arrays, as `JSON.stringify` would have it), `fixext 8` type 0 is a `Date` and the
/// standard timestamp extension (type -1) too (both become the ISO-8601 string a JSON client
/// would have received), `ext 8/16/32` type 0 is an `ArrayBuffer` (binary), and any other
/// extension becomes `[type, <binary>]`. Integer map keys become their decimal string.
/// Binary values share `data`'s buffer.
///
/// Checks what socket.io-msgpack-parser checks (`type` an integer from 0 to 4, `nsp` a string,
/// `data` of the right shape, `id` an integer) and a little more, as the default parser does:
/// the event name must be a non-reserved string or a number, an ACK needs an id, only EVENT and
/// ACK may carry one, and ids are non-negative 64-bit integers.
pub fn decode_msgpack(data: &Bytes) -> Result<Packet, DecodeError> {
    let mut reader = Reader { data, at: 0 };
    let marker = reader.byte()?;
    let len = match marker {
        0x80..=0x8f => usize::from(marker & 0x0f),
        0xde => reader.len16()?,
        0xdf => reader.len32()?,
        _ => return Err(DecodeError::InvalidMsgpack("packet is not a map")),
    };
    reader.check_room(len, 2)?;

    let (mut kind, mut payload, mut nsp, mut id) = (None, None, None, None);
    for _ in 0..len {
        let key = reader.key()?;
        let value = reader.value(0)?;
        match key.as_str() {
            "type" => kind = value,
            "data" => payload = value,
            "nsp" => nsp = value,
            "id" => id = value,
            _ => {}
        }
    }
    if reader.at != data.len() {
        return Err(DecodeError::TrailingBytes(data.len() - reader.at));
    }

    let kind = kind
        .as_ref()
        .and_then(integer)
        .and_then(|n| u8::try_from(n).ok())
        .and_then(PacketType::from_u8)
        .filter(|t| (*t as u8) <= PacketType::ConnectError as u8)
        .ok_or(DecodeError::UnknownType)?;
    let Some(Value::Str(nsp)) = nsp else {
        return Err(DecodeError::InvalidNamespace);
    };
    let id = match id {
        None => None,
        Some(v) => Some(
            integer(&v)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or(DecodeError::InvalidAckId)?,
        ),
    };
    let kind = build_kind(kind, payload, id)?;
    Ok(Packet { nsp, kind })
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

struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.at.checked_add(n).ok_or(DecodeError::Truncated)?;
        let slice = self.data.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn take_bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.at;
        self.take(n)?;
        Ok(self.data.slice(start..self.at))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        self.take(N)?.try_into().map_err(|_| DecodeError::Truncated)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.fixed::<1>()?[0])
    }

    fn len8(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(self.byte()?))
    }

    fn len16(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(u16::from_be_bytes(self.fixed()?)))
    }

    fn len32(&mut self) -> Result<usize, DecodeError> {
        usize::try_from(u32::from_be_bytes(self.fixed()?)).map_err(|_| DecodeError::Truncated)
    }

    /// A container of `len` items of at least `min_size` bytes each must fit in what is left,
    /// so a declared length never drives an allocation larger than the input.
    fn check_room(&self, len: usize, min_size: usize) -> Result<(), DecodeError> {
        match len.checked_mul(min_size) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(DecodeError::Truncated),
        }
    }

    fn str(&mut self, len: usize) -> Result<String, DecodeError> {
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    /// A map key: a string, or an integer taken as its decimal string (as a JavaScript object
    /// key would be).
    fn key(&mut self) -> Result<String, DecodeError> {
        let marker = self.byte()?;
        let len = match marker {
            0xa0..=0xbf => usize::from(marker & 0x1f),
            0xd9 => self.len8()?,
            0xda => self.len16()?,
            0xdb => self.len32()?,
            0x00..=0x7f | 0xe0..=0xff | 0xcc..=0xd3 => {
                self.at -= 1;
                return match self.value(0)? {
                    Some(Value::Int(n)) => Ok(n.to_string()),
                    Some(Value::UInt(n)) => Ok(n.to_string()),
                    _ => Err(DecodeError::InvalidMsgpack("map key is not a string")),
                };
            }
            _ => return Err(DecodeError::InvalidMsgpack("map key is not a string")),
        };
        self.str(len)
    }

    /// A value at nesting level `depth` (0 for the packet's own fields); `None` is `undefined`.
    fn value(&mut self, depth: usize) -> Result<Option<Value>, DecodeError> {
        let marker = self.byte()?;
        let value = match marker {
            0x00..=0x7f => Value::Int(marker.into()),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => Value::Str(self.str(usize::from(marker & 0x1f))?),
            0xc0 => Value::Null,
            0xc1 => return Err(DecodeError::InvalidMsgpack("reserved marker 0xc1")),
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let len = self.len8()?;
                Value::Bytes(self.take_bytes(len)?)
            }
            0xc5 => {
                let len = self.len16()?;
                Value::Bytes(self.take_bytes(len)?)
            }
            0xc6 => {
                let len = self.len32()?;
                Value::Bytes(self.take_bytes(len)?)
            }
            0xc7 => {
                let len = self.len8()?;
                return self.ext(len, true);
            }
            0xc8 => {
                let len = self.len16()?;
                return self.ext(len, true);
            }
            0xc9 => {
                let len = self.len32()?;
                return self.ext(len, true);
            }
            0xca => Value::Float(f32::from_be_bytes(self.fixed()?).into()),
            0xcb => Value::Float(f64::from_be_bytes(self.fixed()?)),
            0xcc => Value::Int(self.byte()?.into()),
            0xcd => Value::Int(u16::from_be_bytes(self.fixed()?).into()),
            0xce => Value::Int(u32::from_be_bytes(self.fixed()?).into()),
            0xcf => Value::from_u64(u64::from_be_bytes(self.fixed()?)),
            0xd0 => Value::Int(i8::from_be_bytes(self.fixed()?).into()),
            0xd1 => Value::Int(i16::from_be_bytes(self.fixed()?).into()),
            0xd2 => Value::Int(i32::from_be_bytes(self.fixed()?).into()),
            0xd3 => Value::Int(i64::from_be_bytes(self.fixed()?)),
            0xd4 => return self.ext(1, false),
            0xd5 => return self.ext(2, false),
            0xd6 => return self.ext(4, false),
            0xd7 => return self.ext(8, false),
            0xd8 => return self.ext(16, false),
            0xd9 => {
                let len = self.len8()?;
                Value::Str(self.str(len)?)
            }
            0xda => {
                let len = self.len16()?;
                Value::Str(self.str(len)?)
            }
            0xdb => {
                let len = self.len32()?;
                Value::Str(self.str(len)?)
            }
            0xdc => {
                let len = self.len16()?;
                self.array(len, depth)?
            }
            0xdd => {
                let len = self.len32()?;
                self.array(len, depth)?
            }
            0xde => {
                let len = self.len16()?;
                self.map(len, depth)?
            }
            0xdf => {
                let len = self.len32()?;
                self.map(len, depth)?
            }
            0xe0..=0xff => Value::Int((marker as i8).into()),
        };
        Ok(Some(value))
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.check_room(len, 1)?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?.unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep);
        }
        self.check_room(len, 2)?;
        let mut entries = Vec::with_capacity(len);
        let mut has_undefined = false;
        for _ in 0..len {
            let key = self.key()?;
            let value = self.value(depth + 1)?;
            has_undefined |= value.is_none();
            entries.push((key, value));
        }
        if !has_undefined {
            let entries = entries
                .into_iter()
                .map(|(k, v)| (k, v.unwrap_or_default()))
                .collect();
            return Ok(Value::Map(Map::from_entries(entries)));
        }
        // A key whose last value is `undefined` is dropped, as `JSON.stringify` drops it.
        let mut seen = HashSet::with_capacity(entries.len());
        let mut dropped = HashSet::new();
        for (key, value) in entries.iter().rev() {
            if seen.insert(key.as_str()) && value.is_none() {
                dropped.insert(key.clone());
            }
        }
        let entries = entries
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect();
        let mut map = Map::from_entries(entries);
        map.retain(|k, _| !dropped.contains(k));
        Ok(Value::Map(map))
    }

    /// An extension of `len` bytes whose type byte comes next; `variable` for the `ext 8/16/32`
    /// forms, whose type 0 notepack uses for `ArrayBuffer`.
    fn ext(&mut self, len: usize, variable: bool) -> Result<Option<Value>, DecodeError> {
        let ext_type = i8::from_be_bytes(self.fixed()?);
        let body = self.take_bytes(len)?;
        let value = match (ext_type, variable, len) {
            (0, true, _) => Value::Bytes(body),
            (0, false, 1) => return Ok(None),
            (0, false, 8) => {
                let raw: [u8; 8] = body[..].try_into().map_err(|_| DecodeError::Truncated)?;
                let ms = i64::from_be_bytes(raw);
                date::iso8601_from_millis(ms).map_or(Value::Null, Value::Str)
            }
            (-1, _, _) => match date::millis_from_timestamp(&body) {
                Some(ms) => date::iso8601_from_millis(ms).map_or(Value::Null, Value::Str),
                None => Value::Array(vec![Value::Int(-1), Value::Bytes(body)]),
            },
            _ => Value::Array(vec![Value::Int(ext_type.into()), Value::Bytes(body)]),
        };
        Ok(Some(value))
    }
}
