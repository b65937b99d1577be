//! The accept loop: connections accepted and limited per IP, a first request that is a WebSocket
//! handshake for the engine served on the direct path, the rest by hyper with the engine's
//! deadlines. One loop serves [`Engine::serve`], [`Engine::serve_with`] and any application
//! that puts its own routes beside the engine through a [`Site`] (the `ignis` application does).

use std::error::Error as StdError;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Body;
use tokio::net::{TcpListener, TcpStream};

use crate::abuse::ConnectionGuard;
use crate::config::EngineConfig;
use crate::engine::{Engine, Handler, PeerAddr};
use crate::http::body::ResponseBody;
use crate::http::serve::{HttpLimits, TimedBody, serve_http};
use crate::transport::rewind::{FirstRead, Handoff, Rewind, read_first};
use crate::transport::stream::Stream;

/// What the accept loop of [`serve_site`] serves: the engine (once there is one) on its path,
/// and the site's own answer to every other request.
pub trait Site: Clone + Send + Sync + 'static {
    /// The engine's handler.
    type Handler: Handler;
    /// The body of the site's answers.
    type Body: Body<Data = Bytes> + From<Bytes> + Send + 'static;

    /// The engine, if the site has one now; without it every request goes to
    /// [`Site::fallback`] and connections are not limited per IP.
    fn engine(&self) -> Option<Engine<Self::Handler>>;

    /// Whether [`Site::engine`] is there.
    fn has_engine(&self) -> bool {
        self.engine().is_some()
    }

    /// How long a client may take to send a request head.
    fn head_timeout(&self) -> Duration;

    /// Answers a request outside the engine's path. Its body keeps the engine's
    /// `body_timeout` (or the default one, without an engine).
    fn fallback(
        &self,
        req: Request<TimedBody>,
    ) -> impl Future<Output = Response<Self::Body>> + Send;

    /// The engine's answer as the site's.
    fn engine_body(body: ResponseBody) -> Self::Body;

    /// Adds what the site's own stack would add to a request's extensions besides
    /// [`PeerAddr`] (the engine's requests get it too, for an `allow_request` hook).
    fn extend(&self, _extensions: &mut http::Extensions, _peer: SocketAddr) {}

    /// Serves a connection's first request on the engine's direct path (see
    /// [`Engine::serve_direct`]); without an engine, hands it to hyper. A site that owns its
    /// engine serves from its own field: an idle WebSocket connection's task then keeps no
    /// second handle on the engine.
    fn serve_direct(
        &self,
        first: FirstRead,
        peer: SocketAddr,
    ) -> impl Future<Output = Handoff> + Send + '_ {
        let engine = self.engine();
        async move {
            match &engine {
                Some(engine) => {
                    let extend = |ext: &mut http::Extensions| self.extend(ext, peer);
                    engine.serve_direct(first, peer, extend).await
                }
                None => Handoff::Http(first.into_rewind()),
            }
        }
    }

    /// The certificate to serve HTTPS and WSS with; `None` (the default) serves plain HTTP.
    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<std::sync::Arc<crate::http::tls::ServerTls>> {
        None
    }

    /// Completes when the site stops: the loop then stops accepting, idle connections close,
    /// requests in flight get 2 s and connections 3 s in all. `None`: the loop runs until its
    /// task is dropped, and does not keep track of its connections.
    fn stopped(&self) -> Option<impl Future<Output = ()> + Send + 'static>;
}

/// Accepts connections on `listener` and serves them for `site` until it stops (see
/// [`Site::stopped`]).
pub async fn serve_site<S: Site>(listener: TcpListener, site: S)
where
    <S::Body as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let Some(stopped) = site.stopped() else {
        loop {
            let Some((stream, peer, permit)) = accept(&listener, &site).await else {
                continue;
            };
            // Without a limit the task is the connection alone (an idle WebSocket's task keeps
            // whatever it holds for its life).
            let site = site.clone();
            #[cfg(feature = "tls")]
            if let Some(tls) = site.tls() {
                tokio::spawn(serve_tls_connection(stream, peer, site, permit, tls));
                continue;
            }
            match permit {
                None => tokio::spawn(serve_connection(stream.into(), peer, site, ())),
                Some(permit) => tokio::spawn(serve_connection(stream.into(), peer, site, permit)),
            };
        }
    };
    let mut stopped = std::pin::pin!(stopped);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &site) => accepted,
            () = stopped.as_mut() => break,
        };
        let Some((stream, peer, permit)) = accepted else {
            continue;
        };
        let site = site.clone();
        #[cfg(feature = "tls")]
        if let Some(tls) = site.tls() {
            connections.spawn(serve_tls_connection(stream, peer, site, permit, tls));
            while connections.try_join_next().is_some() {}
            continue;
        }
        match permit {
            None => connections.spawn(serve_connection(stream.into(), peer, site, ())),
            Some(permit) => connections.spawn(serve_connection(stream.into(), peer, site, permit)),
        };
        // Reap finished connections so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// Accepts one connection and admits it under the engine's per-IP limit; `None` when it was
