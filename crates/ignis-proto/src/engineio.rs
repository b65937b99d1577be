//! Engine.IO v4 packets and polling payloads.
//!
//! A packet is one type digit followed by its data. Over WebSocket every packet is one frame (a
//! binary frame is always a `message` packet with binary data); over HTTP long-polling packets are
//! joined by the record separator `0x1E` and binary data travels base64-encoded behind a `b`.

use std::fmt;
use std::ops::Deref;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf, Bytes};

/// The byte that separates packets in a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// Immutable, cheaply clonable UTF-8 text backed by [`Bytes`].
///
/// Engine.IO text arrives as slices of larger buffers (a WebSocket frame, a polling body); keeping
/// them as `Bytes` lets every layer pass text along without copying it.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Str(Bytes);

impl Str {
    /// Validates `bytes` as UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Self, std::str::Utf8Error> {
        // Most traffic is ASCII, which a word-at-a-time check clears several times faster than
        // the full validation.
        if !bytes.is_ascii() {
            std::str::from_utf8(&bytes)?;
        }
        Ok(Str(bytes))
    }

    /// Text known at compile time.
    pub const fn from_static(s: &'static str) -> Self {
        Str(Bytes::from_static(s.as_bytes()))
    }

    /// The text, borrowed without a copy.
    pub fn as_str(&self) -> &str {
        // The only constructors validate UTF-8 or take a `&str`/`String`, and slicing goes through
        // `slice_from`, which checks char boundaries, so the bytes are always valid UTF-8. The
        // check is repeated here instead of `from_utf8_unchecked` only in debug builds.
        debug_assert!(std::str::from_utf8(&self.0).is_ok());
        // SAFETY: see above; every constructor upholds the UTF-8 invariant.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The underlying UTF-8 bytes, without a copy (to write them out as a frame or payload).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The text from byte offset `at` on; `None` if `at` is not a char boundary.
    pub fn slice_from(&self, at: usize) -> Option<Str> {
        self.as_str()
            .is_char_boundary(at)
            .then(|| Str(self.0.slice(at..)))
    }
}

impl Deref for Str {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Str {
    fn from(s: String) -> Self {
        Str(Bytes::from(s))
    }
}

impl From<&'static str> for Str {
    fn from(s: &'static str) -> Self {
        Str::from_static(s)
    }
}

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The data of a `message` packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// A text message, sent as-is in a WebSocket text frame or a polling payload.
    Text(Str),
    /// A binary message: a WebSocket binary frame, or `b` + base64 in a polling payload.
    Binary(Bytes),
}

impl Data {
    /// The length in bytes (UTF-8 bytes for text, before any base64 encoding).
    pub fn len(&self) -> usize {
        match self {
            Data::Text(s) => s.len(),
            Data::Binary(b) => b.len(),
        }
    }

    /// Whether the message holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An Engine.IO v4 packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// Handshake, server to client: the JSON text of [`OpenInfo`].
    Open(Str),
    /// Closes the session; either side may send it.
    Close,
    /// Heartbeat. The data is empty except during the upgrade probe (`probe`).
    Ping(Str),
    /// Heartbeat answer; echoes the data of the `ping` (`probe` during the upgrade probe).
    Pong(Str),
    /// Application data: a Socket.IO packet, or any data with plain Engine.IO.
    Message(Data),
    /// Sent by the client on the new transport to complete an upgrade to WebSocket.
    Upgrade,
    /// Does nothing; the server sends it to release a pending poll during an upgrade.
    Noop,
}

impl Packet {
    fn type_char(&self) -> u8 {
        match self {
            Packet::Open(_) => b'0',
            Packet::Close => b'1',
            Packet::Ping(_) => b'2',
            Packet::Pong(_) => b'3',
            Packet::Message(_) => b'4',
            Packet::Upgrade => b'5',
            Packet::Noop => b'6',
        }
    }

