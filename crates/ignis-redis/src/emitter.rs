//! [`Emitter`]: publishes to the clients of a Redis cluster from any process, in the format of
//! `@socket.io/redis-emitter` 5, so Ignis and Node servers alike deliver what it sends; or, for
//! clusters on the sharded adapter (for which no official emitter exists), in the messages of
//! that adapter.

use std::sync::Arc;

use ignis_socketio::proto::socketio::{Packet, is_reserved_event};
use ignis_socketio::{BroadcastOptions, IntoRooms, Value};
use serde::Serialize;

use crate::connection::{RedisConnection, RedisError};
use crate::protocol::{self, Channels, EMITTER_UID, Sender};
use crate::sharded_protocol::{self, Body, Message, ShardedChannels, SubscriptionMode};

/// Why an emitter could not publish.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// The event name is one Socket.IO keeps for itself (`connect`, `disconnect`, ...).
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    /// An argument cannot be turned into a Socket.IO value.
    #[error("the data cannot be serialised: {0}")]
    Value(#[from] ignis_socketio::proto::value::ValueError),
    /// The message cannot be written in the protocol.
    #[error("the message cannot be encoded: {0}")]
    Encode(#[from] protocol::ProtocolError),
    /// The message cannot be written as msgpack.
    #[error("the message cannot be encoded: {0}")]
    Msgpack(#[from] crate::notepack::NotepackError),
    /// Redis did not take the message.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Publishes events, room changes and disconnections to every server of a cluster. Cheap to
/// clone; every modifier returns a new emitter.
///
/// [`Emitter::new`] and [`Emitter::with_key`] speak the classic protocol, for servers on
/// `createAdapter` or [`RedisAdapter`](crate::RedisAdapter); [`Emitter::sharded`] speaks to servers on
/// `createShardedAdapter` or [`ShardedAdapter`](crate::ShardedAdapter), with the same
/// operations.
///
/// ```no_run
/// use ignis_redis::{Emitter, RedisConfig, RedisConnection};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = RedisConnection::connect(RedisConfig::new("127.0.0.1", 6379)?).await?;
/// let emitter = Emitter::new(conn);
/// emitter.to("room1").emit("news", &"hello")?;
/// emitter.of("/admin").sockets_join("staff").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Emitter {
    conn: RedisConnection,
    key: Arc<str>,
    nsp: Arc<str>,
    wire: Arc<Wire>,
    opts: BroadcastOptions,
}

/// The protocol of the cluster, with the channels of the namespace.
#[derive(Debug)]
enum Wire {
    Classic(Channels),
    Sharded {
        channels: ShardedChannels,
        mode: SubscriptionMode,
    },
}

impl Wire {
    fn new(like: &Wire, key: &str, nsp: &str) -> Wire {
        match like {
            Wire::Classic(_) => Wire::Classic(Channels::new(key, nsp)),
            Wire::Sharded { mode, .. } => Wire::Sharded {
                channels: ShardedChannels::new(key, nsp),
                mode: *mode,
            },
        }
    }
}

impl Emitter {
    /// An emitter for the namespace `/` with the default key `socket.io`.
    pub fn new(conn: RedisConnection) -> Emitter {
        Emitter::with_key(conn, "socket.io")
    }

    /// An emitter for the namespace `/` with another key (the adapters' `key` option).
    pub fn with_key(conn: RedisConnection, key: &str) -> Emitter {
        Emitter {
            conn,
            key: Arc::from(key),
            nsp: Arc::from("/"),
            wire: Arc::new(Wire::Classic(Channels::new(key, "/"))),
            opts: BroadcastOptions::default(),
        }
    }

    /// An emitter for the namespace `/` of a cluster on the sharded adapter, with its
    /// `channelPrefix` and `subscriptionMode` (which decides where a broadcast to one room
    /// goes).
    pub fn sharded(conn: RedisConnection, channel_prefix: &str, mode: SubscriptionMode) -> Emitter {
        Emitter {
            conn,
            key: Arc::from(channel_prefix),
            nsp: Arc::from("/"),
            wire: Arc::new(Wire::Sharded {
                channels: ShardedChannels::new(channel_prefix, "/"),
                mode,
            }),
            opts: BroadcastOptions::default(),
        }
    }

    /// The same emitter for another namespace (a missing leading `/` is added), with no rooms
    /// or flags.
    pub fn of(&self, nsp: &str) -> Emitter {
        let nsp = if nsp.starts_with('/') {
            nsp.to_string()
        } else {
            format!("/{nsp}")
        };
        Emitter {
            conn: self.conn.clone(),
            wire: Arc::new(Wire::new(&self.wire, &self.key, &nsp)),
            nsp: Arc::from(nsp),
            key: Arc::clone(&self.key),
            opts: BroadcastOptions::default(),
        }
    }

    /// Only to the sockets in `rooms` (added to the rooms already chosen).
    pub fn to(&self, rooms: impl IntoRooms) -> Emitter {
        let mut next = self.clone();
        for room in rooms.into_rooms() {
            if !next.opts.rooms.contains(&room) {
                next.opts.rooms.push(room);
            }
        }
        next
    }

    /// Same as [`Emitter::to`].
    pub fn in_room(&self, rooms: impl IntoRooms) -> Emitter {
        self.to(rooms)
    }

    /// Not to the sockets in `rooms`.
    pub fn except(&self, rooms: impl IntoRooms) -> Emitter {
        let mut next = self.clone();
        for room in rooms.into_rooms() {
            if !next.opts.except.contains(&room) {
                next.opts.except.push(room);
            }
        }
        next
    }

    /// Dropped for clients that are not ready to receive it.
    pub fn volatile(&self) -> Emitter {
        let mut next = self.clone();
        next.opts.flags.volatile = true;
        next
    }

    /// Whether the servers may compress the packet.
    pub fn compress(&self, compress: bool) -> Emitter {
        let mut next = self.clone();
        next.opts.flags.compress = Some(compress);
        next
    }

    /// Emits an event with one argument. Queued in order behind earlier messages; see
    /// [`Emitter::emit_args_confirmed`] to wait until Redis took it.
    pub fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), EmitterError> {
        let value = ignis_socketio::proto::value::to_value(data)?;
        self.emit_args(event, vec![value])
    }

    /// Emits an event with any number of arguments (binary ones included).
    pub fn emit_args(&self, event: &str, args: Vec<Value>) -> Result<(), EmitterError> {
        let (channel, msg) = self.encode_event(event, args)?;
        match *self.wire {
            Wire::Classic(_) => self.conn.publish_nowait(channel, msg)?,
            Wire::Sharded { .. } => self.conn.spublish_nowait(channel, msg)?,
        }
        Ok(())
    }

    /// Like [`Emitter::emit_args`], and waits until Redis took the message.
    pub async fn emit_args_confirmed(
        &self,
        event: &str,
        args: Vec<Value>,
    ) -> Result<(), EmitterError> {
        let (channel, msg) = self.encode_event(event, args)?;
        self.send(channel, msg).await
    }

    fn encode_event(
        &self,
        event: &str,
        args: Vec<Value>,
    ) -> Result<(String, Vec<u8>), EmitterError> {
        if is_reserved_event(event) {
            return Err(EmitterError::ReservedEvent(event.to_string()));
        }
        let packet = Packet::event(&*self.nsp, event, args, None);
        match &*self.wire {
            Wire::Classic(channels) => {
                let msg =
                    protocol::encode_broadcast(EMITTER_UID, &packet, &self.opts, Sender::Emitter)?;
                Ok((channels.broadcast_channel(&self.opts), msg))
            }
            Wire::Sharded { channels, mode } => {
                let mut opts = self.opts.clone();
                // The emitter has no acknowledgements, so no timeout.
                opts.flags.timeout = None;
                let channel = channels.broadcast(*mode, &opts, false);
                let msg = self.sharded_message(Body::Broadcast {
                    packet,
                    opts,
                    request_id: None,
                })?;
                Ok((channel, msg))
            }
        }
    }

    fn sharded_message(&self, body: Body) -> Result<Vec<u8>, EmitterError> {
        Ok(sharded_protocol::encode(&Message {
            uid: Some(EMITTER_UID.to_string()),
            nsp: Some(self.nsp.to_string()),
            body,
        })?)
    }

    /// Makes the selected sockets of every server join `rooms`.
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        let rooms = rooms.into_rooms();
        match &*self.wire {
            Wire::Classic(_) => {
                let body = protocol::encode_rooms_request(None, true, &self.opts, &rooms);
                self.request(body.into_bytes()).await
            }
            Wire::Sharded { .. } => {
                let opts = self.selection();
                self.request(self.sharded_message(Body::SocketsJoin { opts, rooms })?)
                    .await
            }
        }
    }

    /// Makes the selected sockets of every server leave `rooms`.
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        let rooms = rooms.into_rooms();
        match &*self.wire {
            Wire::Classic(_) => {
                let body = protocol::encode_rooms_request(None, false, &self.opts, &rooms);
                self.request(body.into_bytes()).await
            }
            Wire::Sharded { .. } => {
                let opts = self.selection();
                self.request(self.sharded_message(Body::SocketsLeave { opts, rooms })?)
                    .await
            }
        }
    }

    /// Disconnects the selected sockets of every server; with `close`, their whole
    /// connections.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitterError> {
        match &*self.wire {
            Wire::Classic(_) => {
                let body = protocol::encode_disconnect_request(None, &self.opts, close);
                self.request(body.into_bytes()).await
            }
            Wire::Sharded { .. } => {
                let opts = self.selection();
                self.request(self.sharded_message(Body::DisconnectSockets { opts, close })?)
                    .await
            }
        }
    }

    /// Emits `[event, ...args]` to the servers' namespace handlers (no acknowledgement, as
    /// with the Node emitter).
    pub async fn server_side_emit(
        &self,
        event: &str,
        args: Vec<Value>,
    ) -> Result<(), EmitterError> {
        if is_reserved_event(event) {
            return Err(EmitterError::ReservedEvent(event.to_string()));
        }
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::from(event));
        data.extend(args);
        match &*self.wire {
            Wire::Classic(_) => {
                let body = protocol::encode_server_side_emit(EMITTER_UID, None, &data);
                self.request(body.into_bytes()).await
            }
            Wire::Sharded { .. } => {
                let body = Body::ServerSideEmit {
                    packet: data,
                    request_id: None,
                };
                self.request(self.sharded_message(body)?).await
            }
        }
    }

    /// The rooms and exceptions, without flags: they mean nothing to a room change.
    fn selection(&self) -> BroadcastOptions {
        BroadcastOptions {
            rooms: self.opts.rooms.clone(),
            except: self.opts.except.clone(),
            ..Default::default()
        }
    }

    /// Sends on the channel of requests (classic) or the main channel (sharded).
    async fn request(&self, body: Vec<u8>) -> Result<(), EmitterError> {
        let channel = match &*self.wire {
            Wire::Classic(channels) => channels.request.clone(),
            Wire::Sharded { channels, .. } => channels.main.clone(),
        };
        self.send(channel, body).await
    }

    async fn send(&self, channel: String, body: Vec<u8>) -> Result<(), EmitterError> {
        match *self.wire {
            Wire::Classic(_) => self.conn.publish(channel, body).await?,
            Wire::Sharded { .. } => self.conn.spublish(channel, body).await?,
        }
        Ok(())
    }
}
