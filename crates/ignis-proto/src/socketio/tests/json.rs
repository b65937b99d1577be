//! The default parser: exact wire strings both ways, and every malformed input we could think of.

use bytes::Bytes;

use crate::socketio::{
    DecodeError, EncodeError, JsonDecoder, MAX_DEPTH, Packet, PacketKind, PacketType, encode,
};
use crate::value::Value;

fn v(json: &str) -> Value {
    serde_json::from_str(json).expect("test JSON")
}

fn bin(data: &[u8]) -> Value {
    Value::bytes(Bytes::copy_from_slice(data))
}

/// Feeds `text` then `attachments` to a fresh decoder; the packet must come out with the last
/// message and not before.
fn decode_all(text: &str, attachments: &[&[u8]]) -> Result<Packet, DecodeError> {
    let mut decoder = JsonDecoder::new();
    let mut out = decoder.decode_text(text)?;
    for (i, data) in attachments.iter().enumerate() {
        assert!(
            out.is_none(),
            "packet complete before attachment {i} of {text}"
        );
        out = decoder.decode_binary(Bytes::copy_from_slice(data))?;
    }
    assert!(!decoder.is_waiting_for_attachments(), "{text}");
    Ok(out.expect("packet complete after the last attachment"))
}

fn assert_error(result: Result<impl std::fmt::Debug, DecodeError>, want: &str, input: &str) {
    match result {
        Ok(p) => panic!("{input:?} decoded as {p:?}, wanted {want}"),
        Err(e) => assert!(
            format!("{e:?}").starts_with(want),
            "{input:?}: got {e:?}, wanted {want}"
        ),
    }
}

