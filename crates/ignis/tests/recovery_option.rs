//! The component's connection-state-recovery option reaches the Socket.IO server: with it, the
//! CONNECT answer carries the private session id a client needs to recover.

use std::net::SocketAddr;
use std::time::Duration;

use ignis::socketio::{AuthenticateHandler, ServerOptions, SocketIoComponent, keys};
use ignis::{AppConfig, Application};
use ignis_socketio::RecoveryConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request on its own connection; the body of the answer.
async fn http(addr: SocketAddr, method: &str, query: &str, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} /io/?EIO=4&transport=polling{query} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("an answer in time")
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let (_, body) = response.split_once("\r\n\r\n").expect("a body");
    body.to_string()
}

/// The CONNECT answer of a fresh polling session to the main namespace.
async fn connect_answer(recovery: Option<RecoveryConfig>) -> String {
    let running = Application::new(AppConfig {
        name: "test".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    })
    .bind(
        keys::SERVER_OPTIONS,
        ServerOptions {
            connection_state_recovery: recovery,
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
    .unwrap();
    let addr = running.local_addr();
    let open = http(addr, "GET", "", "").await;
    let sid = open
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an open packet with a sid")
        .to_string();
    assert_eq!(http(addr, "POST", &format!("&sid={sid}"), "40").await, "ok");
    let answer = http(addr, "GET", &format!("&sid={sid}"), "").await;
    running.stop().await;
    answer
}

#[tokio::test]
async fn with_recovery_the_connect_answer_carries_a_private_id() {
    let on = connect_answer(Some(RecoveryConfig::default())).await;
    assert!(on.starts_with("40{"), "{on}");
    assert!(on.contains("\"pid\":\""), "{on}");

    let off = connect_answer(None).await;
    assert!(off.starts_with("40{"), "{off}");
    assert!(!off.contains("pid"), "{off}");
}
