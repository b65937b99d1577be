//! The wire format of Socket.IO packets: which codec a server speaks, and how an encoded packet
//! becomes Engine.IO messages that many sessions can share.

use std::sync::Arc;

use ignis_engine::SharedMessage;
use ignis_proto::engineio::{Data, Str};
use ignis_proto::socketio::{self, DecodeError, EncodeError, JsonDecoder, Packet};

/// The codec between the server and its clients. Both ends must use the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ParserKind {
    /// The default `socket.io-parser`: JSON text with binary attachments.
    #[default]
    Json,
    /// `socket.io-msgpack-parser`: one msgpack binary message per packet.
    MsgPack,
}

/// Encodes a packet into the Engine.IO messages that carry it.
pub(crate) fn encode(
    kind: ParserKind,
    packet: &Packet,
) -> Result<Vec<Arc<SharedMessage>>, EncodeError> {
    encode_with(kind, packet, true)
}

/// Like [`encode`]; `compress: false` keeps permessage-deflate off these messages.
pub(crate) fn encode_with(
    kind: ParserKind,
    packet: &Packet,
    compress: bool,
) -> Result<Vec<Arc<SharedMessage>>, EncodeError> {
    let message = |data| SharedMessage::with_compression(data, compress);
    Ok(match kind {
        ParserKind::Json => {
            let encoded = socketio::encode(packet)?;
            let mut out = Vec::with_capacity(1 + encoded.attachments.len());
            out.push(message(Data::Text(Str::from(encoded.text))));
            out.extend(
                encoded
                    .attachments
                    .into_iter()
                    .map(|b| message(Data::Binary(b))),
            );
            out
        }
        ParserKind::MsgPack => vec![SharedMessage::new(Data::Binary(socketio::encode_msgpack(
            packet,
        )?))],
    })
}

/// The per-connection decoding state.
#[derive(Debug, Default)]
pub(crate) enum Decoder {
    Json(JsonDecoder),
    #[default]
    MsgPack,
}

impl Decoder {
    pub(crate) fn new(kind: ParserKind) -> Decoder {
        match kind {
            ParserKind::Json => Decoder::Json(JsonDecoder::default()),
            ParserKind::MsgPack => Decoder::MsgPack,
        }
    }

    pub(crate) fn decode(&mut self, data: Data) -> Result<Option<Packet>, DecodeError> {
        match (self, data) {
            (Decoder::Json(d), Data::Text(text)) => d.decode_text(&text),
            (Decoder::Json(d), Data::Binary(bin)) => d.decode_binary(bin),
            (Decoder::MsgPack, Data::Binary(bin)) => socketio::decode_msgpack(&bin).map(Some),
            (Decoder::MsgPack, Data::Text(_)) => Err(DecodeError::UnexpectedText),
        }
    }
}
