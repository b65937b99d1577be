//! Encodings checked against bytes produced by notepack.io 3.0.1 and `JSON.stringify` in Node
//! (the objects are those `@socket.io/redis-adapter` 8.3 and `@socket.io/redis-emitter` 5.1
//! build), and every malformed input we could think of.

use std::time::Duration;

use bytes::Bytes;
use ignis_socketio::proto::socketio::{EventName, Packet};
use ignis_socketio::{BroadcastFlags, BroadcastOptions, RemoteSocket, Sid, Value};

use crate::notepack::{self, NotepackError};
use crate::protocol::{self, Channels, ProtocolError, RequestKind, Sender, Target};
use crate::test_util::{obj, rooms};

fn hex(s: &str) -> Bytes {
    let s: String = s.split_whitespace().collect();
    Bytes::from(
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
            .collect::<Vec<u8>>(),
    )
}

// notepack.encode(["abc123", {type: 2, data: ["ev", "x", 1, Buffer.from([1,2])], nsp: "/"},
//                 {rooms: ["r1"], except: [], flags: {}}])
const ADAPTER_BROADCAST: &str = "93a661626331323383a47479706502a46461746194a26576a17801c4020102a36e7370a12f83a5726f6f6d7391a27231a665786365707490a5666c61677380";
// notepack.encode(["abc123", {type: 2, data: ["ev"], nsp: "/chat"}, {rooms: ["a","b"],
//                 except: ["c"], flags: {volatile: true, compress: false, timeout: 3000}}])
const ADAPTER_BROADCAST_FLAGS: &str = "93a661626331323383a47479706502a46461746191a26576a36e7370a52f6368617483a5726f6f6d7392a161a162a665786365707491a163a5666c61677383a8766f6c6174696c65c3a8636f6d7072657373c2a774696d656f7574cd0bb8";
// notepack.encode(["emitter", {type: 2, data: ["ev", {a: 1}], nsp: "/admin"},
//                 {rooms: [], flags: {volatile: true, compress: false}, except: ["x"]}])
const EMITTER_BROADCAST: &str = "93a7656d697474657283a47479706502a46461746192a2657681a16101a36e7370a62f61646d696e83a5726f6f6d7390a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c2a665786365707491a178";
// notepack.encode({uid: "abc123", requestId: "req001", type: 7, packet: {type: 2,
//                 data: ["ask", 1], nsp: "/"}, opts: {rooms: [], except: ["e"], flags: {timeout: 3000}}})
const BROADCAST_WITH_ACK: &str = "85a3756964a6616263313233a9726571756573744964a6726571303031a47479706507a67061636b657483a47479706502a46461746192a361736b01a36e7370a12fa46f70747383a5726f6f6d7390a665786365707491a165a5666c61677381a774696d656f7574cd0bb8";
// notepack.encode({type: 9, requestId: "req001", packet: {ok: true}}), and with packet undefined
const ACK: &str = "83a47479706509a9726571756573744964a6726571303031a67061636b657481a26f6bc3";
const ACK_UNDEFINED: &str = "82a47479706509a9726571756573744964a6726571303031";
// notepack.encode(["node01", {type: 2, data: ["d", new Date(1700000000123),
//                 new Date(1700000000000), {at: new Date(-1)}], nsp: "/"}, {rooms: [], except: [], flags: {}}])
const DATES: &str = "93a66e6f6465303183a47479706502a46461746194a164d7ff1d5353006553f100d6ff6553f10081a26174c70cff3b8b87c0ffffffffffffffffa36e7370a12f83a5726f6f6d7390a665786365707490a5666c61677380";
// notepack.encode([-1, -33, 127, 128, 255, 256, 65536, 2**32, -(2**31)-1, 1.5, 2.0, -0.5, 2**53,
//                 "s".repeat(32), ""])
const NUMBERS: &str = "9fffd0df7fcc80ccffcd0100ce00010000cf0000000100000000d3ffffffff7fffffffcb3ff800000000000002cbbfe0000000000000cf0020000000000000d9207373737373737373737373737373737373737373737373737373737373737373a0";