    /// The text form of a packet whose data is text, as sent in a WebSocket text frame.
    /// Binary messages have no text form: they are sent as a binary frame holding the bytes.
    pub fn encode_text(&self, out: &mut Vec<u8>) {
        out.push(self.type_char());
        match self {
            Packet::Open(s)
            | Packet::Ping(s)
            | Packet::Pong(s)
            | Packet::Message(Data::Text(s)) => out.extend_from_slice(s.as_bytes()),
            Packet::Message(Data::Binary(b)) => {
                // Polling form; callers with a WebSocket send the raw bytes instead.
                out.pop();
                out.push(b'b');
                encode_base64(b, out);
            }
            Packet::Close | Packet::Upgrade | Packet::Noop => {}
        }
    }

    /// Decodes one text packet (a WebSocket text frame, or one record of a polling payload).
    pub fn decode_text(text: Str) -> Result<Packet, DecodeError> {
        let first = *text.as_bytes().first().ok_or(DecodeError::Empty)?;
        // The type is one ASCII byte, so what follows starts on a char boundary. Moving past it
        // keeps the one reference to the buffer; a slice would share it, which costs an
        // allocation the first time.
        let rest = |text: Str| {
            let mut bytes = text.into_bytes();
            bytes.advance(1);
            Str(bytes)
        };
        let packet = match first {
            b'0' => Packet::Open(rest(text)),
            b'1' => Packet::Close,
            b'2' => Packet::Ping(rest(text)),
            b'3' => Packet::Pong(rest(text)),
            b'4' => Packet::Message(Data::Text(rest(text))),
            b'5' => Packet::Upgrade,
            b'6' => Packet::Noop,
            b'b' => {
                let bin = decode_base64(&text.as_bytes()[1..])?;
                Packet::Message(Data::Binary(bin))
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        Ok(packet)
    }
}

fn encode_base64(data: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let len = base64::encoded_len(data.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = BASE64
        .encode_slice(data, &mut out[start..])
        .unwrap_or_default();
    out.truncate(start + written);
}

fn decode_base64(data: &[u8]) -> Result<Bytes, DecodeError> {
    BASE64
        .decode(data)
        .map(Bytes::from)
        .map_err(|_| DecodeError::InvalidBase64)
}

/// Why a packet or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The packet has no bytes, so not even a type.
    #[error("empty packet")]
    Empty,
    /// The first byte is not one of the seven packet types (`0`-`6`, or `b` for base64).
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A `b` packet whose data is not valid base64.
    #[error("invalid base64 in binary packet")]
    InvalidBase64,
    /// A polling payload, or a text packet, that is not valid UTF-8.
    #[error("packet is not valid UTF-8")]
    InvalidUtf8,
    /// The payload holds more packets than the `max_packets` the caller allowed.
    #[error("payload holds more than {0} packets")]
    TooManyPackets(usize),
}

/// Decodes a polling payload (the body of a POST from a client, or of a GET response).
///
/// `max_packets` bounds the work one request can cause; the body size is already bounded by the
/// server's `maxHttpBufferSize`.
pub fn decode_payload(body: Bytes, max_packets: usize) -> Result<Vec<Packet>, DecodeError> {
    let mut packets = Vec::new();
    let mut start = 0;
    while start <= body.len() {
        let end = body[start..]
            .iter()
            .position(|&b| b == SEPARATOR)
            .map_or(body.len(), |i| start + i);
        if packets.len() == max_packets {
            return Err(DecodeError::TooManyPackets(max_packets));
        }
        let record =
            Str::from_utf8(body.slice(start..end)).map_err(|_| DecodeError::InvalidUtf8)?;
        packets.push(Packet::decode_text(record)?);
        start = end + 1;
    }
    Ok(packets)
}

/// Encodes packets into one polling payload.
pub fn encode_payload<'a>(packets: impl IntoIterator<Item = &'a Packet>, out: &mut Vec<u8>) {
    for (i, packet) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        packet.encode_text(out);
    }
}

/// The handshake data carried by the `open` packet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInfo {
    /// The session id; the client sends it back in the `sid` query parameter.
    pub sid: String,
    /// The transports the client may upgrade to (`["websocket"]` when polling, else empty).
    pub upgrades: Vec<String>,
    /// Milliseconds between the server's pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong before it closes the session.
    pub ping_timeout: u64,
    /// The largest polling payload, in bytes, the server accepts from this client.
    pub max_payload: u64,
}

