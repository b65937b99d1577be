//! The messages of the sharded `@socket.io/redis-adapter` 8.3 (`createShardedAdapter`), which
//! are those of the generic `ClusterAdapter` of `socket.io-adapter` 2.5: `{type, data, uid,
//! nsp}` with types 1 to 13, as JSON, or as msgpack when the data holds binary. Also the channel
//! names and the subscription modes. Pure functions over bytes.

use bytes::Bytes;
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{BroadcastOptions, RemoteSocket, Room, Sid, Value};

use crate::json;
use crate::notepack;
use crate::protocol::{self, ProtocolError};

/// The message types of the cluster adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// A node started (sent by adapters that count nodes by heartbeats).
    InitialHeartbeat = 1,
    /// A node is still there.
    Heartbeat = 2,
    /// A broadcast, with acknowledgements when it has a request id.
    Broadcast = 3,
    /// Sockets join rooms.
    SocketsJoin = 4,
    /// Sockets leave rooms.
    SocketsLeave = 5,
    /// Sockets are disconnected.
    DisconnectSockets = 6,
    /// A request for the matching sockets of every node.
    FetchSockets = 7,
    /// One node's matching sockets.
    FetchSocketsResponse = 8,
    /// An event for the namespace handlers of the other nodes.
    ServerSideEmit = 9,
    /// One node's acknowledgement of a server-side event.
    ServerSideEmitResponse = 10,
    /// How many clients of a node got a broadcast with acknowledgements.
    BroadcastClientCount = 11,
    /// One client's acknowledgement of a broadcast.
    BroadcastAck = 12,
    /// A node is going away.
    AdapterClose = 13,
}

/// Which channels a node subscribes to besides the namespace's main channel and its own
/// response channel (`subscriptionMode`). Every node of a cluster must use the same mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubscriptionMode {
    /// No room channels: every broadcast goes to the main channel.
    Static,
    /// One channel per public room (a room that is not the id of a local socket); a broadcast
    /// to exactly one room that does not look like a socket id goes to that room's channel.
    #[default]
    Dynamic,
    /// One channel per room, socket ids included.
    DynamicPrivate,
}

impl SubscriptionMode {
    /// The name of the Node option value.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionMode::Static => "static",
            SubscriptionMode::Dynamic => "dynamic",
            SubscriptionMode::DynamicPrivate => "dynamic-private",
        }
    }

    /// Whether a node with this mode subscribes to the channel of a room it has; `public` is
    /// false when the room is the id of a local socket.
    pub fn subscribes_to_room(self, public: bool) -> bool {
        match self {
            SubscriptionMode::Static => false,
            SubscriptionMode::Dynamic => public,
            SubscriptionMode::DynamicPrivate => true,
        }
    }
}

impl std::str::FromStr for SubscriptionMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "static" => Ok(SubscriptionMode::Static),
            "dynamic" => Ok(SubscriptionMode::Dynamic),
            "dynamic-private" => Ok(SubscriptionMode::DynamicPrivate),
            other => Err(format!(
                "unknown subscription mode {other:?} (static, dynamic, dynamic-private)"
            )),
        }
    }
}

/// Node's test for a socket id: 20 UTF-16 code units, whatever they are.
pub fn looks_like_a_socket_id(room: &str) -> bool {
    room.encode_utf16().count() == 20
}

/// The channels of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedChannels {
    /// `{prefix}#{nsp}#`: every message but the room broadcasts and the responses.
    pub main: String,
}

impl ShardedChannels {
    /// The channels of namespace `nsp` under `prefix` (`channelPrefix`).
    pub fn new(prefix: &str, nsp: &str) -> ShardedChannels {
        ShardedChannels {
            main: format!("{prefix}#{nsp}#"),
        }
    }

    /// `{prefix}#{nsp}#{uid}#`: where the node `uid` gets its responses.
    pub fn response(&self, uid: &str) -> String {
        format!("{}{uid}#", self.main)
    }

    /// `{prefix}#{nsp}#{room}#`.
    pub fn room(&self, room: &str) -> String {
        format!("{}{room}#", self.main)
    }

