//! The server helper's public API that mirrors the original's (spec §5): `on` (server-level
//! listeners), `on_client_connect`, `on_client_authenticated`, `ping` and `get_io_server`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ignis::socketio::constants::ClientState;
use ignis::socketio::{
    AuthenticateHandler, ClientConnectedHandler, RedisConfig, ServerListener, SocketIoComponent,
    SocketIoServerHelper, keys,
};
use ignis::{AppConfig, Application, RunningApp};
use ignis_client::{Client, DisconnectReason, Socket};
use ignis_socketio::SocketRef;
use serde_json::{Value as Json, json};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> AppConfig {
    AppConfig {
        name: "server-helper-api".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    }
}

async fn start(component: SocketIoComponent, accept: bool) -> (RunningApp, SocketIoServerHelper) {
    let app = Application::new(config())
        .bind(
            keys::AUTHENTICATE_HANDLER,
            AuthenticateHandler::new(move |_req| async move { Ok(accept) }),
        )
        .component(component)
        .start()
        .await
        .expect("start");
    let helper = app.handle().get(keys::SOCKET_IO_INSTANCE).expect("helper");
    (app, helper)
}

async fn connect(app: &RunningApp, nsp: &str) -> Socket {
    Client::builder(format!("http://{}", app.local_addr()).as_str())
        .path("/io")
        .connect(nsp)
        .await
        .expect("connect")
}

/// Forwards every `event` the socket receives, as JSON.
fn forward(socket: &Socket, event: &str) -> mpsc::UnboundedReceiver<Json> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on(event, move |e| {
        let _ = tx.send(serde_json::to_value(e.args.first()).expect("json"));
    });
    rx
}

fn disconnects(socket: &Socket) -> mpsc::UnboundedReceiver<DisconnectReason> {
    let (tx, rx) = mpsc::unbounded_channel();
    socket.on_disconnect(move |reason| {
        let _ = tx.send(reason);
    });
    rx
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
        .expect("channel open")
}

