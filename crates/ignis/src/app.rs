//! The application lifecycle: bind, configure components, serve HTTP, run post-start hooks in
//! order, stop gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use futures_util::FutureExt;
use http::Request;
use ignis_socketio::IoHandler;
use ignis_socketio::SocketIo;
use ignis_socketio::engine::{Engine, ResponseBody, ServerTls, Site, TimedBody, serve_site};
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::bindings::{BindingError, BindingKey, Bindings};
use crate::error::{ApplicationError, BoxError};

/// A boxed future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

type Hook = Box<dyn FnOnce(AppHandle) -> BoxFuture<Result<(), BoxError>> + Send>;
type StopHook = Box<dyn FnOnce(AppHandle) -> BoxFuture<()> + Send>;

/// Where the application listens.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The application's name, in its logs.
    pub name: String,
    /// The host or IP address the HTTP server binds.
    pub host: String,
    /// The port the HTTP server binds; 0 lets the system choose.
    pub port: u16,
    /// How long a connection may take to send a complete request head, counted from when the
    /// server starts waiting for it: on a new connection, and between the requests of a
    /// keep-alive connection, which therefore closes after this long idle. A connection that
    /// says nothing must not hold a task and a file descriptor for ever.
    pub request_head_timeout: Duration,
}

/// The default [`AppConfig::request_head_timeout`].
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            name: "ignis".into(),
            host: "127.0.0.1".into(),
            port: 3000,
            request_head_timeout: DEFAULT_REQUEST_HEAD_TIMEOUT,
        }
    }
}

/// A part of the application that configures itself from the bindings (the original's
/// components).
pub trait Component: Send + 'static {
    /// For logs.
    fn name(&self) -> &'static str;

    /// The binding phase: install defaults for unbound keys, resolve and validate the bindings,
    /// register post-start hooks. An error stops the start.
    fn binding(&mut self, ctx: &mut ComponentContext<'_>) -> Result<(), ApplicationError>;
}

/// What a component sees while it binds.
pub struct ComponentContext<'a> {
    /// The application's bindings, to read the component's keys from and to bind defaults in.
    pub bindings: &'a mut Bindings,
    hooks: &'a mut Vec<(String, Hook)>,
    stop_hooks: &'a mut Vec<StopHook>,
}

impl ComponentContext<'_> {
    /// Runs `hook` after the HTTP server started, after the hooks registered before it.
    pub fn register_post_start_hook<F, Fut>(&mut self, identifier: impl Into<String>, hook: F)
    where
        F: FnOnce(AppHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        let identifier = identifier.into();
        tracing::debug!(%identifier, "post-start hook registered");
        self.hooks
            .push((identifier, Box::new(move |app| Box::pin(hook(app)))));
    }

    /// Runs `hook` when the application stops, before the HTTP server closes.
    pub fn register_stop_hook<F, Fut>(&mut self, hook: F)
    where
        F: FnOnce(AppHandle) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.stop_hooks
            .push(Box::new(move |app| Box::pin(hook(app))));
    }
}

struct Shared {
    bindings: RwLock<Bindings>,
    socket_io: RwLock<Option<SocketIo>>,
    local_addr: SocketAddr,
    config: AppConfig,
}

/// A handle on the running application: its bindings, its address, its Socket.IO server.
#[derive(Clone)]
pub struct AppHandle {
    shared: Arc<Shared>,
}

impl AppHandle {
    /// A binding.
    pub fn get<T: Clone + 'static>(&self, key: BindingKey<T>) -> Result<T, BindingError> {
        self.shared.bindings.read().get(key)
    }

    /// Binds a value after start (the post-start hooks bind what they create).
    pub fn bind<T: Send + Sync + 'static>(&self, key: BindingKey<T>, value: T) {
        self.shared.bindings.write().bind(key, value);
    }

    /// Whether a value is bound under the key string `name`.
    pub fn is_bound(&self, name: &str) -> bool {
        self.shared.bindings.read().is_bound(name)
    }

    /// The address the HTTP server listens on.
    /// The address the HTTP server listens on (the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The configuration the application was started with.
    pub fn config(&self) -> &AppConfig {
        &self.shared.config
    }

    /// Routes the Socket.IO server's path to `io` from now on.
    pub fn mount_socket_io(&self, io: SocketIo) {
        *self.shared.socket_io.write() = Some(io);
    }

    fn socket_io(&self) -> Option<SocketIo> {
        self.shared.socket_io.read().clone()
    }
}

