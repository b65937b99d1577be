//! The component against hostile clients, from a raw Engine.IO long-polling client: a client
//! that fails authentication loses its connection; a join of far more rooms than a socket may
//! hold is refused at once while other clients are served; nobody joins another socket's
//! own-id room.
//!
//! The server runs on a runtime of its own, so that a server that stalls cannot stall the
//! client's bounded waits too.

#[path = "../../ignis-socketio/tests/common/mod.rs"]
mod common;

use common::Member;

use std::net::SocketAddr;
use std::time::Duration;

use ignis::socketio::{
    AuthenticateHandler, ClientConnectedHandler, MESSAGE_AUTH_TIMEOUT, SendOptions, ServerOptions,
    SocketIoComponent, SocketIoServerHelper, ValidateRoomHandler, constants, keys,
};
use ignis::{AppConfig, Application};
use ignis_socketio::Value;
use serde_json::json;

struct Server {
    addr: SocketAddr,
    helper: SocketIoServerHelper,
}

/// Starts an application with the component on a runtime of its own: `token` "good"
/// authenticates, "boom" makes the handler fail, anything else is refused; every room asked is
/// allowed; an authenticated client's `echo` is acknowledged with its arguments.
fn start(component: SocketIoComponent, options: ServerOptions) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let config = AppConfig {
                name: "hardening".into(),
                host: "127.0.0.1".into(),
                port: 0,
                ..AppConfig::default()
            };
            let app = Application::new(config)
                .bind(
                    keys::AUTHENTICATE_HANDLER,
                    AuthenticateHandler::new(|req| async move {
                        let token = req
                            .payload
                            .as_ref()
                            .and_then(|p| p.get("token"))
                            .and_then(Value::as_str)
                            .map(str::to_owned);
                        match token.as_deref() {
                            Some("good") => Ok(true),
                            Some("boom") => Err("the token store is down".into()),
                            _ => Ok(false),
                        }
                    }),
                )
                .bind(
                    keys::VALIDATE_ROOM_HANDLER,
                    ValidateRoomHandler::new(|_, rooms| async move { Ok(rooms) }),
                )
                .bind(
                    keys::CLIENT_CONNECTED_HANDLER,
                    ClientConnectedHandler::new(|socket| async move {
                        socket.on_sync("echo", |_, mut event| {
                            let args = std::mem::take(&mut event.args);
                            event.ack(args);
                        });
                        Ok(())
                    }),
                )
                .bind(keys::SERVER_OPTIONS, options)
                .component(component)
                .start()
                .await
                .expect("the application starts");
            let helper = app
                .handle()
                .get(keys::SOCKET_IO_INSTANCE)
                .expect("the helper is bound");
            tx.send(Server {
                addr: app.local_addr(),
                helper,
            })
            .expect("the test waits");
            std::future::pending::<()>().await;
        });
    });
    rx.recv().expect("the server starts")
}

/// A Socket.IO client over long-polling, on the main namespace of `/io`.
type Client = Member;

