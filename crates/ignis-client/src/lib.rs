//! A Socket.IO v5 client on tokio, and the Ignis client helper built on it.
//!
//! * [`Client::builder`] collects the options of socket.io-client (path, headers, query, auth,
//!   transports, reconnection, parser) and connects a [`Socket`] to a namespace.
//! * A [`Manager`] carries several namespaces over one Engine.IO connection (WebSocket, or
//!   HTTP long-polling upgraded to WebSocket), answers the server's heartbeat, and reconnects
//!   with exponential backoff and jitter. With connection state recovery on the server, the
//!   socket sends its session id and last offset back and [`Socket::recovered`] says whether
//!   the session was restored.
//! * Events arrive through callbacks ([`Socket::on`]): they run on the connection's task, in
//!   order, so they must not block (spawn a task for work that waits). An [`Event`] carries
//!   the arguments as [`Value`]s, typed access with [`Event::data`], and [`Event::ack`] for
//!   events that ask for an acknowledgement.
//! * [`SocketIoClientHelper`] is the Ignis managed client: authentication states and
//!   callbacks, subscriptions, rooms (spec §9). [`constants`] holds the names the Ignis
//!   server and client share.
//!
//! `https://` and `wss://` URLs connect over TLS (rustls), verifying the server against the
//! system's trusted roots, or a CA given with [`TlsOptions`].
//!
//! ```no_run
//! use std::time::Duration;
//! use ignis_client::{Client, Value};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let socket = Client::builder("http://127.0.0.1:3000")
//!     .path("/io")
//!     .auth(serde_json::json!({ "token": "secret" }))
//!     .connect("/")
//!     .await?;
//! socket.on("chat", |event| {
//!     println!("{}: {:?}", event.name, event.args);
//! });
//! socket.emit("chat", &"hello")?;
//! let answer = socket
//!     .emit_with_ack("echo", vec![Value::from(42)], Duration::from_secs(5))
//!     .await?;
//! assert_eq!(answer, vec![Value::from(42)]);
//! socket.disconnect();
//! # Ok(())
//! # }
//! ```

mod backoff;
mod codec;
pub mod constants;
mod engine;
mod error;
mod event;
mod helper;
mod manager;
mod options;
mod socket;
mod tls;

pub use error::{AckError, ConnectError, DisconnectReason, Error, TransportError};
pub use event::Event;
pub use helper::{
    HandlerError, HelperError, HelperOptions, SocketIOClientHelper, SocketIoClientHelper,
    Subscription, SubscriptionId,
};
pub use ignis_proto::{self as proto, Value};
pub use manager::Manager;
pub use options::{Client, ClientBuilder, Parser, Transport};
pub use socket::{HandlerId, Socket};
pub use tls::TlsOptions;
