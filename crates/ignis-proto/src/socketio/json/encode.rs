//! Encoding packets in the default parser's text format.

use std::cell::{Cell, RefCell};

use bytes::Bytes;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use crate::socketio::error::EncodeError;
use crate::socketio::packet::{Packet, PacketKind, PacketType};
use crate::socketio::shape::{MAX_DEPTH, check_kind};
use crate::value::Value;

/// A packet encoded by the default parser: one text message, then one binary message per
/// attachment, sent in this order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The text message (`<type>[<n>-][<nsp>,][<id>][<json>]`).
    pub text: String,
    /// The binary attachments that the placeholders of `text` refer to, in order.
    pub attachments: Vec<Bytes>,
}

/// Encodes `packet` in the default (JSON) format.
///
/// An EVENT or ACK whose values hold [`Value::Bytes`] goes out as BINARY_EVENT / BINARY_ACK:
/// each binary value becomes `{"_placeholder":true,"num":N}`, numbered depth-first, and its
/// bytes become attachment `N`. The JSON is written straight into the output buffer.
///
/// Refuses a namespace that is empty, does not start with `/` or holds a comma, payloads of the
/// wrong shape, reserved event names, binary outside events and acks, and nesting deeper than
/// [`MAX_DEPTH`](crate::socketio::MAX_DEPTH): what it encodes always decodes to an equal packet
/// (floats aside: NaN and infinities become `null`, as in `JSON.stringify`).
pub fn encode(packet: &Packet) -> Result<Encoded, EncodeError> {
    check_kind(&packet.kind)?;
    let nsp = packet.nsp.as_str();
    if !nsp.starts_with('/') || nsp.contains(',') {
        return Err(EncodeError::InvalidNamespace(packet.nsp.clone()));
    }

    let mut out = Vec::with_capacity(64);
    out.push(b'0' + packet.packet_type() as u8);
    if nsp != "/" {
        out.extend_from_slice(nsp.as_bytes());
        out.push(b',');
    }
    let id = match &packet.kind {
        PacketKind::Event { id, .. } => *id,
        PacketKind::Ack { id, .. } => Some(*id),
        _ => None,
    };
    if let Some(id) = id {
        push_decimal(&mut out, id);
    }

    let ctx = Context {
        attachments: RefCell::new(Vec::new()),
        binary_allowed: matches!(
            packet.kind,
            PacketKind::Event { .. } | PacketKind::Ack { .. }
        ),
        failure: Cell::new(None),
    };
    let written = match &packet.kind {
        PacketKind::Connect(None) | PacketKind::Disconnect => Ok(()),
        PacketKind::Connect(Some(v)) | PacketKind::ConnectError(v) => write_json(
            &mut out,
            &Node {
                value: v,
                depth: 1,
                ctx: &ctx,
            },
        ),
        PacketKind::Event { event, args, .. } => write_json(
            &mut out,
            &Args {
                first: Some(event.as_value()),
                rest: args,
                ctx: &ctx,
            },
        ),
        PacketKind::Ack { args, .. } => write_json(
            &mut out,
            &Args {
                first: None,
                rest: args,
                ctx: &ctx,
            },
        ),
    };
    if let Err(e) = written {
        return Err(ctx.failure.take().unwrap_or(EncodeError::Json(e)));
    }

    let attachments = ctx.attachments.into_inner();
    if !attachments.is_empty() {
        let binary = match packet.kind {
            PacketKind::Ack { .. } => PacketType::BinaryAck,
            _ => PacketType::BinaryEvent,
        };
        out[0] = b'0' + binary as u8;
        let mut count = Vec::with_capacity(21);
        push_decimal(&mut count, attachments.len() as u64);
        count.push(b'-');
        out.splice(1..1, count);
    }
    // Only ASCII and serde_json output went in, so this never falls back to the lossy path.
    let text = String::from_utf8(out)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    Ok(Encoded { text, attachments })
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn write_json<T: Serialize>(out: &mut Vec<u8>, value: &T) -> Result<(), serde_json::Error> {
    value.serialize(&mut serde_json::Serializer::new(out))
}

/// State shared by the nodes of one payload while it is serialized.
struct Context {
    attachments: RefCell<Vec<Bytes>>,
    binary_allowed: bool,
    /// Why serialization stopped, when it was our decision rather than serde_json's.
    failure: Cell<Option<EncodeError>>,
}

impl Context {
    fn fail<E: serde::ser::Error>(&self, why: EncodeError) -> E {
        let e = E::custom(&why);
        self.failure.set(Some(why));
        e
    }
}

/// The payload array of an EVENT (`first` is the event name) or an ACK.
struct Args<'a> {
    first: Option<&'a Value>,
    rest: &'a [Value],
    ctx: &'a Context,
}

impl Serialize for Args<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.rest.len() + usize::from(self.first.is_some());
        let mut seq = serializer.serialize_seq(Some(len))?;
        for value in self.first.into_iter().chain(self.rest) {
            seq.serialize_element(&Node {
                value,
                depth: 2,
                ctx: self.ctx,
            })?;
        }
        seq.end()
    }
}

/// A value at nesting level `depth` (1 for the payload itself), with binary replaced by
/// placeholders.
struct Node<'a> {
    value: &'a Value,
    depth: usize,
    ctx: &'a Context,
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let ctx = self.ctx;
        match self.value {
            Value::Bytes(bytes) => {
                if !ctx.binary_allowed {
                    return Err(ctx.fail(EncodeError::BinaryNotAllowed));
                }
                let num = {
                    let mut attachments = ctx.attachments.borrow_mut();
                    attachments.push(bytes.clone());
                    attachments.len() - 1
                };
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("_placeholder", &true)?;
                map.serialize_entry("num", &num)?;
                map.end()
            }
            Value::Array(items) => {
                if self.depth > MAX_DEPTH {
                    return Err(ctx.fail(EncodeError::TooDeep));
                }
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Node {
                        value,
                        depth: self.depth + 1,
                        ctx,
                    })?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                if self.depth > MAX_DEPTH {
                    return Err(ctx.fail(EncodeError::TooDeep));
                }
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries.iter() {
                    map.serialize_entry(
                        key,
                        &Node {
                            value,
                            depth: self.depth + 1,
                            ctx,
                        },
                    )?;
                }
                map.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}
