//! The transports that carry a session: WebSocket ([`websocket`] for the handshake and the
//! upgrade, [`connection`] for the connection's state, [`driver`] for the task that runs it)
//! and HTTP long-polling ([`polling`]), and the connection I/O they share ([`Stream`], plain or
//! TLS; [`Rewind`], [`read_first`]).

use bytes::Bytes;
use http::Response;
use http::header::{self, HeaderValue};

pub(crate) mod connection;
pub(crate) mod driver;
pub(crate) mod polling;
pub(crate) mod rewind;
pub(crate) mod stream;
pub(crate) mod websocket;

pub use rewind::{FirstRead, Handoff, LINGER_BYTES, LINGER_IDLE, LINGER_TIME, Rewind, read_first};
pub use stream::Stream;

type Reply = Response<Bytes>;

/// Sets the `content-type` of an answer.
pub(crate) fn content_type(res: &mut Reply, value: &'static str) {
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
}
