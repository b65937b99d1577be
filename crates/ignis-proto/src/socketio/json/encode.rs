//! Encoding packets in the default parser's text format.
//!
//! The JSON is written by hand rather than through `serde_json`'s serializer: a payload is a
//! [`Value`] tree whose every variant maps to one JSON form, and walking it directly costs a
//! fraction of serde's generic machinery on the small packets that make up most traffic. The
//! output is byte for byte what `serde_json` writes (the tests compare the two).

use bytes::Bytes;

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
    let mut out = Vec::with_capacity(64);
    let attachments = encode_into(&mut out, packet)?;
    Ok(Encoded {
        text: into_string(out),
        attachments,
    })
}

/// Like [`encode`], appending the text message to `out` and returning the attachments: a caller
/// that frames the message can reserve room for its header in front and avoid a copy. On error,
/// `out` is left as it was.
pub fn encode_into(out: &mut Vec<u8>, packet: &Packet) -> Result<Vec<Bytes>, EncodeError> {
    check_kind(&packet.kind)?;
    let (packet_type, id, payload) = match &packet.kind {
        PacketKind::Connect(None) | PacketKind::Disconnect => {
            (packet.packet_type(), None, Payload::None)
        }
        PacketKind::Connect(Some(v)) | PacketKind::ConnectError(v) => {
            (packet.packet_type(), None, Payload::One(v))
        }
        PacketKind::Event { event, args, id } => (
            PacketType::Event,
            *id,
            Payload::Args(Some(event.as_value()), args),
        ),
        PacketKind::Ack { args, id } => (PacketType::Ack, Some(*id), Payload::Args(None, args)),
    };
    write_packet(out, packet_type, &packet.nsp, id, payload)
}

/// Encodes an EVENT from its parts, as [`encode_into`] would encode
/// `Packet::event(nsp, event, args, id)`, without building the packet.
pub fn encode_event_into(
    out: &mut Vec<u8>,
    nsp: &str,
    event: &str,
    args: &[Value],
    id: Option<u64>,
) -> Result<Vec<Bytes>, EncodeError> {
    if crate::socketio::is_reserved_event(event) {
        return Err(EncodeError::ReservedEventName(event.to_owned()));
    }
    write_packet(out, PacketType::Event, nsp, id, Payload::Name(event, args))
}

/// Encodes an ACK from its parts, as [`encode_into`] would encode `Packet::ack(nsp, id, args)`.
pub fn encode_ack_into(
    out: &mut Vec<u8>,
    nsp: &str,
    id: u64,
    args: &[Value],
) -> Result<Vec<Bytes>, EncodeError> {
    write_packet(
        out,
        PacketType::Ack,
        nsp,
        Some(id),
        Payload::Args(None, args),
    )
}

/// The JSON array of `args` alone, as it follows the header of an ACK: for arguments that are
/// sent many times, encoded once and then given to [`encode_ack_json_into`]. Binary values are
/// refused ([`EncodeError::BinaryNotAllowed`]): their attachments travel beside the text.
pub fn encode_args_json(args: &[Value]) -> Result<String, EncodeError> {
    let mut out = Vec::with_capacity(32);
    let mut writer = JsonWriter {
        out: &mut out,
        attachments: Vec::new(),
        binary_allowed: false,
    };
    writer.args(None, args)?;
    Ok(into_string(out))
}

/// Encodes an ACK whose arguments are already JSON (from [`encode_args_json`]): what
/// [`encode_ack_into`] writes for the same arguments, without walking them again.
pub fn encode_ack_json_into(
    out: &mut Vec<u8>,
    nsp: &str,
    id: u64,
    args_json: &str,
) -> Result<(), EncodeError> {
    write_packet(
        out,
        PacketType::Ack,
        nsp,
        Some(id),
        Payload::Json(args_json),
    )
    .map(drop)
}

/// Encodes the CONNECT that admits a client, `{"sid":…}` with `"pid"` after it when there is
/// one: what [`encode_into`] writes for `Packet::connect(nsp, Some(map))` with that map, without
/// building it (every connection gets one).
pub fn encode_connect_answer_into(
    out: &mut Vec<u8>,
    nsp: &str,
    sid: &str,
    pid: Option<&str>,
) -> Result<(), EncodeError> {
    write_packet(
        out,
        PacketType::Connect,
        nsp,
        None,
        Payload::Admitted { sid, pid },
    )
    .map(drop)
}