    /// Where a broadcast goes: a room channel only for a broadcast without acknowledgements
    /// to exactly one room (in `dynamic` mode, a room that does not look like a socket id),
    /// since a broadcast with acknowledgements counts on every node answering.
    pub fn broadcast(&self, mode: SubscriptionMode, opts: &BroadcastOptions, acks: bool) -> String {
        match opts.rooms.as_slice() {
            [room]
                if !acks
                    && (mode == SubscriptionMode::DynamicPrivate
                        || (mode == SubscriptionMode::Dynamic
                            && !looks_like_a_socket_id(room))) =>
            {
                self.room(room)
            }
            _ => self.main.clone(),
        }
    }
}

/// What a message says, by type.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// A node started.
    InitialHeartbeat,
    /// A node is still there.
    Heartbeat,
    /// With a request id, the sender waits for acknowledgements.
    Broadcast {
        /// The event.
        packet: Packet,
        /// Which sockets it is for, and its flags (the timeout of the acknowledgements among
        /// them).
        opts: BroadcastOptions,
        /// The id the acknowledgements must carry, when they are wanted.
        request_id: Option<String>,
    },
    /// Sockets join rooms.
    SocketsJoin {
        /// Which sockets.
        opts: BroadcastOptions,
        /// The rooms to join.
        rooms: Vec<Room>,
    },
    /// Sockets leave rooms.
    SocketsLeave {
        /// Which sockets.
        opts: BroadcastOptions,
        /// The rooms to leave.
        rooms: Vec<Room>,
    },
    /// Sockets are disconnected.
    DisconnectSockets {
        /// Which sockets.
        opts: BroadcastOptions,
        /// Whether their underlying connections close too.
        close: bool,
    },
    /// Every node answers with its matching sockets.
    FetchSockets {
        /// Which sockets.
        opts: BroadcastOptions,
        /// The id the answers must carry.
        request_id: String,
    },
    /// One node's answer to [`Body::FetchSockets`].
    FetchSocketsResponse {
        /// The request it answers.
        request_id: String,
        /// The node's matching sockets.
        sockets: Vec<RemoteSocket>,
    },
    /// `[event, ...args]`; with a request id, each other node answers once.
    ServerSideEmit {
        /// The event name and its arguments.
        packet: Vec<Value>,
        /// The id the answers must carry, when they are wanted.
        request_id: Option<String>,
    },
    /// `None` when the handler acknowledged without an argument (`undefined` in Node).
    ServerSideEmitResponse {
        /// The request it answers.
        request_id: String,
        /// The handler's acknowledgement.
        packet: Option<Value>,
    },
    /// How many clients of a node got a broadcast with acknowledgements.
    BroadcastClientCount {
        /// The broadcast it answers.
        request_id: String,
        /// The number of clients.
        client_count: u64,
    },
    /// One client's acknowledgement of a broadcast.
    BroadcastAck {
        /// The broadcast it answers.
        request_id: String,
        /// The first argument of the acknowledgement, if it had any.
        packet: Option<Value>,
    },
    /// A node is going away.
    AdapterClose,
}

impl Body {
    /// The message type that goes on the wire.
    pub fn kind(&self) -> MessageType {
        match self {
            Body::InitialHeartbeat => MessageType::InitialHeartbeat,
            Body::Heartbeat => MessageType::Heartbeat,
            Body::Broadcast { .. } => MessageType::Broadcast,
            Body::SocketsJoin { .. } => MessageType::SocketsJoin,
            Body::SocketsLeave { .. } => MessageType::SocketsLeave,
            Body::DisconnectSockets { .. } => MessageType::DisconnectSockets,
            Body::FetchSockets { .. } => MessageType::FetchSockets,
            Body::FetchSocketsResponse { .. } => MessageType::FetchSocketsResponse,
            Body::ServerSideEmit { .. } => MessageType::ServerSideEmit,
            Body::ServerSideEmitResponse { .. } => MessageType::ServerSideEmitResponse,
            Body::BroadcastClientCount { .. } => MessageType::BroadcastClientCount,
            Body::BroadcastAck { .. } => MessageType::BroadcastAck,
            Body::AdapterClose => MessageType::AdapterClose,
        }
    }

