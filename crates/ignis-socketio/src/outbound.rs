//! The wire format of Socket.IO packets: which codec a server speaks, and how an encoded packet
//! becomes Engine.IO messages that many sessions can share.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use ignis_engine::{SendError, SharedMessage, TextMessage};
use ignis_proto::Value;
use ignis_proto::engineio::Data;
use ignis_proto::socketio::{self, DecodeError, EncodeError, JsonDecoder, Packet};
use smallvec::{SmallVec, smallvec};

use crate::engine_handler::EngineSocket;

/// The codec between the server and its clients. Both ends must use the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParserKind {
    /// The default `socket.io-parser`: JSON text with binary attachments.
    #[default]
    Json,
    /// `socket.io-msgpack-parser`: one msgpack binary message per packet.
    MsgPack,
}

/// The Engine.IO messages that carry one Socket.IO packet: almost always one.
pub(crate) type Messages = SmallVec<[Arc<SharedMessage>; 1]>;

/// Encodes a packet into the Engine.IO messages that carry it.
pub(crate) fn encode(kind: ParserKind, packet: &Packet) -> Result<Messages, EncodeError> {
    encode_with(kind, packet, true)
}

/// Like [`encode`]; `compress: false` keeps permessage-deflate off these messages.
pub(crate) fn encode_with(
    kind: ParserKind,
    packet: &Packet,
    compress: bool,
) -> Result<Messages, EncodeError> {
    match kind {
        ParserKind::Json => json_messages(|out| socketio::encode_into(out, packet), compress),
        ParserKind::MsgPack => Ok(smallvec![SharedMessage::with_compression(
            Data::Binary(socketio::encode_msgpack(packet)?),
            compress
        )]),
    }
}

/// A packet encoded for one socket.
pub(crate) enum Direct {
    /// A text packet without attachments: it may travel as its bare WebSocket frame.
    Text(TextMessage),
    Messages(Messages),
}

impl Direct {
    pub(crate) fn send(self, conn: &EngineSocket) -> Result<(), SendError> {
        match self {
            Direct::Text(text) => {
                crate::fanout::settle();
                conn.send_text(text)
            }
            Direct::Messages(messages) => send(conn, &messages),
        }
    }
}

/// Sends the messages of one packet to one client, after the broadcasts made before (see
/// `crate::fanout`): every packet for one client goes out through here or [`Direct::send`].
pub(crate) fn send(conn: &EngineSocket, messages: &Messages) -> Result<(), SendError> {
    crate::fanout::settle();
    conn.send_shared(messages, false)
}

/// Encodes an EVENT for one socket from its parts: what [`encode`] gives for
/// `Packet::event(nsp, event, args, id)`, without building the packet.
pub(crate) fn encode_event(
    kind: ParserKind,
    nsp: &str,
    event: &str,
    args: Cow<'_, [Value]>,
    id: Option<u64>,
) -> Result<Direct, EncodeError> {
    match kind {
        ParserKind::Json => {
            json_direct(|out| socketio::encode_event_into(out, nsp, event, &args, id))
        }
        // As for an ACK below: owned arguments move into the packet, borrowed ones are copied.
        ParserKind::MsgPack => {
            encode(kind, &Packet::event(nsp, event, args.into_owned(), id)).map(Direct::Messages)
        }
    }
}

/// Encodes the CONNECT that admits a socket (`{sid, pid?}`), as [`encode`] does the packet.
pub(crate) fn encode_connect_answer(
    kind: ParserKind,
    nsp: &str,
    sid: &str,
    pid: Option<&str>,
) -> Result<Direct, EncodeError> {
    match kind {
        ParserKind::Json => json_direct(|out| {
            socketio::encode_connect_answer_into(out, nsp, sid, pid)?;
            Ok(Vec::new())
        }),
        ParserKind::MsgPack => {
            let mut reply = ignis_proto::value::Map::with_capacity(2);
            reply.insert("sid", sid);
            if let Some(pid) = pid {
                reply.insert("pid", pid);
            }
            encode(kind, &Packet::connect(nsp, Some(Value::Map(reply)))).map(Direct::Messages)
        }
    }
}

/// Encodes an ACK for one socket from its parts, as [`encode_event`] does an EVENT.
pub(crate) fn encode_ack(
    kind: ParserKind,
    nsp: &str,
    id: u64,
    args: Cow<'_, [Value]>,
) -> Result<Direct, EncodeError> {
    match kind {
        ParserKind::Json => json_direct(|out| socketio::encode_ack_into(out, nsp, id, &args)),
        // The msgpack encoder takes a packet: owned arguments move into it, borrowed ones are
        // copied.
        ParserKind::MsgPack => {
            encode(kind, &Packet::ack(nsp, id, args.into_owned())).map(Direct::Messages)
        }
    }
}