impl Client {
    async fn authenticated(addr: SocketAddr) -> Client {
        let client = Client::join(addr, "/io/").await;
        client.post(r#"42["authenticate",{"token":"good"}]"#).await;
        client.event("authenticated").await;
        client
    }

    /// Waits for an event; its first argument.
    async fn event(&self, name: &str) -> serde_json::Value {
        let seen = self
            .until(|p| event_of(p).is_some_and(|(n, _)| n == name))
            .await;
        event_of(seen.last().unwrap())
            .unwrap_or_else(|| panic!("no {name}: {seen:?}"))
            .1
    }

    /// Emits an event with an acknowledgement; the acknowledgement's first argument.
    async fn call(&self, id: u64, event: &str, data: serde_json::Value) -> serde_json::Value {
        self.post(&format!("42{id}{}", json!([event, data]))).await;
        let prefix = format!("43{id}");
        let seen = self.until(|p| p.starts_with(&prefix)).await;
        let answer = seen.last().unwrap();
        let args: serde_json::Value = serde_json::from_str(&answer[prefix.len()..])
            .unwrap_or_else(|_| panic!("no ack {id}: {seen:?}"));
        args[0].clone()
    }
}

/// An EVENT packet's name and first argument.
fn event_of(packet: &str) -> Option<(String, serde_json::Value)> {
    let json: serde_json::Value = serde_json::from_str(packet.strip_prefix("42")?).ok()?;
    Some((json[0].as_str()?.to_string(), json[1].clone()))
}

/// A client that failed authentication gets `unauthenticated`, then the DISCONNECT, then its
/// connection closes: it cannot ask to join the namespace again on it.
async fn fails_and_loses_its_connection(client: &Client, message: &str) {
    let seen = client.until_closed().await;
    let unauthenticated = seen
        .iter()
        .position(|p| {
            event_of(p).is_some_and(|(name, data)| {
                name == constants::EVENT_UNAUTHENTICATE && data["message"] == message
            })
        })
        .unwrap_or_else(|| panic!("no unauthenticated: {seen:?}"));
    let disconnect = seen
        .iter()
        .position(|p| p == "41")
        .unwrap_or_else(|| panic!("no DISCONNECT: {seen:?}"));
    assert!(unauthenticated < disconnect, "{seen:?}");
    assert!(
        seen.last().is_some_and(|p| p == "1" || p.starts_with("<4")),
        "{seen:?}"
    );
    assert_eq!(client.try_post("40").await, 400, "the session is gone");
}

#[tokio::test]
async fn a_refused_or_failed_authentication_closes_the_connection() {
    let server = start(SocketIoComponent::new(), ServerOptions::default());
    let refused = Client::join(server.addr, "/io/").await;
    refused
        .post(r#"42["authenticate",{"token":"forged"}]"#)
        .await;
    fails_and_loses_its_connection(&refused, constants::MESSAGE_INVALID_TOKEN).await;

    let failed = Client::join(server.addr, "/io/").await;
    failed.post(r#"42["authenticate",{"token":"boom"}]"#).await;
    fails_and_loses_its_connection(&failed, constants::MESSAGE_AUTH_FAILED).await;

    // Everyone else is served.
    let good = Client::authenticated(server.addr).await;
    assert_eq!(good.call(1, "echo", json!("hi")).await, json!("hi"));
    assert_eq!(server.helper.client_count(), 1);
}

#[tokio::test]
async fn a_client_past_its_authentication_deadline_loses_its_connection() {
    let server = start(
        SocketIoComponent::new().authenticate_timeout(Duration::from_millis(300)),
        ServerOptions::default(),
    );
    let late = Client::join(server.addr, "/io/").await;
    fails_and_loses_its_connection(&late, MESSAGE_AUTH_TIMEOUT).await;
    assert_eq!(server.helper.client_count(), 0);
}

#[tokio::test]
async fn a_join_of_far_more_rooms_than_allowed_is_refused_and_others_are_served() {
    let server = start(SocketIoComponent::new(), ServerOptions::default());
    let greedy = Client::authenticated(server.addr).await;
    let other = Client::authenticated(server.addr).await;

    // 80 000 rooms in one packet, about 700 KB.
    let rooms: Vec<String> = (0..80_000).map(|i| format!("r{i}")).collect();
    let answer = greedy.call(1, "join", json!({ "rooms": rooms })).await;
    assert_eq!(answer["error"]["event"], "join");
    assert_eq!(answer["error"]["code"], "TOO_MANY_ROOMS");
    assert_eq!(
        answer["error"]["message"],
        "80000 rooms asked at once; a socket may be in at most 1000 rooms"
    );

    // The same join without an ack gets an `error` event. Meanwhile a new client connects and
    // joins its rooms (the namespace's room index is free), and a broadcast reaches the others.
    greedy
        .post(&format!("42{}", json!(["join", { "rooms": rooms }])))
        .await;
    let newcomer = Client::authenticated(server.addr).await;
    assert_eq!(newcomer.call(1, "echo", json!("hi")).await, json!("hi"));
    server
        .helper
        .send(SendOptions {
            destination: Some(constants::ROOM_DEFAULT.into()),
            topic: "news".into(),
            data: Value::from("fresh"),
            log: false,
        })
        .unwrap();
    assert_eq!(other.event("news").await, json!("fresh"));
    assert_eq!(newcomer.event("news").await, json!("fresh"));
    let error = greedy.event("error").await;
    assert_eq!(error["code"], "TOO_MANY_ROOMS");

    // Membership is intact, and a join within the limit works.
    let answer = greedy.call(2, "join", json!({ "rooms": ["lobby"] })).await;
    assert_eq!(
        answer,
        json!({ "rooms": [greedy.id, "io-default", "io-notification", "lobby"] })
    );
    // A `leave` of more rooms than a socket may hold is refused as a whole too.
    let answer = greedy.call(3, "leave", json!({ "rooms": rooms })).await;
    assert_eq!(answer["error"]["code"], "TOO_MANY_ROOMS");
    let counters = server.helper.io().abuse_counters();
    assert_eq!(counters.rooms_refused, 3 * 80_000);
}

#[tokio::test]
async fn the_room_limit_refuses_rooms_past_it_by_name() {
    let server = start(
        SocketIoComponent::new(),
        ServerOptions {
            max_rooms_per_socket: Some(5),
            ..ServerOptions::default()
        },
    );
    let client = Client::authenticated(server.addr).await;
    // Own room and the two default rooms: two more fit.
    let answer = client
        .call(1, "join", json!({ "rooms": ["a", "b", "c"] }))
        .await;
    assert_eq!(
        answer,
        json!({
            "rooms": [client.id, "io-default", "io-notification", "a", "b"],
            "refused": [{
                "room": "c",
                "code": "ROOM_LIMIT",
                "reason": "the socket is in as many rooms as it may be"
            }]
        })
    );
    // Without an ack, the refusal comes as an `error` event.
    client.post(r#"42["join",{"rooms":["d"]}]"#).await;
    let error = client.event("error").await;
    assert_eq!(error["event"], "join");
    assert_eq!(error["code"], "ROOM_LIMIT");
    assert_eq!(error["refused"][0]["room"], "d");
    assert_eq!(server.helper.io().abuse_counters().rooms_refused, 2);
}

#[tokio::test]
async fn nobody_joins_another_sockets_own_room() {
    let server = start(SocketIoComponent::new(), ServerOptions::default());
    let victim = Client::authenticated(server.addr).await;
    let spy = Client::authenticated(server.addr).await;

    // The room rules allow every room here; the victim's id is refused all the same.
    let answer = spy
        .call(1, "join", json!({ "rooms": [victim.id, "lobby"] }))
        .await;
    assert_eq!(
        answer["rooms"],
        json!([spy.id, "io-default", "io-notification", "lobby"])
    );
    assert_eq!(answer["refused"][0]["room"], json!(victim.id));
    assert_eq!(answer["refused"][0]["code"], "SOCKET_ID_ROOM");

    // Through the Socket.IO server, as a REST join does: refused too.
    server
        .helper
        .io()
        .to(spy.id.as_str())
        .sockets_join(vec![victim.id.clone()])
        .await
        .unwrap();

    // A direct send to the victim reaches the victim alone: the spy's next packet is the
    // answer to its own echo.
    server
        .helper
        .send(SendOptions {
            destination: Some(victim.id.clone()),
            topic: "secret".into(),
            data: Value::from("for the victim"),
            log: false,
        })
        .unwrap();
    assert_eq!(victim.event("secret").await, json!("for the victim"));
    spy.post(r#"422["echo","me"]"#).await;
    let seen = spy.until(|p| p.starts_with("432")).await;
    assert!(
        !seen.iter().any(|p| p.contains("secret")),
        "the spy got the victim's message: {seen:?}"
    );
    assert_eq!(
        server.helper.io().abuse_counters().socket_id_rooms_refused,
        2
    );
}
