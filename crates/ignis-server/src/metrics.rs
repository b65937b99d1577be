//! `GET /metrics`: the server's figures in the Prometheus text format.
//!
//! Almost nothing here is counted per event. The libraries keep their counters as atomics
//! (the engine's sessions, handshakes and closes; the Socket.IO server's events, sends and
//! broadcasts; the component's clients and authentications; the Redis connection's state and
//! requests) and hand out typed snapshots; a scrape reads them through [`ServerCollector`] and
//! writes them out. What this module measures itself is off the real-time path: the REST API's
//! requests (by matched route template, method and status, with their latency) and the
//! process (memory, CPU, open files), read from `/proc` at scrape time.
//!
//! No label takes a value a client chooses (an event or room name, a raw path, an unknown
//! method), so the number of series stays bounded whatever clients send.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ignis::socketio::keys;
use ignis::{AppHandle, BindingKey, BoxError};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::api::auth::{ApiKey, require_api_key};
use crate::config::MetricsSettings;

/// Upper bounds of the REST latency buckets, in seconds.
const REST_LATENCY_BOUNDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The labels of a REST request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestLabels {
    method: &'static str,
    /// The matched route's template (`/api/socket/client/{clientId}/send`), or `unmatched`.
    route: Arc<str>,
    status: u16,
}

/// The registry of a server: the REST histogram, the collector of the libraries' figures, and
/// the process's.
pub(crate) struct Metrics {
    registry: Registry,
    rest: Family<RestLabels, Histogram>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of the server that `app` runs.
    pub(crate) fn new(app: AppHandle) -> Arc<Metrics> {
        let mut registry = Registry::default();
        let rest = Family::<RestLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(REST_LATENCY_BOUNDS)) as fn() -> Histogram,
        );
        registry.register(
            "ignis_http_request_duration_seconds",
            "REST API requests by method, matched route template and status, and how long \
             they took to answer",
            rest.clone(),
        );
        registry.register_collector(Box::new(ServerCollector { app }));
        registry.register_collector(Box::new(ProcessCollector));
        Arc::new(Metrics { registry, rest })
    }

    /// The exposition: OpenMetrics when the scraper asks for it, else the Prometheus text
    /// format (0.0.4).
    pub(crate) fn render(
        &self,
        accept: Option<&str>,
    ) -> Result<(String, &'static str), std::fmt::Error> {
        let mut out = String::with_capacity(16 * 1024);
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
            Ok((
                out,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ))
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)?;
            Ok((out, "text/plain; version=0.0.4; charset=utf-8"))
        }
    }

    fn observe_rest(&self, method: &Method, route: Arc<str>, status: StatusCode, seconds: f64) {
        let labels = RestLabels {
            method: method_label(method),
            route,
            status: status.as_u16(),
        };
        self.rest.get_or_create(&labels).observe(seconds);
    }
}

/// A method as a label: the standard ones by name, any other (a client may invent one) as
/// `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Where the route layer leaves the matched route for the layer that measures the request:
/// that one wraps the whole router (the 404 fallback included), where no route is matched yet.
#[derive(Clone, Default)]
struct RouteSlot(Arc<Mutex<Option<Arc<str>>>>);

