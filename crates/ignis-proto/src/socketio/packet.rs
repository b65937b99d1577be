//! The Socket.IO packet model shared by both parsers.

use std::fmt;

use crate::value::{CompactString, Map, Value};

/// Event names a peer may not use: they have a meaning of their own on one side or the other.
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Whether `name` is one of [`RESERVED_EVENTS`].
pub fn is_reserved_event(name: &str) -> bool {
    RESERVED_EVENTS.contains(&name)
}

/// The packet type digit on the wire.
///
/// [`BinaryEvent`](PacketType::BinaryEvent) and [`BinaryAck`](PacketType::BinaryAck) exist only
/// on the wire of the default parser: a decoded packet never remembers that it was binary, and an
/// [`PacketKind::Event`] or [`PacketKind::Ack`] holding [`Value::Bytes`] is sent as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PacketType {
    /// Connect to a namespace (client) or accept the connection (server).
    Connect = 0,
    /// Leave a namespace.
    Disconnect = 1,
    /// An event.
    Event = 2,
    /// The answer to an event that asked for one.
    Ack = 3,
    /// The server refused the connection to a namespace.
    ConnectError = 4,
    /// An event with binary attachments.
    BinaryEvent = 5,
    /// An acknowledgement with binary attachments.
    BinaryAck = 6,
}

impl PacketType {
    /// The type for a wire digit (`0..=6`).
    pub fn from_u8(n: u8) -> Option<PacketType> {
        Some(match n {
            0 => PacketType::Connect,
            1 => PacketType::Disconnect,
            2 => PacketType::Event,
            3 => PacketType::Ack,
            4 => PacketType::ConnectError,
            5 => PacketType::BinaryEvent,
            6 => PacketType::BinaryAck,
            _ => return None,
        })
    }
}

/// The name of an event: a string, or (rarely, but the protocol allows it) a number.
///
/// It is kept exactly as it came so that re-encoding a packet gives the same wire form. The
/// invariant (a string, an integer or a finite float) is guaranteed by the constructors.
/// Node's event emitter treats a numeric name like its decimal string, which is what
/// [`Display`](fmt::Display) gives.
#[derive(Clone, Debug, PartialEq)]
pub struct EventName(Value);

impl EventName {
    /// A string event name.
    pub fn new(name: impl Into<String>) -> EventName {
        EventName(Value::Str(name.into()))
    }

    /// The name, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_str()
    }

    /// The name as a value (a string or a number).
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The name as a value (a string or a number).
    pub fn into_value(self) -> Value {
        self.0
    }

    /// Whether the name is one of [`RESERVED_EVENTS`].
    pub fn is_reserved(&self) -> bool {
        self.as_str().is_some_and(is_reserved_event)
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Value::Str(s) => f.write_str(s),
            Value::Int(n) => write!(f, "{n}"),
            Value::UInt(n) => write!(f, "{n}"),
            Value::Float(n) => write!(f, "{n}"),
            other => write!(f, "<{}>", other.kind()),
        }
    }
}

impl From<&str> for EventName {
    fn from(name: &str) -> EventName {
        EventName::new(name)
    }
}

impl From<String> for EventName {
    fn from(name: String) -> EventName {
        EventName::new(name)
    }
}

impl From<i64> for EventName {
    fn from(n: i64) -> EventName {
        EventName(Value::Int(n))
    }
}

impl PartialEq<str> for EventName {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for EventName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

/// Accepts a string, an integer or a finite float; gives the value back otherwise.
impl TryFrom<Value> for EventName {
    type Error = Value;

    fn try_from(value: Value) -> Result<EventName, Value> {
        match value {
            Value::Str(_) | Value::Int(_) | Value::UInt(_) => Ok(EventName(value)),
            Value::Float(n) if n.is_finite() => Ok(EventName(value)),
            other => Err(other),
        }
    }
}

/// A Socket.IO packet: a namespace and what is sent to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// The namespace, `/` for the main one. Kept inline when short, as nearly every namespace
    /// is: decoding a packet costs no allocation for it.
    pub nsp: CompactString,
    /// The packet itself.
    pub kind: PacketKind,
}

/// What a packet carries.
#[derive(Clone, Debug, PartialEq)]
pub enum PacketKind {
    /// From a client: the optional auth payload. From a server: `{sid, pid?}`. Always an object
    /// when present.
    Connect(Option<Value>),
    /// Leave the namespace.
    Disconnect,
    /// An event; `id` asks the receiver for an acknowledgement.
    Event {
        /// The event name (the first element of the array on the wire).
        event: EventName,
        /// The arguments after the name.
        args: Vec<Value>,
        /// The acknowledgement id, if the sender waits for one.
        id: Option<u64>,
    },
    /// The answer to the event with the same id.
    Ack {
        /// The values passed to the acknowledgement callback.
        args: Vec<Value>,
        /// The id of the event being answered.
        id: u64,
    },
    /// The server refused the connection: `{message, data?}` (a bare string from old servers).
    ConnectError(Value),
}

impl Packet {
    /// A CONNECT packet for namespace `nsp`: from a client, `data` is its `auth` payload; from
    /// the server, `{sid}` (or `{sid, pid}` with connection state recovery).
    pub fn connect(nsp: impl Into<CompactString>, data: Option<Value>) -> Packet {
        Packet {
            nsp: nsp.into(),
            kind: PacketKind::Connect(data),
        }
    }

    /// A DISCONNECT packet: leaves namespace `nsp`, either side.
    pub fn disconnect(nsp: impl Into<CompactString>) -> Packet {
        Packet {
            nsp: nsp.into(),
            kind: PacketKind::Disconnect,
        }
    }

    /// An EVENT packet: `event` with `args` on namespace `nsp`; with `id`, the sender expects an
    /// ACK carrying that id.
    pub fn event(
        nsp: impl Into<CompactString>,
        event: impl Into<EventName>,
        args: Vec<Value>,
        id: Option<u64>,
    ) -> Packet {
        Packet {
            nsp: nsp.into(),
            kind: PacketKind::Event {
                event: event.into(),
                args,
                id,
            },
        }
    }

    /// An ACK packet: the answer `args` to the EVENT that carried `id`.
    pub fn ack(nsp: impl Into<CompactString>, id: u64, args: Vec<Value>) -> Packet {
        Packet {
            nsp: nsp.into(),
            kind: PacketKind::Ack { args, id },
        }
    }

    /// A CONNECT_ERROR packet in the v5 form `{"message": ..}`, with `data` when given.
    pub fn connect_error(
        nsp: impl Into<CompactString>,
        message: &str,
        data: Option<Value>,
    ) -> Packet {
        let mut map = Map::with_capacity(2);
        map.insert("message", message);
        if let Some(data) = data {
            map.insert("data", data);
        }
        Packet {
            nsp: nsp.into(),
            kind: PacketKind::ConnectError(Value::Map(map)),
        }
    }

    /// The packet type, never a binary one (binary-ness is decided when encoding).
    pub fn packet_type(&self) -> PacketType {
        match self.kind {
            PacketKind::Connect(_) => PacketType::Connect,
            PacketKind::Disconnect => PacketType::Disconnect,
            PacketKind::Event { .. } => PacketType::Event,
            PacketKind::Ack { .. } => PacketType::Ack,
            PacketKind::ConnectError(_) => PacketType::ConnectError,
        }
    }
}
