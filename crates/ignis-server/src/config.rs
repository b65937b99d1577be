//! Configuration: command-line flags, then the environment (the original's `APP_ENV_*` names),
//! then an optional TOML file, then defaults that let the server run with nothing set.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use ignis::socketio::{RedisConfig, RedisMode, SubscriptionMode};
use ignis_socketio::engine::EngineConfig;
use ignis_socketio::{
    DEFAULT_EVENT_RATE, DEFAULT_MAX_EVENT_PAYLOAD, DEFAULT_MAX_ROOMS_PER_SOCKET, EventRate,
};
use serde::Deserialize;

use crate::chat::ClientList;
use crate::logging::LogSettings;
use crate::settings::{EngineCli, EngineFile, EngineSettings};

/// The Ignis real-time server: Socket.IO with authentication and rooms, and a REST API to send
/// to clients, rooms or everyone.
#[derive(Debug, Parser, Default)]
#[command(name = "ignis-server", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// A TOML file with any of the settings below (snake_case keys, e.g. `port = 3000`).
    #[arg(long, env = "APP_ENV_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "APP_ENV_SERVER_HOST")]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 3000].
    #[arg(long, env = "APP_ENV_SERVER_PORT")]
    pub port: Option<u16>,
    /// Prefix of the REST API [default: /api].
    #[arg(long, env = "APP_ENV_SERVER_BASE_PATH")]
    pub base_path: Option<String>,
    /// Path of the Socket.IO server [default: /io].
    #[arg(long, env = "APP_ENV_SOCKETIO_PATH")]
    pub socket_path: Option<String>,
    /// Origins that browsers let call the REST API and `/io` with credentials (cookies),
    /// comma-separated, e.g. `https://app.example.com`; `*` lets any origin call both, without
    /// credentials. Unset, the REST API has no cross-origin access and `/io` answers any origin
    /// without credentials [default: unset].
    #[arg(long, env = "APP_ENV_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origins: Option<Vec<String>>,
    /// Redis URL for running several instances (`redis://[user:password@]host:port`,
    /// `rediss://` for TLS); several, comma-separated, are seed nodes of a Redis Cluster. Also
    /// read from APP_ENV_REDIS_SOCKETIO_HOST/PORT/PASSWORD, falling back to
    /// APP_ENV_REDIS_HOST/PORT/PASSWORD.
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_URL")]
    pub redis_url: Option<String>,
    /// PEM file of the CA that signed the Redis server certificates, instead of the built-in
    /// roots; implies TLS.
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_TLS_CA")]
    pub redis_tls_ca: Option<PathBuf>,
    /// Channel prefix shared by every node on Redis (the `key` of @socket.io/redis-adapter)
    /// [default: socket.io].
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_KEY")]
    pub redis_key: Option<String>,
    /// Redis protocol: `classic` (PUBLISH, @socket.io/redis-adapter's createAdapter),
    /// `sharded` (Redis 7 SPUBLISH, createShardedAdapter) or `streams`
    /// (@socket.io/redis-streams-adapter: sessions kept in Redis, so that with
    /// --recovery-max-disconnection-ms a client recovers on any node) [default: classic].
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_MODE")]
    pub redis_mode: Option<String>,
    /// Subscription mode of the sharded protocol: `dynamic`, `dynamic-private` or `static`
    /// [default: dynamic].
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_SUBSCRIPTION_MODE")]
    pub redis_subscription_mode: Option<String>,
    /// Milliseconds a connection has to send a complete request head; an idle keep-alive
    /// connection closes after as long [default: 30000].
    #[arg(long, env = "APP_ENV_SERVER_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// Milliseconds a client has to authenticate after connecting [default: 10000].
    #[arg(long, env = "APP_ENV_SOCKETIO_AUTH_TIMEOUT_MS")]
    pub auth_timeout_ms: Option<u64>,
    /// Milliseconds between app-level `ping` events to authenticated clients [default: 30000].
    #[arg(long, env = "APP_ENV_SOCKETIO_PING_INTERVAL_MS")]
    pub app_ping_interval_ms: Option<u64>,
    /// Connection state recovery: milliseconds a disconnected client's id, rooms and missed
    /// broadcasts are kept for it to come back to [default: off].
    #[arg(long, env = "APP_ENV_SOCKETIO_RECOVERY_MAX_DISCONNECTION_MS")]
    pub recovery_max_disconnection_ms: Option<u64>,
    /// Rooms every authenticated client joins, comma-separated [default: io-default,io-notification].
    #[arg(long, env = "APP_ENV_SOCKETIO_DEFAULT_ROOMS", value_delimiter = ',')]
    pub default_rooms: Option<Vec<String>>,
    /// Rooms a client may join, comma-separated patterns: `*` matches anything, `{sub}` is the
    /// token's subject (e.g. `public-*,user:{sub}`) [default: *].
    #[arg(long, env = "APP_ENV_SOCKETIO_ROOM_ALLOW", value_delimiter = ',')]
    pub room_allow: Option<Vec<String>>,
    /// Rooms a client may never join, comma-separated patterns (e.g. `private-*`); deny wins
    /// over allow [default: none].
    #[arg(long, env = "APP_ENV_SOCKETIO_ROOM_DENY", value_delimiter = ',')]
    pub room_deny: Option<Vec<String>>,
    /// What the `get-clients` event lists: `own` (the sender's id only) or `all` (every
    /// authenticated client's id); `count` is every authenticated client either way
    /// [default: own].
    #[arg(long, env = "APP_ENV_SOCKETIO_GET_CLIENTS")]
    pub get_clients: Option<String>,
    /// Most rooms one socket may hold, its own-id room and the default rooms included; a join
    /// past it is refused with `ROOM_LIMIT` [default: 1000].
    #[arg(long, env = "APP_ENV_SOCKETIO_MAX_ROOMS_PER_SOCKET")]
    pub max_rooms_per_socket: Option<usize>,
    /// Events per second one socket may send, sustained; past it an event is refused with
    /// `RATE_LIMITED`, and a socket that keeps on is disconnected. 0 turns the limit off
    /// [default: 1000].
    #[arg(long, env = "APP_ENV_SOCKETIO_EVENT_RATE")]
    pub event_rate: Option<u32>,
    /// Events one socket may send at once after a quiet period (the token bucket's size)
    /// [default: the rate].
    #[arg(long, env = "APP_ENV_SOCKETIO_EVENT_BURST")]
    pub event_burst: Option<u32>,
    /// Most bytes of one event (its text and binary attachments); a larger one is refused with
    /// `PAYLOAD_TOO_LARGE` [default: 1000000].
    #[arg(long, env = "APP_ENV_SOCKETIO_MAX_EVENT_PAYLOAD")]
    pub max_event_payload: Option<usize>,
    /// Messages queued for one client that does not read before it is cut ("outbound queue
    /// full") [default: 8192].
    #[arg(long, env = "APP_ENV_SOCKETIO_MAX_QUEUED_MESSAGES")]
    pub max_queued_messages: Option<usize>,
    /// Bytes queued for one client that does not read before it is cut [default: 16777216].
    #[arg(long, env = "APP_ENV_SOCKETIO_MAX_QUEUED_BYTES")]
    pub max_queued_bytes: Option<usize>,
    /// Milliseconds a request body may take to arrive; past it the answer is 408 and the
    /// connection closes [default: 30000].
    #[arg(long, env = "APP_ENV_SERVER_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: Option<u64>,
    /// Connections open at once from one IP address (IPv6: one /64); more are closed as they
    /// are accepted. 0 is no limit, the default: behind a load balancer or proxy every client
    /// has its address [default: 0].
    #[arg(long, env = "APP_ENV_SERVER_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<u32>,
    /// Socket.IO handshakes per second from one IP address, answered 429 beyond; 0 is no limit
    /// (for the reason above) [default: 0].
    #[arg(long, env = "APP_ENV_SERVER_HANDSHAKES_PER_SECOND_PER_IP")]
    pub handshakes_per_second_per_ip: Option<u32>,
    /// Handshakes one IP address may make at once before that rate applies [default: 20].
    #[arg(long, env = "APP_ENV_SERVER_HANDSHAKE_BURST_PER_IP")]
    pub handshake_burst_per_ip: Option<u32>,
    /// HS256 secret that client JWTs are signed with (tokens must carry a numeric `exp`). Prefer
    /// the environment variable: a flag shows in `ps`.
    #[arg(long, env = "APP_ENV_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file of the RS256 or ES256 public key that client JWTs are signed with.
    #[arg(long, env = "APP_ENV_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Seconds of clock difference allowed when checking a token's `exp` and `nbf`
    /// [default: 60].
    #[arg(long, env = "APP_ENV_JWT_LEEWAY_SECS")]
    pub jwt_leeway_secs: Option<u64>,
    /// When set, a token's `iss` must be this [default: not checked].
    #[arg(long, env = "APP_ENV_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// When set, a token's `aud` must be (or contain) this [default: not checked].
    #[arg(long, env = "APP_ENV_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Key the REST API requires in `X-API-Key` (or `Authorization: Bearer`); prefer the
    /// environment variable, a flag shows in `ps` [default: none: open].
    #[arg(long, env = "APP_ENV_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    // Metrics (`GET /metrics`): kept together.
    /// Serve `GET /metrics` in the Prometheus text format: `true` or `false` [default: true].
    #[arg(long, env = "APP_ENV_METRICS_ENABLED")]
    pub metrics: Option<bool>,
    /// Serve `/metrics` on this address (`host:port`) alone, without the API key (keep it on a
    /// private network), instead of on the API's port behind the API key [default: the API's
    /// port].
    #[arg(long, env = "APP_ENV_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "APP_ENV_LOGGER_FORMAT")]
    pub log_format: Option<String>,
    /// Application name, in logs and the API document [default: ignis].
    #[arg(long, env = "APP_ENV_APPLICATION_NAME")]
    pub app_name: Option<String>,

    // Draining (rolling restarts): a block of its own.
    /// Seconds a drain (SIGTERM, the first Ctrl-C, or `POST {base}/socket/drain`) spreads the
    /// clients' reconnections over before the process exits; 0 moves them all at once
    /// [default: 15].
    #[arg(long, env = "APP_ENV_SERVER_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,
    // Engine settings and --print-config (issue 18): their own block.
    /// Print the effective configuration as TOML (secrets hidden) and exit.
    #[arg(long)]
    pub print_config: bool,
    #[command(flatten)]
    pub engine: EngineCli,

    // Log files (issue 18): their own block.
    /// Directory of the log files; without it, logs go to stderr [default: unset].
    #[arg(long, env = "APP_ENV_LOGGER_DIR")]
    pub log_dir: Option<PathBuf>,
    /// When a log file is closed and the next begun: `hourly`, `daily` or `never`
    /// [default: hourly].
    #[arg(long, env = "APP_ENV_LOGGER_ROTATION")]
    pub log_rotation: Option<String>,
    /// How many log files are kept, of each kind: a count (`48`), or an age (`5d`, `12h`)
    /// that counts files of the rotation's period [default: 5d].
    #[arg(long, env = "APP_ENV_LOGGER_KEEP")]
    pub log_keep: Option<String>,

    // TLS (issue 18): its own block.
    /// PEM certificate chain to serve HTTPS and WSS with, on the same port and paths; needs
    /// --tls-key. SIGHUP reloads both files [default: plain HTTP].
    #[arg(long, env = "APP_ENV_SERVER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "APP_ENV_SERVER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    // Admin UI (its own block: `admin_ui.rs`).
    #[command(flatten)]
    pub admin_ui: crate::admin_ui::AdminUiArgs,
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print an HS256 token signed with the configured secret (APP_ENV_JWT_SECRET or
    /// --jwt-secret), for trying the server out; `iss` and `aud` are added when configured.
    MintToken {
        /// The token's subject (`sub`), e.g. a user id.
        #[arg(long)]
        sub: String,
        /// How long the token is valid: seconds, or a number with `s`, `m`, `h` or `d`.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
    },
    // Admin UI (its own block: `admin_ui.rs`).
    /// Print the bcrypt hash of the password given on the first line of stdin, for
    /// `--admin-ui-auth user:HASH`.
    AdminUiHash {
        /// The bcrypt cost: each step doubles the work of a check.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
}

/// `90`, `90s`, `15m`, `1h`, `2d`.
pub(crate) fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 15m, 1h or 2d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    match n.checked_mul(unit) {
        Some(0) => Err("the duration must be greater than 0".into()),
        Some(secs) => Ok(Duration::from_secs(secs)),
        None => Err(format!("{text:?} is too long")),
    }
}

