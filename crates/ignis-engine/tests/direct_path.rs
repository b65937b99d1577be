//! The direct path: a connection that opens with a WebSocket handshake for the engine is served
//! without hyper, with the same checks and answers; everything else still reaches hyper.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ignis_engine::{
    CloseReason, Cors, Engine, EngineConfig, Handler, Handoff, PerMessageDeflate, RequestInfo,
    Socket, read_first,
};
use ignis_proto::engineio::Data;
use ignis_ws::{Decoder, Message, OpCode, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The accept key of [`KEY`] (RFC 6455 §1.3).
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

enum Event {
    Opened(Arc<Socket<()>>),
    Message(Data),
    Closed(CloseReason),
}

struct Recorder(mpsc::UnboundedSender<Event>);

impl Handler for Recorder {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, socket: &Arc<Socket<()>>, _request: &RequestInfo) {
        let _ = self.0.send(Event::Opened(Arc::clone(socket)));
    }
    fn on_message(&self, _socket: &Arc<Socket<()>>, data: Data) {
        let _ = self.0.send(Event::Message(data));
    }
    fn on_close(&self, _socket: &Arc<Socket<()>>, reason: CloseReason) {
        let _ = self.0.send(Event::Closed(reason));
    }
}

struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    async fn next(&mut self) -> Event {
        timeout(Duration::from_secs(5), self.0.recv())
            .await
            .expect("an event in time")
            .expect("the engine is alive")
    }

    async fn opened(&mut self) -> Arc<Socket<()>> {
        match self.next().await {
            Event::Opened(socket) => socket,
            _ => panic!("expected a session to open"),
        }
    }

    async fn message(&mut self) -> Data {
        loop {
            match self.next().await {
                Event::Message(data) => return data,
                Event::Opened(_) => continue,
                Event::Closed(reason) => panic!("closed ({reason:?}) instead of a message"),
            }
        }
    }
}

fn engine(config: EngineConfig) -> (Engine<Recorder>, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = EngineConfig {
        path: "/io/".into(),
        ..config
    };
    (Engine::new(config, Recorder(tx)), Events(rx))
}

