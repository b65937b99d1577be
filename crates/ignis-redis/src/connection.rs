//! The connection to Redis: one connection that publishes and runs commands, one that
//! subscribes, both restored with backoff when Redis goes away, and a readiness wait that names
//! the address when Redis cannot be reached.
//!
//! Sharded channels (SSUBSCRIBE, Redis 7) have a subscriber connection of their own, opened only
//! once something subscribes to one: the RESP2 subscriber of the redis crate cannot send
//! SSUBSCRIBE, so that one speaks RESP3, where subscriptions are push messages on an ordinary
//! connection, and a Redis older than 6 is still fine for the classic protocol.
//!
//! With a Redis Cluster, commands and publishes go through a cluster connection
//! ([`crate::commands`]). The classic subscriber is one connection to one node, since the
//! cluster forwards every PUBLISH to every node; when that node goes away it moves on to the
//! next seed. Sharded channels live on the master of their slot: their subscriber keeps one
//! RESP3 connection per master ([`crate::shard_cluster`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManagerConfig, MultiplexedConnection, PubSubSink};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind};

use crate::commands::{Commands, Outgoing};
use crate::config::RedisConfig;
use crate::stats::{ConnectionState, RedisCounters, RedisStats};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Why talking to Redis failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisError {
    /// The first connection could not be made within the connect timeout.
    #[error("Redis at {addr} is not reachable after {timeout:?}: {cause}")]
    Unreachable {
        /// The node or nodes tried.
        addr: String,
        /// How long the connection was tried.
        timeout: Duration,
        /// The last error.
        cause: String,
    },
    /// The configuration cannot be used (a bad URL, a bad certificate, no runtime).
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    /// Redis answered a command with an error, or the command could not be sent.
    #[error("Redis command failed: {0}")]
    Command(String),
    /// The connection is being restored; nothing can be sent meanwhile.
    #[error("the connection to Redis is down")]
    Down,
    /// The publish queue ([`RedisConfig::publish_queue`](crate::RedisConfig::publish_queue))
    /// is full.
    #[error("too many messages wait for Redis")]
    QueueFull,
}

/// What a subscription is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Topic {
    // Patterns sort first so that they are active before the request channel, whose
    // subscriber count tells the other nodes that this one is there.
    Pattern(String),
    Channel(String),
    /// A sharded channel (SSUBSCRIBE).
    Shard(String),
}

impl Topic {
    pub(crate) fn is_shard(&self) -> bool {
        matches!(self, Topic::Shard(_))
    }
}

/// Receives the messages of the topics it subscribed to.
pub(crate) trait Listener: Send + Sync {
    /// Runs on the subscriber task: must not block.
    fn on_message(&self, topic: &Topic, channel: &str, payload: Bytes);
}

struct Publish {
    /// SPUBLISH rather than PUBLISH.
    sharded: bool,
    channel: String,
    payload: Vec<u8>,
    done: Option<oneshot::Sender<Result<(), RedisError>>>,
}

#[derive(Default)]
pub(crate) struct Subscriptions {
    listeners: HashMap<Topic, Vec<Weak<dyn Listener>>>,
    /// Bumped at every change, so that a waiter knows when its change reached Redis.
    generation: u64,
}

pub(crate) struct Shared {
    pub(crate) address: String,
    pub(crate) subscriptions: Mutex<Subscriptions>,
    pub(crate) changed: Notify,
    /// The generation the subscriber connection has applied.
    pub(crate) applied: watch::Sender<u64>,
    pub(crate) subscriber_up: AtomicBool,
    pub(crate) publisher_up: AtomicBool,
    /// Signalled once per (re)connection of the subscriber, for the readiness wait.
    pub(crate) connected: watch::Sender<u64>,
    /// The same three for the sharded subscriber, which only connects while some listener
    /// wants a sharded channel.
    pub(crate) shard_changed: Notify,
    pub(crate) shard_applied: watch::Sender<u64>,
    pub(crate) shard_up: AtomicBool,
    pub(crate) shard_wanted: AtomicBool,
    /// Reconnects, errors and requests to other nodes, for monitoring.
    pub(crate) counters: Arc<RedisCounters>,
}