/// The settings a TOML file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    base_path: Option<String>,
    socket_path: Option<String>,
    cors_origins: Option<Vec<String>>,
    redis_url: Option<String>,
    redis_tls_ca: Option<PathBuf>,
    redis_key: Option<String>,
    redis_mode: Option<String>,
    redis_subscription_mode: Option<String>,
    request_timeout_ms: Option<u64>,
    auth_timeout_ms: Option<u64>,
    app_ping_interval_ms: Option<u64>,
    recovery_max_disconnection_ms: Option<u64>,
    default_rooms: Option<Vec<String>>,
    room_allow: Option<Vec<String>>,
    room_deny: Option<Vec<String>>,
    get_clients: Option<String>,
    max_rooms_per_socket: Option<usize>,
    event_rate: Option<u32>,
    event_burst: Option<u32>,
    max_event_payload: Option<usize>,
    max_queued_messages: Option<usize>,
    max_queued_bytes: Option<usize>,
    body_timeout_ms: Option<u64>,
    max_connections_per_ip: Option<u32>,
    handshakes_per_second_per_ip: Option<u32>,
    handshake_burst_per_ip: Option<u32>,
    jwt_secret: Option<String>,
    jwt_public_key_file: Option<PathBuf>,
    jwt_leeway_secs: Option<u64>,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    api_key: Option<String>,
    // Metrics: kept together.
    metrics: Option<bool>,
    metrics_addr: Option<String>,
    log_format: Option<String>,
    app_name: Option<String>,
    // Draining.
    drain_seconds: Option<u64>,

    // Engine settings (issue 18): the `[engine]` table.
    engine: Option<EngineFile>,

    // Log files (issue 18).
    log_dir: Option<PathBuf>,
    log_rotation: Option<String>,
    log_keep: Option<String>,

    // TLS (issue 18).
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    // Admin UI (its own block: `admin_ui.rs`).
    admin_ui_auth: Option<String>,
    admin_ui_read_only: Option<bool>,
}

