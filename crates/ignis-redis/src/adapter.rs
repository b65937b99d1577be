//! [`RedisAdapter`]: the classic `@socket.io/redis-adapter` 8 protocol behind
//! [`ignis_socketio::Adapter`], so that Ignis and Node servers share one cluster.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use ignis_socketio::adapter::{AckCollector, BoxFuture};
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{
    Adapter, AdapterError, AdapterFactory, BroadcastOptions, MemoryAdapter, Namespace,
    RemoteSocket, Room, Sid, Value,
};
use rand::Rng;

use crate::cluster::{self, unavailable};
use crate::connection::{Listener, RedisConnection, Topic};
use crate::protocol::{self, Channels, Request, RequestKind, Response, Sender, Target};
use crate::requests::{AckRequests, Requests};
use crate::serve::{self, AckReply, Membership, RemoteTasks};

/// Options of the adapter, named as in `@socket.io/redis-adapter`.
#[derive(Debug, Clone)]
pub struct RedisAdapterConfig {
    /// The prefix of every channel (`key`), `socket.io` by default.
    pub key: String,
    /// How long a request to the other nodes waits for their answers (`requestsTimeout`).
    pub requests_timeout: Duration,
    /// Answer on the requester's own response channel rather than the shared one
    /// (`publishOnSpecificResponseChannel`). Every node of a cluster must agree on it.
    pub publish_on_specific_response_channel: bool,
    /// Requests of this node waiting for answers at once; more fail at once.
    pub max_pending_requests: usize,
    /// Server-side-emit handlers and broadcasts with acknowledgements from other nodes
    /// running at once; more are dropped with a warning.
    pub max_remote_tasks: usize,
}

impl Default for RedisAdapterConfig {
    fn default() -> Self {
        RedisAdapterConfig {
            key: "socket.io".into(),
            requests_timeout: Duration::from_secs(5),
            publish_on_specific_response_channel: false,
            max_pending_requests: 10_000,
            max_remote_tasks: 1024,
        }
    }
}

/// Creates a [`RedisAdapter`] for each namespace; give it to
/// [`SocketIoBuilder::adapter`](ignis_socketio::SocketIoBuilder::adapter).
#[derive(Debug, Clone)]
pub struct RedisAdapterFactory {
    conn: RedisConnection,
    config: RedisAdapterConfig,
}

impl RedisAdapterFactory {
    pub fn new(conn: RedisConnection, config: RedisAdapterConfig) -> RedisAdapterFactory {
        RedisAdapterFactory { conn, config }
    }
}

impl AdapterFactory for RedisAdapterFactory {
    fn create(&self, namespace: &str) -> Arc<dyn Adapter> {
        Arc::new(RedisAdapter::new(
            self.conn.clone(),
            self.config.clone(),
            namespace,
        ))
    }
}

/// A 6-character id like Node's `uid2(6)`.
pub(crate) fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// The adapter of one namespace.
pub struct RedisAdapter {
    inner: Arc<Inner>,
    listener: Weak<dyn Listener>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.inner.uid)
            .field("nsp", &self.inner.nsp)
            .finish()
    }
}

/// What a request of this node collects until every node answered.
enum Collected {
    Rooms(Vec<Room>),
    Sockets(Vec<RemoteSocket>),
    Acks(Vec<Value>),
}

struct Inner {
    local: MemoryAdapter,
    uid: String,
    nsp: String,
    channels: Channels,
    conn: RedisConnection,
    config: RedisAdapterConfig,
    ns: OnceLock<Weak<Namespace>>,
    pending: Requests<Collected>,
    ack_requests: AckRequests,
    remote_tasks: RemoteTasks,
    topics: Vec<Topic>,
}

impl RedisAdapter {
    /// The adapter of `nsp`; it subscribes at once (see [`RedisConnection::subscribed`]).
    pub fn new(conn: RedisConnection, config: RedisAdapterConfig, nsp: &str) -> RedisAdapter {
        let uid = random_id();
        let channels = Channels::new(&config.key, nsp);
        let topics = vec![
            Topic::Pattern(channels.broadcast_pattern()),
            Topic::Channel(channels.request.clone()),
            Topic::Channel(channels.response.clone()),
            Topic::Channel(channels.specific_response(&uid)),
        ];
        let inner = Arc::new(Inner {
            local: MemoryAdapter::new(),
            uid,
            nsp: nsp.to_string(),
            channels,
            remote_tasks: RemoteTasks::new(nsp, config.max_remote_tasks),
            pending: Requests::new(config.max_pending_requests, conn.counters()),
            ack_requests: AckRequests::new(config.max_pending_requests),
            conn,
            config,
            ns: OnceLock::new(),
            topics,
        });
        let as_listener: Arc<dyn Listener> = inner.clone();
        let listener = Arc::downgrade(&as_listener);
        inner.conn.subscribe(&inner.topics, &listener);
        RedisAdapter { inner, listener }
    }