/// refused or the accept failed.
async fn accept<S: Site>(
    listener: &TcpListener,
    site: &S,
) -> Option<(TcpStream, SocketAddr, Option<crate::ConnectionPermit>)> {
    let (stream, peer) = match listener.accept().await {
        Ok(conn) => conn,
        Err(e) => {
            // Running out of file descriptors must not end the server: wait and retry.
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return None;
        }
    };
    let permit = match site.engine().map(|e| e.admit_connection(peer.ip())) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(permit))) => Some(permit),
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "connection refused");
            return None;
        }
    };
    let _ = stream.set_nodelay(true);
    Some((stream, peer, permit))
}

/// Serves one accepted connection until it closes or the site stops. `guard` is what the task
/// keeps for the connection's life (its per-IP permit, or nothing).
// Not an `async fn`: one keeps a moved copy of its arguments beside them, and this future is the
// task of every idle WebSocket connection.
#[allow(clippy::manual_async_fn)]
fn serve_connection<S: Site, G: ConnectionGuard>(
    stream: Stream,
    peer: SocketAddr,
    site: S,
    guard: G,
) -> impl Future<Output = ()> + Send + 'static
where
    <S::Body as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    async move {
        // A first request that is a WebSocket handshake for the engine is served without hyper,
        // on this task; anything else goes to hyper with the bytes read replayed.
        let io = if site.has_engine() {
            let first = tokio::select! {
                first = tokio::time::timeout(site.head_timeout(), read_first(stream)) => {
                    first.ok().flatten()
                }
                // An idle connection closes at once, as hyper's graceful shutdown does.
                () = stopped(&site) => return,
            };
            let Some(first) = first else { return };
            // Answered in the call: what is awaited is the connection's own future.
            match site.serve_direct(first, peer).await {
                Handoff::Done => return,
                Handoff::Http(io) => io,
            }
        } else {
            Rewind::new(stream)
        };
        // Boxed: an idle WebSocket connection served above keeps a task the size of its own
        // state, not of hyper's.
        Box::pin(serve_requests(io, peer, site, guard)).await;
    }
}

/// Serves an accepted connection over TLS: the handshake, within the head deadline (or until
/// the site stops), then the same connection code as plain TCP on the TLS stream (see
/// [`crate::http::tls`]).
#[cfg(feature = "tls")]
async fn serve_tls_connection<S: Site>(
    stream: TcpStream,
    peer: SocketAddr,
    site: S,
    permit: Option<crate::ConnectionPermit>,
    tls: std::sync::Arc<crate::http::tls::ServerTls>,
) where
    <S::Body as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let accepted = tokio::select! {
        accepted = crate::http::tls::accept(&tls, stream, peer, site.head_timeout()) => accepted,
        () = stopped(&site) => return,
    };
    let Some(accepted) = accepted else { return };
    let stream = Stream::Tls(Box::new(accepted));
    match permit {
        None => serve_connection(stream, peer, site, ()).await,
        Some(permit) => serve_connection(stream, peer, site, permit).await,
    }
}

/// [`Site::stopped`], or never.
async fn stopped<S: Site>(site: &S) {
    match site.stopped() {
        Some(stopped) => stopped.await,
        None => std::future::pending().await,
    }
}

/// Serves HTTP/1.1 on a connection until it closes or the site stops, with the engine's limits
/// (the request head and body deadlines; see [`serve_http`]).
async fn serve_requests<S: Site>(io: Rewind, peer: SocketAddr, site: S, guard: impl ConnectionGuard)
where
    <S::Body as Body>::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let limits = match site.engine() {
        Some(engine) => engine.http_limits(site.head_timeout()),
        None => HttpLimits::new(site.head_timeout(), EngineConfig::default().body_timeout),
    };
    let shutdown = {
        let site = site.clone();
        async move { stopped(&site).await }
    };
    let service = move |mut req: Request<TimedBody>| {
        let site = site.clone();
        guard.attach(req.extensions_mut());
        async move {
            req.extensions_mut().insert(PeerAddr(peer));
            site.extend(req.extensions_mut(), peer);
            if let Some(engine) = site.engine()
                && engine.matches(req.uri().path())
            {
                return engine.handle(req).await.map(S::engine_body);
            }
            site.fallback(req).await
        }
    };
    serve_http(io, &limits, service, shutdown).await;
}

