use super::*;
use crate::deflate::Deflater;
use crate::frame::{OpCode, encode_frame};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const MAX: usize = 1 << 20;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("test hex"))
        .collect()
}

/// A frame with a free-form first byte (FIN, RSV bits, any opcode).
fn raw(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => out.push(mask_bit | n as u8),
        n @ 126..=65535 => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len() + if mask.is_some() { 4 } else { 0 };
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        crate::frame::apply_mask(&mut out[start..], key, 0);
    }
    out
}

/// A client→server frame.
fn c(b0: u8, payload: &[u8]) -> Vec<u8> {
    raw(b0, payload, Some(KEY))
}

/// Decodes every frame of `input` in one buffer, as the engine would.
fn decode_all(decoder: &mut Decoder, input: &[u8]) -> Result<Vec<Message>, ProtocolError> {
    let mut messages = Vec::new();
    let mut pos = 0;
    loop {
        let decoded = decoder.decode(&input[pos..])?;
        if decoded.consumed == 0 {
            assert_eq!(pos, input.len(), "trailing bytes left");
            return Ok(messages);
        }
        pos += decoded.consumed;
        messages.extend(decoded.message);
    }
}

fn text(s: &str) -> Message {
    Message::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn binary(b: &[u8]) -> Message {
    Message::Binary(Bytes::copy_from_slice(b))
}

#[test]
fn rfc6455_section_5_7_examples_decode() {
    let big256: Vec<u8> = (0..256).map(|i| i as u8).collect();
    let big64k: Vec<u8> = (0..65536).map(|i| (i % 251) as u8).collect();
    let cases: Vec<(&str, Role, Vec<u8>, Vec<Message>)> = vec![
        (
            "unmasked text",
            Role::Client,
            hex("81 05 48 65 6c 6c 6f"),
            vec![text("Hello")],
        ),
        (
            "masked text",
            Role::Server,
            hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
            vec![text("Hello")],
        ),
        (
            "fragmented text",
            Role::Client,
            hex("01 03 48 65 6c 80 02 6c 6f"),
            vec![text("Hello")],
        ),
        (
            "unmasked ping",
            Role::Client,
            hex("89 05 48 65 6c 6c 6f"),
            vec![Message::Ping(Bytes::from_static(b"Hello"))],
        ),
        (
            "masked pong",
            Role::Server,
            hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
            vec![Message::Pong(Bytes::from_static(b"Hello"))],
        ),
        (
            "256 bytes",
            Role::Client,
            [hex("82 7e 01 00"), big256.clone()].concat(),
            vec![binary(&big256)],
        ),
        (
            "64 KiB",
            Role::Client,
            [hex("82 7f 00 00 00 00 00 01 00 00"), big64k.clone()].concat(),
            vec![binary(&big64k)],
        ),
    ];
    for (name, role, input, expected) in cases {
        let mut decoder = Decoder::new(role, MAX);
        assert_eq!(decode_all(&mut decoder, &input), Ok(expected), "{name}");
        assert!(!decoder.in_message(), "{name}");
    }
}

#[test]
fn well_formed_sequences() {
    type Case = (&'static str, Vec<Vec<u8>>, Vec<Message>);
    let cases: Vec<Case> = vec![
        ("empty text", vec![c(0x81, b"")], vec![text("")]),
        ("empty binary", vec![c(0x82, b"")], vec![binary(b"")]),
        (
            "control frames between fragments",
            vec![
                c(0x02, b"ab"),
                c(0x89, b"p"),
                c(0x00, b"cd"),
                c(0x8A, b""),
                c(0x80, b"ef"),
            ],
            vec![
                Message::Ping(Bytes::from_static(b"p")),
                Message::Pong(Bytes::new()),
                binary(b"abcdef"),
            ],
        ),
        (
            "empty fragments",
            vec![c(0x01, b""), c(0x00, b""), c(0x00, b"x"), c(0x80, b"")],
            vec![text("x")],
        ),
        (
            // Past the ASCII fast path: the full validation accepts it.
            "non-ASCII text in one frame",
            vec![c(0x81, "h\u{e9}llo \u{20ac}\u{1f600}".as_bytes())],
            vec![text("h\u{e9}llo \u{20ac}\u{1f600}")],
        ),
        (
            "character split across fragments",
            vec![c(0x01, b"\xe2"), c(0x00, b"\x82"), c(0x80, b"\xac!")],
            vec![text("€!")],
        ),
        (
            "four-byte character split 1+3",
            vec![c(0x01, b"a\xf0"), c(0x80, b"\x9f\x98\x80")],
            vec![text("a😀")],
        ),
        (
            "close without body",
            vec![c(0x88, b"")],
            vec![Message::Close(None)],
        ),
        (
            "close with code and reason",
            vec![c(0x88, b"\x03\xe8bye")],
            vec![Message::Close(Some(CloseFrame {
                code: CloseCode::NORMAL,
                reason: Bytes::from_static(b"bye"),
            }))],
        ),
        (
            "close with application code",
            vec![c(0x88, b"\x0f\x9f")],
            vec![Message::Close(Some(CloseFrame {
                code: CloseCode(3999),
                reason: Bytes::new(),
            }))],
        ),
        (
            "125-byte ping",
            vec![c(0x89, &[7; 125])],
            vec![Message::Ping(Bytes::from(vec![7; 125]))],
        ),
        (
            "non-minimal length accepted",
            vec![
                [
                    hex("82 fe 00 02"),
                    KEY.to_vec(),
                    vec![b'h' ^ KEY[0], b'i' ^ KEY[1]],
                ]
                .concat(),
            ],
            vec![binary(b"hi")],
        ),
        (
            "zero mask key",
            vec![raw(0x82, b"zz", Some([0; 4]))],
            vec![binary(b"zz")],
        ),
        (
            "two messages back to back",
            vec![c(0x81, b"one"), c(0x82, b"two")],
            vec![text("one"), binary(b"two")],
        ),
    ];
    for (name, frames, expected) in cases {
        let mut decoder = Decoder::new(Role::Server, MAX);
        assert_eq!(
            decode_all(&mut decoder, &frames.concat()),
            Ok(expected),
            "{name}"
        );
    }
}

#[test]
fn malformed_input() {
    use ProtocolError as E;
    struct Case {
        name: &'static str,
        role: Role,
        compression: bool,
        max: usize,
        frames: Vec<Vec<u8>>,
        error: ProtocolError,
    }
    let s = |name, frames, error| Case {
        name,
        role: Role::Server,
        compression: false,
        max: MAX,
        frames,
        error,
    };
    let z = |name, frames, error| Case {
        name,
        role: Role::Server,
        compression: true,
        max: MAX,
        frames,
        error,
    };
    let mut cases = vec![
        s(
            "unmasked client frame",
            vec![raw(0x81, b"hi", None)],
            E::UnmaskedFrame,
        ),
        Case {
            role: Role::Client,
            ..s("masked server frame", vec![c(0x81, b"hi")], E::MaskedFrame)
        },
        s(
            "ping too long",
            vec![c(0x89, &[0; 126])],
            E::ControlTooLong(126),
        ),
        s(
            "close too long (127)",
            vec![c(0x88, &[3; 70000])],
            E::ControlTooLong(127),
        ),
        s("fragmented ping", vec![c(0x09, b"")], E::FragmentedControl),
        s(
            "fragmented close",
            vec![c(0x08, b"\x03\xe8")],
            E::FragmentedControl,
        ),
        s(
            "RSV1 without compression",
            vec![c(0xC1, b"x")],
            E::UnexpectedRsv1,
        ),
        s("RSV2", vec![c(0xA1, b"x")], E::ReservedBits),
        s("RSV3", vec![c(0x91, b"x")], E::ReservedBits),
        z(
            "RSV2 with compression",
            vec![c(0xE1, b"x")],
            E::ReservedBits,
        ),
        z(
            "RSV1 on continuation",
            vec![c(0x41, b"\xf2"), c(0xC0, b"\x00")],
            E::UnexpectedRsv1,
        ),
        z("RSV1 on ping", vec![c(0xC9, b"")], E::UnexpectedRsv1),
        s(
            "continuation without start",
            vec![c(0x80, b"x")],
            E::UnexpectedContinuation,
        ),
        s(
            "unfinished continuation without start",
            vec![c(0x00, b"x")],
            E::UnexpectedContinuation,
        ),
        s(
            "continuation after finished message",
            vec![c(0x01, b"a"), c(0x80, b"b"), c(0x80, b"c")],
            E::UnexpectedContinuation,
        ),
        s(
            "text while fragmented",
            vec![c(0x01, b"a"), c(0x81, b"b")],
            E::ExpectedContinuation,
        ),
        s(
            "binary while fragmented",
            vec![c(0x02, b"a"), c(0x02, b"b")],
            E::ExpectedContinuation,
        ),
        s("invalid UTF-8", vec![c(0x81, b"\xff")], E::InvalidUtf8),
        s(
            "overlong encoding",
            vec![c(0x81, b"\xc0\xaf")],
            E::InvalidUtf8,
        ),
        s("surrogate", vec![c(0x81, b"\xed\xa0\x80")], E::InvalidUtf8),
        s(
            "above U+10FFFF",
            vec![c(0x81, b"\xf4\x90\x80\x80")],
            E::InvalidUtf8,
        ),
        s(
            "truncated character at end",
            vec![c(0x81, b"a\xe2\x82")],
            E::InvalidUtf8,
        ),
        s(
            "invalid sequence split across fragments",
            vec![c(0x01, b"\xe2\x82"), c(0x80, b"\x28")],
            E::InvalidUtf8,
        ),
        s(
            "truncated character at end of fragmented text",
            vec![c(0x01, b"ok"), c(0x80, b"\xe2")],
            E::InvalidUtf8,
        ),
        s(
            "fails at the first bad fragment",
            vec![c(0x01, b"\xff")],
            E::InvalidUtf8,
        ),
        s(
            "close with 1 byte",
            vec![c(0x88, b"\x03")],
            E::InvalidClosePayload,
        ),
        s(
            "close reason not UTF-8",
            vec![c(0x88, b"\x03\xe8\xff")],
            E::InvalidUtf8,
        ),
        s(
            "64-bit length MSB",
            vec![hex("82 ff 80 00 00 00 00 00 00 00 00 00 00 00")],
            E::InvalidLength,
        ),
        Case {
            max: 10,
            ..s(
                "oversize single frame",
                vec![c(0x82, &[0; 11])],
                E::MessageTooBig { limit: 10 },
            )
        },
        Case {
            max: 10,
            ..s(
                "oversize fragmented",
                vec![c(0x02, &[0; 6]), c(0x80, &[0; 5])],
                E::MessageTooBig { limit: 10 },
            )
        },
        Case {
            max: 10,
            ..z(
                "oversize compressed payload",
                vec![c(0xC2, &[0; 11])],
                E::MessageTooBig { limit: 10 },
            )
        },
        s(
            "huge declared length refused before the payload arrives",
            vec![hex("82 ff 00 00 00 01 00 00 00 00 37 fa 21 3d")],
            E::MessageTooBig { limit: MAX },
        ),
    ];
    for opcode in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push(s(
            "reserved opcode",
            vec![c(0x80 | opcode, b"")],
            E::InvalidOpcode(opcode),
        ));
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        cases.push(s(
            "bad close code",
            vec![c(0x88, &code.to_be_bytes())],
            E::InvalidCloseCode(code),
        ));
    }
    for case in cases {
        let mut decoder = Decoder::new(case.role, case.max).with_compression(case.compression);
        assert_eq!(
            decode_all(&mut decoder, &case.frames.concat()),
            Err(case.error),
            "{}",
            case.name
        );
    }
}

#[test]
fn error_close_codes() {
    let cases = [
        (ProtocolError::UnmaskedFrame, 1002),
        (ProtocolError::InvalidCloseCode(1005), 1002),
        (ProtocolError::MessageTooBig { limit: 1 }, 1009),
        (ProtocolError::InvalidUtf8, 1007),
        (ProtocolError::InvalidCompressedData, 1007),
    ];
    for (error, code) in cases {
        assert_eq!(error.close_code(), CloseCode(code), "{error}");
    }
}

#[test]
fn truncated_frames_at_every_length() {
    let frames = [
        c(0x81, b"Hello"),
        c(0x82, &[9; 126]),
        c(0x82, &[9; 65536]),
        c(0x88, b"\x03\xe8"),
        raw(0x82, &[1; 300], Some([0; 4])),
    ];
    for frame in frames {
        for cut in 0..frame.len() {
            let mut decoder = Decoder::new(Role::Server, MAX);
            let decoded = decoder.decode(&frame[..cut]).expect("valid prefix");
            assert_eq!(
                (decoded.consumed, &decoded.message),
                (0, &None),
                "cut {cut}"
            );
            assert!(
                decoded.needed > cut && decoded.needed <= frame.len(),
                "cut {cut}: {}",
                decoded.needed
            );
            assert!(!decoder.in_message());
        }
        let mut decoder = Decoder::new(Role::Server, MAX);
        let decoded = decoder.decode(&frame).expect("complete frame");
        assert_eq!(decoded.consumed, frame.len());
        assert!(decoded.message.is_some());
    }
}

#[test]
fn needed_reports_full_frame_once_header_known() {
    let frame = c(0x82, &[0; 300]);
    let mut decoder = Decoder::new(Role::Server, MAX);
    assert_eq!(decoder.decode(&frame[..1]).map(|d| d.needed), Ok(2));
    assert_eq!(decoder.decode(&frame[..2]).map(|d| d.needed), Ok(8));
    assert_eq!(decoder.decode(&frame[..8]).map(|d| d.needed), Ok(308));
}

#[test]
fn header_errors_need_only_two_bytes() {
    let mut decoder = Decoder::new(Role::Server, MAX);
    assert_eq!(
        decoder.decode(&[0x81, 0x05]),
        Err(ProtocolError::UnmaskedFrame)
    );
    let mut decoder = Decoder::new(Role::Server, MAX);
    assert_eq!(
        decoder.decode(&[0x83, 0x85]),
        Err(ProtocolError::InvalidOpcode(3))
    );
}

#[test]
fn byte_by_byte_matches_whole_buffer() {
    let stream = [
        c(0x01, b"frag"),
        c(0x89, b"ping"),
        c(0x80, b"mented"),
        c(0x82, &[5; 200]),
        c(0x88, b"\x03\xe9"),
    ]
    .concat();
    let whole = decode_all(&mut Decoder::new(Role::Server, MAX), &stream).expect("valid");

    let mut decoder = Decoder::new(Role::Server, MAX);
    let mut pending = Vec::new();
    let mut messages = Vec::new();
    for &byte in &stream {
        pending.push(byte);
        loop {
            let decoded = decoder.decode(&pending).expect("valid");
            if decoded.consumed == 0 {
                break;
            }
            pending.drain(..decoded.consumed);
            messages.extend(decoded.message);
        }
    }
    assert!(pending.is_empty());
    assert_eq!(messages, whole);
    assert_eq!(messages.len(), 4);
}

fn compressed_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let compressed = Deflater::new(6, 15, true)
        .compress(payload)
        .expect("deflate")
        .to_vec();
    c(b0, &compressed)
}

