//! The sharded subscriptions on a Redis Cluster: each channel is subscribed (SSUBSCRIBE) on
//! the master of its slot, over one RESP3 connection per master that this task opens and
//! owns itself.
//!
//! The redis crate's cluster connection could route the SSUBSCRIBEs too, but around a node
//! restart it may answer one on a connection it then replaces, so that the subscription is
//! gone while the caller was told it worked. Here the connection a channel was confirmed on
//! is the one that stays: when it drops, or its node drops one of our channels (Redis does
//! when the channel's slot moves to another node), the channels concerned are marked lost,
//! the sharded side reports itself down, and they are subscribed again where the cluster's
//! slot table (`CLUSTER SLOTS`, asked anew after every loss or failure) says, with backoff,
//! until every one is confirmed.

use crate::stats::RedisCounters;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use futures_util::stream;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::Notify;

use crate::config::RedisConfig;
use crate::connection::{Shared, Topic, dispatch};

/// SSUBSCRIBEs in flight at once while restoring.
const CONCURRENCY: usize = 32;

/// Number of slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// What the node connections report from their readers, for the task to act on.
#[derive(Default)]
struct Losses {
    /// (connection id, channel): the channel is gone from that connection; no channel: the
    /// connection itself is gone.
    events: Mutex<HashSet<(u64, Option<String>)>>,
    notify: Notify,
}

impl Losses {
    fn report(&self, conn_id: u64, channel: Option<String>) {
        self.events.lock().insert((conn_id, channel));
        self.notify.notify_one();
    }
}

/// One master's connection and the channels it confirmed.
struct NodeSubs {
    id: u64,
    conn: MultiplexedConnection,
    channels: BTreeSet<String>,
}

/// The slot table: ranges of slots and the `host:port` of their master.
#[derive(Default)]
struct SlotTable {
    ranges: Vec<(u16, u16, String)>,
    /// Asked again before the next subscribing: nothing known yet, or something failed.
    stale: bool,
}

impl SlotTable {
    fn owner(&self, slot: u16) -> Option<&str> {
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, addr)| addr.as_str())
    }
}

struct State {
    nodes: HashMap<String, NodeSubs>,
    slots: SlotTable,
    next_id: u64,
}

