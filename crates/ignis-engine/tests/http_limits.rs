//! The HTTP side of the engine's connections under abuse: a body over the limit sent whole
//! without waiting for `100 Continue`, a body that never finishes, and the per-IP limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
mod common;

use common::Quiet;
use ignis_engine::{Engine, EngineConfig, HttpLimits, ResponseBody, Rewind, TimedBody, serve_http};

/// Serves `config`; `/api/` answers 413 at once without reading the body (as a REST API with a
/// declared-length limit does), `/read/` reads the whole body first.
async fn serve(config: EngineConfig) -> (u16, Engine<Quiet>) {
    let engine = Engine::new(config, Quiet);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = engine.clone();
    tokio::spawn(
        serving.serve_with(listener, |req: Request<TimedBody>| async move {
            if req.uri().path().starts_with("/read/") {
                use http_body_util::BodyExt;
                let read = req.into_body().collect().await;
                let status = if read.is_ok() { 200 } else { 400 };
                let mut res = Response::new(ResponseBody::from(Bytes::from_static(b"read")));
                *res.status_mut() = StatusCode::from_u16(status).unwrap();
                return res;
            }
            let mut res = Response::new(ResponseBody::from("{}"));
            *res.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            res
        }),
    );
    (port, engine)
}

/// Sends a request head and its whole body before reading anything, as Node's `http` does;
/// returns what the server answered, or the error that cut the exchange.
fn post_whole(port: u16, path: &str, body_len: usize) -> Result<String, std::io::Error> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
         Content-Length: {body_len}\r\n\r\n"
    )?;
    let chunk = vec![b'x'; 1 << 20];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n])?;
        left -= n;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_sent_whole_gets_its_413() {
    let config = EngineConfig {
        max_http_buffer_size: 1000,
        ..EngineConfig::default()
    };
    let (port, engine) = serve(config).await;
    // More than the kernel's buffers on both sides take: the client is still writing when the
    // server has answered.
    let len = 24 << 20;
    let paths = [
        "/api/broadcast".to_string(),
        // A polling POST over the limit (a sid that exists is not needed to be refused: an
        // unknown one is answered 400 without reading, which is the same case).
        "/engine.io/?EIO=4&transport=polling&sid=unknown".to_string(),
    ];
    for path in paths {
        let answer = tokio::task::spawn_blocking(move || post_whole(port, &path, len))
            .await
            .unwrap()
            .expect("the answer, not a reset");
        assert!(
            answer.starts_with("HTTP/1.1 413") || answer.starts_with("HTTP/1.1 400"),
            "{answer}"
        );
        // The connection ends after it (the body stays unread): a keep-alive client must be
        // told, or it sends its next request on a connection that is closing.
        if answer.starts_with("HTTP/1.1 413") {
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("\r\nconnection: close\r\n"),
                "{answer}"
            );
        }
    }
    assert!(engine.abuse_counters().bodies_too_large >= 1);
}

