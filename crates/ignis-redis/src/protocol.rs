//! The messages of the classic `@socket.io/redis-adapter` 8 protocol (also what
//! `@socket.io/redis-emitter` 5 sends): channel names, the `[uid, packet, opts]` broadcast, the
//! requests of types 0 to 9 and their responses. Pure functions over bytes.

use bytes::Bytes;
use ignis_socketio::proto::socketio::{EventName, Packet, PacketKind};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{BroadcastFlags, BroadcastOptions, RemoteSocket, Room, Sid, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::json;
use crate::notepack::{self, NotepackError};

/// The uid every emitter puts in its broadcasts.
pub const EMITTER_UID: &str = "emitter";

/// Socket.IO's EVENT and BINARY_EVENT packet types. Node always publishes EVENT; old emitters
/// of other languages publish BINARY_EVENT when an argument is binary.
const EVENT: i64 = 2;
const BINARY_EVENT: i64 = 5;

/// The request types of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RequestType {
    /// The ids of the sockets in some rooms (legacy).
    Sockets = 0,
    /// Every room of a node.
    AllRooms = 1,
    /// Sockets join rooms.
    RemoteJoin = 2,
    /// Sockets leave rooms.
    RemoteLeave = 3,
    /// Sockets are disconnected.
    RemoteDisconnect = 4,
    /// A node's matching sockets, with their handshake, rooms and data.
    RemoteFetch = 5,
    /// An event for the namespace handlers of the other nodes.
    ServerSideEmit = 6,
    /// A broadcast with acknowledgements.
    Broadcast = 7,
    /// The answer telling how many clients of a node got a broadcast with acknowledgements.
    BroadcastClientCount = 8,
    /// The answer carrying one client's acknowledgement.
    BroadcastAck = 9,
}

/// Why a message could not be read or written.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    /// The msgpack could not be read or written.
    #[error(transparent)]
    Msgpack(#[from] NotepackError),
    /// The JSON could not be read.
    #[error("invalid JSON: {0}")]
    Json(String),
    /// The message is well-formed msgpack or JSON but not a message of the protocol.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// A request of a type the protocol does not have.
    #[error("unknown request type {0}")]
    UnknownType(i64),
}

/// The channels of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// `{key}#{nsp}#`: broadcasts to the whole namespace, and the prefix of the room channels.
    pub broadcast: String,
    /// `{key}-request#{nsp}#`.
    pub request: String,
    /// `{key}-response#{nsp}#`.
    pub response: String,
}

impl Channels {
    /// The channels of namespace `nsp` under the prefix `key`.
    pub fn new(key: &str, nsp: &str) -> Channels {
        Channels {
            broadcast: format!("{key}#{nsp}#"),
            request: format!("{key}-request#{nsp}#"),
            response: format!("{key}-response#{nsp}#"),
        }
    }

    /// `{key}-response#{nsp}#{uid}#`, for `publishOnSpecificResponseChannel`.
    pub fn specific_response(&self, uid: &str) -> String {
        format!("{}{uid}#", self.response)
    }

    /// The channel a broadcast goes to: the room's own channel when it targets exactly one
    /// room, so that nodes without that room can drop it before decoding.
    pub fn broadcast_channel(&self, opts: &BroadcastOptions) -> String {
        match opts.rooms.as_slice() {
            [room] => format!("{}{room}#", self.broadcast),
            _ => self.broadcast.clone(),
        }
    }

    /// The PSUBSCRIBE pattern of the broadcast channels, with the glob characters of the key
    /// and namespace escaped so that it matches this namespace only.
    pub fn broadcast_pattern(&self) -> String {
        let mut pattern = String::with_capacity(self.broadcast.len() + 2);
        for c in self.broadcast.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }

    /// The room a broadcast channel is for: `Some("")` for the namespace channel, `None` for a
    /// channel that is not a broadcast channel of this namespace.
    pub fn room_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        let rest = channel.strip_prefix(self.broadcast.as_str())?;
        // Node drops the last character whatever it is; a well-formed channel ends with '#'.
        Some(rest.strip_suffix('#').unwrap_or(""))
    }
}

/// A broadcast read from a broadcast channel.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastMessage {
    /// The sender's uid (`"emitter"` for emitters); empty when it was not a string.
    pub uid: String,
    /// The event, in the namespace the sender gave it.
    pub packet: Packet,
    /// Which sockets it is for, and its flags.
    pub opts: BroadcastOptions,
}

