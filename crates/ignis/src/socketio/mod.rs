//! The Socket.IO component: its binding keys, options and the server helper.

mod component;
mod handlers;
mod helper;
mod options;
mod timers;

pub use component::{RedisMode, SocketIOComponent, SocketIoComponent};
pub use handlers::{
    AuthRequest, AuthenticateHandler, ClientConnectedHandler, ConnectionFn, ServerEventFn,
    ServerListener, ValidateRoomHandler,
};
pub use helper::{
    ClientRecord, DRAIN_LEAD_MAX, DrainOutcome, HelperOptions, MESSAGE_AUTH_TIMEOUT,
    SESSION_AUTHENTICATED, SendError, SendOptions, SocketIOServerHelper, SocketIoServerHelper,
};
pub use ignis_redis::{RedisConfig, RedisConnection, SubscriptionMode};
pub use ignis_socketio::proto::ignis as constants;
pub use ignis_socketio::{AbuseCounters, EventRate, SocketLimits};
pub use options::{CorsOptions, DeflateOptions, DeflateSetting, ServerOptions};

// The figures of the helper and of its Redis connection, for monitoring.
pub use helper::HelperStats;
pub use ignis_redis::{ConnectionState, LatencySnapshot, REQUEST_LATENCY_BOUNDS, RedisStats};

/// The binding keys of the component, with the original's key strings.
pub mod keys {
    use super::*;
    use crate::bindings::BindingKey;
    use ignis_socketio::proto::ignis::binding_keys as names;

    /// The Socket.IO server options (path, CORS, limits, ...); unbound, the defaults.
    pub const SERVER_OPTIONS: BindingKey<ServerOptions> = BindingKey::new(names::SERVER_OPTIONS);
    /// How to reach Redis; bound, the component scales over it.
    pub const REDIS_CONNECTION: BindingKey<RedisConfig> = BindingKey::new(names::REDIS_CONNECTION);
    /// Decides whether a client is authenticated; required.
    pub const AUTHENTICATE_HANDLER: BindingKey<AuthenticateHandler> =
        BindingKey::new(names::AUTHENTICATE_HANDLER);
    /// Decides which rooms a client joins; unbound, every `join` is refused.
    pub const VALIDATE_ROOM_HANDLER: BindingKey<ValidateRoomHandler> =
        BindingKey::new(names::VALIDATE_ROOM_HANDLER);
    /// Runs once a client is authenticated, to register the application's events.
    pub const CLIENT_CONNECTED_HANDLER: BindingKey<ClientConnectedHandler> =
        BindingKey::new(names::CLIENT_CONNECTED_HANDLER);
    /// The server helper, bound by the component once the server runs.
    pub const SOCKET_IO_INSTANCE: BindingKey<SocketIoServerHelper> =
        BindingKey::new(names::SOCKET_IO_INSTANCE);
}
