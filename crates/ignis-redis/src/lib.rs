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
//! [`ShardedAdapter`] speaks the other protocol of `@socket.io/redis-adapter` 8.3, the one of
//! `createShardedAdapter` (Redis 7 sharded pub/sub, SSUBSCRIBE/SPUBLISH, with the messages of
//! `socket.io-adapter`'s `ClusterAdapter`), in its three subscription modes; every node of a
//! cluster must use the same protocol and mode. [`Emitter::sharded`] publishes to such a
//! cluster, which no official emitter does. `all_rooms` has no message in that protocol: the
//! sharded adapter gathers the rooms from `fetch_sockets`.
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
//!
//! The sharded protocol, with a room channel per public room as Node's default:
//!
//! ```no_run
//! use ignis_redis::{
//!     Emitter, RedisConfig, RedisConnection, ShardedAdapterConfig, ShardedAdapterFactory,
//!     SubscriptionMode,
//! };
//! use ignis_socketio::SocketIo;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = RedisConnection::connect(RedisConfig::from_url("redis://127.0.0.1:6379")?).await?;
//! let config = ShardedAdapterConfig {
//!     subscription_mode: SubscriptionMode::Dynamic,
//!     ..ShardedAdapterConfig::default()
//! };
//! let io = SocketIo::builder()
//!     .adapter(ShardedAdapterFactory::new(conn.clone(), config))
//!     .build();
//! conn.subscribed().await;
//! // From any process: reaches the clients of Ignis and Node servers on createShardedAdapter.
//! let emitter = Emitter::sharded(conn, "socket.io", SubscriptionMode::Dynamic);
//! emitter.to("news").emit("headline", &"hello")?;
//! # Ok(())
//! # }
//! ```

mod adapter;
mod cluster;
mod connection;
mod emitter;
mod json;
pub use ignis_socketio::proto::notepack;
pub mod protocol;
mod requests;
mod serve;
mod sharded;
pub mod sharded_protocol;

pub use adapter::{RedisAdapter, RedisAdapterConfig, RedisAdapterFactory};
pub use connection::{RedisConfig, RedisConnection, RedisError};
pub use emitter::{Emitter, EmitterError};
pub use sharded::{ShardedAdapter, ShardedAdapterConfig, ShardedAdapterFactory};
pub use sharded_protocol::SubscriptionMode;

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sharded;
