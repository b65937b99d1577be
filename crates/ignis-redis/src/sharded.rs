//! [`ShardedAdapter`]: the protocol of the sharded `@socket.io/redis-adapter` 8.3
//! (`createShardedAdapter`, Redis 7 sharded pub/sub) behind [`ignis_socketio::Adapter`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use ignis_socketio::adapter::BoxFuture;
use ignis_socketio::{Adapter, AdapterError, AdapterFactory, Room};

use crate::cluster::unavailable;
use crate::cluster_core::{Core, CoreLimits, Transport, forward_adapter, protocol_error};
use crate::connection::{Listener, RedisConnection, Topic};
use crate::sharded_protocol::{
    self as wire, Body, Message, ShardedChannels, SubscriptionMode, random_id,
};

/// Options of the sharded adapter, named as in `@socket.io/redis-adapter`.
#[derive(Debug, Clone)]
pub struct ShardedAdapterConfig {
    /// The prefix of every channel (`channelPrefix`), `socket.io` by default.
    pub channel_prefix: String,
    /// `subscriptionMode`; every node of a cluster must use the same.
    pub subscription_mode: SubscriptionMode,
    /// How long `fetch_sockets` waits for the other nodes when the call sets no timeout
    /// (Node's fixed 5 s).
    pub requests_timeout: Duration,
    /// Requests of this node waiting for answers at once; more fail at once.
    pub max_pending_requests: usize,
    /// Server-side-emit handlers and broadcasts with acknowledgements from other nodes
    /// running at once; more are dropped with a warning.
    pub max_remote_tasks: usize,
}

impl Default for ShardedAdapterConfig {
    fn default() -> Self {
        ShardedAdapterConfig {
            channel_prefix: "socket.io".into(),
            subscription_mode: SubscriptionMode::default(),
            requests_timeout: Duration::from_secs(5),
            max_pending_requests: 10_000,
            max_remote_tasks: 1024,
        }
    }
}

/// Creates a [`ShardedAdapter`] for each namespace; give it to
/// [`SocketIoBuilder::adapter`](ignis_socketio::SocketIoBuilder::adapter).
#[derive(Debug, Clone)]
pub struct ShardedAdapterFactory {
    conn: RedisConnection,
    config: ShardedAdapterConfig,
}

impl ShardedAdapterFactory {
    /// A factory of adapters over `conn`, all with `config`.
    pub fn new(conn: RedisConnection, config: ShardedAdapterConfig) -> ShardedAdapterFactory {
        ShardedAdapterFactory { conn, config }
    }
}

impl AdapterFactory for ShardedAdapterFactory {
    fn create(&self, namespace: &str) -> Arc<dyn Adapter> {
        Arc::new(ShardedAdapter::new(
            self.conn.clone(),
            self.config.clone(),
            namespace,
        ))
    }
}

/// The adapter of one namespace.
pub struct ShardedAdapter {
    core: Arc<Core<ShardedTransport>>,
}

impl std::fmt::Debug for ShardedAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedAdapter")
            .field("uid", &self.core.uid)
            .field("nsp", &self.core.nsp)
            .field("mode", &self.core.transport.mode)
            .finish()
    }
}

/// SPUBLISH/SSUBSCRIBE: the namespace's main channel, the node's response channel, and the
/// room channels of the subscription mode.
pub(crate) struct ShardedTransport {
    conn: RedisConnection,
    channels: ShardedChannels,
    response_channel: String,
    mode: SubscriptionMode,
    /// The core as the connection knows it, to (un)subscribe room channels.
    me: Weak<dyn Listener>,
}

impl Transport for ShardedTransport {
    /// The channel and the payload.
    type Encoded = (String, Vec<u8>);

    fn encode(&self, msg: &Message) -> Result<Self::Encoded, AdapterError> {
        let channel = match &msg.body {
            Body::Broadcast {
                opts,
                request_id: None,
                ..
            } => self.channels.broadcast(self.mode, opts, false),
            _ => self.channels.main.clone(),
        };
        let payload = wire::encode(msg).map_err(protocol_error)?;
        Ok((channel, payload))
    }

