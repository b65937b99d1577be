//! [`RedisAdapter`]: the classic `@socket.io/redis-adapter` 8 protocol behind
//! [`ignis_socketio::Adapter`], so that Ignis and Node servers share one cluster.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use ignis_socketio::adapter::BoxFuture;
use ignis_socketio::{Adapter, AdapterError, AdapterFactory};
use rand::Rng;

use crate::cluster::unavailable;
use crate::connection::{Listener, RedisConnection, Topic};
use crate::engine::{
    AckAnswer, Collected, Core, CoreLimits, Driver, Incoming, Outgoing, Reply, forward_adapter,
    protocol_error,
};
use crate::protocol::{self, Channels, Request, RequestKind, Response, Sender};

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
    /// A factory of adapters over `conn`, all with `config`.
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
    core: Arc<Core<Classic>>,
}

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("uid", &self.core.uid)
            .field("nsp", &self.core.nsp)
            .finish()
    }
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
        let limits = CoreLimits {
            requests_timeout: config.requests_timeout,
            max_pending_requests: config.max_pending_requests,
            max_remote_tasks: config.max_remote_tasks,
            counters: conn.counters(),
        };
        let core = Core::new(nsp, uid, limits, |me: &Weak<Core<Classic>>| {
            let me: Weak<dyn Listener> = me.clone();
            Classic {
                conn,
                channels,
                specific_responses: config.publish_on_specific_response_channel,
                topics,
                me,
            }
        });
        let classic = &core.transport;
        classic.conn.subscribe(&classic.topics, &classic.me);
        RedisAdapter { core }
    }

    /// This node's id in the namespace's protocol messages.
    pub fn uid(&self) -> &str {
        &self.core.uid
    }
}

impl Drop for RedisAdapter {
    fn drop(&mut self) {
        let classic = &self.core.transport;
        classic.conn.unsubscribe(&classic.topics, &classic.me);
    }
}

forward_adapter!(RedisAdapter);

/// The classic protocol: broadcasts as `[uid, packet, opts]` on the namespace's and rooms'
/// channels (PUBLISH/PSUBSCRIBE), requests of types 0 to 9 on the request channel, answers on
/// the response channel, and the server count from PUBSUB NUMSUB.
pub(crate) struct Classic {
    conn: RedisConnection,
    channels: Channels,
    /// `publishOnSpecificResponseChannel`.
    specific_responses: bool,
    topics: Vec<Topic>,
    /// The core as the connection knows it.
    me: Weak<dyn Listener>,
}

impl Classic {
    fn response_channel(&self, requester: Option<&str>) -> String {
        match requester {
            Some(uid) if self.specific_responses => self.channels.specific_response(uid),
            _ => self.channels.response.clone(),
        }
    }
}

impl Driver for Classic {
    /// The channel and the payload.
    type Encoded = (String, Vec<u8>);
    type Response = Response;

    fn request_id() -> String {
        random_id()
    }

    fn encode(
        &self,
        uid: &str,
        _nsp: &str,
        request: Outgoing<'_>,
    ) -> Result<Self::Encoded, AdapterError> {
        let json = |body: String| Ok((self.channels.request.clone(), body.into_bytes()));
        match request {
            Outgoing::Broadcast { packet, opts } => {
                let payload = protocol::encode_broadcast(uid, packet, opts, Sender::Adapter)
                    .map_err(protocol_error)?;
                Ok((self.channels.broadcast_channel(opts), payload))
            }
            Outgoing::BroadcastWithAck {
                request_id,
                packet,
                opts,
            } => {
                let payload =
                    protocol::encode_broadcast_with_ack_request(uid, &request_id, packet, &opts)
                        .map_err(protocol_error)?;
                Ok((self.channels.request.clone(), payload))
            }
            Outgoing::Rooms { join, opts, rooms } => {
                json(protocol::encode_rooms_request(Some(uid), join, opts, rooms))
            }
            Outgoing::Disconnect { opts, close } => {
                json(protocol::encode_disconnect_request(Some(uid), opts, close))
            }
            Outgoing::Fetch { request_id, opts } => {
                json(protocol::encode_fetch_request(uid, &request_id, opts))
            }
            Outgoing::AllRooms { request_id } => {
                json(protocol::encode_all_rooms_request(uid, &request_id))
            }
            Outgoing::ServerSideEmit { request_id, args } => json(
                protocol::encode_server_side_emit(uid, request_id.as_deref(), args),
            ),
        }
    }