/// Why an application did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("component {component}: {error}")]
    /// A component's `binding` refused the bindings.
    Component {
        /// The component's name.
        component: &'static str,
        /// What it refused.
        error: ApplicationError,
    },
    #[error("cannot listen on {address}: {error}")]
    /// The HTTP listener could not be opened.
    Listen {
        /// The address asked for (`host:port`).
        address: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    #[error("post-start hook {identifier} failed: {error}")]
    /// A post-start hook failed; the server was stopped.
    Hook {
        /// The hook's identifier.
        identifier: String,
        /// The hook's error.
        error: BoxError,
    },
}

/// An application being put together.
pub struct Application {
    config: AppConfig,
    bindings: Bindings,
    components: Vec<Box<dyn Component>>,
    router: Router,
    routes_with: Vec<Box<dyn FnOnce(AppHandle) -> Router + Send>>,
    hooks: Vec<(String, Hook)>,
    tls: Option<Arc<ServerTls>>,
}

impl Application {
    /// An application with no bindings and no components yet.
    pub fn new(config: AppConfig) -> Self {
        Application {
            config,
            bindings: Bindings::new(),
            components: Vec::new(),
            router: Router::new(),
            routes_with: Vec::new(),
            hooks: Vec::new(),
            tls: None,
        }
    }

    /// Serves HTTPS and WSS with this certificate instead of plain HTTP, on the same port and
    /// paths. Keep a clone to [`ServerTls::reload`] it while the application runs: new
    /// connections get the new certificate, open ones keep theirs.
    pub fn tls(mut self, tls: Arc<ServerTls>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Binds a value (the original's `preConfigure` bindings).
    pub fn bind<T: Send + Sync + 'static>(mut self, key: BindingKey<T>, value: T) -> Self {
        self.bindings.bind(key, value);
        self
    }

    /// The bindings, to bind or read values before the application starts.
    pub fn bindings_mut(&mut self) -> &mut Bindings {
        &mut self.bindings
    }

    /// Adds a component; components bind in the order they were added.
    pub fn component(mut self, component: impl Component) -> Self {
        self.components.push(Box::new(component));
        self
    }

    /// Adds HTTP routes.
    pub fn routes(mut self, router: Router) -> Self {
        self.router = self.router.merge(router);
        self
    }

    /// Adds HTTP routes built from the running application's handle (for handlers that need
    /// the bindings or the Socket.IO helper).
    pub fn routes_with(mut self, f: impl FnOnce(AppHandle) -> Router + Send + 'static) -> Self {
        self.routes_with.push(Box::new(f));
        self
    }

    /// Runs `hook` after start, after the components' hooks.
    pub fn register_post_start_hook<F, Fut>(
        mut self,
        identifier: impl Into<String>,
        hook: F,
    ) -> Self
    where
        F: FnOnce(AppHandle) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        self.hooks
            .push((identifier.into(), Box::new(move |app| Box::pin(hook(app)))));
        self
    }

