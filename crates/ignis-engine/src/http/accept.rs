//! The accept loop: connections accepted, limited per IP, first read on the direct path, the rest
//! served by hyper with the engine's deadlines.

use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::engine::{Engine, Handler, PeerAddr};
use crate::http::ResponseBody;

impl<H: Handler> Engine<H> {
    /// Serves HTTP/1.1 on `listener` until the task is dropped. Requests outside the engine's
    /// path get `404`.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_with(listener, |_req| async {
            let mut res = Response::new(ResponseBody::from("Not Found"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        })
        .await
    }

    /// Serves HTTP/1.1 on `listener`, passing requests outside the engine's path to `fallback`.
    /// A connection that opens with a WebSocket handshake for the engine is served without
    /// hyper (see [`Engine::serve_direct`]); the others through [`crate::serve_http`], with the
    /// engine's `request_head_timeout` and `body_timeout`. The per-IP connection limit closes
    /// connections as they are accepted. `fallback` gets its request's body as hyper gives it,
    /// without the deadline (an application that wants it serves its connections with
    /// [`crate::serve_http`] itself).
    pub async fn serve_with<F, Fut>(self, listener: TcpListener, fallback: F) -> std::io::Result<()>
    where
        F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(e) => {
                    // Running out of file descriptors must not end the server: wait and retry.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let permit = match self.admit_connection(peer.ip()) {
                Ok(permit) => permit,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "connection refused");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // Without a limit the task is the connection alone (an idle WebSocket's task keeps
            // whatever it holds for its life).
            let (engine, fallback) = (self.clone(), fallback.clone());
            match permit {
                None => tokio::spawn(engine.serve_connection(stream, peer, fallback, ())),
                Some(permit) => {
                    tokio::spawn(engine.serve_connection(stream, peer, fallback, permit))
                }
            };
        }
    }

    /// Serves one connection of [`Engine::serve_with`].
    // Not an `async fn`: one keeps a moved copy of its arguments beside them, and this future
    // is the task of every idle WebSocket connection.
    #[allow(clippy::manual_async_fn)]
    fn serve_connection<F, Fut, G: crate::abuse::ConnectionGuard>(
        self,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        fallback: F,
        guard: G,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        F: Fn(Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        async move {
            let first = tokio::time::timeout(
                self.inner.config.request_head_timeout,
                crate::transport::read_first(stream),
            )
            .await;
            let Some(first) = first.ok().flatten() else {
                return;
            };
            let io = match self.serve_direct(first, peer, |_| {}).await {
                crate::transport::Handoff::Done => return,
                crate::transport::Handoff::Http(io) => io,
            };
            // Boxed: an idle WebSocket connection served above keeps a task the size of its own
            // state, not of hyper's.
            Box::pin(async move {
                let limits = self.http_limits(self.inner.config.request_head_timeout);
                let engine = self;
                let service = move |mut req: Request<crate::http::TimedBody>| {
                    let engine = engine.clone();
                    let fallback = fallback.clone();
                    guard.attach(req.extensions_mut());
                    async move {
                        req.extensions_mut().insert(PeerAddr(peer));
                        if engine.matches(req.uri().path()) {
                            engine.handle(req).await
                        } else {
                            fallback(req.map(crate::http::TimedBody::into_inner)).await
                        }
                    }
                };
                crate::http::serve_http(io, &limits, service, std::future::pending()).await;
            })
            .await;
        }
    }
}