pub(crate) async fn subscriber_task(
    shared: Arc<Shared>,
    config: RedisConfig,
    commands: ClusterConnection,
) {
    let mut backoff = config.reconnect_min;
    shared.until_shards_wanted().await;
    let losses = Arc::new(Losses::default());
    let mut state = State {
        nodes: HashMap::new(),
        slots: SlotTable {
            ranges: Vec::new(),
            stale: true,
        },
        next_id: 0,
    };
    let mut restored_once = false;
    loop {
        let lost = apply_losses(&losses, &mut state);
        if lost && shared.shard_up.swap(false, Ordering::AcqRel) {
            RedisCounters::bump(&shared.counters.connection_errors);
            tracing::warn!(addr = %shared.address, "a Redis Cluster node dropped sharded subscriptions; local delivery goes on, subscribing again");
        }
        match reconcile(&shared, &config, &commands, &losses, &mut state).await {
            Ok(()) => {
                if !shared.shard_up.swap(true, Ordering::AcqRel) {
                    if restored_once {
                        RedisCounters::bump(&shared.counters.reconnects);
                        tracing::info!(addr = %shared.address, "sharded subscriptions restored on the Redis Cluster");
                    }
                    restored_once = true;
                }
                backoff = config.reconnect_min;
                tokio::select! {
                    () = losses.notify.notified() => {}
                    () = shared.shard_changed.notified() => {}
                }
            }
            Err(e) => {
                RedisCounters::bump(&shared.counters.connection_errors);
                state.slots.stale = true;
                if shared.shard_up.swap(false, Ordering::AcqRel) {
                    tracing::warn!(addr = %shared.address, error = %e, "sharded subscriptions on the Redis Cluster failed; local delivery goes on, retrying");
                } else {
                    tracing::debug!(addr = %shared.address, error = %e, ?backoff, "sharded subscribing failed; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.reconnect_max);
            }
        }
    }
}

/// Forgets what the node connections reported lost; whether there was anything.
fn apply_losses(losses: &Losses, state: &mut State) -> bool {
    let events: Vec<(u64, Option<String>)> = losses.events.lock().drain().collect();
    let mut lost = false;
    for (id, channel) in events {
        let Some(addr) = state
            .nodes
            .iter()
            .find(|(_, n)| n.id == id)
            .map(|(a, _)| a.clone())
        else {
            // A connection already replaced.
            continue;
        };
        match channel {
            None => {
                state.nodes.remove(&addr);
                lost = true;
            }
            Some(channel) => {
                if let Some(node) = state.nodes.get_mut(&addr) {
                    lost |= node.channels.remove(&channel);
                }
            }
        }
    }
    if lost {
        // Whatever moved or restarted, the table may be out of date.
        state.slots.stale = true;
    }
    lost
}

/// SSUBSCRIBE and SUNSUBSCRIBE until the node connections hold the sharded channels the
/// listeners want, each on the master of its slot.
async fn reconcile(
    shared: &Arc<Shared>,
    config: &RedisConfig,
    commands: &ClusterConnection,
    losses: &Arc<Losses>,
    state: &mut State,
) -> Result<(), redis::RedisError> {
    let (wanted, generation) = shared.wanted(true);
    let wanted: BTreeSet<String> = wanted
        .into_iter()
        .filter_map(|t| match t {
            Topic::Shard(c) => Some(c),
            _ => None,
        })
        .collect();

    // Channels nobody wants any more; a node left with none is let go.
    let mut unsubscribe = Vec::new();
    for (addr, node) in &state.nodes {
        for channel in node.channels.difference(&wanted) {
            unsubscribe.push((addr.clone(), node.conn.clone(), channel.clone()));
        }
    }
    let results: Vec<(String, String, redis::RedisResult<()>)> = stream::iter(unsubscribe)
        .map(|(addr, mut conn, channel)| async move {
            let mut cmd = redis::cmd("SUNSUBSCRIBE");
            cmd.arg(&channel);
            let result = cmd.query_async::<Value>(&mut conn).await.map(|_| ());
            (addr, channel, result)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for (addr, channel, result) in results {
        match result {
            Ok(()) => {
                if let Some(node) = state.nodes.get_mut(&addr) {
                    node.channels.remove(&channel);
                }
            }
            // Closing the connection ends its subscriptions too.
            Err(_) => {
                state.nodes.remove(&addr);
            }
        }
    }
    state.nodes.retain(|_, node| !node.channels.is_empty());

    let active: BTreeSet<&String> = state.nodes.values().flat_map(|n| &n.channels).collect();
    let missing: Vec<String> = wanted
        .iter()
        .filter(|c| !active.contains(c))
        .cloned()
        .collect();
    if !missing.is_empty() {
        if state.slots.stale || state.slots.ranges.is_empty() {
            state.slots.ranges = slot_table(commands, config).await?;
            state.slots.stale = false;
        }
        let mut by_owner: HashMap<String, Vec<String>> = HashMap::new();
        for channel in missing {
            let slot = key_slot(channel.as_bytes());
            let owner = state.slots.owner(slot).ok_or_else(|| {
                redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "no master serves the slot of a sharded channel",
                    format!("slot {slot}"),
                ))
            })?;
            by_owner.entry(owner.to_string()).or_default().push(channel);
        }
        // A master that cannot be reached holds up its own channels only: the others are
        // subscribed meanwhile, and the error is reported once they are.
        let mut first_error = None;
        let mut subscribe = Vec::new();
        for (addr, channels) in by_owner {
            if !state.nodes.contains_key(&addr) {
                let id = state.next_id;
                state.next_id += 1;
                match connect_node(shared, config, losses, &addr, id).await {
                    Ok(conn) => {
                        let channels = BTreeSet::new();
                        state
                            .nodes
                            .insert(addr.clone(), NodeSubs { id, conn, channels });
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                        continue;
                    }
                }
            }
            let conn = state.nodes[&addr].conn.clone();
            subscribe.extend(
                channels
                    .into_iter()
                    .map(|c| (addr.clone(), conn.clone(), c)),
            );
        }
        let results: Vec<(String, String, redis::RedisResult<()>)> = stream::iter(subscribe)
            .map(|(addr, mut conn, channel)| async move {
                let mut cmd = redis::cmd("SSUBSCRIBE");
                cmd.arg(&channel);
                let result = cmd
                    .query_async::<Value>(&mut conn)
                    .await
                    .and_then(Value::extract_error)
                    .map(|_| ());
                (addr, channel, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for (addr, channel, result) in results {
            match result {
                Ok(()) => {
                    if let Some(node) = state.nodes.get_mut(&addr) {
                        node.channels.insert(channel);
                    }
                }
                Err(e) => {
                    if e.is_connection_dropped() || e.is_io_error() {
                        state.nodes.remove(&addr);
                    }
                    first_error.get_or_insert(e);
                }
            }
        }
        // Confirmed channels stay; the others are asked again, with a fresh slot table.
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    shared.shard_applied.send_replace(generation);
    Ok(())
}

/// A RESP3 connection to the master at `addr` whose pushes deliver the sharded messages and
/// report what gets lost.
async fn connect_node(
    shared: &Arc<Shared>,
    config: &RedisConfig,
    losses: &Arc<Losses>,
    addr: &str,
    id: u64,
) -> Result<MultiplexedConnection, redis::RedisError> {
    let (host, port) = split_addr(addr).ok_or_else(|| {
        redis::RedisError::from((
            redis::ErrorKind::Io,
            "a cluster node address is not host:port",
            addr.to_string(),
        ))
    })?;
    let client = config
        .node_client(host, port, ProtocolVersion::RESP3)
        .map_err(|e| redis::RedisError::from((redis::ErrorKind::Io, "", e.to_string())))?;
    let on_push = {
        let shared = Arc::downgrade(shared);
        let losses = Arc::clone(losses);
        move |info: PushInfo| -> Result<(), ()> {
            let Some(shared) = shared.upgrade() else {
                return Err(());
            };
            match info.kind {
                PushKind::SMessage => {
                    if let Some(msg) = redis::Msg::from_push_info(info) {
                        let topic = Topic::Shard(msg.get_channel_name().to_string());
                        dispatch(&shared, topic, &msg);
                    }
                }
                PushKind::Disconnection => losses.report(id, None),
                // Our own SUNSUBSCRIBEs are confirmed this way too, but those channels are no
                // longer wanted by then; a wanted one was dropped by the server.
                PushKind::SUnsubscribe => {
                    if let Some(Value::BulkString(channel)) = info.data.first() {
                        let channel = String::from_utf8_lossy(channel).into_owned();
                        if shared
                            .wanted(true)
                            .0
                            .contains(&Topic::Shard(channel.clone()))
                        {
                            losses.report(id, Some(channel));
                        }
                    }
                }
                _ => {}
            }
            Ok(())
        }
    };
    let connection_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout))
        .set_push_sender(on_push);
    client
        .get_multiplexed_async_connection_with_config(&connection_config)
        .await
}

/// `CLUSTER SLOTS`, asked through the command connection (of any node that answers).
async fn slot_table(
    commands: &ClusterConnection,
    config: &RedisConfig,
) -> Result<Vec<(u16, u16, String)>, redis::RedisError> {
    let mut conn = commands.clone();
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut conn)
        .await?;
    let invalid =
        || redis::RedisError::from((redis::ErrorKind::Parse, "unexpected CLUSTER SLOTS reply"));
    let Value::Array(ranges) = reply else {
        return Err(invalid());
    };
    let mut table = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(parts) = range else {
            return Err(invalid());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            return Err(invalid());
        };
        let host = match master.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(invalid()),
        };
        let Some(Value::Int(port)) = master.get(1) else {
            return Err(invalid());
        };
        // An empty host means the node we asked; `?` an unknown one (Redis 7): both are
        // taken as the seed's host, which is right for the clusters that report them.
        let host = if host.is_empty() || host == "?" {
            config.seed_host()
        } else {
            host
        };
        let (Ok(start), Ok(end), Ok(port)) = (
            u16::try_from(*start),
            u16::try_from(*end),
            u16::try_from(*port),
        ) else {
            return Err(invalid());
        };
        table.push((start, end, format!("{host}:{port}")));
    }
    Ok(table)
}

fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// The cluster slot of a key (or channel): CRC16 (XMODEM) of the key, or of its hash tag
/// (the part between the first `{` and the next `}`, when not empty), modulo 16384.
fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|b| *b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|b| *b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOTS
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // The check value of CRC16/XMODEM, and slots given by `CLUSTER KEYSLOT`.
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_ne!(key_slot(b"foo{}{bar}"), key_slot(b"bar"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }
}