    /// Starts the application: components bind, the HTTP server listens, then the post-start
    /// hooks run in order. If a hook fails, the server is stopped and the error returned.
    pub async fn start(self) -> Result<RunningApp, StartError> {
        let Application {
            config,
            mut bindings,
            mut components,
            mut router,
            routes_with,
            hooks: app_hooks,
            tls,
        } = self;

        // Initialize: the components' binding phase.
        let mut hooks = Vec::new();
        let mut stop_hooks = Vec::new();
        for component in &mut components {
            tracing::info!(component = component.name(), "binding component");
            let mut ctx = ComponentContext {
                bindings: &mut bindings,
                hooks: &mut hooks,
                stop_hooks: &mut stop_hooks,
            };
            component
                .binding(&mut ctx)
                .map_err(|error| StartError::Component {
                    component: component.name(),
                    error,
                })?;
        }
        hooks.extend(app_hooks);

        // Start the HTTP server.
        let address = format!("{}:{}", config.host, config.port);
        let listener = TcpListener::bind(&address)
            .await
            .map_err(|error| StartError::Listen {
                address: address.clone(),
                error,
            })?;
        let local_addr = listener.local_addr().map_err(|error| StartError::Listen {
            address: address.clone(),
            error,
        })?;
        let handle = AppHandle {
            shared: Arc::new(Shared {
                bindings: RwLock::new(bindings),
                socket_io: RwLock::new(None),
                local_addr,
                config,
            }),
        };
        for f in routes_with {
            router = router.merge(f(handle.clone()));
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let server = tokio::spawn(serve(listener, router, handle.clone(), stop_rx, tls));
        tracing::info!(address = %local_addr, "server started");

        let running = RunningApp {
            handle: handle.clone(),
            stop_tx,
            server: Mutex::new(Some(server)),
            stop_hooks: Mutex::new(stop_hooks),
        };

        // Post-start hooks, in order, each timed.
        if !hooks.is_empty() {
            tracing::info!("Executing {} post-start hook(s)...", hooks.len());
        }
        for (identifier, hook) in hooks {
            let started = Instant::now();
            if let Err(error) = hook(handle.clone()).await {
                tracing::error!(%identifier, %error, "post-start hook failed; stopping");
                running.stop().await;
                return Err(StartError::Hook { identifier, error });
            }
            tracing::info!(
                "Executed hook | identifier: {} | took: {:.3} (ms)",
                identifier,
                started.elapsed().as_secs_f64() * 1000.0
            );
        }
        Ok(running)
    }
}

/// A started application.
pub struct RunningApp {
    handle: AppHandle,
    stop_tx: watch::Sender<bool>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    stop_hooks: Mutex<Vec<StopHook>>,
}

impl RunningApp {
    /// A handle on the running application: its bindings and its stop.
    pub fn handle(&self) -> &AppHandle {
        &self.handle
    }

    /// The address the HTTP server listens on (the port the system chose for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// Stops: the stop hooks run (the Socket.IO component disconnects its clients), then the
    /// HTTP server stops accepting and closes.
    pub async fn stop(&self) {
        let hooks = std::mem::take(&mut *self.stop_hooks.lock());
        for hook in hooks {
            hook(self.handle.clone()).await;
        }
        let _ = self.stop_tx.send(true);
        let server = self.server.lock().take();
        if let Some(server) = server {
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        tracing::info!("Server STOPPED");
    }

    /// Serves until SIGINT or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!("signal received, stopping");
        self.stop().await;
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Accepts connections until told to stop; Socket.IO's path goes to the mounted server, the
/// rest to the application's routes. The engine's accept loop, with the application's header
/// timeout and graceful stop.
async fn serve(
    listener: TcpListener,
    router: Router,
    app: AppHandle,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<ServerTls>>,
) {
    serve_site(
        listener,
        AppSite {
            router,
            app,
            stop,
            tls,
        },
    )
    .await;
}

/// What the application serves beside the Socket.IO server (see [`serve`]).
#[derive(Clone)]
struct AppSite {
    router: Router,
    app: AppHandle,
    stop: watch::Receiver<bool>,
    tls: Option<Arc<ServerTls>>,
}

impl Site for AppSite {
    type Handler = IoHandler;
    type Body = axum::body::Body;

    fn engine(&self) -> Option<Engine<IoHandler>> {
        self.app.socket_io().map(|io| io.engine().clone())
    }

    fn head_timeout(&self) -> Duration {
        self.app.config().request_head_timeout
    }

    fn fallback(
        &self,
        req: Request<TimedBody>,
    ) -> impl Future<Output = http::Response<axum::body::Body>> + Send {
        self.router
            .clone()
            .oneshot(req.map(axum::body::Body::new))
            .map(|answer| answer.unwrap_or_else(|never| match never {}))
    }

    fn engine_body(body: ResponseBody) -> axum::body::Body {
        axum::body::Body::new(body)
    }

    fn extend(&self, extensions: &mut http::Extensions, peer: SocketAddr) {
        extensions.insert(ConnectInfo(peer));
    }

    fn tls(&self) -> Option<Arc<ServerTls>> {
        self.tls.clone()
    }

    fn stopped(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let mut stop = self.stop.clone();
        Some(async move {
            let _ = stop.changed().await;
        })
    }
}
