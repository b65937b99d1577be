//! [`StreamsAdapter`]: the protocol of `@socket.io/redis-streams-adapter` 0.3 behind
//! [`ignis_socketio::Adapter`], with its session storage for connection state recovery.
//!
//! What goes where, as in Node: broadcasts without acknowledgements, `sockets_join`,
//! `sockets_leave` and `disconnect_sockets` are entries of the stream (`XADD ... MAXLEN ~ n *
//! uid U nsp N type T data D`, `data` being JSON, or base64 msgpack when it holds binary);
//! `fetch_sockets`, `server_side_emit` and broadcasts with acknowledgements go over PUBLISH on
//! `{channelPrefix}#{nsp}#` as msgpack, and every answer on the requester's
//! `{channelPrefix}#{nsp}#{uid}#`. The server count is the subscriber count of the first
//! channel. The stream is read with `XREAD BLOCK` on a connection of its own, which resumes
//! from the last entry it read after a reconnection.
//!
//! Unlike Node, a node delivers its own broadcasts when it reads them back from the stream:
//! every node then delivers in the stream's order, and each packet carries its entry id as its
//! offset, which a restoring socket on any node can replay from.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use ignis_socketio::adapter::BoxFuture;
use ignis_socketio::proto::socketio::{Packet, PacketKind};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{AdapterError, AdapterFactory, Namespace, Room, SessionData, Sid, Value};
use parking_lot::Mutex;
use redis::ProtocolVersion;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cluster::unavailable;
use crate::cluster_core::{Core, CoreLimits, Transport, forward_adapter, protocol_error};
use crate::connection::{Listener, RedisConnection, RedisError, Topic};
use crate::json;
use crate::notepack;
use crate::sharded_protocol::{self as wire, Body, Message, random_id};

/// Options of the streams adapter, named as in `@socket.io/redis-streams-adapter`.
#[derive(Debug, Clone)]
pub struct StreamsAdapterConfig {
    /// The stream (`streamName`), `socket.io` by default. One stream for every namespace
    /// (Node's `streamCount` of 1).
    pub stream_name: String,
    /// `maxLen`: the stream is trimmed to about this many entries (`MAXLEN ~`), 10 000 by
    /// default. A client can recover only while its last packet is still in the stream.
    pub max_len: usize,
    /// `readCount`: entries read per `XREAD`, 100 by default.
    pub read_count: usize,
    /// `blockTimeInMs`: how long one `XREAD` waits for entries, 5 s by default.
    pub block_time: Duration,
    /// `channelPrefix`: the prefix of the PUBLISH channels of requests and answers.
    pub channel_prefix: String,
    /// `useShardedPubSub`: SPUBLISH/SSUBSCRIBE rather than PUBLISH/SUBSCRIBE (Redis 7).
    pub use_sharded_pubsub: bool,
    /// `sessionKeyPrefix`: where sessions are kept for connection state recovery,
    /// `sio:session:` by default.
    pub session_key_prefix: String,
    /// The server's values ([`SessionData::values`]) given to a session that a Node server
    /// stored, which has none: empty by default. An application whose Node servers only keep
    /// sessions of authenticated sockets may put its authentication marker here.
    pub node_session_values: Map,
    /// How long `fetch_sockets` waits for the other nodes when the call sets no timeout.
    pub requests_timeout: Duration,
    /// Requests of this node waiting for answers at once; more fail at once.
    pub max_pending_requests: usize,
    /// Server-side-emit handlers and broadcasts with acknowledgements from other nodes
    /// running at once; more are dropped with a warning.
    pub max_remote_tasks: usize,
    /// Stream entries waiting to be added while Redis is slow or away; past that, broadcasts
    /// fail with [`AdapterError::Unavailable`].
    pub max_queued_entries: usize,
}

impl Default for StreamsAdapterConfig {
    fn default() -> Self {
        StreamsAdapterConfig {
            stream_name: "socket.io".into(),
            max_len: 10_000,
            read_count: 100,
            block_time: Duration::from_secs(5),
            channel_prefix: "socket.io".into(),
            use_sharded_pubsub: false,
            session_key_prefix: "sio:session:".into(),
            node_session_values: Map::new(),
            requests_timeout: Duration::from_secs(5),
            max_pending_requests: 10_000,
            max_remote_tasks: 1024,
            max_queued_entries: 8192,
        }
    }
}

/// The place of an entry in a stream: `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
struct EntryId(u64, u64);

