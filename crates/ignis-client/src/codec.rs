//! Socket.IO packets to Engine.IO messages and back, with the parser the options chose.

use ignis_proto::engineio::{Data, Str};
use ignis_proto::socketio::{self, DecodeError, JsonDecoder, Packet};

use crate::error::Error;
use crate::options::Parser;

/// Encodes a packet into the messages that carry it, in order.
pub(crate) fn encode(parser: Parser, packet: &Packet) -> Result<Vec<Data>, Error> {
    match parser {
        Parser::Json => {
            let encoded = socketio::encode(packet)?;
            let mut messages = Vec::with_capacity(1 + encoded.attachments.len());
            messages.push(Data::Text(Str::from(encoded.text)));
            messages.extend(encoded.attachments.into_iter().map(Data::Binary));
            Ok(messages)
        }
        Parser::Msgpack => Ok(vec![Data::Binary(socketio::encode_msgpack(packet)?)]),
    }
}

/// Decodes the messages of one connection.
#[derive(Debug)]
pub(crate) enum Decoder {
    Json(JsonDecoder),
    Msgpack,
}

impl Decoder {
    pub(crate) fn new(parser: Parser) -> Decoder {
        match parser {
            Parser::Json => Decoder::Json(JsonDecoder::new()),
            Parser::Msgpack => Decoder::Msgpack,
        }
    }

    /// A whole packet, or `None` while a binary packet waits for attachments.
    pub(crate) fn decode(&mut self, data: Data) -> Result<Option<Packet>, DecodeError> {
        match (self, data) {
            (Decoder::Json(d), Data::Text(text)) => d.decode_text(&text),
            (Decoder::Json(d), Data::Binary(bytes)) => d.decode_binary(bytes),
            (Decoder::Msgpack, Data::Binary(bytes)) => socketio::decode_msgpack(&bytes).map(Some),
            (Decoder::Msgpack, Data::Text(_)) => Err(DecodeError::TextNotAllowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ignis_proto::Value;

    #[test]
    fn round_trips_with_both_parsers() {
        let packets = [
            Packet::connect("/", None),
            Packet::event(
                "/chat",
                "x",
                vec![Value::from(1), Value::bytes(&b"\x01"[..])],
                Some(3),
            ),
            Packet::ack(
                "/",
                9,
                vec![Value::bytes(&b"ab"[..]), Value::bytes(&b"cd"[..])],
            ),
            Packet::disconnect("/a"),
        ];
        for parser in [Parser::Json, Parser::Msgpack] {
            for packet in &packets {
                let mut decoder = Decoder::new(parser);
                let mut out = None;
                for message in encode(parser, packet).unwrap() {
                    out = decoder.decode(message).unwrap();
                }
                assert_eq!(out.as_ref(), Some(packet), "{parser:?}");
            }
        }
    }

    #[test]
    fn refuses_malformed_messages() {
        let text = |s: &'static str| Data::Text(Str::from_static(s));
        let cases: Vec<(Parser, Vec<Data>)> = vec![
            (Parser::Json, vec![text("")]),
            (Parser::Json, vec![text("9")]),
            (Parser::Json, vec![text("2[")]),
            (Parser::Json, vec![text("2{}")]),
            (Parser::Json, vec![text("2[\"connect\"]")]),
            (Parser::Json, vec![Data::Binary(Bytes::from_static(b"x"))]),
            (
                Parser::Json,
                vec![
                    text("51-[\"a\",{\"_placeholder\":true,\"num\":0}]"),
                    text("2[\"a\"]"),
                ],
            ),
            (Parser::Msgpack, vec![text("2[\"a\"]")]),
            (
                Parser::Msgpack,
                vec![Data::Binary(Bytes::from_static(b"\xc1"))],
            ),
            (Parser::Msgpack, vec![Data::Binary(Bytes::new())]),
        ];
        for (parser, messages) in cases {
            let mut decoder = Decoder::new(parser);
            let mut failed = false;
            for message in messages.clone() {
                if decoder.decode(message).is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "{parser:?} {messages:?}");
        }
    }
}
