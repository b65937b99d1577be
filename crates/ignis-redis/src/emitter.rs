//! [`Emitter`]: publishes to the clients of a Redis cluster from any process, in the format of
//! `@socket.io/redis-emitter` 5, so Ignis and Node servers alike deliver what it sends.

use std::sync::Arc;

use ignis_socketio::proto::socketio::{Packet, is_reserved_event};
use ignis_socketio::{BroadcastOptions, IntoRooms, Value};
use serde::Serialize;

use crate::connection::{RedisConnection, RedisError};
use crate::protocol::{self, Channels, EMITTER_UID, Sender};

/// Why an emitter could not publish.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    #[error("\"{0}\" is a reserved event name")]
    ReservedEvent(String),
    #[error("the data cannot be serialised: {0}")]
    Value(#[from] ignis_socketio::proto::value::ValueError),
    #[error("the message cannot be encoded: {0}")]
    Encode(#[from] protocol::ProtocolError),
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Publishes events, room changes and disconnections to every server of a cluster. Cheap to
/// clone; every modifier returns a new emitter.
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
    channels: Arc<Channels>,
    opts: BroadcastOptions,
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
            channels: Arc::new(Channels::new(key, "/")),
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
            channels: Arc::new(Channels::new(&self.key, &nsp)),
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
        self.conn.publish_nowait(channel, msg)?;
        Ok(())
    }

    /// Like [`Emitter::emit_args`], and waits until Redis took the message.
    pub async fn emit_args_confirmed(
        &self,
        event: &str,
        args: Vec<Value>,
    ) -> Result<(), EmitterError> {
        let (channel, msg) = self.encode_event(event, args)?;
        self.conn.publish(channel, msg).await?;
        Ok(())
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
        let msg = protocol::encode_broadcast(EMITTER_UID, &packet, &self.opts, Sender::Emitter)?;
        Ok((self.channels.broadcast_channel(&self.opts), msg))
    }

    /// Makes the selected sockets of every server join `rooms`.
    pub async fn sockets_join(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        let body = protocol::encode_rooms_request(None, true, &self.opts, &rooms.into_rooms());
        self.request(body).await
    }

    /// Makes the selected sockets of every server leave `rooms`.
    pub async fn sockets_leave(&self, rooms: impl IntoRooms) -> Result<(), EmitterError> {
        let body = protocol::encode_rooms_request(None, false, &self.opts, &rooms.into_rooms());
        self.request(body).await
    }

    /// Disconnects the selected sockets of every server; with `close`, their whole
    /// connections.
    pub async fn disconnect_sockets(&self, close: bool) -> Result<(), EmitterError> {
        let body = protocol::encode_disconnect_request(None, &self.opts, close);
        self.request(body).await
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
        let body = protocol::encode_server_side_emit(EMITTER_UID, None, &data);
        self.request(body).await
    }

    async fn request(&self, body: String) -> Result<(), EmitterError> {
        self.conn
            .publish(self.channels.request.clone(), body.into_bytes())
            .await?;
        Ok(())
    }
}
