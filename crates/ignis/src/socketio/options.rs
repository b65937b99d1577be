//! Server options: the defaults of the original component and their deep merge with what the
//! application binds.

use std::time::Duration;

use ignis_socketio::engine::{AllowOrigin, AllowRequest, Cors, PerMessageDeflate, Transports};
use ignis_socketio::{EventRate, ParserKind, RecoveryConfig, SocketIoBuilder};

use crate::error::ApplicationError;

/// CORS options; every field left `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct CorsOptions {
    /// The origins allowed (`*` by default).
    pub origin: Option<AllowOrigin>,
    /// The methods allowed (`GET`, `POST` by default).
    pub methods: Option<Vec<String>>,
    /// The request headers allowed.
    pub allowed_headers: Option<Vec<String>>,
    /// The response headers a browser script may read.
    pub exposed_headers: Option<Vec<String>>,
    /// Whether cookies and credentials are allowed (true by default).
    pub credentials: Option<bool>,
    /// How long, in seconds, a browser may cache a preflight answer.
    pub max_age: Option<u64>,
    /// The status of a preflight answer (204 by default).
    pub options_success_status: Option<u16>,
}

/// permessage-deflate options; every field left `None` keeps the default.
#[derive(Debug, Clone, Default)]
pub struct DeflateOptions {
    /// Messages smaller than this many bytes are sent uncompressed (4 096 by default).
    pub threshold: Option<usize>,
    /// The server's LZ77 window, in bits (10 by default).
    pub server_max_window_bits: Option<u8>,
    /// The zlib compression level.
    pub level: Option<u32>,
}

/// Whether WebSocket compression is on.
#[derive(Debug, Clone)]
pub enum DeflateSetting {
    /// No compression.
    Disabled,
    /// Compression with these options.
    Enabled(DeflateOptions),
}

/// The Socket.IO server options an application binds at `@app/socket-io/server-options`.
///
/// Unlike the original (which merges shallowly, so a bound `cors: {origin}` loses the default
/// methods and credentials), options merge field by field: what the application sets wins,
/// everything else keeps the default, nested options included.
#[derive(Clone, Default)]
pub struct ServerOptions {
    /// Logger scope of the helper.
    pub identifier: Option<String>,
    /// The path Socket.IO is served on (`/io` by default).
    pub path: Option<String>,
    /// CORS, merged field by field with the defaults.
    pub cors: Option<CorsOptions>,
    /// WebSocket compression (on by default).
    pub per_message_deflate: Option<DeflateSetting>,
    /// The Engine.IO heartbeat (not the app-level `ping` event).
    pub ping_interval: Option<Duration>,
    /// How long the Engine.IO heartbeat waits for a pong (20 s by default).
    pub ping_timeout: Option<Duration>,
    /// How long an upgrade to WebSocket may take (10 s by default).
    pub upgrade_timeout: Option<Duration>,
    /// How long a client has to join a namespace after the handshake (45 s by default).
    pub connect_timeout: Option<Duration>,
    /// The largest message a client may send, in bytes (1 000 000 by default).
    pub max_http_buffer_size: Option<usize>,
    /// The transports offered (polling and WebSocket by default).
    pub transports: Option<Transports>,
    /// Decides whether a handshake request is accepted.
    pub allow_request: Option<AllowRequest>,
    /// `Some(None)` turns polling compression off.
    pub http_compression_threshold: Option<Option<usize>>,
    /// Rooms a client may be in, its own included (1 000 by default; see
    /// [`SocketLimits`](ignis_socketio::SocketLimits)).
    pub max_rooms_per_socket: Option<usize>,
    /// Events a client may send (1 000 per second, 1 000 at once by default); `Some(None)`
    /// lifts the limit.
    pub event_rate_limit: Option<Option<EventRate>>,
    /// Bytes of one event, attachments included (1 000 000 by default).
    pub max_event_payload: Option<usize>,
    /// Messages queued for one client before it is cut as too slow (8 192 by default; see
    /// [`EngineConfig::max_queued_messages`](ignis_socketio::engine::EngineConfig)).
    pub max_queued_messages: Option<usize>,
    /// Bytes queued for one client before it is cut as too slow (16 MiB by default).
    pub max_queued_bytes: Option<usize>,
    /// How long a request body may take to arrive (30 s by default).
    pub body_timeout: Option<Duration>,
    /// Connections open at once from one IP address; `Some(0)` or unset is no limit (the
    /// default: behind a load balancer every client has its address).
    pub max_connections_per_ip: Option<u32>,
    /// Handshakes per second from one IP address; `Some(0)` or unset is no limit.
    pub handshakes_per_second_per_ip: Option<u32>,
    /// Handshakes one IP address may make at once before that rate applies (20 by default).
    pub handshake_burst_per_ip: Option<u32>,
    /// Connection state recovery, off unless set (as in the original): a client that comes
    /// back within `max_disconnection_duration` keeps its id, rooms and data, and gets the
    /// broadcasts it missed.
    pub connection_state_recovery: Option<RecoveryConfig>,
    /// How packets are encoded: JSON text (the default) or msgpack, for clients that use
    /// `socket.io-msgpack-parser`. Every client of the server must use the same parser.
    pub parser: Option<ParserKind>,
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("identifier", &self.identifier)
            .field("path", &self.path)
            .field("cors", &self.cors)
            .field("per_message_deflate", &self.per_message_deflate)
            .field("ping_interval", &self.ping_interval)
            .field("ping_timeout", &self.ping_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_http_buffer_size", &self.max_http_buffer_size)
            .field("transports", &self.transports)
            .field("allow_request", &self.allow_request.is_some())
            .field("max_rooms_per_socket", &self.max_rooms_per_socket)
            .field("event_rate_limit", &self.event_rate_limit)
            .field("max_event_payload", &self.max_event_payload)
            .field("max_queued_messages", &self.max_queued_messages)
            .field("max_queued_bytes", &self.max_queued_bytes)
            .field("body_timeout", &self.body_timeout)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field(
                "handshakes_per_second_per_ip",
                &self.handshakes_per_second_per_ip,
            )
            .field("handshake_burst_per_ip", &self.handshake_burst_per_ip)
            .field("connection_state_recovery", &self.connection_state_recovery)
            .field("parser", &self.parser)
            .finish()
    }
}

