//! The errors of the Socket.IO layer, all re-exported at the crate root: why an emit
//! ([`EmitError`]), an acknowledgement ([`AckError`], [`BroadcastAckError`]), a join
//! ([`JoinError`]) or an adapter operation ([`AdapterError`]) failed, and the refusal a connect
//! middleware answers with ([`ConnectError`]).

use ignis_proto::Value;

use crate::adapter::RefusedRoom;

/// A middleware's refusal: the client gets `connect_error` with this message and data.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// The message the client sees (`err.message`).
    pub message: String,
    /// Data the client sees beside it (`err.data`).
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message only.
    pub fn new(message: impl Into<String>) -> Self {
        ConnectError {
            message: message.into(),
            data: None,
        }
    }

    /// A refusal with a message and data.
    pub fn with_data(message: impl Into<String>, data: Value) -> Self {
        ConnectError {
            message: message.into(),
            data: Some(data),
        }
    }
}

/// Why an event could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("\"{0}\" is a reserved event name")]
    /// The event name is one the protocol reserves (`connect`, `disconnect`, ...).
    ReservedEvent(String),
    #[error("the socket is disconnected")]
    /// The socket is no longer connected.
    Disconnected,
    #[error("the data cannot be serialised: {0}")]
    /// The data cannot be turned into Socket.IO values.
    Value(#[from] ignis_proto::value::ValueError),
    #[error("the packet cannot be encoded: {0}")]
    /// The packet cannot be encoded (a namespace or a value the parser cannot carry).
    Encode(#[from] ignis_proto::socketio::EncodeError),
    #[error(transparent)]
    /// The adapter could not send the broadcast (to the other nodes).
    Adapter(#[from] AdapterError),
}

/// Why an acknowledgement did not come.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("operation has timed out")]
    /// No answer came within the timeout.
    Timeout,
    #[error("the socket disconnected before answering")]
    /// The socket disconnected before it answered.
    Disconnected,
    #[error(transparent)]
    /// The event could not be sent.
    Emit(EmitError),
}

/// Why an adapter operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdapterError {
    #[error("timed out waiting for the other nodes")]
    /// The other nodes did not answer in time.
    Timeout,
    #[error("the cluster is unreachable: {0}")]
    /// The cluster cannot be reached (the reason given).
    Unavailable(String),
    #[error("{0}")]
    /// Any other failure of the adapter (the reason given).
    Other(String),
}

/// Why [`Socket::try_join`](crate::Socket::try_join) did not join every room asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// More rooms were asked at once than a socket may be in: none was looked at.
    #[error("{asked} rooms asked at once; a socket may be in at most {max} rooms")]
    TooManyRooms {
        /// How many rooms were asked.
        asked: usize,
        /// How many rooms a socket may be in (`SocketLimits::max_rooms_per_socket`).
        max: usize,
    },
    /// These rooms were refused (the others were joined).
    #[error("{} room(s) refused", .0.len())]
    Refused(Vec<RefusedRoom>),
}

/// A broadcast with acknowledgements did not get every answer in time.
#[derive(Debug, Clone, PartialEq)]
pub struct AckTimeout {
    /// The answers that arrived.
    pub answers: Vec<Vec<Value>>,
}

/// Why a broadcast with acknowledgements failed.
#[derive(Debug, thiserror::Error)]
pub enum BroadcastAckError {
    #[error("operation has timed out")]
    /// Not every recipient answered in time; the answers that came are in it.
    Timeout(AckTimeout),
    #[error(transparent)]
    /// The event could not be sent.
    Emit(#[from] EmitError),
    #[error(transparent)]
    /// The adapter failed (the other nodes could not be asked or counted).
    Adapter(#[from] AdapterError),
}