#[test]
fn adapter_broadcasts_are_byte_identical_to_node() {
    let packet = Packet::event(
        "/",
        "ev",
        vec![Value::from("x"), Value::Int(1), Value::bytes(vec![1u8, 2])],
        Some(7),
    );
    let opts = BroadcastOptions {
        rooms: rooms(&["r1"]),
        ..Default::default()
    };
    let bytes = protocol::encode_broadcast("abc123", &packet, &opts, Sender::Adapter).unwrap();
    assert_eq!(Bytes::from(bytes), hex(ADAPTER_BROADCAST));

    let packet = Packet::event("/chat", "ev", vec![], None);
    let opts = BroadcastOptions {
        rooms: rooms(&["a", "b"]),
        except: rooms(&["c"]),
        flags: BroadcastFlags {
            volatile: true,
            compress: Some(false),
            local: false,
            timeout: Some(Duration::from_secs(3)),
        },
    };
    let bytes = protocol::encode_broadcast("abc123", &packet, &opts, Sender::Adapter).unwrap();
    assert_eq!(Bytes::from(bytes), hex(ADAPTER_BROADCAST_FLAGS));
}

#[test]
fn emitter_broadcasts_are_byte_identical_to_node() {
    let packet = Packet::event("/admin", "ev", vec![obj(vec![("a", Value::Int(1))])], None);
    let opts = BroadcastOptions {
        except: rooms(&["x"]),
        flags: BroadcastFlags {
            volatile: true,
            compress: Some(false),
            // The emitter has no such flag: it must not be written.
            timeout: Some(Duration::from_secs(1)),
            local: false,
        },
        ..Default::default()
    };
    let bytes = protocol::encode_broadcast("emitter", &packet, &opts, Sender::Emitter).unwrap();
    assert_eq!(Bytes::from(bytes), hex(EMITTER_BROADCAST));
}

#[test]
fn node_broadcasts_decode() {
    let msg = protocol::decode_broadcast(&hex(ADAPTER_BROADCAST)).unwrap();
    assert_eq!(msg.uid, "abc123");
    assert_eq!(
        msg.packet,
        Packet::event(
            "/",
            "ev",
            vec![Value::from("x"), Value::Int(1), Value::bytes(vec![1u8, 2])],
            None
        )
    );
    assert_eq!(msg.opts.rooms, rooms(&["r1"]));
    assert!(msg.opts.except.is_empty());
    assert_eq!(msg.opts.flags, BroadcastFlags::default());

    let msg = protocol::decode_broadcast(&hex(ADAPTER_BROADCAST_FLAGS)).unwrap();
    assert_eq!(msg.packet.nsp, "/chat");
    assert_eq!(msg.opts.except, rooms(&["c"]));
    assert!(msg.opts.flags.volatile);
    assert_eq!(msg.opts.flags.compress, Some(false));
    assert_eq!(msg.opts.flags.timeout, Some(Duration::from_secs(3)));

    let msg = protocol::decode_broadcast(&hex(EMITTER_BROADCAST)).unwrap();
    assert_eq!(msg.uid, "emitter");
    assert_eq!(msg.packet.nsp, "/admin");
    assert_eq!(msg.opts.except, rooms(&["x"]));
    assert!(msg.opts.flags.volatile);
}

#[test]
fn dates_become_the_iso_strings_a_json_client_sees() {
    let msg = protocol::decode_broadcast(&hex(DATES)).unwrap();
    let ignis_socketio::proto::socketio::PacketKind::Event { event, args, .. } = msg.packet.kind
    else {
        panic!("not an event");
    };
    assert_eq!(event, EventName::new("d"));
    assert_eq!(
        args,
        vec![
            Value::from("2023-11-14T22:13:20.123Z"),
            Value::from("2023-11-14T22:13:20.000Z"),
            obj(vec![("at", Value::from("1969-12-31T23:59:59.999Z"))]),
        ]
    );
}

#[test]
fn numbers_and_strings_match_notepack() {
    let values = Value::Array(vec![
        Value::Int(-1),
        Value::Int(-33),
        Value::Int(127),
        Value::Int(128),
        Value::Int(255),
        Value::Int(256),
        Value::Int(65536),
        Value::Int(1 << 32),
        Value::Int(-(1 << 31) - 1),
        Value::Float(1.5),
        Value::Float(2.0),
        Value::Float(-0.5),
        Value::Float(9_007_199_254_740_992.0),
        Value::from("s".repeat(32)),
        Value::from(""),
    ]);
    assert_eq!(
        Bytes::from(notepack::encode(&values).unwrap()),
        hex(NUMBERS)
    );
    // Reading gives integers for what notepack wrote as integers.
    let back = notepack::decode(&hex(NUMBERS)).unwrap();
    let Value::Array(items) = back else {
        panic!("not an array")
    };
    assert_eq!(items[10], Value::Int(2));
    assert_eq!(items[12], Value::Int(9_007_199_254_740_992));
    assert_eq!(items[9], Value::Float(1.5));
}

