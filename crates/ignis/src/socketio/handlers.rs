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
    pub fn new<F, Fut>(f: F) -> Self
    where
        F: Fn(SocketRef) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
    {
        ClientConnectedHandler(Arc::new(move |s| Box::pin(f(s))))
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