impl EntryId {
    fn parse(s: &str) -> Option<EntryId> {
        let (ms, seq) = s.split_once('-')?;
        if ms.is_empty()
            || seq.is_empty()
            || !(ms.bytes().chain(seq.bytes())).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        Some(EntryId(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The id right after this one, for an exclusive start (Redis before 6.2 has no `(`).
    fn next(self) -> EntryId {
        match self.1.checked_add(1) {
            Some(seq) => EntryId(self.0, seq),
            None => EntryId(self.0.saturating_add(1), 0),
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

type Fields = Vec<(String, Vec<u8>)>;

/// An entry waiting to be added to the stream.
struct Append {
    fields: Fields,
    done: Option<oneshot::Sender<Result<(), RedisError>>>,
}

/// What the namespaces of one factory share: the stream, its reader and its writer.
struct StreamShared {
    conn: RedisConnection,
    config: StreamsAdapterConfig,
    cores: Mutex<HashMap<String, Weak<Core<StreamsTransport>>>>,
    /// The last entry every namespace got: what a restoring socket missed ends there, the rest
    /// reaches it live.
    read_up_to: watch::Sender<EntryId>,
    /// Held while an entry is handed to its namespace and `read_up_to` moves past it, and while
    /// a restore reads `read_up_to`: an entry whose recipients were picked before a restoring
    /// socket was back in its rooms is then always among its missed packets.
    delivering: Mutex<()>,
    appends: mpsc::Sender<Append>,
}

/// Ends the reader and the writer when the factory and its adapters are gone.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Creates a [`StreamsAdapter`] for each namespace; give it to
/// [`SocketIoBuilder::adapter`](ignis_socketio::SocketIoBuilder::adapter). It reads the
/// stream with a connection of its own, opened from the configuration of `conn`. Made inside a
/// tokio runtime.
#[derive(Clone)]
pub struct StreamsAdapterFactory {
    shared: Arc<StreamShared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for StreamsAdapterFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsAdapterFactory")
            .field("stream", &self.shared.config.stream_name)
            .finish()
    }
}

impl StreamsAdapterFactory {
    /// Starts reading and writing the stream; fails outside a tokio runtime.
    pub fn new(
        conn: RedisConnection,
        config: StreamsAdapterConfig,
    ) -> Result<StreamsAdapterFactory, RedisError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| RedisError::Config("the streams adapter needs a tokio runtime".into()))?;
        let (read_up_to, _) = watch::channel(EntryId::default());
        let (appends, rx) = mpsc::channel(config.max_queued_entries.max(1));
        let shared = Arc::new(StreamShared {
            conn,
            config,
            cores: Mutex::new(HashMap::new()),
            read_up_to,
            delivering: Mutex::new(()),
            appends,
        });
        let reader = runtime.spawn(reader_task(Arc::downgrade(&shared)));
        let writer = runtime.spawn(writer_task(Arc::downgrade(&shared), rx));
        Ok(StreamsAdapterFactory {
            shared,
            _tasks: Arc::new(Tasks(vec![reader, writer])),
        })
    }

    /// Waits, at most `timeout`, until the reader knows the entry it reads from (the stream's
    /// last at start), so that nothing added from then on is missed: true once it does, false
    /// when Redis could not be read in time (the reader goes on trying).
    pub async fn reading(&self, timeout: Duration) -> bool {
        let mut rx = self.shared.read_up_to.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|id| *id != EntryId::default()))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl AdapterFactory for StreamsAdapterFactory {
    fn create(&self, namespace: &str) -> Arc<dyn ignis_socketio::Adapter> {
        Arc::new(StreamsAdapter::with_factory(self, namespace))
    }
}

/// The adapter of one namespace.
pub struct StreamsAdapter {
    core: Arc<Core<StreamsTransport>>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for StreamsAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsAdapter")
            .field("uid", &self.core.uid)
            .field("nsp", &self.core.nsp)
            .finish()
    }
}

impl StreamsAdapter {
    fn with_factory(factory: &StreamsAdapterFactory, nsp: &str) -> StreamsAdapter {
        let shared = Arc::clone(&factory.shared);
        let config = &shared.config;
        let uid = random_id();
        let public_channel = format!("{}#{nsp}#", config.channel_prefix);
        let private_channel = format!("{public_channel}{uid}#");
        let limits = CoreLimits {
            requests_timeout: config.requests_timeout,
            max_pending_requests: config.max_pending_requests,
            max_remote_tasks: config.max_remote_tasks,
            counters: shared.conn.counters(),
        };
        let core = Core::new(nsp, uid, limits, |me: &Weak<Core<StreamsTransport>>| {
            let me: Weak<dyn Listener> = me.clone();
            StreamsTransport {
                shared: Arc::clone(&shared),
                nsp: nsp.to_string(),
                public_channel,
                private_channel,
                me,
            }
        });
        let transport = &core.transport;
        transport
            .shared
            .cores
            .lock()
            .insert(nsp.to_string(), Arc::downgrade(&core));
        transport
            .shared
            .conn
            .subscribe(&transport.topics(), &transport.me);
        StreamsAdapter {
            core,
            _tasks: Arc::clone(&factory._tasks),
        }
    }

    /// This node's id in the namespace's protocol messages (16 hex characters).
    pub fn uid(&self) -> &str {
        &self.core.uid
    }
}

impl Drop for StreamsAdapter {
    fn drop(&mut self) {
        let transport = &self.core.transport;
        transport
            .shared
            .conn
            .unsubscribe(&transport.topics(), &transport.me);
        let mut cores = transport.shared.cores.lock();
        if cores
            .get(&transport.nsp)
            .is_some_and(|c| std::ptr::eq(c.as_ptr(), Arc::as_ptr(&self.core)))
        {
            cores.remove(&transport.nsp);
        }
    }
}

forward_adapter!(StreamsAdapter);

/// A message on its way out: an entry of the stream, or a pub/sub message (requests and
/// their answers, which nobody needs to read again).
pub(crate) enum StreamsMessage {
    Entry(Fields),
    Publish { channel: String, payload: Vec<u8> },
}

pub(crate) struct StreamsTransport {
    shared: Arc<StreamShared>,
    nsp: String,
    public_channel: String,
    private_channel: String,
    me: Weak<dyn Listener>,
}

/// Requests and their broadcasts-with-acknowledgements go over pub/sub, the rest in the
/// stream (Node's `isEphemeral`).
fn is_ephemeral(body: &Body) -> bool {
    matches!(
        body,
        Body::Broadcast {
            request_id: Some(_),
            ..
        } | Body::ServerSideEmit { .. }
            | Body::FetchSockets { .. }
    )
}

/// The fields of a stream entry: `uid`, `nsp`, `type` and, when there is data, `data`.
fn entry_fields(msg: &Message) -> Result<Fields, AdapterError> {
    let kind = msg.body.kind();
    let mut fields = Vec::with_capacity(4);
    fields.push((
        "uid".to_string(),
        msg.uid.clone().unwrap_or_default().into_bytes(),
    ));
    fields.push((
        "nsp".to_string(),
        msg.nsp.clone().unwrap_or_default().into_bytes(),
    ));
    fields.push(("type".to_string(), (kind as u8).to_string().into_bytes()));
    if let Some(data) = wire::data_value(&msg.body).map_err(protocol_error)? {
        let text = if wire::may_contain_binary(kind) && data.has_binary() {
            BASE64.encode(notepack::encode(&data).map_err(protocol_error)?)
        } else {
            let mut out = String::with_capacity(128);
            json::write(&mut out, &data);
            out
        };
        fields.push(("data".to_string(), text.into_bytes()));
    }
    Ok(fields)
}

/// A stream entry back into a message; `None` for an entry without a namespace, which Node
/// skips too.
fn entry_message(fields: &[(String, Vec<u8>)]) -> Result<Option<Message>, AdapterError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let Some(nsp) = field("nsp").filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let kind: i64 = field("type")
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| AdapterError::Other("a stream entry without a type".into()))?;
    let mut map = Map::new();
    map.insert("type", Value::Int(kind));
    if let Some(data) = field("data").filter(|d| !d.is_empty()) {
        let value = if data.starts_with('{') {
            json::parse(data.as_bytes()).map_err(protocol_error)?
        } else {
            let raw = BASE64.decode(data.as_bytes()).map_err(protocol_error)?;
            notepack::decode(&Bytes::from(raw)).map_err(protocol_error)?
        };
        map.insert("data", value);
    }
    if let Some(uid) = field("uid") {
        map.insert("uid", Value::from(uid.as_str()));
    }
    map.insert("nsp", Value::from(nsp.as_str()));
    wire::decode_value(Value::Map(map))
        .map(Some)
        .map_err(protocol_error)
}