fn pick<T>(user: Option<T>, default: Option<T>) -> Option<T> {
    user.or(default)
}

impl ServerOptions {
    /// The component's defaults (the original's `DEFAULT_SERVER_OPTIONS`): path `/io`, CORS for
    /// any origin with credentials, permessage-deflate from 4096 bytes with a 1 KiB window.
    pub fn defaults() -> ServerOptions {
        ServerOptions {
            identifier: Some("SOCKET_IO_SERVER".into()),
            path: Some("/io".into()),
            cors: Some(CorsOptions {
                origin: Some(AllowOrigin::Any),
                methods: Some(vec!["GET".into(), "POST".into()]),
                allowed_headers: None,
                exposed_headers: None,
                credentials: Some(true),
                max_age: None,
                options_success_status: Some(204),
            }),
            per_message_deflate: Some(DeflateSetting::Enabled(DeflateOptions {
                threshold: Some(4096),
                server_max_window_bits: Some(10),
                level: None,
            })),
            ..ServerOptions::default()
        }
    }

    /// `self` (the defaults) overridden field by field by `user`.
    pub fn merge(self, user: ServerOptions) -> ServerOptions {
        let cors = match (self.cors, user.cors) {
            (Some(d), Some(u)) => Some(CorsOptions {
                origin: pick(u.origin, d.origin),
                methods: pick(u.methods, d.methods),
                allowed_headers: pick(u.allowed_headers, d.allowed_headers),
                exposed_headers: pick(u.exposed_headers, d.exposed_headers),
                credentials: pick(u.credentials, d.credentials),
                max_age: pick(u.max_age, d.max_age),
                options_success_status: pick(u.options_success_status, d.options_success_status),
            }),
            (d, u) => u.or(d),
        };
        let per_message_deflate = match (self.per_message_deflate, user.per_message_deflate) {
            (Some(DeflateSetting::Enabled(d)), Some(DeflateSetting::Enabled(u))) => {
                Some(DeflateSetting::Enabled(DeflateOptions {
                    threshold: pick(u.threshold, d.threshold),
                    server_max_window_bits: pick(
                        u.server_max_window_bits,
                        d.server_max_window_bits,
                    ),
                    level: pick(u.level, d.level),
                }))
            }
            (d, u) => u.or(d),
        };
        ServerOptions {
            identifier: pick(user.identifier, self.identifier),
            path: pick(user.path, self.path),
            cors,
            per_message_deflate,
            ping_interval: pick(user.ping_interval, self.ping_interval),
            ping_timeout: pick(user.ping_timeout, self.ping_timeout),
            upgrade_timeout: pick(user.upgrade_timeout, self.upgrade_timeout),
            connect_timeout: pick(user.connect_timeout, self.connect_timeout),
            max_http_buffer_size: pick(user.max_http_buffer_size, self.max_http_buffer_size),
            transports: pick(user.transports, self.transports),
            allow_request: pick(user.allow_request, self.allow_request),
            http_compression_threshold: pick(
                user.http_compression_threshold,
                self.http_compression_threshold,
            ),
            max_rooms_per_socket: pick(user.max_rooms_per_socket, self.max_rooms_per_socket),
            event_rate_limit: pick(user.event_rate_limit, self.event_rate_limit),
            max_event_payload: pick(user.max_event_payload, self.max_event_payload),
            max_queued_messages: pick(user.max_queued_messages, self.max_queued_messages),
            max_queued_bytes: pick(user.max_queued_bytes, self.max_queued_bytes),
            body_timeout: pick(user.body_timeout, self.body_timeout),
            max_connections_per_ip: pick(user.max_connections_per_ip, self.max_connections_per_ip),
            handshakes_per_second_per_ip: pick(
                user.handshakes_per_second_per_ip,
                self.handshakes_per_second_per_ip,
            ),
            handshake_burst_per_ip: pick(user.handshake_burst_per_ip, self.handshake_burst_per_ip),
            connection_state_recovery: pick(
                user.connection_state_recovery,
                self.connection_state_recovery,
            ),
            parser: pick(user.parser, self.parser),
        }
    }