/// Ends the background tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A connection to Redis shared by the adapters of every namespace (and emitters): cheap to
/// clone.
#[derive(Clone)]
pub struct RedisConnection {
    shared: Arc<Shared>,
    commands: Commands,
    queue: mpsc::Sender<Publish>,
    response_timeout: Duration,
    config: Arc<RedisConfig>,
    _tasks: Arc<Tasks>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("addr", &self.shared.address)
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

impl RedisConnection {
    /// Connects both connections, waiting at most `config.connect_timeout`; the error names
    /// the address (the seed nodes, for a cluster).
    pub async fn connect(config: RedisConfig) -> Result<RedisConnection, RedisError> {
        if config.uses_tls() {
            // rustls needs a process-wide provider; another part of the program may have
            // installed one already, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let address = config.address();
        let unreachable = |cause: String| RedisError::Unreachable {
            addr: address.clone(),
            timeout: config.connect_timeout,
            cause,
        };
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let commands = match tokio::time::timeout_at(deadline, connect_commands(&config)).await {
            Ok(Ok(c)) => c,
            Ok(Err(ConnectError::Config(e))) => return Err(e),
            Ok(Err(ConnectError::Redis(e))) => return Err(unreachable(e.to_string())),
            Err(_) => return Err(unreachable("timed out".into())),
        };
        // Refused before any task starts, rather than retried forever.
        config.client(0, ProtocolVersion::RESP2)?;

        let (applied, _) = watch::channel(0);
        let (connected, mut connected_rx) = watch::channel(0);
        let (shard_applied, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            address: address.clone(),
            subscriptions: Mutex::new(Subscriptions::default()),
            changed: Notify::new(),
            applied,
            subscriber_up: AtomicBool::new(false),
            publisher_up: AtomicBool::new(true),
            connected,
            shard_changed: Notify::new(),
            shard_applied,
            shard_up: AtomicBool::new(false),
            shard_wanted: AtomicBool::new(false),
            counters: Arc::default(),
        });
        let (queue, rx) = mpsc::channel(config.publish_queue.max(1));
        let subscriber = tokio::spawn(subscriber_task(Arc::clone(&shared), config.clone()));
        let shard_subscriber = if let Some(cluster) = commands.cluster_connection() {
            tokio::spawn(crate::shard_cluster::subscriber_task(
                Arc::clone(&shared),
                config.clone(),
                cluster,
            ))
        } else {
            tokio::spawn(shard_subscriber_task(Arc::clone(&shared), config.clone()))
        };
        let publisher = tokio::spawn(publisher_task(commands.clone(), Arc::clone(&shared), rx));
        let conn = RedisConnection {
            shared,
            commands,
            queue,
            response_timeout: config.response_timeout,
            config: Arc::new(config.clone()),
            _tasks: Arc::new(Tasks(vec![subscriber, shard_subscriber, publisher])),
        };
        match tokio::time::timeout_at(deadline, connected_rx.wait_for(|n| *n > 0)).await {
            Ok(Ok(_)) => Ok(conn),
            _ => Err(unreachable(
                "the subscriber connection did not come up".into(),
            )),
        }
    }

    /// The address, for messages.
    pub fn address(&self) -> &str {
        &self.shared.address
    }

    /// Whether both connections are up as far as we know (a lost connection is noticed at
    /// its next use, or when the server closes it).
    pub fn is_healthy(&self) -> bool {
        let shared = &self.shared;
        shared.subscriber_up.load(Ordering::Acquire)
            && shared.publisher_up.load(Ordering::Acquire)
            && (shared.shard_up.load(Ordering::Acquire)
                || !shared.shard_wanted.load(Ordering::Acquire))
    }

    /// The connections' state, and what was counted since the connection was made.
    pub fn stats(&self) -> RedisStats {
        let shared = &self.shared;
        let state = ConnectionState {
            subscriber_up: shared.subscriber_up.load(Ordering::Acquire),
            publisher_up: shared.publisher_up.load(Ordering::Acquire),
            sharded_subscriber_up: shared
                .shard_wanted
                .load(Ordering::Acquire)
                .then(|| shared.shard_up.load(Ordering::Acquire)),
        };
        shared.counters.snapshot(state)
    }

