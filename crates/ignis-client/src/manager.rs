//! The manager: one Engine.IO connection shared by the sockets of several namespaces, and the
//! reconnection loop around it.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::backoff::Backoff;
use crate::codec::Decoder;
use crate::engine::{self, Connection, EngineEvent, OutQueue};
use crate::error::{ConnectError, DisconnectReason, Error};
use crate::options::{Options, Transport};
use crate::socket::{Socket, SocketInner, route};

#[derive(Default)]
struct State {
    sockets: HashMap<String, Arc<SocketInner>>,
    task_running: bool,
    out: Option<Arc<OutQueue>>,
}

pub(crate) struct ManagerInner {
    options: Arc<Options>,
    state: Mutex<State>,
    /// Something changed for the connection task: a socket wants to connect or left.
    wake: Notify,
}

/// Owns the connection to one server and the sockets (namespaces) that share it.
///
/// The connection opens when the first socket connects and closes when the last one
/// disconnects. After a lost connection the manager reconnects with exponential backoff and
/// jitter, and every socket that was connected joins its namespace again.
#[derive(Clone)]
pub struct Manager {
    pub(crate) inner: Arc<ManagerInner>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("target", &self.inner.options.target.authority)
            .field("transport", &self.transport())
            .finish()
    }
}

impl Manager {
    pub(crate) fn new(options: Arc<Options>) -> Manager {
        Manager {
            inner: Arc::new(ManagerInner {
                options,
                state: Mutex::new(State::default()),
                wake: Notify::new(),
            }),
        }
    }

    /// The socket of namespace `nsp` (created on first use; the same socket afterwards). It
    /// does not connect until [`Socket::connect`] or [`Socket::open`].
    pub fn socket(&self, nsp: &str) -> Result<Socket, Error> {
        let nsp = if nsp.starts_with('/') {
            nsp.to_owned()
        } else {
            format!("/{nsp}")
        };
        if nsp.contains(',') {
            return Err(Error::InvalidNamespace(nsp));
        }
        let mut state = self.inner.state.lock();
        let inner = state
            .sockets
            .entry(nsp.clone())
            .or_insert_with(|| Arc::new(SocketInner::new(nsp, Arc::clone(&self.inner.options))));
        Ok(Socket {
            manager: Arc::clone(&self.inner),
            inner: Arc::clone(inner),
        })
    }

    /// The transport of the open connection, if there is one.
    pub fn transport(&self) -> Option<Transport> {
        self.inner.state.lock().out.as_ref().map(|o| o.transport())
    }

    /// Whether an Engine.IO connection is open.
    pub fn is_open(&self) -> bool {
        self.inner.state.lock().out.is_some()
    }

    /// Disconnects every socket, which closes the connection.
    pub fn close(&self) {
        let sockets: Vec<Arc<SocketInner>> =
            self.inner.state.lock().sockets.values().cloned().collect();
        for inner in sockets {
            Socket {
                manager: Arc::clone(&self.inner),
                inner,
            }
            .disconnect();
        }
    }
}

impl ManagerInner {
    /// Makes sure the connection task runs and sees the sockets that want to connect.
    pub(crate) fn activate(self: &Arc<Self>) {
        let mut state = self.state.lock();
        if state.task_running {
            drop(state);
            self.wake.notify_one();
        } else {
            state.task_running = true;
            drop(state);
            tokio::spawn(Arc::clone(self).run());
        }
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn sockets(&self) -> Vec<Arc<SocketInner>> {
        self.state.lock().sockets.values().cloned().collect()
    }

    fn any_active(&self) -> bool {
        self.state.lock().sockets.values().any(|s| s.is_active())
    }

    /// Ends the task when no socket wants a connection; decided under the lock that
    /// [`ManagerInner::activate`] takes, so a socket activated meanwhile is never missed.
    fn should_stop(&self) -> bool {
        let mut state = self.state.lock();
        if state.sockets.values().any(|s| s.is_active()) {
            false
        } else {
            state.task_running = false;
            true
        }
    }

    fn may_retry(&self, backoff: &Backoff) -> bool {
        self.options.reconnection
            && self
                .options
                .reconnection_attempts
                .is_none_or(|max| backoff.attempts() < max)
    }

    fn give_up(&self) {
        for socket in self.sockets() {
            socket.on_close(DisconnectReason::TransportError, false);
        }
    }

    async fn run(self: Arc<Self>) {
        let options = &self.options;
        let mut backoff = Backoff::new(
            options.reconnection_delay,
            options.reconnection_delay_max,
            options.randomization_factor,
        );
        while !self.should_stop() {
            let reason = match engine::open(Arc::clone(options)).await {
                Err(err) => {
                    tracing::debug!("connection failed: {err}");
                    let retry = self.may_retry(&backoff);
                    for socket in self.sockets().into_iter().filter(|s| s.is_active()) {
                        socket.on_connect_error(ConnectError::Transport(err.clone()), !retry);
                    }
                    None
                }
                Ok(conn) => {
                    backoff.reset();
                    Some(self.session(conn).await)
                }
            };
            if let Some(reason) = reason {
                if reason == DisconnectReason::IoClientDisconnect {
                    // Every socket left on its own; one that joined since starts a new connection.
                    continue;
                }
                let reconnect = reason.reconnects() && options.reconnection;
                for socket in self.sockets() {
                    socket.on_close(reason, reconnect);
                }
                if !reconnect {
                    continue;
                }
            }
            if !self.any_active() {
                continue;
            }
            if !self.may_retry(&backoff) {
                self.give_up();
                continue;
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                // A socket that disconnects during the wait ends it early.
                () = async { loop { self.wake.notified().await; if !self.any_active() { break; } } } => {}
            }
        }
    }

    /// Runs one connection until it ends; gives the reason.
    async fn session(&self, conn: Connection) -> DisconnectReason {
        let Connection { out, mut events } = conn;
        self.state.lock().out = Some(Arc::clone(&out));
        let mut decoder = Decoder::new(self.options.parser);
        for socket in self.sockets() {
            socket.connect_on(&out);
        }
        let reason = loop {
            tokio::select! {
                event = events.recv() => match event {
                    Some(EngineEvent::Message(data)) => match decoder.decode(data) {
                        Ok(Some(packet)) => {
                            let socket = self.state.lock().sockets.get(packet.nsp.as_str()).cloned();
                            if let Some(socket) = socket
                                && route(&socket, packet, &out)
                                && !self.any_active()
                            {
                                out.close();
                                break DisconnectReason::IoClientDisconnect;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!("invalid packet from the server: {e}");
                            out.close();
                            break DisconnectReason::ParseError;
                        }
                    },
                    Some(EngineEvent::Closed(reason, err)) => {
                        if let Some(err) = err {
                            tracing::debug!("connection closed ({reason}): {err}");
                        }
                        break reason;
                    }
                    None => break DisconnectReason::TransportClose,
                },
                () = self.wake.notified() => {
                    if !self.any_active() {
                        out.close();
                        break DisconnectReason::IoClientDisconnect;
                    }
                    for socket in self.sockets() {
                        socket.connect_on(&out);
                    }
                }
            }
        };
        self.state.lock().out = None;
        reason
    }
}
