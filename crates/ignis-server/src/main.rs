//! `ignis-server`: the standalone Ignis real-time server.
//!
//! Socket.IO on `/io` with the Ignis authentication flow (JWT, or an explicit open development
//! mode), rooms checked against configurable rules, the chat events of the original example, and
//! a REST API under `/api` to send to clients, rooms or everyone. `--help` lists every setting.
//! SIGTERM drains the node (see `drain.rs`) before it exits.

mod admin_ui;
mod api;
mod auth;
mod chat;
mod config;
mod drain;
mod logging;
mod metrics;
#[cfg(test)]
mod metrics_tests;
mod print_config;
mod procstat;
mod rooms;
mod settings;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tls_tests;

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use clap::Parser;
use ignis::socketio::{
    AuthenticateHandler, CorsOptions, RedisConfig, ServerOptions, SocketIoComponent,
    ValidateRoomHandler, keys,
};
use ignis::{AppConfig, Application, ServerTls};
use ignis_socketio::engine::AllowOrigin;
use ignis_socketio::proto::value::Map;
use ignis_socketio::{RecoveryConfig, Value};

use crate::auth::Verifier;
use crate::chat::{ChatOptions, subject_of};
use crate::config::{Cli, Command, Config};
use crate::drain::{DrainSwitch, Signals, Stop};
use crate::logging::Escaped;
use crate::rooms::RoomRules;

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

fn build(
    config: &Config,
    verifier: Verifier,
    redis: Option<RedisConfig>,
    drain: DrainSwitch,
) -> Application {
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
    let server_options = config.engine.apply(ServerOptions {
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
    });
    let slot: chat::HelperSlot = Arc::new(OnceLock::new());
    let hook_slot = slot.clone();
    let metrics = metrics::Setup::new(config.metrics, config.api_key.clone());
    let metrics_listener = metrics.clone();
    let api_config = api::ApiConfig {
        base_path: config.base_path.clone(),
        api_key: config.api_key.clone(),
        cors_origins: config.cors_origins.clone(),
        app_name: config.app_name.clone(),
        drain,
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
        SocketIoComponent::new()
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
    if let Some(admin) = config.admin_ui.as_ref().map(|a| a.options()) {
        app = app.register_post_start_hook("admin-ui", move |app| async move {
            let helper = app.get(keys::SOCKET_IO_INSTANCE)?;
            // Runs as long as the server does.
            let _ui = ignis_admin::instrument(helper.io(), admin)?;
            Ok(())
        });
    }
    if let Some(redis) = redis {
        app = app.bind(keys::REDIS_CONNECTION, redis);
    }
    app
}

/// Reloads the certificate and key on every SIGHUP: connections opened afterwards get the new
/// ones, open connections keep theirs. A file that cannot be used leaves the previous
/// certificate in place, and says why.
fn reload_on_sighup(tls: Arc<ServerTls>) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate reloaded"),
                Err(e) => {
                    tracing::error!("TLS certificate not reloaded, the previous one stays: {e}")
                }
            }
        }
    });
    Ok(())
}

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = cli.command.take();
    // Needs no configuration: made before there is one to run with.
    if let Some(Command::AdminUiHash { cost }) = command {
        return admin_ui::print_hash(cost);
    }
    let print = cli.print_config;
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ignis-server: {e}");
            return ExitCode::from(2);
        }
    };
    if print {
        return match print_config::to_toml(&config) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ignis-server: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
    // Kept to the end: dropped, the lines still queued for the log files are written.
    let _log_guards = match logging::init(&config.log) {
        Ok(guards) => guards,
        Err(e) => {
            eprintln!("ignis-server: {e}");
            return ExitCode::from(2);
        }
    };
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
    if let Some(warning) = config.recovery_scope_warning() {
        tracing::warn!("{warning}");
    }
    // Listening before the start: a SIGTERM that comes while it runs drains (at once).
    let signals = Signals::listen();
    let drain = DrainSwitch::new(config.drain_window);
    // Checked when the configuration was loaded.
    let redis = config.redis.clone();
    let mut app = build(&config, verifier, redis, drain.clone());
    let tls = match &config.tls {
        None => None,
        Some(files) => match ServerTls::from_pem_files(&files.cert, &files.key) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => {
                tracing::error!("invalid TLS certificate or key (--tls-cert, --tls-key): {e}");
                return ExitCode::from(2);
            }
        },
    };
    if let Some(tls) = &tls {
        app = app.tls(tls.clone());
        if let Err(e) = reload_on_sighup(tls.clone()) {
            tracing::error!("cannot listen for SIGHUP to reload the certificate: {e}");
            return ExitCode::FAILURE;
        }
    }
    let running = match app.start().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = running.local_addr();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "{} listening on {scheme}://{addr} (REST API under {}, Socket.IO on {})",
        config.app_name,
        config.base_path,
        config.socket_path
    );
    // A line for scripts and tests that start the server on port 0.
    println!("listening on {}", addr.port());
    run_until_drained(running, signals, drain).await
}

/// Serves until SIGTERM, a Ctrl-C or a drain asked through the API; then drains (see
/// `drain.rs`) and stops. A second Ctrl-C during the drain stops at once (exit code 130).
async fn run_until_drained(
    running: ignis::RunningApp,
    mut signals: Signals,
    drain: DrainSwitch,
) -> ExitCode {
    tokio::select! {
        stop = signals.next() => {
            drain.request();
            tracing::info!(signal = ?stop, "signal received: draining");
        }
        _ = drain.requested() => {}
    }
    if let Ok(helper) = running.handle().get(keys::SOCKET_IO_INSTANCE) {
        let drained = helper.drain(drain.window());
        tokio::pin!(drained);
        loop {
            tokio::select! {
                outcome = &mut drained => {
                    tracing::info!(
                        moved = outcome.moved,
                        remaining = outcome.remaining,
                        "drained; stopping"
                    );
                    break;
                }
                stop = signals.next() => match stop {
                    Stop::Interrupt => {
                        tracing::warn!("second interrupt: stopping now");
                        return ExitCode::from(130);
                    }
                    Stop::Terminate => {
                        tracing::info!("SIGTERM again: already draining");
                    }
                },
            }
        }
    }
    running.stop().await;
    ExitCode::SUCCESS
}
