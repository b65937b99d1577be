//! Client options and the builder that collects them.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use ignis_proto::Value;
use serde::Serialize;

use crate::error::Error;
use crate::manager::Manager;
use crate::socket::Socket;
use crate::tls::TlsOptions;

/// An Engine.IO transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    Websocket,
}

impl Transport {
    /// The name in the `transport` query parameter.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::Websocket => "websocket",
        }
    }
}

/// The Socket.IO packet format; both ends must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Parser {
    /// The default parser (`socket.io-parser`): JSON text plus binary attachments.
    #[default]
    Json,
    /// `socket.io-msgpack-parser`: one msgpack message per packet.
    Msgpack,
}

/// Where the server is, from the URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The `Host` header value.
    pub(crate) authority: String,
    /// The Engine.IO path, with a trailing slash.
    pub(crate) path: String,
    /// Query parameters sent with every Engine.IO request.
    pub(crate) query: Vec<(String, String)>,
    /// Whether the URL is `https` or `wss`.
    pub(crate) secure: bool,
    /// The TLS configuration of a secure target, set when the options are built.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, Error> {
        let uri: http::Uri = url.parse().map_err(|_| Error::InvalidUrl(url.into()))?;
        let secure = match uri.scheme_str() {
            Some("http" | "ws") => false,
            Some("https" | "wss") => true,
            Some(other) => return Err(Error::UnsupportedScheme(other.into())),
            None => return Err(Error::InvalidUrl(url.into())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| Error::InvalidUrl(url.into()))?;
        let port = explicit_port(uri.authority().map_or("", |a| a.as_str()))
            .map_err(|()| Error::InvalidUrl(url.into()))?
            .unwrap_or(if secure { 443 } else { 80 });
        // An IPv6 literal keeps its brackets in the Host header but not for connecting.
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let authority = uri
            .authority()
            .map(|a| {
                a.as_str()
                    .rsplit('@')
                    .next()
                    .unwrap_or(a.as_str())
                    .to_owned()
            })
            .unwrap_or_else(|| host.to_owned());
        let query = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Target {
            host: bare_host,
            port,
            authority,
            path: "/socket.io/".into(),
            query,
            secure,
            tls: None,
        })
    }

    /// The request target (path and query) of an Engine.IO request.
    pub(crate) fn request_path(&self, transport: Transport, sid: Option<&str>) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.query {
            query.append_pair(k, v);
        }
        query.append_pair("EIO", "4");
        query.append_pair("transport", transport.as_str());
        if let Some(sid) = sid {
            query.append_pair("sid", sid);
        }
        format!("{}?{}", self.path, query.finish())
    }
}

/// The port written in an authority; `http::Uri` reads an out-of-range port as none.
fn explicit_port(authority: &str) -> Result<Option<u16>, ()> {
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let after_host = match host_port.rfind(']') {
        Some(i) => &host_port[i + 1..],
        None => host_port,
    };
    match after_host.rsplit_once(':') {
        None => Ok(None),
        Some((_, "")) => Ok(None),
        Some((_, port)) => port.parse().map(Some).map_err(drop),
    }
}

/// Everything a manager needs to connect.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) target: Target,
    pub(crate) headers: HeaderMap,
    pub(crate) transports: Vec<Transport>,
    pub(crate) upgrade: bool,
    pub(crate) reconnection: bool,
    pub(crate) reconnection_attempts: Option<u32>,
    pub(crate) reconnection_delay: Duration,
    pub(crate) reconnection_delay_max: Duration,
    pub(crate) randomization_factor: f64,
    pub(crate) timeout: Duration,
    pub(crate) parser: Parser,
    pub(crate) auth: Option<Value>,
    pub(crate) per_message_deflate: bool,
    pub(crate) max_message_size: usize,
    pub(crate) max_queued_messages: usize,
    pub(crate) max_buffered_packets: usize,
}

/// Builds a [`Manager`] and its sockets; the options are those of socket.io-client.
///
/// ```
/// use std::time::Duration;
/// use ignis_client::{Client, Transport};
///
/// let builder = Client::builder("http://127.0.0.1:3000")
///     .path("/io")
///     .header("authorization", "Bearer token")
///     .query("room", "lobby")
///     .auth(serde_json::json!({ "token": "secret" }))
///     .transports([Transport::Websocket])
///     .reconnection_attempts(5)
///     .reconnection_delay(Duration::from_millis(500));
/// let manager = builder.build().expect("valid options");
/// let socket = manager.socket("/chat").expect("valid namespace");
/// assert!(!socket.connected());
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    url: String,
    path: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    auth: Result<Option<Value>, Error>,
    options: Options,
    tls: TlsOptions,
}