    /// The request a response answers.
    pub fn response_to(&self) -> Option<&str> {
        match self {
            Body::FetchSocketsResponse { request_id, .. }
            | Body::ServerSideEmitResponse { request_id, .. }
            | Body::BroadcastClientCount { request_id, .. }
            | Body::BroadcastAck { request_id, .. } => Some(request_id),
            _ => None,
        }
    }
}

/// One message of the cluster protocol.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The sender's uid (`"emitter"` for emitters); `None` when missing or not a string.
    pub uid: Option<String>,
    /// The namespace; `None` when missing or not a string (Node then ignores the message).
    pub nsp: Option<String>,
    /// What it says.
    pub body: Body,
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::with_capacity(entries.len());
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}

fn rooms_value(rooms: &[Room]) -> Value {
    Value::Array(rooms.iter().map(|r| Value::from(&**r)).collect())
}

/// `{rooms, except, flags}` as `encodeOptions` writes it; `flags` holds what Node's broadcast
/// operator holds (`local` never leaves the node).
fn opts_value(opts: &BroadcastOptions) -> Value {
    let f = &opts.flags;
    let mut flags = Map::new();
    if f.volatile {
        flags.insert("volatile", true);
    }
    if let Some(compress) = f.compress {
        flags.insert("compress", compress);
    }
    if let Some(timeout) = f.timeout {
        flags.insert("timeout", Value::from_u64(protocol::millis(timeout)));
    }
    map(vec![
        ("rooms", rooms_value(&opts.rooms)),
        ("except", rooms_value(&opts.except)),
        ("flags", Value::Map(flags)),
    ])
}

/// The packet as Node's broadcast operator builds it: `{type: 2, data: [event, ...args],
/// nsp}`, without an id.
fn packet_value(packet: &Packet) -> Result<Value, ProtocolError> {
    let PacketKind::Event { event, args, .. } = &packet.kind else {
        return Err(ProtocolError::Malformed("only events are broadcast"));
    };
    let mut data = Vec::with_capacity(args.len() + 1);
    data.push(event.as_value().clone());
    data.extend(args.iter().cloned());
    Ok(map(vec![
        ("type", Value::Int(2)),
        ("data", Value::Array(data)),
        ("nsp", Value::from(packet.nsp.as_str())),
    ]))
}

fn remote_socket_value(s: &RemoteSocket) -> Value {
    map(vec![
        ("id", Value::from(s.id.as_str())),
        ("handshake", s.handshake.clone()),
        ("rooms", rooms_value(&s.rooms)),
        ("data", s.data.clone()),
    ])
}

/// The `data` of a message, with its keys in the order Node writes them; `None` for the types
/// without data.
pub(crate) fn data_value(body: &Body) -> Result<Option<Value>, ProtocolError> {
    let id = |s: &str| Value::from(s);
    Ok(Some(match body {
        Body::InitialHeartbeat | Body::Heartbeat | Body::AdapterClose => return Ok(None),
        Body::Broadcast {
            packet,
            opts,
            request_id: None,
        } => map(vec![
            ("packet", packet_value(packet)?),
            ("opts", opts_value(opts)),
        ]),
        Body::Broadcast {
            packet,
            opts,
            request_id: Some(request_id),
        } => map(vec![
            ("packet", packet_value(packet)?),
            ("requestId", id(request_id)),
            ("opts", opts_value(opts)),
        ]),
        Body::SocketsJoin { opts, rooms } | Body::SocketsLeave { opts, rooms } => map(vec![
            ("opts", opts_value(opts)),
            ("rooms", rooms_value(rooms)),
        ]),
        Body::DisconnectSockets { opts, close } => map(vec![
            ("opts", opts_value(opts)),
            ("close", Value::Bool(*close)),
        ]),
        Body::FetchSockets { opts, request_id } => map(vec![
            ("opts", opts_value(opts)),
            ("requestId", id(request_id)),
        ]),
        Body::FetchSocketsResponse {
            request_id,
            sockets,
        } => map(vec![
            ("requestId", id(request_id)),
            (
                "sockets",
                Value::Array(sockets.iter().map(remote_socket_value).collect()),
            ),
        ]),
        Body::ServerSideEmit {
            packet,
            request_id: None,
        } => map(vec![("packet", Value::Array(packet.clone()))]),
        Body::ServerSideEmit {
            packet,
            request_id: Some(request_id),
        } => map(vec![
            ("requestId", id(request_id)),
            ("packet", Value::Array(packet.clone())),
        ]),
        Body::ServerSideEmitResponse { request_id, packet }
        | Body::BroadcastAck { request_id, packet } => {
            let mut entries = vec![("requestId", id(request_id))];
            // `undefined` disappears in JSON and in notepack's maps alike.
            if let Some(packet) = packet {
                entries.push(("packet", packet.clone()));
            }
            map(entries)
        }
        Body::BroadcastClientCount {
            request_id,
            client_count,
        } => map(vec![
            ("requestId", id(request_id)),
            ("clientCount", Value::from_u64(*client_count)),
        ]),
    }))
}

