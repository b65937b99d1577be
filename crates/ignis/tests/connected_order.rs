//! A client that emits the moment it hears `authenticated` finds the handlers that the
//! client-connected handler attaches, even when the authenticate handler waited (so that the
//! flow runs in a task of its own) and the client-connected handler is slow to attach them: the
//! socket's next event is handled only once the `authenticate` event's handler is done, as in
//! the original, whose client-connected handler is called synchronously (spec §4.4).

use std::time::Duration;

use ignis::socketio::{AuthenticateHandler, ClientConnectedHandler, SocketIoComponent, keys};
use ignis::{AppConfig, Application};
use ignis_client::Client;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_sent_on_authenticated_finds_its_handler() {
    let app = Application::new(AppConfig {
        name: "connected-order".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    })
    .bind(
        keys::AUTHENTICATE_HANDLER,
        // Waits, as a handler that asks a database does: the flow then goes on in a task of
        // its own.
        AuthenticateHandler::new(|_req| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(true)
        }),
    )
    .bind(
        keys::CLIENT_CONNECTED_HANDLER,
        ClientConnectedHandler::new(|socket| {
            // Work before the handlers are attached (a slow first step widens the window the
            // old order left open: the client's event arrived during it).
            std::thread::sleep(Duration::from_millis(200));
            socket.on_sync("echo", |socket, event| {
                let _ = socket.emit("echo:reply", event.args);
            });
            async { Ok(()) }
        }),
    )
    .component(SocketIoComponent::new())
    .start()
    .await
    .expect("start");

    let url = format!("http://{}", app.local_addr());
    for round in 0..3 {
        let socket = Client::builder(url.as_str())
            .path("/io")
            .connect("/")
            .await
            .expect("connect");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let on_auth = socket.clone();
        socket.on("authenticated", move |_| {
            let _ = on_auth.emit("echo", &serde_json::json!({ "round": round }));
        });
        socket.on("echo:reply", move |event| {
            let _ = tx.send(event.args.clone());
        });
        socket.emit("authenticate", &()).expect("emit");
        let reply = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: the echo sent on authenticated was dropped"))
            .expect("reply");
        assert_eq!(
            serde_json::to_value(&reply[0]).expect("json"),
            serde_json::json!({ "round": round })
        );
        socket.disconnect();
    }
    app.stop().await;
}