    /// This node's id in the namespace's protocol messages.
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }
}

impl Drop for RedisAdapter {
    fn drop(&mut self) {
        self.inner
            .conn
            .unsubscribe(&self.inner.topics, &self.listener);
    }
}

impl Inner {
    fn ns(&self) -> Option<Arc<Namespace>> {
        self.ns.get().and_then(Weak::upgrade)
    }

    fn response_channel(&self, requester: Option<&str>) -> String {
        match requester {
            Some(uid) if self.config.publish_on_specific_response_channel => {
                self.channels.specific_response(uid)
            }
            _ => self.channels.response.clone(),
        }
    }

    fn respond(&self, requester: Option<&str>, payload: Vec<u8>) {
        if let Err(e) = self
            .conn
            .publish_nowait(self.response_channel(requester), payload)
        {
            tracing::debug!(nsp = %self.nsp, error = %e, "response to another node not sent");
        }
    }

    /// Asks the other nodes with the request `encode` makes of a request id, and collects
    /// their answers into `collected`.
    async fn ask_others(
        &self,
        collected: Collected,
        timeout: Duration,
        encode: impl FnOnce(&str) -> String,
    ) -> Result<Collected, AdapterError> {
        let servers = self.server_count().await?;
        self.pending
            .ask_others(servers, collected, timeout, random_id, |request_id| {
                Ok(self.publish_request(encode(request_id)))
            })
            .await
    }

    /// `sockets_join` (`join`) or `sockets_leave`: the local sockets first, then the others.
    async fn sockets_join_or_leave(
        &self,
        ns: &Namespace,
        opts: &BroadcastOptions,
        rooms: &[Room],
        join: bool,
    ) -> Result<(), AdapterError> {
        if join {
            self.local.add_sockets(ns, opts, rooms).await?;
        } else {
            self.local.del_sockets(ns, opts, rooms).await?;
        }
        if opts.flags.local {
            return Ok(());
        }
        let body = protocol::encode_rooms_request(Some(&self.uid), join, opts, rooms);
        self.publish_request(body).await
    }

    async fn publish_request(&self, body: String) -> Result<(), AdapterError> {
        self.conn
            .publish(self.channels.request.clone(), body.into_bytes())
            .await
            .map_err(unavailable)
    }

    async fn server_count(&self) -> Result<usize, AdapterError> {
        self.conn
            .numsub(&self.channels.request)
            .await
            .map_err(unavailable)
    }