fn inflate_one(decoder: &mut Decoder, frames: &[Vec<u8>]) -> Result<Message, ProtocolError> {
    let messages = decode_all(decoder, &frames.concat())?;
    let [Message::Compressed(message)] = messages.as_slice() else {
        panic!("expected one compressed message, got {messages:?}");
    };
    message.inflate(&mut Inflater::new(15, true))
}

#[test]
fn compressed_messages() {
    let mut decoder = Decoder::new(Role::Server, MAX).with_compression(true);
    assert_eq!(
        inflate_one(&mut decoder, &[compressed_frame(0xC1, b"Hello")]),
        Ok(text("Hello"))
    );
    assert_eq!(
        inflate_one(&mut decoder, &[compressed_frame(0xC2, b"\x00\x01")]),
        Ok(binary(b"\x00\x01"))
    );

    // RFC 7692 §7.2.3.1, fragmented.
    let frames = [
        c(0x41, &hex("f2 48 cd")),
        c(0x89, b""),
        c(0x80, &hex("c9 c9 07 00")),
    ];
    let messages = decode_all(&mut decoder, &frames.concat()).expect("valid");
    assert_eq!(messages[0], Message::Ping(Bytes::new()));
    let Message::Compressed(message) = &messages[1] else {
        panic!("{messages:?}")
    };
    assert!(message.is_text());
    assert_eq!(message.payload().to_vec(), hex("f2 48 cd c9 c9 07 00"));
    assert_eq!(
        message.inflate(&mut Inflater::new(15, true)),
        Ok(text("Hello"))
    );

    // An uncompressed message is still allowed when compression is on.
    assert_eq!(
        decode_all(&mut decoder, &c(0x81, b"plain")),
        Ok(vec![text("plain")])
    );
}

