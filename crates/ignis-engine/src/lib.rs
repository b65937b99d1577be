//! An Engine.IO v4 server on tokio and hyper.
//!
//! The engine owns sessions and transports: the handshake, HTTP long-polling, WebSocket, the
//! upgrade from polling to WebSocket, the heartbeat, CORS and the request limits. It knows nothing
//! of namespaces or rooms: the layer above implements [`Handler`] and sees opened sessions, the
//! messages they receive and why they closed.
//!
//! With the `tls` feature, [`Engine::serve_tls_with`] (and any [`Site`] whose `tls` returns a
//! [`ServerTls`]) serves HTTPS and WSS on the same listener and paths, with a certificate that
//! [`ServerTls::reload`] replaces while serving.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ignis_engine::{CloseReason, Engine, EngineConfig, Handler, RequestInfo, Socket};
//! use ignis_proto::engineio::Data;
//!
//! /// Sends every message back to its sender.
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type Data = ();
//!     fn create_data(&self) {}
//!     fn on_open(&self, _socket: &Arc<Socket<()>>, _req: &RequestInfo) {}
//!     fn on_message(&self, socket: &Arc<Socket<()>>, data: Data) {
//!         let _ = socket.send(data);
//!     }
//!     fn on_close(&self, _socket: &Arc<Socket<()>>, _reason: CloseReason) {}
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let engine = Engine::new(EngineConfig::default(), Echo);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! engine.serve(listener).await
//! # }
//! ```

mod abuse;
mod config;
mod engine;
mod error;
mod http;
mod query;
mod session;
mod sid;
mod stats;
mod transport;

pub use abuse::{AbuseCounters, ConnectionGuard, ConnectionPermit};
pub use config::{AllowOrigin, AllowRequest, Cors, EngineConfig, PerMessageDeflate, Transports};
pub use engine::{Engine, Handler, PeerAddr, RequestInfo};
#[cfg(feature = "tls")]
pub use error::TlsError;
pub use error::{BodyTimeout, EngineError, IpRefusal, SendError};
#[cfg(feature = "tls")]
pub use http::ServerTls;
pub use http::{
    HttpLimits, ResponseBody, SESSION_ID_HEADER, Site, TimedBody, serve_http, serve_site,
};
pub use query::{QueryPairs, query_pairs};
pub use session::{CloseReason, Socket, TransportKind};
pub use sid::{Sid, SidMap, SidSet};
pub use stats::EngineStats;

// The write path's building blocks, for the Socket.IO layer of this workspace (its fan-out
// encodes a packet once and writes it to many sessions): not a stable API.
#[doc(hidden)]
pub use error::HeadroomError;
#[doc(hidden)]
pub use session::{DeliveryBatch, Round, SharedMessage, TEXT_HEADROOM, TextMessage};
#[doc(hidden)]
pub use sid::{SidHash, SidHasher};
#[doc(hidden)]
pub use stats::ShardedCounter;
// The accept path's internals, public for the engine's own integration tests.
#[doc(hidden)]
pub use transport::{
    FirstRead, Handoff, LINGER_BYTES, LINGER_IDLE, LINGER_TIME, Rewind, Stream, read_first,
};
