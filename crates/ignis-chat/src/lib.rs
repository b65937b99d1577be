//! `ignis-chat`: the realtime chat of the Ignis tutorial (spec §15) made real, on the public API
//! of the `ignis` crate.
//!
//! Accounts with argon2id passwords and HS256 tokens, rooms with members and stored history,
//! direct messages, typing indicators and per-user presence, on SQLite or PostgreSQL; Socket.IO
//! on `/io` through [`ignis::socketio::SocketIoComponent`] (its authenticate flow unchanged),
//! the REST API under `/api`. Several instances on one Redis and one database form one chat.

pub mod api;
pub mod auth;
pub mod config;
pub mod model;
pub mod page;
pub mod presence;
pub mod socket;
pub mod store;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use ignis::socketio::{
    AuthenticateHandler, CorsOptions, ServerOptions, SocketIoComponent, SocketIoServerHelper,
    ValidateRoomHandler, keys,
};
use ignis::{AppConfig, Application, ApplicationError, Component, ComponentContext, RunningApp};
use ignis_socketio::engine::AllowOrigin;

pub use config::{Cli, Config, ConfigError, LogFormat};
pub use store::{Store, StoreError};

use crate::auth::Tokens;
use crate::presence::Presence;

/// Why the chat did not start.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The JWT secret file could not be read or created.
    #[error(transparent)]
    Secret(#[from] auth::SecretError),
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {error}")]
    DataDir {
        /// The directory, as configured.
        path: String,
        /// Why it could not be created.
        error: std::io::Error,
    },
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The application (HTTP listener, Socket.IO, Redis) did not start.
    #[error(transparent)]
    Start(#[from] ignis::StartError),
}

/// What every part of the chat shares.
pub struct Chat {
    /// The database.
    pub store: Store,
    /// Issues and checks the tokens of REST and Socket.IO.
    pub tokens: Tokens,
    /// Set by the post-start hook, before any client can authenticate.
    helper: OnceLock<SocketIoServerHelper>,
    /// This node's users' presence.
    pub presence: Arc<Presence>,
    pub(crate) sockets: socket::Sockets,
    /// Bounds the argon2 hashes computed at once (each takes 19 MiB and tens of ms of CPU).
    pub(crate) hashing: tokio::sync::Semaphore,
}

impl Chat {
    /// The Socket.IO helper; `None` only before the server started.
    pub fn helper(&self) -> Option<&SocketIoServerHelper> {
        self.helper.get()
    }
}

/// A chat that is serving: its address, its state, and the way to stop it.
pub struct RunningChat {
    app: RunningApp,
    chat: Arc<Chat>,
}

impl RunningChat {
    /// The address the HTTP and Socket.IO listener is bound to (the port it picked when
    /// configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.app.local_addr()
    }

    /// The shared state (tests reach the store through it).
    pub fn chat(&self) -> &Arc<Chat> {
        &self.chat
    }

    /// Stops serving (this node's users go offline unless another node holds them), then
    /// closes the database.
    pub async fn stop(&self) {
        self.app.stop().await;
        self.chat.store.close().await;
    }

    /// Serves until SIGINT or SIGTERM, then stops as [`RunningChat::stop`] does.
    pub async fn run_until_signal(self) {
        let chat = self.chat.clone();
        self.app.run_until_signal().await;
        chat.store.close().await;
    }
}

/// Clears this node's presence when the application stops.
struct StopPresence(Arc<Chat>);

impl Component for StopPresence {
    fn name(&self) -> &'static str {
        "ChatPresence"
    }

    fn binding(&mut self, ctx: &mut ComponentContext<'_>) -> Result<(), ApplicationError> {
        let chat = self.0.clone();
        ctx.register_stop_hook(move |_| async move { chat.presence.shutdown().await });
        Ok(())
    }
}

/// Opens the database, then starts the application: Socket.IO on `/io`, REST under `/api`,
/// the page at `/`.
pub async fn start(config: Config) -> Result<RunningChat, ChatError> {
    if config.database_url.is_none() || config.jwt_secret.is_none() {
        std::fs::create_dir_all(&config.data_dir).map_err(|error| ChatError::DataDir {
            path: config.data_dir.display().to_string(),
            error,
        })?;
    }
    let secret = auth::load_or_create_secret(config.jwt_secret.as_deref(), &config.data_dir)?;
    let store = match &config.database_url {
        Some(url) => Store::open(url).await?,
        None => Store::open_sqlite_file(&config.data_dir.join("chat.db")).await?,
    };
    tracing::info!(database = store.kind(), "database ready");
    let chat = Arc::new(Chat {
        presence: Arc::new(Presence::new(
            store.clone(),
            config.presence_grace,
            config.node_heartbeat,
            config.message_rate,
        )),
        store,
        tokens: Tokens::new(&secret),
        helper: OnceLock::new(),
        sockets: socket::Sockets::default(),
        hashing: tokio::sync::Semaphore::new(4),
    });

    let server_options = ServerOptions {
        path: Some("/io".into()),
        cors: Some(CorsOptions {
            origin: Some(AllowOrigin::Any),
            ..CorsOptions::default()
        }),
        ..ServerOptions::default()
    };
    // Chat rooms are joined with `room:join`, which checks membership; the component's generic
    // `join` event joins nothing.
    let validate = ValidateRoomHandler::new(|_, _| async { Ok(Vec::new()) });
    // The socket is admitted (its events handled) by the authenticate handler, before the
    // component emits `authenticated`: see [`socket::authenticate`].
    let handlers = Arc::new(socket::handlers(&chat));
    let c = chat.clone();
    let authenticate = AuthenticateHandler::new(move |request| {
        let chat = c.clone();
        let handlers = handlers.clone();
        async move { socket::authenticate(&chat, &handlers, request).await }
    });
    let api_chat = chat.clone();
    let hook_chat = chat.clone();
    let mut app = Application::new(AppConfig {
        name: "ignis-chat".into(),
        host: config.host.clone(),
        port: config.port,
        ..AppConfig::default()
    })
    .bind(keys::SERVER_OPTIONS, server_options)
    .bind(keys::AUTHENTICATE_HANDLER, authenticate)
    .bind(keys::VALIDATE_ROOM_HANDLER, validate)
    // Before the Socket.IO component: its stop hook runs first, while the clients can still
    // hear that this node's users went offline.
    .component(StopPresence(chat.clone()))
    .component(
        SocketIoComponent::new()
            .redis_key(config.redis_key.clone())
            .default_rooms(Vec::new()),
    )
    .routes(page::router())
    .routes_with(move |_| api::router(api_chat))
    .register_post_start_hook("chat", move |app| async move {
        let helper = app.get(keys::SOCKET_IO_INSTANCE)?;
        let _ = hook_chat.helper.set(helper.clone());
        hook_chat.presence.start(helper).await?;
        Ok(())
    });
    if let Some(redis) = config.redis.clone() {
        app = app.bind(keys::REDIS_CONNECTION, redis);
    }
    let app = app.start().await?;
    Ok(RunningChat { app, chat })
}