/// The site of [`Engine::serve_with`]: the engine, and a function for every other request.
/// `Fut` is that of `F`'s signature.
struct EngineSite<H: Handler, F, Fut> {
    engine: Engine<H>,
    fallback: F,
    #[cfg(feature = "tls")]
    tls: Option<std::sync::Arc<crate::http::tls::ServerTls>>,
    signature: PhantomData<fn() -> Fut>,
}

impl<H: Handler, F: Clone, Fut> Clone for EngineSite<H, F, Fut> {
    fn clone(&self) -> Self {
        EngineSite {
            engine: self.engine.clone(),
            fallback: self.fallback.clone(),
            #[cfg(feature = "tls")]
            tls: self.tls.clone(),
            signature: PhantomData,
        }
    }
}

impl<H, F, Fut> Site for EngineSite<H, F, Fut>
where
    H: Handler,
    F: Fn(Request<TimedBody>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    type Handler = H;
    type Body = ResponseBody;

    fn engine(&self) -> Option<Engine<H>> {
        Some(self.engine.clone())
    }

    fn has_engine(&self) -> bool {
        true
    }

    fn head_timeout(&self) -> Duration {
        self.engine.inner.config.request_head_timeout
    }

    fn fallback(
        &self,
        req: Request<TimedBody>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send {
        (self.fallback)(req)
    }

    fn engine_body(body: ResponseBody) -> ResponseBody {
        body
    }

    fn serve_direct(
        &self,
        first: FirstRead,
        peer: SocketAddr,
    ) -> impl Future<Output = Handoff> + Send + '_ {
        self.engine.serve_direct(first, peer, |_| {})
    }

    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<std::sync::Arc<crate::http::tls::ServerTls>> {
        self.tls.clone()
    }

    fn stopped(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        None::<std::future::Pending<()>>
    }
}

impl<H: Handler> Engine<H> {
    /// Serves HTTP/1.1 on `listener` until the task is dropped. Requests outside the engine's
    /// path get `404`.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.serve_with(listener, |_req: Request<TimedBody>| async {
            let mut res = Response::new(ResponseBody::from("Not Found"));
            *res.status_mut() = StatusCode::NOT_FOUND;
            res
        })
        .await
    }

    /// Serves HTTP/1.1 on `listener` until the task is dropped, passing requests outside the
    /// engine's path to `fallback` (see [`serve_site`]). A connection that opens with a
    /// WebSocket handshake for the engine is served without hyper (see
    /// [`Engine::serve_direct`]); the others through [`crate::serve_http`], with the engine's
    /// `request_head_timeout` and `body_timeout`. The per-IP connection limit closes
    /// connections as they are accepted.
    ///
    /// `fallback` reads its request's body as a [`TimedBody`], which keeps the engine's
    /// `body_timeout`: a client that stops sending is answered 408.
    pub async fn serve_with<F, Fut>(self, listener: TcpListener, fallback: F) -> std::io::Result<()>
    where
        F: Fn(Request<TimedBody>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        serve_site(
            listener,
            EngineSite {
                engine: self,
                fallback,
                #[cfg(feature = "tls")]
                tls: None,
                signature: PhantomData,
            },
        )
        .await;
        Ok(())
    }

    /// [`Engine::serve_with`] over TLS: HTTPS and WSS on `listener`, with `tls`'s certificate
    /// (reloadable while serving, see [`crate::ServerTls::reload`]). The TLS handshake has the
    /// engine's `request_head_timeout` to complete.
    #[cfg(feature = "tls")]
    pub async fn serve_tls_with<F, Fut>(
        self,
        listener: TcpListener,
        tls: std::sync::Arc<crate::http::tls::ServerTls>,
        fallback: F,
    ) -> std::io::Result<()>
    where
        F: Fn(Request<TimedBody>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
    {
        serve_site(
            listener,
            EngineSite {
                engine: self,
                fallback,
                tls: Some(tls),
                signature: PhantomData,
            },
        )
        .await;
        Ok(())
    }
}
