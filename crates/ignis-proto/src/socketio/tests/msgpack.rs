//! The msgpack parser: byte-exact vectors derived from notepack's encoding rules, the other
//! encodings a decoder must accept, and malformed input.

use bytes::Bytes;

use crate::socketio::{MAX_DEPTH, Packet, PacketKind, decode_msgpack, encode_msgpack};
use crate::value::{Map, Value};

/// fixstr
fn fs(s: &str) -> Vec<u8> {
    assert!(s.len() < 32);
    let mut out = vec![0xa0 | s.len() as u8];
    out.extend_from_slice(s.as_bytes());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn decode(raw: &[u8]) -> Result<Packet, crate::socketio::DecodeError> {
    decode_msgpack(&Bytes::copy_from_slice(raw))
}

fn bin(data: &[u8]) -> Value {
    Value::bytes(Bytes::copy_from_slice(data))
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().cloned().collect())
}

/// A packet map `{type, data, nsp}` around an already encoded `data`.
fn packet_bytes(kind: u8, data: &[u8], nsp: &str) -> Vec<u8> {
    cat(&[
        &[0x83],
        &fs("type"),
        &[kind],
        &fs("data"),
        data,
        &fs("nsp"),
        &fs(nsp),
    ])
}

#[test]
fn encodes_like_notepack() {
    let cases: Vec<(Packet, Vec<u8>)> = vec![
        (
            Packet::event("/", "hi", vec![], None),
            cat(&[
                &[0x83],
                &fs("type"),
                &[2],
                &fs("data"),
                &[0x91],
                &fs("hi"),
                &fs("nsp"),
                &fs("/"),
            ]),
        ),
        (
            Packet::connect("/admin", Some(map(&[("sid", "x".into())]))),
            cat(&[
                &[0x83],
                &fs("type"),
                &[0],
                &fs("data"),
                &[0x81],
                &fs("sid"),
                &fs("x"),
                &fs("nsp"),
                &fs("/admin"),
            ]),
        ),
        (
            Packet::connect("/", None),
            cat(&[&[0x82], &fs("type"), &[0], &fs("nsp"), &fs("/")]),
        ),
        (
            Packet::disconnect("/"),
            cat(&[&[0x82], &fs("type"), &[1], &fs("nsp"), &fs("/")]),
        ),
        (
            Packet::ack("/", 300, vec![]),
            cat(&[
                &[0x84],
                &fs("type"),
                &[3],
                &fs("data"),
                &[0x90],
                &fs("nsp"),
                &fs("/"),
                &fs("id"),
                &[0xcd, 0x01, 0x2c],
            ]),
        ),
        (
            Packet::event("/", "e", vec![], Some(5)),
            cat(&[
                &[0x84],
                &fs("type"),
                &[2],
                &fs("data"),
                &[0x91],
                &fs("e"),
                &fs("nsp"),
                &fs("/"),
                &fs("id"),
                &[5],
            ]),
        ),
        (
            Packet::connect_error("/", "x", None),
            cat(&[
                &[0x83],
                &fs("type"),
                &[4],
                &fs("data"),
                &[0x81],
                &fs("message"),
                &fs("x"),
                &fs("nsp"),
                &fs("/"),
            ]),
        ),
        (
            Packet::event(
                "/",
                "n",
                vec![
                    Value::Int(127),
                    Value::Int(128),
                    Value::Int(255),
                    Value::Int(256),
                    Value::Int(65535),
                    Value::Int(65536),
                    Value::Int(4_294_967_296),
                    Value::UInt(u64::MAX),
                    Value::Int(-1),
                    Value::Int(-32),
                    Value::Int(-33),
                    Value::Int(-128),
                    Value::Int(-129),
                    Value::Int(-32769),
                    Value::Int(-2_147_483_649),
                ],
                None,
            ),
            packet_bytes(
                2,
                &cat(&[
                    &[0xdc, 0x00, 0x10],
                    &fs("n"),
                    &[0x7f],
                    &[0xcc, 0x80],
                    &[0xcc, 0xff],
                    &[0xcd, 0x01, 0x00],
                    &[0xcd, 0xff, 0xff],
                    &[0xce, 0x00, 0x01, 0x00, 0x00],
                    &[0xcf, 0, 0, 0, 1, 0, 0, 0, 0],
                    &[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
                    &[0xff],
                    &[0xe0],
                    &[0xd0, 0xdf],
                    &[0xd0, 0x80],
                    &[0xd1, 0xff, 0x7f],
                    &[0xd2, 0xff, 0xff, 0x7f, 0xff],
                    &[0xd3, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
                ]),
                "/",
            ),
        ),
        (
            Packet::event(
                "/",
                "m",
                vec![
                    Value::Float(1.5),
                    Value::Float(2.0),
                    Value::Bool(true),
                    Value::Bool(false),
                    Value::Null,
                    bin(&[1, 2]),
                    Value::Str("x".repeat(32)),
                    Value::Str("y".repeat(256)),
                    bin(&[7; 256]),
                ],
                None,
            ),
            packet_bytes(
                2,
                &cat(&[
                    &[0x9a],
                    &fs("m"),
                    &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0],
                    &[0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0],
                    &[0xc3, 0xc2, 0xc0],
                    &[0xc4, 0x02, 1, 2],
                    &[0xd9, 0x20],
                    "x".repeat(32).as_bytes(),
                    &[0xda, 0x01, 0x00],
                    "y".repeat(256).as_bytes(),
                    &[0xc5, 0x01, 0x00],
                    &[7; 256],
                ]),
                "/",
            ),
        ),
    ];
    for (packet, want) in cases {
        let got = encode_msgpack(&packet).unwrap();
        assert_eq!(got.as_ref(), want.as_slice(), "{packet:?}");
        assert_eq!(decode_msgpack(&got).unwrap(), packet);
    }

    // 16 keys take a map 16 header
    let wide: Map = (0..16)
        .map(|i| (format!("k{i:02}"), Value::Int(i)))
        .collect();
    let encoded = encode_msgpack(&Packet::connect("/", Some(Value::Map(wide)))).unwrap();
    let data_at = 1 + 5 + 1 + 5;
    assert_eq!(&encoded[data_at..data_at + 3], &[0xde, 0x00, 0x10]);
}

#[test]
fn decodes_every_msgpack_encoding() {
    let ev = |data: &[u8]| packet_bytes(2, data, "/");
    let event = |args: Vec<Value>| Packet::event("/", "e", args, None);
    let cases: Vec<(Vec<u8>, Packet)> = vec![
        // str 8/16/32 for the event name and keys
        (
            cat(&[
                &[0x83, 0xd9, 4],
                b"type",
                &[2, 0xda, 0, 4],
                b"data",
                &[0x91, 0xdb, 0, 0, 0, 1],
                b"e",
                &[0xd9, 3],
                b"nsp",
                &[0xd9, 1],
                b"/",
            ]),
            event(vec![]),
        ),
        // map 16 / map 32 for the packet, array 16 / 32 for data, widened ints
        (
            cat(&[
                &[0xde, 0, 3],
                &fs("type"),
                &[0xd3, 0, 0, 0, 0, 0, 0, 0, 2],
                &fs("data"),
                &[0xdd, 0, 0, 0, 3],
                &fs("e"),
                &[0xdc, 0, 1, 0xcf, 0, 0, 0, 0, 0, 0, 0, 5],
                &[0xd2, 0xff, 0xff, 0xff, 0xfe],
                &fs("nsp"),
                &fs("/"),
            ]),
            event(vec![Value::Array(vec![Value::Int(5)]), Value::Int(-2)]),
        ),
        (
            cat(&[
                &[0xdf, 0, 0, 0, 3],
                &fs("nsp"),
                &fs("/x"),
                &fs("data"),
                &[0x91],
                &fs("e"),
                &fs("type"),
                &[0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0],
            ]),
            Packet::event("/x", "e", vec![], None),
        ),
        // float 32, bin 16 / 32, ints of every width
        (
            ev(&cat(&[
                &[0x99],
                &fs("e"),
                &[0xca, 0x3f, 0xc0, 0, 0],
                &[0xc5, 0, 2, 1, 2],
                &[0xc6, 0, 0, 0, 1, 9],
                &[0xcc, 5],
                &[0xcd, 0, 5],
                &[0xce, 0, 0, 0, 5],
                &[0xd0, 5],
                &[0xd1, 0xff, 0xfb],
            ])),
            event(vec![
                Value::Float(1.5),
                bin(&[1, 2]),
                bin(&[9]),
                Value::Int(5),
                Value::Int(5),
                Value::Int(5),
                Value::Int(5),
                Value::Int(-5),
            ]),
        ),
        // notepack extensions: undefined in an array and in an object, Date, ArrayBuffer,
        // timestamp, unknown types
        (
            ev(&cat(&[
                &[0x98],
                &fs("e"),
                &[0xd4, 0, 0],
                &[0x82],
                &fs("a"),
                &[0xd4, 0, 0],
                &fs("b"),
                &[1],
                &[0xd7, 0, 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b],
                &[0xc7, 3, 0, 1, 2, 3],
                &[0xd6, 0xff, 0, 0, 0, 1],
                &[0xd4, 5, 0xaa],
                &[0xc7, 1, 0xfe, 0xbb],
            ])),
            event(vec![
                Value::Null,
                map(&[("b", Value::Int(1))]),
                "2023-11-14T22:13:20.123Z".into(),
                bin(&[1, 2, 3]),
                "1970-01-01T00:00:01.000Z".into(),
                Value::Array(vec![Value::Int(5), bin(&[0xaa])]),
                Value::Array(vec![Value::Int(-2), bin(&[0xbb])]),
            ]),
        ),
        // a Date beyond JavaScript's range is an invalid date: null, as toJSON gives
        (
            ev(&cat(&[
                &[0x92],
                &fs("e"),
                &[0xd7, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            ])),
            event(vec![Value::Null]),
        ),
        // an object key whose last value is undefined disappears; integer keys become strings
        (
            ev(&cat(&[
                &[0x92],
                &fs("e"),
                &[0x84],
                &fs("a"),
                &[1],
                &fs("a"),
                &[0xd4, 0, 0],
                &[7],
                &fs("seven"),
                &fs("b"),
                &[0xd4, 0, 0],
            ])),
            event(vec![map(&[("7", "seven".into())])]),
        ),
        // what socket.io-client sends: `data: undefined` and `options` for a CONNECT
        (
            cat(&[
                &[0x84],
                &fs("type"),
                &[0],
                &fs("data"),
                &[0xd4, 0, 0],
                &fs("options"),
                &[0x81],
                &fs("compress"),
                &[0xc3],
                &fs("nsp"),
                &fs("/"),
            ]),
            Packet::connect("/", None),
        ),
        // repeated keys: the last one wins, and an undefined id is no id
        (
            cat(&[
                &[0x86],
                &fs("type"),
                &[1],
                &fs("type"),
                &[3],
                &fs("id"),
                &[0xd4, 0, 0],
                &fs("id"),
                &[4],
                &fs("data"),
                &[0x90],
                &fs("nsp"),
                &fs("/"),
            ]),
            Packet::ack("/", 4, vec![]),
        ),
        // an id written as a float, as JavaScript numbers may be
        (
            cat(&[
                &[0x84],
                &fs("id"),
                &[0xcb, 0x40, 0x24, 0, 0, 0, 0, 0, 0],
                &fs("type"),
                &[3],
                &fs("data"),
                &[0x90],
                &fs("nsp"),
                &fs("/"),
            ]),
            Packet::ack("/", 10, vec![]),
        ),
        // any namespace string is accepted, as socket.io-msgpack-parser does
        (
            cat(&[&[0x82], &fs("type"), &[1], &fs("nsp"), &fs("x")]),
            Packet::disconnect("x"),
        ),
    ];
    for (raw, want) in cases {
        let got = decode(&raw).unwrap_or_else(|e| panic!("{raw:02x?}: {e}"));
        assert_eq!(got, want, "{raw:02x?}");
    }
}

#[test]
fn binary_shares_the_input_buffer() {
    let raw = Bytes::from(packet_bytes(
        2,
        &cat(&[&[0x92], &fs("e"), &[0xc4, 3, 1, 2, 3]]),
        "/",
    ));
    let packet = decode_msgpack(&raw).unwrap();
    let PacketKind::Event { args, .. } = packet.kind else {
        panic!("not an event")
    };
    let data = args[0].as_bytes().unwrap();
    assert_eq!(data.as_ref(), &[1, 2, 3]);
    let inside = raw.as_ptr_range();
    assert!(inside.contains(&data.as_ptr()));
}

#[test]
fn rejects_malformed_msgpack() {
    let nested = |levels: usize| {
        let mut data = vec![0x92];
        data.extend(fs("e"));
        data.extend(std::iter::repeat_n(0x91, levels));
        data.push(0xc0);
        packet_bytes(2, &data, "/")
    };
    assert!(decode(&nested(MAX_DEPTH - 1)).is_ok());
    let good = packet_bytes(2, &cat(&[&[0x91], &fs("e")]), "/");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![], "Truncated"),
        (vec![0x91, 0xc0], "InvalidMsgpack"),
        (vec![0xc0], "InvalidMsgpack"),
        (fs("type"), "InvalidMsgpack"),
        (cat(&[&good, &[0]]), "TrailingBytes(1)"),
        (cat(&[&good, &good]), "TrailingBytes"),
        // declared lengths larger than the input
        (vec![0xdf, 0xff, 0xff, 0xff, 0xff], "Truncated"),
        (vec![0x81], "Truncated"),
        (
            packet_bytes(2, &[0xdd, 0xff, 0xff, 0xff, 0xff], "/"),
            "Truncated",
        ),
        (
            packet_bytes(2, &[0xdf, 0xff, 0xff, 0xff, 0xff], "/"),
            "Truncated",
        ),
        (
            packet_bytes(2, &[0xdb, 0xff, 0xff, 0xff, 0xff], "/"),
            "Truncated",
        ),
        (
            packet_bytes(2, &[0xc6, 0xff, 0xff, 0xff, 0xff], "/"),
            "Truncated",
        ),
        (
            packet_bytes(2, &[0xc9, 0xff, 0xff, 0xff, 0xff, 0], "/"),
            "Truncated",
        ),
        // bad bytes
        (packet_bytes(2, &[0xc1], "/"), "InvalidMsgpack"),
        (
            packet_bytes(2, &[0x91, 0xa2, 0xff, 0xfe], "/"),
            "InvalidUtf8",
        ),
        (
            packet_bytes(2, &[0x92, 0xa1, b'e', 0x81, 0xc0, 0xc0], "/"),
            "InvalidMsgpack",
        ),
        (
            packet_bytes(2, &[0x92, 0xa1, b'e', 0x81, 0x90, 0xc0], "/"),
            "InvalidMsgpack",
        ),
        (
            packet_bytes(
                2,
                &[0x92, 0xa1, b'e', 0x81, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0],
                "/",
            ),
            "InvalidMsgpack",
        ),
        (nested(MAX_DEPTH), "TooDeep"),
        // type
        (
            cat(&[
                &[0x82],
                &fs("data"),
                &[0x91],
                &fs("e"),
                &fs("nsp"),
                &fs("/"),
            ]),
            "UnknownType",
        ),
        (packet_bytes(5, &[0x91, 0xa1, b'e'], "/"), "UnknownType"),
        (packet_bytes(6, &[0x90], "/"), "UnknownType"),
        (packet_bytes(0xff, &[0x91, 0xa1, b'e'], "/"), "UnknownType"),
        (
            cat(&[
                &[0x83],
                &fs("type"),
                &fs("2"),
                &fs("data"),
                &[0x91],
                &fs("e"),
                &fs("nsp"),
                &fs("/"),
            ]),
            "UnknownType",
        ),
        (
            cat(&[
                &[0x83],
                &fs("type"),
                &[0xcb, 0x40, 0x04, 0, 0, 0, 0, 0, 0],
                &fs("data"),
                &[0x91],
                &fs("e"),
                &fs("nsp"),
                &fs("/"),
            ]),
            "UnknownType",
        ),
        // namespace
        (
            cat(&[&[0x82], &fs("type"), &[2], &fs("data"), &[0x91], &fs("e")]),
            "InvalidNamespace",
        ),
        (
            cat(&[
                &[0x83],
                &fs("type"),
                &[2],
                &fs("data"),
                &[0x91],
                &fs("e"),
                &fs("nsp"),
                &[0xc0],
            ]),
            "InvalidNamespace",
        ),
        // payloads
        (
            cat(&[&[0x82], &fs("type"), &[2], &fs("nsp"), &fs("/")]),
            "InvalidPayload(Event)",
        ),
        (packet_bytes(2, &[0x90], "/"), "InvalidPayload(Event)"),
        (packet_bytes(2, &[0x80], "/"), "InvalidPayload(Event)"),
        (packet_bytes(2, &[0x91, 0xc3], "/"), "InvalidPayload(Event)"),
        (
            packet_bytes(2, &[0x91, 0xc4, 1, 0], "/"),
            "InvalidPayload(Event)",
        ),
        (
            packet_bytes(2, &cat(&[&[0x91], &fs("connect")]), "/"),
            "ReservedEventName(\"connect\")",
        ),
        (
            packet_bytes(2, &cat(&[&[0x91], &fs("disconnecting")]), "/"),
            "ReservedEventName",
        ),
        (packet_bytes(3, &[0x80], "/"), "InvalidPayload(Ack)"),
        (packet_bytes(0, &[0x90], "/"), "InvalidPayload(Connect)"),
        (packet_bytes(0, &[0xc0], "/"), "InvalidPayload(Connect)"),
        (packet_bytes(1, &[0x80], "/"), "InvalidPayload(Disconnect)"),
        (packet_bytes(1, &[0xc0], "/"), "InvalidPayload(Disconnect)"),
        (
            packet_bytes(4, &[0x05], "/"),
            "InvalidPayload(ConnectError)",
        ),
        (
            cat(&[&[0x82], &fs("type"), &[4], &fs("nsp"), &fs("/")]),
            "InvalidPayload(ConnectError)",
        ),
        // ids
        (packet_bytes(3, &[0x90], "/"), "InvalidAckId"),
    ];
    for (raw, want) in cases {
        match decode(&raw) {
            Ok(p) => panic!("{raw:02x?} decoded as {p:?}, wanted {want}"),
            Err(e) => assert!(
                format!("{e:?}").starts_with(want),
                "{raw:02x?}: {e:?}, wanted {want}"
            ),
        }
    }

    let with_id = |kind: u8, data: &[u8], id: &[u8]| {
        cat(&[
            &[0x84],
            &fs("type"),
            &[kind],
            &fs("data"),
            data,
            &fs("nsp"),
            &fs("/"),
            &fs("id"),
            id,
        ])
    };
    let bad_ids: Vec<Vec<u8>> = vec![
        with_id(3, &[0x90], &[0xff]),
        with_id(3, &[0x90], &[0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        with_id(3, &[0x90], &fs("1")),
        with_id(3, &[0x90], &[0xc0]),
        with_id(3, &[0x90], &[0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]),
        with_id(3, &[0x90], &[0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0]),
        with_id(3, &[0x90], &[0xcb, 0x47, 0xf0, 0, 0, 0, 0, 0, 0]),
        with_id(2, &cat(&[&[0x91], &fs("e")]), &[0xff]),
        with_id(0, &[0x80], &[1]),
        with_id(4, &fs("no"), &[1]),
    ];
    for raw in bad_ids {
        match decode(&raw) {
            Err(crate::socketio::DecodeError::InvalidAckId) => {}
            other => panic!("{raw:02x?}: {other:?}"),
        }
    }
    let disconnect_with_id = cat(&[
        &[0x83],
        &fs("type"),
        &[1],
        &fs("nsp"),
        &fs("/"),
        &fs("id"),
        &[1],
    ]);
    assert!(matches!(
        decode(&disconnect_with_id),
        Err(crate::socketio::DecodeError::InvalidAckId)
    ));
}

#[test]
fn every_truncation_fails() {
    let packets = [
        Packet::event(
            "/admin",
            "e",
            vec![
                map(&[(
                    "a",
                    Value::Array(vec![Value::Int(-300), Value::Float(0.25)]),
                )]),
                bin(&[0; 300]),
                Value::Str("z".repeat(40)),
                Value::UInt(u64::MAX),
            ],
            Some(70_000),
        ),
        Packet::connect("/", Some(map(&[("token", "t".into())]))),
    ];
    for packet in packets {
        let raw = encode_msgpack(&packet).unwrap();
        for end in 0..raw.len() {
            assert!(
                decode(&raw[..end]).is_err(),
                "prefix of {end} bytes decoded"
            );
        }
    }
}

#[test]
fn refuses_to_encode_invalid_packets() {
    let deep = |levels: usize| {
        let mut value = Value::Null;
        for _ in 0..levels {
            value = Value::Map([("a", value)].into_iter().collect());
        }
        value
    };
    assert!(encode_msgpack(&Packet::event("/", "a", vec![deep(MAX_DEPTH - 1)], None)).is_ok());
    let cases: Vec<(Packet, &str)> = vec![
        (
            Packet::event("/", "a", vec![deep(MAX_DEPTH)], None),
            "TooDeep",
        ),
        (
            Packet::event("/", "connect_error", vec![], None),
            "ReservedEventName",
        ),
        (
            Packet::connect("/", Some(Value::Int(1))),
            "InvalidPayload(Connect)",
        ),
        (
            Packet {
                nsp: "/".into(),
                kind: PacketKind::ConnectError(Value::Array(vec![])),
            },
            "InvalidPayload(ConnectError)",
        ),
    ];
    for (packet, want) in cases {
        match encode_msgpack(&packet) {
            Ok(b) => panic!("{packet:?} encoded as {b:02x?}"),
            Err(e) => assert!(format!("{e:?}").starts_with(want), "{e:?}"),
        }
    }
    // binary is fine anywhere in msgpack, CONNECT included
    let p = Packet::connect("/", Some(map(&[("key", bin(b"k"))])));
    assert_eq!(decode_msgpack(&encode_msgpack(&p).unwrap()).unwrap(), p);
}
