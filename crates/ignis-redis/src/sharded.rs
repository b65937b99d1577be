//! [`ShardedAdapter`]: the protocol of the sharded `@socket.io/redis-adapter` 8.3
//! (`createShardedAdapter`, Redis 7 sharded pub/sub) behind [`ignis_socketio::Adapter`].

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ignis_socketio::adapter::{AckCollector, BoxFuture, RoomIndex};
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::{
    Adapter, AdapterError, AdapterFactory, BroadcastOptions, DEFAULT_ACK_TIMEOUT, MemoryAdapter,
    Namespace, RemoteSocket, Room, Sid, Value,
};
use parking_lot::Mutex;
use tokio::sync::{Semaphore, oneshot};

use crate::connection::{Listener, RedisConnection, RedisError, Topic};
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
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShardedAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedAdapter")
            .field("uid", &self.inner.uid)
            .field("nsp", &self.inner.nsp)
            .field("mode", &self.inner.config.subscription_mode)
            .finish()
    }
}

enum Collected {
    Sockets(Vec<RemoteSocket>),
    Acks(Vec<Value>),
}

struct Pending {
    expected: usize,
    received: usize,
    collected: Collected,
    done: Option<oneshot::Sender<Collected>>,
}

struct AckRequest {
    collector: Weak<dyn AckCollector>,
    until: Instant,
}

struct Inner {
    local: MemoryAdapter,
    uid: String,
    nsp: String,
    channels: ShardedChannels,
    response_channel: String,
    conn: RedisConnection,
    config: ShardedAdapterConfig,
    /// This adapter as the connection knows it, to (un)subscribe room channels.
    me: Weak<dyn Listener>,
    ns: OnceLock<Weak<Namespace>>,
    pending: Mutex<HashMap<String, Pending>>,
    ack_requests: Mutex<HashMap<String, AckRequest>>,
    remote_tasks: Arc<Semaphore>,
}

impl ShardedAdapter {
    /// The adapter of `nsp`; it subscribes at once (see [`RedisConnection::subscribed`]).
    pub fn new(conn: RedisConnection, config: ShardedAdapterConfig, nsp: &str) -> ShardedAdapter {
        let uid = random_id();
        let channels = ShardedChannels::new(&config.channel_prefix, nsp);
        let response_channel = channels.response(&uid);
        let inner = Arc::new_cyclic(|me: &Weak<Inner>| {
            let me: Weak<dyn Listener> = me.clone();
            Inner {
                local: MemoryAdapter::new(),
                uid,
                nsp: nsp.to_string(),
                channels,
                response_channel,
                remote_tasks: Arc::new(Semaphore::new(config.max_remote_tasks.max(1))),
                conn,
                config,
                me,
                ns: OnceLock::new(),
                pending: Mutex::new(HashMap::new()),
                ack_requests: Mutex::new(HashMap::new()),
            }
        });
        inner.conn.subscribe(
            &[
                Topic::Shard(inner.channels.main.clone()),
                Topic::Shard(inner.response_channel.clone()),
            ],
            &inner.me,
        );
        ShardedAdapter { inner }
    }

    /// This node's id in the namespace's protocol messages (16 hex characters).
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }
}

impl Drop for ShardedAdapter {
    fn drop(&mut self) {
        let inner = &self.inner;
        let mut topics = vec![
            Topic::Shard(inner.channels.main.clone()),
            Topic::Shard(inner.response_channel.clone()),
        ];
        let index = inner.local.index().read();
        topics.extend(
            index
                .rooms()
                .into_iter()
                .map(|room| Topic::Shard(inner.channels.room(&room))),
        );
        drop(index);
        inner.conn.unsubscribe(&topics, &inner.me);
    }
}

fn unavailable(e: RedisError) -> AdapterError {
    AdapterError::Unavailable(e.to_string())
}

fn encode_error(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Other(e.to_string())
}

/// Whether `room` is the id of a socket of this node (a private room, in Node's words).
fn is_private(index: &RoomIndex, room: &str) -> bool {
    Sid::parse(room).is_some_and(|sid| !index.socket_rooms(sid).is_empty())
}

