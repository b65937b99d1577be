//! The sharded protocol checked against what the real `@socket.io/redis-adapter` 8.3 sharded
//! adapter publishes: every vector below was printed by `tests/redis-interop/tools/
//! sharded-vectors.js`, which drives that adapter over fake Redis clients (prefix `pfx`, uid
//! `0123456789abcdef`). Then every malformed message we could think of.

use std::time::Duration;

use bytes::Bytes;
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{BroadcastFlags, BroadcastOptions, RemoteSocket, Sid, Value};

use crate::protocol::ProtocolError;
use crate::sharded_protocol::{
    self as wire, Body, Message, MessageType, ShardedChannels, SubscriptionMode,
    looks_like_a_socket_id,
};
use crate::test_util::{obj, rooms};

const UID: &str = "0123456789abcdef";
const SID: &str = "abcdefghij0123456789";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test vector is hex"))
        .collect()
}

fn select(to: &[&str], except: &[&str]) -> BroadcastOptions {
    BroadcastOptions {
        rooms: rooms(to),
        except: rooms(except),
        ..Default::default()
    }
}

fn msg(body: Body) -> Message {
    Message {
        uid: Some(UID.into()),
        nsp: Some("/".into()),
        body,
    }
}

fn broadcast(packet: Packet, opts: BroadcastOptions, request_id: Option<&str>) -> Body {
    Body::Broadcast {
        packet,
        opts,
        request_id: request_id.map(str::to_owned),
    }
}

/// Node's bytes: JSON as text, msgpack as hex.
enum Wire {
    Json(&'static str),
    Msgpack(&'static str),
}

impl Wire {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Wire::Json(s) => s.as_bytes().to_vec(),
            Wire::Msgpack(h) => hex(h),
        }
    }
}

