//! [`RedisAdapter`]: the classic `@socket.io/redis-adapter` 8 protocol behind
//! [`ignis_socketio::Adapter`], so that Ignis and Node servers share one cluster.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ignis_socketio::adapter::{AckCollector, BoxFuture};
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::{
    Adapter, AdapterError, AdapterFactory, BroadcastOptions, DEFAULT_ACK_TIMEOUT, MemoryAdapter,
    Namespace, RemoteSocket, Room, Sid, Value,
};
use parking_lot::Mutex;
use rand::Rng;
use tokio::sync::{Semaphore, oneshot};

use crate::connection::{Listener, RedisConnection, RedisError, Topic};
use crate::protocol::{self, Channels, Request, RequestKind, Response, Sender, Target};

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

struct Pending {
    /// Answers expected, this node's own included where it counts as one (rooms, sockets).
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
    channels: Channels,
    conn: RedisConnection,
    config: RedisAdapterConfig,
    ns: OnceLock<Weak<Namespace>>,
    pending: Mutex<HashMap<String, Pending>>,
    ack_requests: Mutex<HashMap<String, AckRequest>>,
    remote_tasks: Arc<Semaphore>,
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
            remote_tasks: Arc::new(Semaphore::new(config.max_remote_tasks.max(1))),
            conn,
            config,
            ns: OnceLock::new(),
            pending: Mutex::new(HashMap::new()),
            ack_requests: Mutex::new(HashMap::new()),
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

fn unavailable(e: RedisError) -> AdapterError {
    AdapterError::Unavailable(e.to_string())
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

    /// Publishes `payload` on the request channel and waits until `expected` answers were
    /// collected into `collected`, or the timeout.
    async fn request(
        &self,
        request_id: String,
        payload: String,
        expected: usize,
        received: usize,
        collected: Collected,
        timeout: Duration,
    ) -> Result<Collected, AdapterError> {
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
                    received,
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
            .publish(self.channels.request.clone(), payload.into_bytes())
            .await
            .map_err(unavailable)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(collected)) => Ok(collected),
            Ok(Err(_)) => Err(AdapterError::Other("request abandoned".into())),
            Err(_) => Err(AdapterError::Timeout),
        }
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
        let is_pending = |id: &Option<String>| {
            id.as_ref()
                .is_some_and(|id| self.pending.lock().contains_key(id))
        };
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
                    for sid in self.local.local_sockets(&opts) {
                        if let Some(socket) = ns.get_socket(sid) {
                            socket.disconnect_with(close);
                        }
                    }
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
                let sockets: Vec<RemoteSocket> = self
                    .local
                    .local_sockets(&opts)
                    .into_iter()
                    .filter_map(|sid| ns.get_socket(sid))
                    .map(|s| s.to_remote())
                    .collect();
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
                if self.ack_requests.lock().contains_key(&id) {
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
        let apply = |sid: Sid| {
            if join {
                self.local.add_all(sid, rooms);
            } else {
                for room in rooms {
                    self.local.del(sid, room);
                }
            }
        };
        match target {
            Target::Matching(opts) => {
                for sid in self.local.local_sockets(&opts) {
                    if ns.get_socket(sid).is_some() {
                        apply(sid);
                    }
                }
            }
            Target::Socket(sid) => {
                let Some(sid) = Sid::parse(&sid).filter(|s| ns.get_socket(*s).is_some()) else {
                    return;
                };
                apply(sid);
                if let Some(id) = request_id {
                    let body = protocol::encode_done_response(&id);
                    self.respond(requester, body.into_bytes());
                }
            }
        }
    }

    fn on_server_side_emit(&self, ns: &Namespace, data: Vec<Value>, request_id: Option<String>) {
        let Some(handler) = ns.dispatch_server_event(data) else {
            return;
        };
        let Ok(permit) = Arc::clone(&self.remote_tasks).try_acquire_owned() else {
            tracing::warn!(nsp = %self.nsp, "too many server-side events running; one from another node dropped");
            return;
        };
        let conn = self.conn.clone();
        let channel = self.channels.response.clone();
        tokio::spawn(async move {
            let answer = handler.await;
            drop(permit);
            if let (Some(id), Some(answer)) = (request_id, answer) {
                // Node sends these answers on the shared response channel whatever the option.
                let body = protocol::encode_server_side_emit_response(&id, &answer);
                let _ = conn.publish_nowait(channel, body.into_bytes());
            }
        });
    }