/// How client tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JwtKey {
    /// No key: every client is accepted (development only).
    None,
    Secret(String),
    PublicKeyPem(Vec<u8>),
}

/// How client tokens are checked: the key and the claim rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JwtSettings {
    pub key: JwtKey,
    /// Clock difference allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// The `iss` a token must carry, when set.
    pub issuer: Option<String>,
    /// The `aud` a token must carry, when set.
    pub audience: Option<String>,
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            key: JwtKey::None,
            leeway_secs: DEFAULT_JWT_LEEWAY_SECS,
            issuer: None,
            audience: None,
        }
    }
}

/// The leeway on `exp` and `nbf` when none is configured.
pub(crate) const DEFAULT_JWT_LEEWAY_SECS: u64 = 60;

/// The largest leeway accepted.
pub(crate) const MAX_JWT_LEEWAY_SECS: u64 = 86_400;

/// What one client may do before it is refused or cut (the README's "Abuse limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_rooms_per_socket: usize,
    /// `None`: events are not rate-limited.
    pub event_rate: Option<EventRate>,
    pub max_event_payload: usize,
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    pub body_timeout: Duration,
    /// 0: no limit.
    pub max_connections_per_ip: u32,
    /// 0: no limit.
    pub handshakes_per_second_per_ip: u32,
    pub handshake_burst_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Limits {
            max_rooms_per_socket: DEFAULT_MAX_ROOMS_PER_SOCKET,
            event_rate: Some(DEFAULT_EVENT_RATE),
            max_event_payload: DEFAULT_MAX_EVENT_PAYLOAD,
            max_queued_messages: engine.max_queued_messages,
            max_queued_bytes: engine.max_queued_bytes,
            body_timeout: engine.body_timeout,
            max_connections_per_ip: engine.max_connections_per_ip,
            handshakes_per_second_per_ip: engine.handshakes_per_second_per_ip,
            handshake_burst_per_ip: engine.handshake_burst_per_ip,
        }
    }
}