    /// Where this connection's adapters count their requests to other nodes.
    pub(crate) fn counters(&self) -> Arc<RedisCounters> {
        Arc::clone(&self.shared.counters)
    }

    /// Queues a publish without waiting. Fails when the queue is full, or when the
    /// connection is known to be down (the message is still queued, and goes out if Redis
    /// comes back in time).
    pub(crate) fn publish_nowait(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), RedisError> {
        self.enqueue_nowait(false, channel, payload)
    }

    /// [`RedisConnection::publish_nowait`] with SPUBLISH.
    pub(crate) fn spublish_nowait(
        &self,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), RedisError> {
        self.enqueue_nowait(true, channel, payload)
    }

    fn enqueue_nowait(
        &self,
        sharded: bool,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), RedisError> {
        self.queue
            .try_send(Publish {
                sharded,
                channel,
                payload,
                done: None,
            })
            .map_err(|_| {
                RedisCounters::bump(&self.shared.counters.publish_queue_full);
                RedisError::QueueFull
            })?;
        if self.is_healthy() {
            Ok(())
        } else {
            Err(RedisError::Down)
        }
    }

    /// Publishes after every message queued before, and waits until Redis took it.
    pub async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), RedisError> {
        self.enqueue(false, channel, payload).await
    }

    /// Publishes on a sharded channel (SPUBLISH, Redis 7) after every message queued before,
    /// and waits until Redis took it.
    pub async fn spublish(&self, channel: String, payload: Vec<u8>) -> Result<(), RedisError> {
        self.enqueue(true, channel, payload).await
    }

    async fn enqueue(
        &self,
        sharded: bool,
        channel: String,
        payload: Vec<u8>,
    ) -> Result<(), RedisError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .try_send(Publish {
                sharded,
                channel,
                payload,
                done: Some(tx),
            })
            .map_err(|_| RedisError::QueueFull)?;
        rx.await.unwrap_or(Err(RedisError::Down))
    }

    /// The configuration this connection was made with, for connections of its own (the
    /// blocking stream reader).
    pub(crate) fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Runs a command on the command connection, within the response timeout.
    pub(crate) async fn query<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let mut commands = self.commands.clone();
        match tokio::time::timeout(self.response_timeout, commands.query(cmd)).await {
            Ok(result) => result.map_err(|e| RedisError::Command(e.to_string())),
            Err(_) => Err(RedisError::Command("timed out".into())),
        }
    }

    /// Runs a pipeline on the command connection (its keys on one slot, in a cluster),
    /// within the response timeout.
    pub(crate) async fn query_pipeline<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, RedisError> {
        let mut commands = self.commands.clone();
        match tokio::time::timeout(self.response_timeout, commands.query_pipeline(pipe)).await {
            Ok(result) => result.map_err(|e| RedisError::Command(e.to_string())),
            Err(_) => Err(RedisError::Command("timed out".into())),
        }
    }

    /// `PUBSUB NUMSUB channel`: how many connections subscribe to it.
    pub async fn numsub(&self, channel: &str) -> Result<usize, RedisError> {
        self.pubsub_count("NUMSUB", channel).await
    }

    /// `PUBSUB SHARDNUMSUB channel`: how many connections subscribe to the sharded channel.
    pub async fn shardnumsub(&self, channel: &str) -> Result<usize, RedisError> {
        self.pubsub_count("SHARDNUMSUB", channel).await
    }

    async fn pubsub_count(&self, which: &str, channel: &str) -> Result<usize, RedisError> {
        let mut commands = self.commands.clone();
        let query = async {
            match commands.pubsub_count(which, channel).await {
                // A count is safe to ask again: once, for a connection to a node that
                // restarted, which the first attempt found broken.
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                    commands.pubsub_count(which, channel).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.response_timeout, query).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Err(RedisError::Command(e.to_string())),
            Err(_) => Err(RedisError::Command(format!("PUBSUB {which} timed out"))),
        }
    }

    /// Routes the messages of `topics` to `listener` too (once, however often it asks).
    pub(crate) fn subscribe(&self, topics: &[Topic], listener: &Weak<dyn Listener>) {
        {
            let mut subs = self.shared.subscriptions.lock();
            for topic in topics {
                let list = subs.listeners.entry(topic.clone()).or_default();
                if !list.iter().any(|l| Weak::ptr_eq(l, listener)) {
                    list.push(Weak::clone(listener));
                }
            }
            subs.generation += 1;
            self.shared.note_shard_wanted(&subs);
        }
        self.shared.notify_changed();
    }

    /// Stops routing `topics` to `listener`; a topic nobody listens to any more is
    /// unsubscribed.
    pub(crate) fn unsubscribe(&self, topics: &[Topic], listener: &Weak<dyn Listener>) {
        {
            let mut subs = self.shared.subscriptions.lock();
            for topic in topics {
                if let Some(list) = subs.listeners.get_mut(topic) {
                    list.retain(|l| !Weak::ptr_eq(l, listener));
                    if list.is_empty() {
                        subs.listeners.remove(topic);
                    }
                }
            }
            subs.generation += 1;
            self.shared.note_shard_wanted(&subs);
        }
        self.shared.notify_changed();
    }

    /// Waits until every subscription made so far is active in Redis.
    pub async fn subscribed(&self) {
        let target = self.shared.subscriptions.lock().generation;
        let mut rx = self.shared.applied.subscribe();
        let _ = rx.wait_for(|g| *g >= target).await;
        let mut rx = self.shared.shard_applied.subscribe();
        let _ = rx.wait_for(|g| *g >= target).await;
    }
}