/// How the `opts` of a broadcast are laid out: the adapter writes `rooms, except, flags`, the
/// emitter `rooms, flags, except` with only its two flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// An adapter of a server: `rooms, except, flags`, with the timeout among the flags.
    Adapter,
    /// An emitter: `rooms, flags, except`, with `volatile` and `compress` only.
    Emitter,
}

/// Encodes the `[uid, packet, opts]` triple of a broadcast.
pub fn encode_broadcast(
    uid: &str,
    packet: &Packet,
    opts: &BroadcastOptions,
    sender: Sender,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(64);
    notepack::write_array_len(&mut out, 3)?;
    notepack::write_str(&mut out, uid)?;
    write_packet(&mut out, packet)?;
    write_opts(&mut out, opts, sender)?;
    Ok(out)
}

/// Writes an EVENT packet the way Node's adapter holds it before encoding:
/// `{type: 2, data: [event, ...args], nsp}`, without an id.
fn write_packet(out: &mut Vec<u8>, packet: &Packet) -> Result<(), ProtocolError> {
    let PacketKind::Event { event, args, .. } = &packet.kind else {
        return Err(ProtocolError::Malformed("only events are broadcast"));
    };
    notepack::write_map_len(out, 3)?;
    notepack::write_str(out, "type")?;
    notepack::write_int(out, EVENT);
    notepack::write_str(out, "data")?;
    notepack::write_array_len(out, args.len() + 1)?;
    notepack::write_value(out, event.as_value(), 2)?;
    for arg in args {
        notepack::write_value(out, arg, 2)?;
    }
    notepack::write_str(out, "nsp")?;
    notepack::write_str(out, &packet.nsp)?;
    Ok(())
}

fn write_rooms(out: &mut Vec<u8>, rooms: &[Room]) -> Result<(), ProtocolError> {
    notepack::write_array_len(out, rooms.len())?;
    for room in rooms {
        notepack::write_str(out, room)?;
    }
    Ok(())
}

fn write_opts(
    out: &mut Vec<u8>,
    opts: &BroadcastOptions,
    sender: Sender,
) -> Result<(), ProtocolError> {
    let f = &opts.flags;
    let mut flags: Vec<(&str, Value)> = Vec::new();
    if f.volatile {
        flags.push(("volatile", Value::Bool(true)));
    }
    if let Some(compress) = f.compress {
        flags.push(("compress", Value::Bool(compress)));
    }
    if sender == Sender::Adapter
        && let Some(timeout) = f.timeout
    {
        flags.push(("timeout", Value::from_u64(millis(timeout))));
    }
    let write_flags = |out: &mut Vec<u8>| -> Result<(), ProtocolError> {
        notepack::write_str(out, "flags")?;
        notepack::write_map_len(out, flags.len())?;
        for (k, v) in &flags {
            notepack::write_str(out, k)?;
            notepack::write_value(out, v, 2)?;
        }
        Ok(())
    };
    notepack::write_map_len(out, 3)?;
    notepack::write_str(out, "rooms")?;
    write_rooms(out, &opts.rooms)?;
    if sender == Sender::Emitter {
        write_flags(out)?;
    }
    notepack::write_str(out, "except")?;
    write_rooms(out, &opts.except)?;
    if sender == Sender::Adapter {
        write_flags(out)?;
    }
    Ok(())
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Decodes a broadcast. A packet without `nsp` is for `/`, as Node reads it.
pub fn decode_broadcast(data: &Bytes) -> Result<BroadcastMessage, ProtocolError> {
    let Value::Array(items) = notepack::decode(data)? else {
        return Err(ProtocolError::Malformed("a broadcast is not an array"));
    };
    let mut items = items.into_iter();
    let uid = match items.next() {
        Some(Value::Str(s)) => s,
        Some(_) => String::new(),
        None => return Err(ProtocolError::Malformed("a broadcast without a packet")),
    };
    let packet = items
        .next()
        .ok_or(ProtocolError::Malformed("a broadcast without a packet"))?;
    let opts = items
        .next()
        .ok_or(ProtocolError::Malformed("a broadcast without options"))?;
    let packet = packet_from_value(packet, None)?;
    let opts = opts_from_value(&opts, true)?;
    Ok(BroadcastMessage { uid, packet, opts })
}

/// An EVENT packet from its object form. `nsp` overrides the packet's own namespace (a broadcast
/// with acknowledgements is always delivered in the receiving adapter's namespace).
pub(crate) fn packet_from_value(value: Value, nsp: Option<&str>) -> Result<Packet, ProtocolError> {
    let Value::Map(mut map) = value else {
        return Err(ProtocolError::Malformed("the packet is not an object"));
    };
    match map.get("type").and_then(Value::as_i64) {
        Some(EVENT | BINARY_EVENT) => {}
        _ => return Err(ProtocolError::Malformed("the packet is not an event")),
    }
    let packet_nsp = match (nsp, map.remove("nsp")) {
        (Some(nsp), _) => nsp.to_string(),
        (None, None) => "/".to_string(),
        (None, Some(Value::Str(s))) => s,
        (None, Some(_)) => return Err(ProtocolError::Malformed("the namespace is not a string")),
    };
    let Some(Value::Array(data)) = map.remove("data") else {
        return Err(ProtocolError::Malformed("the packet data is not an array"));
    };
    let mut data = data.into_iter();
    let event = data
        .next()
        .ok_or(ProtocolError::Malformed("an event without a name"))?;
    let event = EventName::try_from(event)
        .map_err(|_| ProtocolError::Malformed("the event name is not a string or a number"))?;
    Ok(Packet::event(packet_nsp, event, data.collect(), None))
}

/// A room name: Node rooms are strings, but a number is tolerated as its decimal form.
pub(crate) fn room_from_value(v: &Value) -> Option<Room> {
    match v {
        Value::Str(s) => Some(Arc::from(s.as_str())),
        Value::Int(n) => Some(Arc::from(n.to_string())),
        Value::UInt(n) => Some(Arc::from(n.to_string())),
        Value::Float(f) if f.is_finite() => {
            let mut s = String::new();
            json::write(&mut s, v);
            Some(Arc::from(s))
        }
        _ => None,
    }
}

/// Room names from an array; a missing field is no room (`new Set(undefined)` in Node).
pub(crate) fn rooms_from_value(v: Option<&Value>) -> Result<Vec<Room>, ProtocolError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|r| room_from_value(r).ok_or(ProtocolError::Malformed("a room is not a string")))
            .collect(),
        Some(_) => Err(ProtocolError::Malformed("rooms are not an array")),
    }
}

