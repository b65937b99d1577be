//! Configuration: command-line flags, then the environment (`APP_ENV_*`), then an optional TOML
//! file, then defaults that let the chat run with nothing set (as `ignis-server` does).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use ignis::socketio::RedisConfig;
use serde::Deserialize;

/// The Ignis chat: accounts, rooms with history, direct messages, typing and presence, on
/// SQLite or PostgreSQL, one node or several over Redis.
#[derive(Debug, Parser, Default)]
#[command(name = "ignis-chat", version)]
pub struct Cli {
    /// A TOML file with any of the settings below (snake_case keys, e.g. `port = 3100`).
    #[arg(long, env = "APP_ENV_CONFIG_FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "APP_ENV_SERVER_HOST")]
    pub host: Option<String>,
    /// Port to listen on; 0 picks a free one [default: 3100].
    #[arg(long, env = "APP_ENV_SERVER_PORT")]
    pub port: Option<u16>,
    /// Directory of the SQLite database and the generated JWT secret [default: ./data].
    #[arg(long, env = "APP_ENV_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://path` or `postgres://user@host/db` [default: the SQLite file chat.db in the
    /// data directory].
    #[arg(long, env = "APP_ENV_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// HS256 secret that signs and checks the tokens [default: generated on first start and
    /// kept in the data directory as jwt-secret].
    #[arg(long, env = "APP_ENV_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Redis URL shared by every instance of one chat (`redis://host:port`); several,
    /// comma-separated, are seed nodes of a Redis Cluster.
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_URL")]
    pub redis_url: Option<String>,
    /// Channel prefix shared by every instance on Redis [default: socket.io].
    #[arg(long, env = "APP_ENV_REDIS_SOCKETIO_KEY")]
    pub redis_key: Option<String>,
    /// Milliseconds after a user's last connection closes before they are announced offline
    /// [default: 3000].
    #[arg(long, env = "APP_ENV_PRESENCE_GRACE_MS")]
    pub presence_grace_ms: Option<u64>,
    /// Milliseconds between a node's heartbeats in the database; a node silent for three is
    /// taken for dead, so its users go offline within four [default: 5000].
    #[arg(long, env = "APP_ENV_NODE_HEARTBEAT_MS")]
    pub node_heartbeat_ms: Option<u64>,
    /// Messages (room messages and DMs together) one user may send per second on one node;
    /// more are refused with `RATE_LIMITED`. 0 lifts the limit (benchmarks) [default: 20].
    #[arg(long, env = "APP_ENV_MESSAGE_RATE")]
    pub message_rate: Option<u32>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "APP_ENV_LOGGER_FORMAT")]
    pub log_format: Option<String>,
}

/// The settings a TOML file may hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    host: Option<String>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    jwt_secret: Option<String>,
    redis_url: Option<String>,
    redis_key: Option<String>,
    presence_grace_ms: Option<u64>,
    node_heartbeat_ms: Option<u64>,
    message_rate: Option<u32>,
    log_format: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The effective configuration: command line and environment over the config file over the
/// defaults.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Where the SQLite file and the generated secret live.
    pub data_dir: PathBuf,
    /// `None`: the SQLite file `chat.db` in `data_dir`.
    pub database_url: Option<String>,
    /// `None`: generated once and kept in `data_dir/jwt-secret`.
    pub jwt_secret: Option<String>,
    /// Redis shared by every node; `None`: one node.
    pub redis: Option<RedisConfig>,
    /// Channel prefix on Redis.
    pub redis_key: String,
    /// How long after a user's last connection closes they are announced offline.
    pub presence_grace: Duration,
    /// How often a node records that it is alive; a node silent for three of these is taken
    /// for dead and its users go offline at the next sweep.
    pub node_heartbeat: Duration,
    /// Messages one user may send per second on one node; 0: no limit.
    pub message_rate: u32,
    /// How log lines are written.
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 3100,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            jwt_secret: None,
            redis: None,
            redis_key: "socket.io".into(),
            presence_grace: Duration::from_millis(3000),
            node_heartbeat: Duration::from_secs(5),
            message_rate: crate::presence::MESSAGES_PER_SECOND,
            log_format: LogFormat::Text,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read the config file {path}: {error}")]
    ReadFile {
        /// The file given with `--config`.
        path: PathBuf,
        /// What reading it failed with.
        error: std::io::Error,
    },
    /// The config file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("invalid config file {path}: {error}")]
    ParseFile {
        /// The file given with `--config`.
        path: PathBuf,
        /// Where and why parsing failed.
        error: toml::de::Error,
    },
    /// A setting has a value it does not allow (an unknown log format, a database URL of another
    /// kind, a JWT secret shorter than 16 bytes).
    #[error("invalid {name}: {reason}")]
    Invalid {
        /// The setting, in words (`log format`, `JWT secret`).
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
}