impl StreamsTransport {
    fn topics(&self) -> Vec<Topic> {
        let topic = |c: &str| {
            if self.shared.config.use_sharded_pubsub {
                Topic::Shard(c.to_string())
            } else {
                Topic::Channel(c.to_string())
            }
        };
        vec![topic(&self.public_channel), topic(&self.private_channel)]
    }

    fn publish_nowait(&self, channel: String, payload: Vec<u8>) -> Result<(), AdapterError> {
        let conn = &self.shared.conn;
        let sent = if self.shared.config.use_sharded_pubsub {
            conn.spublish_nowait(channel, payload)
        } else {
            conn.publish_nowait(channel, payload)
        };
        sent.map_err(unavailable)
    }

    fn session_key(&self, pid: &str) -> String {
        format!("{}{pid}", self.shared.config.session_key_prefix)
    }
}

impl Transport for StreamsTransport {
    type Encoded = StreamsMessage;

    fn encode(&self, msg: &Message) -> Result<StreamsMessage, AdapterError> {
        if is_ephemeral(&msg.body) {
            let value = wire::message_value(msg).map_err(protocol_error)?;
            let payload = notepack::encode(&value).map_err(protocol_error)?;
            Ok(StreamsMessage::Publish {
                channel: self.public_channel.clone(),
                payload,
            })
        } else {
            Ok(StreamsMessage::Entry(entry_fields(msg)?))
        }
    }

