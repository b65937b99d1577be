//! Redis scaling for [`ignis_socketio`], wire-compatible with Node.
//!
//! [`RedisAdapter`] speaks the protocol of `@socket.io/redis-adapter` 8 (the classic, non-sharded
//! one), so Ignis servers and Node servers can share one cluster: broadcasts, rooms,
//! `fetch_sockets`, `sockets_join` / `sockets_leave` / `disconnect_sockets`, server-side
//! events with acknowledgements and broadcasts with acknowledgements reach sockets on every
//! node. [`Emitter`] publishes like `@socket.io/redis-emitter` 5, from any Rust process, to
//! clients of Ignis and Node servers alike; the Node emitter (and its ports to Java, Python,
//! PHP, Go) reaches Ignis servers.
//!
//! One [`RedisConnection`] per server process holds a publishing and a subscribing connection,
//! restored with backoff when Redis goes away. While Redis is down local delivery goes on, and
//! operations that need the other nodes fail with
//! [`AdapterError::Unavailable`](ignis_socketio::AdapterError::Unavailable).
//!
//! ```no_run
//! use ignis_redis::{RedisAdapterConfig, RedisAdapterFactory, RedisConfig, RedisConnection};
//! use ignis_socketio::SocketIo;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = RedisConnection::connect(RedisConfig::from_url("redis://127.0.0.1:6379")?).await?;
//! let io = SocketIo::builder()
//!     .adapter(RedisAdapterFactory::new(conn.clone(), RedisAdapterConfig::default()))
//!     .build();
//! io.ns("/", |socket| async move {
//!     socket.join("news");
//! });
//! // Wait until the namespace listens to the other nodes before taking traffic.
//! conn.subscribed().await;
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:3000").await?;
//! io.serve(listener).await?;
//! # Ok(())
//! # }
//! ```

mod adapter;
mod connection;
mod emitter;
mod json;
pub mod notepack;
pub mod protocol;

pub use adapter::{RedisAdapter, RedisAdapterConfig, RedisAdapterFactory};
pub use connection::{RedisConfig, RedisConnection, RedisError};
pub use emitter::{Emitter, EmitterError};

#[cfg(test)]
mod tests;