/// Whether every target room is the own room of a socket of this node, in which case no other
/// node can have a recipient.
fn only_local_sockets(ns: &Namespace, opts: &BroadcastOptions) -> bool {
    !opts.rooms.is_empty()
        && opts
            .rooms
            .iter()
            .all(|r| Sid::parse(r).is_some_and(|sid| ns.get_socket(sid).is_some()))
}

impl Inner {
    fn ns(&self) -> Option<Arc<Namespace>> {
        self.ns.get().and_then(Weak::upgrade)
    }

    fn message(&self, body: Body) -> Message {
        Message {
            uid: Some(self.uid.clone()),
            nsp: Some(self.nsp.clone()),
            body,
        }
    }

    // Room membership goes through these three, which subscribe to the channel of a room when
    // it appears on this node and unsubscribe when it goes, as Node's `create-room` and
    // `delete-room` handlers do. The subscription changes while the index is locked, so that
    // concurrent joins and leaves reach the connection in the order they happened.

    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        let mode = self.config.subscription_mode;
        let mut index = self.local.index().write();
        let mut created: Vec<&Room> = Vec::new();
        for room in rooms {
            if !index.has_room(room) && !created.contains(&room) {
                created.push(room);
            }
        }
        index.add_all(sid, rooms);
        let topics: Vec<Topic> = created
            .into_iter()
            .filter(|room| mode.subscribes_to_room(!is_private(&index, room)))
            .map(|room| Topic::Shard(self.channels.room(room)))
            .collect();
        if !topics.is_empty() {
            self.conn.subscribe(&topics, &self.me);
        }
    }

    fn del(&self, sid: Sid, room: &str) {
        let mode = self.config.subscription_mode;
        let mut index = self.local.index().write();
        let public = !is_private(&index, room);
        index.del(sid, room);
        if !index.has_room(room) && mode.subscribes_to_room(public) {
            self.conn
                .unsubscribe(&[Topic::Shard(self.channels.room(room))], &self.me);
        }
    }

    fn del_all(&self, sid: Sid) {
        let mode = self.config.subscription_mode;
        let mut index = self.local.index().write();
        let rooms = index.socket_rooms(sid);
        let public: Vec<bool> = rooms.iter().map(|r| !is_private(&index, r)).collect();
        index.del_all(sid);
        let topics: Vec<Topic> = rooms
            .iter()
            .zip(public)
            .filter(|(room, public)| !index.has_room(room) && mode.subscribes_to_room(*public))
            .map(|(room, _)| Topic::Shard(self.channels.room(room)))
            .collect();
        if !topics.is_empty() {
            self.conn.unsubscribe(&topics, &self.me);
        }
    }

    fn join_matching(&self, ns: &Namespace, opts: &BroadcastOptions, rooms: &[Room]) {
        for sid in self.local.local_sockets(opts) {
            if ns.get_socket(sid).is_some() {
                self.add_all(sid, rooms);
            }
        }
    }

    fn leave_matching(&self, ns: &Namespace, opts: &BroadcastOptions, rooms: &[Room]) {
        for sid in self.local.local_sockets(opts) {
            if ns.get_socket(sid).is_some() {
                for room in rooms {
                    self.del(sid, room);
                }
            }
        }
    }

    fn disconnect_matching(&self, ns: &Namespace, opts: &BroadcastOptions, close: bool) {
        for sid in self.local.local_sockets(opts) {
            if let Some(socket) = ns.get_socket(sid) {
                socket.disconnect_with(close);
            }
        }
    }

    async fn publish(&self, channel: String, body: Body) -> Result<(), AdapterError> {
        let payload = wire::encode(&self.message(body)).map_err(encode_error)?;
        self.conn
            .spublish(channel, payload)
            .await
            .map_err(unavailable)
    }

    fn respond(&self, requester: Option<&str>, body: Body) {
        let Some(requester) = requester else { return };
        respond(
            &self.conn,
            &self.channels,
            &self.uid,
            &self.nsp,
            requester,
            body,
        );
    }

    async fn server_count(&self) -> Result<usize, AdapterError> {
        self.conn
            .shardnumsub(&self.channels.main)
            .await
            .map_err(unavailable)
    }

    /// Publishes a request and waits until `expected` answers were collected, or the timeout.
    async fn request(
        &self,
        request_id: String,
        body: Body,
        expected: usize,
        collected: Collected,
        timeout: Duration,
    ) -> Result<Collected, AdapterError> {
        let payload = wire::encode(&self.message(body)).map_err(encode_error)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock();
            if pending.len() >= self.config.max_pending_requests {
                return Err(AdapterError::Other(
                    "too many requests wait for other nodes".into(),
                ));
            }
            pending.insert(
                request_id.clone(),
                Pending {
                    expected,
                    received: 0,
                    collected,
                    done: Some(tx),
                },
            );
        }
        // Removes the entry however this future ends (answered, timed out, dropped).
        struct Forget<'a>(&'a Mutex<HashMap<String, Pending>>, &'a str);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.lock().remove(self.1);
            }
        }
        let _forget = Forget(&self.pending, &request_id);
        self.conn
            .spublish(self.channels.main.clone(), payload)
            .await
            .map_err(unavailable)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(collected)) => Ok(collected),
            Ok(Err(_)) => Err(AdapterError::Other("request abandoned".into())),
            Err(_) => Err(AdapterError::Timeout),
        }
    }

    fn on_raw(&self, channel: &str, payload: &Bytes) {
        let msg = match wire::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed message from Redis ignored");
                return;
            }
        };
        // Node hands whatever comes on the response channel to its response handler, without
        // looking at the sender or the namespace.
        if channel == self.response_channel {
            self.on_response(msg.body);
        } else {
            self.on_message(msg);
        }
    }

    fn on_message(&self, msg: Message) {
        if msg.uid.as_deref() == Some(self.uid.as_str()) || msg.nsp.as_deref() != Some(&self.nsp) {
            return;
        }
        let Some(ns) = self.ns() else { return };
        let requester = msg.uid.as_deref();
        match msg.body {
            Body::Broadcast {
                mut packet,
                opts,
                request_id: None,
            } => {
                packet.nsp = self.nsp.clone();
                let _ = self.local.broadcast(&ns, packet, &opts);
            }
            Body::Broadcast {
                packet,
                opts,
                request_id: Some(id),
            } => self.on_broadcast_with_ack(&ns, packet, opts, id, requester),
            Body::SocketsJoin { opts, rooms } => self.join_matching(&ns, &opts, &rooms),
            Body::SocketsLeave { opts, rooms } => self.leave_matching(&ns, &opts, &rooms),
            Body::DisconnectSockets { opts, close } => self.disconnect_matching(&ns, &opts, close),
            Body::FetchSockets { opts, request_id } => {
                let sockets: Vec<RemoteSocket> = self
                    .local
                    .local_sockets(&opts)
                    .into_iter()
                    .filter_map(|sid| ns.get_socket(sid))
                    .map(|s| s.to_remote())
                    .collect();
                self.respond(
                    requester,
                    Body::FetchSocketsResponse {
                        request_id,
                        sockets,
                    },
                );
            }
            Body::ServerSideEmit { packet, request_id } => {
                self.on_server_side_emit(&ns, packet, request_id, requester);
            }
            // Responses may come on the main channel too; Node reads them as responses.
            body @ (Body::FetchSocketsResponse { .. }
            | Body::ServerSideEmitResponse { .. }
            | Body::BroadcastClientCount { .. }
            | Body::BroadcastAck { .. }) => self.on_response(body),
            // Heartbeats belong to adapters that count nodes by them; this one counts
            // subscribers, as Node's sharded adapter does.
            Body::InitialHeartbeat | Body::Heartbeat | Body::AdapterClose => {}
        }
    }

    fn on_server_side_emit(
        &self,
        ns: &Namespace,
        packet: Vec<Value>,
        request_id: Option<String>,
        requester: Option<&str>,
    ) {
        let Some(handler) = ns.dispatch_server_event(packet) else {
            return;
        };
        let Ok(permit) = Arc::clone(&self.remote_tasks).try_acquire_owned() else {
            tracing::warn!(nsp = %self.nsp, "too many server-side events running; one from another node dropped");
            return;
        };
        let reply = request_id.zip(requester.map(str::to_owned));
        let conn = self.conn.clone();
        let channels = self.channels.clone();
        let uid = self.uid.clone();
        let nsp = self.nsp.clone();
        tokio::spawn(async move {
            let answer = handler.await;
            drop(permit);
            if let (Some((request_id, requester)), Some(answer)) = (reply, answer) {
                let body = Body::ServerSideEmitResponse {
                    request_id,
                    packet: Some(answer),
                };
                respond(&conn, &channels, &uid, &nsp, &requester, body);
            }
        });
    }

    fn on_broadcast_with_ack(
        &self,
        ns: &Namespace,
        mut packet: Packet,
        opts: BroadcastOptions,
        request_id: String,
        requester: Option<&str>,
    ) {
        let Some(requester) = requester else { return };
        let Ok(permit) = Arc::clone(&self.remote_tasks).try_acquire_owned() else {
            tracing::warn!(nsp = %self.nsp, "too many broadcasts with acknowledgements running; one from another node dropped");
            return;
        };
        packet.nsp = self.nsp.clone();
        if let PacketKind::Event { id, .. } = &mut packet.kind {
            *id = Some(ns.next_ack_id());
        }
        let forwarder = Arc::new(AckForwarder {
            conn: self.conn.clone(),
            channels: self.channels.clone(),
            uid: self.uid.clone(),
            nsp: self.nsp.clone(),
            requester: requester.to_string(),
            request_id,
        });
        // The requester listens for `timeout`; sockets hold the forwarder weakly, so keep it
        // alive that long (bounded, whatever the peer asked).
        let keep = opts
            .flags
            .timeout
            .unwrap_or(DEFAULT_ACK_TIMEOUT)
            .min(Duration::from_secs(600));
        let as_dyn: Arc<dyn AckCollector> = forwarder.clone();
        let selection = BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            flags: ignis_socketio::BroadcastFlags {
                volatile: opts.flags.volatile,
                compress: opts.flags.compress,
                ..Default::default()
            },
        };
        self.local
            .broadcast_with_ack_local(ns, packet, &selection, as_dyn);
        tokio::spawn(async move {
            tokio::time::sleep(keep).await;
            drop(forwarder);
            drop(permit);
        });
    }

    fn on_response(&self, body: Body) {
        let Some(request_id) = body.response_to() else {
            return;
        };
        let collector = self
            .ack_requests
            .lock()
            .get(request_id)
            .map(|r| r.collector.clone());
        if let Some(collector) = collector {
            let Some(collector) = collector.upgrade() else {
                return;
            };
            match body {
                Body::BroadcastClientCount { client_count, .. } => {
                    collector.expect(usize::try_from(client_count).unwrap_or(usize::MAX));
                }
                Body::BroadcastAck { packet, .. } => {
                    collector.answer_remote(packet.map_or(Vec::new(), |v| vec![v]));
                }
                _ => {}
            }
            return;
        }
        let request_id = request_id.to_string();
        let mut pending = self.pending.lock();
        let Some(entry) = pending.get_mut(&request_id) else {
            return;
        };
        match (&mut entry.collected, body) {
            (Collected::Sockets(all), Body::FetchSocketsResponse { sockets, .. }) => {
                all.extend(sockets);
            }
            (Collected::Acks(all), Body::ServerSideEmitResponse { packet, .. }) => {
                all.push(packet.unwrap_or_default());
            }
            _ => return,
        }
        entry.received += 1;
        if entry.received >= entry.expected
            && let Some(entry) = pending.remove(&request_id)
            && let Some(done) = entry.done
        {
            let _ = done.send(entry.collected);
        }
    }
}

