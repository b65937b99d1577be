//! One node of the mixed-cluster test (`tests/redis-interop/CONTRACT.md`): an Ignis server
//! with the Redis adapter, behaving like the suite's Node server (`lib/node-server.js`).
//!
//! `cluster-node --port 0 --redis-url redis://127.0.0.1:6379 --key socket.io --name rust1`
//! prints `listening on <port>` once its subscriptions are active. `--mode sharded` uses the
//! sharded adapter and emitter instead (`--key` is then the `channelPrefix`), with
//! `--subscription-mode dynamic|dynamic-private|static`. `--specific-response-channel` turns
//! on the classic adapter's `publishOnSpecificResponseChannel`. Every node serves `/` and
//! `/chat` with the same handlers, each scoped to its namespace. Several comma-separated URLs in
//! `--redis-url` make it a client of a Redis Cluster. `--mode streams` uses the streams adapter
//! (stream `{key}-stream`, channel prefix `{key}`, sessions under `{key}:session:`; no emitter),
//! and `--recovery` turns connection state recovery on (60 s).

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ignis_redis::{
    Emitter, RedisAdapterConfig, RedisAdapterFactory, RedisConfig, RedisConnection,
    ShardedAdapterConfig, ShardedAdapterFactory, StreamsAdapterConfig, StreamsAdapterFactory,
    SubscriptionMode,
};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{
    Namespace, Operators, RecoveryConfig, RemoteSocket, Room, SocketIo, SocketRef, Value,
};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// One URL, or several comma-separated ones naming the nodes of a Redis Cluster.
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis_url: String,
    /// The channel prefix (`key` of the Node adapter).
    #[arg(long, default_value = "socket.io")]
    key: String,
    /// This node's name, reported to clients.
    #[arg(long, default_value = "rust")]
    name: String,
    #[arg(long, default_value_t = 5000)]
    requests_timeout_ms: u64,
    #[arg(long, default_value_t = 5000)]
    connect_timeout_ms: u64,
    /// `classic` (`createAdapter`), `sharded` (`createShardedAdapter`) or `streams`
    /// (`@socket.io/redis-streams-adapter`).
    #[arg(long, default_value = "classic", value_parser = ["classic", "sharded", "streams"])]
    mode: String,
    /// Connection state recovery, 60 s.
    #[arg(long)]
    recovery: bool,
    /// The sharded adapter's `subscriptionMode`.
    #[arg(long, default_value = "dynamic")]
    subscription_mode: SubscriptionMode,
    /// The classic adapter's `publishOnSpecificResponseChannel`.
    #[arg(long)]
    specific_response_channel: bool,
}

/// The namespaces every node of the contract serves.
const NAMESPACES: [&str; 2] = ["/", "/chat"];

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}

fn rooms_value(rooms: &[Room]) -> Value {
    Value::Array(rooms.iter().map(|r| Value::from(r.to_string())).collect())
}

