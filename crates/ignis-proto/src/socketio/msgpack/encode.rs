//! Encoding packets as notepack.io does for socket.io-msgpack-parser.

use bytes::Bytes;

use crate::socketio::error::EncodeError;
use crate::socketio::packet::{Packet, PacketKind};
use crate::socketio::shape::{MAX_DEPTH, check_kind};
use crate::value::Value;

/// Encodes `packet` as one msgpack message.
///
/// The map has the keys `type`, `data` (absent for DISCONNECT and for a CONNECT without
/// payload), `nsp` and `id` (only when there is one), in that order, which is the order of the
/// packet objects of Node's server. Values use notepack's encodings: the smallest integer format
/// (unsigned formats for non-negative numbers), floats always as float 64, `str 8` for strings
/// of 32 to 255 bytes, `bin` for binary.
///
/// Refuses payloads of the wrong shape, reserved event names, nesting deeper than
/// [`MAX_DEPTH`](crate::socketio::MAX_DEPTH) and lengths msgpack cannot express.
pub fn encode_msgpack(packet: &Packet) -> Result<Bytes, EncodeError> {
    check_kind(&packet.kind)?;
    let mut out = Vec::with_capacity(64);
    let (data, id): (Option<Data<'_>>, Option<u64>) = match &packet.kind {
        PacketKind::Connect(data) => (data.as_ref().map(Data::Value), None),
        PacketKind::Disconnect => (None, None),
        PacketKind::Event { event, args, id } => {
            (Some(Data::Args(Some(event.as_value()), args)), *id)
        }
        PacketKind::Ack { args, id } => (Some(Data::Args(None, args)), Some(*id)),
        PacketKind::ConnectError(v) => (Some(Data::Value(v)), None),
    };
    let keys = 2 + usize::from(data.is_some()) + usize::from(id.is_some());
    write_len(&mut out, keys, 0x80, 0xde)?;
    write_str(&mut out, "type")?;
    write_int(&mut out, packet.packet_type() as i64);
    match data {
        Some(Data::Value(v)) => {
            write_str(&mut out, "data")?;
            write_value(&mut out, v, 1)?;
        }
        Some(Data::Args(first, rest)) => {
            write_str(&mut out, "data")?;
            write_len(
                &mut out,
                rest.len() + usize::from(first.is_some()),
                0x90,
                0xdc,
            )?;
            for v in first.into_iter().chain(rest) {
                write_value(&mut out, v, 2)?;
            }
        }
        None => {}
    }
    write_str(&mut out, "nsp")?;
    write_str(&mut out, &packet.nsp)?;
    if let Some(id) = id {
        write_str(&mut out, "id")?;
        write_uint(&mut out, id);
    }
    Ok(Bytes::from(out))
}

/// The `data` of a packet: a value, or an argument list written as one array.
enum Data<'a> {
    Value(&'a Value),
    Args(Option<&'a Value>, &'a [Value]),
}

/// Writes `value`, which sits at nesting level `depth` (1 for the payload itself).
fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), EncodeError> {
    match value {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(n) => write_int(out, *n),
        Value::UInt(n) => write_uint(out, *n),
        Value::Float(n) => {
            out.push(0xcb);
            out.extend_from_slice(&n.to_be_bytes());
        }
        Value::Str(s) => write_str(out, s)?,
        Value::Bytes(b) => {
            let len = u32::try_from(b.len()).map_err(|_| EncodeError::TooLarge)?;
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
        }
        Value::Array(items) => {
            if depth > MAX_DEPTH {
                return Err(EncodeError::TooDeep);
            }
            write_len(out, items.len(), 0x90, 0xdc)?;
            for v in items {
                write_value(out, v, depth + 1)?;
            }
        }
        Value::Map(map) => {
            if depth > MAX_DEPTH {
                return Err(EncodeError::TooDeep);
            }
            write_len(out, map.len(), 0x80, 0xde)?;
            for (k, v) in map.iter() {
                write_str(out, k)?;
                write_value(out, v, depth + 1)?;
            }
        }
    }
    Ok(())
}

/// Writes an array or map header: the fix form (`fix | len`) below 16, else the 16-bit form
/// (`marker16`) or the 32-bit form (`marker16 + 1`).
fn write_len(out: &mut Vec<u8>, len: usize, fix: u8, marker16: u8) -> Result<(), EncodeError> {
    let len = u32::try_from(len).map_err(|_| EncodeError::TooLarge)?;
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

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), EncodeError> {
    let len = u32::try_from(s.len()).map_err(|_| EncodeError::TooLarge)?;
    if len < 32 {
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

fn write_uint(out: &mut Vec<u8>, n: u64) {
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

fn write_int(out: &mut Vec<u8>, n: i64) {
    if let Ok(n) = u64::try_from(n) {
        return write_uint(out, n);
    }
    if n >= -32 {
        out.push(n as i8 as u8);
    } else if let Ok(n) = i8::try_from(n) {
        out.extend_from_slice(&[0xd0, n as u8]);
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