/// Publishes a response on the requester's response channel, without waiting.
fn respond(
    conn: &RedisConnection,
    channels: &ShardedChannels,
    uid: &str,
    nsp: &str,
    requester: &str,
    body: Body,
) {
    let msg = Message {
        uid: Some(uid.to_string()),
        nsp: Some(nsp.to_string()),
        body,
    };
    let result = wire::encode(&msg)
        .map_err(encode_error)
        .and_then(|payload| {
            conn.spublish_nowait(channels.response(requester), payload)
                .map_err(unavailable)
        });
    if let Err(e) = result {
        tracing::debug!(%nsp, error = %e, "response to another node not sent");
    }
}

impl Listener for Inner {
    fn on_message(&self, topic: &Topic, channel: &str, payload: Bytes) {
        if let Topic::Shard(_) = topic {
            self.on_raw(channel, &payload);
        }
    }
}

/// Answers the node that sent a broadcast with acknowledgements.
struct AckForwarder {
    conn: RedisConnection,
    channels: ShardedChannels,
    uid: String,
    nsp: String,
    requester: String,
    request_id: String,
}

impl AckForwarder {
    fn send(&self, body: Body) {
        respond(
            &self.conn,
            &self.channels,
            &self.uid,
            &self.nsp,
            &self.requester,
            body,
        );
    }
}

