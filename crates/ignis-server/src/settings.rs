//! The Engine.IO and Socket.IO settings a socket.io user knows from `new Server(opts)`:
//! heartbeat, buffer size, transports, parser, compression, connect timeout. Flags and
//! `APP_ENV_ENGINE_*` variables, or the `[engine]` table of the TOML file; kept apart from
//! [`crate::config`] so each group of settings reads (and merges) on its own.

use std::time::Duration;

use clap::Args;
use ignis::socketio::{DeflateOptions, DeflateSetting, ServerOptions};
use ignis_socketio::ParserKind;
use ignis_socketio::engine::Transports;
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;

/// The engine settings on the command line (and in the environment).
#[derive(Debug, Default, Clone, Args)]
pub(crate) struct EngineCli {
    /// Milliseconds between two Engine.IO heartbeats (socket.io's `pingInterval`; not the
    /// app-level `ping` event) [default: 25000].
    #[arg(long, env = "APP_ENV_ENGINE_PING_INTERVAL_MS")]
    pub ping_interval_ms: Option<u64>,
    /// Milliseconds a client has to answer a heartbeat before it is dropped (`pingTimeout`)
    /// [default: 20000].
    #[arg(long, env = "APP_ENV_ENGINE_PING_TIMEOUT_MS")]
    pub ping_timeout_ms: Option<u64>,
    /// Milliseconds an upgrade from polling to WebSocket may take (`upgradeTimeout`)
    /// [default: 10000].
    #[arg(long, env = "APP_ENV_ENGINE_UPGRADE_TIMEOUT_MS")]
    pub upgrade_timeout_ms: Option<u64>,
    /// Milliseconds a connection may stay without joining a namespace (`connectTimeout`)
    /// [default: 45000].
    #[arg(long, env = "APP_ENV_ENGINE_CONNECT_TIMEOUT_MS")]
    pub connect_timeout_ms: Option<u64>,
    /// Largest polling body and largest WebSocket message accepted from a client, in bytes
    /// (`maxHttpBufferSize`) [default: 1000000].
    #[arg(long, env = "APP_ENV_ENGINE_MAX_HTTP_BUFFER_SIZE")]
    pub max_http_buffer_size: Option<usize>,
    /// Transports clients may use, comma-separated: `polling`, `websocket` (`transports`)
    /// [default: polling,websocket].
    #[arg(long, env = "APP_ENV_ENGINE_TRANSPORTS", value_delimiter = ',')]
    pub transports: Option<Vec<String>>,
    /// Packet encoding: `json` (socket.io's default parser) or `msgpack` (for clients that use
    /// `socket.io-msgpack-parser`); every client must use the same [default: json].
    #[arg(long, env = "APP_ENV_ENGINE_PARSER")]
    pub parser: Option<String>,
    /// WebSocket compression (permessage-deflate), `true` or `false` (`perMessageDeflate`)
    /// [default: true].
    #[arg(long, env = "APP_ENV_ENGINE_PER_MESSAGE_DEFLATE")]
    pub per_message_deflate: Option<bool>,
    /// Bytes from which a WebSocket message is compressed, when compression is on
    /// (`perMessageDeflate.threshold`) [default: 4096].
    #[arg(long, env = "APP_ENV_ENGINE_PER_MESSAGE_DEFLATE_THRESHOLD")]
    pub per_message_deflate_threshold: Option<usize>,
    /// Bytes from which a polling response is compressed (gzip or deflate, when the client
    /// accepts it); 0 turns it off (`httpCompression.threshold`) [default: 1024].
    #[arg(long, env = "APP_ENV_ENGINE_HTTP_COMPRESSION_THRESHOLD")]
    pub http_compression_threshold: Option<usize>,
}

/// The `[engine]` table of the TOML file: the same settings, the same names.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EngineFile {
    ping_interval_ms: Option<u64>,
    ping_timeout_ms: Option<u64>,
    upgrade_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    max_http_buffer_size: Option<usize>,
    transports: Option<Vec<String>>,
    parser: Option<String>,
    per_message_deflate: Option<bool>,
    per_message_deflate_threshold: Option<usize>,
    http_compression_threshold: Option<usize>,
}

/// The engine settings in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EngineSettings {
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    pub upgrade_timeout: Duration,
    pub connect_timeout: Duration,
    pub max_http_buffer_size: usize,
    pub transports: Transports,
    pub parser: ParserKind,
    /// The compression threshold, or `None` when permessage-deflate is off.
    pub per_message_deflate_threshold: Option<usize>,
    /// `None`: polling responses are not compressed.
    pub http_compression_threshold: Option<usize>,
}

/// The longest timer accepted: a day. Longer is a typo, and the engine adds timers together.
const MAX_MS: u64 = 86_400_000;

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            upgrade_timeout: Duration::from_millis(10_000),
            connect_timeout: Duration::from_millis(45_000),
            max_http_buffer_size: 1_000_000,
            transports: Transports::default(),
            parser: ParserKind::Json,
            per_message_deflate_threshold: Some(4096),
            http_compression_threshold: Some(1024),
        }
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn millis(
    name: &'static str,
    value: Option<u64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(name, "must be greater than 0")),
        Some(n) if n > MAX_MS => Err(invalid(
            name,
            format!("{n} ms is over the limit of {MAX_MS} ms (a day)"),
        )),
        Some(n) => Ok(Duration::from_millis(n)),
    }
}

