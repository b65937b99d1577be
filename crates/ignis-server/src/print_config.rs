//! `--print-config`: the effective configuration as a TOML file the server would load, with
//! secrets (the JWT secret, the API key, Redis passwords) replaced by [`HIDDEN`].

use std::path::PathBuf;

use ignis::socketio::RedisMode;
use serde::Serialize;

use crate::chat::ClientList;
use crate::config::{Config, JwtKey, LogFormat};
use crate::settings::PrintedEngine;

/// What a secret that is set shows as.
pub(crate) const HIDDEN: &str = "<hidden>";

/// Every key of the file, in the order of the sample `ignis.example.toml`.
#[derive(Serialize)]
struct Printed {
    app_name: String,
    host: String,
    port: u16,
    base_path: String,
    socket_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cors_origins: Option<Vec<String>>,
    request_timeout_ms: u64,
    body_timeout_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'static str>,
    metrics: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    metrics_addr: Option<String>,
    log_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    log_dir: Option<PathBuf>,
    log_rotation: &'static str,
    log_keep: String,

    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_public_key_file: Option<PathBuf>,
    jwt_leeway_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwt_audience: Option<String>,

    auth_timeout_ms: u64,
    app_ping_interval_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_max_disconnection_ms: Option<u64>,
    drain_seconds: u64,
    default_rooms: Vec<String>,
    room_allow: Vec<String>,
    room_deny: Vec<String>,
    get_clients: &'static str,

    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,

    max_rooms_per_socket: usize,
    event_rate: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_burst: Option<u32>,
    max_event_payload: usize,
    max_queued_messages: usize,
    max_queued_bytes: usize,
    max_connections_per_ip: u32,
    handshakes_per_second_per_ip: u32,
    handshake_burst_per_ip: u32,

    #[serde(skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_tls_ca: Option<PathBuf>,
    redis_key: String,
    redis_mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_subscription_mode: Option<&'static str>,

    #[serde(skip_serializing_if = "Option::is_none")]
    admin_ui_auth: Option<String>,
    admin_ui_read_only: bool,

    engine: PrintedEngine,
}

