//! `ignis-cli`: connect to a Socket.IO server, optionally authenticate the Ignis way, join rooms,
//! emit an event, and print everything that happens as one JSON line each.
//!
//! `--join` asks for the server's acknowledgement and prints it as a `join` line with the rooms
//! the client holds and those the server's rules refused; a `connect_error` that is an HTTP 404
//! carries a hint that `--path` is likely wrong.
//!
//! After a lost connection it reconnects, authenticates again with `--authenticate`, joins the
//! `--join` rooms again unless the session was recovered, and prints a `resumed` line with
//! `recovered` (connection state recovery on the server) and the rooms asked for again.
//!
//! Exit codes: 0 done (duration or event count reached, or the server ended the session after
//! everything asked for was done), 1 connection failed, 2 bad arguments, 3 authentication failed,
//! 4 the emit (or its acknowledgement) failed, 5 the connection was lost for good.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::{Parser as ClapParser, ValueEnum};
use ignis_client::constants::{
    EVENT_AUTHENTICATE, EVENT_AUTHENTICATED, EVENT_JOIN, EVENT_UNAUTHENTICATE,
};
use ignis_client::{
    Client, ConnectError, DisconnectReason, Error, Parser, Socket, TlsOptions, Transport,
    TransportError, Value,
};
use serde_json::json;
use tokio::sync::{Notify, mpsc};

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    /// Long-polling, upgraded to WebSocket when the server offers it.
    Upgrade,
    Websocket,
    Polling,
}

#[derive(Clone, Copy, ValueEnum)]
enum ParserArg {
    Json,
    Msgpack,
}

/// A Socket.IO command-line client for debugging real-time backends.
#[derive(ClapParser)]
#[command(name = "ignis-cli", version)]
struct Args {
    /// Server URL, e.g. http://127.0.0.1:3000.
    url: String,
    /// Engine.IO path: `/io` is ignis-server's; Node's socket.io uses `/socket.io`.
    #[arg(long, default_value = "/io")]
    path: String,
    /// Namespace.
    #[arg(long, short, default_value = "/")]
    namespace: String,
    /// Extra header "Name: value" (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Query parameter "key=value" (repeatable).
    #[arg(long = "query", short = 'q', value_parser = parse_query)]
    query: Vec<(String, String)>,
    /// Auth payload of the namespace CONNECT, a JSON object.
    #[arg(long, value_parser = parse_json)]
    auth: Option<serde_json::Value>,
    #[arg(long, value_enum, default_value = "upgrade")]
    transport: TransportArg,
    #[arg(long, value_enum, default_value = "json")]
    parser: ParserArg,
    /// Emit `authenticate` and wait for `authenticated` (exit 3 on `unauthenticated` or timeout).
    #[arg(long)]
    authenticate: bool,
    /// Seconds to wait for the authentication answer.
    #[arg(long, default_value_t = 10.0)]
    auth_timeout: f64,
    /// Room to join with `join {rooms}` (repeatable); the acknowledgement is printed as a
    /// `join` line.
    #[arg(long = "join", short = 'j')]
    rooms: Vec<String>,
    /// Event to emit once connected (and authenticated, with --authenticate).
    #[arg(long)]
    emit: Option<String>,
    /// JSON data of the emitted event.
    #[arg(long, value_parser = parse_json, requires = "emit")]
    data: Option<serde_json::Value>,
    /// Wait this many seconds for the emit's acknowledgement and print it.
    #[arg(long, requires = "emit")]
    ack: Option<f64>,
    /// Exit 0 after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Exit 0 after this many received events.
    #[arg(long)]
    count: Option<u64>,
    /// Do not reconnect after a lost connection.
    #[arg(long)]
    no_reconnect: bool,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = 20.0)]
    timeout: f64,
    /// PEM file of the CA to trust for https:// and wss:// URLs, instead of the system's
    /// trusted roots.
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<std::path::PathBuf>,
    /// Accept any server certificate (https://, wss://): encrypted but not authenticated, for
    /// tests only.
    #[arg(long)]
    insecure: bool,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("expected \"Name: value\", got {s:?}"))?;
    Ok((name.trim().to_owned(), value.trim().to_owned()))
}

fn parse_query(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected key=value, got {s:?}"))?;
    Ok((k.to_owned(), v.to_owned()))
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("invalid JSON: {e}"))
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