async fn measure(
    State(metrics): State<Arc<Metrics>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let route = slot
        .0
        .lock()
        .ok()
        .and_then(|mut route| route.take())
        .unwrap_or_else(|| Arc::from("unmatched"));
    metrics.observe_rest(
        &method,
        route,
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn mark_route(request: Request, next: Next) -> Response {
    if let (Some(path), Some(slot)) = (
        request.extensions().get::<MatchedPath>(),
        request.extensions().get::<RouteSlot>(),
    ) && let Ok(mut route) = slot.0.lock()
    {
        *route = Some(Arc::from(path.as_str()));
    }
    next.run(request).await
}

/// Where `/metrics` is served.
#[derive(Debug, Clone)]
enum Exposure {
    /// On the API's port, behind the API key when one is set.
    SamePort { api_key: Option<String> },
    /// On an address of its own, not on the API's port.
    Apart,
}

/// The binding under which the address `/metrics` listens on apart is published once the
/// server started (with `--metrics-addr`), for tests and tools that asked for port 0.
pub(crate) const METRICS_ADDR: BindingKey<SocketAddr> =
    BindingKey::new("ignis-server:metrics-addr");

/// What `build` needs to serve the metrics: the settings, and the metrics once the routes are
/// made, for the listener of their own the post-start hook opens.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    settings: MetricsSettings,
    api_key: Option<String>,
    made: Arc<OnceLock<Arc<Metrics>>>,
}

impl Setup {
    /// The metrics of a server with these settings; `api_key` guards `/metrics` on the API's
    /// port.
    pub(crate) fn new(settings: MetricsSettings, api_key: Option<String>) -> Setup {
        Setup {
            settings,
            api_key,
            made: Arc::default(),
        }
    }

    /// The REST API's `router` with its requests measured, and `/metrics` on it when it is
    /// served on the API's port; as it is when metrics are off.
    pub(crate) fn wrap(&self, router: Router, app: AppHandle) -> Router {
        if !self.settings.enabled {
            return router;
        }
        let metrics = Metrics::new(app);
        let _ = self.made.set(Arc::clone(&metrics));
        let exposure = match self.settings.addr {
            Some(_) => Exposure::Apart,
            None => Exposure::SamePort {
                api_key: self.api_key.clone(),
            },
        };
        instrument(router, &metrics, &exposure)
    }

    /// The post-start hook: with `--metrics-addr`, listens there and serves `/metrics` alone;
    /// an address that cannot be bound stops the server.
    pub(crate) async fn listen_apart(self, app: AppHandle) -> Result<(), BoxError> {
        let (Some(addr), Some(metrics)) = (self.settings.addr, self.made.get().cloned()) else {
            return Ok(());
        };
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on the metrics address {addr}: {e}"))?;
        let bound = listener.local_addr()?;
        tracing::info!("metrics on http://{bound}/metrics");
        app.bind(METRICS_ADDR, bound);
        tokio::spawn(serve_apart(listener, metrics));
        Ok(())
    }
}

/// `router` (the REST API) with its requests measured, and `/metrics` on it when it is
/// served on the same port.
fn instrument(router: Router, metrics: &Arc<Metrics>, exposure: &Exposure) -> Router {
    let router = match exposure {
        Exposure::SamePort { api_key } => router.merge(scrape_router(metrics, api_key.clone())),
        Exposure::Apart => router,
    };
    router
        .route_layer(from_fn(mark_route))
        .layer(from_fn_with_state(Arc::clone(metrics), measure))
}

/// The router of `/metrics` alone, behind `api_key` when one is given.
fn scrape_router(metrics: &Arc<Metrics>, api_key: Option<String>) -> Router {
    let router = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Arc::clone(metrics));
    match api_key.filter(|k| !k.is_empty()) {
        Some(key) => router.route_layer(from_fn_with_state(
            Arc::new(ApiKey::new(key)),
            require_api_key,
        )),
        None => router,
    }
}

/// Serves `/metrics` alone on `listener` until the process ends.
async fn serve_apart(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    let router = scrape_router(&metrics, None);
    if let Err(e) = axum::serve(listener, router).await {
        tracing::error!(error = %e, "the metrics listener failed");
    }
}

async fn scrape(State(metrics): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    match metrics.render(accept) {
        Ok((body, content_type)) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The label set of a histogram without exemplars (the encoder asks for one).
type NoLabels = [(&'static str, &'static str); 0];

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let metric_encoder = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(metric_encoder)
}

/// Writes one metric with a value per label set.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (L, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric_encoder = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        let series_encoder: MetricEncoder = metric_encoder.encode_family(&labels)?;
        metric.encode(series_encoder)?;
    }
    Ok(())
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

fn gauge(value: u64) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// Reads the libraries' snapshots at scrape time.
struct ServerCollector {
    app: AppHandle,
}

