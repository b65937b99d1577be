//! The default Socket.IO parser (npm `socket.io-parser`): packets as text with a JSON payload;
//! binary values travel as separate binary messages behind `_placeholder` objects.

mod decode;
mod encode;
mod parse;
mod placeholder;

pub use decode::{DEFAULT_MAX_ATTACHMENTS, JsonDecoder};
pub use encode::{
    Encoded, encode, encode_ack_into, encode_ack_json_into, encode_args_json,
    encode_connect_answer_into, encode_event_into, encode_into,
};