/// Where and whether `GET /metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetricsSettings {
    /// Whether `/metrics` is served and REST requests measured (the libraries count anyway).
    pub enabled: bool,
    /// An address of its own (without the API key); `None`: the API's port, behind the key.
    pub addr: Option<SocketAddr>,
}

impl MetricsSettings {
    fn load(enabled: Option<bool>, addr: Option<String>) -> Result<MetricsSettings, ConfigError> {
        let addr = match addr.filter(|a| !a.trim().is_empty()) {
            None => None,
            Some(text) => Some(text.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "metrics addr",
                reason: format!("{text:?} is not an address like 127.0.0.1:9464"),
            })?),
        };
        Ok(MetricsSettings {
            enabled: enabled.unwrap_or(true),
            addr,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub host: String,
    pub port: u16,
    pub base_path: String,
    pub socket_path: String,
    /// `None`: the default (no cross-origin REST, `/io` for any origin without credentials).
    pub cors_origins: Option<Vec<String>>,
    /// Where Redis is, from the URL (list) and the TLS CA, checked: `None` without a URL.
    pub redis: Option<RedisConfig>,
    pub redis_key: String,
    pub redis_mode: RedisMode,
    pub request_head_timeout: Duration,
    pub auth_timeout: Duration,
    pub app_ping_interval: Duration,
    /// How long connection state recovery keeps a disconnected session; `None`: recovery off.
    pub recovery_max_disconnection: Option<Duration>,
    pub default_rooms: Vec<String>,
    pub room_allow: Vec<String>,
    pub room_deny: Vec<String>,
    pub client_list: ClientList,
    pub limits: Limits,
    pub jwt: JwtSettings,
    pub api_key: Option<String>,
    pub metrics: MetricsSettings,
    pub log_format: LogFormat,
    pub app_name: String,
    /// How long a drain spreads the clients' reconnections over.
    pub drain_window: Duration,

    // Engine settings (issue 18), and what `--print-config` shows of the settings read as
    // files or URLs.
    pub engine: EngineSettings,
    pub sources: Sources,

    // Log files (issue 18).
    pub log: LogSettings,

    // TLS (issue 18): the certificate and key files, read when the server starts.
    pub tls: Option<TlsFiles>,

    // Admin UI (its own block: `admin_ui.rs`).
    /// `None`: the admin UI is off.
    pub admin_ui: Option<crate::admin_ui::AdminUiSettings>,
}

/// Where the server's certificate and key are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Settings as given, for `--print-config`: the configuration keeps what they were read into.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    pub redis_url: Option<String>,
    pub redis_tls_ca: Option<PathBuf>,
    pub jwt_public_key_file: Option<PathBuf>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    #[error("cannot read the config file {path}: {error}")]
    ReadFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid config file {path}: {error}")]
    ParseFile {
        path: PathBuf,
        error: toml::de::Error,
    },
    #[error("cannot read the JWT public key {path}: {error}")]
    ReadKey {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The Redis URL from the original's separate variables: the `_SOCKETIO_` names first, then the
/// plain ones (spec §17 #34).
fn redis_from_env() -> Option<String> {
    let pick = |suffix: &str| {
        env(&format!("APP_ENV_REDIS_SOCKETIO_{suffix}"))
            .or_else(|| env(&format!("APP_ENV_REDIS_{suffix}")))
    };
    let host = pick("HOST")?;
    let port = pick("PORT").unwrap_or_else(|| "6379".into());
    Some(match pick("PASSWORD") {
        Some(password) => format!("redis://:{password}@{host}:{port}"),
        None => format!("redis://{host}:{port}"),
    })
}

/// One URL is a single node, several (comma-separated) the seeds of a cluster; a CA file
/// replaces the built-in roots for verifying the servers.
fn redis_config(url: Option<&str>, ca: Option<&Path>) -> Result<Option<RedisConfig>, ConfigError> {
    let invalid = |name: &'static str, reason: String| ConfigError::Invalid { name, reason };
    let Some(url) = url else {
        return match ca {
            Some(_) => Err(invalid("Redis TLS CA", "is set but no Redis URL is".into())),
            None => Ok(None),
        };
    };
    let mut config =
        RedisConfig::from_url_list(url).map_err(|e| invalid("Redis URL", e.to_string()))?;
    if let Some(path) = ca {
        let pem = std::fs::read(path)
            .map_err(|e| invalid("Redis TLS CA", format!("{}: {e}", path.display())))?;
        config = config
            .tls_ca_pem(pem)
            .map_err(|e| invalid("Redis TLS CA", format!("{}: {e}", path.display())))?;
    }
    Ok(Some(config))
}

/// `*` means any origin without credentials, a list means those origins with credentials: the
/// two cannot be mixed, since the wildcard would drop the credentials of the listed ones.
fn cors_origins(origins: Option<Vec<String>>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(origins) = origins else {
        return Ok(None);
    };
    let origins: Vec<String> = origins
        .into_iter()
        .map(|o| o.trim_end_matches('/').to_string())
        .collect();
    if origins.len() > 1 && origins.iter().any(|o| o == "*") {
        return Err(ConfigError::Invalid {
            name: "CORS origins",
            reason: "`*` (any origin, no credentials) cannot be combined with listed origins"
                .into(),
        });
    }
    if let Some(bad) = origins
        .iter()
        .find(|o| *o != "*" && !(o.starts_with("http://") || o.starts_with("https://")))
    {
        return Err(ConfigError::Invalid {
            name: "CORS origins",
            reason: format!("{bad:?} is not an origin like https://app.example.com"),
        });
    }
    Ok(Some(origins))
}

/// A count setting that must not be 0, or its default when unset.
fn positive(
    name: &'static str,
    value: Option<usize>,
    default: usize,
) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(ConfigError::Invalid {
            name,
            reason: "must be greater than 0".into(),
        }),
        v => Ok(v.unwrap_or(default)),
    }
}