fn vectors() -> Vec<(&'static str, Message, Wire)> {
    let handshake = obj(vec![
        ("time", Value::from("t")),
        ("issued", Value::Int(1)),
        ("query", obj(vec![("a", Value::from("1"))])),
    ]);
    vec![
        (
            "broadcast to all",
            msg(broadcast(
                Packet::event("/", "ev", vec![Value::from("x"), Value::Float(1.5)], None),
                select(&[], &[]),
                None,
            )),
            Wire::Json(
                r#"{"type":3,"data":{"packet":{"type":2,"data":["ev","x",1.5],"nsp":"/"},"opts":{"rooms":[],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "binary broadcast with flags",
            msg(broadcast(
                Packet::event("/", "ev", vec![Value::bytes(vec![1u8, 2, 3])], None),
                BroadcastOptions {
                    rooms: rooms(&["r1"]),
                    except: rooms(&["e"]),
                    flags: BroadcastFlags {
                        volatile: true,
                        compress: Some(false),
                        ..Default::default()
                    },
                },
                None,
            )),
            Wire::Msgpack(
                "84a47479706503a46461746182a67061636b657483a47479706502a46461746192a26576c403010203a36e7370a12fa46f70747383a5726f6f6d7391a27231a665786365707491a165a5666c61677382a8766f6c6174696c65c3a8636f6d7072657373c2a3756964b030313233343536373839616263646566a36e7370a12f",
            ),
        ),
        (
            "broadcast to a non-ASCII room",
            msg(broadcast(
                Packet::event("/", "ev", vec![], None),
                select(&["é€😀"], &[]),
                None,
            )),
            Wire::Json(
                r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"],"nsp":"/"},"opts":{"rooms":["é€😀"],"except":[],"flags":{}}},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "broadcast with acknowledgements",
            msg(broadcast(
                Packet::event("/", "ask", vec![Value::Int(1)], None),
                BroadcastOptions {
                    rooms: rooms(&["r1"]),
                    flags: BroadcastFlags {
                        timeout: Some(Duration::from_secs(3)),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                Some("f6509cd88839e0cb"),
            )),
            Wire::Json(
                r#"{"type":3,"data":{"packet":{"type":2,"data":["ask",1],"nsp":"/"},"requestId":"f6509cd88839e0cb","opts":{"rooms":["r1"],"except":[],"flags":{"timeout":3000}}},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "socketsJoin",
            msg(Body::SocketsJoin {
                opts: select(&["a"], &["b"]),
                rooms: rooms(&["j1", "j2"]),
            }),
            Wire::Json(
                r#"{"type":4,"data":{"opts":{"rooms":["a"],"except":["b"],"flags":{}},"rooms":["j1","j2"]},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "socketsLeave",
            msg(Body::SocketsLeave {
                opts: select(&[], &[]),
                rooms: rooms(&["j1"]),
            }),
            Wire::Json(
                r#"{"type":5,"data":{"opts":{"rooms":[],"except":[],"flags":{}},"rooms":["j1"]},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "disconnectSockets",
            msg(Body::DisconnectSockets {
                opts: select(&["a"], &[]),
                close: true,
            }),
            Wire::Json(
                r#"{"type":6,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"close":true},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "serverSideEmit",
            msg(Body::ServerSideEmit {
                packet: vec![
                    Value::from("hello"),
                    obj(vec![("a", Value::Array(vec![Value::Int(1), Value::Null]))]),
                ],
                request_id: None,
            }),
            Wire::Json(
                r#"{"type":9,"data":{"packet":["hello",{"a":[1,null]}]},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "binary serverSideEmit",
            msg(Body::ServerSideEmit {
                packet: vec![Value::from("hello"), Value::bytes(vec![9u8])],
                request_id: None,
            }),
            Wire::Msgpack(
                "84a47479706509a46461746181a67061636b657492a568656c6c6fc40109a3756964b030313233343536373839616263646566a36e7370a12f",
            ),
        ),
        (
            "client count",
            msg(Body::BroadcastClientCount {
                request_id: "req".into(),
                client_count: 2,
            }),
            Wire::Json(
                r#"{"type":11,"data":{"requestId":"req","clientCount":2},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "acknowledgement",
            msg(Body::BroadcastAck {
                request_id: "req".into(),
                packet: Some(obj(vec![("ok", Value::Bool(true))])),
            }),
            Wire::Json(
                r#"{"type":12,"data":{"requestId":"req","packet":{"ok":true}},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "acknowledgement without an argument",
            msg(Body::BroadcastAck {
                request_id: "req".into(),
                packet: None,
            }),
            Wire::Json(
                r#"{"type":12,"data":{"requestId":"req"},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "binary acknowledgement",
            msg(Body::BroadcastAck {
                request_id: "req".into(),
                packet: Some(Value::bytes(vec![7u8])),
            }),
            Wire::Msgpack(
                "84a4747970650ca46461746182a9726571756573744964a3726571a67061636b6574c40107a3756964b030313233343536373839616263646566a36e7370a12f",
            ),
        ),
        (
            "serverSideEmit response",
            msg(Body::ServerSideEmitResponse {
                request_id: "req".into(),
                packet: Some(Value::from("pong")),
            }),
            Wire::Json(
                r#"{"type":10,"data":{"requestId":"req","packet":"pong"},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
        (
            "fetchSockets response",
            msg(Body::FetchSocketsResponse {
                request_id: "req".into(),
                sockets: vec![RemoteSocket {
                    id: Sid::parse(SID).unwrap(),
                    handshake,
                    rooms: rooms(&[SID, "r"]),
                    data: obj(vec![("n", Value::Int(1))]),
                }],
            }),
            Wire::Json(
                r#"{"type":8,"data":{"requestId":"req","sockets":[{"id":"abcdefghij0123456789","handshake":{"time":"t","issued":1,"query":{"a":"1"}},"rooms":["abcdefghij0123456789","r"],"data":{"n":1}}]},"uid":"0123456789abcdef","nsp":"/"}"#,
            ),
        ),
    ]
}

#[test]
fn messages_are_byte_identical_to_node() {
    for (what, message, node) in vectors() {
        let ours = wire::encode(&message).unwrap();
        assert_eq!(
            ours,
            node.bytes(),
            "{what}: ours {}",
            String::from_utf8_lossy(&ours)
        );
    }
}

#[test]
fn node_messages_decode_to_what_was_sent() {
    for (what, message, node) in vectors() {
        let decoded = wire::decode(&Bytes::from(node.bytes())).unwrap();
        assert_eq!(decoded, message, "{what}");
    }
}

#[test]
fn messages_without_data_and_heartbeats() {
    // Not sent by the sharded adapter, but by the cluster adapters with heartbeats: read and
    // ignored, never an error.
    for (raw, body) in [
        (r#"{"type":1,"uid":"u","nsp":"/"}"#, Body::InitialHeartbeat),
        (r#"{"type":2,"uid":"u","nsp":"/"}"#, Body::Heartbeat),
        (r#"{"type":13,"uid":"u","nsp":"/"}"#, Body::AdapterClose),
    ] {
        let m = wire::decode(&Bytes::from(raw)).unwrap();
        assert_eq!(m.body, body, "{raw}");
        assert_eq!(m.uid.as_deref(), Some("u"));
        let out = wire::encode(&m).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), raw);
    }
}

#[test]
fn the_fetch_request_and_emitter_messages() {
    let fetch = msg(Body::FetchSockets {
        opts: select(&["a"], &[]),
        request_id: "r1".into(),
    });
    let raw = r#"{"type":7,"data":{"opts":{"rooms":["a"],"except":[],"flags":{}},"requestId":"r1"},"uid":"0123456789abcdef","nsp":"/"}"#;
    assert_eq!(wire::encode(&fetch).unwrap(), raw.as_bytes());
    assert_eq!(wire::decode(&Bytes::from(raw)).unwrap(), fetch);

    // A message without uid or namespace is read; the adapter then ignores it.
    let m = wire::decode(&Bytes::from(r#"{"type":9,"data":{"packet":["x"]}}"#)).unwrap();
    assert_eq!((m.uid, m.nsp), (None, None));
    let m = wire::decode(&Bytes::from(
        r#"{"type":9,"data":{"packet":["x"]},"uid":7,"nsp":["/"]}"#,
    ))
    .unwrap();
    assert_eq!((m.uid, m.nsp), (None, None));
}

#[test]
fn broadcasts_read_their_flags_and_default_the_namespace() {
    let raw = r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":["a"],"except":[],"flags":{"volatile":true,"timeout":1500,"local":true}}},"uid":"u","nsp":"/"}"#;
    let Body::Broadcast { packet, opts, .. } = wire::decode(&Bytes::from(raw)).unwrap().body else {
        panic!("not a broadcast")
    };
    assert_eq!(packet.nsp, "/");
    assert!(opts.flags.volatile);
    assert_eq!(opts.flags.timeout, Some(Duration::from_millis(1500)));
    // `local` only ever applies where it was set.
    assert!(!opts.flags.local);
    // Missing rooms and except are no rooms, as `new Set(undefined)`.
    let raw = r#"{"type":4,"data":{"opts":{},"rooms":[]},"uid":"u","nsp":"/"}"#;
    assert_eq!(
        wire::decode(&Bytes::from(raw)).unwrap().body,
        Body::SocketsJoin {
            opts: BroadcastOptions::default(),
            rooms: vec![]
        }
    );
}

#[test]
fn malformed_messages_are_errors() {
    let malformed = [
        "",
        "{",
        "{}",
        "[]",
        r#"{"type":"3"}"#,
        r#"{"type":3}"#,
        r#"{"type":3,"data":{"opts":{}}}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]}}}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"opts":{},"requestId":5}}"#,
        r#"{"type":3,"data":{"packet":{"type":3,"data":["ev"]},"opts":{}}}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":[]},"opts":{}}}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":"ev"},"opts":{}}}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":"a"}}}"#,
        r#"{"type":3,"data":{"packet":{"type":2,"data":["ev"]},"opts":{"rooms":[{}]}}}"#,
        r#"{"type":4,"data":{"opts":{}}}"#,
        r#"{"type":4,"data":{"opts":{},"rooms":"a"}}"#,
        r#"{"type":5,"data":{"rooms":[]}}"#,
        r#"{"type":6,"data":{"close":true}}"#,
        r#"{"type":6,"data":{"opts":7}}"#,
        r#"{"type":7,"data":{"opts":{}}}"#,
        r#"{"type":8,"data":{"requestId":"r"}}"#,
        r#"{"type":8,"data":{"requestId":"r","sockets":{}}}"#,
        r#"{"type":8,"data":{"sockets":[]}}"#,
        r#"{"type":9,"data":{"packet":[]}}"#,
        r#"{"type":9,"data":{"packet":"ev"}}"#,
        r#"{"type":9,"data":{}}"#,
        r#"{"type":10,"data":{"packet":1}}"#,
        r#"{"type":11,"data":{"requestId":"r","clientCount":-1}}"#,
        r#"{"type":11,"data":{"requestId":"r","clientCount":"2"}}"#,
        r#"{"type":11,"data":{"requestId":"r"}}"#,
        r#"{"type":12,"data":{"requestId":null}}"#,
        r#"{"type":0}"#,
        r#"{"type":14}"#,
        r#"{"type":-1}"#,
    ];
    for raw in malformed {
        assert!(
            wire::decode(&Bytes::from(raw)).is_err(),
            "{raw:?} should not decode"
        );
    }
    assert_eq!(
        wire::decode(&Bytes::from(r#"{"type":99}"#)),
        Err(ProtocolError::UnknownType(99))
    );
    // msgpack: not a map, truncated, trailing bytes, invalid byte.
    for raw in [
        vec![0x93, 0x01, 0x02, 0x03],
        hex("84a47479706503a4646174"),
        [hex("81a47479706501"), vec![0x00]].concat(),
        vec![0xc1],
    ] {
        assert!(wire::decode(&Bytes::from(raw.clone())).is_err(), "{raw:x?}");
    }
    // Sockets with ids that are not Socket.IO ids are skipped, not fatal.
    let raw = r#"{"type":8,"data":{"requestId":"r","sockets":[{"id":"short"},{"id":"abcdefghij0123456789"},7]}}"#;
    let Body::FetchSocketsResponse { sockets, .. } = wire::decode(&Bytes::from(raw)).unwrap().body
    else {
        panic!("not a fetch response")
    };
    assert_eq!(sockets.len(), 1);
    assert_eq!(sockets[0].data, Value::Null);
}

#[test]
fn only_events_are_encoded() {
    let packet = Packet {
        nsp: "/".into(),
        kind: ignis_socketio::proto::socketio::PacketKind::Disconnect,
    };
    assert!(wire::encode(&msg(broadcast(packet, select(&[], &[]), None))).is_err());
}

#[test]
fn broadcast_channels_follow_the_subscription_mode() {
    use SubscriptionMode::*;
    let ch = ShardedChannels::new("pfx", "/");
    let main = "pfx#/#";
    // (mode, rooms, acks, channel): the table of Node's computeChannel.
    let table: &[(SubscriptionMode, &[&str], bool, &str)] = &[
        (Dynamic, &[], false, main),
        (Dynamic, &["r1"], false, "pfx#/#r1#"),
        (Dynamic, &["r1"], true, main),
        (Dynamic, &["r1", "r2"], false, main),
        (Dynamic, &[SID], false, main),
        (Dynamic, &["é€😀"], false, "pfx#/#é€😀#"),
        // 20 UTF-16 units, 19 chars: Node takes it for a socket id.
        (Dynamic, &["😀abcdefghij01234567"], false, main),
        (DynamicPrivate, &[SID], false, "pfx#/#abcdefghij0123456789#"),
        (DynamicPrivate, &["r1"], true, main),
        (Static, &["r1"], false, main),
        (Static, &[SID], false, main),
    ];
    for (mode, to, acks, want) in table {
        let opts = select(to, &[]);
        assert_eq!(ch.broadcast(*mode, &opts, *acks), *want, "{mode:?} {to:?}");
    }
    assert_eq!(ch.response("fedcba9876543210"), "pfx#/#fedcba9876543210#");
    assert_eq!(
        ShardedChannels::new("socket.io", "/admin").main,
        "socket.io#/admin#"
    );
}

#[test]
fn room_subscriptions_follow_the_mode() {
    use SubscriptionMode::*;
    for (mode, public, private) in [
        (Static, false, false),
        (Dynamic, true, false),
        (DynamicPrivate, true, true),
    ] {
        assert_eq!(mode.subscribes_to_room(true), public, "{mode:?}");
        assert_eq!(mode.subscribes_to_room(false), private, "{mode:?}");
        assert_eq!(mode.as_str().parse::<SubscriptionMode>(), Ok(mode));
    }
    assert!("Dynamic".parse::<SubscriptionMode>().is_err());
    assert!("".parse::<SubscriptionMode>().is_err());
    assert_eq!(SubscriptionMode::default(), Dynamic);
}

#[test]
fn socket_ids_are_twenty_utf16_units() {
    for (room, yes) in [
        (SID, true),
        ("abcdefghij012345678", false),
        ("abcdefghij0123456789a", false),
        ("😀abcdefghij01234567", true),
        ("ééééééééééééééééééééé", false),
        ("éééééééééééééééééééé", true),
    ] {
        assert_eq!(looks_like_a_socket_id(room), yes, "{room}");
    }
}

#[test]
fn ids_are_sixteen_hex_characters() {
    let a = wire::random_id();
    let b = wire::random_id();
    assert_ne!(a, b);
    for id in [a, b] {
        assert_eq!(id.len(), 16);
        assert!(
            id.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
    assert_eq!(MessageType::AdapterClose as u8, 13);
}
