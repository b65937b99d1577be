//! A socket that connection state recovery restores keeps the component's authenticated state:
//! broadcasts reach it at once, it has no authentication deadline, its room handlers and the
//! application's (the client-connected handler runs again) are there, and the `authenticate`
//! its client sends on every connect is answered with `authenticated` without running the
//! authenticate handler again.

#[path = "../../ignis-socketio/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Hooked, Hooks, Polling, WAIT, offset};
use ignis::socketio::{
    AuthenticateHandler, ClientConnectedHandler, HelperOptions, SendOptions, SocketIoServerHelper,
    ValidateRoomHandler, constants::ClientState,
};
use ignis_socketio::adapter::MemoryAdapter;
use ignis_socketio::{RecoveryConfig, SessionData, Sid, SocketIo, Value};
use serde_json::json;
use tokio::sync::mpsc;

const AUTH_TIMEOUT: Duration = Duration::from_millis(300);

struct Server {
    helper: SocketIoServerHelper,
    addr: SocketAddr,
    persisted: mpsc::UnboundedReceiver<SessionData>,
    authenticate_calls: Arc<AtomicUsize>,
    connected_calls: Arc<AtomicUsize>,
}

async fn server() -> Server {
    let hooks = Arc::new(Hooks::default());
    let (tx, persisted) = mpsc::unbounded_channel();
    *hooks.persisted.lock() = Some(tx);
    let io = SocketIo::builder()
        .connection_state_recovery(RecoveryConfig::default())
        .adapter(move |_: &str| Hooked {
            inner: MemoryAdapter::new(),
            hooks: Arc::clone(&hooks),
        })
        .build();
    let authenticate_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&authenticate_calls);
    let authenticate = AuthenticateHandler::new(move |request| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut data = ignis_socketio::proto::value::Map::new();
        data.insert("sub", "alice");
        request.socket.set_data(Value::Map(data));
        async { Ok(true) }
    });
    let connected_calls = Arc::new(AtomicUsize::new(0));
    let calls = Arc::clone(&connected_calls);
    let connected = ClientConnectedHandler::new(move |socket| {
        calls.fetch_add(1, Ordering::SeqCst);
        socket.on_sync("echo", |socket, event| {
            let _ = socket.emit("echo:reply", event.args);
        });
        async { Ok(()) }
    });
    let validate = ValidateRoomHandler::new(|_, rooms| async move { Ok(rooms) });
    let helper = SocketIoServerHelper::new(
        io.clone(),
        HelperOptions {
            authenticate_timeout: AUTH_TIMEOUT,
            ..HelperOptions::default()
        },
        authenticate,
        Some(validate),
        Some(connected),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.serve(listener));
    Server {
        helper,
        addr,
        persisted,
        authenticate_calls,
        connected_calls,
    }
}

fn tick(helper: &SocketIoServerHelper, n: i64) {
    helper
        .send(SendOptions {
            destination: None,
            topic: "tick".into(),
            data: Value::from(n),
            log: false,
        })
        .expect("send");
}

/// Events until one named `name`, that one included.
async fn until_event(client: &Polling, name: &str) -> Vec<serde_json::Value> {
    let mut events = Vec::new();
    while !events
        .last()
        .is_some_and(|e: &serde_json::Value| e[0] == name)
    {
        events.extend(client.events(1).await);
    }
    events
}