impl Shared {
    fn note_shard_wanted(&self, subs: &Subscriptions) {
        let wanted = subs.listeners.keys().any(Topic::is_shard);
        self.shard_wanted.store(wanted, Ordering::Release);
    }

    /// Both subscriber tasks look at every change: each marks the generation applied once its
    /// own kind of topic is in line, which is what [`RedisConnection::subscribed`] waits for.
    fn notify_changed(&self) {
        self.changed.notify_one();
        self.shard_changed.notify_one();
    }
}

enum ConnectError {
    Config(RedisError),
    Redis(redis::RedisError),
}

/// The connection for commands and publishes.
async fn connect_commands(config: &RedisConfig) -> Result<Commands, ConnectError> {
    if config.is_cluster() {
        let client = config
            .cluster_builder(ProtocolVersion::RESP2)
            .build()
            .map_err(|e| ConnectError::Config(RedisError::Config(e.to_string())))?;
        let conn = client
            .get_async_connection()
            .await
            .map_err(ConnectError::Redis)?;
        return Ok(Commands::cluster(conn));
    }
    let client = config
        .client(0, ProtocolVersion::RESP2)
        .map_err(ConnectError::Config)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout))
        .set_min_delay(config.reconnect_min)
        .set_max_delay(config.reconnect_max)
        .set_number_of_retries(2);
    let conn = client
        .get_connection_manager_with_config(manager_config)
        .await
        .map_err(ConnectError::Redis)?;
    Ok(Commands::Node(conn))
}

async fn publisher_task(
    mut commands: Commands,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Publish>,
) {
    const BATCH: usize = 64;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let outgoing: Vec<Outgoing<'_>> = batch
            .iter()
            .map(|p| Outgoing {
                sharded: p.sharded,
                channel: &p.channel,
                payload: &p.payload,
            })
            .collect();
        let result = commands.publish(&outgoing).await;
        drop(outgoing);
        let was_up = shared.publisher_up.swap(result.is_ok(), Ordering::AcqRel);
        if result.is_err() {
            RedisCounters::bump(&shared.counters.publish_errors);
        }
        match &result {
            Ok(()) if !was_up => {
                tracing::info!(addr = %shared.address, "publishing to Redis again");
            }
            Err(e) if was_up => {
                tracing::warn!(addr = %shared.address, error = %e, "publishing to Redis failed; messages to other nodes are lost until it is back");
            }
            _ => {}
        }
        for p in batch.drain(..) {
            if let Some(done) = p.done {
                let _ = done.send(
                    result
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| RedisError::Command(e.to_string())),
                );
            }
        }
    }
}