#[test]
fn compressed_text_is_validated_after_inflation() {
    // Fragments of compressed text are not UTF-8 checked one by one.
    let compressed = Deflater::new(6, 15, true)
        .compress("é".as_bytes())
        .expect("deflate")
        .to_vec();
    let (a, b) = compressed.split_at(1);
    let mut decoder = Decoder::new(Role::Server, MAX).with_compression(true);
    assert_eq!(
        inflate_one(&mut decoder, &[c(0x41, a), c(0x80, b)]),
        Ok(text("é"))
    );

    let mut decoder = Decoder::new(Role::Server, MAX).with_compression(true);
    assert_eq!(
        inflate_one(&mut decoder, &[compressed_frame(0xC1, b"\xff\xfe")]),
        Err(ProtocolError::InvalidUtf8)
    );
}

#[test]
fn compressed_errors() {
    let bomb = compressed_frame(0xC2, &vec![0; 4 * 1024 * 1024]);
    let mut decoder = Decoder::new(Role::Server, 64 * 1024).with_compression(true);
    assert_eq!(
        inflate_one(&mut decoder, &[bomb]),
        Err(ProtocolError::MessageTooBig { limit: 64 * 1024 })
    );

    let mut decoder = Decoder::new(Role::Server, MAX).with_compression(true);
    assert_eq!(
        inflate_one(&mut decoder, &[c(0xC2, b"\xff\xff\xff")]),
        Err(ProtocolError::InvalidCompressedData)
    );
}