fn names(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e[0].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Waits, without sleeping a fixed time, until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_socket_goes_on_authenticated() {
    let mut server = server().await;
    let helper = server.helper.clone();

    // A first connection that authenticates.
    let first = Polling::open(server.addr, "/socket.io/").await;
    let connected = first.connect(None).await;
    let id = connected.id.clone();
    let pid = connected.pid.expect("recovery on: a pid");
    first.post("42[\"authenticate\"]").await;
    let greeting = until_event(&first, "ping").await;
    assert_eq!(names(&greeting), ["authenticated", "ping"]);
    tick(&helper, 1);
    let events = until_event(&first, "tick").await;
    let last = offset(events.last().unwrap());

    // The connection is cut; a broadcast is missed meanwhile.
    let sid = Sid::parse(&id).unwrap();
    helper
        .io()
        .main_namespace()
        .get_socket(sid)
        .unwrap()
        .close_connection();
    first.until_closed().await;
    tokio::time::timeout(WAIT, server.persisted.recv())
        .await
        .expect("the session is kept");
    assert_eq!(helper.client_count(), 0);
    tick(&helper, 2);

    let client = Polling::open(server.addr, "/socket.io/").await;
    let back = client
        .connect(Some(json!({ "pid": pid, "offset": last })))
        .await;
    assert_eq!(back.id, id, "recovered");
    assert_eq!(back.before.len(), 1);
    assert_eq!(back.before[0][0], "tick");
    assert_eq!(back.before[0][1], 2);

    // Known to the component as authenticated, before the client said anything.
    until("the record", || helper.client(&id).is_some()).await;
    let record = helper.client(&id).unwrap();
    assert_eq!(record.state(), ClientState::Authenticated);
    assert!(record.resumed());
    assert_eq!(helper.authenticated_count(), 1);
    assert_eq!(helper.client_count(), 1);
    // Broadcasts are not held back from it: this one used to pass it by until it authenticated
    // again.
    tick(&helper, 3);
    let events = until_event(&client, "tick").await;
    assert_eq!(events.last().unwrap()[1], 3);

    // No authentication deadline: it is still here, and served, past it.
    tokio::time::sleep(AUTH_TIMEOUT * 2).await;
    tick(&helper, 4);
    let events = until_event(&client, "tick").await;
    assert_eq!(events.last().unwrap()[1], 4);
    assert_eq!(helper.client_count(), 1);

    // The `authenticate` the client sends on every connect is answered as the first one was,
    // and the authenticate handler does not run again.
    client.post("42[\"authenticate\"]").await;
    let greeting = until_event(&client, "ping").await;
    assert_eq!(names(&greeting), ["authenticated", "ping"]);
    assert_eq!(greeting[0][1]["id"], id.as_str());
    assert!(greeting[0][1]["time"].is_string());
    assert_eq!(server.authenticate_calls.load(Ordering::SeqCst), 1);
    // The client-connected handler ran again, for the new socket: its handler is there.
    assert_eq!(server.connected_calls.load(Ordering::SeqCst), 2);
    client.post("42[\"echo\",\"hi\"]").await;
    let events = until_event(&client, "echo:reply").await;
    assert_eq!(events.last().unwrap()[1], "hi");
    // The room handlers are attached, and the data came back for the validator and the rest.
    client.post("421[\"join\",{\"rooms\":[\"lobby\"]}]").await;
    let ack = client.until(|p| p.starts_with("431")).await;
    let ack: serde_json::Value = serde_json::from_str(&ack.last().unwrap()[3..]).unwrap();
    let rooms = ack[0]["rooms"].as_array().expect("the rooms held");
    assert!(rooms.iter().any(|r| r == "lobby"), "{ack}");
    assert!(rooms.iter().any(|r| r == "io-default"), "{ack}");
    let socket = helper.io().main_namespace().get_socket(sid).unwrap();
    assert_eq!(
        socket.data().get("sub").and_then(Value::as_str),
        Some("alice")
    );
}

/// A socket that had not authenticated when it left comes back unauthenticated: the
/// authenticated state is what its session says, not a consequence of recovering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovered_socket_that_had_not_authenticated_must_still_do_so() {
    let mut server = server().await;
    let helper = server.helper.clone();
    let first = Polling::open(server.addr, "/socket.io/").await;
    let connected = first.connect(None).await;
    let id = connected.id.clone();
    let pid = connected.pid.expect("a pid");
    // Sent to the socket itself, which its held broadcasts do not stop: an offset for the
    // client without authenticating.
    until("the record", || helper.client(&id).is_some()).await;
    helper
        .io()
        .main_namespace()
        .get_socket(Sid::parse(&id).unwrap())
        .unwrap()
        .emit("hello", &())
        .unwrap();
    let events = until_event(&first, "hello").await;
    let last = offset(events.last().unwrap());
    helper
        .io()
        .main_namespace()
        .get_socket(Sid::parse(&id).unwrap())
        .unwrap()
        .close_connection();
    first.until_closed().await;
    tokio::time::timeout(WAIT, server.persisted.recv())
        .await
        .expect("the session is kept");

    let client = Polling::open(server.addr, "/socket.io/").await;
    let back = client
        .connect(Some(json!({ "pid": pid, "offset": last })))
        .await;
    assert_eq!(back.id, id, "recovered");
    until("the record", || helper.client(&id).is_some()).await;
    let record = helper.client(&id).unwrap();
    assert_eq!(record.state(), ClientState::Unauthorized);
    assert!(!record.resumed());
    assert_eq!(helper.authenticated_count(), 0);
    client.post("42[\"authenticate\"]").await;
    let greeting = until_event(&client, "ping").await;
    assert_eq!(names(&greeting), ["authenticated", "ping"]);
    assert_eq!(server.authenticate_calls.load(Ordering::SeqCst), 1);
    assert_eq!(helper.authenticated_count(), 1);
}

