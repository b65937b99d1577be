//! The payload shape each packet type requires, checked the same way by both parsers when
//! decoding and when encoding.

use super::error::{DecodeError, EncodeError};
use super::packet::{EventName, PacketKind, PacketType};
use crate::value::Value;

/// Maximum nesting of arrays and objects in a payload, counting the payload itself (the event
/// array, the CONNECT object) as one level. It equals what `serde_json` accepts, so every
/// payload one of our decoders accepts can be encoded again.
pub const MAX_DEPTH: usize = 127;

/// Builds the packet for `kind` from its decoded payload and ack id, enforcing what
/// socket.io-parser's `isPayloadValid` enforces, plus: an EVENT needs a payload, an ACK needs an
/// id, and only EVENT and ACK may carry an id.
pub(crate) fn build_kind(
    kind: PacketType,
    payload: Option<Value>,
    id: Option<u64>,
) -> Result<PacketKind, DecodeError> {
    let no_id = |k: PacketKind| match id {
        None => Ok(k),
        Some(_) => Err(DecodeError::InvalidAckId),
    };
    match kind {
        PacketType::Connect => match payload {
            None => no_id(PacketKind::Connect(None)),
            Some(v @ Value::Map(_)) => no_id(PacketKind::Connect(Some(v))),
            Some(_) => Err(DecodeError::InvalidPayload(kind)),
        },
        PacketType::Disconnect => match payload {
            None => no_id(PacketKind::Disconnect),
            Some(_) => Err(DecodeError::InvalidPayload(kind)),
        },
        PacketType::ConnectError => match payload {
            Some(v @ (Value::Str(_) | Value::Map(_))) => no_id(PacketKind::ConnectError(v)),
            _ => Err(DecodeError::InvalidPayload(kind)),
        },
        PacketType::Event | PacketType::BinaryEvent => {
            let Some(Value::Array(mut args)) = payload else {
                return Err(DecodeError::InvalidPayload(PacketType::Event));
            };
            if args.is_empty() {
                return Err(DecodeError::InvalidPayload(PacketType::Event));
            }
            let first = args.remove(0);
            let event = match first {
                Value::Str(name) if super::packet::is_reserved_event(&name) => {
                    return Err(DecodeError::ReservedEventName(name));
                }
                other => EventName::try_from(other)
                    .map_err(|_| DecodeError::InvalidPayload(PacketType::Event))?,
            };
            Ok(PacketKind::Event { event, args, id })
        }
        PacketType::Ack | PacketType::BinaryAck => {
            let Some(Value::Array(args)) = payload else {
                return Err(DecodeError::InvalidPayload(PacketType::Ack));
            };
            let id = id.ok_or(DecodeError::InvalidAckId)?;
            Ok(PacketKind::Ack { args, id })
        }
    }
}

/// Refuses to encode what [`build_kind`] would reject on the other side.
pub(crate) fn check_kind(kind: &PacketKind) -> Result<(), EncodeError> {
    match kind {
        PacketKind::Connect(Some(v)) if !matches!(v, Value::Map(_)) => {
            Err(EncodeError::InvalidPayload(PacketType::Connect))
        }
        PacketKind::ConnectError(v) if !matches!(v, Value::Str(_) | Value::Map(_)) => {
            Err(EncodeError::InvalidPayload(PacketType::ConnectError))
        }
        PacketKind::Event { event, .. } if event.is_reserved() => Err(
            EncodeError::ReservedEventName(event.as_str().unwrap_or_default().to_owned()),
        ),
        _ => Ok(()),
    }
}