/// `to` and `except` of a request: a string or an array of strings.
fn room_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Str(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn select(ns: &Arc<Namespace>, req: &Value) -> Operators {
    let mut ops = ns.operators();
    for room in room_list(req.get("to")) {
        ops = ops.to(room);
    }
    for room in room_list(req.get("except")) {
        ops = ops.except(room);
    }
    if req.get("local").and_then(Value::as_bool) == Some(true) {
        ops = ops.local();
    }
    ops
}

fn args_of(req: &Value) -> Vec<Value> {
    req.get("args")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn event_of(req: &Value) -> String {
    req.get("event")
        .and_then(Value::as_str)
        .unwrap_or("event")
        .to_string()
}

fn error_value(e: impl std::fmt::Display) -> Value {
    map(vec![("error", Value::from(e.to_string()))])
}

fn socket_value(s: &RemoteSocket) -> Value {
    map(vec![
        ("id", Value::from(s.id.as_str())),
        ("rooms", rooms_value(&s.rooms)),
        ("data", s.data.clone()),
    ])
}

/// Registers a handler whose result is the acknowledgement.
fn on_request<F, Fut>(socket: &SocketRef, event: &str, f: F)
where
    F: Fn(SocketRef, Value) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Value> + Send + 'static,
{
    socket.on(event.to_string(), move |socket, event| {
        let f = f.clone();
        async move {
            let req = event.args.first().cloned().unwrap_or_default();
            let answer = f(socket, req).await;
            event.ack(vec![answer]);
        }
    });
}

fn setup(ns: &Arc<Namespace>, name: &str, emitter: Option<Emitter>, conn: RedisConnection) {
    let node = name.to_string();
    let nsp = ns.name().to_string();
    let ns_events = Arc::downgrade(ns);
    ns.on_server_event("ping-node", move |args| {
        let node = node.clone();
        let nsp = nsp.clone();
        let ns = ns_events.upgrade();
        async move {
            if let Some(ns) = ns {
                let _ = ns.operators().local().emit(
                    "server-event",
                    vec![
                        Value::from(node.clone()),
                        Value::from("ping-node"),
                        Value::Array(args.clone()),
                        Value::from(nsp.clone()),
                    ],
                );
            }
            Some(map(vec![
                ("node", Value::from(node)),
                ("args", Value::Array(args)),
                ("nsp", Value::from(nsp)),
            ]))
        }
    });

    let node = name.to_string();
    ns.on_connect(move |socket| {
        let node = node.clone();
        let emitter = emitter.clone();
        let conn = conn.clone();
        async move {
            // A recovered socket keeps the data it had, wherever it was set.
            if !socket.recovered() {
                socket.set_data(map(vec![("node", Value::from(node.clone()))]));
            }
            let _ = socket.emit(
                "welcome",
                map(vec![
                    ("id", Value::from(socket.id().as_str())),
                    ("node", Value::from(node.clone())),
                    ("nsp", Value::from(socket.namespace().name())),
                ]),
            );
            register(&socket, emitter, conn);
        }
    });
}

fn register(socket: &SocketRef, emitter: Option<Emitter>, conn: RedisConnection) {
    on_request(socket, "join", move |socket, req| {
        let conn = conn.clone();
        async move {
            socket.join(room_list(Some(&req)));
            // In the sharded modes a room may have a channel of its own: answer once this node
            // listens to it, so that the test's next broadcast finds it.
            conn.subscribed().await;
            rooms_value(&socket.rooms())
        }
    });
    on_request(socket, "leave", |socket, req| async move {
        for room in room_list(Some(&req)) {
            socket.leave(&room);
        }
        rooms_value(&socket.rooms())
    });
    on_request(socket, "rooms", |socket, _| async move {
        rooms_value(&socket.rooms())
    });
    on_request(socket, "broadcast", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        match select(&ns, &req).emit(&event_of(&req), args_of(&req)) {
            Ok(()) => Value::from("ok"),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "fetch", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        match select(&ns, &req).fetch_sockets().await {
            Ok(list) => Value::Array(list.iter().map(socket_value).collect()),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "socketsJoin", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        match select(&ns, &req)
            .sockets_join(room_list(req.get("rooms")))
            .await
        {
            Ok(()) => Value::from("ok"),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "socketsLeave", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        match select(&ns, &req)
            .sockets_leave(room_list(req.get("rooms")))
            .await
        {
            Ok(()) => Value::from("ok"),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "disconnectSockets", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        let close = req.get("close").and_then(Value::as_bool) == Some(true);
        match select(&ns, &req).disconnect_sockets(close).await {
            Ok(()) => Value::from("ok"),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "allRooms", |socket, _| async move {
        let ns = Arc::clone(socket.namespace());
        match ns.adapter().all_rooms(&ns).await {
            Ok(rooms) => rooms_value(&rooms),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "serverCount", |socket, _| async move {
        let ns = Arc::clone(socket.namespace());
        match ns.adapter().server_count().await {
            Ok(n) => Value::from(n as i64),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "serverSideEmit", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        let mut data = vec![Value::from(event_of(&req))];
        data.extend(args_of(&req));
        let ack = (req.get("ack").and_then(Value::as_bool) == Some(true)).then(|| {
            Duration::from_millis(req.get("timeout").and_then(Value::as_u64).unwrap_or(5000))
        });
        match ns.adapter().server_side_emit(&ns, data, ack).await {
            Ok(responses) => map(vec![("responses", Value::Array(responses))]),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "broadcastWithAck", |socket, req| async move {
        let ns = Arc::clone(socket.namespace());
        let timeout = req.get("timeout").and_then(Value::as_u64).unwrap_or(2000);
        let ops = select(&ns, &req).timeout(Duration::from_millis(timeout));
        match ops.emit_with_ack(&event_of(&req), args_of(&req)).await {
            Ok(answers) => map(vec![(
                "responses",
                Value::Array(answers.into_iter().map(first_or_null).collect()),
            )]),
            Err(ignis_socketio::BroadcastAckError::Timeout(t)) => map(vec![
                ("error", Value::from("operation has timed out")),
                (
                    "responses",
                    Value::Array(t.answers.into_iter().map(first_or_null).collect()),
                ),
            ]),
            Err(e) => error_value(e),
        }
    });
    on_request(socket, "emitter", move |_socket, req| {
        let emitter = emitter.clone();
        async move {
            match &emitter {
                Some(emitter) => run_emitter(emitter, &req).await,
                None => error_value("no emitter for the streams adapter"),
            }
        }
    });
}

/// Node's acknowledgement callbacks see each client's first argument.
fn first_or_null(args: Vec<Value>) -> Value {
    args.into_iter().next().unwrap_or_default()
}

/// Runs an operation of the Rust emitter: `{op, to, except, event, args, rooms, close}`.
async fn run_emitter(emitter: &Emitter, req: &Value) -> Value {
    let mut e = emitter.clone();
    if let Some(nsp) = req.get("nsp").and_then(Value::as_str) {
        e = e.of(nsp);
    }
    for room in room_list(req.get("to")) {
        e = e.to(room);
    }
    for room in room_list(req.get("except")) {
        e = e.except(room);
    }
    let result = match req.get("op").and_then(Value::as_str).unwrap_or("emit") {
        "emit" => e.emit_args_confirmed(&event_of(req), args_of(req)).await,
        "socketsJoin" => e.sockets_join(room_list(req.get("rooms"))).await,
        "socketsLeave" => e.sockets_leave(room_list(req.get("rooms"))).await,
        "disconnectSockets" => {
            e.disconnect_sockets(req.get("close").and_then(Value::as_bool) == Some(true))
                .await
        }
        "serverSideEmit" => e.server_side_emit(&event_of(req), args_of(req)).await,
        other => return error_value(format!("unknown emitter op {other}")),
    };
    match result {
        Ok(()) => Value::from("ok"),
        Err(e) => error_value(e),
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match RedisConfig::from_url_list(&args.redis_url) {
        Ok(c) => c.connect_timeout(Duration::from_millis(args.connect_timeout_ms)),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let connect = async {
        // The emitter gets a connection of its own, as a separate process would have.
        let adapter = RedisConnection::connect(config.clone()).await?;
        let emitter = RedisConnection::connect(config).await?;
        Ok::<_, ignis_redis::RedisError>((adapter, emitter))
    };
    let (conn, emitter_conn) = match connect.await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let requests_timeout = Duration::from_millis(args.requests_timeout_ms);
    let mut builder = SocketIo::builder();
    if args.recovery {
        builder = builder.connection_state_recovery(RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(60),
            ..RecoveryConfig::default()
        });
    }
    let (io, emitter) = match args.mode.as_str() {
        "sharded" => {
            let adapter_config = ShardedAdapterConfig {
                channel_prefix: args.key.clone(),
                subscription_mode: args.subscription_mode,
                requests_timeout,
                ..ShardedAdapterConfig::default()
            };
            let io = builder
                .adapter(ShardedAdapterFactory::new(conn.clone(), adapter_config))
                .build();
            let emitter = Emitter::sharded(emitter_conn, &args.key, args.subscription_mode);
            (io, Some(emitter))
        }
        "streams" => {
            let adapter_config = StreamsAdapterConfig {
                stream_name: format!("{}-stream", args.key),
                channel_prefix: args.key.clone(),
                session_key_prefix: format!("{}:session:", args.key),
                requests_timeout,
                ..StreamsAdapterConfig::default()
            };
            let factory = match StreamsAdapterFactory::new(conn.clone(), adapter_config) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("{e}");
                    std::process::exit(1);
                }
            };
            if !factory
                .reading(Duration::from_millis(args.connect_timeout_ms))
                .await
            {
                eprintln!("the Redis stream cannot be read");
                std::process::exit(1);
            }
            (builder.adapter(factory).build(), None)
        }
        _ => {
            let adapter_config = RedisAdapterConfig {
                key: args.key.clone(),
                requests_timeout,
                publish_on_specific_response_channel: args.specific_response_channel,
                ..RedisAdapterConfig::default()
            };
            let io = builder
                .adapter(RedisAdapterFactory::new(conn.clone(), adapter_config))
                .build();
            (io, Some(Emitter::with_key(emitter_conn, &args.key)))
        }
    };
    for nsp in NAMESPACES {
        let ns = io.ns(nsp, |_| async {});
        setup(&ns, &args.name, emitter.clone(), conn.clone());
    }
    conn.subscribed().await;

    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on port {}: {e}", args.port);
            std::process::exit(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    println!("listening on {port}");
    let server = io.clone().serve(listener);
    tokio::select! {
        r = server => {
            if let Err(e) = r {
                eprintln!("server failed: {e}");
                std::process::exit(1);
            }
        }
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm() => {}
    }
    io.close();
}

#[cfg(unix)]
async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn sigterm() {
    std::future::pending().await
}