#[test]
fn notepack_extensions_and_undefined() {
    let cases: &[(&str, Value)] = &[
        // [undefined, {a: undefined, b: 1}] as notepack 3 writes it
        (
            "92c081a16201",
            Value::Array(vec![Value::Null, obj(vec![("b", Value::Int(1))])]),
        ),
        // notepack 2's undefined (fixext 1, type 0) inside an array and a map
        (
            "92d40000 01",
            Value::Array(vec![Value::Null, Value::Int(1)]),
        ),
        ("82a161d40000a16202", obj(vec![("b", Value::Int(2))])),
        // a key whose last value is undefined is absent; an earlier undefined is overridden
        ("82a16101a161d40000", obj(vec![])),
        ("82a161d40000a16103", obj(vec![("a", Value::Int(3))])),
        // notepack 2's Date (fixext 8, type 0)
        (
            "d700000001 8bcfe56800",
            Value::from("2023-11-14T22:13:20.000Z"),
        ),
        // timestamp 32 / 64 / 96
        ("d6ff00000001", Value::from("1970-01-01T00:00:01.000Z")),
        // an invalid nanosecond count gives what an invalid Date serialises to
        ("c70cff3b9aca000000000000000000", Value::Null),
        // ArrayBuffer (ext 8, type 0) is binary
        ("c70300010203", Value::bytes(vec![1u8, 2, 3])),
        // an unknown extension is [type, data]
        (
            "d50501 02",
            Value::Array(vec![Value::Int(5), Value::bytes(vec![1u8, 2])]),
        ),
        // integer keys are their decimal strings
        ("8101a178", obj(vec![("1", Value::from("x"))])),
        // float 32
        ("ca3fc00000", Value::Float(1.5)),
        // uint 64 above i64::MAX
        ("cfffffffffffffffff", Value::UInt(u64::MAX)),
        // a lone undefined is null
        ("d40000", Value::Null),
    ];
    for (bytes, want) in cases {
        assert_eq!(&notepack::decode(&hex(bytes)).unwrap(), want, "{bytes}");
    }
}

#[test]
fn malformed_msgpack_is_refused() {
    let cases: &[(&str, NotepackError)] = &[
        ("", NotepackError::Truncated),
        ("c1", NotepackError::Invalid("reserved marker 0xc1")),
        ("a3 6162", NotepackError::Truncated),
        ("92 01", NotepackError::Truncated),
        ("dd ffffffff", NotepackError::Truncated),
        ("df ffffffff", NotepackError::Truncated),
        ("c6 ffffffff 00", NotepackError::Truncated),
        ("c9 ffffffff 00", NotepackError::Truncated),
        ("a2 ff fe", NotepackError::InvalidUtf8),
        (
            "81 c0 01",
            NotepackError::Invalid("map key is not a string"),
        ),
        (
            "81 90 01",
            NotepackError::Invalid("map key is not a string"),
        ),
        ("0101", NotepackError::TrailingBytes(1)),
        ("cd 01", NotepackError::Truncated),
        ("d7ff 0000", NotepackError::Truncated),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            notepack::decode(&hex(bytes)).unwrap_err(),
            *want,
            "{bytes:?}"
        );
    }
    // Nesting is bounded.
    let deep = hex(&"91".repeat(notepack::MAX_DEPTH + 1));
    assert_eq!(notepack::decode(&deep).unwrap_err(), NotepackError::TooDeep);
    let mut v = Value::Null;
    for _ in 0..=notepack::MAX_DEPTH {
        v = Value::Array(vec![v]);
    }
    assert_eq!(notepack::encode(&v).unwrap_err(), NotepackError::TooDeep);
}