    /// Checks the options, with a message naming what is wrong.
    pub fn validate(&self) -> Result<(), ApplicationError> {
        const P: &str = "[SocketIOComponent][validateOptions]";
        if let Some(path) = &self.path
            && !path.starts_with('/')
        {
            return Err(ApplicationError::new(format!(
                "{P} Invalid path {path:?}: it must start with '/'"
            )));
        }
        if let Some(t) = self.transports
            && !t.polling
            && !t.websocket
        {
            return Err(ApplicationError::new(format!(
                "{P} Invalid transports: at least one of polling and websocket is required"
            )));
        }
        for (name, d) in [
            ("pingInterval", self.ping_interval),
            ("pingTimeout", self.ping_timeout),
            ("upgradeTimeout", self.upgrade_timeout),
            ("connectTimeout", self.connect_timeout),
            ("bodyTimeout", self.body_timeout),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(ApplicationError::new(format!(
                    "{P} Invalid {name}: it must be greater than 0"
                )));
            }
        }
        if self.max_rooms_per_socket == Some(0) {
            return Err(ApplicationError::new(format!(
                "{P} Invalid maxRoomsPerSocket: it must be greater than 0 (a client is always in its own room)"
            )));
        }
        for (name, n) in [
            ("maxQueuedMessages", self.max_queued_messages),
            ("maxQueuedBytes", self.max_queued_bytes),
            (
                "handshakeBurstPerIp",
                self.handshake_burst_per_ip.map(|n| n as usize),
            ),
        ] {
            if n == Some(0) {
                return Err(ApplicationError::new(format!(
                    "{P} Invalid {name}: it must be greater than 0"
                )));
            }
        }
        if self.max_event_payload == Some(0) {
            return Err(ApplicationError::new(format!(
                "{P} Invalid maxEventPayload: it must be greater than 0"
            )));
        }
        if let Some(Some(rate)) = self.event_rate_limit
            && (rate.per_second == 0 || rate.burst == 0)
        {
            return Err(ApplicationError::new(format!(
                "{P} Invalid eventRateLimit: per second and burst must be greater than 0 (no limit is None)"
            )));
        }
        if self.max_http_buffer_size == Some(0) {
            return Err(ApplicationError::new(format!(
                "{P} Invalid maxHttpBufferSize: it must be greater than 0"
            )));
        }
        if let Some(DeflateSetting::Enabled(d)) = &self.per_message_deflate
            && let Some(bits) = d.server_max_window_bits
            && !(8..=15).contains(&bits)
        {
            return Err(ApplicationError::new(format!(
                "{P} Invalid perMessageDeflate.serverMaxWindowBits {bits}: it must be within 8..15"
            )));
        }
        Ok(())
    }

    /// Applies the options to a Socket.IO server builder.
    pub fn apply(&self, mut builder: SocketIoBuilder) -> SocketIoBuilder {
        if let Some(path) = &self.path {
            builder = builder.path(path.clone());
        }
        if let Some(cors) = &self.cors {
            let d = Cors::default();
            builder = builder.cors(Cors {
                origin: cors.origin.clone().unwrap_or(d.origin),
                methods: cors.methods.clone().unwrap_or(d.methods),
                allowed_headers: cors.allowed_headers.clone(),
                exposed_headers: cors.exposed_headers.clone().unwrap_or_default(),
                credentials: cors.credentials.unwrap_or(false),
                max_age: cors.max_age,
                options_success_status: cors.options_success_status.unwrap_or(204),
            });
        }
        if let Some(DeflateSetting::Enabled(o)) = &self.per_message_deflate {
            let d = PerMessageDeflate::default();
            builder = builder.per_message_deflate(PerMessageDeflate {
                threshold: o.threshold.unwrap_or(d.threshold),
                server_max_window_bits: o
                    .server_max_window_bits
                    .unwrap_or(d.server_max_window_bits),
                level: o.level.unwrap_or(d.level),
            });
        }
        if let Some(d) = self.ping_interval {
            builder = builder.ping_interval(d);
        }
        if let Some(d) = self.ping_timeout {
            builder = builder.ping_timeout(d);
        }
        if let Some(d) = self.upgrade_timeout {
            builder = builder.upgrade_timeout(d);
        }
        if let Some(d) = self.connect_timeout {
            builder = builder.connect_timeout(d);
        }
        if let Some(n) = self.max_http_buffer_size {
            builder = builder.max_http_buffer_size(n);
        }
        if let Some(t) = self.transports {
            builder = builder.transports(t);
        }
        if let Some(t) = self.http_compression_threshold {
            builder = builder.http_compression_threshold(t);
        }
        if let Some(max) = self.max_rooms_per_socket {
            builder = builder.max_rooms_per_socket(max);
        }
        if let Some(rate) = self.event_rate_limit {
            builder = builder.event_rate_limit(rate);
        }
        if let Some(bytes) = self.max_event_payload {
            builder = builder.max_event_payload(bytes);
        }
        let engine_limits = (
            self.max_queued_messages,
            self.max_queued_bytes,
            self.body_timeout,
            self.max_connections_per_ip,
            self.handshakes_per_second_per_ip,
            self.handshake_burst_per_ip,
        );
        if engine_limits != (None, None, None, None, None, None) {
            builder = builder.engine(move |c| {
                let (messages, bytes, body, connections, handshakes, burst) = engine_limits;
                c.max_queued_messages = messages.unwrap_or(c.max_queued_messages);
                c.max_queued_bytes = bytes.unwrap_or(c.max_queued_bytes);
                c.body_timeout = body.unwrap_or(c.body_timeout);
                c.max_connections_per_ip = connections.unwrap_or(c.max_connections_per_ip);
                c.handshakes_per_second_per_ip =
                    handshakes.unwrap_or(c.handshakes_per_second_per_ip);
                c.handshake_burst_per_ip = burst.unwrap_or(c.handshake_burst_per_ip);
            });
        }
        if let Some(recovery) = &self.connection_state_recovery {
            builder = builder.connection_state_recovery(recovery.clone());
        }
        if let Some(parser) = self.parser {
            builder = builder.parser(parser);
        }
        if let Some(hook) = &self.allow_request {
            let hook = hook.clone();
            builder = builder.engine(move |c| c.allow_request = Some(hook));
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_cors_origin_keeps_the_default_methods_and_credentials() {
        let user = ServerOptions {
            cors: Some(CorsOptions {
                origin: Some(AllowOrigin::List(vec!["http://a.test".into()])),
                ..CorsOptions::default()
            }),
            ping_interval: Some(Duration::from_secs(5)),
            ..ServerOptions::default()
        };
        let merged = ServerOptions::defaults().merge(user);
        let cors = merged.cors.unwrap();
        assert!(matches!(cors.origin, Some(AllowOrigin::List(_))));
        assert_eq!(cors.methods, Some(vec!["GET".into(), "POST".into()]));
        assert_eq!(cors.credentials, Some(true));
        assert_eq!(cors.options_success_status, Some(204));
        assert_eq!(merged.path.as_deref(), Some("/io"));
        assert_eq!(merged.ping_interval, Some(Duration::from_secs(5)));
        match merged.per_message_deflate {
            Some(DeflateSetting::Enabled(d)) => {
                assert_eq!(d.threshold, Some(4096));
                assert_eq!(d.server_max_window_bits, Some(10));
            }
            other => panic!("deflate lost: {other:?}"),
        }
    }

    #[test]
    fn the_limits_merge_and_reach_the_server() {
        let merged = ServerOptions::defaults().merge(ServerOptions {
            max_rooms_per_socket: Some(50),
            event_rate_limit: Some(None),
            ..ServerOptions::default()
        });
        let io = merged.apply(ignis_socketio::SocketIo::builder()).build();
        let limits = io.limits();
        assert_eq!(limits.max_rooms_per_socket, 50);
        assert_eq!(limits.event_rate, None);
        assert_eq!(
            limits.max_event_payload,
            ignis_socketio::DEFAULT_MAX_EVENT_PAYLOAD
        );
        let defaults = ServerOptions::defaults()
            .apply(ignis_socketio::SocketIo::builder())
            .build();
        assert_eq!(defaults.limits(), &ignis_socketio::SocketLimits::default());
    }

    #[test]
    fn the_engine_limits_merge_and_reach_the_engine() {
        let merged = ServerOptions::defaults().merge(ServerOptions {
            max_queued_bytes: Some(1 << 20),
            body_timeout: Some(Duration::from_millis(1500)),
            max_connections_per_ip: Some(40),
            handshakes_per_second_per_ip: Some(20),
            ..ServerOptions::default()
        });
        let io = merged.apply(ignis_socketio::SocketIo::builder()).build();
        let c = io.engine().config();
        let d = ignis_socketio::engine::EngineConfig::default();
        assert_eq!(c.max_queued_bytes, 1 << 20);
        assert_eq!(c.body_timeout, Duration::from_millis(1500));
        assert_eq!(c.max_connections_per_ip, 40);
        assert_eq!(c.handshakes_per_second_per_ip, 20);
        assert_eq!(c.handshake_burst_per_ip, d.handshake_burst_per_ip);
        assert_eq!(c.max_queued_messages, d.max_queued_messages);
        let err = ServerOptions {
            max_queued_bytes: Some(0),
            ..ServerOptions::default()
        }
        .validate()
        .unwrap_err();
        assert!(err.to_string().contains("maxQueuedBytes"), "{err}");
    }

    #[test]
    fn recovery_is_off_unless_set_and_survives_the_merge() {
        assert!(
            ServerOptions::defaults()
                .connection_state_recovery
                .is_none()
        );
        let merged = ServerOptions::defaults().merge(ServerOptions {
            connection_state_recovery: Some(RecoveryConfig {
                max_disconnection_duration: Duration::from_secs(7),
                ..RecoveryConfig::default()
            }),
            ..ServerOptions::default()
        });
        let recovery = merged.connection_state_recovery.expect("kept by the merge");
        assert_eq!(recovery.max_disconnection_duration, Duration::from_secs(7));
    }

    #[test]
    fn compression_can_be_turned_off() {
        let merged = ServerOptions::defaults().merge(ServerOptions {
            per_message_deflate: Some(DeflateSetting::Disabled),
            ..ServerOptions::default()
        });
        assert!(matches!(
            merged.per_message_deflate,
            Some(DeflateSetting::Disabled)
        ));
    }

    #[test]
    fn validation_names_the_bad_option() {
        let cases: Vec<(ServerOptions, &str)> = vec![
            (
                ServerOptions {
                    path: Some("io".into()),
                    ..Default::default()
                },
                "Invalid path \"io\": it must start with '/'",
            ),
            (
                ServerOptions {
                    ping_interval: Some(Duration::ZERO),
                    ..Default::default()
                },
                "Invalid pingInterval: it must be greater than 0",
            ),
            (
                ServerOptions {
                    transports: Some(Transports {
                        polling: false,
                        websocket: false,
                    }),
                    ..Default::default()
                },
                "Invalid transports",
            ),
            (
                ServerOptions {
                    max_http_buffer_size: Some(0),
                    ..Default::default()
                },
                "Invalid maxHttpBufferSize",
            ),
            (
                ServerOptions {
                    max_rooms_per_socket: Some(0),
                    ..Default::default()
                },
                "Invalid maxRoomsPerSocket",
            ),
            (
                ServerOptions {
                    event_rate_limit: Some(Some(EventRate {
                        per_second: 0,
                        burst: 10,
                    })),
                    ..Default::default()
                },
                "Invalid eventRateLimit",
            ),
        ];
        for (options, expected) in cases {
            let err = options.validate().unwrap_err();
            assert!(
                err.message.contains(expected),
                "{} lacks {expected}",
                err.message
            );
        }
        assert!(ServerOptions::defaults().validate().is_ok());
    }
}