    fn send(&self, msg: StreamsMessage) -> BoxFuture<'static, Result<(), AdapterError>> {
        let shared = Arc::clone(&self.shared);
        match msg {
            StreamsMessage::Publish { channel, payload } => Box::pin(async move {
                let conn = &shared.conn;
                let sent = if shared.config.use_sharded_pubsub {
                    conn.spublish(channel, payload).await
                } else {
                    conn.publish(channel, payload).await
                };
                sent.map_err(unavailable)
            }),
            StreamsMessage::Entry(fields) => Box::pin(async move {
                let (tx, rx) = oneshot::channel();
                shared
                    .appends
                    .try_send(Append {
                        fields,
                        done: Some(tx),
                    })
                    .map_err(|_| unavailable(RedisError::QueueFull))?;
                // The writer retries while Redis is away: the caller hears of it after the
                // requests timeout, and the entry still goes out once Redis is back.
                match tokio::time::timeout(shared.config.requests_timeout, rx).await {
                    Ok(done) => done.unwrap_or(Err(RedisError::Down)).map_err(unavailable),
                    Err(_) => Err(unavailable(RedisError::Command(
                        "the stream entry waits for Redis; it is added once Redis is back".into(),
                    ))),
                }
            }),
        }
    }

    fn send_nowait(&self, msg: StreamsMessage) -> Result<(), AdapterError> {
        match msg {
            StreamsMessage::Publish { channel, payload } => self.publish_nowait(channel, payload),
            StreamsMessage::Entry(fields) => self
                .shared
                .appends
                .try_send(Append { fields, done: None })
                .map_err(|_| unavailable(RedisError::QueueFull)),
        }
    }

    fn respond(&self, requester: &str, msg: &Message) -> Result<(), AdapterError> {
        let value = wire::message_value(msg).map_err(protocol_error)?;
        let payload = notepack::encode(&value).map_err(protocol_error)?;
        self.publish_nowait(format!("{}{requester}#", self.public_channel), payload)
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async move {
            let conn = &self.shared.conn;
            let count = if self.shared.config.use_sharded_pubsub {
                conn.shardnumsub(&self.public_channel).await
            } else {
                conn.numsub(&self.public_channel).await
            };
            count.map_err(unavailable)
        })
    }

    fn echoes_broadcasts(&self) -> bool {
        true
    }

    /// The last entry this node handed out, read and sent under the lock that hands entries
    /// out: the socket has had every broadcast up to it, and none after it yet.
    fn send_with_offset(&self, send: &mut dyn FnMut(&str)) -> bool {
        let _delivering = self.shared.delivering.lock();
        let read = *self.shared.read_up_to.borrow();
        send(&read.to_string());
        true
    }

    /// Kept as Node keeps it: `SET {sessionKeyPrefix}{pid} base64(msgpack({sid, pid, rooms,
    /// data})) PX maxDisconnectionDuration`, plus the server's values under a key Node ignores.
    fn persist_session(&self, ns: &Namespace, session: SessionData) {
        let Some(recovery) = ns.recovery() else {
            return;
        };
        let ttl = recovery.config().max_disconnection_duration;
        let mut map = Map::new();
        map.insert("sid", Value::from(session.sid.as_str()));
        map.insert("pid", Value::from(&*session.pid));
        map.insert(
            "rooms",
            Value::Array(session.rooms.iter().map(|r| Value::from(&**r)).collect()),
        );
        map.insert("data", session.data);
        map.insert(SESSION_VALUES_KEY, Value::Map(session.values));
        let encoded = match notepack::encode(&Value::Map(map)) {
            Ok(bytes) => BASE64.encode(bytes),
            Err(e) => {
                tracing::warn!(nsp = %self.nsp, error = %e, "session cannot be encoded: not kept");
                return;
            }
        };
        let key = self.session_key(&session.pid);
        let conn = self.shared.conn.clone();
        let nsp = self.nsp.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        tokio::spawn(async move {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key).arg(encoded).arg("PX").arg(millis);
            if let Err(e) = conn.query::<()>(&cmd).await {
                tracing::warn!(%nsp, error = %e, "session not kept in Redis");
            }
        });
    }

    /// Takes the session (`GET` and `DEL` in one transaction, as Node) if the offset is still
    /// in the stream.
    fn restore_session<'a>(
        &'a self,
        _ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        Box::pin(async move {
            EntryId::parse(offset)?;
            let key = self.session_key(pid);
            let conn = &self.shared.conn;
            let mut pipe = redis::pipe();
            pipe.atomic().get(&key).del(&key).ignore();
            let mut range = redis::cmd("XRANGE");
            range
                .arg(&self.shared.config.stream_name)
                .arg(offset)
                .arg(offset);
            let (session, offset_entries) = tokio::join!(
                conn.query_pipeline::<(Option<String>,)>(&pipe),
                conn.query::<redis::Value>(&range)
            );
            let raw = match session {
                Ok((Some(raw),)) => raw,
                Ok((None,)) => return None,
                Err(e) => {
                    tracing::debug!(error = %e, "session not read from Redis");
                    return None;
                }
            };
            let found = offset_entries
                .ok()
                .map(|v| parse_entries(&v))
                .unwrap_or_default();
            if found.is_empty() {
                tracing::debug!(offset, "not recovered: offset no longer in the stream");
                return None;
            }
            decode_session(&raw, &self.shared.config.node_session_values)
        })
    }

    /// The broadcasts of the stream after `offset` up to the last entry this node delivered,
    /// which reached a socket in `rooms`: the ones after it reach the socket live.
    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        Box::pin(async move {
            let from = EntryId::parse(offset)?;
            // The client may have seen an entry this node has not read yet: wait for the
            // reader to pass it, or packets would come twice.
            let mut read = self.shared.read_up_to.subscribe();
            let wait = self.shared.config.block_time.max(Duration::from_secs(2));
            let reached = tokio::time::timeout(wait, read.wait_for(|id| *id >= from)).await;
            if !matches!(reached, Ok(Ok(_))) {
                tracing::debug!(offset, "the stream reader is behind the client's offset");
                return None;
            }
            drop(reached);
            // The socket is back in its rooms: every entry delivered up to here may have
            // missed it, every later one reaches it.
            let until = {
                let _delivering = self.shared.delivering.lock();
                *self.shared.read_up_to.borrow()
            };
            let mut packets = Vec::new();
            let mut start = from.next();
            const PAGE: usize = 1000;
            // Bounded like Node's restore: past this, the session is restored without them.
            for _ in 0..1000 {
                if start > until {
                    break;
                }
                let mut cmd = redis::cmd("XRANGE");
                cmd.arg(&self.shared.config.stream_name)
                    .arg(start.to_string())
                    .arg(until.to_string())
                    .arg("COUNT")
                    .arg(PAGE);
                let reply: redis::Value = self.shared.conn.query(&cmd).await.ok()?;
                let entries = parse_entries(&reply);
                let Some((last, _)) = entries.last() else {
                    break;
                };
                start = last.next();
                let full = entries.len() >= PAGE;
                for (id, fields) in entries {
                    if let Some(packet) = self.replayable(ns, rooms, id, &fields) {
                        packets.push(packet);
                    }
                }
                if !full {
                    break;
                }
            }
            Some(packets)
        })
    }
}

