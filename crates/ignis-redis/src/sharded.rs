//! [`ShardedAdapter`]: the protocol of the sharded `@socket.io/redis-adapter` 8.3
//! (`createShardedAdapter`, Redis 7 sharded pub/sub) behind [`ignis_socketio::Adapter`].

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use ignis_socketio::adapter::{AckCollector, BoxFuture, RoomIndex};
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{
    Adapter, AdapterError, AdapterFactory, BroadcastOptions, MemoryAdapter, Namespace,
    RemoteSocket, Room, Sid, Value,
};

use crate::cluster::{self, unavailable};
use crate::connection::{Listener, RedisConnection, Topic};
use crate::requests::{AckRequests, Requests};
use crate::serve::{self, AckReply, Membership, RemoteTasks};
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
    pending: Requests<Collected>,
    ack_requests: AckRequests,
    remote_tasks: RemoteTasks,
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
                remote_tasks: RemoteTasks::new(nsp, config.max_remote_tasks),
                pending: Requests::new(config.max_pending_requests),
                ack_requests: AckRequests::new(config.max_pending_requests),
                conn,
                config,
                me,
                ns: OnceLock::new(),
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

fn encode_error(e: impl std::fmt::Display) -> AdapterError {
    AdapterError::Other(e.to_string())
}

/// Whether `room` is the id of a socket of this node (a private room, in Node's words).
fn is_private(index: &RoomIndex, room: &str) -> bool {
    Sid::parse(room).is_some_and(|sid| !index.socket_rooms(sid).is_empty())
}

// Room membership goes through `join`, `leave` and `Inner::del_all`, which subscribe to the
// channel of a room when it appears on this node and unsubscribe when it goes, as Node's
// `create-room` and `delete-room` handlers do. The subscription changes while the index is
// locked, so that concurrent joins and leaves reach the connection in the order they happened.
impl Membership for Inner {
    fn join(&self, sid: Sid, rooms: &[Room]) {
        let mode = self.config.subscription_mode;
        let mut index = self.local.index().write();
        let mut created: Vec<&Room> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for room in rooms {
            if !index.has_room(room) && seen.insert(room) {
                created.push(room);
            }
        }
        index.add_all(sid, rooms);
        let topics: Vec<Topic> = created
            .into_iter()
            // A room the index refused (another socket's id) was not created: no channel.
            .filter(|room| index.has_room(room))
            .filter(|room| mode.subscribes_to_room(!is_private(&index, room)))
            .map(|room| Topic::Shard(self.channels.room(room)))
            .collect();
        if !topics.is_empty() {
            self.conn.subscribe(&topics, &self.me);
        }
    }

    fn leave(&self, sid: Sid, room: &str) {
        let mode = self.config.subscription_mode;
        let mut index = self.local.index().write();
        let public = !is_private(&index, room);
        index.del(sid, room);
        if !index.has_room(room) && mode.subscribes_to_room(public) {
            self.conn
                .unsubscribe(&[Topic::Shard(self.channels.room(room))], &self.me);
        }
    }
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

    /// The third way out of rooms, besides `Membership::leave`.
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

    async fn publish(&self, channel: String, body: Body) -> Result<(), AdapterError> {
        let payload = wire::encode(&self.message(body)).map_err(encode_error)?;
        self.conn
            .spublish(channel, payload)
            .await
            .map_err(unavailable)
    }

    /// Publishes the request `body` makes on the main channel, unless `opts` keep it local.
    async fn publish_unless_local(
        &self,
        opts: &BroadcastOptions,
        body: impl FnOnce() -> Body,
    ) -> Result<(), AdapterError> {
        if opts.flags.local {
            return Ok(());
        }
        self.publish(self.channels.main.clone(), body()).await
    }

