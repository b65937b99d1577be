//! The `ignis-server` process drained by SIGTERM: the readiness probe answers 503 at once, new
//! handshakes are refused, the clients are moved off one after another over `--drain-seconds`
//! without `io server disconnect` (so they reconnect), and the process exits with 0 once they
//! are gone.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ignis_client::{Client, DisconnectReason, Socket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

/// The server on a free port, with `args`; its address once it listens.
fn spawn(args: &[&str]) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ignis-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("APP_ENV_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--port", "0", "--app-ping-interval-ms", "60000"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server says where it listens");
    let port: u16 = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Status line and body of a GET on its own connection.
async fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

type Disconnects = Arc<Mutex<Vec<(DisconnectReason, Instant)>>>;

async fn authenticated_client(addr: SocketAddr) -> (Socket, Disconnects) {
    let socket = Client::builder(format!("http://{addr}"))
        .path("/io")
        .reconnection_delay(Duration::from_millis(200))
        .reconnection_delay_max(Duration::from_millis(400))
        .build()
        .unwrap()
        .socket("/")
        .unwrap();
    let (tx, mut authenticated) = mpsc::unbounded_channel();
    socket.on("authenticated", move |_| {
        let _ = tx.send(());
    });
    let disconnects: Disconnects = Arc::default();
    {
        let disconnects = disconnects.clone();
        socket.on_disconnect(move |reason| {
            if let Ok(mut d) = disconnects.lock() {
                d.push((reason, Instant::now()));
            }
        });
    }
    tokio::time::timeout(WAIT, socket.connect())
        .await
        .expect("connects in time")
        .expect("connects");
    socket.emit_args("authenticate", vec![]).unwrap();
    tokio::time::timeout(WAIT, authenticated.recv())
        .await
        .expect("authenticated in time");
    (socket, disconnects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_over_the_window_and_exits_0() {
    let (mut child, addr) = spawn(&[
        "--drain-seconds",
        "3",
        "--recovery-max-disconnection-ms",
        "60000",
    ]);
    assert_eq!(
        get(addr, "/api/socket/ready").await,
        ("HTTP/1.1 200 OK".into(), r#"{"status":"ready"}"#.into())
    );
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(authenticated_client(addr).await);
    }

    let started = Instant::now();
    signal(&child, "TERM");
    // The node leaves the load balancer's pool at once, and takes no one new.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let (status, body) = get(addr, "/api/socket/ready").await;
        if status.starts_with("HTTP/1.1 503") {
            assert_eq!(body, r#"{"status":"draining"}"#);
            break;
        }
        assert!(Instant::now() < deadline, "still ready: {status} {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = get(addr, "/io/?EIO=4&transport=polling").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        (
            "HTTP/1.1 503 Service Unavailable",
            r#"{"code":7,"message":"Server draining"}"#
        )
    );
    let (_, health) = get(addr, "/api/socket/health").await;
    assert!(health.contains(r#""status":"draining""#), "{health}");

    // The process exits by itself, with 0, once every client has gone (the last leaves at
    // 2.66 s) or the window is over.
    let code = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(code.success(), "{code:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    let mut times = Vec::new();
    for (socket, disconnects) in &clients {
        let d = disconnects.lock().unwrap().clone();
        assert!(!d.is_empty(), "every client was moved off");
        // Never told to stop: socket.io-client would not reconnect after that.
        assert!(
            d.iter()
                .all(|(r, _)| *r != DisconnectReason::IoServerDisconnect),
            "{d:?}"
        );
        assert_eq!(d[0].0, DisconnectReason::TransportClose);
        times.push(d[0].1.duration_since(started));
        // Still trying to reconnect (to another node, behind a load balancer).
        assert!(socket.active());
    }
    times.sort();
    // A lead of 600 ms (a fifth of the window), then slots of 2.4/7 s from 0.94 s to 2.66 s.
    // Checked loosely (a busy machine delays timers): nobody before the lead, spread over most
    // of the expected 1.7 s, not all at once.
    assert!(times[0] >= Duration::from_millis(600), "{times:?}");
    assert!(
        times[5] - times[0] >= Duration::from_millis(1000),
        "{times:?}"
    );
    let bunched = times
        .windows(2)
        .filter(|pair| pair[1] - pair[0] < Duration::from_millis(100))
        .count();
    assert!(bunched <= 1, "{times:?}");
    for (socket, _) in &clients {
        socket.disconnect();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_without_clients_exits_at_once_not_after_the_window() {
    let (mut child, _addr) = spawn(&["--drain-seconds", "60"]);
    let started = Instant::now();
    signal(&child, "TERM");
    let code = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(code.success(), "{code:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_stops_at_once() {
    let (mut child, addr) = spawn(&["--drain-seconds", "60"]);
    let (socket, _disconnects) = authenticated_client(addr).await;
    let started = Instant::now();
    signal(&child, "INT");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !get(addr, "/api/socket/ready")
        .await
        .0
        .starts_with("HTTP/1.1 503")
    {
        assert!(
            Instant::now() < deadline,
            "not draining after the first Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "INT");
    let code = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(code.code(), Some(130));
    socket.disconnect();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_drains_like_sigterm() {
    let (mut child, addr) = spawn(&["--drain-seconds", "1", "--api-key", "k3y"]);
    let (_socket, disconnects) = authenticated_client(addr).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /api/socket/drain HTTP/1.1\r\nHost: x\r\nX-API-Key: k3y\r\n\
              Content-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let code = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(code.success(), "{code:?}");
    let d = disconnects.lock().unwrap().clone();
    assert_eq!(
        d.first().map(|d| d.0),
        Some(DisconnectReason::TransportClose)
    );
}
