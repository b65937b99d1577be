//! msgpack as notepack.io writes and reads it: the codec of `socket.io-msgpack-parser`,
//! `@socket.io/redis-adapter` 8 and `@socket.io/redis-emitter` 5.
//!
//! Writing follows notepack byte for byte for the values a [`Value`] can hold: the smallest
//! integer form (unsigned forms for non-negative numbers), integral floats as integers (a
//! JavaScript number has no separate integer type), other floats as float 64, `bin` for binary,
//! maps with string keys in insertion order.
//!
//! Reading accepts any msgpack and gives each extension notepack's meaning, turned into what a
//! JSON client would have seen: a `Date` (timestamp extension -1, or notepack 2's `fixext 8`
//! type 0) becomes its ISO-8601 string, `undefined` (`fixext 1` type 0) is dropped from maps
//! and is `null` elsewhere, `ext 8/16/32` type 0 (an `ArrayBuffer`) is binary, and any other
//! extension is `[type, <binary>]`.

use std::collections::HashSet;

use bytes::Bytes;

use crate::value::{Map, Value};

/// Deeper values are refused, so a hostile message cannot exhaust the stack.
pub const MAX_DEPTH: usize = 128;

/// Why a msgpack message could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotepackError {
    /// The input ends before the value it started is complete.
    #[error("the message ends in the middle of a value")]
    Truncated,
    /// A whole value was read, but this many bytes follow it.
    #[error("{0} bytes after the value")]
    TrailingBytes(usize),
    /// A marker or a structure msgpack does not allow, with what was wrong.
    #[error("invalid msgpack: {0}")]
    Invalid(&'static str),
    /// A `str` whose bytes are not valid UTF-8.
    #[error("a string is not valid UTF-8")]
    InvalidUtf8,
    /// Arrays and maps nest deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// A string, binary, array or map longer than `u32::MAX`, which msgpack cannot express.
    #[error("a length msgpack cannot express")]
    TooLarge,
}

// ---------------------------------------------------------------------------------------------
// Writing

/// How floats are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Floats {
    /// As notepack does: a float with an integral value as an integer (a JavaScript number has
    /// no separate integer type), others as float 64.
    Notepack,
    /// Always as float 64, so that decoding gives back exactly the value written.
    Exact,
}

/// Writes `value` with notepack's integral floats; `depth` is its nesting level (0 for the
/// message itself).
pub fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), NotepackError> {
    write_value_with(out, value, depth, Floats::Notepack)
}

/// Writes `value`, choosing how floats are written.
pub fn write_value_with(
    out: &mut Vec<u8>,
    value: &Value,
    depth: usize,
    floats: Floats,
) -> Result<(), NotepackError> {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(n) => write_int(out, *n),
        Value::UInt(n) => write_uint(out, *n),
        Value::Float(f) => match floats {
            Floats::Notepack => write_float(out, *f),
            Floats::Exact => {
                out.push(0xcb);
                out.extend_from_slice(&f.to_be_bytes());
            }
        },
        Value::Str(s) => write_str(out, s)?,
        Value::Bytes(b) => write_bin(out, b)?,
        Value::Array(items) => {
            if depth >= MAX_DEPTH {
                return Err(NotepackError::TooDeep);
            }
            write_array_len(out, items.len())?;
            for item in items {
                write_value_with(out, item, depth + 1, floats)?;
            }
        }
        Value::Map(map) => {
            if depth >= MAX_DEPTH {
                return Err(NotepackError::TooDeep);
            }
            write_map_len(out, map.len())?;
            for (k, v) in map.iter() {
                write_str(out, k)?;
                write_value_with(out, v, depth + 1, floats)?;
            }
        }
    }
    Ok(())
}

/// Encodes one value as a whole message.
pub fn encode(value: &Value) -> Result<Vec<u8>, NotepackError> {
    let mut out = Vec::with_capacity(64);
    write_value(&mut out, value, 0)?;
    Ok(out)
}

