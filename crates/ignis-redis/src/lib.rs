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
//! [`StreamsAdapter`] speaks `@socket.io/redis-streams-adapter` 0.3: broadcasts and
//! cluster-wide joins, leaves and disconnects are entries of one Redis stream, read by every node
//! with `XREAD BLOCK` (from where it stopped, after a reconnection), and requests go over
//! pub/sub. It carries connection state recovery across nodes, Node's included: sessions are kept
//! in Redis in Node's format, and a packet's offset is its stream entry id, so a client that
//! reconnects to another node within `maxDisconnectionDuration` gets its id, rooms, data and
//! every broadcast it missed. Every node of a cluster must use the same protocol.
//!
//! One [`RedisConnection`] per server process holds a publishing and a subscribing connection,
//! restored with backoff when Redis goes away. While Redis is down local delivery goes on, and
//! operations that need the other nodes fail with
//! [`AdapterError::Unavailable`](ignis_socketio::AdapterError::Unavailable).
//!
//! [`RedisConfig`] targets one node ([`RedisConfig::from_url`]) or a Redis Cluster
//! ([`RedisConfig::cluster`], seed node URLs; [`RedisConfig::from_url_list`] takes a
//! comma-separated list and gives either). On a cluster, classic publishes go to any node (the
//! cluster forwards PUBLISH everywhere) and sharded ones to the master of their slot; the classic
//! subscriber is one connection to one node that moves to another seed when its node goes away;
//! sharded subscriptions go to their slot's master and are made again when a node restarts or a
//! slot moves; the server count is summed over the nodes, as Node's adapter does with an ioredis
//! Cluster. TLS (`rediss://`) verifies against webpki-roots or a private CA
//! ([`RedisConfig::tls_ca_pem`]).
//!
//! ```no_run
//! use ignis_redis::{RedisAdapterConfig, RedisAdapterFactory, RedisConfig, RedisConnection};
//! use ignis_socketio::SocketIo;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // One node; "redis://a:7000,redis://b:7000" would be a cluster.
//! let conn = RedisConnection::connect(RedisConfig::from_url_list("redis://127.0.0.1:6379")?).await?;
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

//! The streams adapter, with connection state recovery on:
//!
//! ```no_run
//! use ignis_redis::{RedisConfig, RedisConnection, StreamsAdapterConfig, StreamsAdapterFactory};
//! use ignis_socketio::{RecoveryConfig, SocketIo};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = RedisConnection::connect(RedisConfig::from_url("redis://127.0.0.1:6379")?).await?;
//! let factory = StreamsAdapterFactory::new(conn.clone(), StreamsAdapterConfig::default())?;
//! // Reading from a known entry before taking traffic: nothing broadcast from now on is missed.
//! factory.reading(Duration::from_secs(5)).await;
//! let io = SocketIo::builder()
//!     .adapter(factory)
//!     .connection_state_recovery(RecoveryConfig::default())
//!     .build();
//! conn.subscribed().await;
//! # Ok(())
//! # }
//! ```

mod adapter;
mod cluster;
mod cluster_core;
mod commands;
mod config;
mod connection;
mod emitter;
mod engine;
mod json;
pub use ignis_socketio::proto::notepack;
pub mod protocol;
mod requests;
mod serve;
mod shard_cluster;
mod sharded;
pub mod sharded_protocol;
mod stats;
mod streams;

pub use adapter::{RedisAdapter, RedisAdapterConfig, RedisAdapterFactory};
pub use config::RedisConfig;
pub use connection::{RedisConnection, RedisError};
pub use emitter::{Emitter, EmitterError};
pub use sharded::{ShardedAdapter, ShardedAdapterConfig, ShardedAdapterFactory};
pub use sharded_protocol::SubscriptionMode;
pub use stats::{ConnectionState, LatencySnapshot, REQUEST_LATENCY_BOUNDS, RedisStats};
pub use streams::{StreamsAdapter, StreamsAdapterConfig, StreamsAdapterFactory};

#[cfg(test)]
mod test_util;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_sharded;