impl std::fmt::Debug for ServerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCollector").finish_non_exhaustive()
    }
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Before the server started, there is nothing of it to show.
        let Ok(helper) = self.app.get(keys::SOCKET_IO_INSTANCE) else {
            return Ok(());
        };
        let io = helper.io();
        let engine = io.engine().stats();
        let engine_limits = io.engine().abuse_counters();
        let socket_limits = io.abuse_counters();
        let sent = io.stats();
        let clients = helper.stats();
        let e = &mut encoder;
        use MetricType::{Counter, Gauge};

        family(
            e,
            "ignis_connections",
            "Engine.IO sessions open now, by transport",
            Gauge,
            [
                ([("transport", "polling")], gauge(engine.open_polling)),
                ([("transport", "websocket")], gauge(engine.open_websocket)),
            ],
        )?;
        family(
            e,
            "ignis_clients",
            "Socket.IO clients of the main namespace tracked now, by whether they authenticated",
            Gauge,
            [
                ([("state", "authenticated")], gauge(clients.authenticated)),
                (
                    [("state", "unauthenticated")],
                    gauge(clients.clients.saturating_sub(clients.authenticated)),
                ),
            ],
        )?;
        family(
            e,
            "ignis_handshakes",
            "Engine.IO sessions opened, by the transport of their handshake",
            Counter,
            [
                (
                    [("transport", "polling")],
                    counter(engine.handshakes_polling),
                ),
                (
                    [("transport", "websocket")],
                    counter(engine.handshakes_websocket),
                ),
            ],
        )?;
        single(
            e,
            "ignis_upgrades",
            "Long-polling sessions upgraded to a WebSocket",
            counter(engine.upgrades),
        )?;
        family(
            e,
            "ignis_disconnects",
            "Engine.IO sessions ended, by reason",
            Counter,
            engine
                .closes
                .iter()
                .map(|(reason, n)| ([("reason", reason.label())], counter(*n))),
        )?;
        family(
            e,
            "ignis_authentications",
            "Authentications by result: ok, refused (token refused, handler failed), \
             timeout (deadline passed)",
            Counter,
            [
                ([("result", "ok")], counter(clients.auth_succeeded)),
                ([("result", "refused")], counter(clients.auth_refused)),
                ([("result", "timeout")], counter(clients.auth_timed_out)),
            ],
        )?;
        single(
            e,
            "ignis_messages_received",
            "Engine.IO messages received from clients",
            counter(engine.messages_in),
        )?;
        single(
            e,
            "ignis_received_bytes",
            "Bytes of the Engine.IO messages received (payload, without transport framing)",
            counter(engine.bytes_in),
        )?;
        single(
            e,
            "ignis_events_received",
            "Socket.IO events received from clients and admitted",
            counter(sent.events_received),
        )?;
        single(
            e,
            "ignis_packets_sent",
            "Socket.IO packets sent to one client (events, acknowledgements, connects, \
             disconnects), broadcasts apart",
            counter(sent.packets_sent),
        )?;
        family(
            e,
            "ignis_sent_bytes",
            "Bytes of the Engine.IO messages sent (payload, without transport framing): to one \
             client, and broadcast (once per recipient)",
            Counter,
            [
                ([("path", "direct")], counter(sent.bytes_sent)),
                ([("path", "broadcast")], counter(sent.broadcast_bytes)),
            ],
        )?;
        single(
            e,
            "ignis_broadcasts",
            "Broadcasts made",
            counter(sent.broadcasts),
        )?;
        single(
            e,
            "ignis_broadcast_deliveries",
            "Recipients of broadcasts, one per broadcast and socket it was meant for",
            counter(sent.broadcast_recipients),
        )?;
        single(
            e,
            "ignis_volatile_drops",
            "Rounds of volatile broadcasts not sent to a socket that had not taken what came \
             before",
            counter(sent.volatile_drops),
        )?;
        family(
            e,
            "ignis_slow_clients_disconnected",
            "Sessions cut because their outbound queue passed its bound, by bound",
            Counter,
            [
                (
                    [("bound", "messages")],
                    counter(engine_limits.queue_full_messages),
                ),
                (
                    [("bound", "bytes")],
                    counter(engine_limits.queue_full_bytes),
                ),
            ],
        )?;
        single(
            e,
            "ignis_socket_send_failures",
            "Sends to one client that failed: its session closed, or its queue full",
            counter(sent.send_failures),
        )?;
        single(
            e,
            "ignis_failed_sends",
            "REST and server sends that could not be published (to this node or the cluster)",
            counter(clients.failed_sends),
        )?;
        family(
            e,
            "ignis_limit_refusals",
            "What the abuse limits refused, by limit",
            Counter,
            [
                ("ping_flood_pause", engine_limits.ping_flood_pauses),
                ("body_timeout", engine_limits.body_timeouts),
                ("body_too_large", engine_limits.bodies_too_large),
                ("ip_connections", engine_limits.ip_connections_refused),
                ("ip_handshakes", engine_limits.ip_handshakes_refused),
                ("ip_table_full", engine_limits.ip_table_full),
                ("room_limit", socket_limits.rooms_refused),
                ("socket_id_room", socket_limits.socket_id_rooms_refused),
                ("event_rate", socket_limits.events_rate_limited),
                ("flood_disconnect", socket_limits.flood_disconnects),
                ("event_payload", socket_limits.payloads_too_large),
            ]
            .map(|(limit, n)| ([("limit", limit)], counter(n))),
        )?;

        let Some(redis) = helper.redis_stats() else {
            return Ok(());
        };
        let up = |b: bool| gauge(u64::from(b));
        let mut connections = vec![
            (
                [("connection", "subscriber")],
                up(redis.state.subscriber_up),
            ),
            ([("connection", "publisher")], up(redis.state.publisher_up)),
        ];
        if let Some(sharded) = redis.state.sharded_subscriber_up {
            connections.push(([("connection", "sharded_subscriber")], up(sharded)));
        }
        family(
            e,
            "ignis_redis_up",
            "Whether each connection to Redis is up (1) or down (0)",
            Gauge,
            connections,
        )?;
        single(
            e,
            "ignis_redis_reconnects",
            "Redis subscriber connections made again after one was lost",
            counter(redis.reconnects),
        )?;
        single(
            e,
            "ignis_redis_connection_errors",
            "Redis subscriber connections that failed to open or restore, or were lost",
            counter(redis.connection_errors),
        )?;
        family(
            e,
            "ignis_redis_publish_errors",
            "Publishes to Redis that failed (one per batch), or refused for a full queue",
            Counter,
            [
                ([("cause", "redis")], counter(redis.publish_errors)),
                ([("cause", "queue_full")], counter(redis.publish_queue_full)),
            ],
        )?;
        let answered = redis
            .requests
            .saturating_sub(redis.request_timeouts)
            .saturating_sub(redis.request_errors);
        family(
            e,
            "ignis_adapter_requests",
            "Requests of this node to the other nodes, by result",
            Counter,
            [
                ([("result", "ok")], counter(answered)),
                ([("result", "timeout")], counter(redis.request_timeouts)),
                ([("result", "error")], counter(redis.request_errors)),
            ],
        )?;
        let latency = &redis.request_latency;
        // The encoder adds the buckets up itself: it takes each bucket's own observations.
        let mut below = 0;
        let buckets: Vec<(f64, u64)> = ignis::socketio::REQUEST_LATENCY_BOUNDS
            .iter()
            .copied()
            .zip(latency.cumulative.iter().copied())
            .chain(std::iter::once((f64::INFINITY, latency.count)))
            .map(|(bound, cumulative)| {
                let own = cumulative.saturating_sub(below);
                below = cumulative;
                (bound, own)
            })
            .collect();
        let mut metric_encoder = e.encode_descriptor(
            "ignis_adapter_request_duration_seconds",
            "How long requests to the other nodes took, answered or not",
            None,
            MetricType::Histogram,
        )?;
        metric_encoder.encode_histogram::<NoLabels>(
            latency.sum_seconds,
            latency.count,
            &buckets,
            None,
        )
    }
}

/// The process's memory, CPU and files, from `/proc` and `getrusage` (Linux).
#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let process = crate::procstat::read();
        let e = &mut encoder;
        if let Some(cpu) = process.cpu_seconds {
            single(
                e,
                "process_cpu_seconds",
                "User and system CPU time spent, in seconds",
                ConstCounter::new(cpu),
            )?;
        }
        if let Some(rss) = process.resident_bytes {
            single(
                e,
                "process_resident_memory_bytes",
                "Resident memory size, in bytes",
                gauge(rss),
            )?;
        }
        if let Some(vsize) = process.virtual_bytes {
            single(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes",
                gauge(vsize),
            )?;
        }
        if let Some(open) = process.open_fds {
            single(
                e,
                "process_open_fds",
                "Open file descriptors (sockets included)",
                gauge(open),
            )?;
        }
        if let Some(max) = process.max_fds {
            single(
                e,
                "process_max_fds",
                "The limit of open file descriptors",
                gauge(max),
            )?;
        }
        if let Some(start) = process.start_time_seconds {
            single(
                e,
                "process_start_time_seconds",
                "When the process started, in seconds since the Unix epoch",
                ConstGauge::new(start),
            )?;
        }
        Ok(())
    }
}
