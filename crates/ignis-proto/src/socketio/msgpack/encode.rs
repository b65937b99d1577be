//! Encoding packets as notepack.io does for socket.io-msgpack-parser.

use bytes::Bytes;

use crate::notepack::{self, Floats, NotepackError};
use crate::socketio::error::EncodeError;
use crate::socketio::packet::{Packet, PacketKind};
use crate::socketio::shape::check_kind;
use crate::value::Value;

impl From<NotepackError> for EncodeError {
    fn from(e: NotepackError) -> Self {
        match e {
            NotepackError::TooDeep => EncodeError::TooDeep,
            _ => EncodeError::TooLarge,
        }
    }
}

/// Floats are written as float 64 even when integral, so that decoding gives back exactly the
/// packet that was encoded; decoders (ours and notepack) read both forms.
fn write_value(out: &mut Vec<u8>, value: &Value, depth: usize) -> Result<(), EncodeError> {
    Ok(notepack::write_value_with(
        out,
        value,
        depth,
        Floats::Exact,
    )?)
}

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
    notepack::write_map_len(&mut out, keys)?;
    notepack::write_str(&mut out, "type")?;
    notepack::write_int(&mut out, packet.packet_type() as i64);
    match data {
        Some(Data::Value(v)) => {
            notepack::write_str(&mut out, "data")?;
            write_value(&mut out, v, 1)?;
        }
        Some(Data::Args(first, rest)) => {
            notepack::write_str(&mut out, "data")?;
            notepack::write_array_len(&mut out, rest.len() + usize::from(first.is_some()))?;
            for v in first.into_iter().chain(rest) {
                write_value(&mut out, v, 2)?;
            }
        }
        None => {}
    }
    notepack::write_str(&mut out, "nsp")?;
    notepack::write_str(&mut out, &packet.nsp)?;
    if let Some(id) = id {
        notepack::write_str(&mut out, "id")?;
        notepack::write_uint(&mut out, id);
    }
    Ok(Bytes::from(out))
}

/// The `data` of a packet: a value, or an argument list written as one array.
enum Data<'a> {
    Value(&'a Value),
    Args(Option<&'a Value>, &'a [Value]),
}