/// What follows the header of a text message.
enum Payload<'a> {
    None,
    /// The payload of a CONNECT or CONNECT_ERROR.
    One(&'a Value),
    /// The array of an EVENT (with its name first) or an ACK.
    Args(Option<&'a Value>, &'a [Value]),
    /// The array of an EVENT whose name is a string.
    Name(&'a str, &'a [Value]),
    /// A payload already encoded.
    Json(&'a str),
    /// The payload of a CONNECT that admits a client.
    Admitted {
        sid: &'a str,
        pid: Option<&'a str>,
    },
}

fn write_packet(
    out: &mut Vec<u8>,
    packet_type: PacketType,
    nsp: &str,
    id: Option<u64>,
    payload: Payload<'_>,
) -> Result<Vec<Bytes>, EncodeError> {
    // The main namespace, which nearly every packet is for, is neither checked nor written.
    let main_nsp = nsp == "/";
    if !main_nsp && (!nsp.starts_with('/') || nsp.contains(',')) {
        return Err(EncodeError::InvalidNamespace(nsp.to_owned()));
    }
    let start = out.len();
    out.push(b'0' + packet_type as u8);
    if !main_nsp {
        out.extend_from_slice(nsp.as_bytes());
        out.push(b',');
    }
    if let Some(id) = id {
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
    }

    let mut writer = JsonWriter {
        out,
        attachments: Vec::new(),
        binary_allowed: matches!(packet_type, PacketType::Event | PacketType::Ack),
    };
    let written = match payload {
        Payload::None => Ok(()),
        Payload::One(v) => writer.value(v, 1),
        Payload::Args(first, rest) => writer.args(first.map(Head::Value), rest),
        Payload::Name(name, rest) => writer.args(Some(Head::Str(name)), rest),
        Payload::Json(json) => {
            writer.out.extend_from_slice(json.as_bytes());
            Ok(())
        }
        Payload::Admitted { sid, pid } => {
            writer.out.extend_from_slice(b"{\"sid\":");
            write_str(writer.out, sid);
            if let Some(pid) = pid {
                writer.out.extend_from_slice(b",\"pid\":");
                write_str(writer.out, pid);
            }
            writer.out.push(b'}');
            Ok(())
        }
    };
    let JsonWriter {
        out, attachments, ..
    } = writer;
    if let Err(e) = written {
        out.truncate(start);
        return Err(e);
    }

    if !attachments.is_empty() {
        let binary = match packet_type {
            PacketType::Ack => PacketType::BinaryAck,
            _ => PacketType::BinaryEvent,
        };
        out[start] = b'0' + binary as u8;
        let mut count = itoa::Buffer::new()
            .format(attachments.len())
            .as_bytes()
            .to_vec();
        count.push(b'-');
        out.splice(start + 1..start + 1, count);
    }
    Ok(attachments)
}

/// Only ASCII and valid UTF-8 from `str`s go into an encoded message, so the lossy path never
/// runs; it is there so that a bug could not become undefined behaviour.
fn into_string(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The first element of an EVENT's array: its name.
enum Head<'a> {
    Value(&'a Value),
    Str(&'a str),
}

/// Writes JSON for [`Value`]s, replacing binary values by placeholders.
struct JsonWriter<'a> {
    out: &'a mut Vec<u8>,
    attachments: Vec<Bytes>,
    binary_allowed: bool,
}

impl JsonWriter<'_> {
    /// The array of an EVENT or ACK, at depth 1: its elements are at depth 2.
    fn args(&mut self, head: Option<Head<'_>>, rest: &[Value]) -> Result<(), EncodeError> {
        self.out.push(b'[');
        let mut first = true;
        match head {
            Some(Head::Value(v)) => {
                self.value(v, 2)?;
                first = false;
            }
            Some(Head::Str(s)) => {
                write_str(self.out, s);
                first = false;
            }
            None => {}
        }
        for value in rest {
            if !first {
                self.out.push(b',');
            }
            first = false;
            self.value(value, 2)?;
        }
        self.out.push(b']');
        Ok(())
    }

    /// A value at nesting level `depth` (1 for the payload itself).
    fn value(&mut self, value: &Value, depth: usize) -> Result<(), EncodeError> {
        match value {
            Value::Null => self.out.extend_from_slice(b"null"),
            Value::Bool(true) => self.out.extend_from_slice(b"true"),
            Value::Bool(false) => self.out.extend_from_slice(b"false"),
            Value::Int(n) => self
                .out
                .extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::UInt(n) => self
                .out
                .extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            Value::Float(f) => write_f64(self.out, *f),
            Value::Str(s) => write_str(self.out, s),
            Value::Bytes(bytes) => {
                if !self.binary_allowed {
                    return Err(EncodeError::BinaryNotAllowed);
                }
                self.out
                    .extend_from_slice(b"{\"_placeholder\":true,\"num\":");
                self.out.extend_from_slice(
                    itoa::Buffer::new()
                        .format(self.attachments.len())
                        .as_bytes(),
                );
                self.out.push(b'}');
                self.attachments.push(bytes.clone());
            }
            Value::Array(items) => {
                if depth > MAX_DEPTH {
                    return Err(EncodeError::TooDeep);
                }
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.value(item, depth + 1)?;
                }
                self.out.push(b']');
            }
            Value::Map(entries) => {
                if depth > MAX_DEPTH {
                    return Err(EncodeError::TooDeep);
                }
                self.out.push(b'{');
                let mut first = true;
                for (key, item) in entries.entries() {
                    if !first {
                        self.out.push(b',');
                    }
                    first = false;
                    write_str(self.out, key.as_str());
                    self.out.push(b':');
                    self.value(item, depth + 1)?;
                }
                self.out.push(b'}');
            }
        }
        Ok(())
    }
}