/// Appends `n` in the smallest msgpack integer form (an unsigned form when `n >= 0`), as
/// notepack does.
pub fn write_int(out: &mut Vec<u8>, n: i64) {
    if let Ok(u) = u64::try_from(n) {
        return write_uint(out, u);
    }
    if n >= -0x20 {
        out.push(n as u8);
    } else if let Ok(n) = i8::try_from(n) {
        out.push(0xd0);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = i16::try_from(n) {
        out.push(0xd1);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = i32::try_from(n) {
        out.push(0xd2);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends `n` in the smallest unsigned msgpack integer form.
pub fn write_uint(out: &mut Vec<u8>, n: u64) {
    if n < 0x80 {
        out.push(n as u8);
    } else if let Ok(n) = u8::try_from(n) {
        out.extend_from_slice(&[0xcc, n]);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xcd);
        out.extend_from_slice(&n.to_be_bytes());
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0xce);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_float(out: &mut Vec<u8>, f: f64) {
    // Bounds exclusive of 2^63 and -2^63 - 1, so the cast below is exact.
    if f.is_finite()
        && f.fract() == 0.0
        && (-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&f)
    {
        // JavaScript has one number type: notepack writes an integral float as an integer.
        write_int(out, f as i64);
    } else {
        out.push(0xcb);
        out.extend_from_slice(&f.to_be_bytes());
    }
}

/// Appends `s` as a msgpack `str`.
///
/// # Errors
/// [`NotepackError::TooLarge`] if `s` is 4 GiB or longer.
pub fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), NotepackError> {
    let len = u32::try_from(s.len()).map_err(|_| NotepackError::TooLarge)?;
    if len < 0x20 {
        out.push(0xa0 | len as u8);
    } else if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[0xd9, len]);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xda);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn write_bin(out: &mut Vec<u8>, b: &[u8]) -> Result<(), NotepackError> {
    let len = u32::try_from(b.len()).map_err(|_| NotepackError::TooLarge)?;
    if let Ok(len) = u8::try_from(len) {
        out.extend_from_slice(&[0xc4, len]);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(0xc5);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(b);
    Ok(())
}

/// Appends an array header for `len` elements; the caller writes the elements after it.
///
/// # Errors
/// [`NotepackError::TooLarge`] if `len` exceeds `u32::MAX`.
pub fn write_array_len(out: &mut Vec<u8>, len: usize) -> Result<(), NotepackError> {
    write_len(out, len, 0x90, 0xdc)
}

/// Appends a map header for `len` key-value pairs; the caller writes them after it.
///
/// # Errors
/// [`NotepackError::TooLarge`] if `len` exceeds `u32::MAX`.
pub fn write_map_len(out: &mut Vec<u8>, len: usize) -> Result<(), NotepackError> {
    write_len(out, len, 0x80, 0xde)
}

fn write_len(out: &mut Vec<u8>, len: usize, fix: u8, marker16: u8) -> Result<(), NotepackError> {
    let len = u32::try_from(len).map_err(|_| NotepackError::TooLarge)?;
    if len < 16 {
        out.push(fix | len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.push(marker16);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(marker16 + 1);
        out.extend_from_slice(&len.to_be_bytes());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading

/// Decodes one whole message. Binary values share `data`'s buffer.
pub fn decode(data: &Bytes) -> Result<Value, NotepackError> {
    let mut reader = Reader { data, at: 0 };
    let value = reader.value(0)?.unwrap_or(Value::Null);
    if reader.at != data.len() {
        return Err(NotepackError::TrailingBytes(data.len() - reader.at));
    }
    Ok(value)
}

struct Reader<'a> {
    data: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.data.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&[u8], NotepackError> {
        let end = self.at.checked_add(n).ok_or(NotepackError::Truncated)?;
        let slice = self
            .data
            .get(self.at..end)
            .ok_or(NotepackError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn take_bytes(&mut self, n: usize) -> Result<Bytes, NotepackError> {
        let start = self.at;
        self.take(n)?;
        Ok(self.data.slice(start..self.at))
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], NotepackError> {
        self.take(N)?
            .try_into()
            .map_err(|_| NotepackError::Truncated)
    }

    fn byte(&mut self) -> Result<u8, NotepackError> {
        Ok(self.fixed::<1>()?[0])
    }

    fn len8(&mut self) -> Result<usize, NotepackError> {
        Ok(usize::from(self.byte()?))
    }

    fn len16(&mut self) -> Result<usize, NotepackError> {
        Ok(usize::from(u16::from_be_bytes(self.fixed()?)))
    }

    fn len32(&mut self) -> Result<usize, NotepackError> {
        usize::try_from(u32::from_be_bytes(self.fixed()?)).map_err(|_| NotepackError::Truncated)
    }

    /// A container of `len` items of at least `min_size` bytes each must fit in what is left,
    /// so a declared length never drives an allocation larger than the message.
    fn check_room(&self, len: usize, min_size: usize) -> Result<(), NotepackError> {
        match len.checked_mul(min_size) {
            Some(n) if n <= self.remaining() => Ok(()),
            _ => Err(NotepackError::Truncated),
        }
    }

    fn str(&mut self, len: usize) -> Result<String, NotepackError> {
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| NotepackError::InvalidUtf8)
    }

    /// A value; `None` is `undefined`.
    fn value(&mut self, depth: usize) -> Result<Option<Value>, NotepackError> {
        let marker = self.byte()?;
        let value = match marker {
            0x00..=0x7f => Value::Int(marker.into()),
            0x80..=0x8f => self.map(usize::from(marker & 0x0f), depth)?,
            0x90..=0x9f => self.array(usize::from(marker & 0x0f), depth)?,
            0xa0..=0xbf => Value::Str(self.str(usize::from(marker & 0x1f))?),
            0xc0 => Value::Null,
            0xc1 => return Err(NotepackError::Invalid("reserved marker 0xc1")),
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

    /// A map key: a string, or a number taken as its decimal string (as a JavaScript object
    /// key would be).
    fn key(&mut self, depth: usize) -> Result<String, NotepackError> {
        match self.value(depth + 1)? {
            Some(Value::Str(s)) => Ok(s),
            Some(Value::Int(n)) => Ok(n.to_string()),
            Some(Value::UInt(n)) => Ok(n.to_string()),
            _ => Err(NotepackError::Invalid("map key is not a string")),
        }
    }

    fn array(&mut self, len: usize, depth: usize) -> Result<Value, NotepackError> {
        if depth >= MAX_DEPTH {
            return Err(NotepackError::TooDeep);
        }
        self.check_room(len, 1)?;
        let mut items = Vec::with_capacity(len);
        for _ in 0..len {
            items.push(self.value(depth + 1)?.unwrap_or(Value::Null));
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, len: usize, depth: usize) -> Result<Value, NotepackError> {
        if depth >= MAX_DEPTH {
            return Err(NotepackError::TooDeep);
        }
        self.check_room(len, 2)?;
        let mut entries = Vec::with_capacity(len);
        for _ in 0..len {
            let key = self.key(depth)?;
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        // A key whose last value is `undefined` is absent, as it is from the JavaScript object.
        let mut seen = HashSet::with_capacity(entries.len());
        let mut dropped = HashSet::new();
        for (key, value) in entries.iter().rev() {
            if seen.insert(key.as_str()) && value.is_none() {
                dropped.insert(key.clone());
            }
        }
        let entries = entries
            .into_iter()
            .filter_map(|(k, v)| Some((k, v?)))
            .collect();
        let mut map = Map::from_entries(entries);
        if !dropped.is_empty() {
            map.retain(|k, _| !dropped.contains(k));
        }
        Ok(Value::Map(map))
    }

    /// An extension of `len` bytes whose type byte comes next; `variable` for the `ext 8/16/32`
    /// forms, whose type 0 notepack uses for `ArrayBuffer`.
    fn ext(&mut self, len: usize, variable: bool) -> Result<Option<Value>, NotepackError> {
        let ext_type = i8::from_be_bytes(self.fixed()?);
        let body = self.take_bytes(len)?;
        let value = match (ext_type, variable, len) {
            (0, true, _) => Value::Bytes(body),
            (0, false, 1) => return Ok(None),
            (0, false, 8) => {
                let raw: [u8; 8] = body[..].try_into().map_err(|_| NotepackError::Truncated)?;
                date_value(Some(i64::from_be_bytes(raw)))
            }
            (-1, _, 4 | 8 | 12) => date_value(millis_from_timestamp(&body)),
            _ => Value::Array(vec![Value::Int(ext_type.into()), Value::Bytes(body)]),
        };
        Ok(Some(value))
    }
}

/// What `JSON.stringify` gives for a `Date`: its ISO string, or `null` for an invalid date.
fn date_value(ms: Option<i64>) -> Value {
    ms.and_then(iso8601_from_millis)
        .map_or(Value::Null, Value::Str)
}

/// JavaScript dates span ±100,000,000 days around the epoch.
const MAX_JS_MS: i64 = 8_640_000_000_000_000;

/// `new Date(ms).toJSON()`: `YYYY-MM-DDTHH:MM:SS.sssZ`, years outside 0..=9999 as `±YYYYYY`.
pub fn iso8601_from_millis(ms: i64) -> Option<String> {
    if !(-MAX_JS_MS..=MAX_JS_MS).contains(&ms) {
        return None;
    }
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else if year < 0 {
        format!("-{:06}", -year)
    } else {
        format!("+{year:06}")
    };
    Some(format!(
        "{year}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    ))
}

/// Milliseconds of a timestamp extension body (4, 8 or 12 bytes), as notepack reads it:
/// `None` when the nanoseconds are out of range.
fn millis_from_timestamp(body: &[u8]) -> Option<i64> {
    let (secs, nanos): (i64, u32) = match body.len() {
        4 => (i64::from(u32::from_be_bytes(body.try_into().ok()?)), 0),
        8 => {
            let v = u64::from_be_bytes(body.try_into().ok()?);
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => {
            let nanos = u32::from_be_bytes(body.get(..4)?.try_into().ok()?);
            let secs = i64::from_be_bytes(body.get(4..)?.try_into().ok()?);
            (secs, nanos)
        }
        _ => return None,
    };
    if nanos >= 1_000_000_000 {
        return None;
    }
    secs.checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

/// (year, month, day) of a day count since 1970-01-01 in the proleptic Gregorian calendar
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn iso8601_matches_javascript() {
        let cases: &[(i64, Option<&str>)] = &[
            (0, Some("1970-01-01T00:00:00.000Z")),
            (1_700_000_000_123, Some("2023-11-14T22:13:20.123Z")),
            (951_782_400_000, Some("2000-02-29T00:00:00.000Z")),
            (-1, Some("1969-12-31T23:59:59.999Z")),
            (-62_167_219_200_000, Some("0000-01-01T00:00:00.000Z")),
            (-62_167_219_200_001, Some("-000001-12-31T23:59:59.999Z")),
            (253_402_300_800_000, Some("+010000-01-01T00:00:00.000Z")),
            (MAX_JS_MS, Some("+275760-09-13T00:00:00.000Z")),
            (-MAX_JS_MS, Some("-271821-04-20T00:00:00.000Z")),
            (MAX_JS_MS + 1, None),
            (i64::MIN, None),
        ];
        for &(ms, want) in cases {
            assert_eq!(iso8601_from_millis(ms).as_deref(), want, "ms = {ms}");
        }
    }

    #[test]
    fn timestamps() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (&[0, 0, 0, 1], Some(1000)),
            (&[0xff, 0xff, 0xff, 0xff], Some(4_294_967_295_000)),
            // timestamp 64: 5_000_000 ns in the upper 30 bits, 2 s in the lower 34
            (&(((5_000_000u64) << 34) | 2).to_be_bytes(), Some(2005)),
            (
                &[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                Some(-1000),
            ),
            // 1e9 nanoseconds is not a valid fraction
            (&[0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0], None),
            (
                &[0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                None,
            ),
            (&[1, 2, 3], None),
        ];
        for &(body, want) in cases {
            assert_eq!(millis_from_timestamp(body), want, "body = {body:?}");
        }
    }
}
