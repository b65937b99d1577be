//! The Rust client helper with `resume_after_reconnect`, against the real component: after a
//! lost connection (a drain closes it the same way) it reconnects, authenticates again by
//! itself, asks for its rooms again unless the session was recovered, and says which it was.

use std::sync::Arc;
use std::time::Duration;

use ignis::socketio::{
    AuthenticateHandler, SendOptions, ServerOptions, SocketIoComponent, SocketIoServerHelper,
    ValidateRoomHandler, keys,
};
use ignis::{AppConfig, Application, RunningApp};
use ignis_client::constants::ClientState;
use ignis_client::{Client, HelperOptions, SocketIoClientHelper, Subscription, Value};
use ignis_socketio::RecoveryConfig;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn start(recovery: bool) -> (RunningApp, SocketIoServerHelper) {
    let app = Application::new(AppConfig {
        name: "resume-test".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    })
    .bind(
        keys::SERVER_OPTIONS,
        ServerOptions {
            connection_state_recovery: recovery.then(RecoveryConfig::default),
            ..ServerOptions::default()
        },
    )
    .bind(
        keys::AUTHENTICATE_HANDLER,
        AuthenticateHandler::new(|_| async { Ok(true) }),
    )
    .bind(
        keys::VALIDATE_ROOM_HANDLER,
        ValidateRoomHandler::new(|_, rooms| async move { Ok(rooms) }),
    )
    .component(SocketIoComponent::new())
    .start()
    .await
    .expect("the application starts");
    let helper = app.handle().get(keys::SOCKET_IO_INSTANCE).unwrap();
    (app, helper)
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Sends `news` to room `room` until the client gets one (a join is answered asynchronously).
async fn reaches_room(
    server: &SocketIoServerHelper,
    news: &mut mpsc::UnboundedReceiver<Value>,
) -> bool {
    for _ in 0..50 {
        server
            .send(SendOptions {
                destination: Some("team".into()),
                topic: "news".into(),
                data: Value::from("hello"),
                log: false,
            })
            .unwrap();
        if tokio::time::timeout(Duration::from_millis(100), news.recv())
            .await
            .is_ok()
        {
            return true;
        }
    }
    false
}

async fn resumes(recovery: bool) {
    let (app, server) = start(recovery).await;
    let (resumed_tx, mut resumed) = mpsc::unbounded_channel();
    let client = SocketIoClientHelper::new(
        HelperOptions::new(
            "resume-test",
            Client::builder(format!("http://{}", app.local_addr()))
                .path("/io")
                .reconnection_delay(Duration::from_millis(50))
                .reconnection_delay_max(Duration::from_millis(100)),
        )
        .resume_after_reconnect(true)
        .on_resumed(move |recovered| {
            let _ = resumed_tx.send(recovered);
        }),
    )
    .unwrap();
    let (news_tx, mut news) = mpsc::unbounded_channel();
    client.subscribe(Subscription::sync("news", move |event| {
        let _ = news_tx.send(event.args.first().cloned().unwrap_or(Value::Null));
    }));
    client.connect_and_wait().await.unwrap();
    client.authenticate_and_wait().await.unwrap();
    client.join_rooms(&["team", "gone"]);
    client.leave_rooms(&["gone"]);
    assert!(reaches_room(&server, &mut news).await, "joined at first");
    let first_id = client.socket().id();

    // The server closes the connection, as a drain does.
    let socket = server
        .io()
        .main_namespace()
        .sockets()
        .into_iter()
        .next()
        .expect("the client's socket");
    socket.close_connection();

    let recovered = tokio::time::timeout(WAIT, resumed.recv())
        .await
        .expect("resumed in time")
        .expect("a report");
    assert_eq!(recovered, recovery);
    assert_eq!(client.recovered(), recovery);
    assert_eq!(client.state(), ClientState::Authenticated);
    until("the server's record authenticated", || {
        server.authenticated_count() == 1
    })
    .await;
    assert_eq!(client.socket().id() == first_id, recovery);
    assert!(
        reaches_room(&server, &mut news).await,
        "in the room again (recovered: {recovery})"
    );
    // Only the rooms still joined are asked for again.
    let rooms = server
        .io()
        .main_namespace()
        .sockets()
        .first()
        .map(|s| s.rooms())
        .unwrap_or_default();
    assert!(!rooms.iter().any(|r| r.as_ref() == "gone"), "{rooms:?}");
    client.shutdown();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_recovery_the_helper_authenticates_and_joins_again() {
    resumes(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_recovery_the_helper_authenticates_again_and_reports_it() {
    resumes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_option_a_reconnection_stays_unauthorized() {
    let (app, server) = start(false).await;
    let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connects.clone();
    let client = SocketIoClientHelper::new(
        HelperOptions::new(
            "resume-test",
            Client::builder(format!("http://{}", app.local_addr()))
                .path("/io")
                .reconnection_delay(Duration::from_millis(50))
                .reconnection_delay_max(Duration::from_millis(100)),
        )
        .on_connected(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }),
    )
    .unwrap();
    client.connect_and_wait().await.unwrap();
    client.authenticate_and_wait().await.unwrap();
    for socket in server.io().main_namespace().sockets() {
        socket.close_connection();
    }
    until("reconnected", || {
        connects.load(std::sync::atomic::Ordering::SeqCst) == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // As in the reference: the application authenticates in `on_connected` itself.
    assert_eq!(client.state(), ClientState::Unauthorized);
    assert_eq!(server.authenticated_count(), 0);
    client.shutdown();
    app.stop().await;
}
