//! Bad input from a server: malformed packets, an unexpected close, a slow or silent server.
//! Every case must end in a clear error or a reconnection, never a panic or a hang.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{until, within};
use ignis_client::{
    Client, ClientBuilder, ConnectError, DisconnectReason, Error, Transport, TransportError,
};
use ignis_ws::{Decoder, Message, OpCode, Role, accept_key, server_frame};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const OPEN: &str =
    r#"0{"sid":"s1","upgrades":[],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#;

/// The server end of a WebSocket, driven by hand.
struct RawWs {
    stream: TcpStream,
    decoder: Decoder,
    buf: Vec<u8>,
}

impl RawWs {
    async fn accept(listener: &TcpListener) -> RawWs {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let head = read_head(&mut stream).await;
        let key = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("sec-websocket-key")
                    .then(|| value.trim().to_owned())
            })
            .expect("key");
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            accept_key(key.as_bytes())
        );
        stream.write_all(response.as_bytes()).await.expect("write");
        RawWs {
            stream,
            decoder: Decoder::new(Role::Server, 1 << 20),
            buf: Vec::new(),
        }
    }

    async fn send(&mut self, text: &str) {
        let _ = self
            .stream
            .write_all(&server_frame(OpCode::Text, text.as_bytes()))
            .await;
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// The next text message from the client; `None` when it closed.
    async fn recv(&mut self) -> Option<String> {
        loop {
            let decoded = self.decoder.decode(&self.buf).ok()?;
            if decoded.consumed > 0 {
                self.buf.drain(..decoded.consumed);
                match decoded.message {
                    Some(Message::Text(t)) => {
                        return Some(String::from_utf8_lossy(&t).into_owned());
                    }
                    Some(Message::Close(_)) => return None,
                    _ => continue,
                }
            }
            let mut chunk = [0u8; 4096];
            let n = self.stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Opens the Engine.IO session and accepts the namespace connection.
    async fn open_and_connect(listener: &TcpListener) -> RawWs {
        let mut ws = RawWs::accept(listener).await;
        ws.send(OPEN).await;
        assert_eq!(ws.recv().await.as_deref(), Some("40"));
        ws.send(r#"40{"sid":"abc"}"#).await;
        ws
    }
}

async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

async fn listener() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn client(port: u16) -> ClientBuilder {
    Client::builder(format!("http://127.0.0.1:{port}"))
        .transports([Transport::Websocket])
        .per_message_deflate(false)
        .timeout(Duration::from_millis(500))
        .reconnection_delay(Duration::from_millis(20))
        .reconnection_delay_max(Duration::from_millis(50))
}

/// Connects, lets the server misbehave, and checks that the socket reports `reason` and then
/// reconnects (the raw server sees a second connection).
async fn expect_reconnect_after(misbehave: impl AsyncFnOnce(&mut RawWs), reason: DisconnectReason) {
    let (listener, port) = listener().await;
    let manager = client(port).build().unwrap();
    let socket = manager.socket("/").unwrap();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&reasons);
    socket.on_disconnect(move |reason| r.lock().push(reason));
    let connect = tokio::spawn({
        let socket = socket.clone();
        async move { socket.connect().await }
    });
    let mut ws = within("first connection", RawWs::open_and_connect(&listener)).await;
    within("connected", connect).await.unwrap().unwrap();
    misbehave(&mut ws).await;
    until("disconnect", || !reasons.lock().is_empty()).await;
    assert_eq!(reasons.lock()[0], reason);
    // A reconnection attempt arrives.
    let second = within("reconnection", RawWs::accept(&listener)).await;
    drop(second);
    socket.disconnect();
}

#[tokio::test]
async fn malformed_socketio_packets_reconnect() {
    let cases = [
        "42[",
        "42{}",
        "4abc",
        "9",
        "42[\"connect\"]",
        "45-[\"a\"]",
        "43",
    ];
    for case in cases {
        expect_reconnect_after(
            async |ws: &mut RawWs| ws.send(&format!("4{case}")).await,
            DisconnectReason::ParseError,
        )
        .await;
    }
}

#[tokio::test]
async fn malformed_engineio_packets_reconnect() {
    for case in ["9", "", "x", "b!!!"] {
        expect_reconnect_after(
            async |ws: &mut RawWs| ws.send(case).await,
            DisconnectReason::ParseError,
        )
        .await;
    }
}

#[tokio::test]
async fn broken_websocket_frames_reconnect() {
    let cases: [&[u8]; 3] = [
        // Masked frame from a server.
        b"\x81\x85\x01\x02\x03\x04abcde",
        // Reserved bits.
        b"\xf1\x01a",
        // Invalid UTF-8 in a text frame.
        b"\x81\x02\xff\xfe",
    ];
    for case in cases {
        expect_reconnect_after(
            async |ws: &mut RawWs| ws.send_raw(case).await,
            DisconnectReason::ParseError,
        )
        .await;
    }
}

#[tokio::test]
async fn unexpected_close_reconnects() {
    expect_reconnect_after(
        async |ws: &mut RawWs| {
            let _ = ws.stream.shutdown().await;
        },
        DisconnectReason::TransportClose,
    )
    .await;
    expect_reconnect_after(
        async |ws: &mut RawWs| ws.send("1").await,
        DisconnectReason::TransportClose,
    )
    .await;
}

#[tokio::test]
async fn silent_server_is_a_ping_timeout() {
    // The open packet promises a ping every 300 ms (+200 ms grace); none comes.
    expect_reconnect_after(async |_ws: &mut RawWs| {}, DisconnectReason::PingTimeout).await;
}

#[tokio::test]
async fn pings_are_answered() {
    let (listener, port) = listener().await;
    let socket = client(port).build().unwrap().socket("/").unwrap();
    let connect = tokio::spawn({
        let socket = socket.clone();
        async move { socket.connect().await }
    });
    let mut ws = within("connection", RawWs::open_and_connect(&listener)).await;
    within("connected", connect).await.unwrap().unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        ws.send("2").await;
        assert_eq!(within("pong", ws.recv()).await.as_deref(), Some("3"));
    }
    // Past pingInterval + pingTimeout from the open, still connected thanks to the pings.
    assert!(socket.connected());
    socket.disconnect();
}

#[tokio::test]
async fn silent_before_the_handshake_times_out() {
    let (listener, port) = listener().await;
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }
    });
    for transports in [vec![Transport::Websocket], vec![Transport::Polling]] {
        let err = within(
            "connect error",
            client(port)
                .transports(transports)
                .reconnection(false)
                .connect("/"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Connect(
                    ConnectError::Transport(TransportError::Timeout) | ConnectError::Timeout
                )
            ),
            "{err:?}"
        );
    }
    hold.abort();
}