impl Config {
    /// Builds the configuration from the command line (which clap already merged with the
    /// environment) and the file.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let file: FileConfig = match &cli.config {
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
        let defaults = Config::default();
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
        let database_url = cli
            .database_url
            .or(file.database_url)
            .filter(|u| !u.is_empty());
        if let Some(url) = &database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid {
                name: "database URL",
                reason: "must start with sqlite:, postgres:// or postgresql://".into(),
            });
        }
        let jwt_secret = cli.jwt_secret.or(file.jwt_secret).filter(|s| !s.is_empty());
        if let Some(secret) = &jwt_secret
            && secret.len() < 16
        {
            return Err(ConfigError::Invalid {
                name: "JWT secret",
                reason: "must be at least 16 bytes".into(),
            });
        }
        let redis = match cli.redis_url.or(file.redis_url).filter(|u| !u.is_empty()) {
            Some(url) => {
                Some(
                    RedisConfig::from_url_list(&url).map_err(|e| ConfigError::Invalid {
                        name: "Redis URL",
                        reason: e.to_string(),
                    })?,
                )
            }
            None => None,
        };
        Ok(Config {
            host: cli.host.or(file.host).unwrap_or(defaults.host),
            port: cli.port.or(file.port).unwrap_or(defaults.port),
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or(defaults.data_dir),
            database_url,
            jwt_secret,
            redis,
            redis_key: cli
                .redis_key
                .or(file.redis_key)
                .unwrap_or(defaults.redis_key),
            presence_grace: cli
                .presence_grace_ms
                .or(file.presence_grace_ms)
                .map(Duration::from_millis)
                .unwrap_or(defaults.presence_grace),
            node_heartbeat: match cli.node_heartbeat_ms.or(file.node_heartbeat_ms) {
                None => defaults.node_heartbeat,
                Some(0) => {
                    return Err(ConfigError::Invalid {
                        name: "node heartbeat",
                        reason: "must be greater than 0".into(),
                    });
                }
                Some(ms) => Duration::from_millis(ms),
            },
            message_rate: cli
                .message_rate
                .or(file.message_rate)
                .unwrap_or(defaults.message_rate),
            log_format,
        })
    }

    /// The database, for messages: the configured URL, or the SQLite file in the data
    /// directory (which is opened by its path, not through this URL).
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("chat.db").display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_nothing() {
        let c = Config::load(Cli::default()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 3100));
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.effective_database_url(), "sqlite://./data/chat.db");
        assert_eq!(c.presence_grace, Duration::from_secs(3));
        assert_eq!(c.redis_key, "socket.io");
        assert_eq!(c.message_rate, 20);
        assert!(c.redis.is_none() && c.jwt_secret.is_none());
    }

    #[test]
    fn flags_win_over_the_file_and_bad_values_are_named() {
        let dir = std::env::temp_dir().join(format!("ignis-chat-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "port = 4000\npresence_grace_ms = 500\ndatabase_url = \"postgres://x@h/db\"\n\
             message_rate = 500\n",
        )
        .unwrap();
        let c = Config::load(Cli {
            config: Some(file.clone()),
            port: Some(5000),
            ..Cli::default()
        })
        .unwrap();
        assert_eq!(c.port, 5000);
        assert_eq!(c.presence_grace, Duration::from_millis(500));
        assert_eq!(c.message_rate, 500);
        assert_eq!(c.effective_database_url(), "postgres://x@h/db");

        std::fs::write(&file, "prot = 1\n").unwrap();
        let err = Config::load(Cli {
            config: Some(file),
            ..Cli::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `prot`"), "{err}");
        for (cli, expected) in [
            (
                Cli {
                    database_url: Some("mysql://x".into()),
                    ..Cli::default()
                },
                "invalid database URL",
            ),
            (
                Cli {
                    jwt_secret: Some("short".into()),
                    ..Cli::default()
                },
                "invalid JWT secret",
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
                    node_heartbeat_ms: Some(0),
                    ..Cli::default()
                },
                "invalid node heartbeat",
            ),
        ] {
            let err = Config::load(cli).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