/// The per-socket limits, from their settings; 0 turns the event rate off and is refused for
/// the others (a server whose sockets may hold no room, or send no byte, serves nobody).
fn limits(
    rooms: Option<usize>,
    rate: Option<u32>,
    burst: Option<u32>,
    payload: Option<usize>,
) -> Result<Limits, ConfigError> {
    let event_rate = match (rate, burst) {
        (Some(0), Some(_)) => {
            return Err(ConfigError::Invalid {
                name: "event burst",
                reason: "is set but the event rate is off (0)".into(),
            });
        }
        (Some(0), None) => None,
        (_, Some(0)) => {
            return Err(ConfigError::Invalid {
                name: "event burst",
                reason: "must be greater than 0".into(),
            });
        }
        (None, None) => Some(DEFAULT_EVENT_RATE),
        (rate, burst) => {
            let per_second = rate.unwrap_or(DEFAULT_EVENT_RATE.per_second);
            Some(EventRate::new(per_second, burst.unwrap_or(per_second)))
        }
    };
    Ok(Limits {
        max_rooms_per_socket: positive(
            "max rooms per socket",
            rooms,
            DEFAULT_MAX_ROOMS_PER_SOCKET,
        )?,
        event_rate,
        max_event_payload: positive("max event payload", payload, DEFAULT_MAX_EVENT_PAYLOAD)?,
        ..Limits::default()
    })
}

fn path_setting(name: &'static str, value: String) -> Result<String, ConfigError> {
    if !value.starts_with('/') {
        return Err(ConfigError::Invalid {
            name,
            reason: format!("{value:?} must start with '/'"),
        });
    }
    Ok(value.trim_end_matches('/').to_string()).map(|v| if v.is_empty() { "/".into() } else { v })
}