    fn on_broadcast(&self, channel: &str, payload: &Bytes) {
        let Some(room) = self.channels.room_of(channel) else {
            return;
        };
        // Cheap filter before decoding: a room channel matters only where the room exists.
        if !room.is_empty() && !self.local.index().read().has_room(room) {
            return;
        }
        let msg = match protocol::decode_broadcast(payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed broadcast from Redis ignored");
                return;
            }
        };
        if msg.uid == self.uid || msg.packet.nsp != self.nsp {
            return;
        }
        let Some(ns) = self.ns() else { return };
        let _ = self.local.broadcast(&ns, msg.packet, &msg.opts);
    }

    fn on_request(&self, payload: &Bytes) {
        let request = match protocol::decode_request(payload, &self.nsp) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed request from Redis ignored");
                return;
            }
        };
        let Some(ns) = self.ns() else { return };
        let Request {
            uid,
            request_id,
            kind,
        } = request;
        let own = uid.as_deref() == Some(self.uid.as_str());
        let is_pending =
            |id: &Option<String>| id.as_ref().is_some_and(|id| self.pending.contains(id));
        match kind {
            RequestKind::Sockets { rooms } => {
                let Some(id) = request_id.filter(|_| !own) else {
                    return;
                };
                let opts = BroadcastOptions {
                    rooms,
                    ..Default::default()
                };
                let sids = self.local.local_sockets(&opts);
                let body = protocol::encode_sockets_response(&id, &sids);
                self.respond(uid.as_deref(), body.into_bytes());
            }
            RequestKind::AllRooms => {
                if own || is_pending(&request_id) {
                    return;
                }
                let Some(id) = request_id else { return };
                let body = protocol::encode_all_rooms_response(&id, &self.local.local_rooms());
                self.respond(uid.as_deref(), body.into_bytes());
            }
            // This node applied its own request before publishing it.
            RequestKind::Join { .. } | RequestKind::Leave { .. } if own => {}
            RequestKind::Join { target, rooms } => {
                self.apply_rooms(&ns, target, &rooms, true, uid.as_deref(), request_id);
            }
            RequestKind::Leave { target, rooms } => {
                self.apply_rooms(&ns, target, &rooms, false, uid.as_deref(), request_id);
            }
            RequestKind::Disconnect { .. } if own => {}
            RequestKind::Disconnect { target, close } => match target {
                Target::Matching(opts) => {
                    serve::disconnect_selected(&self.local, &ns, &opts, close)
                }
                Target::Socket(sid) => {
                    let Some(socket) = Sid::parse(&sid).and_then(|s| ns.get_socket(s)) else {
                        return;
                    };
                    socket.disconnect_with(close);
                    if let Some(id) = request_id {
                        let body = protocol::encode_done_response(&id);
                        self.respond(uid.as_deref(), body.into_bytes());
                    }
                }
            },
            RequestKind::Fetch { opts } => {
                if own || is_pending(&request_id) {
                    return;
                }
                let Some(id) = request_id else { return };
                let sockets = serve::fetch_selected(&self.local, &ns, &opts);
                let body = protocol::encode_fetch_response(&id, &sockets);
                self.respond(uid.as_deref(), body.into_bytes());
            }
            RequestKind::ServerSideEmit { data } => {
                if own {
                    return;
                }
                self.on_server_side_emit(&ns, data, request_id);
            }
            RequestKind::BroadcastWithAck { packet, opts } => {
                let Some(id) = request_id else { return };
                if self.ack_requests.contains(&id) {
                    return;
                }
                self.on_broadcast_with_ack(&ns, packet, opts, id, uid);
            }
        }
    }

    fn apply_rooms(
        &self,
        ns: &Namespace,
        target: Target,
        rooms: &[Room],
        join: bool,
        requester: Option<&str>,
        request_id: Option<String>,
    ) {
        match target {
            Target::Matching(opts) => {
                serve::join_or_leave_selected(&self.local, &self.local, ns, &opts, rooms, join);
            }
            Target::Socket(sid) => {
                let Some(sid) = Sid::parse(&sid).filter(|s| ns.get_socket(*s).is_some()) else {
                    return;
                };
                self.local.join_or_leave(sid, rooms, join);
                if let Some(id) = request_id {
                    let body = protocol::encode_done_response(&id);
                    self.respond(requester, body.into_bytes());
                }
            }
        }
    }

    fn on_server_side_emit(&self, ns: &Namespace, data: Vec<Value>, request_id: Option<String>) {
        let reply = request_id.map(|id| {
            let conn = self.conn.clone();
            // Node sends these answers on the shared response channel whatever the option.
            let channel = self.channels.response.clone();
            move |answer: Value| {
                let body = protocol::encode_server_side_emit_response(&id, &answer);
                let _ = conn.publish_nowait(channel, body.into_bytes());
            }
        });
        self.remote_tasks.server_side_emit(ns, data, reply);
    }

    fn on_broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: BroadcastOptions,
        request_id: String,
        requester: Option<String>,
    ) {
        let reply = AckForwarder {
            conn: self.conn.clone(),
            channel: self.response_channel(requester.as_deref()),
            request_id,
        };
        let timeout = opts.flags.timeout;
        let selection = BroadcastOptions {
            rooms: opts.rooms,
            except: opts.except,
            ..Default::default()
        };
        self.remote_tasks
            .broadcast_with_ack(&self.local, ns, packet, &selection, timeout, reply);
    }

    fn on_response(&self, payload: &Bytes) {
        let response = match protocol::decode_response(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed response from Redis ignored");
                return;
            }
        };
        if let Some(collector) = self.ack_requests.collector(&response.request_id) {
            if let Some(collector) = collector.upgrade() {
                on_ack_response(&*collector, &response);
            }
            return;
        }
        self.pending.answer(&response.request_id, |collected| {
            match collected {
                Collected::Rooms(rooms) => {
                    if let Some(more) = response.rooms() {
                        for room in more {
                            if !rooms.contains(&room) {
                                rooms.push(room);
                            }
                        }
                    }
                }
                Collected::Sockets(sockets) => {
                    if let Some(more) = response.sockets() {
                        sockets.extend(more);
                    }
                }
                Collected::Acks(acks) => {
                    acks.push(response.body.get("data").cloned().unwrap_or_default());
                }
            }
            true
        });
    }
}

