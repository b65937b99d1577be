//! Frame layout (RFC 6455 §5.2): building frames and reading frame headers.
//!
//! Server frames are never masked, so one built frame can be written unchanged
//! to every socket of a broadcast; [`server_frame`] and
//! [`server_frame_compressed`] return such shareable [`Bytes`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::deflate::{DeflateError, Deflater};

/// Largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest possible frame header: 2 bytes, 8 bytes of extended length, 4 bytes of mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Frame opcode (RFC 6455 §5.2). Reserved opcodes have no variant: the decoder
/// rejects them before an `OpCode` exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// Continues a fragmented text or binary message (`0x0`).
    Continuation,
    /// Starts a UTF-8 text message (`0x1`).
    Text,
    /// Starts a binary message (`0x2`).
    Binary,
    /// Starts or answers the closing handshake (`0x8`).
    Close,
    /// Asks the peer for a pong (`0x9`).
    Ping,
    /// Answers a ping, or a unidirectional heartbeat (`0xA`).
    Pong,
}

impl OpCode {
    /// The 4-bit value on the wire.
    pub const fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Parses the 4-bit wire value; `None` for reserved opcodes.
    pub const fn from_u8(value: u8) -> Option<OpCode> {
        Some(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Close, Ping and Pong.
    pub const fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// Number of header bytes a frame with this payload length and masking needs.
pub const fn header_len(payload_len: usize, masked: bool) -> usize {
    let base = if payload_len < 126 {
        2
    } else if payload_len <= u16::MAX as usize {
        4
    } else {
        10
    };
    if masked { base + 4 } else { base }
}

/// Writes a frame header using the minimal length encoding.
pub fn encode_frame_header(
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
    out: &mut impl BufMut,
) {
    let mut b0 = opcode.as_u8();
    if fin {
        b0 |= 0x80;
    }
    if rsv1 {
        b0 |= 0x40;
    }
    out.put_u8(b0);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if payload_len < 126 {
        // Fits in 7 bits by the branch condition.
        out.put_u8(mask_bit | payload_len as u8);
    } else if let Ok(len16) = u16::try_from(payload_len) {
        out.put_u8(mask_bit | 126);
        out.put_u16(len16);
    } else {
        out.put_u8(mask_bit | 127);
        out.put_u64(payload_len as u64);
    }
    if let Some(key) = mask {
        out.put_slice(&key);
    }
}

/// XORs `data` with the masking key, starting at key position `offset % 4`.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    let mut rotated = [0u8; 4];
    for (i, slot) in rotated.iter_mut().enumerate() {
        *slot = key[(offset + i) % 4];
    }
    let word = u32::from_ne_bytes(rotated);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u32::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(rotated) {
        *byte ^= k;
    }
}

/// Builds one complete (FIN) frame. With `mask` (client frames) the payload is
/// masked in the output; without it (server frames) it is copied verbatim.
pub fn encode_frame(opcode: OpCode, payload: &[u8], rsv1: bool, mask: Option<[u8; 4]>) -> Bytes {
    let hlen = header_len(payload.len(), mask.is_some());
    let mut out = BytesMut::with_capacity(hlen + payload.len());
    encode_frame_header(true, rsv1, opcode, payload.len(), mask, &mut out);
    out.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[hlen..], key, 0);
    }
    out.freeze()
}

/// An unmasked, uncompressed, complete frame that can be written to any
/// number of client connections.
pub fn server_frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    encode_frame(opcode, payload, false, None)
}

/// Compresses `payload` as one permessage-deflate message and frames it with
/// RSV1 set. The result is shareable between every connection whose
/// negotiated server parameters the `deflater` was built for; with context
/// takeover the deflater carries state and the frame only suits one peer.
pub fn server_frame_compressed(
    opcode: OpCode,
    payload: &[u8],
    deflater: &mut Deflater,
) -> Result<Bytes, DeflateError> {
    let compressed = deflater.compress(payload)?;
    let mut out = BytesMut::with_capacity(header_len(compressed.len(), false) + compressed.len());
    encode_frame_header(true, true, opcode, compressed.len(), None, &mut out);
    out.put_slice(compressed);
    Ok(out.freeze())
}