    fn send(
        &self,
        (channel, payload): Self::Encoded,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let conn = self.conn.clone();
        Box::pin(async move { conn.spublish(channel, payload).await.map_err(unavailable) })
    }

    fn send_nowait(&self, (channel, payload): Self::Encoded) -> Result<(), AdapterError> {
        self.conn
            .spublish_nowait(channel, payload)
            .map_err(unavailable)
    }

    fn respond(&self, requester: &str, msg: &Message) -> Result<(), AdapterError> {
        let payload = wire::encode(msg).map_err(protocol_error)?;
        self.conn
            .spublish_nowait(self.channels.response(requester), payload)
            .map_err(unavailable)
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async move {
            self.conn
                .shardnumsub(&self.channels.main)
                .await
                .map_err(unavailable)
        })
    }

    fn watches_rooms(&self) -> bool {
        self.mode != SubscriptionMode::Static
    }

    // A room channel is subscribed when the room appears on this node and unsubscribed when it
    // goes, as Node's `create-room` and `delete-room` handlers do.
    fn rooms_changed(&self, created: &[(&Room, bool)], deleted: &[(&Room, bool)]) {
        let topics = |rooms: &[(&Room, bool)]| -> Vec<Topic> {
            rooms
                .iter()
                .filter(|(_, public)| self.mode.subscribes_to_room(*public))
                .map(|(room, _)| Topic::Shard(self.channels.room(room)))
                .collect()
        };
        let subscribe = topics(created);
        if !subscribe.is_empty() {
            self.conn.subscribe(&subscribe, &self.me);
        }
        let unsubscribe = topics(deleted);
        if !unsubscribe.is_empty() {
            self.conn.unsubscribe(&unsubscribe, &self.me);
        }
    }
}

impl ShardedAdapter {
    /// The adapter of `nsp`; it subscribes at once (see [`RedisConnection::subscribed`]).
    pub fn new(conn: RedisConnection, config: ShardedAdapterConfig, nsp: &str) -> ShardedAdapter {
        let uid = random_id();
        let channels = ShardedChannels::new(&config.channel_prefix, nsp);
        let response_channel = channels.response(&uid);
        let limits = CoreLimits {
            requests_timeout: config.requests_timeout,
            max_pending_requests: config.max_pending_requests,
            max_remote_tasks: config.max_remote_tasks,
            counters: conn.counters(),
        };
        let core = Core::new(nsp, uid, limits, |me: &Weak<Core<ShardedTransport>>| {
            let me: Weak<dyn Listener> = me.clone();
            ShardedTransport {
                conn,
                channels,
                response_channel,
                mode: config.subscription_mode,
                me,
            }
        });
        let transport = &core.transport;
        transport.conn.subscribe(
            &[
                Topic::Shard(transport.channels.main.clone()),
                Topic::Shard(transport.response_channel.clone()),
            ],
            &transport.me,
        );
        ShardedAdapter { core }
    }

    /// This node's id in the namespace's protocol messages (16 hex characters).
    pub fn uid(&self) -> &str {
        &self.core.uid
    }
}

impl Drop for ShardedAdapter {
    fn drop(&mut self) {
        let transport = &self.core.transport;
        let mut topics = vec![
            Topic::Shard(transport.channels.main.clone()),
            Topic::Shard(transport.response_channel.clone()),
        ];
        let index = self.core.local.index().read();
        topics.extend(
            index
                .rooms()
                .into_iter()
                .map(|room| Topic::Shard(transport.channels.room(&room))),
        );
        drop(index);
        transport.conn.unsubscribe(&topics, &transport.me);
    }
}

impl Listener for Core<ShardedTransport> {
    fn on_message(&self, topic: &Topic, channel: &str, payload: Bytes) {
        if !matches!(topic, Topic::Shard(_)) {
            return;
        }
        let msg = match wire::decode(&payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed message from Redis ignored");
                return;
            }
        };
        // Node hands whatever comes on the response channel to its response handler, without
        // looking at the sender or the namespace.
        if channel == self.transport.response_channel {
            self.on_response(msg.body);
        } else {
            Core::on_message(self, msg, None);
        }
    }
}

forward_adapter!(ShardedAdapter);