impl Config {
    /// Builds the configuration from the command line, the environment and the file.
    pub(crate) fn load(mut cli: Cli) -> Result<Config, ConfigError> {
        let file = match &cli.config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|error| ConfigError::ReadFile {
                        path: path.clone(),
                        error,
                    })?;
                toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
                    path: path.clone(),
                    error,
                })?
            }
            None => FileConfig::default(),
        };
        // Admin UI (its own block: `admin_ui.rs`).
        let admin_ui = crate::admin_ui::AdminUiSettings::load(
            std::mem::take(&mut cli.admin_ui),
            file.admin_ui_auth.clone(),
            file.admin_ui_read_only,
        )?;
        let log_format = match cli.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "log format",
                    reason: format!("{other:?} is neither text nor json"),
                });
            }
        };
        let engine = EngineSettings::load(cli.engine, file.engine.unwrap_or_default())?;
        let log = LogSettings::load(
            log_format,
            cli.log_dir.or(file.log_dir),
            cli.log_rotation.or(file.log_rotation).as_deref(),
            cli.log_keep.or(file.log_keep).as_deref(),
        )?;
        let mut jwt_public_key_file = None;
        let jwt = match (
            cli.jwt_secret.or(file.jwt_secret),
            cli.jwt_public_key_file.or(file.jwt_public_key_file),
        ) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "JWT key",
                    reason: "give a secret or a public key file, not both".into(),
                });
            }
            (Some(secret), None) => JwtKey::Secret(secret),
            (None, Some(path)) => {
                jwt_public_key_file = Some(path.clone());
                JwtKey::PublicKeyPem(
                    std::fs::read(&path).map_err(|error| ConfigError::ReadKey { path, error })?,
                )
            }
            (None, None) => JwtKey::None,
        };
        let leeway_secs = cli
            .jwt_leeway_secs
            .or(file.jwt_leeway_secs)
            .unwrap_or(DEFAULT_JWT_LEEWAY_SECS);
        // More than a day is no longer clock skew (and the check's arithmetic stays in range).
        if leeway_secs > MAX_JWT_LEEWAY_SECS {
            return Err(ConfigError::Invalid {
                name: "JWT leeway",
                reason: format!("{leeway_secs} s is over the limit of {MAX_JWT_LEEWAY_SECS} s"),
            });
        }
        let jwt = JwtSettings {
            key: jwt,
            leeway_secs,
            issuer: cli.jwt_issuer.or(file.jwt_issuer).filter(|s| !s.is_empty()),
            audience: cli
                .jwt_audience
                .or(file.jwt_audience)
                .filter(|s| !s.is_empty()),
        };
        let client_list = match cli.get_clients.or(file.get_clients) {
            None => ClientList::default(),
            Some(v) => v.parse().map_err(|reason| ConfigError::Invalid {
                name: "get-clients",
                reason,
            })?,
        };
        let mut limits = limits(
            cli.max_rooms_per_socket.or(file.max_rooms_per_socket),
            cli.event_rate.or(file.event_rate),
            cli.event_burst.or(file.event_burst),
            cli.max_event_payload.or(file.max_event_payload),
        )?;
        limits.max_queued_messages = positive(
            "max queued messages",
            cli.max_queued_messages.or(file.max_queued_messages),
            limits.max_queued_messages,
        )?;
        limits.max_queued_bytes = positive(
            "max queued bytes",
            cli.max_queued_bytes.or(file.max_queued_bytes),
            limits.max_queued_bytes,
        )?;
        limits.handshake_burst_per_ip = positive(
            "handshake burst per IP",
            cli.handshake_burst_per_ip
                .or(file.handshake_burst_per_ip)
                .map(|n| n as usize),
            limits.handshake_burst_per_ip as usize,
        )? as u32;
        limits.max_connections_per_ip = cli
            .max_connections_per_ip
            .or(file.max_connections_per_ip)
            .unwrap_or(limits.max_connections_per_ip);
        limits.handshakes_per_second_per_ip = cli
            .handshakes_per_second_per_ip
            .or(file.handshakes_per_second_per_ip)
            .unwrap_or(limits.handshakes_per_second_per_ip);
        let list = |v: Option<Vec<String>>| -> Option<Vec<String>> {
            v.map(|items| {
                items
                    .into_iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
        };
        let ms =
            |name: &'static str, v: Option<u64>, default: u64| -> Result<Duration, ConfigError> {
                match v.unwrap_or(default) {
                    0 => Err(ConfigError::Invalid {
                        name,
                        reason: "must be greater than 0".into(),
                    }),
                    n => Ok(Duration::from_millis(n)),
                }
            };
        let subscription = match cli
            .redis_subscription_mode
            .or(file.redis_subscription_mode)
            .as_deref()
        {
            None => SubscriptionMode::default(),
            Some(m) => m.parse().map_err(|_| ConfigError::Invalid {
                name: "Redis subscription mode",
                reason: format!("{m:?} is not dynamic, dynamic-private or static"),
            })?,
        };
        let redis_mode = match cli.redis_mode.or(file.redis_mode).as_deref() {
            None | Some("classic") => RedisMode::Classic,
            Some("sharded") => RedisMode::Sharded(subscription),
            Some("streams") => RedisMode::Streams,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "Redis mode",
                    reason: format!("{other:?} is not classic, sharded or streams"),
                });
            }
        };
        let redis_url = cli.redis_url.or(file.redis_url).or_else(redis_from_env);
        let redis_tls_ca = cli.redis_tls_ca.or(file.redis_tls_ca);
        let redis = redis_config(redis_url.as_deref(), redis_tls_ca.as_deref())?;
        let tls = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    name: "TLS key (tls_key, --tls-key)",
                    reason: "a certificate is set (--tls-cert) but no key".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "TLS certificate (tls_cert, --tls-cert)",
                    reason: "a key is set (--tls-key) but no certificate".into(),
                });
            }
        };
        let sources = Sources {
            redis_url,
            redis_tls_ca,
            jwt_public_key_file,
        };
        Ok(Config {
            redis_mode,
            redis,
            host: cli.host.or(file.host).unwrap_or_else(|| "127.0.0.1".into()),
            port: cli.port.or(file.port).unwrap_or(3000),
            base_path: path_setting(
                "base path",
                cli.base_path
                    .or(file.base_path)
                    .unwrap_or_else(|| "/api".into()),
            )?,
            socket_path: path_setting(
                "Socket.IO path",
                cli.socket_path
                    .or(file.socket_path)
                    .unwrap_or_else(|| "/io".into()),
            )?,
            cors_origins: cors_origins(list(cli.cors_origins.or(file.cors_origins)))?,
            redis_key: cli
                .redis_key
                .or(file.redis_key)
                .unwrap_or_else(|| "socket.io".into()),
            request_head_timeout: ms(
                "request timeout",
                cli.request_timeout_ms.or(file.request_timeout_ms),
                30_000,
            )?,
            auth_timeout: ms(
                "auth timeout",
                cli.auth_timeout_ms.or(file.auth_timeout_ms),
                10_000,
            )?,
            app_ping_interval: ms(
                "app ping interval",
                cli.app_ping_interval_ms.or(file.app_ping_interval_ms),
                30_000,
            )?,
            recovery_max_disconnection: match cli
                .recovery_max_disconnection_ms
                .or(file.recovery_max_disconnection_ms)
            {
                None => None,
                v => Some(ms("recovery max disconnection", v, 0)?),
            },
            default_rooms: list(cli.default_rooms.or(file.default_rooms))
                .unwrap_or_else(|| vec!["io-default".into(), "io-notification".into()]),
            room_allow: list(cli.room_allow.or(file.room_allow))
                .unwrap_or_else(|| vec!["*".into()]),
            room_deny: list(cli.room_deny.or(file.room_deny)).unwrap_or_default(),
            client_list,
            limits: Limits {
                body_timeout: ms(
                    "body timeout",
                    cli.body_timeout_ms.or(file.body_timeout_ms),
                    limits.body_timeout.as_millis() as u64,
                )?,
                ..limits
            },
            jwt,
            api_key: cli.api_key.or(file.api_key).filter(|k| !k.is_empty()),
            metrics: MetricsSettings::load(
                cli.metrics.or(file.metrics),
                cli.metrics_addr.or(file.metrics_addr),
            )?,
            log_format,
            app_name: cli
                .app_name
                .or(file.app_name)
                .unwrap_or_else(|| "ignis".into()),
            drain_window: drain_window(cli.drain_seconds.or(file.drain_seconds))?,
            engine,
            sources,
            log,
            tls,
            admin_ui,
        })
    }
}

// Draining and recovery across nodes: kept together, apart from the other settings.

/// The default drain window: long enough that a few thousand clients do not reconnect all in
/// the same second, short enough for an orchestrator's usual 30 s grace period.
pub(crate) const DEFAULT_DRAIN_SECONDS: u64 = 15;

/// The longest drain window accepted.
pub(crate) const MAX_DRAIN_SECONDS: u64 = 3600;