fn on_ack_response(collector: &dyn AckCollector, response: &Response) {
    match response.kind() {
        Some(8) => {
            if let Some(n) = response.client_count() {
                collector.expect(n);
            }
        }
        Some(9) => {
            let args = response
                .body
                .get("packet")
                .cloned()
                .map_or(Vec::new(), |v| vec![v]);
            collector.answer_remote(args);
        }
        _ => {}
    }
}

impl Listener for Inner {
    fn on_message(&self, topic: &Topic, channel: &str, payload: Bytes) {
        match topic {
            Topic::Pattern(_) => self.on_broadcast(channel, &payload),
            Topic::Channel(c) if *c == self.channels.request => self.on_request(&payload),
            Topic::Channel(_) => self.on_response(&payload),
            Topic::Shard(_) => {}
        }
    }
}

/// Answers the node that sent a broadcast with acknowledgements.
struct AckForwarder {
    conn: RedisConnection,
    channel: String,
    request_id: String,
}

impl AckReply for AckForwarder {
    fn client_count(&self, clients: usize) {
        let body = protocol::encode_client_count_response(&self.request_id, clients);
        let _ = self
            .conn
            .publish_nowait(self.channel.clone(), body.into_bytes());
    }

    fn ack(&self, args: Vec<Value>) {
        match protocol::encode_ack_response(&self.request_id, args.first()) {
            Ok(body) => {
                let _ = self.conn.publish_nowait(self.channel.clone(), body);
            }
            Err(e) => tracing::debug!(error = %e, "acknowledgement cannot be forwarded"),
        }
    }
}

impl Adapter for RedisAdapter {
    fn attach(&self, namespace: Weak<Namespace>) {
        self.inner.local.watch(&namespace);
        let _ = self.inner.ns.set(namespace);
    }

    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        self.inner.local.add_all(sid, rooms);
    }

    fn del(&self, sid: Sid, room: &str) {
        self.inner.local.del(sid, room);
    }

    fn del_all(&self, sid: Sid) {
        self.inner.local.del_all(sid);
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
                protocol::encode_broadcast(&inner.uid, packet, opts, Sender::Adapter)
                    .map_err(|e| AdapterError::Other(e.to_string()))
            },
            |msg| {
                inner
                    .conn
                    .publish_nowait(inner.channels.broadcast_channel(opts), msg)
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
                protocol::encode_broadcast_with_ack_request(
                    &inner.uid, request_id, packet, &wire_opts,
                )
                .map_err(|e| AdapterError::Other(e.to_string()))
            },
            |msg| {
                inner
                    .conn
                    .publish_nowait(inner.channels.request.clone(), msg)
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
            let timeout = inner.config.requests_timeout;
            match inner
                .ask_others(Collected::Sockets(local), timeout, |request_id| {
                    protocol::encode_fetch_request(&inner.uid, request_id, opts)
                })
                .await?
            {
                Collected::Sockets(all) => Ok(all),
                _ => Ok(Vec::new()),
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
            if !opts.flags.local {
                // Published before the local sockets go, since their rooms select the others.
                let body = protocol::encode_disconnect_request(Some(&inner.uid), opts, close);
                inner.publish_request(body).await?;
            }
            inner.local.disconnect_sockets(ns, opts, close).await
        })
    }

    fn all_rooms<'a>(
        &'a self,
        _ns: &'a Namespace,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let local = inner.local.local_rooms();
            let timeout = inner.config.requests_timeout;
            match inner
                .ask_others(Collected::Rooms(local), timeout, |request_id| {
                    protocol::encode_all_rooms_request(&inner.uid, request_id)
                })
                .await?
            {
                Collected::Rooms(all) => Ok(all),
                _ => Ok(Vec::new()),
            }
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
                let body = protocol::encode_server_side_emit(&inner.uid, None, &args);
                inner.publish_request(body).await?;
                return Ok(Vec::new());
            };
            match inner
                .ask_others(Collected::Acks(Vec::new()), timeout, |request_id| {
                    protocol::encode_server_side_emit(&inner.uid, Some(request_id), &args)
                })
                .await?
            {
                Collected::Acks(acks) => Ok(acks),
                _ => Ok(Vec::new()),
            }
        })
    }
}