/// Keeps the classic subscriptions on one RESP2 connection. In a cluster any node will do: each
/// failure moves on to the next seed node, so that a dead node does not keep this one away.
async fn subscriber_task(shared: Arc<Shared>, config: RedisConfig) {
    let mut backoff = config.reconnect_min;
    let mut connections: u64 = 0;
    let mut node = 0;
    loop {
        let pubsub = match config.client(node, ProtocolVersion::RESP2) {
            Ok(client) => tokio::time::timeout(config.connect_timeout, client.get_async_pubsub())
                .await
                .map_err(|_| "timed out".to_string())
                .and_then(|r| r.map_err(|e| e.to_string())),
            Err(e) => Err(e.to_string()),
        };
        let (mut sink, mut stream) = match pubsub {
            Ok(p) => p.split(),
            Err(e) => {
                tracing::debug!(addr = %shared.address, node, error = %e, ?backoff, "Redis subscriber connection failed; retrying");
                RedisCounters::bump(&shared.counters.connection_errors);
                node += 1;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.reconnect_max);
                continue;
            }
        };
        let mut active: BTreeSet<Topic> = BTreeSet::new();
        if let Err(e) = reconcile(&shared, &mut sink, &mut active).await {
            tracing::debug!(addr = %shared.address, error = %e, "restoring Redis subscriptions failed; retrying");
            RedisCounters::bump(&shared.counters.connection_errors);
            node += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(config.reconnect_max);
            continue;
        }
        backoff = config.reconnect_min;
        shared.subscriber_up.store(true, Ordering::Release);
        connections += 1;
        if connections > 1 {
            RedisCounters::bump(&shared.counters.reconnects);
            tracing::info!(addr = %shared.address, "reconnected to Redis; subscriptions restored");
        }
        shared.connected.send_replace(connections);
        loop {
            tokio::select! {
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let topic = match msg.get_pattern::<Option<String>>() {
                        Ok(Some(pattern)) => Topic::Pattern(pattern),
                        _ => Topic::Channel(msg.get_channel_name().to_string()),
                    };
                    dispatch(&shared, topic, &msg);
                }
                () = shared.changed.notified() => {
                    if let Err(e) = reconcile(&shared, &mut sink, &mut active).await {
                        tracing::debug!(addr = %shared.address, error = %e, "subscribing failed");
                        break;
                    }
                }
            }
        }
        shared.subscriber_up.store(false, Ordering::Release);
        RedisCounters::bump(&shared.counters.connection_errors);
        tracing::warn!(addr = %shared.address, "lost the Redis subscriber connection; local delivery goes on, reconnecting");
        node += 1;
    }
}

/// Brings the subscriptions of the connection in line with the registered listeners.
async fn reconcile(
    shared: &Shared,
    sink: &mut PubSubSink,
    active: &mut BTreeSet<Topic>,
) -> Result<(), redis::RedisError> {
    let (wanted, generation) = shared.wanted(false);
    for topic in wanted.difference(active) {
        match topic {
            Topic::Channel(c) => sink.subscribe(c).await?,
            Topic::Pattern(p) => sink.psubscribe(p).await?,
            Topic::Shard(_) => {}
        }
    }
    for topic in active.difference(&wanted) {
        match topic {
            Topic::Channel(c) => sink.unsubscribe(c).await?,
            Topic::Pattern(p) => sink.punsubscribe(p).await?,
            Topic::Shard(_) => {}
        }
    }
    *active = wanted;
    shared.applied.send_replace(generation);
    Ok(())
}

impl Shared {
    /// Returns once some listener wants a sharded channel; until then, every change counts as
    /// applied (there is nothing to subscribe to).
    pub(crate) async fn until_shards_wanted(&self) {
        loop {
            let (wanted, generation) = self.wanted(true);
            if !wanted.is_empty() {
                return;
            }
            self.shard_applied.send_replace(generation);
            self.shard_changed.notified().await;
        }
    }

    /// The topics of one kind (sharded or not) some listener wants, and the generation they
    /// are of.
    pub(crate) fn wanted(&self, sharded: bool) -> (BTreeSet<Topic>, u64) {
        let subs = self.subscriptions.lock();
        let topics = subs
            .listeners
            .keys()
            .filter(|t| t.is_shard() == sharded)
            .cloned()
            .collect();
        (topics, subs.generation)
    }
}