/// `{rooms, except, flags?}`; the flags are read only where they matter (broadcasts).
pub(crate) fn opts_from_value(
    v: &Value,
    with_flags: bool,
) -> Result<BroadcastOptions, ProtocolError> {
    let Value::Map(map) = v else {
        return Err(ProtocolError::Malformed("the options are not an object"));
    };
    let mut opts = BroadcastOptions {
        rooms: rooms_from_value(map.get("rooms"))?,
        except: rooms_from_value(map.get("except"))?,
        flags: BroadcastFlags::default(),
    };
    if with_flags && let Some(Value::Map(flags)) = map.get("flags") {
        opts.flags.volatile = flags.get("volatile").and_then(Value::as_bool) == Some(true);
        opts.flags.compress = flags.get("compress").and_then(Value::as_bool);
        opts.flags.timeout = flags
            .get("timeout")
            .and_then(Value::as_f64)
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_millis(ms.min(u64::MAX as f64) as u64));
    }
    Ok(opts)
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Which sockets a remote join, leave or disconnect is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Every socket a broadcast with these rooms and exceptions would reach.
    Matching(BroadcastOptions),
    /// One socket, by id (the legacy form from adapters before 6.1, which wants a reply).
    Socket(String),
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// The ids of the sockets in any of `rooms` (legacy).
    Sockets {
        /// The rooms; none means every socket.
        rooms: Vec<Room>,
    },
    /// Every room of the node.
    AllRooms,
    /// The target sockets join `rooms`.
    Join {
        /// Which sockets.
        target: Target,
        /// The rooms to join.
        rooms: Vec<Room>,
    },
    /// The target sockets leave `rooms`.
    Leave {
        /// Which sockets.
        target: Target,
        /// The rooms to leave.
        rooms: Vec<Room>,
    },
    /// The target sockets are disconnected.
    Disconnect {
        /// Which sockets.
        target: Target,
        /// Whether their underlying connections close too.
        close: bool,
    },
    /// The matching sockets, with their handshake, rooms and data.
    Fetch {
        /// Which sockets.
        opts: BroadcastOptions,
    },
    /// `[event, ...args]`; an acknowledgement is wanted when the request has an id.
    ServerSideEmit {
        /// The event name and its arguments.
        data: Vec<Value>,
    },
    /// A broadcast with acknowledgements; `opts.flags.timeout` says how long the requester
    /// listens.
    BroadcastWithAck {
        /// The event, in the receiving node's namespace.
        packet: Packet,
        /// Which sockets it is for, and its flags.
        opts: BroadcastOptions,
    },
}