impl StreamsTransport {
    /// The packet of a stream entry with its offset, if it is a broadcast of this namespace
    /// that reached a socket in `rooms` and can be replayed.
    fn replayable(
        &self,
        ns: &Namespace,
        rooms: &[Room],
        id: EntryId,
        fields: &[(String, Vec<u8>)],
    ) -> Option<Packet> {
        let nsp_matches = fields
            .iter()
            .any(|(k, v)| k == "nsp" && v.as_slice() == self.nsp.as_bytes());
        let is_broadcast = fields
            .iter()
            .any(|(k, v)| k == "type" && v.as_slice() == b"3");
        if !nsp_matches || !is_broadcast {
            return None;
        }
        let msg = entry_message(fields).ok()??;
        let Body::Broadcast {
            mut packet,
            opts,
            request_id: None,
        } = msg.body
        else {
            return None;
        };
        if opts.flags.volatile {
            return None;
        }
        let included = opts.rooms.is_empty() || opts.rooms.iter().any(|r| rooms.contains(r));
        let excluded = opts.except.iter().any(|r| rooms.contains(r));
        if !included || excluded {
            return None;
        }
        let PacketKind::Event { args, id: None, .. } = &mut packet.kind else {
            return None;
        };
        args.push(Value::from(id.to_string().as_str()));
        packet.nsp = ns.name().into();
        Some(packet)
    }
}

/// Where the server's values of a session go, next to Node's keys.
const SESSION_VALUES_KEY: &str = "ignis:values";

fn decode_session(raw: &str, node_values: &Map) -> Option<SessionData> {
    let bytes = BASE64.decode(raw.trim().as_bytes()).ok()?;
    let Value::Map(mut map) = notepack::decode(&Bytes::from(bytes)).ok()? else {
        return None;
    };
    let sid = Sid::parse(map.get("sid")?.as_str()?)?;
    let pid: Arc<str> = Arc::from(map.get("pid")?.as_str()?);
    let rooms = match map.get("rooms") {
        Some(Value::Array(rooms)) => rooms
            .iter()
            .filter_map(Value::as_str)
            .map(Room::from)
            .collect(),
        _ => Vec::new(),
    };
    let data = map.remove("data").unwrap_or_default();
    let values = match map.remove(SESSION_VALUES_KEY) {
        Some(Value::Map(values)) => values,
        // Stored by a Node server, which knows nothing of them.
        _ => node_values.clone(),
    };
    Some(SessionData {
        sid,
        pid,
        rooms,
        data,
        values,
    })
}

/// The entries of an `XRANGE` reply, or of the one stream of an `XREAD` reply.
fn parse_entries(reply: &redis::Value) -> Vec<(EntryId, Fields)> {
    use redis::Value as V;
    let V::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let V::Array(pair) = item else { return None };
            let [id, fields] = pair.as_slice() else {
                return None;
            };
            let id = EntryId::parse(&bulk_string(id)?)?;
            let V::Array(flat) = fields else { return None };
            let fields = flat
                .chunks_exact(2)
                .filter_map(|kv| Some((bulk_string(&kv[0])?, bulk_bytes(&kv[1])?)))
                .collect();
            Some((id, fields))
        })
        .collect()
}