/// Keeps the sharded subscriptions on a RESP3 connection of their own, which it opens only
/// while some listener wants a sharded channel.
async fn shard_subscriber_task(shared: Arc<Shared>, config: RedisConfig) {
    let mut backoff = config.reconnect_min;
    let mut connections: u64 = 0;
    loop {
        shared.until_shards_wanted().await;
        let client = match config.client(0, ProtocolVersion::RESP3) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(addr = %shared.address, error = %e, "cannot make a Redis client for sharded subscriptions");
                return;
            }
        };
        // Messages are dispatched from the connection's reader, as they come: no queue.
        let lost = Arc::new(Notify::new());
        let on_push = {
            let shared = Arc::downgrade(&shared);
            let lost = Arc::clone(&lost);
            move |info: PushInfo| -> Result<(), ()> {
                match info.kind {
                    PushKind::SMessage => {
                        let Some(shared) = shared.upgrade() else {
                            return Err(());
                        };
                        if let Some(msg) = redis::Msg::from_push_info(info) {
                            let topic = Topic::Shard(msg.get_channel_name().to_string());
                            dispatch(&shared, topic, &msg);
                        }
                    }
                    PushKind::Disconnection => lost.notify_one(),
                    _ => {}
                }
                Ok(())
            }
        };
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.response_timeout))
            .set_push_sender(on_push);
        let mut conn = match client
            .get_multiplexed_async_connection_with_config(&connection_config)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(addr = %shared.address, error = %e, ?backoff, "Redis sharded subscriber connection failed; retrying");
                RedisCounters::bump(&shared.counters.connection_errors);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.reconnect_max);
                continue;
            }
        };
        let mut active: BTreeSet<Topic> = BTreeSet::new();
        if let Err(e) = reconcile_shards(&shared, &mut conn, &mut active).await {
            tracing::debug!(addr = %shared.address, error = %e, "restoring sharded subscriptions failed; retrying");
            RedisCounters::bump(&shared.counters.connection_errors);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(config.reconnect_max);
            continue;
        }
        backoff = config.reconnect_min;
        shared.shard_up.store(true, Ordering::Release);
        connections += 1;
        if connections > 1 {
            RedisCounters::bump(&shared.counters.reconnects);
            tracing::info!(addr = %shared.address, "reconnected to Redis; sharded subscriptions restored");
        }
        loop {
            tokio::select! {
                () = lost.notified() => break,
                () = shared.shard_changed.notified() => {
                    if let Err(e) = reconcile_shards(&shared, &mut conn, &mut active).await {
                        tracing::debug!(addr = %shared.address, error = %e, "sharded subscribing failed");
                        break;
                    }
                }
            }
        }
        shared.shard_up.store(false, Ordering::Release);
        RedisCounters::bump(&shared.counters.connection_errors);
        tracing::warn!(addr = %shared.address, "lost the Redis sharded subscriber connection; local delivery goes on, reconnecting");
    }
}

/// SSUBSCRIBE and SUNSUBSCRIBE until the connection has the sharded channels the listeners
/// want. One channel per command: each is answered by one confirmation, and on a cluster the
/// channels of one command must share a slot.
async fn reconcile_shards(
    shared: &Shared,
    conn: &mut MultiplexedConnection,
    active: &mut BTreeSet<Topic>,
) -> Result<(), redis::RedisError> {
    let (wanted, generation) = shared.wanted(true);
    let mut pipe = redis::pipe();
    for topic in wanted.difference(active) {
        if let Topic::Shard(c) = topic {
            pipe.cmd("SSUBSCRIBE").arg(c);
        }
    }
    for topic in active.difference(&wanted) {
        if let Topic::Shard(c) = topic {
            pipe.cmd("SUNSUBSCRIBE").arg(c);
        }
    }
    if !pipe.is_empty() {
        pipe.query_async::<redis::Value>(conn).await?;
    }
    *active = wanted;
    shared.shard_applied.send_replace(generation);
    Ok(())
}

pub(crate) fn dispatch(shared: &Shared, topic: Topic, msg: &redis::Msg) {
    let listeners: Vec<Arc<dyn Listener>> = match shared.subscriptions.lock().listeners.get(&topic)
    {
        Some(list) => list.iter().filter_map(Weak::upgrade).collect(),
        None => return,
    };
    if listeners.is_empty() {
        return;
    }
    let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
    for listener in listeners {
        listener.on_message(&topic, msg.get_channel_name(), payload.clone());
    }
}