/// A request read from the request channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The requesting node's uid; emitters send none for join, leave and disconnect.
    pub uid: Option<String>,
    /// The id the answers must carry; `None` when the request wants none.
    pub request_id: Option<String>,
    /// What it asks for.
    pub kind: RequestKind,
}

/// JSON when the first byte is `{`, msgpack otherwise: the rule both Node peers apply.
pub(crate) fn decode_any(data: &Bytes) -> Result<Value, ProtocolError> {
    if data.first() == Some(&b'{') {
        json::parse(data).map_err(|e| ProtocolError::Json(e.to_string()))
    } else {
        Ok(notepack::decode(data)?)
    }
}

fn opt_string(map: &Map, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// Decodes a request for the namespace `nsp`.
pub fn decode_request(data: &Bytes, nsp: &str) -> Result<Request, ProtocolError> {
    let Value::Map(mut map) = decode_any(data)? else {
        return Err(ProtocolError::Malformed("a request is not an object"));
    };
    let uid = opt_string(&map, "uid");
    let request_id = opt_string(&map, "requestId");
    let kind = map
        .get("type")
        .and_then(Value::as_i64)
        .ok_or(ProtocolError::Malformed("a request without a type"))?;
    let target = |map: &Map| -> Result<Target, ProtocolError> {
        match map.get("opts") {
            Some(opts) if !opts.is_null() => Ok(Target::Matching(opts_from_value(opts, false)?)),
            _ => opt_string(map, "sid")
                .map(Target::Socket)
                .ok_or(ProtocolError::Malformed("a request without opts or sid")),
        }
    };
    let join_rooms = |map: &Map, target: &Target| -> Result<Vec<Room>, ProtocolError> {
        match target {
            Target::Matching(_) => rooms_from_value(map.get("rooms")),
            Target::Socket(_) => map
                .get("room")
                .and_then(room_from_value)
                .map(|r| vec![r])
                .ok_or(ProtocolError::Malformed("a legacy request without a room")),
        }
    };
    let kind = match kind {
        0 => RequestKind::Sockets {
            rooms: rooms_from_value(map.get("rooms"))?,
        },
        1 => RequestKind::AllRooms,
        2 => {
            let target = target(&map)?;
            let rooms = join_rooms(&map, &target)?;
            RequestKind::Join { target, rooms }
        }
        3 => {
            let target = target(&map)?;
            let rooms = join_rooms(&map, &target)?;
            RequestKind::Leave { target, rooms }
        }
        4 => RequestKind::Disconnect {
            target: target(&map)?,
            close: map.get("close").and_then(Value::as_bool) == Some(true),
        },
        5 => RequestKind::Fetch {
            opts: opts_from_value(
                map.get("opts")
                    .ok_or(ProtocolError::Malformed("a fetch without opts"))?,
                false,
            )?,
        },
        6 => match map.remove("data") {
            Some(Value::Array(data)) if !data.is_empty() => RequestKind::ServerSideEmit { data },
            _ => {
                return Err(ProtocolError::Malformed(
                    "a server-side emit without an event",
                ));
            }
        },
        7 => {
            let packet = map
                .remove("packet")
                .ok_or(ProtocolError::Malformed("a broadcast without a packet"))?;
            let opts = map
                .get("opts")
                .ok_or(ProtocolError::Malformed("a broadcast without opts"))?;
            if request_id.is_none() {
                return Err(ProtocolError::Malformed(
                    "a broadcast with acks without an id",
                ));
            }
            RequestKind::BroadcastWithAck {
                packet: packet_from_value(packet, Some(nsp))?,
                opts: opts_from_value(opts, true)?,
            }
        }
        other => return Err(ProtocolError::UnknownType(other)),
    };
    Ok(Request {
        uid,
        request_id,
        kind,
    })
}

/// A JSON object writer for the requests and responses Node sends with `JSON.stringify`.
struct JsonObject(String);

impl JsonObject {
    fn new() -> JsonObject {
        JsonObject(String::from("{"))
    }

    fn key(&mut self, key: &str) -> &mut String {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        json::write_str(&mut self.0, key);
        self.0.push(':');
        &mut self.0
    }

    fn str(mut self, key: &str, value: &str) -> Self {
        json::write_str(self.key(key), value);
        self
    }

    fn opt_str(self, key: &str, value: Option<&str>) -> Self {
        match value {
            Some(v) => self.str(key, v),
            None => self,
        }
    }

    fn raw(mut self, key: &str, value: &str) -> Self {
        self.key(key).push_str(value);
        self
    }

    fn value(mut self, key: &str, value: &Value) -> Self {
        json::write(self.key(key), value);
        self
    }

    fn rooms(mut self, key: &str, rooms: &[Room]) -> Self {
        let out = self.key(key);
        out.push('[');
        for (i, room) in rooms.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            json::write_str(out, room);
        }
        out.push(']');
        self
    }

    fn selector(self, key: &str, opts: &BroadcastOptions) -> Self {
        let inner = JsonObject::new()
            .rooms("rooms", &opts.rooms)
            .rooms("except", &opts.except)
            .finish();
        self.raw(key, &inner)
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `{uid, requestId, type: 1}`.
pub fn encode_all_rooms_request(uid: &str, request_id: &str) -> String {
    JsonObject::new()
        .str("uid", uid)
        .str("requestId", request_id)
        .raw("type", "1")
        .finish()
}

/// `{uid, requestId, type: 5, opts: {rooms, except}}`.
pub fn encode_fetch_request(uid: &str, request_id: &str, opts: &BroadcastOptions) -> String {
    JsonObject::new()
        .str("uid", uid)
        .str("requestId", request_id)
        .raw("type", "5")
        .selector("opts", opts)
        .finish()
}

/// `{uid?, type: 2|3, opts: {rooms, except}, rooms}`; emitters send no uid.
pub fn encode_rooms_request(
    uid: Option<&str>,
    join: bool,
    opts: &BroadcastOptions,
    rooms: &[Room],
) -> String {
    let kind = if join {
        RequestType::RemoteJoin
    } else {
        RequestType::RemoteLeave
    };
    JsonObject::new()
        .opt_str("uid", uid)
        .raw("type", &(kind as u8).to_string())
        .selector("opts", opts)
        .rooms("rooms", rooms)
        .finish()
}

/// `{uid?, type: 4, opts: {rooms, except}, close}`; emitters send no uid.
pub fn encode_disconnect_request(
    uid: Option<&str>,
    opts: &BroadcastOptions,
    close: bool,
) -> String {
    JsonObject::new()
        .opt_str("uid", uid)
        .raw("type", "4")
        .selector("opts", opts)
        .raw("close", if close { "true" } else { "false" })
        .finish()
}

/// `{uid, requestId?, type: 6, data}`: an id asks every other node for one acknowledgement.
pub fn encode_server_side_emit(uid: &str, request_id: Option<&str>, data: &[Value]) -> String {
    let mut array = String::from("[");
    for (i, v) in data.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        json::write(&mut array, v);
    }
    array.push(']');
    JsonObject::new()
        .str("uid", uid)
        .opt_str("requestId", request_id)
        .raw("type", "6")
        .raw("data", &array)
        .finish()
}

/// The msgpack `{uid, requestId, type: 7, packet, opts: {rooms, except, flags}}`.
pub fn encode_broadcast_with_ack_request(
    uid: &str,
    request_id: &str,
    packet: &Packet,
    opts: &BroadcastOptions,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(64);
    notepack::write_map_len(&mut out, 5)?;
    notepack::write_str(&mut out, "uid")?;
    notepack::write_str(&mut out, uid)?;
    notepack::write_str(&mut out, "requestId")?;
    notepack::write_str(&mut out, request_id)?;
    notepack::write_str(&mut out, "type")?;
    notepack::write_int(&mut out, RequestType::Broadcast as i64);
    notepack::write_str(&mut out, "packet")?;
    write_packet(&mut out, packet)?;
    notepack::write_str(&mut out, "opts")?;
    write_opts(&mut out, opts, Sender::Adapter)?;
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Responses

/// `{requestId, sockets: [ids]}` (legacy SOCKETS).
pub fn encode_sockets_response(request_id: &str, sids: &[Sid]) -> String {
    let rooms: Vec<Room> = sids.iter().map(|s| Arc::from(s.as_str())).collect();
    JsonObject::new()
        .str("requestId", request_id)
        .rooms("sockets", &rooms)
        .finish()
}

/// `{requestId, rooms}`.
pub fn encode_all_rooms_response(request_id: &str, rooms: &[Room]) -> String {
    JsonObject::new()
        .str("requestId", request_id)
        .rooms("rooms", rooms)
        .finish()
}

/// `{requestId}`: the reply to a legacy join, leave or disconnect of one socket.
pub fn encode_done_response(request_id: &str) -> String {
    JsonObject::new().str("requestId", request_id).finish()
}

/// `{requestId, sockets: [{id, handshake, rooms, data}]}`.
pub fn encode_fetch_response(request_id: &str, sockets: &[RemoteSocket]) -> String {
    let mut array = String::from("[");
    for (i, s) in sockets.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(
            &JsonObject::new()
                .str("id", s.id.as_str())
                .value("handshake", &s.handshake)
                .rooms("rooms", &s.rooms)
                .value("data", &s.data)
                .finish(),
        );
    }
    array.push(']');
    JsonObject::new()
        .str("requestId", request_id)
        .raw("sockets", &array)
        .finish()
}

/// `{type: 6, requestId, data}`: one node's acknowledgement of a server-side emit.
pub fn encode_server_side_emit_response(request_id: &str, data: &Value) -> String {
    JsonObject::new()
        .raw("type", "6")
        .str("requestId", request_id)
        .value("data", data)
        .finish()
}

/// `{type: 8, requestId, clientCount}`.
pub fn encode_client_count_response(request_id: &str, count: usize) -> String {
    JsonObject::new()
        .raw("type", "8")
        .str("requestId", request_id)
        .raw("clientCount", &count.to_string())
        .finish()
}

/// The msgpack `{type: 9, requestId, packet}`; Node passes on the first argument of a client's
/// acknowledgement only, and leaves the key out when there is none.
pub fn encode_ack_response(
    request_id: &str,
    first_arg: Option<&Value>,
) -> Result<Vec<u8>, ProtocolError> {
    let mut out = Vec::with_capacity(32);
    notepack::write_map_len(&mut out, 2 + usize::from(first_arg.is_some()))?;
    notepack::write_str(&mut out, "type")?;
    notepack::write_int(&mut out, RequestType::BroadcastAck as i64);
    notepack::write_str(&mut out, "requestId")?;
    notepack::write_str(&mut out, request_id)?;
    if let Some(arg) = first_arg {
        notepack::write_str(&mut out, "packet")?;
        notepack::write_value(&mut out, arg, 1)?;
    }
    Ok(out)
}

/// A response: its request id and the rest of the object, read according to the request it
/// answers (the protocol's responses do not all say what they are).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The id of the request it answers.
    pub request_id: String,
    /// The other fields.
    pub body: Map,
}