    fn on_broadcast_with_ack(
        &self,
        ns: &Namespace,
        mut packet: Packet,
        opts: BroadcastOptions,
        request_id: String,
        requester: Option<String>,
    ) {
        let Ok(permit) = Arc::clone(&self.remote_tasks).try_acquire_owned() else {
            tracing::warn!(nsp = %self.nsp, "too many broadcasts with acknowledgements running; one from another node dropped");
            return;
        };
        if let PacketKind::Event { id, .. } = &mut packet.kind {
            *id = Some(ns.next_ack_id());
        }
        let forwarder = Arc::new(AckForwarder {
            conn: self.conn.clone(),
            channel: self.response_channel(requester.as_deref()),
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
            ..Default::default()
        };
        self.local
            .broadcast_with_ack_local(ns, packet, &selection, as_dyn);
        tokio::spawn(async move {
            tokio::time::sleep(keep).await;
            drop(forwarder);
            drop(permit);
        });
    }

    fn on_response(&self, payload: &Bytes) {
        let response = match protocol::decode_response(payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed response from Redis ignored");
                return;
            }
        };
        let collector = self
            .ack_requests
            .lock()
            .get(&response.request_id)
            .map(|r| r.collector.clone());
        if let Some(collector) = collector {
            if let Some(collector) = collector.upgrade() {
                on_ack_response(&*collector, &response);
            }
            return;
        }
        let mut pending = self.pending.lock();
        let Some(entry) = pending.get_mut(&response.request_id) else {
            return;
        };
        match &mut entry.collected {
            Collected::Rooms(rooms) => {
                entry.received += 1;
                if let Some(more) = response.rooms() {
                    for room in more {
                        if !rooms.contains(&room) {
                            rooms.push(room);
                        }
                    }
                }
            }
            Collected::Sockets(sockets) => {
                entry.received += 1;
                if let Some(more) = response.sockets() {
                    sockets.extend(more);
                }
            }
            Collected::Acks(acks) => {
                entry.received += 1;
                acks.push(response.body.get("data").cloned().unwrap_or_default());
            }
        }
        if entry.received >= entry.expected
            && let Some(entry) = pending.remove(&response.request_id)
            && let Some(done) = entry.done
        {
            let _ = done.send(entry.collected);
        }
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

impl AckCollector for AckForwarder {
    fn expect(&self, clients: usize) {
        let body = protocol::encode_client_count_response(&self.request_id, clients);
        let _ = self
            .conn
            .publish_nowait(self.channel.clone(), body.into_bytes());
    }

    fn answer(&self, _sid: Sid, args: Vec<Value>) {
        self.answer_remote(args);
    }

    fn answer_remote(&self, args: Vec<Value>) {
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
        let remote = if opts.flags.local || only_local_sockets(ns, opts) {
            None
        } else {
            Some(
                protocol::encode_broadcast(&inner.uid, &packet, opts, Sender::Adapter)
                    .map_err(|e| AdapterError::Other(e.to_string()))?,
            )
        };
        inner.local.broadcast(ns, packet, opts)?;
        match remote {
            Some(msg) => inner
                .conn
                .publish_nowait(inner.channels.broadcast_channel(opts), msg)
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
            let msg = protocol::encode_broadcast_with_ack_request(
                &inner.uid,
                &request_id,
                &packet,
                &wire_opts,
            )
            .map_err(|e| AdapterError::Other(e.to_string()))?;
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
                .publish_nowait(inner.channels.request.clone(), msg)
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
            let nodes = inner.server_count().await?;
            if nodes <= 1 {
                return Ok(local);
            }
            let request_id = random_id();
            let payload = protocol::encode_fetch_request(&inner.uid, &request_id, opts);
            match inner
                .request(
                    request_id,
                    payload,
                    nodes,
                    1,
                    Collected::Sockets(local),
                    inner.config.requests_timeout,
                )
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
        Box::pin(async move {
            let inner = &self.inner;
            inner.local.add_sockets(ns, opts, rooms).await?;
            if opts.flags.local {
                return Ok(());
            }
            let body = protocol::encode_rooms_request(Some(&inner.uid), true, opts, rooms);
            inner
                .conn
                .publish(inner.channels.request.clone(), body.into_bytes())
                .await
                .map_err(unavailable)
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
            inner.local.del_sockets(ns, opts, rooms).await?;
            if opts.flags.local {
                return Ok(());
            }
            let body = protocol::encode_rooms_request(Some(&inner.uid), false, opts, rooms);
            inner
                .conn
                .publish(inner.channels.request.clone(), body.into_bytes())
                .await
                .map_err(unavailable)
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
            if !opts.flags.local {
                // Published before the local sockets go, since their rooms select the others.
                let body = protocol::encode_disconnect_request(Some(&inner.uid), opts, close);
                inner
                    .conn
                    .publish(inner.channels.request.clone(), body.into_bytes())
                    .await
                    .map_err(unavailable)?;
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
            let nodes = inner.server_count().await?;
            if nodes <= 1 {
                return Ok(local);
            }
            let request_id = random_id();
            let payload = protocol::encode_all_rooms_request(&inner.uid, &request_id);
            match inner
                .request(
                    request_id,
                    payload,
                    nodes,
                    1,
                    Collected::Rooms(local),
                    inner.config.requests_timeout,
                )
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
                inner
                    .conn
                    .publish(inner.channels.request.clone(), body.into_bytes())
                    .await
                    .map_err(unavailable)?;
                return Ok(Vec::new());
            };
            let others = inner.server_count().await?.saturating_sub(1);
            if others == 0 {
                return Ok(Vec::new());
            }
            let request_id = random_id();
            let payload = protocol::encode_server_side_emit(&inner.uid, Some(&request_id), &args);
            match inner
                .request(
                    request_id,
                    payload,
                    others,
                    0,
                    Collected::Acks(Vec::new()),
                    timeout,
                )
                .await?
            {
                Collected::Acks(acks) => Ok(acks),
                _ => Ok(Vec::new()),
            }
        })
    }
}
