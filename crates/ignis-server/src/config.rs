//! Configuration: command-line flags, then the environment (the original's `APP_ENV_*` names),
//! then an optional TOML file, then defaults that let the server run with nothing set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use ignis::socketio::{RedisConfig, RedisMode, SubscriptionMode};
use serde::Deserialize;

/// The Ignis real-time server: Socket.IO with authentication and rooms, and a REST API to send
/// to clients, rooms or everyone.
#[derive(Debug, Parser, Default)]
#[command(name = "ignis-server", version)]
pub struct Cli {
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
    /// Allowed CORS origins, comma-separated; `*` allows any [default: *].
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
    /// Redis protocol: `classic` (PUBLISH, @socket.io/redis-adapter's createAdapter) or
    /// `sharded` (Redis 7 SPUBLISH, createShardedAdapter) [default: classic].
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
    /// HS256 secret that client JWTs are signed with.
    #[arg(long, env = "APP_ENV_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file of the RS256 or ES256 public key that client JWTs are signed with.
    #[arg(long, env = "APP_ENV_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,
    /// Key the REST API requires in `X-API-Key` (or `Authorization: Bearer`) [default: none: open].
    #[arg(long, env = "APP_ENV_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "APP_ENV_LOGGER_FORMAT")]
    pub log_format: Option<String>,
    /// Application name, in logs and the API document [default: ignis].
    #[arg(long, env = "APP_ENV_APPLICATION_NAME")]
    pub app_name: Option<String>,
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
    jwt_secret: Option<String>,
    jwt_public_key_file: Option<PathBuf>,
    api_key: Option<String>,
    log_format: Option<String>,
    app_name: Option<String>,
}

/// How client tokens are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// No key: every client is accepted (development only).
    None,
    Secret(String),
    PublicKeyPem(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub base_path: String,
    pub socket_path: String,
    pub cors_origins: Vec<String>,
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
    pub jwt: JwtKey,
    pub api_key: Option<String>,
    pub log_format: LogFormat,
    pub app_name: String,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
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
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
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
            (None, Some(path)) => JwtKey::PublicKeyPem(
                std::fs::read(&path).map_err(|error| ConfigError::ReadKey { path, error })?,
            ),
            (None, None) => JwtKey::None,
        };
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
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "Redis mode",
                    reason: format!("{other:?} is neither classic nor sharded"),
                });
            }
        };
        let redis_url = cli.redis_url.or(file.redis_url).or_else(redis_from_env);
        let redis = redis_config(
            redis_url.as_deref(),
            cli.redis_tls_ca.or(file.redis_tls_ca).as_deref(),
        )?;
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
            cors_origins: list(cli.cors_origins.or(file.cors_origins))
                .unwrap_or_else(|| vec!["*".into()]),
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
            jwt,
            api_key: cli.api_key.or(file.api_key).filter(|k| !k.is_empty()),
            log_format,
            app_name: cli
                .app_name
                .or(file.app_name)
                .unwrap_or_else(|| "ignis".into()),
        })
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
        assert_eq!(c.cors_origins, vec!["*"]);
        assert_eq!(c.auth_timeout, Duration::from_secs(10));
        assert_eq!(c.request_head_timeout, Duration::from_secs(30));
        assert_eq!(c.app_ping_interval, Duration::from_secs(30));
        assert_eq!(c.default_rooms, vec!["io-default", "io-notification"]);
        assert_eq!(c.room_allow, vec!["*"]);
        assert!(c.room_deny.is_empty());
        assert_eq!(c.jwt, JwtKey::None);
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.recovery_max_disconnection, None);
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
