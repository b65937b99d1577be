//! A Socket.IO v5 server on top of [`ignis_engine`].
//!
//! Namespaces (static and dynamic) with connect middlewares, events and acknowledgements in both
//! directions, binary payloads, rooms and broadcast operators, an adapter trait whose default
//! keeps everything in memory (a Redis adapter implements it too), and connection state
//! recovery. A tool that watches the server (the admin UI of the `ignis-admin` crate) hears of
//! its sockets and rooms through [`SocketIo::observe`]. Handlers that every socket gets can live in one [`SocketHandlers`] table that
//! the sockets share ([`Socket::attach`]), so that an idle connection costs little memory.
//!
//! A broadcast is queued for its recipients once the task that made it yields, together with
//! the others made meanwhile, and always before anything the server sends to those clients
//! afterwards: an emit, an acknowledgement or a disconnect that follows a broadcast reaches the
//! client after it. Each [`SocketIo`] keeps its own broadcasts: servers in one process do not
//! wait for each other.
//!
//! ```no_run
//! use ignis_socketio::{ConnectError, SocketIo};
//!
//! # async fn run() -> std::io::Result<()> {
//! let io = SocketIo::builder().path("/socket.io/").build();
//! let chat = io.ns("/chat", |socket| async move {
//!     socket.join("lobby");
//!     socket.on("message", |socket, event| async move {
//!         // Everyone in the lobby but the sender.
//!         let _ = socket.to("lobby").emit("message", event.args);
//!     });
//! });
//! chat.use_middleware(|socket| async move {
//!     match socket.handshake().auth.get("token").and_then(|t| t.as_str()) {
//!         Some("secret") => Ok(()),
//!         _ => Err(ConnectError::new("unauthorized")),
//!     }
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! io.serve(listener).await
//! # }
//! ```

pub mod adapter;
mod engine_handler;
mod error;
mod fanout;
mod handler;
mod handshake;
mod io;
mod limits;
mod namespace;
pub mod observer;
mod operators;
mod outbound;
mod recovery;
mod socket;
mod stats;

pub use adapter::{
    Adapter, AdapterFactory, BroadcastFlags, BroadcastOptions, MemoryAdapter, RefusedRoom,
    RemoteSocket, Room, RoomRefusal,
};
/// The per-connection state behind [`IoHandler`]; public only as its `Handler::Data`.
#[doc(hidden)]
pub use engine_handler::ConnectionState;
pub use engine_handler::IoHandler;
pub use error::{
    AckError, AckTimeout, AdapterError, BroadcastAckError, ConnectError, EmitError, JoinError,
};
pub use handler::SocketHandlers;
pub use handshake::{Handshake, iso_timestamp};
pub use ignis_engine::{self as engine, Sid};
pub use ignis_proto::{self as proto, Value};
pub use io::{SocketIo, SocketIoBuilder, SocketIoConfig};
pub use limits::{
    AbuseCounters, DEFAULT_EVENT_RATE, DEFAULT_MAX_EVENT_PAYLOAD, DEFAULT_MAX_ROOMS_PER_SOCKET,
    EventRate, SocketLimits,
};
pub use namespace::Namespace;
pub use observer::SocketObserver;
pub use operators::{DEFAULT_ACK_TIMEOUT, Operators};
pub use outbound::{Args, EncodedArgs, IntoArgs, ParserKind};
pub use recovery::{Recovery, RecoveryConfig, SessionData};
pub use socket::{AckSender, DisconnectReason, Event, IntoRooms, Socket, SocketRef};
pub use stats::IoStats;