/// Where a connection starts: [`Client::builder`] collects the options, then connects a
/// socket.
#[derive(Debug, Clone, Copy)]
pub struct Client;

impl Client {
    /// Starts a builder for the server at `url` (`http://host:port` or `ws://host:port`; a query
    /// in the URL is sent with every request).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }
}

impl ClientBuilder {
    /// Starts a builder for the server at `url`.
    pub fn new(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            path: "/socket.io".into(),
            headers: Vec::new(),
            query: Vec::new(),
            auth: Ok(None),
            options: Options {
                target: Target {
                    host: String::new(),
                    port: 0,
                    authority: String::new(),
                    path: String::new(),
                    query: Vec::new(),
                    secure: false,
                    tls: None,
                },
                headers: HeaderMap::new(),
                transports: vec![Transport::Polling, Transport::Websocket],
                upgrade: true,
                reconnection: true,
                reconnection_attempts: None,
                reconnection_delay: Duration::from_millis(1000),
                reconnection_delay_max: Duration::from_millis(5000),
                randomization_factor: 0.5,
                timeout: Duration::from_millis(20_000),
                parser: Parser::Json,
                auth: None,
                per_message_deflate: true,
                max_message_size: 64 << 20,
                max_queued_messages: 65_536,
                max_buffered_packets: 4096,
            },
            tls: TlsOptions::default(),
        }
    }

    /// The Engine.IO path (default `/socket.io`); a trailing slash is added as socket.io-client
    /// does.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// A header sent with every HTTP request and the WebSocket handshake (`extraHeaders`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A query parameter sent with every Engine.IO request.
    pub fn query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// The auth payload sent in every namespace CONNECT (must serialise to an object).
    pub fn auth(mut self, auth: impl Serialize) -> Self {
        self.auth = ignis_proto::value::to_value(&auth)
            .map(Some)
            .map_err(Error::from);
        self
    }

    /// Transports in order of use: the first opens the connection; with polling first and
    /// upgrades on, the connection moves to WebSocket when the server offers it.
    pub fn transports(mut self, transports: impl IntoIterator<Item = Transport>) -> Self {
        self.options.transports = transports.into_iter().collect();
        self
    }

    /// Whether to upgrade from polling to WebSocket (default true).
    pub fn upgrade(mut self, upgrade: bool) -> Self {
        self.options.upgrade = upgrade;
        self
    }

    /// Whether to reconnect after a lost connection (default true).
    pub fn reconnection(mut self, on: bool) -> Self {
        self.options.reconnection = on;
        self
    }

    /// Gives up after this many failed reconnection attempts in a row (default: never).
    pub fn reconnection_attempts(mut self, attempts: u32) -> Self {
        self.options.reconnection_attempts = Some(attempts);
        self
    }

    /// The first delay between attempts (default 1 s); it doubles up to the maximum.
    pub fn reconnection_delay(mut self, delay: Duration) -> Self {
        self.options.reconnection_delay = delay;
        self
    }

    /// The largest delay between attempts (default 5 s).
    pub fn reconnection_delay_max(mut self, delay: Duration) -> Self {
        self.options.reconnection_delay_max = delay;
        self
    }

    /// Jitter: each delay moves by up to this fraction of itself (default 0.5, clamped to 0..=1).
    pub fn randomization_factor(mut self, factor: f64) -> Self {
        self.options.randomization_factor = if factor.is_finite() {
            factor.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// How long opening a connection, and connecting to a namespace, may take (default 20 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// The packet format (default JSON).
    pub fn parser(mut self, parser: Parser) -> Self {
        self.options.parser = parser;
        self
    }

    /// Whether to offer permessage-deflate on WebSocket (default true, as socket.io-client).
    pub fn per_message_deflate(mut self, on: bool) -> Self {
        self.options.per_message_deflate = on;
        self
    }

    /// The largest message or polling response accepted from the server (default 64 MiB).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.options.max_message_size = bytes;
        self
    }

    /// Most messages waiting for the transport before `emit` fails with
    /// [`Error::QueueFull`] (default 65 536).
    pub fn max_queued_messages(mut self, n: usize) -> Self {
        self.options.max_queued_messages = n;
        self
    }

    /// Most packets a socket keeps while disconnected, to send once connected, before `emit`
    /// fails with [`Error::BufferFull`]; also bounds events received before the namespace
    /// connection completes (default 4096).
    pub fn max_buffered_packets(mut self, n: usize) -> Self {
        self.options.max_buffered_packets = n;
        self
    }

    /// How the server's certificate is checked on `https://` and `wss://` URLs (the system's
    /// trusted roots by default).
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    pub(crate) fn into_options(self) -> Result<Options, Error> {
        let mut options = self.options;
        options.target = Target::parse(&self.url)?;
        if options.target.secure {
            options.target.tls = Some(self.tls.client_config()?);
        }
        let mut path = self.path;
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        if !path.ends_with('/') {
            path.push('/');
        }
        options.target.path = path;
        options.target.query.extend(self.query);
        for (name, value) in self.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::InvalidHeader(name.clone()))?;
            let header_value =
                HeaderValue::from_str(&value).map_err(|_| Error::InvalidHeader(name.clone()))?;
            options.headers.append(header_name, header_value);
        }
        options.auth = self.auth?;
        if let Some(auth) = &options.auth
            && !matches!(auth, Value::Map(_))
        {
            return Err(Error::InvalidAuth);
        }
        if options.transports.is_empty() {
            options.transports = vec![Transport::Polling, Transport::Websocket];
        }
        Ok(options)
    }

    /// A manager with these options; nothing connects until a socket does.
    pub fn build(self) -> Result<Manager, Error> {
        Ok(Manager::new(Arc::new(self.into_options()?)))
    }

    /// Connects to namespace `nsp` and waits until the server accepted it.
    ///
    /// On failure nothing keeps running: the socket is closed before the error is returned. For
    /// a socket that keeps retrying in the background, use [`Manager::socket`] and
    /// [`Socket::open`].
    pub async fn connect(self, nsp: &str) -> Result<Socket, Error> {
        let manager = self.build()?;
        let socket = manager.socket(nsp)?;
        match socket.connect().await {
            Ok(()) => Ok(socket),
            Err(err) => {
                socket.disconnect();
                Err(Error::Connect(err))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        type Case<'a> = (&'a str, &'a str, u16, &'a str, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            (
                "http://127.0.0.1:3000",
                "127.0.0.1",
                3000,
                "127.0.0.1:3000",
                &[],
            ),
            ("ws://example.com", "example.com", 80, "example.com", &[]),
            ("http://[::1]:8080/x", "::1", 8080, "[::1]:8080", &[]),
            (
                "http://h:1/?a=1&b=x%20y",
                "h",
                1,
                "h:1",
                &[("a", "1"), ("b", "x y")],
            ),
            ("http://user:pw@h:2", "h", 2, "h:2", &[]),
            ("https://h", "h", 443, "h", &[]),
            ("wss://h:8443", "h", 8443, "h:8443", &[]),
        ];
        for (url, host, port, authority, query) in cases {
            let t = Target::parse(url).unwrap();
            assert_eq!(t.host, *host, "{url}");
            assert_eq!(t.port, *port, "{url}");
            assert_eq!(t.authority, *authority, "{url}");
            let q: Vec<(&str, &str)> = t
                .query
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(&q, query, "{url}");
        }
    }

    #[test]
    fn refuses_bad_urls() {
        let cases = [
            ("", "invalid"),
            ("127.0.0.1:3000", "invalid"),
            ("/relative", "invalid"),
            ("ftp://example.com", "scheme"),
            ("http://", "invalid"),
            ("http://exa mple.com", "invalid"),
            ("http://127.0.0.1:99999", "invalid"),
            ("http://127.0.0.1:-1", "invalid"),
        ];
        for (url, kind) in cases {
            let err = Target::parse(url).unwrap_err();
            match (kind, &err) {
                ("invalid", Error::InvalidUrl(_)) | ("scheme", Error::UnsupportedScheme(_)) => {}
                _ => panic!("{url:?}: {err:?}"),
            }
        }
    }

    #[test]
    fn request_path_has_engine_parameters() {
        let options = Client::builder("http://h:1/?x=1")
            .path("io")
            .query("token", "a&b")
            .into_options()
            .unwrap();
        assert_eq!(
            options.target.request_path(Transport::Polling, None),
            "/io/?x=1&token=a%26b&EIO=4&transport=polling"
        );
        assert_eq!(
            options
                .target
                .request_path(Transport::Websocket, Some("abc")),
            "/io/?x=1&token=a%26b&EIO=4&transport=websocket&sid=abc"
        );
    }

    #[test]
    fn refuses_bad_options() {
        let bad_header = Client::builder("http://h").header("bad name", "x");
        assert!(matches!(
            bad_header.into_options(),
            Err(Error::InvalidHeader(_))
        ));
        let bad_value = Client::builder("http://h").header("x", "a\nb");
        assert!(matches!(
            bad_value.into_options(),
            Err(Error::InvalidHeader(_))
        ));
        let not_object = Client::builder("http://h").auth("token");
        assert!(matches!(not_object.into_options(), Err(Error::InvalidAuth)));
        let object = Client::builder("http://h").auth(serde_json::json!({"a": 1}));
        assert!(object.into_options().unwrap().auth.is_some());
    }
}
