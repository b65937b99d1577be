//! `ignis-server`: the standalone Ignis real-time server.
//!
//! Socket.IO on `/io` with the Ignis authentication flow (JWT, or an explicit open development
//! mode), rooms checked against configurable rules, the chat events of the original example, and
//! a REST API under `/api` to send to clients, rooms or everyone. `--help` lists every setting.

mod api;
mod auth;
mod chat;
mod config;
mod logging;
mod metrics;
#[cfg(test)]
mod metrics_tests;
mod procstat;
mod rooms;
#[cfg(test)]
mod tests;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use ignis::socketio::{
    AuthenticateHandler, CorsOptions, RedisConfig, ServerOptions, SocketIOComponent,
    ValidateRoomHandler, keys,
};
use ignis::{AppConfig, Application};
use ignis_socketio::engine::AllowOrigin;
use ignis_socketio::proto::value::Map;
use ignis_socketio::{RecoveryConfig, Value};

use crate::auth::Verifier;
use crate::chat::{ChatOptions, subject_of};
use crate::config::{Cli, Command, Config, LogFormat};
use crate::logging::Escaped;
use crate::rooms::RoomRules;

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}

/// What `/io` answers to browsers: without a list, any origin but no credentials (enough for
/// socket.io-client, whose `withCredentials` is off by default, and no page can ride on a
/// user's cookies); a list, those origins with credentials; `*`, any origin without them.
fn socket_cors(origins: Option<&[String]>) -> CorsOptions {
    let (origin, credentials) = match origins {
        None => (AllowOrigin::Any, false),
        Some(list) if list.iter().any(|o| o == "*") => (AllowOrigin::Any, false),
        Some(list) => (AllowOrigin::List(list.to_vec()), !list.is_empty()),
    };
    CorsOptions {
        origin: Some(origin),
        credentials: Some(credentials),
        ..CorsOptions::default()
    }
}