/// Clients whose connections are cut again and again while a steady stream of numbered
/// broadcasts goes on, each coming back a few milliseconds later (and sending `authenticate`,
/// as a real client does on every connect), get every number once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_reconnects_during_a_steady_stream_lose_nothing() {
    use ignis_client::{Client, Transport};

    const CLIENTS: usize = 12;
    const TICKS: i64 = 400;
    let server = server().await;
    let helper = server.helper.clone();
    let url = format!("http://{}", server.addr);
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let socket = Client::builder(url.as_str())
            .transports([Transport::Websocket])
            .reconnection_delay(Duration::from_millis(2))
            .reconnection_delay_max(Duration::from_millis(5))
            .randomization_factor(0.0)
            .connect("/")
            .await
            .expect("connect");
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        socket.on("tick", move |event| {
            s.lock().push(event.args.first().and_then(Value::as_i64));
        });
        let again = socket.clone();
        socket.on_connect(move || {
            let _ = again.emit_args("authenticate", vec![]);
        });
        socket.emit_args("authenticate", vec![]).unwrap();
        clients.push((socket, seen));
    }
    until("every client authenticated", || {
        helper.authenticated_count() == CLIENTS
    })
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let cutter = {
        let (stop, cuts, io) = (Arc::clone(&stop), Arc::clone(&cuts), helper.io().clone());
        tokio::spawn(async move {
            let mut turn = 0usize;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(3)).await;
                let sockets = io.main_namespace().sockets();
                if let Some(socket) = sockets.get(turn % sockets.len().max(1)) {
                    socket.close_connection();
                    cuts.fetch_add(1, Ordering::SeqCst);
                }
                turn = turn.wrapping_add(7);
            }
        })
    };
    for n in 1..=TICKS {
        tick(&helper, n);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::SeqCst);
    cutter.await.unwrap();
    until("every client has the last tick", || {
        clients
            .iter()
            .all(|(_, seen)| seen.lock().contains(&Some(TICKS)))
    })
    .await;

    let expected: Vec<Option<i64>> = (1..=TICKS).map(Some).collect();
    let mut recovered = 0;
    for (i, (socket, seen)) in clients.iter().enumerate() {
        let seen = seen.lock().clone();
        let mut distinct = seen.clone();
        distinct.sort();
        distinct.dedup();
        let missing = TICKS as usize - distinct.len();
        let duplicated = seen.len() - distinct.len();
        let out_of_order = seen.windows(2).filter(|w| w[0] >= w[1]).count();
        assert_eq!(
            seen, expected,
            "client {i}: {missing} missing, {duplicated} duplicated, {out_of_order} out of order"
        );
        recovered += usize::from(socket.recovered());
    }
    let cuts = cuts.load(Ordering::SeqCst);
    assert!(cuts >= CLIENTS * 5, "only {cuts} cuts");
    assert!(recovered > 0);
    for (socket, _) in &clients {
        socket.disconnect();
    }
}
