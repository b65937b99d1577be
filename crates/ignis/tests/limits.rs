//! The application's own connections get the engine's connection limits: an answer to a body
//! over the limit reaches a client that sends the body whole before reading.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use ignis::{AppConfig, Application};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_413_reaches_a_client_that_sends_its_whole_body_first() {
    // Refused from its declared length, before anything reads it, as the REST API does.
    let routes = Router::new().route("/api/big", post(|| async { StatusCode::PAYLOAD_TOO_LARGE }));
    let running = Application::new(AppConfig {
        port: 0,
        ..AppConfig::default()
    })
    .routes(routes)
    .start()
    .await
    .unwrap();
    let port = running.local_addr().port();
    let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        // More than both sides' kernel buffers take: still sending when the answer comes.
        let len = 24 << 20;
        write!(
            stream,
            "POST /api/big HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"
        )?;
        stream.write_all(&vec![b'x'; len])?;
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer)?;
        Ok(String::from_utf8_lossy(&answer[..n]).into_owned())
    })
    .await
    .unwrap()
    .expect("the answer, not a reset");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    running.stop().await;
}