    /// `sockets_join` (`join`) or `sockets_leave`: the other nodes first, then the local
    /// sockets, which go on even when the others cannot be told.
    async fn sockets_join_or_leave(
        &self,
        ns: &Namespace,
        opts: &BroadcastOptions,
        rooms: &[Room],
        join: bool,
    ) -> Result<(), AdapterError> {
        let published = self
            .publish_unless_local(opts, || {
                let (opts, rooms) = (opts.clone(), rooms.to_vec());
                if join {
                    Body::SocketsJoin { opts, rooms }
                } else {
                    Body::SocketsLeave { opts, rooms }
                }
            })
            .await;
        serve::join_or_leave_selected(self, &self.local, ns, opts, rooms, join);
        published
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

    /// Asks the other nodes with the request `body` makes of a request id, and collects their
    /// answers into `collected`.
    async fn ask_others(
        &self,
        collected: Collected,
        timeout: Duration,
        body: impl FnOnce(String) -> Body,
    ) -> Result<Collected, AdapterError> {
        let servers = self.server_count().await?;
        self.pending
            .ask_others(servers, collected, timeout, random_id, |request_id| {
                let payload = wire::encode(&self.message(body(request_id.to_string())))
                    .map_err(encode_error)?;
                Ok(async move {
                    self.conn
                        .spublish(self.channels.main.clone(), payload)
                        .await
                        .map_err(unavailable)
                })
            })
            .await
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
                packet.nsp = self.nsp.as_str().into();
                let _ = self.local.broadcast(&ns, packet, &opts);
            }
            Body::Broadcast {
                packet,
                opts,
                request_id: Some(id),
            } => self.on_broadcast_with_ack(&ns, packet, opts, id, requester),
            Body::SocketsJoin { opts, rooms } => {
                serve::join_or_leave_selected(self, &self.local, &ns, &opts, &rooms, true);
            }
            Body::SocketsLeave { opts, rooms } => {
                serve::join_or_leave_selected(self, &self.local, &ns, &opts, &rooms, false);
            }
            Body::DisconnectSockets { opts, close } => {
                serve::disconnect_selected(&self.local, &ns, &opts, close);
            }
            Body::FetchSockets { opts, request_id } => {
                let sockets = serve::fetch_selected(&self.local, &ns, &opts);
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
        let reply = request_id
            .zip(requester.map(str::to_owned))
            .map(|(request_id, requester)| {
                let conn = self.conn.clone();
                let channels = self.channels.clone();
                let uid = self.uid.clone();
                let nsp = self.nsp.clone();
                move |answer: Value| {
                    let body = Body::ServerSideEmitResponse {
                        request_id,
                        packet: Some(answer),
                    };
                    respond(&conn, &channels, &uid, &nsp, &requester, body);
                }
            });
        self.remote_tasks.server_side_emit(ns, packet, reply);
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
        packet.nsp = self.nsp.as_str().into();
        let reply = AckForwarder {
            conn: self.conn.clone(),
            channels: self.channels.clone(),
            uid: self.uid.clone(),
            nsp: self.nsp.clone(),
            requester: requester.to_string(),
            request_id,
        };
        let timeout = opts.flags.timeout;
        let selection = BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            flags: ignis_socketio::BroadcastFlags {
                volatile: opts.flags.volatile,
                compress: opts.flags.compress,
                ..Default::default()
            },
        };
        self.remote_tasks
            .broadcast_with_ack(&self.local, ns, packet, &selection, timeout, reply);
    }

    fn on_response(&self, body: Body) {
        let Some(request_id) = body.response_to() else {
            return;
        };
        if let Some(collector) = self.ack_requests.collector(request_id) {
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
        self.pending
            .answer(&request_id, |collected| match (collected, body) {
                (Collected::Sockets(all), Body::FetchSocketsResponse { sockets, .. }) => {
                    all.extend(sockets);
                    true
                }
                (Collected::Acks(all), Body::ServerSideEmitResponse { packet, .. }) => {
                    all.push(packet.unwrap_or_default());
                    true
                }
                _ => false,
            });
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

impl AckReply for AckForwarder {
    fn client_count(&self, clients: usize) {
        self.send(Body::BroadcastClientCount {
            request_id: self.request_id.clone(),
            client_count: clients as u64,
        });
    }

    fn ack(&self, args: Vec<Value>) {
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
        self.inner.join(sid, rooms);
    }

    fn del(&self, sid: Sid, room: &str) {
        self.inner.leave(sid, room);
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
        cluster::broadcast(
            &inner.local,
            ns,
            packet,
            opts,
            |packet| {
                let channel = inner
                    .channels
                    .broadcast(inner.config.subscription_mode, opts, false);
                let body = Body::Broadcast {
                    packet: packet.clone(),
                    opts: opts.clone(),
                    request_id: None,
                };
                let payload = wire::encode(&inner.message(body)).map_err(encode_error)?;
                Ok((channel, payload))
            },
            |(channel, payload)| {
                inner
                    .conn
                    .spublish_nowait(channel, payload)
                    .map_err(unavailable)
            },
        )
    }

    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) -> Result<(), AdapterError> {
        let inner = &self.inner;
        cluster::broadcast_with_ack(
            &inner.local,
            &inner.ack_requests,
            ns,
            packet,
            opts,
            collector,
            random_id,
            |request_id, packet, wire_opts| {
                let body = Body::Broadcast {
                    packet: packet.clone(),
                    opts: wire_opts,
                    request_id: Some(request_id.to_string()),
                };
                wire::encode(&inner.message(body)).map_err(encode_error)
            },
            |payload| {
                inner
                    .conn
                    .spublish_nowait(inner.channels.main.clone(), payload)
                    .map_err(unavailable)
            },
        )
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
            let timeout = opts.flags.timeout.unwrap_or(inner.config.requests_timeout);
            match inner
                .ask_others(Collected::Sockets(local), timeout, |request_id| {
                    Body::FetchSockets {
                        opts: opts.clone(),
                        request_id,
                    }
                })
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
        Box::pin(self.inner.sockets_join_or_leave(ns, opts, rooms, true))
    }

    fn del_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        Box::pin(self.inner.sockets_join_or_leave(ns, opts, rooms, false))
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
            let published = inner
                .publish_unless_local(opts, || Body::DisconnectSockets {
                    opts: opts.clone(),
                    close,
                })
                .await;
            serve::disconnect_selected(&inner.local, ns, opts, close);
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
            match inner
                .ask_others(Collected::Acks(Vec::new()), timeout, |request_id| {
                    Body::ServerSideEmit {
                        packet: args,
                        request_id: Some(request_id),
                    }
                })
                .await?
            {
                Collected::Acks(acks) => Ok(acks),
                Collected::Sockets(_) => Ok(Vec::new()),
            }
        })
    }
}
