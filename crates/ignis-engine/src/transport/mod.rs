//! The transports that carry a session: WebSocket ([`websocket`] for the handshake and the
//! upgrade, [`driver`] for the connection's task) and HTTP long-polling ([`polling`]), and the
//! connection I/O they share ([`Rewind`], [`read_first`]).

use bytes::Bytes;
use http::Response;
use http::header::{self, HeaderValue};

use crate::engine::Handler;

pub(crate) mod driver;
pub(crate) mod polling;
mod rewind;
pub(crate) mod websocket;

pub use rewind::{FirstRead, Handoff, LINGER_BYTES, LINGER_IDLE, LINGER_TIME, Rewind, read_first};

type Reply = Response<Bytes>;

/// What the engine answers a request with.
pub(crate) struct Answer<H: Handler> {
    pub(crate) reply: Reply,
    /// For an accepted WebSocket handshake (`reply` is the `101`): how its connection starts.
    pub(crate) upgrade: Option<websocket::Start<H>>,
}

impl<H: Handler> From<Reply> for Answer<H> {
    fn from(reply: Reply) -> Self {
        Answer {
            reply,
            upgrade: None,
        }
    }
}

pub(crate) fn content_type(res: &mut Reply, value: &'static str) {
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
}
