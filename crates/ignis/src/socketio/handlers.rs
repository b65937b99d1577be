//! The handlers an application binds: authenticate, validate rooms, client connected.

use std::future::Future;
use std::sync::Arc;

use ignis_socketio::{Handshake, SocketRef, Value};

use crate::app::BoxFuture;
use crate::error::BoxError;

/// What the authenticate handler is asked about.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// The socket asking; a handler may keep what it learned in `socket.set_data(..)`.
    pub socket: SocketRef,
    /// The socket's id.
    pub socket_id: String,
    /// The handshake captured when the client connected (headers, query, CONNECT auth).
    pub handshake: Handshake,
    /// The payload of the `authenticate` event, if the client sent one.
    pub payload: Option<Value>,
}

/// Decides whether a client is authenticated: `Ok(true)` accepts, `Ok(false)` refuses
/// ("Invalid token..."), an error or a panic refuses with "Failed to authenticate...".
///
/// It is not asked again for a socket that connection state recovery restored after it had
/// authenticated: what it kept in the socket's data comes back with the session.
#[derive(Clone)]
pub struct AuthenticateHandler(
    pub(crate) Arc<dyn Fn(AuthRequest) -> BoxFuture<Result<bool, BoxError>> + Send + Sync>,
);

impl AuthenticateHandler {
    /// The handler that calls `f` with each `authenticate` request.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(AuthRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, BoxError>> + Send + 'static,
    {
        AuthenticateHandler(Arc::new(move |req| Box::pin(f(req))))
    }
}

/// Given the rooms a client asks to join, returns the rooms it joins (the list is used as it is,
/// so it may also add rooms).
#[derive(Clone)]
pub struct ValidateRoomHandler(pub(crate) Arc<ValidateRoomFn>);

type ValidateRoomFn =
    dyn Fn(SocketRef, Vec<String>) -> BoxFuture<Result<Vec<String>, BoxError>> + Send + Sync;

impl ValidateRoomHandler {
    /// The handler that calls `f` with the socket and the rooms it asks to join.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(SocketRef, Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<String>, BoxError>> + Send + 'static,
    {
        ValidateRoomHandler(Arc::new(move |s, r| Box::pin(f(s, r))))
    }
}

/// Runs once a client is authenticated: the place to register the application's events. An
/// error is logged and never undoes the authentication.
///
/// It runs again for a socket that connection state recovery restored authenticated (the
/// authenticate handler does not): the restored socket is a new one, without the handlers of
/// the one it replaces. `socket.recovered()` tells the two cases apart.
#[derive(Clone)]
pub struct ClientConnectedHandler(
    pub(crate) Arc<dyn Fn(SocketRef) -> BoxFuture<Result<(), BoxError>> + Send + Sync>,
);

impl ClientConnectedHandler {
    /// The handler that calls `f` with each socket once it is authenticated.
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        ClientConnectedHandler(Arc::new(move |s| Box::pin(f(s))))
    }
}

/// A listener of the Socket.IO server itself, registered with
/// [`SocketIoServerHelper::on`](super::SocketIoServerHelper::on): it hears what happens on the
/// server (a socket connecting, an event from another node), never the events of a client.
#[derive(Clone)]
pub enum ServerListener {
    /// Runs for every socket that connects to the main namespace, after the helper has taken
    /// it in (topics `connection` and `connect`).
    Connection(Arc<ConnectionFn>),
    /// Runs for an event another node of the cluster sent with `server_side_emit` (any other
    /// topic) with the event's arguments; what it returns answers a `server_side_emit_with_ack`.
    ServerEvent(Arc<ServerEventFn>),
}

/// The function of a [`ServerListener::Connection`].
pub type ConnectionFn = dyn Fn(SocketRef) -> BoxFuture<()> + Send + Sync;

/// The function of a [`ServerListener::ServerEvent`].
pub type ServerEventFn = dyn Fn(Vec<Value>) -> BoxFuture<Option<Value>> + Send + Sync;

impl ServerListener {
    /// A listener of the sockets that connect (for the topic `connection`).
    pub fn connection<F, Fut>(f: F) -> Self
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        ServerListener::Connection(Arc::new(move |s| Box::pin(f(s))))
    }

    /// A listener of an event the other nodes send with `server_side_emit`; `Some` answers an
    /// emit that waits for acknowledgements.
    pub fn server_event<F, Fut>(f: F) -> Self
    where
        F: Fn(Vec<Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Value>> + Send + 'static,
    {
        ServerListener::ServerEvent(Arc::new(move |args| Box::pin(f(args))))
    }
}

impl std::fmt::Debug for ServerListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServerListener::Connection(_) => "ServerListener::Connection",
            ServerListener::ServerEvent(_) => "ServerListener::ServerEvent",
        })
    }
}

impl std::fmt::Debug for AuthenticateHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthenticateHandler")
    }
}

impl std::fmt::Debug for ValidateRoomHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValidateRoomHandler")
    }
}

impl std::fmt::Debug for ClientConnectedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientConnectedHandler")
    }
}