impl AckCollector for AckForwarder {
    fn expect(&self, clients: usize) {
        self.send(Body::BroadcastClientCount {
            request_id: self.request_id.clone(),
            client_count: clients as u64,
        });
    }

    fn answer(&self, _sid: Sid, args: Vec<Value>) {
        self.answer_remote(args);
    }

    fn answer_remote(&self, args: Vec<Value>) {
        // Node passes on the first argument of a client's acknowledgement only.
        self.send(Body::BroadcastAck {
            request_id: self.request_id.clone(),
            packet: args.into_iter().next(),
        });
    }
}

impl Adapter for ShardedAdapter {
    fn attach(&self, namespace: Weak<Namespace>) {
        let _ = self.inner.ns.set(namespace);
    }

    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        self.inner.add_all(sid, rooms);
    }

    fn del(&self, sid: Sid, room: &str) {
        self.inner.del(sid, room);
    }

    fn del_all(&self, sid: Sid) {
        self.inner.del_all(sid);
    }

    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.inner.local.socket_rooms(sid)
    }

    fn local_sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.inner.local.local_sockets(opts)
    }

    fn local_rooms(&self) -> Vec<Room> {
        self.inner.local.local_rooms()
    }

    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        let inner = &self.inner;
        let remote = if opts.flags.local || only_local_sockets(ns, opts) {
            None
        } else {
            let channel = inner
                .channels
                .broadcast(inner.config.subscription_mode, opts, false);
            let body = Body::Broadcast {
                packet: packet.clone(),
                opts: opts.clone(),
                request_id: None,
            };
            let payload = wire::encode(&inner.message(body)).map_err(encode_error)?;
            Some((channel, payload))
        };
        inner.local.broadcast(ns, packet, opts)?;
        match remote {
            Some((channel, payload)) => inner
                .conn
                .spublish_nowait(channel, payload)
                .map_err(unavailable),
            None => Ok(()),
        }
    }

    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) -> Result<(), AdapterError> {
        let inner = &self.inner;
        let mut published = Ok(());
        if !opts.flags.local {
            let request_id = random_id();
            let timeout = opts.flags.timeout.unwrap_or(DEFAULT_ACK_TIMEOUT);
            let mut wire_opts = opts.clone();
            wire_opts.flags.timeout = Some(timeout);
            let body = Body::Broadcast {
                packet: packet.clone(),
                opts: wire_opts,
                request_id: Some(request_id.clone()),
            };
            let payload = wire::encode(&inner.message(body)).map_err(encode_error)?;
            {
                let mut acks = inner.ack_requests.lock();
                let now = Instant::now();
                acks.retain(|_, r| r.until > now && r.collector.strong_count() > 0);
                if acks.len() >= inner.config.max_pending_requests {
                    return Err(AdapterError::Other(
                        "too many broadcasts wait for acknowledgements".into(),
                    ));
                }
                acks.insert(
                    request_id,
                    AckRequest {
                        collector: Arc::downgrade(&collector),
                        until: now + timeout,
                    },
                );
            }
            published = inner
                .conn
                .spublish_nowait(inner.channels.main.clone(), payload)
                .map_err(unavailable);
        }
        inner
            .local
            .broadcast_with_ack_local(ns, packet, opts, collector);
        published
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(self.inner.server_count())
    }

    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<Vec<RemoteSocket>, AdapterError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let local = inner.local.fetch_sockets(ns, opts).await?;
            if opts.flags.local {
                return Ok(local);
            }
            let others = inner.server_count().await?.saturating_sub(1);
            if others == 0 {
                return Ok(local);
            }
            let request_id = random_id();
            let body = Body::FetchSockets {
                opts: opts.clone(),
                request_id: request_id.clone(),
            };
            let timeout = opts.flags.timeout.unwrap_or(inner.config.requests_timeout);
            match inner
                .request(request_id, body, others, Collected::Sockets(local), timeout)
                .await?
            {
                Collected::Sockets(all) => Ok(all),
                Collected::Acks(_) => Ok(Vec::new()),
            }
        })
    }

    fn add_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let published = if opts.flags.local {
                Ok(())
            } else {
                let body = Body::SocketsJoin {
                    opts: opts.clone(),
                    rooms: rooms.to_vec(),
                };
                inner.publish(inner.channels.main.clone(), body).await
            };
            inner.join_matching(ns, opts, rooms);
            published
        })
    }

    fn del_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let published = if opts.flags.local {
                Ok(())
            } else {
                let body = Body::SocketsLeave {
                    opts: opts.clone(),
                    rooms: rooms.to_vec(),
                };
                inner.publish(inner.channels.main.clone(), body).await
            };
            inner.leave_matching(ns, opts, rooms);
            published
        })
    }

    fn disconnect_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(async move {
            let inner = &self.inner;
            // Published before the local sockets go, since their rooms select the others.
            let published = if opts.flags.local {
                Ok(())
            } else {
                let body = Body::DisconnectSockets {
                    opts: opts.clone(),
                    close,
                };
                inner.publish(inner.channels.main.clone(), body).await
            };
            inner.disconnect_matching(ns, opts, close);
            published
        })
    }

    /// The protocol has no request for rooms: they are gathered from `fetch_sockets` over the
    /// whole cluster (Node's sharded adapter has no `allRooms` at all).
    fn all_rooms<'a>(
        &'a self,
        ns: &'a Namespace,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move {
            let sockets = self.fetch_sockets(ns, &BroadcastOptions::default()).await?;
            let mut rooms: Vec<Room> = self.inner.local.local_rooms();
            let mut seen: std::collections::HashSet<Room> = rooms.iter().cloned().collect();
            for room in sockets.into_iter().flat_map(|s| s.rooms) {
                if seen.insert(Arc::clone(&room)) {
                    rooms.push(room);
                }
            }
            Ok(rooms)
        })
    }

    fn server_side_emit<'a>(
        &'a self,
        _ns: &'a Namespace,
        args: Vec<Value>,
        ack: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let Some(timeout) = ack else {
                let body = Body::ServerSideEmit {
                    packet: args,
                    request_id: None,
                };
                inner.publish(inner.channels.main.clone(), body).await?;
                return Ok(Vec::new());
            };
            let others = inner.server_count().await?.saturating_sub(1);
            if others == 0 {
                return Ok(Vec::new());
            }
            let request_id = random_id();
            let body = Body::ServerSideEmit {
                packet: args,
                request_id: Some(request_id.clone()),
            };
            match inner
                .request(
                    request_id,
                    body,
                    others,
                    Collected::Acks(Vec::new()),
                    timeout,
                )
                .await?
            {
                Collected::Acks(acks) => Ok(acks),
                Collected::Sockets(_) => Ok(Vec::new()),
            }
        })
    }
}