/// Serves `config` with [`Engine::serve`] (hyper behind the direct path); returns the port.
async fn serve(config: EngineConfig) -> (u16, Events) {
    let (engine, events) = engine(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(engine.serve(listener));
    (port, events)
}

fn handshake(query: &str, extra: &str) -> String {
    format!(
        "GET /io/?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A masked client text frame.
fn client_text(text: &str) -> Vec<u8> {
    ignis_ws::encode_frame(OpCode::Text, text.as_bytes(), false, Some([1, 2, 3, 4])).to_vec()
}

/// A raw client: reads one HTTP head, then WebSocket frames.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
    decoder: Decoder,
}

impl Raw {
    async fn connect(port: u16) -> Raw {
        Raw {
            stream: TcpStream::connect(("127.0.0.1", port)).await.unwrap(),
            buf: Vec::new(),
            decoder: Decoder::new(Role::Client, 1 << 20),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more; false at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        let n = timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
            .await
            .expect("data in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response head, `date` value blanked, and its body (by `content-length`).
    async fn response(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end + 4].to_vec()).unwrap();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                while self.buf.len() < end + 4 + len {
                    assert!(self.fill().await, "the body is cut short");
                }
                let body = String::from_utf8(self.buf[end + 4..end + 4 + len].to_vec()).unwrap();
                self.buf.drain(..end + 4 + len);
                let head = head
                    .lines()
                    .map(|l| {
                        if l.starts_with("date: ") {
                            "date: *"
                        } else {
                            l
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n");
                return (head, body);
            }
            assert!(self.fill().await, "the connection closed before an answer");
        }
    }

    /// The next WebSocket message, or None once the server closed.
    async fn message(&mut self) -> Option<Message> {
        loop {
            let decoded = self.decoder.decode(&self.buf).unwrap();
            if decoded.consumed > 0 {
                self.buf.drain(..decoded.consumed);
                if let Some(m) = decoded.message {
                    return Some(m);
                }
                continue;
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    async fn text(&mut self) -> String {
        match self.message().await {
            Some(Message::Text(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Whether the server closes the connection (reads nothing more but the end).
    async fn closed(&mut self) -> bool {
        !self.fill().await && self.buf.is_empty()
    }
}

fn upgrade_head(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {ACCEPT}\r\n{extra}date: *\r\n"
    )
}

#[tokio::test]
async fn a_websocket_handshake_is_served_on_the_connection_task() {
    let (engine, mut events) = engine(EngineConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let first = read_first(stream).await.expect("the client sends");
        // Served to the end right here: no hyper, no other task.
        engine.serve_direct(first, peer, |_| {}).await
    });
    let mut client = Raw::connect(port).await;
    client
        .send(handshake("EIO=4&transport=websocket", "").as_bytes())
        .await;
    let (head, body) = client.response().await;
    assert_eq!(head, upgrade_head(""));
    assert_eq!(body, "");
    let open = client.text().await;
    assert!(open.starts_with(r#"0{"sid":""#), "{open}");
    assert!(open.contains(r#""upgrades":[]"#), "{open}");
    let socket = events.opened().await;
    assert!(open.contains(socket.id().as_str()), "{open}");

    client.send(&client_text("4hello")).await;
    assert_eq!(events.message().await, Data::Text("hello".into()));
    socket.send(Data::Text("back".into())).unwrap();
    assert_eq!(client.text().await, "4back");

    drop(client);
    let handoff = timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(handoff, Handoff::Done), "{handoff:?}");
}

#[tokio::test]
async fn frames_sent_with_the_handshake_are_handled_at_once() {
    let (port, mut events) = serve(EngineConfig::default()).await;
    let mut client = Raw::connect(port).await;
    let mut bytes = handshake("EIO=4&transport=websocket", "").into_bytes();
    bytes.extend_from_slice(&client_text("4early"));
    bytes.extend_from_slice(&client_text("4bird"));
    // One write, so that (on loopback) the frames arrive with the head.
    client.send(&bytes).await;
    events.opened().await;
    // Handled without the client sending anything more.
    assert_eq!(events.message().await, Data::Text("early".into()));
    assert_eq!(events.message().await, Data::Text("bird".into()));
    let (head, _) = client.response().await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
}

#[tokio::test]
async fn other_requests_go_to_hyper_with_what_was_read() {
    let (engine, _events) = engine(EngineConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let request = "GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n";
    let server = tokio::spawn(async move {
        let (stream, peer) = listener.accept().await.unwrap();
        let first = read_first(stream).await.expect("the client sends");
        engine.serve_direct(first, peer, |_| {}).await
    });
    let mut client = Raw::connect(port).await;
    client.send(request.as_bytes()).await;
    let Handoff::Http(rewind) = server.await.unwrap() else {
        panic!("a polling request is hyper's");
    };
    let (_stream, unread) = rewind.into_parts();
    assert_eq!(unread, Bytes::from(request));
}

#[tokio::test]
async fn polling_and_other_paths_on_the_same_port_are_still_served() {
    let (port, mut events) = serve(EngineConfig::default()).await;
    let mut client = Raw::connect(port).await;
    client
        .send(b"GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (head, body) = client.response().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(body.starts_with(r#"0{"sid":""#), "{body}");
    assert!(body.contains(r#""upgrades":["websocket"]"#), "{body}");
    events.opened().await;
    // Keep-alive: the next request on the connection, for another path.
    client
        .send(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (head, body) = client.response().await;
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    assert_eq!(body, "Not Found");
}

#[tokio::test]
async fn bad_handshakes_are_refused_as_before() {
    let allow_request: ignis_engine::AllowRequest = Arc::new(|parts| {
        if parts.headers.contains_key("x-refuse") {
            Err("no".into())
        } else {
            Ok(())
        }
    });
    let (port, _events) = serve(EngineConfig {
        allow_request: Some(allow_request),
        ..EngineConfig::default()
    })
    .await;
    let json = |status: &str, body: &str| {
        (
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 date: *\r\n",
                body.len()
            ),
            body.to_string(),
        )
    };
    let ws = "EIO=4&transport=websocket";
    let bad_request = json("400 Bad Request", r#"{"code":3,"message":"Bad request"}"#);
    let cases = [
        // Wrong version, no key.
        (
            handshake(ws, "").replace("Version: 13", "Version: 12"),
            bad_request.clone(),
        ),
        (
            handshake(ws, "").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            bad_request.clone(),
        ),
        (
            handshake("EIO=3&transport=websocket", ""),
            json(
                "400 Bad Request",
                r#"{"code":5,"message":"Unsupported protocol version"}"#,
            ),
        ),
        (
            handshake(ws, "X-Refuse: 1\r\n"),
            json("403 Forbidden", r#"{"code":4,"message":"Forbidden"}"#),
        ),
    ];
    for (request, expected) in cases {
        let mut client = Raw::connect(port).await;
        client.send(request.as_bytes()).await;
        assert_eq!(client.response().await, expected, "{request}");
        // The connection stays open for the next request (as hyper keeps it).
        client
            .send(b"GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let (head, _) = client.response().await;
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }

    // Refusals of a WebSocket in plain text close the connection.
    let mut client = Raw::connect(port).await;
    client
        .send(handshake("EIO=4&transport=websocket&sid=nope", "").as_bytes())
        .await;
    assert_eq!(
        client.response().await,
        (
            "HTTP/1.1 400 Bad Request\r\ncontent-type: text/html\r\nconnection: close\r\n\
             content-length: 18\r\ndate: *\r\n"
                .to_string(),
            "Session ID unknown".to_string()
        )
    );
    assert!(client.closed().await, "the connection is closed");
}

#[tokio::test]
async fn cors_and_compression_are_answered_on_the_direct_path() {
    let (port, _events) = serve(EngineConfig {
        cors: Some(Cors {
            credentials: true,
            ..Cors::default()
        }),
        per_message_deflate: Some(PerMessageDeflate {
            server_max_window_bits: 10,
            ..PerMessageDeflate::default()
        }),
        ..EngineConfig::default()
    })
    .await;
    let mut client = Raw::connect(port).await;
    let extra = "Origin: http://a.test\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    client
        .send(handshake("EIO=4&transport=websocket", extra).as_bytes())
        .await;
    let (head, _) = client.response().await;
    assert_eq!(head, upgrade_head(CORS_AND_DEFLATE_101));
    assert!(client.text().await.starts_with("0{"));

    // Hyper writes the same head for a handshake that arrives in pieces.
    let mut client = Raw::connect(port).await;
    let request = handshake("EIO=4&transport=websocket", extra);
    let (a, b) = request.split_at(30);
    client.send(a.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.send(b.as_bytes()).await;
    let (head, _) = client.response().await;
    assert_eq!(head, upgrade_head(CORS_AND_DEFLATE_101));
    assert!(client.text().await.starts_with("0{"));
}

const CORS_AND_DEFLATE_101: &str = "sec-websocket-extensions: permessage-deflate; server_no_context_takeover; \
     client_no_context_takeover; server_max_window_bits=10\r\n\
     access-control-allow-origin: http://a.test\r\nvary: Origin\r\n\
     access-control-allow-credentials: true\r\n";

#[tokio::test]
async fn an_upgrade_from_polling_is_probed_on_the_direct_path() {
    let (port, mut events) = serve(EngineConfig::default()).await;
    let mut polling = Raw::connect(port).await;
    polling
        .send(b"GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (_, body) = polling.response().await;
    let socket = events.opened().await;
    assert!(body.contains(socket.id().as_str()));
    let query = format!("EIO=4&transport=websocket&sid={}", socket.id());

    let mut ws = Raw::connect(port).await;
    ws.send(handshake(&query, "").as_bytes()).await;
    let (head, _) = ws.response().await;
    assert_eq!(head, upgrade_head(""));
    ws.send(&client_text("2probe")).await;
    assert_eq!(ws.text().await, "3probe");
    ws.send(&client_text("5")).await;
    // Upgraded: messages to the session now take the WebSocket.
    for _ in 0..100 {
        if socket.transport() == ignis_engine::TransportKind::WebSocket {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(socket.transport(), ignis_engine::TransportKind::WebSocket);
    socket.send(Data::Text("over ws".into())).unwrap();
    assert_eq!(ws.text().await, "4over ws");

    // A second WebSocket for the same session completes its handshake and is closed at once.
    let mut second = Raw::connect(port).await;
    second.send(handshake(&query, "").as_bytes()).await;
    let (head, _) = second.response().await;
    assert_eq!(head, upgrade_head(""));
    assert!(matches!(second.message().await, Some(Message::Close(_))));
    assert!(socket.is_open());
}

#[tokio::test]
async fn heads_beyond_the_first_read_go_to_hyper_and_its_limits() {
    let (port, mut events) = serve(EngineConfig::default()).await;
    // Longer than the direct path reads: hyper still upgrades it.
    let cookie = format!("Cookie: c={}\r\n", "x".repeat(40 * 1024));
    let mut client = Raw::connect(port).await;
    client
        .send(handshake("EIO=4&transport=websocket", &cookie).as_bytes())
        .await;
    let (head, _) = client.response().await;
    assert_eq!(head, upgrade_head(""));
    assert!(client.text().await.starts_with("0{"));
    events.opened().await;
    // Frames after a head that hyper read are not lost either.
    client.send(&client_text("4via hyper")).await;
    assert_eq!(events.message().await, Data::Text("via hyper".into()));

    // Past hyper's limit: 431, as before.
    let huge = format!("Cookie: c={}\r\n", "x".repeat(1024 * 1024));
    let mut client = Raw::connect(port).await;
    let _ = client
        .stream
        .write_all(handshake("EIO=4&transport=websocket", &huge).as_bytes())
        .await;
    let (head, _) = client.response().await;
    assert!(
        head.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{head}"
    );
}

#[tokio::test]
async fn a_handshake_in_pieces_is_upgraded_by_hyper() {
    let (port, mut events) = serve(EngineConfig::default()).await;
    let mut client = Raw::connect(port).await;
    let request = handshake("EIO=4&transport=websocket", "");
    let (a, b) = request.split_at(30);
    client.send(a.as_bytes()).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut rest = b.as_bytes().to_vec();
    rest.extend_from_slice(&client_text("4after"));
    client.send(&rest).await;
    let (head, _) = client.response().await;
    assert_eq!(head, upgrade_head(""));
    events.opened().await;
    assert_eq!(events.message().await, Data::Text("after".into()));
}

/// An application that embeds the engine in its own hyper server: upgrades still work.
#[tokio::test]
async fn handle_keeps_working_behind_another_server() {
    let (engine, mut events) = engine(EngineConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let engine = engine.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let engine = engine.clone();
                        async move { Ok::<_, std::convert::Infallible>(engine.handle(req).await) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let mut client = Raw::connect(port).await;
    let mut bytes = handshake("EIO=4&transport=websocket", "").into_bytes();
    bytes.extend_from_slice(&client_text("4embedded"));
    client.send(&bytes).await;
    let (head, _) = client.response().await;
    assert_eq!(head, upgrade_head(""));
    assert!(client.text().await.starts_with("0{"));
    events.opened().await;
    assert_eq!(events.message().await, Data::Text("embedded".into()));
}

#[tokio::test]
async fn a_bad_frame_sent_with_the_handshake_ends_the_session() {
    let (port, mut events) = serve(EngineConfig::default()).await;
    let mut client = Raw::connect(port).await;
    let mut bytes = handshake("EIO=4&transport=websocket", "").into_bytes();
    // Unmasked: a protocol error from a client.
    bytes.extend_from_slice(&ignis_ws::encode_frame(OpCode::Text, b"4x", false, None));
    client.send(&bytes).await;
    events.opened().await;
    match events.next().await {
        Event::Closed(reason) => assert_eq!(reason, CloseReason::TransportError),
        _ => panic!("the session must close"),
    }
    let (head, _) = client.response().await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        client.text().await.starts_with("0{"),
        "the open packet first"
    );
    match client.message().await {
        Some(Message::Close(Some(frame))) => {
            assert_eq!(frame.code, ignis_ws::CloseCode::PROTOCOL_ERROR)
        }
        other => panic!("expected a close frame with a code, got {other:?}"),
    }
}