/// The entries of an `XREAD` reply for one stream (nil when it timed out).
fn parse_xread(reply: &redis::Value) -> Vec<(EntryId, Fields)> {
    use redis::Value as V;
    match reply {
        V::Array(streams) => streams
            .iter()
            .flat_map(|s| match s {
                V::Array(pair) if pair.len() == 2 => parse_entries(&pair[1]),
                _ => Vec::new(),
            })
            .collect(),
        V::Map(streams) => streams
            .iter()
            .flat_map(|(_, entries)| parse_entries(entries))
            .collect(),
        _ => Vec::new(),
    }
}

fn bulk_bytes(v: &redis::Value) -> Option<Vec<u8>> {
    match v {
        redis::Value::BulkString(b) => Some(b.clone()),
        redis::Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}

fn bulk_string(v: &redis::Value) -> Option<String> {
    bulk_bytes(v).and_then(|b| String::from_utf8(b).ok())
}

impl Listener for Core<StreamsTransport> {
    fn on_message(&self, topic: &Topic, channel: &str, payload: Bytes) {
        let expected = if self.transport.shared.config.use_sharded_pubsub {
            matches!(topic, Topic::Shard(_))
        } else {
            matches!(topic, Topic::Channel(_))
        };
        if !expected {
            return;
        }
        let msg = match wire::decode(&payload) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(nsp = %self.nsp, error = %e, "malformed message from Redis ignored");
                return;
            }
        };
        if channel == self.transport.private_channel {
            self.on_response(msg.body);
        } else if channel == self.transport.public_channel {
            Core::on_message(self, msg, None);
        }
    }
}

/// The client name of the reader of `stream`: `ignis-stream-reader:` and the stream's name,
/// spaces and newlines made `_` (Redis refuses them in names).
pub(crate) fn reader_name(stream: &str) -> String {
    let safe: String = stream
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("ignis-stream-reader:{safe}")
}

/// A connection of its own for `XREAD BLOCK`, which holds it while it waits.
enum ReadConnection {
    Node(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ReadConnection {
    async fn open(
        conn: &RedisConnection,
        stream: &str,
        block: Duration,
    ) -> Result<ReadConnection, RedisError> {
        let config = conn.config();
        let command_error = |e: redis::RedisError| RedisError::Command(e.to_string());
        // The reply of a blocked read comes after the block time.
        let response_timeout = block + config.response_timeout;
        let open = async {
            if config.is_cluster() {
                let client = config
                    .cluster_builder(ProtocolVersion::RESP2)
                    .response_timeout(response_timeout)
                    .build()
                    .map_err(command_error)?;
                let c = client.get_async_connection().await.map_err(command_error)?;
                Ok(ReadConnection::Cluster(c))
            } else {
                let client = config.client(0, ProtocolVersion::RESP2)?;
                let settings = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let c = client
                    .get_multiplexed_async_connection_with_config(&settings)
                    .await
                    .map_err(command_error)?;
                let mut c = ReadConnection::Node(c);
                // Named, so that an operator (or a test) can tell it in CLIENT LIST.
                let mut name = redis::cmd("CLIENT");
                name.arg("SETNAME").arg(reader_name(stream));
                c.query(&name).await?;
                Ok(c)
            }
        };
        match tokio::time::timeout(config.connect_timeout, open).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Down),
        }
    }

    async fn query(&mut self, cmd: &redis::Cmd) -> Result<redis::Value, RedisError> {
        let result = match self {
            ReadConnection::Node(c) => cmd.query_async(c).await,
            ReadConnection::Cluster(c) => cmd.query_async(c).await,
        };
        result.map_err(|e| RedisError::Command(e.to_string()))
    }
}