impl OpenInfo {
    /// The `open` packet carrying this handshake as JSON.
    pub fn to_packet(&self) -> Packet {
        // Serialising a struct of strings and integers cannot fail.
        let json = serde_json::to_string(self).unwrap_or_default();
        Packet::Open(Str::from(json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Str {
        Str::from_static(s)
    }

    #[test]
    fn decodes_every_packet_type() {
        let cases: &[(&str, Packet)] = &[
            ("0{\"sid\":\"x\"}", Packet::Open(text("{\"sid\":\"x\"}"))),
            ("1", Packet::Close),
            ("2", Packet::Ping(text(""))),
            ("2probe", Packet::Ping(text("probe"))),
            ("3", Packet::Pong(text(""))),
            ("3probe", Packet::Pong(text("probe"))),
            ("4hello", Packet::Message(Data::Text(text("hello")))),
            ("4", Packet::Message(Data::Text(text("")))),
            ("4é", Packet::Message(Data::Text(text("é")))),
            ("5", Packet::Upgrade),
            ("6", Packet::Noop),
            (
                "bAQID",
                Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3]))),
            ),
        ];
        for (input, expected) in cases {
            let got = Packet::decode_text(Str::from_static(input)).unwrap();
            assert_eq!(&got, expected, "input {input:?}");
            let mut out = Vec::new();
            got.encode_text(&mut out);
            assert_eq!(out, input.as_bytes(), "re-encoding {input:?}");
        }
    }

    #[test]
    fn rejects_malformed_packets() {
        let cases: &[(&str, DecodeError)] = &[
            ("", DecodeError::Empty),
            ("7", DecodeError::UnknownType(b'7')),
            ("x", DecodeError::UnknownType(b'x')),
            ("b!!!", DecodeError::InvalidBase64),
            ("bAQI", DecodeError::InvalidBase64),
        ];
        for (input, expected) in cases {
            let got = Packet::decode_text(Str::from_static(input)).unwrap_err();
            assert_eq!(&got, expected, "input {input:?}");
        }
    }

    #[test]
    fn payload_round_trip() {
        let packets = vec![
            Packet::Message(Data::Text(text("hello"))),
            Packet::Message(Data::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
            Packet::Ping(text("")),
            Packet::Message(Data::Text(text("€uro"))),
        ];
        let mut out = Vec::new();
        encode_payload(&packets, &mut out);
        assert_eq!(out, b"4hello\x1ebAQIDBA==\x1e2\x1e4\xe2\x82\xacuro");
        assert_eq!(decode_payload(Bytes::from(out), 16).unwrap(), packets);
    }

    #[test]
    fn payload_errors() {
        assert_eq!(decode_payload(Bytes::new(), 16), Err(DecodeError::Empty));
        assert_eq!(
            decode_payload(Bytes::from_static(b"4a\x1e"), 16),
            Err(DecodeError::Empty)
        );
        assert_eq!(
            decode_payload(Bytes::from_static(b"4a\x1e9"), 16),
            Err(DecodeError::UnknownType(b'9'))
        );
        assert_eq!(
            decode_payload(Bytes::from_static(b"4\xff\xfe"), 16),
            Err(DecodeError::InvalidUtf8)
        );
        assert_eq!(
            decode_payload(Bytes::from_static(b"6\x1e6\x1e6"), 2),
            Err(DecodeError::TooManyPackets(2))
        );
    }

    #[test]
    fn open_packet_is_json() {
        let open = OpenInfo {
            sid: "abc".into(),
            upgrades: vec!["websocket".into()],
            ping_interval: 25000,
            ping_timeout: 20000,
            max_payload: 1_000_000,
        };
        let mut out = Vec::new();
        open.to_packet().encode_text(&mut out);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#
        );
    }

    #[test]
    fn str_slicing_respects_char_boundaries() {
        let s = Str::from_static("é");
        assert!(s.slice_from(1).is_none());
        assert_eq!(s.slice_from(2).unwrap().as_str(), "");
    }
}
