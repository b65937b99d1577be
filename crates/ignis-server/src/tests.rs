//! The whole server as `main` builds it (configuration, token checks, room rules, chat events,
//! REST API), in process, driven by Engine.IO long-polling clients.

use std::sync::{Arc, Mutex};

use ignis::RunningApp;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::api::tests::{PollingClient, raw_http};
use crate::auth::Verifier;
use crate::build;
use crate::config::{Cli, Config};

const SECRET: &str = "a-test-secret-long-enough-for-hs256";

pub(crate) async fn start(cli: Cli) -> RunningApp {
    let config = Config::load(Cli {
        port: Some(0),
        ..cli
    })
    .expect("a valid configuration");
    let verifier = Verifier::new(&config.jwt).expect("a valid key");
    build(
        &config,
        verifier,
        None,
        crate::drain::DrainSwitch::default(),
    )
    .start()
    .await
    .expect("the server starts")
}

fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn in_an_hour() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

/// Joins `rooms` and returns the rooms the client then holds.
async fn join(client: &PollingClient, ack: u32, rooms: &[&str]) -> Vec<Value> {
    let answer = client
        .emit_with_ack(ack, "join", json!({ "rooms": rooms }))
        .await;
    answer[0]["rooms"].as_array().cloned().unwrap_or_default()
}

async fn chat(client: &PollingClient, ack: u32, room: &str, message: &str) -> Value {
    let answer = client
        .emit_with_ack(
            ack,
            "chat:message",
            json!({ "room": room, "message": message }),
        )
        .await;
    answer[0].clone()
}

