//! The client's errors.

use std::fmt;
use std::sync::Arc;

use ignis_proto::Value;

/// Why an operation of the client failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The URL cannot be parsed or has no host.
    #[error("invalid URL {0:?}")]
    InvalidUrl(String),
    /// `https`/`wss` (TLS is not built in) or another scheme.
    #[error("unsupported URL scheme {0:?} (use http, https, ws or wss)")]
    UnsupportedScheme(String),
    /// A header name or value the HTTP layer refuses.
    #[error("invalid header {0:?}")]
    InvalidHeader(String),
    /// The auth payload does not serialise to an object.
    #[error("the auth payload must be an object")]
    InvalidAuth,
    /// A namespace that does not start with `/` or holds a comma.
    #[error("invalid namespace {0:?}")]
    InvalidNamespace(String),
    /// The event name is reserved by Socket.IO (`connect`, `disconnect`, ...).
    #[error("{0:?} is a reserved event name")]
    ReservedEvent(String),
    /// The data cannot be turned into a [`Value`].
    #[error("the data cannot be serialised: {0}")]
    Value(Arc<ignis_proto::value::ValueError>),
    /// The packet cannot be encoded.
    #[error("the packet cannot be encoded: {0}")]
    Encode(Arc<ignis_proto::socketio::EncodeError>),
    /// The connection's outbound queue is full: the transport does not keep up.
    #[error("outbound queue full ({0} messages)")]
    QueueFull(usize),
    /// The socket is not connected and its buffer of packets to send once connected is full.
    #[error("send buffer full ({0} packets)")]
    BufferFull(usize),
    /// The socket is not connected (an acknowledgement cannot be buffered).
    #[error("the socket is not connected")]
    NotConnected,
    /// Connecting to the namespace failed.
    #[error("connection failed: {0}")]
    Connect(#[from] ConnectError),
    /// The TLS options cannot be used (a CA file without a certificate, say).
    #[error("TLS: {0}")]
    Tls(String),
}

impl From<ignis_proto::value::ValueError> for Error {
    fn from(err: ignis_proto::value::ValueError) -> Self {
        Error::Value(Arc::new(err))
    }
}

impl From<ignis_proto::socketio::EncodeError> for Error {
    fn from(err: ignis_proto::socketio::EncodeError) -> Self {
        Error::Encode(Arc::new(err))
    }
}

/// Why a socket could not connect to its namespace (the `connect_error` of socket.io-client).
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectError {
    /// The server refused: a middleware's error, or an unknown namespace. `data` is the
    /// middleware's extra data, when it gave some.
    #[error("refused by the server: {message}")]
    Refused {
        /// The server's message (`Invalid namespace`, or the middleware's).
        message: String,
        /// The middleware's data.
        data: Option<Value>,
    },
    /// The Engine.IO connection could not be opened.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// No answer within the connection timeout.
    #[error("connection timed out")]
    Timeout,
    /// The socket was disconnected or the client shut down before the connection completed.
    #[error("the socket was closed before it connected")]
    Closed,
}

/// Why an Engine.IO connection failed or broke.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// An HTTP request failed below the HTTP status level.
    #[error("HTTP error: {0}")]
    Http(String),
    /// The server answered with an unexpected status. `body` is cut to 512 bytes.
    #[error("unexpected HTTP status {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The WebSocket opening handshake failed.
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),
    /// The server broke the WebSocket protocol.
    #[error("WebSocket protocol error: {0}")]
    WebSocket(#[from] ignis_ws::ProtocolError),
    /// The server sent something that is not Engine.IO.
    #[error("invalid Engine.IO data: {0}")]
    Protocol(String),
    /// A response or message is larger than the configured limit.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The server closed the connection.
    #[error("connection closed by the server")]
    Closed,
    /// The TLS handshake failed: most often the server's certificate is not trusted (signed by
    /// a CA the client does not trust, or for another name).
    #[error("TLS handshake failed {0}")]
    Tls(String),
}

impl From<std::io::Error> for TransportError {
    fn from(err: std::io::Error) -> Self {
        TransportError::Io(Arc::new(err))
    }
}

/// Why an acknowledgement did not come.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AckError {
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The connection was lost after the event was sent; the answer can no longer come.
    #[error("socket has been disconnected")]
    Disconnected,
    /// The event could not be sent.
    #[error(transparent)]
    Emit(#[from] Error),
}

/// Why a socket was disconnected, with the reason strings of socket.io-client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The server disconnected the socket (a DISCONNECT packet). Not reconnected automatically.
    IoServerDisconnect,
    /// [`Socket::disconnect`](crate::Socket::disconnect) or a shutdown. Not reconnected.
    IoClientDisconnect,
    /// The server went silent for `pingInterval + pingTimeout`.
    PingTimeout,
    /// The server closed the connection.
    TransportClose,
    /// The connection failed (I/O error, HTTP error).
    TransportError,
    /// The server sent data that cannot be decoded.
    ParseError,
}

impl DisconnectReason {
    /// socket.io-client's reason string.
    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::IoServerDisconnect => "io server disconnect",
            DisconnectReason::IoClientDisconnect => "io client disconnect",
            DisconnectReason::PingTimeout => "ping timeout",
            DisconnectReason::TransportClose => "transport close",
            DisconnectReason::TransportError => "transport error",
            DisconnectReason::ParseError => "parse error",
        }
    }

    /// Whether the manager reconnects after it (when reconnection is on).
    pub const fn reconnects(self) -> bool {
        !matches!(
            self,
            DisconnectReason::IoServerDisconnect | DisconnectReason::IoClientDisconnect
        )
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
