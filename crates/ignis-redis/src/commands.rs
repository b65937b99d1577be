//! The connection that publishes and runs commands: one node's connection manager, or a
//! cluster connection that routes each command to the node it belongs to.
//!
//! In a cluster, PUBLISH reaches the subscribers of every node from any node, so a batch goes
//! to one node in one round trip, and to another when that one fails. SPUBLISH must go to the
//! master of the channel's slot: a batch is split by slot. `PUBSUB NUMSUB` and `SHARDNUMSUB`
//! are asked of every node and summed, as `@socket.io/redis-adapter` does with an ioredis
//! Cluster (a subscriber counts on the node it is connected to only).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use futures_util::future::join_all;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisResult, Value};

/// A message waiting to be published.
pub(crate) struct Outgoing<'a> {
    /// SPUBLISH rather than PUBLISH.
    pub(crate) sharded: bool,
    /// The channel.
    pub(crate) channel: &'a str,
    /// The message.
    pub(crate) payload: &'a [u8],
}

#[derive(Clone)]
pub(crate) enum Commands {
    Node(ConnectionManager),
    Cluster {
        conn: ClusterConnection,
        /// A slot whose master takes the PUBLISH batches; moved when that master fails.
        publish_slot: Arc<AtomicU16>,
    },
}

/// Number of slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// How many masters a PUBLISH batch tries before it fails.
const PUBLISH_ATTEMPTS: usize = 3;

impl Commands {
    pub(crate) fn cluster(conn: ClusterConnection) -> Commands {
        Commands::Cluster {
            conn,
            publish_slot: Arc::new(AtomicU16::new(rand::random_range(0..SLOTS))),
        }
    }

    /// The cluster connection, for a cluster.
    pub(crate) fn cluster_connection(&self) -> Option<ClusterConnection> {
        match self {
            Commands::Node(_) => None,
            Commands::Cluster { conn, .. } => Some(conn.clone()),
        }
    }

    /// Publishes `batch` in order (per channel, in a cluster).
    pub(crate) async fn publish(&mut self, batch: &[Outgoing<'_>]) -> RedisResult<()> {
        match self {
            Commands::Node(conn) => {
                // One pipeline per batch keeps the order and costs one round trip.
                let mut pipe = redis::pipe();
                for p in batch {
                    let command = if p.sharded { "SPUBLISH" } else { "PUBLISH" };
                    pipe.cmd(command).arg(p.channel).arg(p.payload).ignore();
                }
                pipe.query_async::<()>(conn).await
            }
            Commands::Cluster { conn, publish_slot } => {
                let mut classic = redis::pipe();
                let mut sharded: HashMap<Route, redis::Pipeline> = HashMap::new();
                for p in batch {
                    if p.sharded {
                        let route = Route::with_key(p.channel, SlotAddr::Master);
                        sharded
                            .entry(route)
                            .or_default()
                            .cmd("SPUBLISH")
                            .arg(p.channel)
                            .arg(p.payload);
                    } else {
                        classic.cmd("PUBLISH").arg(p.channel).arg(p.payload);
                    }
                }
                let classic = (!classic.is_empty()).then(|| {
                    let conn = conn.clone();
                    publish_anywhere(conn, Arc::clone(publish_slot), classic)
                });
                let sharded = sharded.into_iter().map(|(route, pipe)| {
                    let mut conn = conn.clone();
                    async move {
                        let n = pipe.len();
                        let routing = SingleNodeRoutingInfo::SpecificNode(route);
                        let replies = conn.route_pipeline(pipe, 0, n, routing).await?;
                        no_error(replies)
                    }
                });
                let (classic, sharded) = futures_util::future::join(
                    async move {
                        match classic {
                            Some(f) => f.await,
                            None => Ok(()),
                        }
                    },
                    join_all(sharded),
                )
                .await;
                classic?;
                sharded.into_iter().collect()
            }
        }
    }

    /// Runs one command, routed by its key in a cluster.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> RedisResult<T> {
        match self {
            Commands::Node(conn) => cmd.query_async(conn).await,
            Commands::Cluster { conn, .. } => cmd.query_async(conn).await,
        }
    }

    /// Runs a pipeline whose keys share one slot.
    pub(crate) async fn query_pipeline<T: redis::FromRedisValue>(
        &mut self,
        pipe: &redis::Pipeline,
    ) -> RedisResult<T> {
        match self {
            Commands::Node(conn) => pipe.query_async(conn).await,
            Commands::Cluster { conn, .. } => pipe.query_async(conn).await,
        }
    }

    /// `PUBSUB NUMSUB|SHARDNUMSUB channel`, summed over the nodes of a cluster.
    pub(crate) async fn pubsub_count(&mut self, which: &str, channel: &str) -> RedisResult<usize> {
        let mut cmd = redis::cmd("PUBSUB");
        cmd.arg(which).arg(channel);
        // A map: one node answers `[channel, n]`, a cluster the sum as `{channel: n}`.
        let counts: HashMap<String, usize> = match self {
            Commands::Node(conn) => cmd.query_async(conn).await?,
            Commands::Cluster { conn, .. } => cmd.query_async(conn).await?,
        };
        Ok(counts.get(channel).copied().unwrap_or(0))
    }
}

/// Sends a PUBLISH pipeline to the master of `slot`, or, when that fails, of other slots.
async fn publish_anywhere(
    mut conn: ClusterConnection,
    slot: Arc<AtomicU16>,
    pipe: redis::Pipeline,
) -> RedisResult<()> {
    let n = pipe.len();
    let mut attempt = 0;
    loop {
        let current = slot.load(Ordering::Relaxed);
        let route = Route::new(current, SlotAddr::Master);
        let routing = SingleNodeRoutingInfo::SpecificNode(route);
        match conn.route_pipeline(pipe.clone(), 0, n, routing).await {
            Ok(replies) => return no_error(replies),
            Err(e) => {
                attempt += 1;
                // A node that cannot be reached is worth another one. After a timeout the
                // messages may have gone out, and another node would deliver them twice.
                let unreachable = e.is_connection_refusal() || (e.is_io_error() && !e.is_timeout());
                if !unreachable || attempt >= PUBLISH_ATTEMPTS {
                    return Err(e);
                }
                // The next slot is a third of the ring away: most likely another master.
                let next = (current + SLOTS / 3 + 1) % SLOTS;
                slot.store(next, Ordering::Relaxed);
            }
        }
    }
}

fn no_error(replies: Vec<Value>) -> RedisResult<()> {
    for reply in replies {
        reply.extract_error()?;
    }
    Ok(())
}
