//! The Ignis application core and its Socket.IO component.
//!
//! An [`Application`] binds values under typed keys, lets its components configure themselves
//! from them, serves HTTP, runs post-start hooks in order and stops gracefully on SIGINT or
//! SIGTERM. [`socketio::SocketIoComponent`] adds authenticated real-time messaging: every client
//! must authenticate within a deadline, then joins the default rooms, gets the app-level `ping`,
//! may join rooms through the application's validator, and receives what
//! [`socketio::SocketIoServerHelper::send`] sends. For rolling restarts,
//! [`socketio::SocketIoServerHelper::drain`] moves the clients off a node over a window, with
//! closes that clients reconnect after, before the application stops.
//!
//! ```no_run
//! use ignis::socketio::{keys, AuthenticateHandler, SocketIoComponent};
//! use ignis::{AppConfig, Application};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Application::new(AppConfig::default())
//!     .bind(
//!         keys::AUTHENTICATE_HANDLER,
//!         AuthenticateHandler::new(|req| async move {
//!             Ok(req.handshake.header("authorization") == Some("Bearer let-me-in"))
//!         }),
//!     )
//!     .component(SocketIoComponent::new())
//!     .start()
//!     .await?;
//! app.run_until_signal().await;
//! # Ok(())
//! # }
//! ```

pub mod app;
pub mod bindings;
pub mod error;
pub mod socketio;

pub use app::{
    AppConfig, AppHandle, Application, Component, ComponentContext, RunningApp, StartError,
};
pub use bindings::{BindingError, BindingKey, Bindings};
pub use error::{ApplicationError, BoxError};
/// The certificate [`Application::tls`] serves HTTPS and WSS with.
pub use ignis_socketio::engine::{ServerTls, TlsError};

/// The README's examples, compiled as doc tests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