/// A finite float in the shortest form that reads back to the same value (as `serde_json` and
/// `JSON.stringify` agree on for the values that round-trip); NaN and infinities become `null`.
fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(f).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// What each byte becomes inside a JSON string: 0 for itself, `u` for `\u00XX`, or the letter
/// of a short escape.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// The high bit of each byte of `word` that is a control character, `"` or `\\`, plus possibly
/// spurious bits above the lowest one (a borrow carries upwards only from a real hit): zero
/// exactly when no byte needs escaping, and the lowest set bit always marks a real hit.
pub(super) fn escape_hits(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    below_space | has_zero(word ^ (ONES * b'"' as u64)) | has_zero(word ^ (ONES * b'\\' as u64))
}

/// The eight bytes from `at` on, as a little-endian word.
pub(super) fn word_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Whether no byte of `bytes` needs escaping. Every byte is looked at in whole words: a string
/// shorter than a word is read as overlapping pieces that cover it, a longer one ends with a
/// word that overlaps the one before, so no byte is checked on its own.
fn is_clean(bytes: &[u8]) -> bool {
    let len = bytes.len();
    let word = match len {
        0 => return true,
        // Bytes 0, len/2 and len-1 cover all of a string of one to three bytes; the other
        // bytes are spaces, which need no escape.
        1..=3 => {
            u64::from(bytes[0])
                | u64::from(bytes[len / 2]) << 8
                | u64::from(bytes[len - 1]) << 16
                | 0x2020_2020_2000_0000
        }
        4..=7 => {
            let mut low = [0u8; 4];
            low.copy_from_slice(&bytes[..4]);
            let mut high = [0u8; 4];
            high.copy_from_slice(&bytes[len - 4..]);
            u64::from(u32::from_le_bytes(low)) | u64::from(u32::from_le_bytes(high)) << 32
        }
        _ => {
            let mut at = 0;
            while at + 8 < len {
                if escape_hits(word_at(bytes, at)) != 0 {
                    return false;
                }
                at += 8;
            }
            word_at(bytes, len - 8)
        }
    };
    escape_hits(word) == 0
}

/// A JSON string: quotes, backslashes and control characters escaped, everything else (all
/// non-ASCII included) as it is.
fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most strings need no escape: checked first, they are copied in one piece.
    if is_clean(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else {
        write_escaped(out, bytes);
    }
}

