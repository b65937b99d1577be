//! User subscriptions: a handler for one event, sync or async, whose failures are logged.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;

use crate::event::Event;

/// What a user handler may fail with.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(Event) -> HandlerFuture + Send + Sync>;

/// Identifies one subscription, to remove exactly that handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(pub(crate) u64);

/// An event and the handler to run for it.
#[derive(Clone)]
pub struct Subscription {
    pub(crate) event: String,
    pub(crate) handler: Option<Handler>,
    pub(crate) ignore_duplicate: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("event", &self.event)
            .field("has_handler", &self.handler.is_some())
            .field("ignore_duplicate", &self.ignore_duplicate)
            .finish()
    }
}

impl Subscription {
    /// An async handler. Its future runs on a task of its own; an error it returns, or a
    /// panic, is logged and the connection goes on.
    pub fn new<F, Fut, E>(event: impl Into<String>, handler: F) -> Subscription
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<HandlerError>,
    {
        let handler: Handler = Arc::new(move |event| {
            let fut = handler(event);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        Subscription {
            event: event.into(),
            handler: Some(handler),
            ignore_duplicate: true,
        }
    }

    /// A synchronous handler, run on the connection's task (it must not block).
    pub fn sync(
        event: impl Into<String>,
        handler: impl Fn(Event) + Send + Sync + 'static,
    ) -> Subscription {
        let handler: Handler = Arc::new(move |event| {
            handler(event);
            Box::pin(std::future::ready(Ok(())))
        });
        Subscription {
            event: event.into(),
            handler: Some(handler),
            ignore_duplicate: true,
        }
    }

    /// A subscription without a handler: `subscribe` refuses it with a warning (the
    /// reference's `handler: undefined`).
    pub fn without_handler(event: impl Into<String>) -> Subscription {
        Subscription {
            event: event.into(),
            handler: None,
            ignore_duplicate: true,
        }
    }

    /// Whether to skip the subscription when the event already has a user handler (default
    /// true).
    pub fn ignore_duplicate(mut self, ignore: bool) -> Subscription {
        self.ignore_duplicate = ignore;
        self
    }
}

/// Runs a handler for one event: its synchronous part now, its future on a task.
pub(crate) fn run(identifier: &str, event_name: &str, handler: &Handler, event: Event) {
    let fut = match catch_unwind(AssertUnwindSafe(|| handler(event))) {
        Ok(fut) => fut,
        Err(_) => {
            tracing::error!(identifier, event = event_name, "handler panicked");
            return;
        }
    };
    let identifier = identifier.to_owned();
    let event_name = event_name.to_owned();
    tokio::spawn(async move {
        if let Err(e) = fut.await {
            tracing::error!(identifier, event = event_name, "handler failed: {e}");
        }
    });
}