/// A parsed frame header; `payload_len` is as declared on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final frame of its message.
    pub fin: bool,
    /// RSV1: with permessage-deflate, the message is compressed (first frame only).
    pub rsv1: bool,
    /// RSV2: reserved, must be clear.
    pub rsv2: bool,
    /// RSV3: reserved, must be clear.
    pub rsv3: bool,
    /// Raw 4-bit opcode, reserved values included.
    pub opcode: u8,
    /// The masking key; clients mask every frame, servers none.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes, as declared on the wire.
    pub payload_len: u64,
    /// Bytes taken by the header itself.
    pub header_len: usize,
}

/// Why a header cannot be read yet or at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStatus {
    /// At least this many bytes in total are needed to read the header.
    Incomplete(usize),
    /// The 64-bit length has its most significant bit set (RFC 6455 §5.2).
    InvalidLength,
}

/// Reads a frame header from the start of `src`.
///
/// Non-minimal length encodings are accepted, as the `ws` library does: the
/// RFC requires senders to use the minimal form but does not ask receivers
/// to check it.
pub fn parse_frame_header(src: &[u8]) -> Result<FrameHeader, HeaderStatus> {
    let (b0, b1) = match src {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Err(HeaderStatus::Incomplete(2)),
    };
    let masked = b1 & 0x80 != 0;
    let len7 = b1 & 0x7F;
    let ext_len = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = 2 + ext_len + if masked { 4 } else { 0 };
    let Some(header) = src.get(..header_len) else {
        return Err(HeaderStatus::Incomplete(header_len));
    };
    let payload_len = match len7 {
        126 => u64::from(u16::from_be_bytes([header[2], header[3]])),
        127 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(&header[2..10]);
            let len = u64::from_be_bytes(raw);
            if len >> 63 != 0 {
                return Err(HeaderStatus::InvalidLength);
            }
            len
        }
        n => u64::from(n),
    };
    let mask = if masked {
        let start = 2 + ext_len;
        let mut key = [0u8; 4];
        key.copy_from_slice(&header[start..start + 4]);
        Some(key)
    } else {
        None
    };
    Ok(FrameHeader {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode: b0 & 0x0F,
        mask,
        payload_len,
        header_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
            .collect()
    }

    #[test]
    fn rfc6455_section_5_7_examples() {
        struct Case {
            name: &'static str,
            fin: bool,
            opcode: OpCode,
            payload: &'static [u8],
            mask: Option<[u8; 4]>,
            expected: &'static str,
        }
        let cases = [
            Case {
                name: "single-frame unmasked text",
                fin: true,
                opcode: OpCode::Text,
                payload: b"Hello",
                mask: None,
                expected: "81 05 48 65 6c 6c 6f",
            },
            Case {
                name: "single-frame masked text",
                fin: true,
                opcode: OpCode::Text,
                payload: b"Hello",
                mask: Some(KEY),
                expected: "81 85 37 fa 21 3d 7f 9f 4d 51 58",
            },
            Case {
                name: "fragment 1 of 2",
                fin: false,
                opcode: OpCode::Text,
                payload: b"Hel",
                mask: None,
                expected: "01 03 48 65 6c",
            },
            Case {
                name: "fragment 2 of 2",
                fin: true,
                opcode: OpCode::Continuation,
                payload: b"lo",
                mask: None,
                expected: "80 02 6c 6f",
            },
            Case {
                name: "unmasked ping",
                fin: true,
                opcode: OpCode::Ping,
                payload: b"Hello",
                mask: None,
                expected: "89 05 48 65 6c 6c 6f",
            },
            Case {
                name: "masked pong",
                fin: true,
                opcode: OpCode::Pong,
                payload: b"Hello",
                mask: Some(KEY),
                expected: "8a 85 37 fa 21 3d 7f 9f 4d 51 58",
            },
        ];
        for case in cases {
            let mut out = BytesMut::new();
            encode_frame_header(
                case.fin,
                false,
                case.opcode,
                case.payload.len(),
                case.mask,
                &mut out,
            );
            let start = out.len();
            out.put_slice(case.payload);
            if let Some(key) = case.mask {
                apply_mask(&mut out[start..], key, 0);
            }
            assert_eq!(out.to_vec(), hex(case.expected), "{}", case.name);
            if case.fin {
                let built = encode_frame(case.opcode, case.payload, false, case.mask);
                assert_eq!(
                    built.to_vec(),
                    hex(case.expected),
                    "{} (encode_frame)",
                    case.name
                );
            }
        }
    }

    #[test]
    fn length_encodings() {
        let cases: [(usize, &str); 6] = [
            (0, "82 00"),
            (125, "82 7d"),
            (126, "82 7e 00 7e"),
            (256, "82 7e 01 00"),
            (65535, "82 7e ff ff"),
            (65536, "82 7f 00 00 00 00 00 01 00 00"),
        ];
        for (len, prefix) in cases {
            let payload = vec![0xAB; len];
            let frame = server_frame(OpCode::Binary, &payload);
            let prefix = hex(prefix);
            assert_eq!(&frame[..prefix.len()], &prefix[..], "len {len}");
            assert_eq!(frame.len(), prefix.len() + len, "len {len}");
            assert_eq!(header_len(len, false), prefix.len(), "len {len}");
            let parsed = parse_frame_header(&frame).expect("header");
            assert_eq!(parsed.payload_len, len as u64);
            assert_eq!(parsed.header_len, prefix.len());
        }
    }

    #[test]
    fn masking_is_an_involution_at_any_offset() {
        let original: Vec<u8> = (0..=255u8).collect();
        for offset in 0..4 {
            let mut data = original.clone();
            apply_mask(&mut data[3..], KEY, offset);
            for (i, (masked, plain)) in data[3..].iter().zip(&original[3..]).enumerate() {
                assert_eq!(*masked, plain ^ KEY[(i + offset) % 4]);
            }
            apply_mask(&mut data[3..], KEY, offset);
            assert_eq!(data, original);
        }
    }

    #[test]
    fn header_parse_reports_needed_bytes() {
        let cases: [(&str, usize); 5] = [
            ("", 2),
            ("81", 2),
            ("81 85", 6),
            ("82 7e 01", 4),
            ("82 ff 00 00 00 00 00 00 00", 14),
        ];
        for (input, needed) in cases {
            assert_eq!(
                parse_frame_header(&hex(input)),
                Err(HeaderStatus::Incomplete(needed)),
                "{input:?}"
            );
        }
    }

    #[test]
    fn header_parse_rejects_msb_length() {
        let frame = hex("82 7f 80 00 00 00 00 00 00 00");
        assert_eq!(parse_frame_header(&frame), Err(HeaderStatus::InvalidLength));
    }

    #[test]
    fn header_parse_accepts_non_minimal_lengths() {
        let frame = hex("82 7f 00 00 00 00 00 00 00 05");
        assert_eq!(parse_frame_header(&frame).map(|h| h.payload_len), Ok(5));
        let frame = hex("82 7e 00 05");
        assert_eq!(parse_frame_header(&frame).map(|h| h.payload_len), Ok(5));
    }

    #[test]
    fn compressed_server_frame_is_shareable_and_decodable() {
        use crate::decoder::{Decoder, Message, Role};
        use crate::deflate::Inflater;

        let payload = b"{\"event\":\"chat\",\"text\":\"hello hello hello\"}".repeat(20);
        let mut deflater = Deflater::new(6, 15, true);
        let first =
            server_frame_compressed(OpCode::Text, &payload, &mut deflater).expect("deflate");
        let second =
            server_frame_compressed(OpCode::Text, &payload, &mut deflater).expect("deflate");
        assert_eq!(first, second, "no context takeover: same input, same bytes");
        assert_eq!(first[0], 0xC1);
        assert!(first.len() < payload.len());

        let mut decoder = Decoder::new(Role::Client, 1 << 20).with_compression(true);
        let decoded = decoder.decode(&first).expect("valid frame");
        assert_eq!(decoded.consumed, first.len());
        let Some(Message::Compressed(message)) = decoded.message else {
            panic!("expected a compressed message");
        };
        let inflated = message
            .inflate(&mut Inflater::new(15, true))
            .expect("inflate");
        assert_eq!(inflated, Message::Text(Bytes::from(payload)));
    }

    #[test]
    fn opcode_round_trip() {
        for raw in 0..16u8 {
            match OpCode::from_u8(raw) {
                Some(op) => assert_eq!(op.as_u8(), raw),
                None => assert!(matches!(raw, 3..=7 | 0xB..=0xF), "{raw}"),
            }
        }
    }
}