#[test]
fn client_role_decodes_server_frames() {
    let mut decoder = Decoder::new(Role::Client, MAX);
    let stream = [
        crate::server_frame(OpCode::Text, b"hi"),
        crate::encode_close(CloseCode::GOING_AWAY, "bye"),
    ]
    .concat();
    assert_eq!(
        decode_all(&mut decoder, &stream),
        Ok(vec![
            text("hi"),
            Message::Close(Some(CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: Bytes::from_static(b"bye")
            })),
        ])
    );
    let masked = encode_frame(OpCode::Text, b"hi", false, Some(KEY));
    assert_eq!(
        decode_all(&mut decoder, &masked),
        Err(ProtocolError::MaskedFrame)
    );
}

#[test]
fn idle_decoder_is_small() {
    assert!(std::mem::size_of::<Decoder>() <= 4 * std::mem::size_of::<usize>());
}

#[test]
fn fragment_buffer_never_exceeds_limit() {
    let max = 1000;
    let mut decoder = Decoder::new(Role::Server, max);
    let mut stream = vec![c(0x02, &[1; 10])];
    for _ in 0..98 {
        stream.push(c(0x00, &[1; 10]));
    }
    stream.push(c(0x80, &[1; 10]));
    let messages = decode_all(&mut decoder, &stream.concat()).expect("exactly at the limit");
    assert_eq!(messages, vec![binary(&[1; 1000])]);
    if let Some(Message::Binary(b)) = messages.first() {
        assert_eq!(b.len(), max);
    }
}