fn parse_transports(list: Vec<String>) -> Result<Transports, ConfigError> {
    const NAME: &str = "transports (engine.transports, --transports)";
    let mut transports = Transports {
        polling: false,
        websocket: false,
    };
    for item in list.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match item {
            "polling" => transports.polling = true,
            "websocket" => transports.websocket = true,
            other => {
                return Err(invalid(
                    NAME,
                    format!("{other:?} is neither polling nor websocket"),
                ));
            }
        }
    }
    if !transports.polling && !transports.websocket {
        return Err(invalid(
            NAME,
            "at least one of polling and websocket is needed",
        ));
    }
    Ok(transports)
}

impl EngineSettings {
    /// The settings from the command line, then the file's `[engine]` table, then the
    /// defaults; a bad value is an error naming its key.
    pub(crate) fn load(cli: EngineCli, file: EngineFile) -> Result<EngineSettings, ConfigError> {
        let d = EngineSettings::default();
        let ping_interval = millis(
            "ping interval (engine.ping_interval_ms, --ping-interval-ms)",
            cli.ping_interval_ms.or(file.ping_interval_ms),
            d.ping_interval,
        )?;
        let ping_timeout = millis(
            "ping timeout (engine.ping_timeout_ms, --ping-timeout-ms)",
            cli.ping_timeout_ms.or(file.ping_timeout_ms),
            d.ping_timeout,
        )?;
        let upgrade_timeout = millis(
            "upgrade timeout (engine.upgrade_timeout_ms, --upgrade-timeout-ms)",
            cli.upgrade_timeout_ms.or(file.upgrade_timeout_ms),
            d.upgrade_timeout,
        )?;
        let connect_timeout = millis(
            "connect timeout (engine.connect_timeout_ms, --connect-timeout-ms)",
            cli.connect_timeout_ms.or(file.connect_timeout_ms),
            d.connect_timeout,
        )?;
        let max_http_buffer_size = match cli.max_http_buffer_size.or(file.max_http_buffer_size) {
            None => d.max_http_buffer_size,
            Some(0) => {
                return Err(invalid(
                    "max HTTP buffer size (engine.max_http_buffer_size, --max-http-buffer-size)",
                    "must be greater than 0",
                ));
            }
            Some(n) => n,
        };
        let transports = match cli.transports.or(file.transports) {
            None => d.transports,
            Some(list) => parse_transports(list)?,
        };
        let parser = match cli.parser.or(file.parser).as_deref().map(str::trim) {
            None | Some("json") => ParserKind::Json,
            Some("msgpack") => ParserKind::MsgPack,
            Some(other) => {
                return Err(invalid(
                    "parser (engine.parser, --parser)",
                    format!("{other:?} is neither json nor msgpack"),
                ));
            }
        };
        let threshold = cli
            .per_message_deflate_threshold
            .or(file.per_message_deflate_threshold);
        let per_message_deflate_threshold =
            match cli.per_message_deflate.or(file.per_message_deflate) {
                Some(false) if threshold.is_some() => {
                    return Err(invalid(
                        "per-message deflate threshold (engine.per_message_deflate_threshold, \
                         --per-message-deflate-threshold)",
                        "is set but per-message deflate is off",
                    ));
                }
                Some(false) => None,
                None | Some(true) => Some(threshold.unwrap_or(4096)),
            };
        let http_compression_threshold = match cli
            .http_compression_threshold
            .or(file.http_compression_threshold)
        {
            None => d.http_compression_threshold,
            Some(0) => None,
            Some(n) => Some(n),
        };
        Ok(EngineSettings {
            ping_interval,
            ping_timeout,
            upgrade_timeout,
            connect_timeout,
            max_http_buffer_size,
            transports,
            parser,
            per_message_deflate_threshold,
            http_compression_threshold,
        })
    }

    /// Sets these settings on the Socket.IO options the server binds.
    pub(crate) fn apply(&self, options: ServerOptions) -> ServerOptions {
        ServerOptions {
            ping_interval: Some(self.ping_interval),
            ping_timeout: Some(self.ping_timeout),
            upgrade_timeout: Some(self.upgrade_timeout),
            connect_timeout: Some(self.connect_timeout),
            max_http_buffer_size: Some(self.max_http_buffer_size),
            transports: Some(self.transports),
            parser: Some(self.parser),
            per_message_deflate: Some(match self.per_message_deflate_threshold {
                None => DeflateSetting::Disabled,
                // The window keeps the component's default (1 KiB): it is memory per
                // connection, not something a socket.io user sets.
                Some(threshold) => DeflateSetting::Enabled(DeflateOptions {
                    threshold: Some(threshold),
                    ..DeflateOptions::default()
                }),
            }),
            http_compression_threshold: Some(self.http_compression_threshold),
            ..options
        }
    }