/// A value as JSON; binary becomes `{"_binary": [bytes]}` so a line stays valid JSON.
fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => json!(b),
        Value::Int(n) => json!(n),
        Value::UInt(n) => json!(n),
        Value::Float(f) => json!(f),
        Value::Str(s) => json!(s),
        Value::Bytes(b) => json!({ "_binary": b.to_vec() }),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_owned(), to_json(v))).collect())
        }
    }
}

/// The `connect_error` line; a 404 means nothing serves Engine.IO at that path.
fn connect_error_line(err: &ConnectError, path: &str) -> serde_json::Value {
    let mut line = json!({ "type": "connect_error", "message": err.to_string() });
    if let ConnectError::Transport(TransportError::Status { status: 404, .. }) = err {
        line["hint"] = json!(format!(
            "the server answered 404 at {path}: is --path right? (ignis-server serves /io, Node's socket.io /socket.io)"
        ));
    }
    line
}

/// The `join` line: what was asked, what the acknowledgement says the client now holds, and
/// the rooms asked for that it does not hold (refused by the server's rules).
fn join_line(requested: &[String], answer: &[Value]) -> serde_json::Value {
    let first = answer.first();
    let Some(rooms) = first.and_then(|a| a.get("rooms")).and_then(Value::as_array) else {
        return json!({
            "type": "join",
            "requested": requested,
            "ack": answer.iter().map(to_json).collect::<Vec<_>>(),
        });
    };
    let held: Vec<&str> = rooms.iter().filter_map(Value::as_str).collect();
    let refused: Vec<&String> = requested
        .iter()
        .filter(|r| !held.contains(&r.as_str()))
        .collect();
    json!({ "type": "join", "requested": requested, "rooms": held, "refused": refused })
}

fn print_line(line: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What the main flow waits for. Sent with `try_send` into a small channel: a server that
/// floods cannot grow it, and the main loop also polls the socket's state.
enum Signal {
    Authenticated,
    Unauthenticated(String),
    CountReached,
    Lost(DisconnectReason),
}

const SIGNALS: usize = 64;

/// Whether the connect_error handler printed a line, and its signal that it did.
type ErrorPrinted = Arc<(AtomicBool, Notify)>;

/// How long a failed connect waits for the connect_error handler's line.
const HANDLER_WAIT: Duration = Duration::from_secs(1);

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    ExitCode::from(run(args).await)
}