    fn send(
        &self,
        (channel, payload): Self::Encoded,
    ) -> BoxFuture<'static, Result<(), AdapterError>> {
        let conn = self.conn.clone();
        Box::pin(async move { conn.publish(channel, payload).await.map_err(unavailable) })
    }

    fn send_nowait(&self, (channel, payload): Self::Encoded) -> Result<(), AdapterError> {
        self.conn
            .publish_nowait(channel, payload)
            .map_err(unavailable)
    }

    fn reply(
        &self,
        _uid: &str,
        _nsp: &str,
        requester: Option<&str>,
        request_id: &str,
        reply: Reply,
    ) -> Result<(), AdapterError> {
        // Node sends the answers to server-side emits on the shared response channel
        // whatever the option.
        let channel = match reply {
            Reply::EmitAck(_) => self.channels.response.clone(),
            _ => self.response_channel(requester),
        };
        let json = match reply {
            Reply::SocketIds(sids) => protocol::encode_sockets_response(request_id, &sids),
            Reply::Rooms(rooms) => protocol::encode_all_rooms_response(request_id, &rooms),
            Reply::Done => protocol::encode_done_response(request_id),
            Reply::Sockets(sockets) => protocol::encode_fetch_response(request_id, &sockets),
            Reply::EmitAck(answer) => {
                protocol::encode_server_side_emit_response(request_id, &answer)
            }
            Reply::ClientCount(clients) => {
                protocol::encode_client_count_response(request_id, clients)
            }
            // The only answer in msgpack.
            Reply::Ack(first_arg) => {
                let payload = protocol::encode_ack_response(request_id, first_arg.as_ref())
                    .map_err(protocol_error)?;
                return self.send_nowait((channel, payload));
            }
        };
        self.send_nowait((channel, json.into_bytes()))
    }

    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        Box::pin(async move {
            self.conn
                .numsub(&self.channels.request)
                .await
                .map_err(unavailable)
        })
    }

    fn response_to(response: &Response) -> Option<&str> {
        Some(&response.request_id)
    }

    /// The responses do not all say what they answer: each is read as what the request
    /// collects, and counts even when it lacks the field.
    fn read_answer(response: Response, collecting: &Collected) -> Option<Collected> {
        Some(match collecting {
            Collected::Rooms(_) => Collected::Rooms(response.rooms().unwrap_or_default()),
            Collected::Sockets(_) => Collected::Sockets(response.sockets().unwrap_or_default()),
            Collected::Acks(_) => {
                Collected::Acks(vec![response.body.get("data").cloned().unwrap_or_default()])
            }
        })
    }

    fn read_ack_answer(response: Response) -> Option<AckAnswer> {
        match response.kind() {
            Some(8) => response.client_count().map(AckAnswer::ClientCount),
            Some(9) => {
                let first_arg = response.body.get("packet").cloned();
                Some(AckAnswer::Ack(first_arg.map_or(Vec::new(), |v| vec![v])))
            }
            _ => None,
        }
    }

    fn asks_for_rooms(&self) -> bool {
        true
    }
}

impl Listener for Core<Classic> {
    fn on_message(&self, topic: &Topic, channel: &str, payload: Bytes) {
        match topic {
            Topic::Pattern(_) => on_broadcast(self, channel, &payload),
            Topic::Channel(c) if *c == self.transport.channels.request => {
                on_request(self, &payload);
            }
            Topic::Channel(_) => match protocol::decode_response(&payload) {
                Ok(response) => self.on_response(response),
                Err(e) => {
                    tracing::debug!(nsp = %self.nsp, error = %e, "malformed response from Redis ignored");
                }
            },
            Topic::Shard(_) => {}
        }
    }
}

fn on_broadcast(core: &Core<Classic>, channel: &str, payload: &Bytes) {
    let Some(room) = core.transport.channels.room_of(channel) else {
        return;
    };
    // Cheap filter before decoding: a room channel matters only where the room exists.
    if !room.is_empty() && !core.local.index().read().has_room(room) {
        return;
    }
    let msg = match protocol::decode_broadcast(payload) {
        Ok(m) => m,
        Err(e) => {
            tracing::debug!(nsp = %core.nsp, error = %e, "malformed broadcast from Redis ignored");
            return;
        }
    };
    if msg.packet.nsp != core.nsp {
        return;
    }
    let incoming = Incoming::Broadcast {
        packet: msg.packet,
        opts: msg.opts,
    };
    core.apply(Some(&msg.uid), incoming, None);
}

fn on_request(core: &Core<Classic>, payload: &Bytes) {
    let request = match protocol::decode_request(payload, &core.nsp) {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(nsp = %core.nsp, error = %e, "malformed request from Redis ignored");
            return;
        }
    };
    let Request {
        uid,
        request_id,
        kind,
    } = request;
    let incoming = match (kind, request_id) {
        (RequestKind::Sockets { rooms }, Some(request_id)) => {
            Incoming::SocketIds { request_id, rooms }
        }
        (RequestKind::AllRooms, Some(request_id)) => Incoming::AllRooms { request_id },
        (RequestKind::Join { target, rooms }, request_id) => Incoming::Rooms {
            join: true,
            target,
            rooms,
            request_id,
        },
        (RequestKind::Leave { target, rooms }, request_id) => Incoming::Rooms {
            join: false,
            target,
            rooms,
            request_id,
        },
        (RequestKind::Disconnect { target, close }, request_id) => Incoming::Disconnect {
            target,
            close,
            request_id,
        },
        (RequestKind::Fetch { opts }, Some(request_id)) => Incoming::Fetch { request_id, opts },
        (RequestKind::ServerSideEmit { data }, request_id) => {
            Incoming::ServerSideEmit { request_id, data }
        }
        (RequestKind::BroadcastWithAck { packet, opts }, Some(request_id)) => {
            Incoming::BroadcastWithAck {
                request_id,
                packet,
                opts,
            }
        }
        // The requests that want an answer are nothing without an id.
        (
            RequestKind::Sockets { .. }
            | RequestKind::AllRooms
            | RequestKind::Fetch { .. }
            | RequestKind::BroadcastWithAck { .. },
            None,
        ) => return,
    };
    core.apply(uid.as_deref(), incoming, None);
}