#[test]
fn decodes_protocol_examples() {
    let cases: Vec<(&str, Vec<&[u8]>, Packet)> = vec![
        ("0", vec![], Packet::connect("/", None)),
        ("0/admin,", vec![], Packet::connect("/admin", None)),
        ("0/admin", vec![], Packet::connect("/admin", None)),
        (
            r#"0/admin,{"token":"x"}"#,
            vec![],
            Packet::connect("/admin", Some(v(r#"{"token":"x"}"#))),
        ),
        (
            r#"0{"sid":"oSO0OpakMV_3jnilAAAA"}"#,
            vec![],
            Packet::connect("/", Some(v(r#"{"sid":"oSO0OpakMV_3jnilAAAA"}"#))),
        ),
        ("1", vec![], Packet::disconnect("/")),
        ("1/admin,", vec![], Packet::disconnect("/admin")),
        (
            r#"2["hello",1]"#,
            vec![],
            Packet::event("/", "hello", vec![Value::Int(1)], None),
        ),
        (
            r#"2/admin,456["project:delete",123]"#,
            vec![],
            Packet::event("/admin", "project:delete", vec![Value::Int(123)], Some(456)),
        ),
        (
            r#"2[42,"x"]"#,
            vec![],
            Packet::event("/", 42, vec![v(r#""x""#)], None),
        ),
        (r#"2/,["x"]"#, vec![], Packet::event("/", "x", vec![], None)),
        (
            "2 [\"x\"] \n",
            vec![],
            Packet::event("/", "x", vec![], None),
        ),
        (
            r#"2/ünï,7["é",{"k":1,"j":2,"k":3}]"#,
            vec![],
            Packet::event("/ünï", "é", vec![v(r#"{"k":3,"j":2}"#)], Some(7)),
        ),
        (
            r#"218446744073709551615["max"]"#,
            vec![],
            Packet::event("/", "max", vec![], Some(u64::MAX)),
        ),
        (
            r#"2["a",{"_placeholder":true,"num":0}]"#,
            vec![],
            Packet::event("/", "a", vec![v(r#"{"_placeholder":true,"num":0}"#)], None),
        ),
        ("3/admin,456[]", vec![], Packet::ack("/admin", 456, vec![])),
        (
            r#"312["a",{"b":null},-1.5e3]"#,
            vec![],
            Packet::ack(
                "/",
                12,
                vec![v(r#""a""#), v(r#"{"b":null}"#), Value::Float(-1500.0)],
            ),
        ),
        (
            r#"4{"message":"Not authorized"}"#,
            vec![],
            Packet::connect_error("/", "Not authorized", None),
        ),
        (
            r#"4/admin,{"message":"x","data":{"a":1}}"#,
            vec![],
            Packet::connect_error("/admin", "x", Some(v(r#"{"a":1}"#))),
        ),
        (
            r#"4"Not authorized""#,
            vec![],
            Packet {
                nsp: "/".into(),
                kind: PacketKind::ConnectError(v(r#""Not authorized""#)),
            },
        ),
        (
            r#"51-["hello",{"_placeholder":true,"num":0}]"#,
            vec![b"\x01\x02"],
            Packet::event("/", "hello", vec![bin(b"\x01\x02")], None),
        ),
        (
            r#"52-/admin,7["up",{"a":[{"_placeholder":true,"num":1}]},{"num":0,"_placeholder":true,"extra":1}]"#,
            vec![b"zero", b"one"],
            Packet::event(
                "/admin",
                "up",
                vec![
                    Value::Map(
                        [("a", Value::Array(vec![bin(b"one")]))]
                            .into_iter()
                            .collect(),
                    ),
                    bin(b"zero"),
                ],
                Some(7),
            ),
        ),
        (
            r#"61-/admin,9[{"_placeholder":true,"num":0}]"#,
            vec![b""],
            Packet::ack("/admin", 9, vec![bin(b"")]),
        ),
        (
            r#"510-["ten",[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2},{"_placeholder":true,"num":3},{"_placeholder":true,"num":4},{"_placeholder":true,"num":5},{"_placeholder":true,"num":6},{"_placeholder":true,"num":7},{"_placeholder":true,"num":8},{"_placeholder":true,"num":9}]]"#,
            vec![b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"],
            Packet::event(
                "/",
                "ten",
                vec![Value::Array(
                    (0..10).map(|i| bin(i.to_string().as_bytes())).collect(),
                )],
                None,
            ),
        ),
    ];
    for (text, attachments, want) in cases {
        let got = decode_all(text, &attachments).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(got, want, "{text}");
    }
}

/// The namespace of a decoded packet is kept inline when short (no allocation for `/`), on the
/// heap when long, and encodes back the same either way.
#[test]
fn namespaces_short_and_long_decode_and_encode_back() {
    let long = format!("/{}", "n".repeat(40));
    for (nsp, inline) in [
        ("/", true),
        ("/chat", true),
        ("/é", true),
        (long.as_str(), false),
    ] {
        let text = if nsp == "/" {
            "2[\"a\"]".to_string()
        } else {
            format!("2{nsp},[\"a\"]")
        };
        let packet = decode_all(&text, &[]).unwrap();
        assert_eq!(packet.nsp, nsp);
        assert_eq!(!packet.nsp.is_heap_allocated(), inline, "{nsp}");
        assert_eq!(encode(&packet).unwrap().text, text);
        assert_eq!(packet, Packet::event(nsp, "a", vec![], None));
    }
}

#[test]
fn decodes_numeric_event_names_exactly() {
    let cases = [
        (r#"2[42]"#, Value::Int(42)),
        (r#"2[-1]"#, Value::Int(-1)),
        (r#"2[1.5]"#, Value::Float(1.5)),
        (r#"2[18446744073709551615]"#, Value::UInt(u64::MAX)),
    ];
    for (text, name) in cases {
        let packet = decode_all(text, &[]).unwrap();
        let PacketKind::Event { event, .. } = &packet.kind else {
            panic!("{text} is not an event");
        };
        assert_eq!(event.as_value(), &name, "{text}");
        assert_eq!(event.as_str(), None);
        assert_eq!(encode(&packet).unwrap().text, text);
    }
}

#[test]
fn rejects_malformed_text() {
    let reserved = |name: &str| format!("ReservedEventName({name:?})");
    let deep_ok = format!(
        r#"2["a",{}{}]"#,
        "[".repeat(MAX_DEPTH - 1),
        "]".repeat(MAX_DEPTH - 1)
    );
    let too_deep = format!(
        r#"2["a",{}{}]"#,
        "[".repeat(MAX_DEPTH),
        "]".repeat(MAX_DEPTH)
    );
    assert!(decode_all(&deep_ok, &[]).is_ok());
    let cases: Vec<(String, String)> = [
        // type
        ("", "Empty"),
        ("7", "UnknownType"),
        ("9[\"a\"]", "UnknownType"),
        ("a", "UnknownType"),
        ("-2[\"a\"]", "UnknownType"),
        (" 2[\"a\"]", "UnknownType"),
        ("é", "UnknownType"),
        // attachments
        ("5", "InvalidAttachments"),
        ("5[\"a\"]", "InvalidAttachments"),
        ("5-[\"a\"]", "InvalidAttachments"),
        ("50-[\"a\"]", "InvalidAttachments"),
        ("5a-[\"a\"]", "InvalidAttachments"),
        ("5+1-[\"a\"]", "InvalidAttachments"),
        ("5 1-[\"a\"]", "InvalidAttachments"),
        ("51e0-[\"a\"]", "InvalidAttachments"),
        ("6", "InvalidAttachments"),
        ("511-[\"a\"]", "TooManyAttachments { count: 11, max: 10 }"),
        (
            "599999999999999999999999-[\"a\"]",
            "TooManyAttachments { count: 18446744073709551615, max: 10 }",
        ),
        // ack ids
        ("2123456789012345678901[\"a\"]", "InvalidAckId"),
        ("218446744073709551616[\"a\"]", "InvalidAckId"),
        ("3[]", "InvalidAckId"),
        ("3/admin,[]", "InvalidAckId"),
        ("01{}", "InvalidAckId"),
        ("0/admin,1{}", "InvalidAckId"),
        ("0/admin,1", "InvalidAckId"),
        ("11", "InvalidAckId"),
        ("1/admin,1", "InvalidAckId"),
        ("41{\"message\":\"x\"}", "InvalidAckId"),
        // JSON
        ("2[\"hello\"", "InvalidJson"),
        ("2[\"hello\"]x", "InvalidJson"),
        ("2[\"a\",]", "InvalidJson"),
        ("2['a']", "InvalidJson"),
        ("2[\"a\",NaN]", "InvalidJson"),
        ("2admin,[\"a\"]", "InvalidJson"),
        ("2-[\"a\"]", "InvalidJson"),
        ("21-[\"a\"]", "InvalidJson"),
        ("0{\"a\":1", "InvalidJson"),
        (too_deep.as_str(), "InvalidJson"),
        // payload shapes
        ("2", "InvalidPayload(Event)"),
        ("2/admin,", "InvalidPayload(Event)"),
        ("2/admin,7", "InvalidPayload(Event)"),
        ("2{}", "InvalidPayload(Event)"),
        ("2\"hello\"", "InvalidPayload(Event)"),
        ("2[]", "InvalidPayload(Event)"),
        ("2[null]", "InvalidPayload(Event)"),
        ("2[true,1]", "InvalidPayload(Event)"),
        ("2[{}]", "InvalidPayload(Event)"),
        ("2[[\"a\"]]", "InvalidPayload(Event)"),
        ("51-", "InvalidPayload(Event)"),
        (
            "51-[{\"_placeholder\":true,\"num\":0}]",
            "InvalidPayload(Event)",
        ),
        ("3", "InvalidPayload(Ack)"),
        ("312", "InvalidPayload(Ack)"),
        ("312{}", "InvalidPayload(Ack)"),
        ("312\"a\"", "InvalidPayload(Ack)"),
        ("0[]", "InvalidPayload(Connect)"),
        ("0\"token\"", "InvalidPayload(Connect)"),
        ("0null", "InvalidPayload(Connect)"),
        ("0/admin,[1]", "InvalidPayload(Connect)"),
        ("1{}", "InvalidPayload(Disconnect)"),
        ("1null", "InvalidPayload(Disconnect)"),
        ("1/admin,{}", "InvalidPayload(Disconnect)"),
        ("1/admin,\"bye\"", "InvalidPayload(Disconnect)"),
        ("4", "InvalidPayload(ConnectError)"),
        ("4/admin,", "InvalidPayload(ConnectError)"),
        ("4[]", "InvalidPayload(ConnectError)"),
        ("4null", "InvalidPayload(ConnectError)"),
        ("442", "InvalidPayload(ConnectError)"),
        // placeholders, checked as soon as the header arrives
        ("51-[\"a\"]", "InvalidPlaceholder"),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":1}]",
            "InvalidPlaceholder",
        ),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":-1}]",
            "InvalidPlaceholder",
        ),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":\"0\"}]",
            "InvalidPlaceholder",
        ),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":0.5}]",
            "InvalidPlaceholder",
        ),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":0.0}]",
            "InvalidPlaceholder",
        ),
        ("51-[\"a\",{\"_placeholder\":true}]", "InvalidPlaceholder"),
        (
            "51-[\"a\",{\"_placeholder\":\"true\",\"num\":0}]",
            "InvalidPlaceholder",
        ),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":18446744073709551615}]",
            "InvalidPlaceholder",
        ),
        (
            "52-[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":0}]",
            "InvalidPlaceholder",
        ),
        (
            "52-[\"a\",{\"_placeholder\":true,\"num\":0}]",
            "InvalidPlaceholder",
        ),
        (
            "51-[\"a\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
            "InvalidPlaceholder",
        ),
        ("61-[{\"_placeholder\":true,\"num\":0}]", "InvalidAckId"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .chain(
        crate::socketio::RESERVED_EVENTS
            .iter()
            .map(|name| (format!("2[{name:?},1]"), reserved(name))),
    )
    .collect();
    for (text, want) in cases {
        assert_error(JsonDecoder::new().decode_text(&text), &want, &text);
    }
}

#[test]
fn truncations_of_valid_packets_never_decode_to_something_else() {
    let texts = [
        r#"2/admin,456["project:delete",123,{"a":[1,2,{"b":null}]}]"#,
        r#"51-/admin,7["up",{"a":{"_placeholder":true,"num":0}}]"#,
        r#"3/admin,456["x"]"#,
    ];
    for text in texts {
        for end in 0..text.len() {
            let Some(prefix) = text.get(..end) else {
                continue;
            };
            // A prefix may be a valid packet of its own (`2/admin` is a namespace without
            // payload); what matters is that nothing panics and nothing is half-decoded.
            let mut decoder = JsonDecoder::new();
            if let Ok(Some(p)) = decoder.decode_text(prefix) {
                assert!(
                    !matches!(p.kind, PacketKind::Event { .. } | PacketKind::Ack { .. }),
                    "{prefix} decoded as {p:?}"
                );
            }
        }
    }
}

#[test]
fn decoder_state_machine() {
    let header = r#"52-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;

    // binary without a header
    let mut d = JsonDecoder::new();
    assert_error(
        d.decode_binary(Bytes::from_static(b"x")),
        "UnexpectedBinary",
        "bin",
    );

    // text in the middle of a binary packet; the decoder is usable again afterwards
    assert_eq!(d.decode_text(header).unwrap(), None);
    assert!(d.is_waiting_for_attachments());
    assert_eq!(d.decode_binary(Bytes::from_static(b"0")).unwrap(), None);
    assert_error(d.decode_text("2[\"b\"]"), "UnexpectedText", "text");
    assert!(!d.is_waiting_for_attachments());
    assert_eq!(
        d.decode_text("2[\"b\"]").unwrap(),
        Some(Packet::event("/", "b", vec![], None))
    );

    // one attachment too many
    assert_eq!(d.decode_text(header).unwrap(), None);
    assert_eq!(d.decode_binary(Bytes::from_static(b"0")).unwrap(), None);
    let done = d.decode_binary(Bytes::from_static(b"1")).unwrap().unwrap();
    assert_eq!(
        done,
        Packet::event("/", "a", vec![bin(b"0"), bin(b"1")], None)
    );
    assert_error(
        d.decode_binary(Bytes::from_static(b"2")),
        "UnexpectedBinary",
        "bin",
    );

    // reset drops a partial packet
    assert_eq!(d.decode_text(header).unwrap(), None);
    d.reset();
    assert!(!d.is_waiting_for_attachments());
    assert_error(
        d.decode_binary(Bytes::from_static(b"0")),
        "UnexpectedBinary",
        "bin",
    );

    // an error while waiting also resets: a new header decodes
    assert_eq!(d.decode_text(header).unwrap(), None);
    assert!(d.decode_text("7").is_err());
    assert_eq!(d.decode_text(header).unwrap(), None);
}

#[test]
fn attachment_limit_is_configurable() {
    let three = r#"53-["a",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1},{"_placeholder":true,"num":2}]"#;
    assert_error(
        JsonDecoder::with_max_attachments(2).decode_text(three),
        "TooManyAttachments { count: 3, max: 2 }",
        three,
    );
    assert_eq!(
        JsonDecoder::with_max_attachments(3)
            .decode_text(three)
            .unwrap(),
        None
    );
    assert_error(
        JsonDecoder::with_max_attachments(0)
            .decode_text(r#"51-["a",{"_placeholder":true,"num":0}]"#),
        "TooManyAttachments { count: 1, max: 0 }",
        "max 0",
    );
    assert!(std::mem::size_of::<JsonDecoder>() <= 2 * std::mem::size_of::<usize>());
}

#[test]
fn encodes_exact_wire_strings() {
    let mut nested = crate::value::Map::new();
    nested.insert("a", bin(b"A"));
    nested.insert("b", Value::Array(vec![Value::Int(1), bin(b"B")]));
    let cases: Vec<(Packet, &str, Vec<&[u8]>)> = vec![
        (Packet::connect("/", None), "0", vec![]),
        (Packet::connect("/admin", None), "0/admin,", vec![]),
        (
            Packet::connect("/", Some(v(r#"{"sid":"abc","pid":null}"#))),
            r#"0{"sid":"abc","pid":null}"#,
            vec![],
        ),
        (
            Packet::connect("/admin", Some(v(r#"{"token":"x"}"#))),
            r#"0/admin,{"token":"x"}"#,
            vec![],
        ),
        (Packet::disconnect("/"), "1", vec![]),
        (Packet::disconnect("/admin"), "1/admin,", vec![]),
        (
            Packet::event("/", "hello", vec![Value::Int(1)], None),
            r#"2["hello",1]"#,
            vec![],
        ),
        (
            Packet::event("/admin", "project:delete", vec![Value::Int(123)], Some(456)),
            r#"2/admin,456["project:delete",123]"#,
            vec![],
        ),
        (
            Packet::event(
                "/",
                "types",
                vec![
                    Value::Null,
                    Value::Bool(false),
                    Value::Int(-7),
                    Value::UInt(u64::MAX),
                    Value::Float(1.5),
                    Value::Float(2.0),
                    Value::Float(f64::NAN),
                    "a\"b\n\u{1}é".into(),
                ],
                None,
            ),
            "2[\"types\",null,false,-7,18446744073709551615,1.5,2.0,null,\"a\\\"b\\n\\u0001é\"]",
            vec![],
        ),
        (Packet::ack("/admin", 456, vec![]), "3/admin,456[]", vec![]),
        (Packet::ack("/", 0, vec![Value::Null]), "30[null]", vec![]),
        (
            Packet::connect_error("/", "Not authorized", None),
            r#"4{"message":"Not authorized"}"#,
            vec![],
        ),
        (
            Packet::connect_error("/admin", "x", Some(Value::Int(1))),
            r#"4/admin,{"message":"x","data":1}"#,
            vec![],
        ),
        (
            Packet::event("/", "hello", vec![bin(b"\x00\xff")], None),
            r#"51-["hello",{"_placeholder":true,"num":0}]"#,
            vec![b"\x00\xff"],
        ),
        (
            Packet::event("/chat", "e", vec![Value::Map(nested), bin(b"C")], Some(12)),
            r#"53-/chat,12["e",{"a":{"_placeholder":true,"num":0},"b":[1,{"_placeholder":true,"num":1}]},{"_placeholder":true,"num":2}]"#,
            vec![b"A", b"B", b"C"],
        ),
        (
            Packet::ack("/admin", 9, vec![Value::Array(vec![bin(b"x")])]),
            r#"61-/admin,9[[{"_placeholder":true,"num":0}]]"#,
            vec![b"x"],
        ),
    ];
    for (packet, text, attachments) in cases {
        let encoded = encode(&packet).unwrap_or_else(|e| panic!("{packet:?}: {e}"));
        assert_eq!(encoded.text, text);
        let attachments: Vec<Bytes> = attachments
            .into_iter()
            .map(Bytes::copy_from_slice)
            .collect();
        assert_eq!(encoded.attachments, attachments, "{text}");
    }
}

#[test]
fn refuses_to_encode_what_cannot_be_decoded() {
    let deep = |levels: usize| {
        let mut value = Value::Null;
        for _ in 0..levels {
            value = Value::Array(vec![value]);
        }
        value
    };
    assert!(encode(&Packet::event("/", "a", vec![deep(MAX_DEPTH - 1)], None)).is_ok());
    let cases: Vec<(Packet, &str)> = vec![
        (Packet::connect("", None), "InvalidNamespace"),
        (Packet::connect("admin", None), "InvalidNamespace"),
        (Packet::disconnect("/a,b"), "InvalidNamespace"),
        (Packet::event("/a,", "x", vec![], None), "InvalidNamespace"),
        (
            Packet::connect("/", Some(Value::Array(vec![]))),
            "InvalidPayload(Connect)",
        ),
        (
            Packet::connect("/", Some(Value::Null)),
            "InvalidPayload(Connect)",
        ),
        (
            Packet {
                nsp: "/".into(),
                kind: PacketKind::ConnectError(Value::Int(1)),
            },
            "InvalidPayload(ConnectError)",
        ),
        (
            Packet::event("/", "disconnect", vec![], None),
            "ReservedEventName(\"disconnect\")",
        ),
        (
            Packet::event("/", "newListener", vec![], None),
            "ReservedEventName(\"newListener\")",
        ),
        (
            Packet::connect(
                "/",
                Some(v(r#"{"a":1}"#)).map(|mut m| {
                    m.as_map_mut().unwrap().insert("bin", bin(b"x"));
                    m
                }),
            ),
            "BinaryNotAllowed",
        ),
        (
            Packet::connect_error("/", "x", Some(bin(b"x"))),
            "BinaryNotAllowed",
        ),
        (
            Packet::event("/", "a", vec![deep(MAX_DEPTH)], None),
            "TooDeep",
        ),
        (
            Packet::connect(
                "/",
                Some(Value::Map([("a", deep(MAX_DEPTH))].into_iter().collect())),
            ),
            "TooDeep",
        ),
    ];
    for (packet, want) in cases {
        match encode(&packet) {
            Ok(e) => panic!("{packet:?} encoded as {e:?}"),
            Err(e) => assert!(format!("{e:?}").starts_with(want), "{packet:?}: {e:?}"),
        }
    }
    assert!(matches!(
        encode(&Packet::connect("x", None)),
        Err(EncodeError::InvalidNamespace(n)) if n == "x"
    ));
}

#[test]
fn packet_types_and_helpers() {
    assert_eq!(PacketType::from_u8(5), Some(PacketType::BinaryEvent));
    assert_eq!(PacketType::from_u8(7), None);
    let p = Packet::event("/", "x", vec![bin(b"1")], None);
    assert_eq!(p.packet_type(), PacketType::Event);
    assert_eq!(Packet::ack("/", 1, vec![]).packet_type(), PacketType::Ack);
    let PacketKind::Event { event, .. } = p.kind else {
        unreachable!()
    };
    assert_eq!(event, "x");
    assert_eq!(event.to_string(), "x");
    assert_eq!(crate::socketio::EventName::from(42).to_string(), "42");
    assert!(crate::socketio::EventName::try_from(Value::Null).is_err());
    assert!(crate::socketio::EventName::try_from(Value::Float(f64::INFINITY)).is_err());
    assert!(crate::socketio::EventName::new("connect").is_reserved());
}

#[test]
fn floats_survive_a_round_trip() {
    for text in [
        "3/a,4[6.2e66]",
        "2[\"f\",0.1,1e-300,1.7976931348623157e308,5e-324,-2.2250738585072014e-308]",
    ] {
        let packet = decode_all(text, &[]).unwrap();
        let again = decode_all(&encode(&packet).unwrap().text, &[]).unwrap();
        assert_eq!(again, packet, "{text}");
    }
    let packet = decode_all("3/a,4[6.2e66]", &[]).unwrap();
    assert_eq!(packet, Packet::ack("/a", 4, vec![Value::Float(6.2e66)]));
}

#[test]
fn a_huge_announced_count_allocates_nothing_before_it_is_checked() {
    let mut decoder = JsonDecoder::with_max_attachments(usize::MAX);
    let text = r#"5999999999999999-["a",{"_placeholder":true,"num":0}]"#;
    assert_error(decoder.decode_text(text), "InvalidPlaceholder", text);
    assert!(!decoder.is_waiting_for_attachments());
}