/// Encodes a message as the sharded adapter publishes it: `{type, data, uid, nsp}`, msgpack
/// when the type may carry binary and the data does, JSON otherwise.
pub fn encode(msg: &Message) -> Result<Vec<u8>, ProtocolError> {
    let kind = msg.body.kind();
    let data = data_value(&msg.body)?;
    let binary = may_contain_binary(kind) && data.as_ref().is_some_and(Value::has_binary);
    let mut entries = vec![("type", Value::Int(kind as i64))];
    if let Some(data) = data {
        entries.push(("data", data));
    }
    if let Some(uid) = &msg.uid {
        entries.push(("uid", Value::from(uid.as_str())));
    }
    if let Some(nsp) = &msg.nsp {
        entries.push(("nsp", Value::from(nsp.as_str())));
    }
    let value = map(entries);
    if binary {
        Ok(notepack::encode(&value)?)
    } else {
        let mut out = String::with_capacity(128);
        json::write(&mut out, &value);
        Ok(out.into_bytes())
    }
}

/// Whether Node looks for binary in the data of a message of this type.
pub(crate) fn may_contain_binary(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::Broadcast
            | MessageType::BroadcastAck
            | MessageType::FetchSocketsResponse
            | MessageType::ServerSideEmit
            | MessageType::ServerSideEmitResponse
    )
}

/// The message as a map, `{type, data, uid, nsp}`, as Node's cluster adapter builds it.
pub(crate) fn message_value(msg: &Message) -> Result<Value, ProtocolError> {
    let mut entries = vec![("type", Value::Int(msg.body.kind() as i64))];
    if let Some(data) = data_value(&msg.body)? {
        entries.push(("data", data));
    }
    if let Some(uid) = &msg.uid {
        entries.push(("uid", Value::from(uid.as_str())));
    }
    if let Some(nsp) = &msg.nsp {
        entries.push(("nsp", Value::from(nsp.as_str())));
    }
    Ok(map(entries))
}

fn required_id(data: &Map) -> Result<String, ProtocolError> {
    match data.get("requestId") {
        Some(Value::Str(s)) => Ok(s.clone()),
        _ => Err(ProtocolError::Malformed("a message without a request id")),
    }
}

/// A request id that may be missing (no acknowledgement wanted); any other non-string is
/// refused rather than answered with an id the requester cannot match.
fn optional_id(data: &Map) -> Result<Option<String>, ProtocolError> {
    match data.get("requestId") {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ProtocolError::Malformed("the request id is not a string")),
    }
}

fn required_opts(data: &Map, with_flags: bool) -> Result<BroadcastOptions, ProtocolError> {
    let opts = data
        .get("opts")
        .ok_or(ProtocolError::Malformed("a message without opts"))?;
    protocol::opts_from_value(opts, with_flags)
}