#[test]
fn iso_dates_match_javascript() {
    let cases: &[(i64, Option<&str>)] = &[
        (0, Some("1970-01-01T00:00:00.000Z")),
        (951_782_400_000, Some("2000-02-29T00:00:00.000Z")),
        (-62_167_219_200_001, Some("-000001-12-31T23:59:59.999Z")),
        (253_402_300_800_000, Some("+010000-01-01T00:00:00.000Z")),
        (8_640_000_000_000_000, Some("+275760-09-13T00:00:00.000Z")),
        (8_640_000_000_000_001, None),
        (i64::MIN, None),
    ];
    for &(ms, want) in cases {
        assert_eq!(notepack::iso8601_from_millis(ms).as_deref(), want, "{ms}");
    }
}

#[test]
fn malformed_broadcasts_are_refused() {
    let enc = |v: Value| Bytes::from(notepack::encode(&v).unwrap());
    let packet = || {
        obj(vec![
            ("type", Value::Int(2)),
            ("data", Value::Array(vec![Value::from("ev")])),
            ("nsp", Value::from("/")),
        ])
    };
    let opts = || {
        obj(vec![
            ("rooms", Value::Array(vec![])),
            ("except", Value::Array(vec![])),
        ])
    };
    let cases: Vec<(Value, &str)> = vec![
        (Value::from("x"), "not an array"),
        (Value::Array(vec![Value::from("u")]), "without a packet"),
        (
            Value::Array(vec![Value::from("u"), packet()]),
            "without options",
        ),
        (
            Value::Array(vec![Value::from("u"), Value::Int(1), opts()]),
            "packet is not an object",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                obj(vec![("type", Value::Int(3))]),
                opts(),
            ]),
            "not an event",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                obj(vec![("type", Value::Int(2)), ("data", Value::from("x"))]),
                opts(),
            ]),
            "not an array",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                obj(vec![
                    ("type", Value::Int(2)),
                    ("data", Value::Array(vec![])),
                ]),
                opts(),
            ]),
            "without a name",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                obj(vec![
                    ("type", Value::Int(2)),
                    ("data", Value::Array(vec![Value::Null])),
                ]),
                opts(),
            ]),
            "event name",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                obj(vec![
                    ("type", Value::Int(2)),
                    ("data", Value::Array(vec![Value::from("e")])),
                    ("nsp", Value::Int(1)),
                ]),
                opts(),
            ]),
            "namespace",
        ),
        (
            Value::Array(vec![Value::from("u"), packet(), Value::Null]),
            "options are not an object",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                packet(),
                obj(vec![("rooms", Value::from("r"))]),
            ]),
            "rooms are not an array",
        ),
        (
            Value::Array(vec![
                Value::from("u"),
                packet(),
                obj(vec![("rooms", Value::Array(vec![Value::Null]))]),
            ]),
            "a room is not a string",
        ),
    ];
    for (value, want) in cases {
        let err = protocol::decode_broadcast(&enc(value.clone())).unwrap_err();
        assert!(err.to_string().contains(want), "{value:?}: {err}");
    }
    // Lenient where Node is: no nsp means "/", missing rooms are none, BINARY_EVENT is an
    // event, numeric rooms are their decimal form, a non-string uid never matches ours.
    let msg = protocol::decode_broadcast(&enc(Value::Array(vec![
        Value::Int(5),
        obj(vec![
            ("type", Value::Int(5)),
            ("data", Value::Array(vec![Value::from("ev"), Value::Int(1)])),
        ]),
        obj(vec![("rooms", Value::Array(vec![Value::Int(42)]))]),
    ])))
    .unwrap();
    assert_eq!(msg.uid, "");
    assert_eq!(
        msg.packet,
        Packet::event("/", "ev", vec![Value::Int(1)], None)
    );
    assert_eq!(msg.opts.rooms, rooms(&["42"]));
}

#[test]
fn channels() {
    let c = Channels::new("socket.io", "/");
    assert_eq!(c.broadcast, "socket.io#/#");
    assert_eq!(c.request, "socket.io-request#/#");
    assert_eq!(c.response, "socket.io-response#/#");
    assert_eq!(
        c.specific_response("abc123"),
        "socket.io-response#/#abc123#"
    );
    assert_eq!(c.broadcast_pattern(), "socket.io#/#*");
    let one = BroadcastOptions {
        rooms: rooms(&["r"]),
        ..Default::default()
    };
    assert_eq!(c.broadcast_channel(&one), "socket.io#/#r#");
    let two = BroadcastOptions {
        rooms: rooms(&["r", "s"]),
        ..Default::default()
    };
    assert_eq!(c.broadcast_channel(&two), "socket.io#/#");
    assert_eq!(c.room_of("socket.io#/#"), Some(""));
    assert_eq!(c.room_of("socket.io#/#r#"), Some("r"));
    assert_eq!(c.room_of("socket.io#/#a#b#"), Some("a#b"));
    assert_eq!(c.room_of("socket.io#/admin#"), None);
    assert_eq!(c.room_of("other#/#"), None);
    let odd = Channels::new("k*[?]\\", "/n");
    assert_eq!(odd.broadcast_pattern(), "k\\*\\[\\?\\]\\\\#/n#*");
}