fn drain_window(seconds: Option<u64>) -> Result<Duration, ConfigError> {
    match seconds.unwrap_or(DEFAULT_DRAIN_SECONDS) {
        s if s > MAX_DRAIN_SECONDS => Err(ConfigError::Invalid {
            name: "drain seconds",
            reason: format!("{s} is more than {MAX_DRAIN_SECONDS}"),
        }),
        s => Ok(Duration::from_secs(s)),
    }
}

impl Config {
    /// What connection state recovery can do with this Redis setting, for the start-up log:
    /// the classic and sharded adapters carry no sessions (nor does Node's redis-adapter), so
    /// each node keeps its own in memory and only a client that comes back to the same node
    /// (a network blip behind a sticky load balancer) is recovered.
    pub(crate) fn recovery_scope_warning(&self) -> Option<&'static str> {
        if self.recovery_max_disconnection.is_none() || self.redis.is_none() {
            return None;
        }
        // Exhaustive on purpose: an adapter that carries sessions says so here.
        match self.redis_mode {
            RedisMode::Classic | RedisMode::Sharded(_) => Some(
                "connection state recovery keeps sessions in this node's memory: the Redis \
                 classic and sharded adapters cannot carry them, so a client that reconnects to \
                 another node (after a drain, a crash or a load balancer change) starts a new \
                 session (recovered: false); --redis-mode streams keeps them in Redis",
            ),
            RedisMode::Streams => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load(Cli::default()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 3000));
        assert_eq!(c.base_path, "/api");
        assert_eq!(c.socket_path, "/io");
        assert_eq!(c.cors_origins, None);
        assert_eq!(c.auth_timeout, Duration::from_secs(10));
        assert_eq!(c.request_head_timeout, Duration::from_secs(30));
        assert_eq!(c.app_ping_interval, Duration::from_secs(30));
        assert_eq!(c.default_rooms, vec!["io-default", "io-notification"]);
        assert_eq!(c.room_allow, vec!["*"]);
        assert!(c.room_deny.is_empty());
        assert_eq!(c.jwt, JwtSettings::default());
        assert_eq!(c.jwt.leeway_secs, 60);
        assert_eq!(c.client_list, ClientList::Own);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.limits, Limits::default());
        assert_eq!(c.recovery_max_disconnection, None);
    }

    #[test]
    fn abuse_limits_are_set_turned_off_or_refused() {
        let load = |cli: Cli| Config::load(cli).map(|c| c.limits);
        let l = load(Cli {
            max_rooms_per_socket: Some(50),
            event_rate: Some(20),
            max_event_payload: Some(4096),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(l.max_rooms_per_socket, 50);
        assert_eq!(
            l.event_rate,
            Some(EventRate::new(20, 20)),
            "the burst follows the rate"
        );
        assert_eq!(l.max_event_payload, 4096);
        let l = load(Cli {
            max_queued_bytes: Some(1 << 20),
            body_timeout_ms: Some(1500),
            max_connections_per_ip: Some(40),
            handshakes_per_second_per_ip: Some(20),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(l.max_queued_bytes, 1 << 20);
        assert_eq!(l.body_timeout, Duration::from_millis(1500));
        assert_eq!(
            (l.max_connections_per_ip, l.handshakes_per_second_per_ip),
            (40, 20)
        );
        assert_eq!(l.max_queued_messages, Limits::default().max_queued_messages);
        let l = load(Cli {
            event_burst: Some(5),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(
            l.event_rate,
            Some(EventRate::new(DEFAULT_EVENT_RATE.per_second, 5))
        );
        let off = load(Cli {
            event_rate: Some(0),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(off.event_rate, None);
        for (cli, name) in [
            (
                Cli {
                    max_rooms_per_socket: Some(0),
                    ..Cli::default()
                },
                "max rooms per socket",
            ),
            (
                Cli {
                    max_event_payload: Some(0),
                    ..Cli::default()
                },
                "max event payload",
            ),
            (
                Cli {
                    max_queued_bytes: Some(0),
                    ..Cli::default()
                },
                "max queued bytes",
            ),
            (
                Cli {
                    body_timeout_ms: Some(0),
                    ..Cli::default()
                },
                "body timeout",
            ),
            (
                Cli {
                    event_rate: Some(0),
                    event_burst: Some(10),
                    ..Cli::default()
                },
                "event burst",
            ),
        ] {
            let err = load(cli).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn drain_window_by_flag_or_file_with_a_bound() {
        let c = Config::load(Cli::default()).unwrap();
        assert_eq!(c.drain_window, Duration::from_secs(DEFAULT_DRAIN_SECONDS));
        let c = Config::load(Cli {
            drain_seconds: Some(0),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.drain_window, Duration::ZERO);
        let file = std::env::temp_dir().join(format!("ignis-config-drain-{}", std::process::id()));
        std::fs::write(&file, "drain_seconds = 40\n").unwrap();
        let c = Config::load(Cli {
            config: Some(file.clone()),
            ..Cli::default()
        })
        .unwrap();
        let _ = std::fs::remove_file(&file);
        assert_eq!(c.drain_window, Duration::from_secs(40));
        let err = Config::load(Cli {
            drain_seconds: Some(MAX_DRAIN_SECONDS + 1),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid drain seconds"),
            "{err}"
        );
    }

    #[test]
    fn recovery_with_redis_is_said_to_stay_per_node() {
        let plain = Config::load(Cli {
            recovery_max_disconnection_ms: Some(1000),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(plain.recovery_scope_warning(), None);
        let clustered = Config::load(Cli {
            recovery_max_disconnection_ms: Some(1000),
            redis_url: Some("redis://127.0.0.1:6379".into()),
            ..Cli::default()
        })
        .unwrap();
        let warning = clustered.recovery_scope_warning().unwrap_or_default();
        assert!(warning.contains("another node"), "{warning}");
    }

    #[test]
    fn recovery_is_set_by_flag_or_file_and_never_zero() {
        let c = Config::load(Cli {
            recovery_max_disconnection_ms: Some(120_000),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.recovery_max_disconnection, Some(Duration::from_secs(120)));

        let dir =
            std::env::temp_dir().join(format!("ignis-config-recovery-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "recovery_max_disconnection_ms = 5000\n").unwrap();
        let c = Config::load(Cli {
            config: Some(file),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.recovery_max_disconnection, Some(Duration::from_secs(5)));
        std::fs::remove_dir_all(&dir).unwrap();

        let err = Config::load(Cli {
            recovery_max_disconnection_ms: Some(0),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid recovery max disconnection"),
            "{err}"
        );
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("ignis-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "port = 4000\nbase_path = \"/v1/\"\nroom_deny = [\"private-*\"]\n",
        )
        .unwrap();
        let c = Config::load(Cli {
            config: Some(file.clone()),
            port: Some(5000),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.port, 5000);
        assert_eq!(c.base_path, "/v1");
        assert_eq!(c.room_deny, vec!["private-*"]);

        std::fs::write(&file, "prot = 1\n").unwrap();
        let err = Config::load(Cli {
            config: Some(file),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `prot`"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases: Vec<(Cli, &str)> = vec![
            (
                Cli {
                    base_path: Some("api".into()),
                    ..Cli::default()
                },
                "invalid base path",
            ),
            (
                Cli {
                    auth_timeout_ms: Some(0),
                    ..Cli::default()
                },
                "invalid auth timeout",
            ),
            (
                Cli {
                    jwt_leeway_secs: Some(86_401),
                    ..Cli::default()
                },
                "invalid JWT leeway",
            ),
            (
                Cli {
                    log_format: Some("xml".into()),
                    ..Cli::default()
                },
                "invalid log format",
            ),
            (
                Cli {
                    jwt_secret: Some("s".into()),
                    jwt_public_key_file: Some("/nonexistent".into()),
                    ..Cli::default()
                },
                "invalid JWT key",
            ),
        ];
        for (cli, expected) in cases {
            let err = Config::load(cli).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
    }

    #[test]
    fn jwt_claim_rules_and_cors_origins() {
        let dir = std::env::temp_dir().join(format!("ignis-config-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "jwt_leeway_secs = 5\njwt_issuer = \"https://issuer\"\njwt_audience = \"ignis\"\n\
             get_clients = \"all\"\ncors_origins = [\"https://app.example/\"]\n",
        )
        .unwrap();
        let c = Config::load(Cli {
            config: Some(file.clone()),
            jwt_leeway_secs: Some(0),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.jwt.leeway_secs, 0, "the flag wins");
        assert_eq!(c.jwt.issuer.as_deref(), Some("https://issuer"));
        assert_eq!(c.jwt.audience.as_deref(), Some("ignis"));
        assert_eq!(c.client_list, ClientList::All);
        assert_eq!(
            c.cors_origins,
            Some(vec!["https://app.example".to_string()])
        );
        std::fs::remove_dir_all(&dir).unwrap();

        for (origins, ok) in [
            (vec!["*"], true),
            (vec![], true),
            (vec!["*", "https://a.example"], false),
            (vec!["app.example"], false),
        ] {
            let result = Config::load(Cli {
                cors_origins: Some(origins.iter().map(|o| o.to_string()).collect()),
                ..Cli::default()
            });
            assert_eq!(result.is_ok(), ok, "{origins:?}");
        }
        let err = Config::load(Cli {
            get_clients: Some("some".into()),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(err.to_string().starts_with("invalid get-clients"), "{err}");
    }

    #[test]
    fn token_lifetimes() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("1h", 3600),
            ("2d", 172_800),
        ] {
            assert_eq!(parse_ttl(text), Ok(Duration::from_secs(secs)), "{text}");
        }
        for bad in ["", "0", "1w", "h", "-1h", "99999999999999999999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_redis_url_list_is_a_cluster() {
        let c = Config::load(Cli {
            redis_url: Some("redis://127.0.0.1:7101".into()),
            ..Cli::default()
        })
        .unwrap();
        assert!(!c.redis.unwrap().is_cluster());

        let dir = std::env::temp_dir().join(format!("ignis-config-redis-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "redis_url = \"redis://127.0.0.1:7101, redis://127.0.0.1:7102\"\n",
        )
        .unwrap();
        let c = Config::load(Cli {
            config: Some(file),
            ..Cli::default()
        })
        .unwrap();
        let redis = c.redis.unwrap();
        assert!(redis.is_cluster());
        assert_eq!(redis.address(), "cluster 127.0.0.1:7101,127.0.0.1:7102");

        let bad_ca = dir.join("not-a-ca.pem");
        std::fs::write(&bad_ca, "no certificate here").unwrap();
        for (url, ca, message) in [
            (Some("redis://a:1,nope"), None, "invalid Redis URL"),
            (
                Some("redis://a:1"),
                Some(dir.join("missing.pem")),
                "invalid Redis TLS CA",
            ),
            (Some("redis://a:1"), Some(bad_ca), "invalid Redis TLS CA"),
            (None, Some(dir.join("missing.pem")), "no Redis URL"),
        ] {
            let err = Config::load(Cli {
                redis_url: url.map(String::from),
                redis_tls_ca: ca,
                ..Cli::default()
            })
            .unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