/// Reads the stream and hands each entry to the adapter of its namespace, from the last entry
/// at start, and after a reconnection from the last entry it read.
async fn reader_task(shared: Weak<StreamShared>) {
    let mut last: Option<EntryId> = None;
    let mut backoff = Duration::from_millis(100);
    let mut was_down = false;
    loop {
        let Some(s) = shared.upgrade() else { return };
        let (conn, config) = (s.conn.clone(), s.config.clone());
        drop(s);
        let mut read = match ReadConnection::open(&conn, &config.stream_name, config.block_time)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                if !was_down {
                    tracing::warn!(stream = %config.stream_name, error = %e, "cannot read the Redis stream; retrying");
                    was_down = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(conn.config().reconnect_max.max(backoff));
                continue;
            }
        };
        if last.is_none() {
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(&config.stream_name)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1);
            match read.query(&cmd).await {
                Ok(reply) => {
                    let id = parse_entries(&reply)
                        .first()
                        .map_or(EntryId(0, 0), |(id, _)| *id);
                    last = Some(id);
                    if let Some(s) = shared.upgrade() {
                        // A fresh stream starts at 0-0, which readers wait past: mark it
                        // readable all the same.
                        s.read_up_to.send_replace(id.max(EntryId(0, 1)));
                    }
                }
                Err(e) => {
                    tracing::warn!(stream = %config.stream_name, error = %e, "cannot read the Redis stream; retrying");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            }
        }
        if was_down {
            tracing::info!(stream = %config.stream_name, "reading the Redis stream again");
            was_down = false;
        }
        backoff = Duration::from_millis(100);
        while let Some(from) = last {
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(config.read_count.max(1))
                .arg("BLOCK")
                .arg(u64::try_from(config.block_time.as_millis()).unwrap_or(u64::MAX))
                .arg("STREAMS")
                .arg(&config.stream_name)
                .arg(from.to_string());
            let reply = match read.query(&cmd).await {
                Ok(reply) => reply,
                Err(e) => {
                    tracing::warn!(stream = %config.stream_name, error = %e, "reading the Redis stream failed; reconnecting");
                    was_down = true;
                    break;
                }
            };
            let Some(s) = shared.upgrade() else { return };
            for (id, fields) in parse_xread(&reply) {
                let _delivering = s.delivering.lock();
                dispatch(&s, id, &fields);
                last = Some(id);
                s.read_up_to.send_replace(id);
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

fn dispatch(shared: &StreamShared, id: EntryId, fields: &[(String, Vec<u8>)]) {
    let msg = match entry_message(fields) {
        Ok(Some(msg)) => msg,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(%id, error = %e, "malformed stream entry ignored");
            return;
        }
    };
    let core = msg
        .nsp
        .as_deref()
        .and_then(|nsp| shared.cores.lock().get(nsp).and_then(Weak::upgrade));
    if let Some(core) = core {
        core.on_message(msg, Some(&id.to_string()));
    }
}

/// Adds the entries in order, in pipelines; while Redis is away the batch waits and is tried
/// again, and the queue behind it is bounded (`max_queued_entries`).
///
/// A retried batch is not added twice: Redis may have taken a batch (or the first entries of
/// it) before its reply was lost, so before trying again the writer reads the stream after the
/// last entry it knows was there before the first attempt, and leaves out the entries of the
/// batch it finds ([`already_added`]).
async fn writer_task(shared: Weak<StreamShared>, mut rx: mpsc::Receiver<Append>) {
    const BATCH: usize = 64;
    let mut batch: Vec<Append> = Vec::with_capacity(BATCH);
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    // The id of the last entry this writer added: every later entry of its namespaces' uids
    // is of the batch being written.
    let mut last_added = EntryId::default();
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut floor: Option<EntryId> = None;
        loop {
            let Some(s) = shared.upgrade() else { return };
            match floor {
                None => floor = Some(last_added.max(*s.read_up_to.borrow())),
                Some(after) => match already_added(&s, after, &batch).await {
                    Ok((0, _)) => {}
                    Ok((taken, last)) => {
                        last_added = last_added.max(last);
                        tracing::debug!(stream = %s.config.stream_name, taken, "Redis took entries whose reply was lost; not added again");
                        for append in batch.drain(..taken) {
                            if let Some(done) = append.done {
                                let _ = done.send(Ok(()));
                            }
                        }
                        if batch.is_empty() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(stream = %s.config.stream_name, error = %e, "the stream cannot be read before a retry");
                        let max = s.conn.config().reconnect_max;
                        drop(s);
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(max.max(Duration::from_millis(50)));
                        continue;
                    }
                },
            }
            let mut pipe = redis::pipe();
            for append in &batch {
                let cmd = pipe
                    .cmd("XADD")
                    .arg(&s.config.stream_name)
                    .arg("MAXLEN")
                    .arg("~")
                    .arg(s.config.max_len)
                    .arg("*");
                for (k, v) in &append.fields {
                    cmd.arg(k).arg(v.as_slice());
                }
            }
            match s.conn.query_pipeline::<Vec<String>>(&pipe).await {
                Ok(ids) => {
                    if failing {
                        tracing::info!(stream = %s.config.stream_name, "adding to the Redis stream again");
                        failing = false;
                    }
                    backoff = Duration::from_millis(50);
                    if let Some(id) = ids.last().and_then(|id| EntryId::parse(id)) {
                        last_added = last_added.max(id);
                    }
                    for append in batch.drain(..) {
                        if let Some(done) = append.done {
                            let _ = done.send(Ok(()));
                        }
                    }
                    break;
                }
                Err(e) => {
                    // Kept and tried again, after a look at what Redis took: the entries
                    // behind wait in the bounded queue, and the order stays.
                    if !failing {
                        tracing::warn!(stream = %s.config.stream_name, error = %e, "adding to the Redis stream failed; retrying");
                        failing = true;
                    }
                    let max = s.conn.config().reconnect_max;
                    drop(s);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max.max(Duration::from_millis(50)));
                }
            }
        }
    }
}