    /// The `[engine]` table as `--print-config` shows it, loadable again.
    pub(crate) fn printed(&self) -> PrintedEngine {
        let mut transports = Vec::new();
        if self.transports.polling {
            transports.push("polling".to_string());
        }
        if self.transports.websocket {
            transports.push("websocket".to_string());
        }
        PrintedEngine {
            ping_interval_ms: self.ping_interval.as_millis() as u64,
            ping_timeout_ms: self.ping_timeout.as_millis() as u64,
            upgrade_timeout_ms: self.upgrade_timeout.as_millis() as u64,
            connect_timeout_ms: self.connect_timeout.as_millis() as u64,
            max_http_buffer_size: self.max_http_buffer_size,
            transports,
            parser: match self.parser {
                ParserKind::Json => "json",
                ParserKind::MsgPack => "msgpack",
            },
            per_message_deflate: self.per_message_deflate_threshold.is_some(),
            per_message_deflate_threshold: self.per_message_deflate_threshold,
            http_compression_threshold: self.http_compression_threshold.unwrap_or(0),
        }
    }
}

/// The `[engine]` table of `--print-config`.
#[derive(Debug, Serialize)]
pub(crate) struct PrintedEngine {
    ping_interval_ms: u64,
    ping_timeout_ms: u64,
    upgrade_timeout_ms: u64,
    connect_timeout_ms: u64,
    max_http_buffer_size: usize,
    transports: Vec<String>,
    parser: &'static str,
    per_message_deflate: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_message_deflate_threshold: Option<usize>,
    http_compression_threshold: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(cli: EngineCli) -> Result<EngineSettings, String> {
        EngineSettings::load(cli, EngineFile::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn the_defaults_are_socket_io_s() {
        let s = load(EngineCli::default()).unwrap();
        assert_eq!(s, EngineSettings::default());
        assert_eq!(s.ping_interval, Duration::from_secs(25));
        assert_eq!(s.ping_timeout, Duration::from_secs(20));
        assert_eq!(s.connect_timeout, Duration::from_secs(45));
        assert_eq!(s.max_http_buffer_size, 1_000_000);
        assert_eq!(s.parser, ParserKind::Json);
        assert_eq!(s.per_message_deflate_threshold, Some(4096));
    }

    #[test]
    fn flags_win_over_the_file_table() {
        let file: EngineFile = toml::from_str(
            "ping_interval_ms = 1000\nparser = \"msgpack\"\ntransports = [\"websocket\"]\n\
             per_message_deflate = false\nhttp_compression_threshold = 0\n",
        )
        .unwrap();
        let s = EngineSettings::load(
            EngineCli {
                ping_interval_ms: Some(2000),
                ..EngineCli::default()
            },
            file,
        )
        .unwrap();
        assert_eq!(s.ping_interval, Duration::from_secs(2));
        assert_eq!(s.parser, ParserKind::MsgPack);
        assert_eq!(
            s.transports,
            Transports {
                polling: false,
                websocket: true
            }
        );
        assert_eq!(s.per_message_deflate_threshold, None);
        assert_eq!(s.http_compression_threshold, None);
    }

    #[test]
    fn bad_values_name_their_key_and_reason() {
        let cases: Vec<(EngineCli, &str, &str)> = vec![
            (
                EngineCli {
                    ping_interval_ms: Some(0),
                    ..EngineCli::default()
                },
                "engine.ping_interval_ms",
                "greater than 0",
            ),
            (
                EngineCli {
                    ping_timeout_ms: Some(MAX_MS + 1),
                    ..EngineCli::default()
                },
                "engine.ping_timeout_ms",
                "over the limit",
            ),
            (
                EngineCli {
                    connect_timeout_ms: Some(0),
                    ..EngineCli::default()
                },
                "--connect-timeout-ms",
                "greater than 0",
            ),
            (
                EngineCli {
                    max_http_buffer_size: Some(0),
                    ..EngineCli::default()
                },
                "engine.max_http_buffer_size",
                "greater than 0",
            ),
            (
                EngineCli {
                    transports: Some(vec!["carrier-pigeon".into()]),
                    ..EngineCli::default()
                },
                "engine.transports",
                "\"carrier-pigeon\" is neither polling nor websocket",
            ),
            (
                EngineCli {
                    transports: Some(vec![]),
                    ..EngineCli::default()
                },
                "engine.transports",
                "at least one",
            ),
            (
                EngineCli {
                    parser: Some("protobuf".into()),
                    ..EngineCli::default()
                },
                "engine.parser",
                "neither json nor msgpack",
            ),
            (
                EngineCli {
                    per_message_deflate: Some(false),
                    per_message_deflate_threshold: Some(10),
                    ..EngineCli::default()
                },
                "engine.per_message_deflate_threshold",
                "deflate is off",
            ),
        ];
        for (cli, key, reason) in cases {
            let err = load(cli).unwrap_err();
            assert!(err.contains(key) && err.contains(reason), "{err}");
        }
    }
}