fn sockets_from_value(v: Option<&Value>) -> Result<Vec<RemoteSocket>, ProtocolError> {
    let Some(Value::Array(items)) = v else {
        return Err(ProtocolError::Malformed("sockets are not an array"));
    };
    // A socket whose id is not a Socket.IO id cannot be addressed here: skipped.
    Ok(items
        .iter()
        .filter_map(|s| {
            let id = Sid::parse(s.get("id")?.as_str()?)?;
            Some(RemoteSocket {
                id,
                handshake: s.get("handshake").cloned().unwrap_or_default(),
                rooms: protocol::rooms_from_value(s.get("rooms")).unwrap_or_default(),
                data: s.get("data").cloned().unwrap_or_default(),
            })
        })
        .collect())
}

/// Decodes a message: JSON when the first byte is `{`, msgpack otherwise, as Node does.
pub fn decode(raw: &Bytes) -> Result<Message, ProtocolError> {
    decode_value(protocol::decode_any(raw)?)
}

/// Decodes a message from its map, `{type, data, uid, nsp}`.
pub(crate) fn decode_value(value: Value) -> Result<Message, ProtocolError> {
    let Value::Map(mut msg) = value else {
        return Err(ProtocolError::Malformed("a message is not an object"));
    };
    let uid = msg.get("uid").and_then(Value::as_str).map(str::to_owned);
    let nsp = msg.get("nsp").and_then(Value::as_str).map(str::to_owned);
    let kind = msg
        .get("type")
        .and_then(Value::as_i64)
        .ok_or(ProtocolError::Malformed("a message without a type"))?;
    let mut data = match msg.remove("data") {
        Some(Value::Map(data)) => data,
        _ => Map::new(),
    };
    let has_data = !data.is_empty();
    let need_data = |ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(ProtocolError::Malformed("a message without data"))
        }
    };
    let body = match kind {
        1 => Body::InitialHeartbeat,
        2 => Body::Heartbeat,
        13 => Body::AdapterClose,
        3 => {
            need_data(has_data)?;
            let request_id = optional_id(&data)?;
            let opts = required_opts(&data, true)?;
            let packet = data
                .remove("packet")
                .ok_or(ProtocolError::Malformed("a broadcast without a packet"))?;
            Body::Broadcast {
                packet: protocol::packet_from_value(packet, None)?,
                opts,
                request_id,
            }
        }
        4 | 5 => {
            need_data(has_data)?;
            let opts = required_opts(&data, false)?;
            let rooms = match data.get("rooms") {
                Some(v @ Value::Array(_)) => protocol::rooms_from_value(Some(v))?,
                _ => return Err(ProtocolError::Malformed("rooms are not an array")),
            };
            if kind == 4 {
                Body::SocketsJoin { opts, rooms }
            } else {
                Body::SocketsLeave { opts, rooms }
            }
        }
        6 => {
            need_data(has_data)?;
            Body::DisconnectSockets {
                opts: required_opts(&data, false)?,
                close: data.get("close").and_then(Value::as_bool) == Some(true),
            }
        }
        7 => {
            need_data(has_data)?;
            Body::FetchSockets {
                opts: required_opts(&data, false)?,
                request_id: required_id(&data)?,
            }
        }
        8 => Body::FetchSocketsResponse {
            request_id: required_id(&data)?,
            sockets: sockets_from_value(data.get("sockets"))?,
        },
        9 => {
            let request_id = optional_id(&data)?;
            match data.remove("packet") {
                Some(Value::Array(packet)) if !packet.is_empty() => {
                    Body::ServerSideEmit { packet, request_id }
                }
                _ => {
                    return Err(ProtocolError::Malformed(
                        "a server-side emit without an event",
                    ));
                }
            }
        }
        10 => Body::ServerSideEmitResponse {
            request_id: required_id(&data)?,
            packet: data.remove("packet"),
        },
        11 => Body::BroadcastClientCount {
            request_id: required_id(&data)?,
            client_count: data.get("clientCount").and_then(Value::as_u64).ok_or(
                ProtocolError::Malformed("a client count that is not a count"),
            )?,
        },
        12 => Body::BroadcastAck {
            request_id: required_id(&data)?,
            packet: data.remove("packet"),
        },
        other => return Err(ProtocolError::UnknownType(other)),
    };
    Ok(Message { uid, nsp, body })
}

/// A 16-hex-character id, as `randomBytes(8).toString("hex")`: node uids and request ids.
pub fn random_id() -> String {
    let bytes: [u8; 8] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