async fn run(args: Args) -> u8 {
    let mut builder = Client::builder(&args.url)
        .path(&args.path)
        .timeout(seconds(args.timeout))
        .reconnection(!args.no_reconnect)
        .transports(match args.transport {
            TransportArg::Upgrade => vec![Transport::Polling, Transport::Websocket],
            TransportArg::Websocket => vec![Transport::Websocket],
            TransportArg::Polling => vec![Transport::Polling],
        })
        .parser(match args.parser {
            ParserArg::Json => Parser::Json,
            ParserArg::Msgpack => Parser::Msgpack,
        });
    for (name, value) in &args.headers {
        builder = builder.header(name, value);
    }
    for (k, v) in &args.query {
        builder = builder.query(k, v);
    }
    if let Some(auth) = &args.auth {
        builder = builder.auth(auth);
    }
    let mut tls = TlsOptions::new().danger_accept_invalid_certs(args.insecure);
    if let Some(path) = &args.ca {
        match std::fs::read(path) {
            Ok(pem) => tls = tls.ca_pem(pem),
            Err(e) => {
                eprintln!("ignis-cli: cannot read the CA {}: {e}", path.display());
                return 2;
            }
        }
    }
    builder = builder.tls(tls);
    let socket = match builder.build().and_then(|m| m.socket(&args.namespace)) {
        Ok(socket) => socket,
        Err(e) => {
            eprintln!("ignis-cli: {e}");
            return 2;
        }
    };

    let (tx, mut rx) = mpsc::channel::<Signal>(SIGNALS);
    let received = Arc::new(AtomicU64::new(0));
    let error_printed: ErrorPrinted = Arc::new((AtomicBool::new(false), Notify::new()));
    register_printers(
        &socket,
        tx,
        Arc::clone(&received),
        args.count,
        (Arc::clone(&error_printed), args.path.clone()),
    );
    register_resume(
        &socket,
        Resume {
            authenticate: args.authenticate,
            rooms: args.rooms.clone(),
        },
    );

    if let Err(e) = socket.connect().await {
        // A failure the server or the transport reported also reaches the connect_error
        // handler, which prints it right after waking this wait: the line is printed there,
        // once. A timeout of this wait itself reaches no handler.
        if !matches!(e, ConnectError::Timeout | ConnectError::Closed) {
            let _ = tokio::time::timeout(HANDLER_WAIT, error_printed.1.notified()).await;
        }
        if !error_printed.0.load(Ordering::Acquire) {
            print_line(connect_error_line(&e, &args.path));
        }
        socket.disconnect();
        return 1;
    }

    if args.authenticate
        && let Some(code) = authenticate(&socket, &mut rx, seconds(args.auth_timeout)).await
    {
        socket.disconnect();
        return code;
    }
    let mut join_ack: Option<JoinAck> = None;
    if !args.rooms.is_empty() {
        let request = match ignis_client::proto::value::to_value(&json!({ "rooms": args.rooms })) {
            Ok(request) => request,
            Err(e) => {
                eprintln!("ignis-cli: join failed: {e}");
                return 2;
            }
        };
        // Waited for beside the rest, so that a server that does not acknowledge `join` (the
        // original does not) delays nothing.
        let joining = socket.clone();
        let requested = args.rooms.clone();
        let wait = seconds(args.timeout);
        join_ack = Some(Box::pin(async move {
            match joining.emit_with_ack(EVENT_JOIN, vec![request], wait).await {
                Ok(answer) => join_line(&requested, &answer),
                Err(e) => json!({ "type": "join", "requested": requested, "error": e.to_string() }),
            }
        }));
        // The first poll sends `join`, before anything emitted after it.
        print_if_ready(&mut join_ack);
    }
    if let Some(event) = &args.emit {
        let data = args.data.as_ref().map(ignis_client::proto::value::to_value);
        let data = match data.transpose() {
            Ok(data) => data.into_iter().collect::<Vec<_>>(),
            Err(e) => {
                eprintln!("ignis-cli: {e}");
                return 2;
            }
        };
        let result = match args.ack {
            Some(secs) => socket
                .emit_with_ack(event, data, seconds(secs))
                .await
                .map(|answer| {
                    print_line(json!({ "type": "ack", "event": event, "args": answer.iter().map(to_json).collect::<Vec<_>>() }));
                })
                .map_err(|e| e.to_string()),
            None => socket.emit_args(event, data).map_err(|e: Error| e.to_string()),
        };
        if let Err(e) = result {
            eprintln!("ignis-cli: emit failed: {e}");
            socket.disconnect();
            return 4;
        }
    }
    if args
        .count
        .is_some_and(|n| received.load(Ordering::Relaxed) >= n)
    {
        print_if_ready(&mut join_ack);
        socket.disconnect();
        return 0;
    }

    let deadline = args
        .duration
        .map(|d| tokio::time::Instant::now() + seconds(d));
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut last_reason = DisconnectReason::TransportClose;
    loop {
        let until_deadline = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let joined = async {
            match join_ack.as_mut() {
                Some(ack) => ack.await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = joined => {
                print_line(line);
                join_ack = None;
            }
            signal = rx.recv() => match signal {
                None | Some(Signal::CountReached) => break,
                Some(Signal::Lost(reason)) => last_reason = reason,
                Some(Signal::Authenticated | Signal::Unauthenticated(_)) => {}
            },
            _ = tick.tick() => {}
            () = until_deadline => break,
            _ = tokio::signal::ctrl_c() => break,
        }
        if !socket.active() {
            print_if_ready(&mut join_ack);
            socket.disconnect();
            return if last_reason == DisconnectReason::IoServerDisconnect {
                0
            } else {
                5
            };
        }
    }
    print_if_ready(&mut join_ack);
    socket.disconnect();
    0
}

/// The `join` line, once the acknowledgement (or its failure) is known.
type JoinAck = std::pin::Pin<Box<dyn std::future::Future<Output = serde_json::Value> + Send>>;

/// Prints the `join` line if its acknowledgement has arrived: an exit right after an event that
/// followed the acknowledgement on the connection still shows it.
fn print_if_ready(join_ack: &mut Option<JoinAck>) {
    let Some(ack) = join_ack.as_mut() else {
        return;
    };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if let std::task::Poll::Ready(line) = ack.as_mut().poll(&mut cx) {
        print_line(line);
        *join_ack = None;
    }
}

fn register_printers(
    socket: &Socket,
    tx: mpsc::Sender<Signal>,
    received: Arc<AtomicU64>,
    count: Option<u64>,
    (error_printed, path): (ErrorPrinted, String),
) {
    let s = socket.clone();
    socket.on_connect(move || {
        print_line(json!({ "type": "connect", "id": s.id(), "recovered": s.recovered(), "transport": s.transport().map(Transport::as_str) }));
    });
    let lost = tx.clone();
    socket.on_disconnect(move |reason| {
        print_line(json!({ "type": "disconnect", "reason": reason.as_str() }));
        let _ = lost.try_send(Signal::Lost(reason));
    });
    socket.on_connect_error(move |err| {
        print_line(connect_error_line(err, &path));
        error_printed.0.store(true, Ordering::Release);
        error_printed.1.notify_one();
    });
    socket.on_any(move |event| {
        let seen = received.fetch_add(1, Ordering::Relaxed) + 1;
        let mut line = json!({
            "type": "event",
            "event": event.name,
            "args": event.args.iter().map(to_json).collect::<Vec<_>>(),
        });
        if let Some(offset) = &event.offset {
            line["offset"] = json!(offset);
        }
        if event.wants_ack() {
            line["ack"] = json!(true);
        }
        print_line(line);
        if event.name == EVENT_AUTHENTICATED {
            let _ = tx.try_send(Signal::Authenticated);
        } else if event.name == EVENT_UNAUTHENTICATE {
            let message = event
                .args
                .first()
                .and_then(|d| d.get("message"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let _ = tx.try_send(Signal::Unauthenticated(message.to_owned()));
        }
        if count == Some(seen) {
            let _ = tx.try_send(Signal::CountReached);
        }
    });
}

/// What a reconnection asks for again.
struct Resume {
    authenticate: bool,
    rooms: Vec<String>,
}

/// After a lost connection the client reconnects (unless `--no-reconnect`); this picks up
/// where it left off: `authenticate` again with `--authenticate`, then, unless the server
/// recovered the session (which keeps the rooms), `join` the `--join` rooms again. Once done, a
/// `resumed` line says whether the session was recovered and which rooms were asked for.
fn register_resume(socket: &Socket, resume: Resume) {
    let resume = Arc::new(resume);
    let connects = Arc::new(AtomicU64::new(0));
    // Set between a reconnection and its `authenticated`.
    let awaiting_auth = Arc::new(AtomicBool::new(false));
    let rejoin = |socket: &Socket, resume: &Resume| -> Vec<String> {
        if socket.recovered() || resume.rooms.is_empty() {
            return Vec::new();
        }
        if let Err(e) = socket.emit(EVENT_JOIN, &json!({ "rooms": resume.rooms })) {
            eprintln!("ignis-cli: join again failed: {e}");
            return Vec::new();
        }
        resume.rooms.clone()
    };
    let s = socket.clone();
    let (r, waiting) = (Arc::clone(&resume), Arc::clone(&awaiting_auth));
    socket.on_connect(move || {
        if connects.fetch_add(1, Ordering::Relaxed) == 0 {
            return;
        }
        if r.authenticate {
            waiting.store(true, Ordering::Release);
            if let Err(e) = s.emit_args(EVENT_AUTHENTICATE, Vec::new()) {
                eprintln!("ignis-cli: authenticate again failed: {e}");
            }
        } else {
            let rooms = rejoin(&s, &r);
            print_line(json!({ "type": "resumed", "recovered": s.recovered(), "rejoined": rooms }));
        }
    });
    let s = socket.clone();
    socket.on(EVENT_AUTHENTICATED, move |_| {
        if awaiting_auth.swap(false, Ordering::AcqRel) {
            let rooms = rejoin(&s, &resume);
            print_line(json!({ "type": "resumed", "recovered": s.recovered(), "rejoined": rooms }));
        }
    });
}

/// Emits `authenticate` and waits for the answer; an exit code on failure.
async fn authenticate(
    socket: &Socket,
    rx: &mut mpsc::Receiver<Signal>,
    timeout: Duration,
) -> Option<u8> {
    if let Err(e) = socket.emit_args(EVENT_AUTHENTICATE, Vec::new()) {
        eprintln!("ignis-cli: authenticate failed: {e}");
        return Some(3);
    }
    let wait = async {
        while let Some(signal) = rx.recv().await {
            match signal {
                Signal::Authenticated => return None,
                Signal::Unauthenticated(message) => {
                    eprintln!("ignis-cli: unauthenticated: {message}");
                    return Some(3);
                }
                Signal::Lost(reason) => {
                    eprintln!("ignis-cli: disconnected while authenticating ({reason})");
                    return Some(3);
                }
                Signal::CountReached => {}
            }
        }
        Some(3)
    };
    match tokio::time::timeout(timeout, wait).await {
        Ok(result) => result,
        Err(_) => {
            eprintln!("ignis-cli: no answer to authenticate within {timeout:?}");
            Some(3)
        }
    }
}
