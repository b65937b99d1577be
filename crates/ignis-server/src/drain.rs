//! Draining for rolling restarts: what starts a drain (SIGTERM, the first Ctrl-C, or
//! `POST {base}/socket/drain`) and how the process ends it.
//!
//! A drain takes no new clients (handshakes answer 503, the readiness probe 503), moves the
//! clients off over the drain window by closing their connections the way a network failure
//! would (socket.io-client reconnects, to another node behind a load balancer), and the process
//! exits once they are gone or the window is over. A second Ctrl-C stops at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Shared by the REST API, which asks for a drain, and `main`, which runs it.
#[derive(Debug, Clone)]
pub(crate) struct DrainSwitch {
    requested: Arc<watch::Sender<bool>>,
    window: Duration,
}

impl Default for DrainSwitch {
    fn default() -> Self {
        DrainSwitch::new(Duration::from_secs(crate::config::DEFAULT_DRAIN_SECONDS))
    }
}

impl DrainSwitch {
    pub(crate) fn new(window: Duration) -> Self {
        DrainSwitch {
            requested: Arc::new(watch::channel(false).0),
            window,
        }
    }

    /// How long the drain spreads the clients' reconnections over.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Asks for a drain; true the first time.
    pub(crate) fn request(&self) -> bool {
        self.requested.send_if_modified(|requested| {
            let first = !*requested;
            *requested = true;
            first
        })
    }

    #[cfg(test)]
    pub(crate) fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    /// Resolves once a drain was asked for.
    pub(crate) async fn requested(&self) {
        let mut receiver = self.requested.subscribe();
        // The sender lives in `self`, so the wait can only end with the value set.
        let _ = receiver.wait_for(|requested| *requested).await;
    }
}

/// What started the drain, or stopped it short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Terminate,
    Interrupt,
}

/// SIGTERM and SIGINT as they come, several times each.
pub(crate) struct Signals {
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Listens from now on (a signal before this call has its default effect).
    pub(crate) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                terminate: signal(SignalKind::terminate()).ok(),
                interrupt: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// The next SIGTERM or SIGINT.
    pub(crate) async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            let terminate = async {
                match &mut self.terminate {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            let interrupt = async {
                match &mut self.interrupt {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = terminate => Stop::Terminate,
                _ = interrupt => Stop::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_is_seen_by_every_waiter_once_asked() {
        let switch = DrainSwitch::new(Duration::from_secs(3));
        let waiter = {
            let switch = switch.clone();
            tokio::spawn(async move { switch.requested().await })
        };
        assert!(!switch.is_requested());
        assert!(switch.request());
        assert!(!switch.request(), "only the first request starts a drain");
        tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("the waiter wakes")
            .expect("no panic");
        // A waiter that comes after the request does not wait.
        tokio::time::timeout(Duration::from_millis(100), switch.requested())
            .await
            .expect("already requested");
        assert_eq!(switch.window(), Duration::from_secs(3));
    }
}