/// Sends `request` and reads until the server closes the connection; what it answered.
fn exchange(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) => panic!("no end ({e}) after {:?}", String::from_utf8_lossy(&answer)),
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// Opens a polling session; its id.
fn polling_handshake(port: u16) -> String {
    let answer = exchange(
        port,
        "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let at = answer.find("\"sid\":\"").expect("a sid") + 7;
    answer[at..at + 20].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_is_answered_408() {
    let config = EngineConfig {
        body_timeout: Duration::from_millis(300),
        ..EngineConfig::default()
    };
    let (port, engine) = serve(config).await;
    let answers = tokio::task::spawn_blocking(move || {
        let sid = polling_handshake(port);
        // 9 bytes of 100 000, then nothing: the application's body, and a polling POST.
        let head = |path: &str| {
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
                 Content-Length: 100000\r\n\r\n4hello123"
            )
        };
        let polling = exchange(
            port,
            &head(&format!("/engine.io/?EIO=4&transport=polling&sid={sid}")),
        );
        // The fallback of `serve_with`, which reads its body whole.
        let fallback = exchange(port, &head("/read/x"));
        (polling, fallback)
    })
    .await
    .unwrap();
    assert!(answers.0.starts_with("HTTP/1.1 408"), "{}", answers.0);
    assert!(answers.1.starts_with("HTTP/1.1 408"), "{}", answers.1);
    assert_eq!(engine.abuse_counters().body_timeouts, 2);

    // An application's accept loop serving its own routes with `serve_http`.
    let limits = HttpLimits::new(Duration::from_secs(30), Duration::from_millis(300));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let serving = limits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let limits = serving.clone();
            tokio::spawn(async move {
                let service = |req: http::Request<TimedBody>| async move {
                    use http_body_util::BodyExt;
                    // What an application does with a body: reads it whole, and answers 400
                    // when that fails.
                    let status = match req.into_body().collect().await {
                        Ok(_) => StatusCode::OK,
                        Err(_) => StatusCode::BAD_REQUEST,
                    };
                    let mut res = Response::new(ResponseBody::empty());
                    *res.status_mut() = status;
                    res
                };
                serve_http(
                    Rewind::new(stream),
                    &limits,
                    service,
                    std::future::pending(),
                )
                .await;
            });
        }
    });
    let answer = tokio::task::spawn_blocking(move || {
        exchange(
            port,
            "POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"topic\":",
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
}

/// Connects and reads: the end of the stream (or a reset) at once when the server closed the
/// connection as it accepted it.
fn refused(port: u16) -> bool {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_limited() {
    let config = EngineConfig {
        max_connections_per_ip: 2,
        ..EngineConfig::default()
    };
    let (port, engine) = serve(config).await;
    tokio::task::spawn_blocking(move || {
        // Two connections that say nothing yet hold the address's two places.
        let first = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _second = TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The third is closed as it is accepted: it reads the end, with no answer.
        assert!(refused(port));
        // Once one closes, its place is free again (the server sees the close in its own
        // time: try until it does).
        drop(first);
        let answered = (0..200).any(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let _ = stream.write_all(b"GET /api/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            if answer.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
            }
            !answer.is_empty()
        });
        assert!(answered, "the place of the closed connection was not freed");
    })
    .await
    .unwrap();
    assert!(engine.abuse_counters().ip_connections_refused >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshakes_per_ip_are_limited() {
    let config = EngineConfig {
        handshakes_per_second_per_ip: 1,
        handshake_burst_per_ip: 2,
        ..EngineConfig::default()
    };
    let (port, engine) = serve(config).await;
    let answers = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|_| {
                exchange(
                    port,
                    "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\
                     Connection: close\r\n\r\n",
                )
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(answers[0].starts_with("HTTP/1.1 200"), "{}", answers[0]);
    let refused: Vec<_> = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 429"))
        .collect();
    assert!(!refused.is_empty(), "{answers:?}");
    assert!(refused[0].ends_with(r#"{"code":6,"message":"Too many requests"}"#));
    assert_eq!(
        engine.abuse_counters().ip_handshakes_refused,
        refused.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgraded_by_hyper_keeps_its_place() {
    let config = EngineConfig {
        max_connections_per_ip: 1,
        ..EngineConfig::default()
    };
    let (port, engine) = serve(config).await;
    tokio::task::spawn_blocking(move || {
        let mut ws = TcpStream::connect(("127.0.0.1", port)).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // The head in two parts: the first read does not hold it whole, so hyper serves the
        // handshake and hands the socket to a task of its own.
        ws.write_all(b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        ws.write_all(
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .unwrap();
        let mut head = [0u8; 12];
        ws.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101");
        // The WebSocket still holds the address's one place once hyper is done with it.
        std::thread::sleep(Duration::from_millis(100));
        assert!(refused(port), "a second connection was let in");
        drop(ws);
    })
    .await
    .unwrap();
    assert!(engine.abuse_counters().ip_connections_refused >= 1);
}
