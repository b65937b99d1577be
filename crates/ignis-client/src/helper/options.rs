//! Options of the helper: the client to build, and the five callbacks.

use std::sync::Arc;
use std::time::Duration;

use ignis_proto::Value;

use super::HelperError;
use crate::options::ClientBuilder;

type Callback = Arc<dyn Fn() + Send + Sync>;
type ReasonCallback = Arc<dyn Fn(&str) + Send + Sync>;
type ErrorCallback = Arc<dyn Fn(&HelperError) + Send + Sync>;
type PayloadCallback = Arc<dyn Fn(&Value) + Send + Sync>;
type ResumedCallback = Arc<dyn Fn(bool) + Send + Sync>;

/// What [`SocketIoClientHelper`](super::SocketIoClientHelper) needs: an identifier (its log
/// scope), the client (host, path, headers, ...), and optional callbacks.
///
/// Callbacks run on the connection's task: they must not block. A panic in one is logged.
#[derive(Clone)]
pub struct HelperOptions {
    pub(crate) identifier: String,
    pub(crate) client: ClientBuilder,
    pub(crate) namespace: String,
    pub(crate) auto_connect: bool,
    pub(crate) authenticate_timeout: Duration,
    pub(crate) on_connected: Option<Callback>,
    pub(crate) on_disconnected: Option<ReasonCallback>,
    pub(crate) on_error: Option<ErrorCallback>,
    pub(crate) on_authenticated: Option<PayloadCallback>,
    pub(crate) on_unauthenticated: Option<ReasonCallback>,
    pub(crate) resume: bool,
    pub(crate) on_resumed: Option<ResumedCallback>,
}

impl std::fmt::Debug for HelperOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HelperOptions")
            .field("identifier", &self.identifier)
            .field("namespace", &self.namespace)
            .field("auto_connect", &self.auto_connect)
            .field("authenticate_timeout", &self.authenticate_timeout)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl HelperOptions {
    /// Options for a helper that connects with `client` to namespace `/`, connects at once,
    /// and waits up to 10 s (the server's authentication deadline) for an auth answer.
    pub fn new(identifier: impl Into<String>, client: ClientBuilder) -> HelperOptions {
        HelperOptions {
            identifier: identifier.into(),
            client,
            namespace: "/".into(),
            auto_connect: true,
            authenticate_timeout: Duration::from_secs(10),
            on_connected: None,
            on_disconnected: None,
            on_error: None,
            on_authenticated: None,
            on_unauthenticated: None,
            resume: false,
            on_resumed: None,
        }
    }

    /// The namespace (default `/`).
    pub fn namespace(mut self, nsp: impl Into<String>) -> Self {
        self.namespace = nsp.into();
        self
    }

    /// Whether to connect at construction (default true).
    pub fn auto_connect(mut self, on: bool) -> Self {
        self.auto_connect = on;
        self
    }

    /// How long `authenticate` waits for the server's answer.
    pub fn authenticate_timeout(mut self, timeout: Duration) -> Self {
        self.authenticate_timeout = timeout;
        self
    }

    /// Called on every (re)connection. Does not authenticate.
    pub fn on_connected(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_connected = Some(Arc::new(f));
        self
    }

    /// Called with socket.io-client's reason string when the connection is lost.
    pub fn on_disconnected(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_disconnected = Some(Arc::new(f));
        self
    }

    /// Called when connecting fails, and when `authenticate` times out.
    pub fn on_error(mut self, f: impl Fn(&HelperError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }

    /// Called with the `authenticated` payload (`{id, time}` from an Ignis server).
    pub fn on_authenticated(mut self, f: impl Fn(&Value) + Send + Sync + 'static) -> Self {
        self.on_authenticated = Some(Arc::new(f));
        self
    }

    /// Called with the `unauthenticated` message (empty when the server gave none).
    pub fn on_unauthenticated(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_unauthenticated = Some(Arc::new(f));
        self
    }

    /// Picks up where a lost connection left off (default off, as in the reference, where the
    /// application authenticates in `on_connected`). On: after every reconnection that follows
    /// an authentication, the helper authenticates again by itself, and once the server
    /// answers, asks again for the rooms joined with
    /// [`join_rooms`](super::SocketIoClientHelper::join_rooms) (and not left since) unless the
    /// server recovered the session, which keeps them. A node drained for a deploy or a
    /// network failure then costs the application nothing but the events missed meanwhile
    /// (none when the session is recovered).
    pub fn resume_after_reconnect(mut self, on: bool) -> Self {
        self.resume = on;
        self
    }

    /// With [`resume_after_reconnect`](Self::resume_after_reconnect): called once a resumed
    /// connection is authenticated again (and its rooms asked for), with whether the server
    /// recovered the session (same id, rooms kept, missed events delivered).
    pub fn on_resumed(mut self, f: impl Fn(bool) + Send + Sync + 'static) -> Self {
        self.on_resumed = Some(Arc::new(f));
        self
    }
}