#[tokio::test]
async fn chat_to_a_room_needs_membership_and_the_rules() {
    let app = start(Cli {
        room_deny: Some(vec!["private-*".into()]),
        ..Cli::default()
    })
    .await;
    let addr = app.local_addr();
    let a = PollingClient::connect(addr).await;
    let b = PollingClient::connect(addr).await;
    assert!(join(&b, 1, &["room-x"]).await.contains(&json!("room-x")));

    // A is not in room-x: refused, through the ack.
    let refused = chat(&a, 1, "room-x", "sneaked in").await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not allowed")),
        "{refused}"
    );
    // Nor can A post into B's own-id room, which it does not hold.
    let refused = chat(&a, 2, &b.id, "direct to you").await;
    assert!(refused.get("error").is_some(), "{refused}");
    // A room the REST API put A in but the rules deny.
    let (status, body) = raw_http(
        addr,
        "POST",
        &format!("/api/socket/client/{}/join", a.id),
        r#"{"rooms":["private-1"]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(join(&b, 2, &["private-1"]).await.len() > 1);
    let refused = chat(&a, 3, "private-1", "denied room").await;
    assert!(refused.get("error").is_some(), "{refused}");

    // Once A has joined, the message goes through; it is the first B receives, so none of the
    // refused ones reached it.
    assert!(join(&a, 4, &["room-x"]).await.contains(&json!("room-x")));
    assert_eq!(
        chat(&a, 5, "room-x", "hello room").await,
        json!({"ok": true})
    );
    let received = b.event("chat:message").await;
    assert_eq!(received[0]["message"], "hello room");
    assert_eq!(received[0]["from"], a.id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn get_clients_shows_only_the_callers_id_by_default() {
    let app = start(Cli::default()).await;
    let addr = app.local_addr();
    let a = PollingClient::connect(addr).await;
    let _b = PollingClient::connect(addr).await;
    // Connected, not authenticated: neither listed nor counted.
    let _c = PollingClient::connect_only(addr, None).await;
    a.write(r#"42["get-clients"]"#).await;
    let list = a.event("clients:list").await;
    assert_eq!(list[0], json!({"count": 2, "clients": [a.id]}));
    app.stop().await;

    let app = start(Cli {
        get_clients: Some("all".into()),
        ..Cli::default()
    })
    .await;
    let addr = app.local_addr();
    let a = PollingClient::connect(addr).await;
    let b = PollingClient::connect(addr).await;
    let _c = PollingClient::connect_only(addr, None).await;
    a.write(r#"42["get-clients"]"#).await;
    let list = a.event("clients:list").await;
    assert_eq!(list[0], json!({"count": 2, "clients": [a.id, b.id]}));
    app.stop().await;
}

#[tokio::test]
async fn a_wildcard_subject_joins_only_its_own_literal_room() {
    let app = start(Cli {
        jwt_secret: Some(SECRET.into()),
        room_allow: Some(vec!["user:{sub}".into()]),
        ..Cli::default()
    })
    .await;
    let addr = app.local_addr();
    let auth = json!({ "token": token(json!({"sub": "*", "exp": in_an_hour()})) }).to_string();
    let mallory = PollingClient::connect_only(addr, Some(&auth)).await;
    mallory.write(r#"42["authenticate"]"#).await;
    mallory.event("authenticated").await;
    let rooms = join(&mallory, 1, &["user:victim", "user:*"]).await;
    assert!(!rooms.contains(&json!("user:victim")), "{rooms:?}");
    assert!(rooms.contains(&json!("user:*")), "{rooms:?}");
    app.stop().await;
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every line the subscriber writes starts with the time it was written; a forged one starts
/// with whatever the client put after its newline (text, or a made-up timestamp).
fn assert_no_forged_line(logs: &str) {
    for line in logs.lines() {
        let stamped = line.len() > 4 && line.as_bytes()[..4].iter().all(u8::is_ascii_digit);
        assert!(
            stamped && !line.starts_with("2026-01-01T00:00:00Z"),
            "a client wrote a line of its own: {line:?}\n{logs}"
        );
    }
}

#[tokio::test]
async fn client_text_cannot_forge_log_lines() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = start(Cli {
        jwt_secret: Some(SECRET.into()),
        ..Cli::default()
    })
    .await;
    let addr = app.local_addr();

    // A token whose header names an algorithm with a newline in it.
    let header = base64url(r#"{"alg":"HS256\n2026-01-01T00:00:00Z  INFO FORGED","typ":"JWT"}"#);
    let payload = base64url(r#"{"sub":"x"}"#);
    let auth = json!({ "token": format!("{header}.{payload}.c2ln") }).to_string();
    let client = PollingClient::connect_only(addr, Some(&auth)).await;
    client.write(r#"42["authenticate"]"#).await;
    client.event("unauthenticated").await;

    // A REST topic and room with a newline.
    let (status, body) = raw_http(
        addr,
        "POST",
        "/api/socket/room/r%0AFORGED%20room/send",
        r#"{"topic":"t\nFORGED topic"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // An authenticated client's room name in chat:message.
    let auth = json!({ "token": token(json!({"sub": "alice", "exp": in_an_hour()})) }).to_string();
    let alice = PollingClient::connect_only(addr, Some(&auth)).await;
    alice.write(r#"42["authenticate"]"#).await;
    alice.event("authenticated").await;
    let refused = chat(&alice, 1, "x\nFORGED chat", "hi").await;
    assert!(refused.get("error").is_some(), "{refused}");
    app.stop().await;

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for seen in [
        "token refused",
        "Message emitted",
        "chat message refused",
        "client connected",
        "client authenticated",
    ] {
        assert!(logs.contains(seen), "no {seen:?} line:\n{logs}");
    }
    assert_no_forged_line(&logs);
}

fn base64url(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// The head of the answer to a polling handshake sent from `origin`, lower-cased.
async fn io_handshake_head(addr: std::net::SocketAddr, origin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap().to_string()
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

#[tokio::test]
async fn io_cors_credentials_only_for_listed_origins() {
    // The default: any page may connect, none with the user's cookies.
    let app = start(Cli::default()).await;
    let head = io_handshake_head(app.local_addr(), "http://any.example").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&head, "access-control-allow-credentials"), None);
    app.stop().await;

    let app = start(Cli {
        cors_origins: Some(vec!["http://app.example".into()]),
        ..Cli::default()
    })
    .await;
    let head = io_handshake_head(app.local_addr(), "http://app.example").await;
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("http://app.example")
    );
    assert_eq!(
        header(&head, "access-control-allow-credentials"),
        Some("true")
    );
    let head = io_handshake_head(app.local_addr(), "http://evil.example").await;
    assert_eq!(header(&head, "access-control-allow-origin"), None);
    app.stop().await;
}

/// The whole answer to a polling handshake on `/io`.
async fn io_polling_handshake(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn engine_settings_reach_the_handshake() {
    let app = start(Cli {
        engine: crate::settings::EngineCli {
            ping_interval_ms: Some(1234),
            ping_timeout_ms: Some(567),
            max_http_buffer_size: Some(5000),
            ..Default::default()
        },
        ..Cli::default()
    })
    .await;
    let answer = io_polling_handshake(app.local_addr()).await;
    let open = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let open: Value = serde_json::from_str(open.trim_start_matches('0')).unwrap();
    assert_eq!(open["pingInterval"], 1234, "{answer}");
    assert_eq!(open["pingTimeout"], 567, "{answer}");
    assert_eq!(open["maxPayload"], 5000, "{answer}");
    assert_eq!(open["upgrades"], json!(["websocket"]), "{answer}");
    app.stop().await;

    // WebSocket only: a polling handshake is refused, as socket.io refuses it.
    let app = start(Cli {
        engine: crate::settings::EngineCli {
            transports: Some(vec!["websocket".into()]),
            ..Default::default()
        },
        ..Cli::default()
    })
    .await;
    let answer = io_polling_handshake(app.local_addr()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Transport unknown"), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn the_msgpack_parser_serves_msgpack_clients_only() {
    use ignis_client::{Client, Parser, Transport};
    let app = start(Cli {
        engine: crate::settings::EngineCli {
            parser: Some("msgpack".into()),
            ..Default::default()
        },
        ..Cli::default()
    })
    .await;
    let url = format!("http://{}", app.local_addr());
    let connect = |parser| {
        Client::builder(url.clone())
            .path("/io")
            .transports([Transport::Websocket])
            .parser(parser)
            .reconnection(false)
            .timeout(std::time::Duration::from_secs(3))
            .connect("/")
    };
    let socket = connect(Parser::Msgpack)
        .await
        .expect("a msgpack client connects");
    assert!(socket.connected());
    socket.disconnect();
    assert!(
        connect(Parser::Json).await.is_err(),
        "a JSON client cannot read the server's msgpack packets"
    );
    app.stop().await;
}