/// How many entries at the start of `batch` Redis already took: the entries after `after`
/// written with the uid of an entry of the batch are this writer's (a uid is one adapter's,
/// and the writer adds one batch at a time), and a pipeline is applied in order, so they are
/// the first ones of the batch, field for field. Reads at most `max_len` entries: past that,
/// the stream was trimmed and whatever is not found is added again. Also returns the id of
/// the last entry found.
async fn already_added(
    shared: &StreamShared,
    after: EntryId,
    batch: &[Append],
) -> Result<(usize, EntryId), RedisError> {
    const PAGE: usize = 1000;
    let uids: Vec<&[u8]> = batch
        .iter()
        .filter_map(|a| a.fields.iter().find(|(k, _)| k == "uid"))
        .map(|(_, v)| v.as_slice())
        .collect();
    let mut taken = 0;
    let mut found = after;
    let mut start = after.next();
    let mut read = 0;
    while read < shared.config.max_len.max(PAGE) && taken < batch.len() {
        let mut cmd = redis::cmd("XRANGE");
        cmd.arg(&shared.config.stream_name)
            .arg(start.to_string())
            .arg("+")
            .arg("COUNT")
            .arg(PAGE);
        let reply: redis::Value = shared.conn.query(&cmd).await?;
        let entries = parse_entries(&reply);
        let Some((last, _)) = entries.last() else {
            break;
        };
        start = last.next();
        read += entries.len();
        let full = entries.len() >= PAGE;
        for (id, fields) in entries {
            let ours = fields
                .iter()
                .any(|(k, v)| k == "uid" && uids.contains(&v.as_slice()));
            if !ours {
                continue;
            }
            if batch.get(taken).is_some_and(|a| a.fields == fields) {
                taken += 1;
                found = id;
            } else {
                // Not what this writer added in order: add the rest again rather than guess.
                return Ok((taken, found));
            }
        }
        if !full {
            break;
        }
    }
    Ok((taken, found))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_socketio::BroadcastOptions;
    use ignis_socketio::proto::socketio::Packet;

    #[test]
    fn entry_ids_parse_order_and_step() {
        let a = EntryId::parse("1700000000000-0").unwrap();
        let b = EntryId::parse("1700000000000-1").unwrap();
        assert!(a < b);
        assert_eq!(a.next(), b);
        assert_eq!(b.to_string(), "1700000000000-1");
        for bad in ["", "1", "-1", "1-", "a-1", "1-1-1", "1--1"] {
            assert_eq!(EntryId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_broadcast_entry_is_json_and_comes_back() {
        let msg = Message {
            uid: Some("abc".into()),
            nsp: Some("/".into()),
            body: Body::Broadcast {
                packet: Packet::event("/", "hello", vec![Value::from("x")], None),
                opts: BroadcastOptions {
                    rooms: vec![Room::from("r1")],
                    ..Default::default()
                },
                request_id: None,
            },
        };
        let fields = entry_fields(&msg).unwrap();
        let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["uid", "nsp", "type", "data"]);
        assert_eq!(fields[2].1, b"3");
        let data = String::from_utf8(fields[3].1.clone()).unwrap();
        assert!(
            data.starts_with("{\"packet\":{\"type\":2,\"data\":[\"hello\",\"x\"]"),
            "{data}"
        );
        assert_eq!(entry_message(&fields).unwrap(), Some(msg));
    }

    #[test]
    fn binary_data_is_base64_msgpack() {
        let msg = Message {
            uid: Some("abc".into()),
            nsp: Some("/".into()),
            body: Body::Broadcast {
                packet: Packet::event("/", "bin", vec![Value::bytes(&b"\x01\x02"[..])], None),
                opts: BroadcastOptions::default(),
                request_id: None,
            },
        };
        let fields = entry_fields(&msg).unwrap();
        assert!(!fields[3].1.starts_with(b"{"));
        assert_eq!(entry_message(&fields).unwrap(), Some(msg));
    }

    #[test]
    fn an_entry_without_namespace_is_skipped() {
        let fields = vec![("type".to_string(), b"3".to_vec())];
        assert_eq!(entry_message(&fields).unwrap(), None);
    }

    #[test]
    fn sessions_keep_server_values_and_node_ones_get_the_default() {
        let sid = Sid::generate();
        let mut values = Map::new();
        values.insert("ignis:authenticated", true);
        let mut map = Map::new();
        map.insert("sid", Value::from(sid.as_str()));
        map.insert("pid", Value::from("p1"));
        map.insert("rooms", Value::Array(vec![Value::from("r1")]));
        map.insert("data", Value::from("d"));
        let node = BASE64.encode(notepack::encode(&Value::Map(map.clone())).unwrap());
        let session = decode_session(&node, &values).unwrap();
        assert_eq!(session.sid, sid);
        assert_eq!(session.values, values);
        map.insert(SESSION_VALUES_KEY, Value::Map(Map::new()));
        let ours = BASE64.encode(notepack::encode(&Value::Map(map)).unwrap());
        assert!(decode_session(&ours, &values).unwrap().values.is_empty());
        assert!(decode_session("not base64!", &values).is_none());
    }
}