/// Acknowledgement arguments encoded once, for a handler that answers many events the same way
/// (`[{ok: true}]`): each answer copies the encoded text instead of walking the values again.
///
/// ```
/// use ignis_socketio::{EncodedArgs, Value};
///
/// let ok = EncodedArgs::new(vec![Value::from(true)]);
/// assert_eq!(ok.values(), &[Value::from(true)]);
/// // In a handler: `event.ack_encoded(&ok)`.
/// ```
///
/// The msgpack parser, and arguments holding binary values (which travel as attachments beside
/// the text), encode the values on each answer, as [`Event::ack_values`](crate::Event::ack_values)
/// does.
#[derive(Debug, Clone)]
pub struct EncodedArgs {
    values: Vec<Value>,
    /// The JSON array, when the values can travel as text alone.
    json: Option<Box<str>>,
}

impl EncodedArgs {
    pub fn new(values: Vec<Value>) -> EncodedArgs {
        let json = socketio::encode_args_json(&values)
            .ok()
            .map(String::into_boxed_str);
        EncodedArgs { values, json }
    }

    /// The arguments, as given.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}

/// Encodes an ACK of prepared arguments, as [`encode_ack`] does from the values.
pub(crate) fn encode_ack_encoded(
    kind: ParserKind,
    nsp: &str,
    id: u64,
    args: &EncodedArgs,
) -> Result<Direct, EncodeError> {
    match (kind, &args.json) {
        (ParserKind::Json, Some(json)) => json_direct(|out| {
            socketio::encode_ack_json_into(out, nsp, id, json)?;
            Ok(Vec::new())
        }),
        _ => encode_ack(kind, nsp, id, Cow::Borrowed(&args.values)),
    }
}

/// The text message written by `write` after room for the WebSocket frame header, so that its
/// frame shares the buffer instead of copying it, and its attachments.
fn json_text(
    write: impl FnOnce(&mut Vec<u8>) -> Result<Vec<Bytes>, EncodeError>,
) -> Result<(TextMessage, Vec<Bytes>), EncodeError> {
    let mut buf = TextMessage::buffer();
    let attachments = write(&mut buf)?;
    // The encoder writes only `str`s and ASCII: its output is UTF-8 without a check. The buffer
    // has its headroom, so this cannot fail; if it did, the packet is refused.
    let text = TextMessage::written_as_utf8(buf)
        .map_err(|e| EncodeError::Json(serde::ser::Error::custom(e)))?;
    Ok((text, attachments))
}

fn json_direct(
    write: impl FnOnce(&mut Vec<u8>) -> Result<Vec<Bytes>, EncodeError>,
) -> Result<Direct, EncodeError> {
    let (text, attachments) = json_text(write)?;
    if attachments.is_empty() {
        return Ok(Direct::Text(text));
    }
    Ok(Direct::Messages(with_attachments(text, attachments, true)))
}

fn json_messages(
    write: impl FnOnce(&mut Vec<u8>) -> Result<Vec<Bytes>, EncodeError>,
    compress: bool,
) -> Result<Messages, EncodeError> {
    let (text, attachments) = json_text(write)?;
    Ok(with_attachments(text, attachments, compress))
}

/// The text message, then one binary message per attachment.
fn with_attachments(text: TextMessage, attachments: Vec<Bytes>, compress: bool) -> Messages {
    let mut out = Messages::with_capacity(1 + attachments.len());
    out.push(text.into_shared(compress));
    out.extend(
        attachments
            .into_iter()
            .map(|b| SharedMessage::with_compression(Data::Binary(b), compress)),
    );
    out
}

/// The per-connection decoding state.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    codec: Codec,
    /// Bytes received so far of a binary packet waiting for its attachments.
    pending: usize,
}

#[derive(Debug, Default)]
enum Codec {
    Json(JsonDecoder),
    #[default]
    MsgPack,
}

/// What a message made of the packet being received.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// A whole packet, and its size as received (text and attachments, or msgpack message).
    Packet(Packet, usize),
    /// A binary packet that still waits for attachments.
    Pending,
    /// A binary packet whose attachments went past `max` bytes before it was whole: dropped,
    /// since its bytes would have to be held.
    Oversized(usize),
}

impl Decoder {
    pub(crate) fn new(kind: ParserKind) -> Decoder {
        let codec = match kind {
            ParserKind::Json => Codec::Json(JsonDecoder::default()),
            ParserKind::MsgPack => Codec::MsgPack,
        };
        Decoder { codec, pending: 0 }
    }

    /// Decodes one message; a binary packet may hold at most `max` bytes while it waits for
    /// its attachments.
    pub(crate) fn decode(&mut self, data: Data, max: usize) -> Result<Decoded, DecodeError> {
        let size = self.pending.saturating_add(data.len());
        self.pending = 0;
        let packet = match (&mut self.codec, data) {
            (Codec::Json(d), Data::Text(text)) => d.decode_text(&text)?,
            (Codec::Json(d), Data::Binary(bin)) => {
                let packet = d.decode_binary(bin)?;
                if packet.is_none() && size > max {
                    d.reset();
                    return Ok(Decoded::Oversized(size));
                }
                packet
            }
            (Codec::MsgPack, Data::Binary(bin)) => Some(socketio::decode_msgpack(&bin)?),
            (Codec::MsgPack, Data::Text(_)) => return Err(DecodeError::UnexpectedText),
        };
        Ok(match packet {
            Some(packet) => Decoded::Packet(packet, size),
            None => {
                self.pending = size;
                Decoded::Pending
            }
        })
    }
}
