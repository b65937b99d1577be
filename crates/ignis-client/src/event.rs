//! Events received from the server, and the answer to those that ask for one.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use ignis_proto::Value;
use ignis_proto::value::{ValueError, from_value};
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::socket::SocketInner;

/// An event from the server.
///
/// Clones share the acknowledgement: whichever clone answers first sends it.
#[derive(Debug, Clone)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments after the name, without the recovery offset.
    pub args: Vec<Value>,
    /// The connection-state-recovery offset the server appended to the arguments, when it has
    /// recovery on (it then appends one to every event sent without an acknowledgement).
    pub offset: Option<String>,
    pub(crate) ack: Option<AckResponder>,
}

impl Event {
    /// Argument `index` deserialised into `T` (a missing argument reads as `null`).
    pub fn arg<T: DeserializeOwned>(&self, index: usize) -> Result<T, ValueError> {
        from_value(self.args.get(index).cloned().unwrap_or(Value::Null))
    }

    /// The first argument deserialised into `T`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ValueError> {
        self.arg(0)
    }

    /// Whether the server waits for an acknowledgement.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Answers the server's acknowledgement with `args`. Only the first answer is sent; without
    /// a request for one this does nothing.
    pub fn ack(&self, args: Vec<Value>) -> Result<(), Error> {
        match &self.ack {
            Some(ack) => ack.send(args),
            None => Ok(()),
        }
    }
}

/// Sends the acknowledgement of one server event, once.
#[derive(Clone)]
pub(crate) struct AckResponder {
    pub(crate) socket: Weak<SocketInner>,
    pub(crate) id: u64,
    pub(crate) sent: Arc<AtomicBool>,
}

impl std::fmt::Debug for AckResponder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckResponder")
            .field("id", &self.id)
            .field("sent", &self.sent.load(Ordering::Relaxed))
            .finish()
    }
}

impl AckResponder {
    fn send(&self, args: Vec<Value>) -> Result<(), Error> {
        if self.sent.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let socket = self.socket.upgrade().ok_or(Error::NotConnected)?;
        socket.send_ack(self.id, args)
    }
}