#[test]
fn json_requests_match_json_stringify() {
    let selector = BroadcastOptions {
        rooms: rooms(&["a"]),
        ..Default::default()
    };
    assert_eq!(
        protocol::encode_fetch_request("abc123", "req001", &selector),
        r#"{"uid":"abc123","requestId":"req001","type":5,"opts":{"rooms":["a"],"except":[]}}"#
    );
    let except = BroadcastOptions {
        except: rooms(&["x"]),
        ..Default::default()
    };
    assert_eq!(
        protocol::encode_rooms_request(None, true, &except, &rooms(&["r"])),
        r#"{"type":2,"opts":{"rooms":[],"except":["x"]},"rooms":["r"]}"#
    );
    assert_eq!(
        protocol::encode_server_side_emit(
            "emitter",
            None,
            &[
                Value::from("ev"),
                Value::Int(1),
                obj(vec![("a", Value::from("b"))]),
                Value::bytes(vec![7u8]),
            ]
        ),
        r#"{"uid":"emitter","type":6,"data":["ev",1,{"a":"b"},{"type":"Buffer","data":[7]}]}"#
    );
    assert_eq!(
        protocol::encode_server_side_emit("abc123", Some("q"), &[Value::from("ev")]),
        r#"{"uid":"abc123","requestId":"q","type":6,"data":["ev"]}"#
    );
    assert_eq!(
        protocol::encode_disconnect_request(Some("abc123"), &one_room("r"), true),
        r#"{"uid":"abc123","type":4,"opts":{"rooms":["r"],"except":[]},"close":true}"#
    );
    assert_eq!(
        protocol::encode_client_count_response("q", 3),
        r#"{"type":8,"requestId":"q","clientCount":3}"#
    );
    assert_eq!(
        protocol::encode_server_side_emit_response("q", &obj(vec![("n", Value::Float(1.25))])),
        r#"{"type":6,"requestId":"q","data":{"n":1.25}}"#
    );
    assert_eq!(
        protocol::encode_all_rooms_request("u", "q"),
        r#"{"uid":"u","requestId":"q","type":1}"#
    );
    assert_eq!(
        protocol::encode_all_rooms_response("q", &rooms(&["a\"b"])),
        r#"{"requestId":"q","rooms":["a\"b"]}"#
    );
    assert_eq!(protocol::encode_done_response("q"), r#"{"requestId":"q"}"#);
}

fn one_room(r: &str) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms(&[r]),
        ..Default::default()
    }
}

#[test]
fn msgpack_requests_and_responses_match_notepack() {
    let packet = Packet::event("/", "ask", vec![Value::Int(1)], Some(3));
    let opts = BroadcastOptions {
        except: rooms(&["e"]),
        flags: BroadcastFlags {
            timeout: Some(Duration::from_secs(3)),
            ..Default::default()
        },
        ..Default::default()
    };
    let bytes =
        protocol::encode_broadcast_with_ack_request("abc123", "req001", &packet, &opts).unwrap();
    assert_eq!(Bytes::from(bytes), hex(BROADCAST_WITH_ACK));
    let ack = protocol::encode_ack_response("req001", Some(&obj(vec![("ok", Value::Bool(true))])));
    assert_eq!(Bytes::from(ack.unwrap()), hex(ACK));
    let ack = protocol::encode_ack_response("req001", None);
    assert_eq!(Bytes::from(ack.unwrap()), hex(ACK_UNDEFINED));
}

