//! Errors of the Socket.IO codecs.

use super::packet::PacketType;

/// Why an incoming Socket.IO message was rejected.
///
/// Any of these means the peer does not speak the protocol (or is hostile): the connection
/// should be closed, as Node's server does on a parser error.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// An empty text message.
    #[error("empty packet")]
    Empty,
    /// The type is not one of the known packet types.
    #[error("unknown packet type")]
    UnknownType,
    /// The attachment count of a binary packet is missing, not a number, or zero.
    #[error("illegal attachments count")]
    InvalidAttachments,
    /// A binary packet announces more attachments than allowed.
    #[error("too many attachments: {count} (at most {max})")]
    TooManyAttachments {
        /// The announced count (saturated at `u64::MAX`).
        count: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The namespace is missing or not a string.
    #[error("invalid namespace")]
    InvalidNamespace,
    /// The ack id is not a non-negative 64-bit integer, is missing from an ACK, or is present on
    /// a packet type that has none.
    #[error("invalid ack id")]
    InvalidAckId,
    /// The payload of a text packet is not valid JSON.
    #[error("invalid JSON payload: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The payload does not have the shape its packet type requires.
    #[error("invalid payload for a {0:?} packet")]
    InvalidPayload(PacketType),
    /// An event uses one of the reserved names.
    #[error("reserved event name {0:?}")]
    ReservedEventName(String),
    /// A `_placeholder` object is malformed, points past the attachments, repeats a number, or
    /// the placeholders do not use every attachment.
    #[error("invalid binary placeholder")]
    InvalidPlaceholder,
    /// A binary message arrived while no binary packet was waiting for attachments.
    #[error("got binary data when not reconstructing a packet")]
    UnexpectedBinary,
    /// A text message arrived while a binary packet was still waiting for attachments.
    #[error("got plaintext data when reconstructing a packet")]
    UnexpectedText,
    /// A msgpack packet arrived as text.
    #[error("the msgpack parser only accepts binary messages")]
    TextNotAllowed,
    /// The msgpack data ends in the middle of a value.
    #[error("truncated msgpack data")]
    Truncated,
    /// Bytes follow the msgpack packet.
    #[error("{0} trailing bytes after the msgpack packet")]
    TrailingBytes(usize),
    /// Nested arrays and objects go deeper than the limit.
    #[error("payload nested too deeply")]
    TooDeep,
    /// A msgpack string is not UTF-8.
    #[error("invalid UTF-8 in a msgpack string")]
    InvalidUtf8,
    /// The msgpack data is not valid msgpack, or the packet is not a map with string keys.
    #[error("invalid msgpack: {0}")]
    InvalidMsgpack(&'static str),
}

/// Why a packet cannot be encoded.
///
/// Every packet that encodes decodes back to an equal packet, so the encoder refuses what the
/// decoders (ours and Node's) would reject or change.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The namespace is empty, does not start with `/`, or (for the default parser) holds a comma.
    #[error("invalid namespace {0:?}")]
    InvalidNamespace(String),
    /// The payload does not have the shape its packet type requires.
    #[error("invalid payload for a {0:?} packet")]
    InvalidPayload(PacketType),
    /// The event name is reserved.
    #[error("reserved event name {0:?}")]
    ReservedEventName(String),
    /// Binary data in a CONNECT or CONNECT_ERROR payload, which the default parser cannot carry.
    #[error("binary data is only allowed in events and acknowledgements")]
    BinaryNotAllowed,
    /// Nested arrays and objects go deeper than the limit.
    #[error("payload nested too deeply")]
    TooDeep,
    /// A string, binary, array or object is too long for msgpack (4 GiB).
    #[error("value too large for msgpack")]
    TooLarge,
    /// JSON serialization failed.
    #[error("JSON serialization failed: {0}")]
    Json(#[source] serde_json::Error),
}