impl Response {
    /// The `type` field, present on server-side emit and broadcast-with-ack responses.
    pub fn kind(&self) -> Option<i64> {
        self.body.get("type").and_then(Value::as_i64)
    }

    /// `rooms` of an all-rooms response.
    pub fn rooms(&self) -> Option<Vec<Room>> {
        match self.body.get("rooms") {
            Some(Value::Array(items)) => Some(items.iter().filter_map(room_from_value).collect()),
            _ => None,
        }
    }

    /// `sockets` of a fetch response; a socket whose id is not a Socket.IO id is skipped.
    pub fn sockets(&self) -> Option<Vec<RemoteSocket>> {
        let Some(Value::Array(items)) = self.body.get("sockets") else {
            return None;
        };
        Some(
            items
                .iter()
                .filter_map(|s| {
                    let id = Sid::parse(s.get("id")?.as_str()?)?;
                    Some(RemoteSocket {
                        id,
                        handshake: s.get("handshake").cloned().unwrap_or_default(),
                        rooms: rooms_from_value(s.get("rooms")).unwrap_or_default(),
                        data: s.get("data").cloned().unwrap_or_default(),
                    })
                })
                .collect(),
        )
    }

    /// `clientCount` of a type 8 response.
    pub fn client_count(&self) -> Option<usize> {
        self.body
            .get("clientCount")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
    }
}

/// Decodes a response (JSON or msgpack by the first byte).
pub fn decode_response(data: &Bytes) -> Result<Response, ProtocolError> {
    let Value::Map(mut body) = decode_any(data)? else {
        return Err(ProtocolError::Malformed("a response is not an object"));
    };
    match body.remove("requestId") {
        Some(Value::Str(request_id)) => Ok(Response { request_id, body }),
        _ => Err(ProtocolError::Malformed("a response without a request id")),
    }
}