#[test]
fn requests_decode_by_their_first_byte() {
    let r = protocol::decode_request(&hex(BROADCAST_WITH_ACK), "/chat").unwrap();
    assert_eq!(r.uid.as_deref(), Some("abc123"));
    assert_eq!(r.request_id.as_deref(), Some("req001"));
    let RequestKind::BroadcastWithAck { packet, opts } = r.kind else {
        panic!("{:?}", r.kind)
    };
    // Delivered in the receiving namespace, without an id (the receiver assigns its own).
    assert_eq!(
        packet,
        Packet::event("/chat", "ask", vec![Value::Int(1)], None)
    );
    assert_eq!(opts.except, rooms(&["e"]));
    assert_eq!(opts.flags.timeout, Some(Duration::from_secs(3)));

    let json = |s: &str| protocol::decode_request(&Bytes::from(s.to_string()), "/");
    let cases: Vec<(&str, Option<&str>, Option<&str>, RequestKind)> = vec![
        (
            r#"{"uid":"u","requestId":"q","type":0,"rooms":["a"]}"#,
            Some("u"),
            Some("q"),
            RequestKind::Sockets {
                rooms: rooms(&["a"]),
            },
        ),
        (
            r#"{"uid":"u","requestId":"q","type":1}"#,
            Some("u"),
            Some("q"),
            RequestKind::AllRooms,
        ),
        (
            r#"{"type":2,"opts":{"rooms":[],"except":["x"]},"rooms":["r"]}"#,
            None,
            None,
            RequestKind::Join {
                target: Target::Matching(BroadcastOptions {
                    except: rooms(&["x"]),
                    ..Default::default()
                }),
                rooms: rooms(&["r"]),
            },
        ),
        (
            r#"{"uid":"u","requestId":"q","type":2,"sid":"s1","room":"r"}"#,
            Some("u"),
            Some("q"),
            RequestKind::Join {
                target: Target::Socket("s1".into()),
                rooms: rooms(&["r"]),
            },
        ),
        (
            r#"{"uid":"u","type":3,"opts":{"rooms":["a"]},"rooms":["r","s"]}"#,
            Some("u"),
            None,
            RequestKind::Leave {
                target: Target::Matching(one_room("a")),
                rooms: rooms(&["r", "s"]),
            },
        ),
        (
            r#"{"type":4,"opts":{"rooms":["r"],"except":[]},"close":true}"#,
            None,
            None,
            RequestKind::Disconnect {
                target: Target::Matching(one_room("r")),
                close: true,
            },
        ),
        (
            r#"{"uid":"u","requestId":"q","type":5,"opts":{"rooms":["a"],"except":[]}}"#,
            Some("u"),
            Some("q"),
            RequestKind::Fetch {
                opts: one_room("a"),
            },
        ),
        (
            r#"{"uid":"emitter","type":6,"data":["ev",{"type":"Buffer","data":[7]}]}"#,
            Some("emitter"),
            None,
            RequestKind::ServerSideEmit {
                data: vec![
                    Value::from("ev"),
                    obj(vec![
                        ("type", Value::from("Buffer")),
                        ("data", Value::Array(vec![Value::Int(7)])),
                    ]),
                ],
            },
        ),
    ];
    for (text, uid, id, kind) in cases {
        let r = json(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(r.uid.as_deref(), uid, "{text}");
        assert_eq!(r.request_id.as_deref(), id, "{text}");
        assert_eq!(r.kind, kind, "{text}");
    }

    let bad: &[(&str, &str)] = &[
        ("{", "invalid JSON"),
        // Not `{`: read as msgpack, where `[` is the integer 91 and the rest is garbage.
        ("[1]", "2 bytes after the value"),
        ("{}", "without a type"),
        (r#"{"type":"1"}"#, "without a type"),
        (r#"{"type":10}"#, "unknown request type 10"),
        (r#"{"type":-1}"#, "unknown request type -1"),
        (r#"{"type":2,"rooms":["r"]}"#, "without opts or sid"),
        (r#"{"type":2,"sid":"s"}"#, "without a room"),
        (
            r#"{"type":2,"opts":{"rooms":"a"},"rooms":[]}"#,
            "rooms are not an array",
        ),
        (r#"{"type":5}"#, "fetch without opts"),
        (r#"{"type":5,"opts":[]}"#, "options are not an object"),
        (r#"{"type":6,"data":[]}"#, "without an event"),
        (r#"{"type":6}"#, "without an event"),
        (r#"{"type":7,"opts":{}}"#, "without a packet"),
    ];
    for (text, want) in bad {
        let err = json(text).unwrap_err();
        assert!(err.to_string().contains(want), "{text}: {err}");
    }
    // msgpack type 7 without a request id, or with a packet that is not an event
    let enc = |v: Value| Bytes::from(notepack::encode(&v).unwrap());
    let no_id = enc(obj(vec![
        ("type", Value::Int(7)),
        (
            "packet",
            obj(vec![
                ("type", Value::Int(2)),
                ("data", Value::Array(vec![Value::from("e")])),
            ]),
        ),
        ("opts", obj(vec![])),
    ]));
    assert!(matches!(
        protocol::decode_request(&no_id, "/"),
        Err(ProtocolError::Malformed(_))
    ));
    assert!(
        protocol::decode_request(&hex("9101"), "/")
            .unwrap_err()
            .to_string()
            .contains("not an object")
    );
    assert!(matches!(
        protocol::decode_request(&hex("c1"), "/"),
        Err(ProtocolError::Msgpack(_))
    ));
}

#[test]
fn responses() {
    let sid = Sid::generate();
    let socket = RemoteSocket {
        id: sid,
        handshake: obj(vec![
            ("address", Value::from("::1")),
            ("issued", Value::Int(5)),
        ]),
        rooms: rooms(&[sid.as_str(), "r"]),
        data: obj(vec![("n", Value::Int(1))]),
    };
    let text = protocol::encode_fetch_response("q", std::slice::from_ref(&socket));
    assert_eq!(
        text,
        format!(
            r#"{{"requestId":"q","sockets":[{{"id":"{sid}","handshake":{{"address":"::1","issued":5}},"rooms":["{sid}","r"],"data":{{"n":1}}}}]}}"#
        )
    );
    let r = protocol::decode_response(&Bytes::from(text)).unwrap();
    assert_eq!(r.request_id, "q");
    assert_eq!(r.sockets(), Some(vec![socket]));

    // A socket whose id is not a Socket.IO id is skipped.
    let r = protocol::decode_response(&Bytes::from_static(
        br#"{"requestId":"q","sockets":[{"id":"short"},{"id":1}]}"#,
    ))
    .unwrap();
    assert_eq!(r.sockets(), Some(vec![]));

    let r = protocol::decode_response(&Bytes::from_static(br#"{"requestId":"q","rooms":["a",1]}"#))
        .unwrap();
    assert_eq!(r.rooms(), Some(rooms(&["a", "1"])));
    assert_eq!(r.sockets(), None);

    let r = protocol::decode_response(&Bytes::from(protocol::encode_client_count_response("q", 4)))
        .unwrap();
    assert_eq!((r.kind(), r.client_count()), (Some(8), Some(4)));

    let r = protocol::decode_response(&hex(ACK)).unwrap();
    assert_eq!(r.kind(), Some(9));
    assert_eq!(
        r.body.get("packet"),
        Some(&obj(vec![("ok", Value::Bool(true))]))
    );
    assert_eq!(
        protocol::encode_sockets_response("q", &[sid]),
        format!(r#"{{"requestId":"q","sockets":["{sid}"]}}"#)
    );

    for bad in [&b"{"[..], b"[]", b"{}", br#"{"requestId":1}"#, b"\xc1"] {
        assert!(
            protocol::decode_response(&Bytes::copy_from_slice(bad)).is_err(),
            "{bad:?}"
        );
    }
}

#[test]
fn json_numbers_and_strings() {
    let cases: Vec<(Value, &str)> = vec![
        (Value::Float(2.0), "2"),
        (Value::Float(-0.5), "-0.5"),
        (Value::Float(f64::NAN), "null"),
        (Value::Float(f64::INFINITY), "null"),
        (Value::Float(1e21), "1e+21"),
        (Value::Float(1.5e300), "1.5e+300"),
        (Value::Float(1.5e-7), "1.5e-7"),
        (Value::UInt(u64::MAX), "18446744073709551615"),
        (Value::from("a\"\\\n\u{1}é"), r#""a\"\\\n\u0001é""#),
        (Value::Bytes(Bytes::new()), r#"{"type":"Buffer","data":[]}"#),
    ];
    for (v, want) in cases {
        let mut out = String::new();
        crate::json::write(&mut out, &v);
        assert_eq!(out, want, "{v:?}");
    }
}
