//! Serving a connection with hyper, with the limits every connection needs whatever answers its
//! requests: a deadline for the request head and for each body, and counters of what was
//! refused. [`Engine::serve_with`](crate::Engine::serve_with) and an application's own accept
//! loop both serve their hyper connections through [`serve_http`].

use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::abuse::Counters;
use crate::error::BodyTimeout;
use crate::transport::rewind::Rewind;

/// The limits [`serve_http`] applies, and where it counts what they refused.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// How long a connection may take to send a complete request head (also how long a
    /// keep-alive connection may stay idle between requests).
    pub head_timeout: Duration,
    /// How long a request body may take to arrive, from when it is first read.
    pub body_timeout: Duration,
    counters: Arc<Counters>,
}

impl HttpLimits {
    /// Limits whose refusals are counted apart from any engine (for an application that serves
    /// HTTP before its engine exists).
    pub fn new(head_timeout: Duration, body_timeout: Duration) -> HttpLimits {
        HttpLimits {
            head_timeout,
            body_timeout,
            counters: Arc::default(),
        }
    }

    pub(crate) fn with_counters(
        head_timeout: Duration,
        body_timeout: Duration,
        counters: Arc<Counters>,
    ) -> HttpLimits {
        HttpLimits {
            head_timeout,
            body_timeout,
            counters,
        }
    }
}

/// A request body with a deadline: past it, the next read fails with [`BodyTimeout`] (and
/// [`serve_http`] answers the request `408` whatever the service answered).
pub struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed when a read first has to wait.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Set when the deadline passed; shared with the request's answer.
    expired: Option<Arc<AtomicBool>>,
}

impl std::fmt::Debug for TimedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedBody")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TimedBody {
    /// The body as hyper gives it, without the deadline.
    pub fn into_inner(self) -> Incoming {
        self.inner
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                if let Some(expired) = &this.expired {
                    expired.store(true, Ordering::Release);
                }
                Poll::Ready(Some(Err(Box::new(BodyTimeout))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves HTTP/1.1 (with upgrades) on `io` until the connection closes, or `shutdown`
/// completes (then in-flight requests get 2 s to finish). Every request body gets the
/// deadline of `limits`: a request whose body missed it is answered `408` and its connection
/// closed. Answers `413` are counted (whoever made them), and so are timeouts.
pub async fn serve_http<F, Fut, B>(
    io: Rewind,
    limits: &HttpLimits,
    service: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<TimedBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let body_timeout = limits.body_timeout;
    let counters = Arc::clone(&limits.counters);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (parts, inner) = req.into_parts();
        // A flag (an allocation) only for requests that have a body to wait for.
        let expired = (!inner.is_end_stream()).then(|| Arc::new(AtomicBool::new(false)));
        let body = TimedBody {
            inner,
            timeout: body_timeout,
            timer: None,
            expired: expired.clone(),
        };
        let answer = service(Request::from_parts(parts, body));
        let counters = Arc::clone(&counters);
        async move {
            let mut res = answer.await;
            if expired.is_some_and(|e| e.load(Ordering::Acquire)) {
                Counters::bump(&counters.body_timeouts);
                res = Response::new(B::from(Bytes::new()));
                *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            } else if res.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Counters::bump(&counters.bodies_too_large);
                // The body is left unread, so the connection ends after this answer: say so.
                // A keep-alive client (Node's default agent) otherwise sends its next request
                // on it and sees the connection end with no answer ("socket hang up").
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok::<_, Infallible>(res)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "http connection ended with an error");
            }
        }
        () = shutdown => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}
