//! Draining a node (`SocketIoServerHelper::drain`): new handshakes are refused, the clients'
//! connections are closed one by one over the window (a transport close, which a Socket.IO
//! client reconnects after, never `io server disconnect`), and their sessions are kept for
//! connection state recovery as on any such close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ignis::socketio::{AuthenticateHandler, ServerOptions, SocketIoComponent, keys};
use ignis::{AppConfig, Application, RunningApp};
use ignis_client::{Client, DisconnectReason, Socket};
use ignis_socketio::RecoveryConfig;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn start() -> RunningApp {
    Application::new(AppConfig {
        name: "drain-test".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    })
    .bind(
        keys::SERVER_OPTIONS,
        ServerOptions {
            connection_state_recovery: Some(RecoveryConfig {
                max_disconnection_duration: Duration::from_secs(60),
                ..RecoveryConfig::default()
            }),
            ..ServerOptions::default()
        },
    )
    .bind(
        keys::AUTHENTICATE_HANDLER,
        AuthenticateHandler::new(|_| async { Ok(true) }),
    )
    .component(SocketIoComponent::new())
    .start()
    .await
    .expect("the application starts")
}

/// The status line of a fresh polling handshake.
async fn handshake_status(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    format!("{} {body}", head.lines().next().unwrap_or(""))
}

/// What a client saw: its disconnects (reason, when) and its connects (recovered or not).
#[derive(Default)]
struct Seen {
    disconnects: Vec<(DisconnectReason, Instant)>,
    connects: Vec<bool>,
}

async fn client(addr: SocketAddr) -> (Socket, Arc<Mutex<Seen>>, mpsc::UnboundedReceiver<()>) {
    let socket = Client::builder(format!("http://{addr}"))
        .path("/io")
        .reconnection_delay(Duration::from_millis(100))
        .reconnection_delay_max(Duration::from_millis(200))
        .build()
        .unwrap()
        .socket("/")
        .unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (authenticated_tx, authenticated) = mpsc::unbounded_channel();
    socket.on("authenticated", move |_| {
        let _ = authenticated_tx.send(());
    });
    {
        let seen = seen.clone();
        socket.on_disconnect(move |reason| seen.lock().disconnects.push((reason, Instant::now())));
    }
    {
        let seen = seen.clone();
        let me = socket.clone();
        socket.on_connect(move || {
            seen.lock().connects.push(me.recovered());
            // Like the Ignis client helper's users: authenticate on every connect.
            let _ = me.emit_args("authenticate", vec![]);
        });
    }
    tokio::time::timeout(WAIT, socket.connect())
        .await
        .expect("connects in time")
        .expect("connects");
    (socket, seen, authenticated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_clients_off_spread_over_the_window_with_sessions_kept() {
    let app = start().await;
    let addr = app.local_addr();
    let helper = app.handle().get(keys::SOCKET_IO_INSTANCE).unwrap();
    let mut clients = Vec::new();
    for _ in 0..5 {
        let (socket, seen, mut authenticated) = client(addr).await;
        tokio::time::timeout(WAIT, authenticated.recv())
            .await
            .expect("authenticated in time");
        clients.push((socket, seen, authenticated));
    }
    let ids: Vec<_> = clients.iter().map(|(s, _, _)| s.id().unwrap()).collect();
    assert!(!helper.is_draining());

    let window = Duration::from_millis(1800);
    let started = Instant::now();
    let drain = tokio::spawn({
        let helper = helper.clone();
        async move { helper.drain(window).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(helper.is_draining());
    assert_eq!(
        handshake_status(addr).await,
        r#"HTTP/1.1 503 Service Unavailable {"code":7,"message":"Server draining"}"#,
        "a draining node takes no new client"
    );

    let outcome = tokio::time::timeout(WAIT, drain)
        .await
        .expect("the drain ends")
        .unwrap();
    let took = started.elapsed();
    assert_eq!((outcome.moved, outcome.remaining), (5, 0));
    assert!(took < window + Duration::from_millis(500), "{took:?}");

    // Every client lost its connection once, as a network failure would have it (so that
    // socket.io-client reconnects), one slot of the window after the other.
    let mut times = Vec::new();
    for (_, seen, _) in &clients {
        let seen = seen.lock();
        assert_eq!(seen.disconnects.len(), 1);
        let (reason, at) = seen.disconnects[0];
        assert_eq!(reason, DisconnectReason::TransportClose);
        times.push(at.duration_since(started));
    }
    times.sort();
    // A lead of a fifth of the window (360 ms), then slots 1/6 .. 5/6 of the rest: 600 ms to
    // 1560 ms, 240 ms apart. Checked loosely (a busy machine delays timers): nobody before the
    // lead, and spread over most of the expected 960 ms, not all at once.
    assert!(times[0] >= Duration::from_millis(360), "{times:?}");
    assert!(
        times[4] - times[0] >= Duration::from_millis(600),
        "{times:?}"
    );
    let bunched = times
        .windows(2)
        .filter(|pair| pair[1] - pair[0] < Duration::from_millis(80))
        .count();
    assert!(bunched <= 1, "{times:?}");

    // The clients keep retrying meanwhile, refused. Once the node takes clients again (the
    // same process here; another node with a shared session store in a cluster), each one
    // comes back to its session: same id, recovered, authenticated again at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(clients.iter().all(|(s, _, _)| !s.connected()));
    helper.io().engine().refuse_new_sessions(false);
    for (i, (socket, seen, authenticated)) in clients.iter_mut().enumerate() {
        tokio::time::timeout(WAIT, authenticated.recv())
            .await
            .expect("authenticated again");
        assert_eq!(socket.id().as_deref(), Some(ids[i].as_str()));
        assert!(socket.recovered());
        assert_eq!(seen.lock().connects, vec![false, true]);
    }
    for (socket, _, _) in &clients {
        socket.disconnect();
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_without_a_drain_still_says_io_server_disconnect() {
    let app = start().await;
    let (socket, seen, mut authenticated) = client(app.local_addr()).await;
    tokio::time::timeout(WAIT, authenticated.recv())
        .await
        .expect("authenticated in time");
    app.stop().await;
    let deadline = Instant::now() + WAIT;
    while seen.lock().disconnects.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen.lock().disconnects.first().map(|d| d.0),
        Some(DisconnectReason::IoServerDisconnect)
    );
    assert!(!socket.connected());
}