#[tokio::test]
async fn invalid_handshakes_are_clear_errors() {
    // The first message, and what the error must mention.
    let cases = [
        ("0{not json", "invalid open packet"),
        ("4hello", "expected the open packet"),
        ("0{\"sid\":1}", "invalid open packet"),
    ];
    for (first, expected) in cases {
        let (listener, port) = listener().await;
        let server = tokio::spawn(async move {
            let mut ws = RawWs::accept(&listener).await;
            ws.send(first).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let err = within(
            "connect error",
            client(port).reconnection(false).connect("/"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{first}: {err}");
        server.abort();
    }
}

#[tokio::test]
async fn bad_http_answers_are_clear_errors() {
    let cases = [
        (
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
            "400",
        ),
        ("HTTP/1.1 200 OK\r\n\r\n", "unexpected HTTP status 200"),
        ("not http at all\r\n\r\n", "invalid response"),
        (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: nope\r\n\r\n",
            "Sec-WebSocket-Accept",
        ),
    ];
    for (response, expected) in cases {
        let (listener, port) = listener().await;
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_head(&mut stream).await;
            stream.write_all(response.as_bytes()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let err = within(
            "connect error",
            client(port).reconnection(false).connect("/"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{response:?}: {err}");
        server.abort();
    }
    // Polling: an error status and a body that is not a payload.
    let polling_cases = [
        (
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops",
            "500",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz",
            "unknown packet type",
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0{",
            "HTTP error",
        ),
    ];
    for (response, expected) in polling_cases {
        let (listener, port) = listener().await;
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_head(&mut stream).await;
            stream.write_all(response.as_bytes()).await.unwrap();
            let _ = stream.shutdown().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        let err = within(
            "connect error",
            client(port)
                .transports([Transport::Polling])
                .reconnection(false)
                .connect("/"),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{response:?}: {err}");
        server.abort();
    }
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let (listener, port) = listener().await;
    let socket = client(port)
        .max_message_size(1024)
        .build()
        .unwrap()
        .socket("/")
        .unwrap();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&reasons);
    socket.on_disconnect(move |reason| r.lock().push(reason));
    let connect = tokio::spawn({
        let socket = socket.clone();
        async move { socket.connect().await }
    });
    let mut ws = within("connection", RawWs::open_and_connect(&listener)).await;
    within("connected", connect).await.unwrap().unwrap();
    ws.send(&format!("42[\"big\",\"{}\"]", "x".repeat(2000)))
        .await;
    until("disconnect", || !reasons.lock().is_empty()).await;
    assert_eq!(reasons.lock()[0], DisconnectReason::ParseError);
    socket.disconnect();
}

#[tokio::test]
async fn refused_connect_packets_are_errors() {
    let cases = [
        (r#"44{"message":"nope","data":{"x":1}}"#, "nope"),
        (r#"44"old style""#, "old style"),
        ("40", "no payload"),
        (r#"40{"nosid":1}"#, "no sid"),
    ];
    for (answer, expected) in cases {
        let (listener, port) = listener().await;
        let server = tokio::spawn(async move {
            let mut ws = RawWs::accept(&listener).await;
            ws.send(OPEN).await;
            let _ = ws.recv().await;
            ws.send(answer).await;
            // Keep answering pings until the client leaves.
            while ws.recv().await.is_some() {}
        });
        let err = within(
            "connect error",
            client(port).reconnection(false).connect("/"),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Connect(ConnectError::Refused { message, .. }) if message.contains(expected)),
            "{answer}: {err:?}"
        );
        within("server done", server).await.unwrap();
    }
}