/// A Redis URL list with the password of each URL replaced by [`HIDDEN`].
pub(crate) fn redact_redis_urls(list: &str) -> String {
    list.split(',')
        .map(|url| {
            let url = url.trim();
            let Some((scheme, rest)) = url.split_once("://") else {
                return url.to_string();
            };
            // The credentials end at the last `@` of the authority (a password may hold `@`).
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((credentials, host)) => {
                    let user = credentials.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:{HIDDEN}@{host}{path}")
                }
                None => url.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The configuration as TOML.
pub(crate) fn to_toml(config: &Config) -> Result<String, toml::ser::Error> {
    let ms = |d: std::time::Duration| d.as_millis() as u64;
    let limits = &config.limits;
    let (redis_mode, subscription) = match config.redis_mode {
        RedisMode::Classic => ("classic", None),
        RedisMode::Sharded(mode) => ("sharded", Some(mode.as_str())),
        RedisMode::Streams => ("streams", None),
    };
    let printed = Printed {
        app_name: config.app_name.clone(),
        host: config.host.clone(),
        port: config.port,
        base_path: config.base_path.clone(),
        socket_path: config.socket_path.clone(),
        cors_origins: config.cors_origins.clone(),
        request_timeout_ms: ms(config.request_head_timeout),
        body_timeout_ms: ms(limits.body_timeout),
        api_key: config.api_key.as_ref().map(|_| HIDDEN),
        metrics: config.metrics.enabled,
        metrics_addr: config.metrics.addr.map(|a| a.to_string()),
        log_format: match config.log_format {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        },
        log_dir: config.log.dir.clone(),
        log_rotation: config.log.rotation.as_str(),
        log_keep: config.log.keep.to_setting(),
        jwt_secret: match config.jwt.key {
            JwtKey::Secret(_) => Some(HIDDEN),
            _ => None,
        },
        jwt_public_key_file: config.sources.jwt_public_key_file.clone(),
        jwt_leeway_secs: config.jwt.leeway_secs,
        jwt_issuer: config.jwt.issuer.clone(),
        jwt_audience: config.jwt.audience.clone(),
        auth_timeout_ms: ms(config.auth_timeout),
        app_ping_interval_ms: ms(config.app_ping_interval),
        recovery_max_disconnection_ms: config.recovery_max_disconnection.map(ms),
        drain_seconds: config.drain_window.as_secs(),
        default_rooms: config.default_rooms.clone(),
        room_allow: config.room_allow.clone(),
        room_deny: config.room_deny.clone(),
        get_clients: match config.client_list {
            ClientList::Own => "own",
            ClientList::All => "all",
        },
        tls_cert: config.tls.as_ref().map(|t| t.cert.clone()),
        tls_key: config.tls.as_ref().map(|t| t.key.clone()),
        max_rooms_per_socket: limits.max_rooms_per_socket,
        event_rate: limits.event_rate.map_or(0, |r| r.per_second),
        event_burst: limits.event_rate.map(|r| r.burst),
        max_event_payload: limits.max_event_payload,
        max_queued_messages: limits.max_queued_messages,
        max_queued_bytes: limits.max_queued_bytes,
        max_connections_per_ip: limits.max_connections_per_ip,
        handshakes_per_second_per_ip: limits.handshakes_per_second_per_ip,
        handshake_burst_per_ip: limits.handshake_burst_per_ip,
        redis_url: config.sources.redis_url.as_deref().map(redact_redis_urls),
        redis_tls_ca: config.sources.redis_tls_ca.clone(),
        redis_key: config.redis_key.clone(),
        redis_mode,
        redis_subscription_mode: subscription,
        admin_ui_auth: config
            .admin_ui
            .as_ref()
            .map(|a| format!("{}:{HIDDEN}", a.auth.username())),
        admin_ui_read_only: config.admin_ui.as_ref().is_some_and(|a| a.read_only),
        engine: config.engine.printed(),
    };
    toml::to_string(&printed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;

    #[test]
    fn passwords_in_redis_urls_are_hidden() {
        assert_eq!(
            redact_redis_urls("redis://:s3cret@h:6379,rediss://u:p@ss@k:1/0, redis://h2:1"),
            "redis://:<hidden>@h:6379,rediss://u:<hidden>@k:1/0,redis://h2:1"
        );
    }

    #[test]
    fn secrets_are_hidden_and_the_output_loads_again() {
        let config = Config::load(Cli {
            jwt_secret: Some("the-jwt-secret-value".into()),
            api_key: Some("the-api-key-value".into()),
            redis_url: Some("redis://:the-redis-password@127.0.0.1:1".into()),
            port: Some(4321),
            ..Cli::default()
        })
        .unwrap();
        let text = to_toml(&config).unwrap();
        for secret in [
            "the-jwt-secret-value",
            "the-api-key-value",
            "the-redis-password",
        ] {
            assert!(!text.contains(secret), "{secret} shows:\n{text}");
        }
        assert!(text.contains("port = 4321"), "{text}");
        assert!(text.contains("[engine]"), "{text}");

        // Loaded back (secrets aside), it is the same configuration.
        let dir = std::env::temp_dir().join(format!("ignis-print-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("printed.toml");
        std::fs::write(&file, &text).unwrap();
        let again = Config::load(Cli {
            config: Some(file),
            ..Cli::default()
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(to_toml(&again).unwrap(), text);
    }
}

#[cfg(test)]
mod sample_file {
    use super::*;
    use crate::config::Cli;
    use std::collections::BTreeSet;

    const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ignis.example.toml");

    /// The keys of a TOML text, `engine.`-prefixed in the engine table.
    fn keys(text: &str) -> BTreeSet<String> {
        let table: toml::Table = toml::from_str(text).unwrap();
        let mut keys = BTreeSet::new();
        for (key, value) in table {
            match value {
                toml::Value::Table(inner) => {
                    keys.extend(inner.keys().map(|k| format!("{key}.{k}")));
                }
                _ => {
                    keys.insert(key);
                }
            }
        }
        keys
    }

    #[test]
    fn the_sample_loads_and_states_the_defaults() {
        let sample = Config::load(Cli {
            config: Some(SAMPLE.into()),
            ..Cli::default()
        })
        .unwrap();
        let defaults = Config::load(Cli::default()).unwrap();
        assert_eq!(to_toml(&sample).unwrap(), to_toml(&defaults).unwrap());
    }

    #[test]
    fn the_sample_has_every_key() {
        // Its commented-out keys count: they are the settings without a default value.
        let text = std::fs::read_to_string(SAMPLE).unwrap();
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest)
                    if rest
                        .split_once(" = ")
                        .is_some_and(|(k, _)| !k.contains(' ')) =>
                {
                    rest
                }
                _ => line,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let everything = Config::load(Cli {
            jwt_secret: Some("s".into()),
            api_key: Some("k".into()),
            cors_origins: Some(vec!["https://a.example".into()]),
            jwt_issuer: Some("i".into()),
            jwt_audience: Some("a".into()),
            recovery_max_disconnection_ms: Some(1000),
            redis_url: Some("redis://127.0.0.1:1".into()),
            redis_mode: Some("sharded".into()),
            log_dir: Some("/var/log/ignis".into()),
            metrics_addr: Some("127.0.0.1:9464".into()),
            ..Cli::default()
        })
        .unwrap();
        let mut printed = keys(&to_toml(&everything).unwrap());
        // Settings that are files to read, which the configuration above leaves out: the JWT
        // key excludes the secret, and a CA needs a readable certificate.
        printed.insert("jwt_public_key_file".into());
        printed.insert("redis_tls_ca".into());
        printed.insert("tls_cert".into());
        printed.insert("tls_key".into());
        // A hidden password hash is no hash: shown as `user:<hidden>`, it would not load.
        printed.insert("admin_ui_auth".into());
        assert_eq!(keys(&uncommented), printed);
    }
}