#[cold]
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if escape == b'u' {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;
    use crate::value::Map;

    /// What `serde_json` writes for the same value (binary aside).
    fn serde(value: &Value) -> String {
        serde_json::to_string(value).unwrap()
    }

    fn ours(value: &Value) -> String {
        let mut out = Vec::new();
        let mut w = JsonWriter {
            out: &mut out,
            attachments: Vec::new(),
            binary_allowed: true,
        };
        w.value(value, 1).unwrap();
        String::from_utf8(out).unwrap()
    }

    impl Rng {
        fn string(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{8}", "\u{c}", "\u{0}",
                "\u{1f}", "\u{7f}", "é", "€", "😀", "\u{2028}", "\u{fffd}", "<", "&",
            ];
            (0..self.below(12))
                .map(|_| PIECES[self.below(PIECES.len())])
                .collect()
        }

        fn float(&mut self) -> f64 {
            match self.below(8) {
                0 => 0.0,
                1 => -0.0,
                2 => f64::from_bits(self.next()),
                3 => (self.next() as f64) / 1e9,
                4 => 1e21,
                5 => 1e-7,
                6 => f64::MAX,
                _ => 0.1 + 0.2,
            }
        }

        fn value(&mut self, depth: u32) -> Value {
            let pick = if depth > 3 {
                self.below(6)
            } else {
                self.below(8)
            };
            match pick {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 0),
                2 => Value::Int(self.next() as i64 >> self.below(64)),
                3 => Value::UInt(u64::MAX - self.below(1000) as u64),
                4 => Value::Float(self.float()),
                5 => Value::Str(self.string()),
                6 => Value::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
                _ => {
                    let mut m = Map::new();
                    for _ in 0..self.below(5) {
                        let key = self.string();
                        let value = self.value(depth + 1);
                        m.insert(key, value);
                    }
                    Value::Map(m)
                }
            }
        }
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let value = rng.value(0);
            assert_eq!(ours(&value), serde(&value), "{value:?}");
        }
    }

    #[test]
    fn escapes_every_control_character_and_nothing_else_ascii() {
        for b in 0u8..0x80 {
            let s = (b as char).to_string();
            let value = Value::Str(s);
            assert_eq!(ours(&value), serde(&value), "byte {b:#x}");
        }
    }

    #[test]
    fn an_escape_is_found_at_every_position_of_a_long_string() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', 'é', '\u{7f}'] {
            for at in 0..40 {
                let mut s: String = "abcdefghijklmnopqrstuvwxyz0123456789ABCD".into();
                s.replace_range(at..at + 1, &special.to_string());
                let value = Value::Str(s);
                assert_eq!(ours(&value), serde(&value), "{special:?} at {at}");
            }
        }
    }

    /// Short strings are checked as overlapping pieces and longer ones end with an overlapping
    /// word: a byte to escape (or a non-ASCII one, which is not escaped) must be found wherever
    /// it falls, in the first word, the last, or the padded piece of a short string.
    #[test]
    fn every_short_length_and_position_writes_what_serde_json_writes() {
        for special in [
            "\"", "\\", "\n", "\u{0}", "\u{1f}", "\u{7f}", "é", "€", "😀", " ",
        ] {
            for len in 0..=17 {
                let plain = Value::Str("x".repeat(len));
                assert_eq!(ours(&plain), serde(&plain), "{len} plain bytes");
                for at in 0..len {
                    let s = "x".repeat(at) + special + &"x".repeat(len - at - 1);
                    let value = Value::Str(s);
                    assert_eq!(ours(&value), serde(&value), "{special:?} at {at} of {len}");
                }
            }
        }
    }

    #[test]
    fn non_finite_floats_are_null() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(ours(&Value::Float(f)), "null");
        }
    }

    #[test]
    fn parts_encode_like_the_packet() {
        let args = vec![Value::from("x"), Value::bytes(&b"\x01"[..]), Value::Int(3)];
        for (nsp, id) in [("/", None), ("/chat", Some(7)), ("/", Some(0))] {
            let packet = Packet::event(nsp, "hello", args.clone(), id);
            let mut a = b"pre".to_vec();
            let att_a = encode_event_into(&mut a, nsp, "hello", &args, id).unwrap();
            let mut b = b"pre".to_vec();
            let att_b = encode_into(&mut b, &packet).unwrap();
            assert_eq!(a, b);
            assert_eq!(att_a, att_b);
            assert_eq!(&a[3..], encode(&packet).unwrap().text.as_bytes());
            if let Some(id) = id {
                let mut a = Vec::new();
                encode_ack_into(&mut a, nsp, id, &args).unwrap();
                let b = encode(&Packet::ack(nsp, id, args.clone())).unwrap();
                assert_eq!(a, b.text.as_bytes());
            }
        }
        assert_eq!(
            String::from_utf8({
                let mut out = Vec::new();
                encode_ack_into(&mut out, "/", 12, &[Value::bytes(&b"ab"[..])]).unwrap();
                out
            })
            .unwrap(),
            r#"61-12[{"_placeholder":true,"num":0}]"#
        );
    }

    #[test]
    fn an_ack_from_encoded_args_is_the_ack_from_the_values() {
        let mut ok = Map::new();
        ok.insert("ok", true);
        let args = [Value::Map(ok), Value::from("a\"b"), Value::Int(-3)];
        let json = encode_args_json(&args).unwrap();
        for (nsp, id) in [("/", 0), ("/chat", 42)] {
            let mut a = b"pre".to_vec();
            encode_ack_json_into(&mut a, nsp, id, &json).unwrap();
            let mut b = b"pre".to_vec();
            encode_ack_into(&mut b, nsp, id, &args).unwrap();
            assert_eq!(a, b);
        }
        assert_eq!(encode_args_json(&[]).unwrap(), "[]");
        let err = encode_args_json(&[Value::bytes(&b"x"[..])]).unwrap_err();
        assert!(matches!(err, EncodeError::BinaryNotAllowed));
        let mut out = b"keep".to_vec();
        let err = encode_ack_json_into(&mut out, "chat", 1, "[]").unwrap_err();
        assert!(matches!(err, EncodeError::InvalidNamespace(_)));
        assert_eq!(out, b"keep");
    }

    #[test]
    fn a_connect_answer_is_the_packet_with_its_map() {
        for nsp in ["/", "/chat"] {
            for pid in [None, Some("p-1\"x")] {
                let mut map = Map::new();
                map.insert("sid", "AbC-_12");
                if let Some(pid) = pid {
                    map.insert("pid", pid);
                }
                let packet = Packet::connect(nsp, Some(Value::Map(map)));
                let mut a = b"pre".to_vec();
                encode_connect_answer_into(&mut a, nsp, "AbC-_12", pid).unwrap();
                let mut b = b"pre".to_vec();
                encode_into(&mut b, &packet).unwrap();
                assert_eq!(a, b, "{nsp} {pid:?}");
            }
        }
        let mut out = Vec::new();
        let err = encode_connect_answer_into(&mut out, "chat", "a", None).unwrap_err();
        assert!(matches!(err, EncodeError::InvalidNamespace(_)));
    }

    #[test]
    fn a_refused_packet_leaves_the_buffer_as_it_was() {
        let mut out = b"keep".to_vec();
        let err = encode_event_into(&mut out, "/", "disconnect", &[], None).unwrap_err();
        assert!(matches!(err, EncodeError::ReservedEventName(_)));
        let err = encode_event_into(&mut out, "chat", "a", &[], None).unwrap_err();
        assert!(matches!(err, EncodeError::InvalidNamespace(_)));
        let mut deep = Value::Null;
        for _ in 0..200 {
            deep = Value::Array(vec![deep]);
        }
        let err = encode_event_into(&mut out, "/", "a", &[deep], None).unwrap_err();
        assert!(matches!(err, EncodeError::TooDeep));
        let connect = Packet {
            nsp: "/".into(),
            kind: PacketKind::Connect(Some(Value::Map({
                let mut m = Map::new();
                m.insert("b", Value::bytes(&b"x"[..]));
                m
            }))),
        };
        let err = encode_into(&mut out, &connect).unwrap_err();
        assert!(matches!(err, EncodeError::BinaryNotAllowed));
        assert_eq!(out, b"keep");
    }
}
