//! Socket.IO v5 packets and their two wire formats.
//!
//! * [`json`]: the default parser (npm `socket.io-parser` 4.2): `<type>[<n>-][<nsp>,][<id>][<json>]`
//!   text messages, binary values sent as extra binary messages behind `_placeholder` objects.
//! * [`msgpack`]: the msgpack parser (npm `socket.io-msgpack-parser` 3): every packet is one binary
//!   message, a msgpack map with `type`, `data`, `nsp` and `id`.
//!
//! Both produce and consume the same [`Packet`]; binary-ness is never stored in it.
//!
//! ```
//! use ignis_proto::socketio::{JsonDecoder, Packet, encode, decode_msgpack, encode_msgpack};
//! use ignis_proto::Value;
//!
//! let packet = Packet::event("/chat", "upload", vec![Value::bytes(&b"\x01\x02"[..])], Some(7));
//! let encoded = encode(&packet).unwrap();
//! assert_eq!(encoded.text, r#"51-/chat,7["upload",{"_placeholder":true,"num":0}]"#);
//!
//! let mut decoder = JsonDecoder::new();
//! assert_eq!(decoder.decode_text(&encoded.text).unwrap(), None);
//! let decoded = decoder.decode_binary(encoded.attachments[0].clone()).unwrap();
//! assert_eq!(decoded, Some(packet.clone()));
//!
//! let bytes = encode_msgpack(&packet).unwrap();
//! assert_eq!(decode_msgpack(&bytes).unwrap(), packet);
//! ```

mod error;
pub mod json;
pub mod msgpack;
mod packet;
mod shape;

#[cfg(test)]
mod tests;

pub use error::{DecodeError, EncodeError};
pub use json::{
    DEFAULT_MAX_ATTACHMENTS, Encoded, JsonDecoder, encode, encode_ack_into, encode_ack_json_into,
    encode_args_json, encode_connect_answer_into, encode_event_into, encode_into,
};
pub use msgpack::{decode_msgpack, encode_msgpack};
pub use packet::{EventName, Packet, PacketKind, PacketType, RESERVED_EVENTS, is_reserved_event};
pub use shape::MAX_DEPTH;