/// The server's socket of a client that connected to the main namespace.
async fn server_socket(helper: &SocketIoServerHelper, id: &str) -> SocketRef {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(record) = helper.client(id) {
            return record.socket.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} never tracked");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_listener_gets_every_connecting_socket_after_the_helper() {
    let (app, helper) = start(SocketIoComponent::new(), true).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let seen = helper.clone();
    helper
        .on(
            "connection",
            ServerListener::connection(move |socket| {
                // The helper has taken the socket in before the listener runs.
                let state = seen.client(socket.id().as_str()).map(|r| r.state());
                let _ = tx.send((socket.id().to_string(), state));
                async {}
            }),
        )
        .expect("on connection");
    for _ in 0..2 {
        let client = connect(&app, "/").await;
        let (id, state) = next(&mut rx, "connection").await;
        assert_eq!(Some(id), client.id());
        assert_eq!(state, Some(ClientState::Unauthorized));
        client.disconnect();
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_refuses_with_the_originals_errors() {
    let (app, helper) = start(SocketIoComponent::new(), true).await;
    let noop = || ServerListener::connection(|_| async {});
    let event = || ServerListener::server_event(|_| async { None });

    let err = helper.on("", noop()).unwrap_err();
    assert_eq!(err.message, "[on] Invalid topic to start binding handler");
    assert_eq!(err.status, 400);
    for (topic, listener) in [
        ("connection", event()),
        ("disconnect", event()),
        ("chat:message", noop()),
    ] {
        let err = helper.on(topic, listener).unwrap_err();
        assert_eq!(
            err.message,
            format!("[on] Invalid event handler | topic: {topic}")
        );
        assert_eq!(err.status, 400);
    }
    helper.on("connect", noop()).expect("connect is connection");
    helper.on("cache:flush", event()).expect("a server event");

    helper.shutdown().await;
    let err = helper.on("connection", noop()).unwrap_err();
    assert_eq!(err.message, "[on] IOServer is not initialized yet!");
    assert_eq!(err.status, 400);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_event_listener_hears_the_other_nodes() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let key = format!("server-helper-api-{}", std::process::id());
    let node = || async {
        Application::new(config())
            .bind(
                keys::AUTHENTICATE_HANDLER,
                AuthenticateHandler::new(|_req| async { Ok(true) }),
            )
            .bind(
                keys::REDIS_CONNECTION,
                RedisConfig::from_url_list(&url).expect("a Redis URL"),
            )
            .component(SocketIoComponent::new().redis_key(key.clone()))
            .start()
            .await
            .unwrap_or_else(|e| panic!("a node starts (it needs Redis at {url}): {e}"))
    };
    let (a, b) = (node().await, node().await);
    let helper_a = a.handle().get(keys::SOCKET_IO_INSTANCE).expect("helper");
    let helper_b = b.handle().get(keys::SOCKET_IO_INSTANCE).expect("helper");
    let (tx, mut rx) = mpsc::unbounded_channel();
    for n in 0..2 {
        let tx = tx.clone();
        helper_b
            .on(
                "cache:flush",
                ServerListener::server_event(move |args| {
                    let _ = tx.send((n, serde_json::to_value(&args).expect("json")));
                    async { None }
                }),
            )
            .expect("on");
    }
    helper_a
        .get_io_server()
        .main_namespace()
        .server_side_emit("cache:flush", vec![json!({ "key": "users" }).into()])
        .await
        .expect("server_side_emit");
    // Both listeners, in the order registered.
    assert_eq!(
        next(&mut rx, "server event").await,
        (0, json!([{ "key": "users" }]))
    );
    assert_eq!(
        next(&mut rx, "server event").await,
        (1, json!([{ "key": "users" }]))
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_checks_the_authentication_unless_told_not_to() {
    let (app, helper) = start(SocketIoComponent::new(), true).await;
    assert!(std::ptr::eq(helper.get_io_server(), helper.io()));

    // ignore_auth: an unauthenticated client gets `ping {time}` and stays.
    let client = connect(&app, "/").await;
    let mut pings = forward(&client, "ping");
    let mut gone = disconnects(&client);
    let id = client.id().expect("id");
    let socket = server_socket(&helper, &id).await;
    helper.ping(&socket, true);
    let ping = next(&mut pings, "ping").await;
    assert!(
        ping["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{ping}"
    );
    assert_eq!(
        helper.client(&id).expect("tracked").state(),
        ClientState::Unauthorized
    );

    // Without: the unauthenticated client is disconnected and forgotten, no ping.
    helper.ping(&socket, false);
    assert_eq!(
        next(&mut gone, "disconnect").await,
        DisconnectReason::IoServerDisconnect
    );
    assert!(helper.client(&id).is_none());
    assert!(pings.try_recv().is_err(), "no ping to a refused client");
    // An untracked socket is only logged.
    helper.ping(&socket, false);

    // An authenticated client gets the ping either way.
    let client = connect(&app, "/").await;
    let mut pings = forward(&client, "ping");
    let mut authenticated = forward(&client, "authenticated");
    client.emit("authenticate", &()).expect("emit");
    next(&mut authenticated, "authenticated").await;
    next(&mut pings, "first ping").await;
    let socket = server_socket(&helper, &client.id().expect("id")).await;
    helper.ping(&socket, false);
    next(&mut pings, "ping").await;
    assert!(client.connected());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_client_authenticated_authenticates_a_socket_that_never_asked() {
    let connected = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connected);
    // The authenticate handler refuses everyone: only the application can let a client in.
    let app = Application::new(config())
        .bind(
            keys::AUTHENTICATE_HANDLER,
            AuthenticateHandler::new(|_req| async { Ok(false) }),
        )
        .bind(
            keys::CLIENT_CONNECTED_HANDLER,
            ClientConnectedHandler::new(move |_socket| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            }),
        )
        .component(SocketIoComponent::new().authenticate_timeout(Duration::from_millis(300)))
        .start()
        .await
        .expect("start");
    let helper = app.handle().get(keys::SOCKET_IO_INSTANCE).expect("helper");

    let client = connect(&app, "/").await;
    let mut authenticated = forward(&client, "authenticated");
    let mut pings = forward(&client, "ping");
    let mut gone = disconnects(&client);
    let id = client.id().expect("id");
    let socket = server_socket(&helper, &id).await;
    helper.on_client_authenticated(&socket).await;

    let payload = next(&mut authenticated, "authenticated").await;
    assert_eq!(payload["id"], json!(id));
    next(&mut pings, "first ping").await;
    assert_eq!(
        helper.client(&id).expect("tracked").state(),
        ClientState::Authenticated
    );
    assert_eq!(connected.load(Ordering::SeqCst), 1);
    assert_eq!(helper.authenticated_count(), 1);
    let mut rooms: Vec<String> = socket.rooms().iter().map(|r| r.to_string()).collect();
    rooms.sort();
    let mut expected = vec![
        id.clone(),
        "io-default".to_string(),
        "io-notification".into(),
    ];
    expected.sort();
    assert_eq!(rooms, expected);

    // Again: nothing more happens.
    helper.on_client_authenticated(&socket).await;
    assert_eq!(connected.load(Ordering::SeqCst), 1);
    assert_eq!(helper.authenticated_count(), 1);

    // The authentication deadline passes and the client stays.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(gone.try_recv().is_err(), "an authenticated client stays");
    assert!(client.connected());

    // A socket the helper does not track is disconnected.
    client.disconnect();
    let deadline = tokio::time::Instant::now() + WAIT;
    while helper.client(&id).is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the record stays");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    helper.on_client_authenticated(&socket).await;
    assert_eq!(connected.load(Ordering::SeqCst), 1);
    assert_eq!(helper.authenticated_count(), 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_client_connect_takes_in_a_socket_of_another_namespace() {
    let (app, helper) = start(SocketIoComponent::new(), true).await;
    let taker = helper.clone();
    helper.io().ns("/tenant", move |socket| {
        let helper = taker.clone();
        async move {
            helper.on_client_connect(socket.clone()).await;
            // A second call for the same socket is ignored (no second set of listeners).
            helper.on_client_connect(socket).await;
        }
    });
    let client = connect(&app, "/tenant").await;
    let id = client.id().expect("id");
    let socket = server_socket(&helper, &id).await;
    assert_eq!(socket.namespace().name(), "/tenant");
    assert_eq!(
        helper.client(&id).expect("tracked").state(),
        ClientState::Unauthorized
    );

    let mut authenticated = forward(&client, "authenticated");
    client.emit("authenticate", &()).expect("emit");
    let payload = next(&mut authenticated, "authenticated").await;
    assert_eq!(payload["id"], json!(id));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(authenticated.try_recv().is_err(), "answered once");
    assert_eq!(helper.stats().auth_succeeded, 1);
    assert_eq!(
        helper.client(&id).expect("tracked").state(),
        ClientState::Authenticated
    );
    app.stop().await;
}
