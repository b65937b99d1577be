//! The body of every engine answer: one chunk, sent with a `Content-Length` unless the answer
//! is compressed (the reference streams compressed answers, so they go out chunked).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// A response body holding one chunk of bytes.
#[derive(Debug, Default)]
pub struct ResponseBody {
    data: Option<Bytes>,
    exact: bool,
}

impl ResponseBody {
    /// A body sent with a `Content-Length`.
    pub fn new(data: impl Into<Bytes>) -> ResponseBody {
        ResponseBody {
            data: Some(data.into()),
            exact: true,
        }
    }

    /// A body sent with chunked transfer encoding.
    pub fn chunked(data: impl Into<Bytes>) -> ResponseBody {
        ResponseBody {
            data: Some(data.into()),
            exact: false,
        }
    }

    /// A body with nothing in it.
    pub fn empty() -> ResponseBody {
        ResponseBody::new(Bytes::new())
    }
}

impl From<Bytes> for ResponseBody {
    fn from(data: Bytes) -> Self {
        ResponseBody::new(data)
    }
}

impl From<String> for ResponseBody {
    fn from(data: String) -> Self {
        ResponseBody::new(data)
    }
}

impl From<&'static str> for ResponseBody {
    fn from(data: &'static str) -> Self {
        ResponseBody::new(Bytes::from_static(data.as_bytes()))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.get_mut().data.take().map(|d| Ok(Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let len = self.data.as_ref().map_or(0, |d| d.len() as u64);
        if self.exact {
            SizeHint::with_exact(len)
        } else {
            let mut hint = SizeHint::new();
            hint.set_lower(len);
            hint
        }
    }
}

/// Marks an answer whose body must go out chunked.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunked;
