//! `SocketIoComponent`: resolves the bindings, and once the HTTP server runs creates the
//! helper, binds it and routes the Socket.IO path to it.

use std::time::Duration;

use ignis_redis::{
    RedisAdapterConfig, RedisAdapterFactory, RedisConnection, ShardedAdapterConfig,
    ShardedAdapterFactory, StreamsAdapterConfig, StreamsAdapterFactory, SubscriptionMode,
};
use ignis_socketio::SocketIo;

use super::helper::{HelperOptions, SocketIoServerHelper};
use super::keys;
use super::options::ServerOptions;
use crate::app::{Component, ComponentContext};
use crate::error::ApplicationError;

/// The Socket.IO component.
#[derive(Debug, Clone, Default)]
pub struct SocketIoComponent {
    options: HelperOptions,
    redis_key: Option<String>,
    redis_mode: RedisMode,
}

/// The original's name of [`SocketIoComponent`] (`SocketIOComponent` in the TypeScript Ignis),
/// kept so that code ported from it reads the same.
pub type SocketIOComponent = SocketIoComponent;

/// Which protocol the nodes speak over Redis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// `@socket.io/redis-adapter`'s `createAdapter`: PUBLISH/PSUBSCRIBE.
    #[default]
    Classic,
    /// `@socket.io/redis-adapter`'s `createShardedAdapter` (Redis 7): SPUBLISH/SSUBSCRIBE, with
    /// this subscription mode.
    Sharded(SubscriptionMode),
    /// `@socket.io/redis-streams-adapter`: broadcasts through a Redis stream, and sessions kept
    /// in Redis, so that with connection state recovery on a client recovers on any node.
    Streams,
}

impl SocketIoComponent {
    /// The component with the default options (10 s to authenticate, a `ping` every 30 s,
    /// the rooms `io-default` and `io-notification`, the classic Redis protocol).
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a client has to authenticate (10 s by default).
    pub fn authenticate_timeout(mut self, timeout: Duration) -> Self {
        self.options.authenticate_timeout = timeout;
        self
    }

    /// How often authenticated clients get the app-level `ping` event (30 s by default).
    pub fn app_ping_interval(mut self, interval: Duration) -> Self {
        self.options.app_ping_interval = interval;
        self
    }

    /// The channel prefix shared with the other nodes when Redis is bound (`socket.io` by
    /// default, as `@socket.io/redis-adapter`); in [`RedisMode::Streams`], also the stream's
    /// name.
    pub fn redis_key(mut self, key: impl Into<String>) -> Self {
        self.redis_key = Some(key.into());
        self
    }

    /// The Redis protocol (classic by default); every node of a cluster must use the same.
    pub fn redis_mode(mut self, mode: RedisMode) -> Self {
        self.redis_mode = mode;
        self
    }

    /// Rooms every authenticated client joins (`io-default`, `io-notification` by default).
    pub fn default_rooms(mut self, rooms: Vec<String>) -> Self {
        self.options.default_rooms = rooms;
        self
    }
}

impl Component for SocketIoComponent {
    fn name(&self) -> &'static str {
        "SocketIOComponent"
    }

    fn binding(&mut self, ctx: &mut ComponentContext<'_>) -> Result<(), ApplicationError> {
        tracing::info!("Binding SocketIO for application...");
        ctx.bindings
            .bind_default(keys::SERVER_OPTIONS, ServerOptions::default());
        let user = ctx
            .bindings
            .get(keys::SERVER_OPTIONS)
            .map_err(|e| ApplicationError::new(e.to_string()))?;
        let options = ServerOptions::defaults().merge(user);
        options.validate()?;

        // Optional: unbound, the in-memory adapter serves a single node.
        let redis = ctx.bindings.get(keys::REDIS_CONNECTION).ok();
        let authenticate = ctx.bindings.get(keys::AUTHENTICATE_HANDLER).map_err(|_| {
            ApplicationError::new(
                "[DANGER][SocketIOComponent] Invalid authenticateFn to setup io socket server!",
            )
        })?;
        let validate_room = ctx.bindings.get(keys::VALIDATE_ROOM_HANDLER).ok();
        let client_connected = ctx.bindings.get(keys::CLIENT_CONNECTED_HANDLER).ok();
        tracing::debug!(?options, "effective Socket.IO options");

        let mut helper_options = self.options.clone();
        if let Some(identifier) = &options.identifier {
            helper_options.identifier = identifier.clone();
        }
        let redis_key = self.redis_key.clone();
        let redis_mode = self.redis_mode;
        ctx.register_post_start_hook("socket-io-initialize", move |app| async move {
            let mut builder = options.apply(SocketIo::builder());
            let connection = match redis {
                Some(config) => {
                    // Fails after the configured timeout with an error naming the address.
                    let connection = RedisConnection::connect(config).await?;
                    builder = match redis_mode {
                        RedisMode::Classic => {
                            let mut adapter = RedisAdapterConfig::default();
                            if let Some(key) = redis_key {
                                adapter.key = key;
                            }
                            builder.adapter(RedisAdapterFactory::new(connection.clone(), adapter))
                        }
                        RedisMode::Sharded(subscription_mode) => {
                            let mut adapter = ShardedAdapterConfig {
                                subscription_mode,
                                ..ShardedAdapterConfig::default()
                            };
                            if let Some(key) = redis_key {
                                adapter.channel_prefix = key;
                            }
                            builder.adapter(ShardedAdapterFactory::new(connection.clone(), adapter))
                        }
                        RedisMode::Streams => {
                            let mut adapter = StreamsAdapterConfig::default();
                            if let Some(key) = redis_key {
                                adapter.stream_name = key.clone();
                                adapter.channel_prefix = key;
                            }
                            let factory = StreamsAdapterFactory::new(connection.clone(), adapter)?;
                            // Read from the stream's end as it is now before taking traffic, so
                            // that nothing added from then on is missed.
                            if !factory.reading(Duration::from_secs(10)).await {
                                return Err(format!(
                                    "Redis at {} accepted the connection but its stream could not be read within 10 s",
                                    connection.address()
                                )
                                .into());
                            }
                            builder.adapter(factory)
                        }
                    };
                    Some(connection)
                }
                None => None,
            };
            let io: SocketIo = builder.build();
            let helper = SocketIoServerHelper::new(
                io.clone(),
                helper_options,
                authenticate,
                validate_room,
                client_connected,
            )
            .with_redis(connection.clone());
            if let Some(connection) = &connection {
                // Take traffic only once this node hears the others.
                if tokio::time::timeout(Duration::from_secs(10), connection.subscribed())
                    .await
                    .is_err()
                {
                    return Err(format!(
                        "Redis at {} accepted the connection but the subscriptions did not complete within 10 s",
                        connection.address()
                    )
                    .into());
                }
                tracing::info!(address = connection.address(), "Socket.IO scaled over Redis");
            }
            app.bind(keys::SOCKET_IO_INSTANCE, helper);
            app.mount_socket_io(io);
            tracing::info!("SocketIO initialized");
            Ok(())
        });
        ctx.register_stop_hook(|app| async move {
            if let Ok(helper) = app.get(keys::SOCKET_IO_INSTANCE) {
                helper.shutdown().await;
            }
        });
        Ok(())
    }
}