fn build(config: &Config, verifier: Verifier, redis: Option<RedisConfig>) -> Application {
    let verifier = Arc::new(verifier);
    let authenticate = AuthenticateHandler::new(move |request| {
        let verifier = verifier.clone();
        async move {
            match verifier.verify(&request) {
                Ok(claims) => {
                    tracing::info!(
                        id = %request.socket_id,
                        address = %request.handshake.address(),
                        sub = %Escaped(claims.sub.as_deref().unwrap_or("")),
                        "client authenticated"
                    );
                    let mut data = Map::new();
                    if let Some(sub) = claims.sub {
                        data.insert("sub", sub);
                    }
                    request.socket.set_data(Value::Map(data));
                    Ok(true)
                }
                Err(reason) => {
                    // The reason can quote the token (an unknown `alg`, say): escaped.
                    tracing::info!(
                        id = %request.socket_id,
                        reason = %Escaped(&reason),
                        "token refused"
                    );
                    Ok(false)
                }
            }
        }
    });
    let rules = Arc::new(RoomRules::new(
        config.room_allow.clone(),
        config.room_deny.clone(),
    ));
    let chat_options = ChatOptions {
        rules: rules.clone(),
        client_list: config.client_list,
    };
    let validate = ValidateRoomHandler::new(move |socket, requested| {
        let rules = rules.clone();
        async move { Ok(rules.filter(requested, subject_of(&socket).as_deref())) }
    });
    let server_options = ServerOptions {
        path: Some(config.socket_path.clone()),
        cors: Some(socket_cors(config.cors_origins.as_deref())),
        max_rooms_per_socket: Some(config.limits.max_rooms_per_socket),
        event_rate_limit: Some(config.limits.event_rate),
        max_event_payload: Some(config.limits.max_event_payload),
        max_queued_messages: Some(config.limits.max_queued_messages),
        max_queued_bytes: Some(config.limits.max_queued_bytes),
        body_timeout: Some(config.limits.body_timeout),
        max_connections_per_ip: Some(config.limits.max_connections_per_ip),
        handshakes_per_second_per_ip: Some(config.limits.handshakes_per_second_per_ip),
        handshake_burst_per_ip: Some(config.limits.handshake_burst_per_ip),
        connection_state_recovery: config.recovery_max_disconnection.map(|max| RecoveryConfig {
            max_disconnection_duration: max,
            ..RecoveryConfig::default()
        }),
        ..ServerOptions::default()
    };
    let slot: chat::HelperSlot = Arc::new(OnceLock::new());
    let hook_slot = slot.clone();
    let metrics = metrics::Setup::new(config.metrics, config.api_key.clone());
    let metrics_listener = metrics.clone();
    let api_config = api::ApiConfig {
        base_path: config.base_path.clone(),
        api_key: config.api_key.clone(),
        cors_origins: config.cors_origins.clone(),
        app_name: config.app_name.clone(),
    };

    let mut app = Application::new(AppConfig {
        name: config.app_name.clone(),
        host: config.host.clone(),
        port: config.port,
        request_head_timeout: config.request_head_timeout,
    })
    .bind(keys::SERVER_OPTIONS, server_options)
    .bind(keys::AUTHENTICATE_HANDLER, authenticate)
    .bind(keys::VALIDATE_ROOM_HANDLER, validate)
    .bind(
        keys::CLIENT_CONNECTED_HANDLER,
        chat::handler(slot, chat_options),
    )
    .component(
        SocketIOComponent::new()
            .redis_key(config.redis_key.clone())
            .redis_mode(config.redis_mode)
            .authenticate_timeout(config.auth_timeout)
            .app_ping_interval(config.app_ping_interval)
            .default_rooms(config.default_rooms.clone()),
    )
    .routes_with(move |handle| metrics.wrap(api::router(api_config, handle.clone()), handle))
    .register_post_start_hook("metrics", move |app| metrics_listener.listen_apart(app))
    .register_post_start_hook("chat-handlers", move |app| async move {
        let helper = app.get(keys::SOCKET_IO_INSTANCE)?;
        // Only when the line would be written: the benchmarks run at `warn`, and then a
        // connection costs nothing more.
        if tracing::enabled!(tracing::Level::INFO) {
            helper
                .io()
                .main_namespace()
                .use_middleware(|socket| async move {
                    let handshake = socket.handshake();
                    tracing::info!(
                        id = %socket.id(),
                        address = %handshake.address(),
                        transport = ?socket.transport(),
                        "client connected"
                    );
                    Ok(())
                });
        }
        let _ = hook_slot.set(helper);
        Ok(())
    });
    if let Some(redis) = redis {
        app = app.bind(keys::REDIS_CONNECTION, redis);
    }
    app
}

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = cli.command.take();
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ignis-server: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::MintToken { sub, ttl }) = command {
        return match auth::mint(&config.jwt, &sub, ttl) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ignis-server: {e}");
                ExitCode::from(2)
            }
        };
    }
    init_logging(config.log_format);
    let verifier = match Verifier::new(&config.jwt) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if verifier.is_open() {
        tracing::warn!(
            "OPEN DEVELOPMENT MODE: no JWT key is configured, so EVERY client is authenticated. \
             Set --jwt-secret or --jwt-public-key-file (APP_ENV_JWT_SECRET, APP_ENV_JWT_PUBLIC_KEY_FILE) in production."
        );
    }
    if config.api_key.is_none() {
        tracing::warn!(
            "no API key is configured: the REST management API is open to anyone who can reach it"
        );
    }
    // Checked when the configuration was loaded.
    let redis = config.redis.clone();
    let running = match build(&config, verifier, redis).start().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = running.local_addr();
    tracing::info!(
        "{} listening on http://{addr} (REST API under {}, Socket.IO on {})",
        config.app_name,
        config.base_path,
        config.socket_path
    );
    // A line for scripts and tests that start the server on port 0.
    println!("listening on {}", addr.port());
    running.run_until_signal().await;
    ExitCode::SUCCESS
}
