//! `ignis-server` processes on Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`) with
//! `--redis-mode streams` and a key of their own: a REST send answers once its entry is in the
//! stream, so that sends answered one after another, through different nodes, reach a client
//! of a third node in that order; and a send answers 503, not 200 and not never, when Redis is
//! gone.
//!
//! The Socket.IO client speaks Engine.IO long-polling over plain HTTP/1.1.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An `ignis-server` process and its port; killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ignis-server"))
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server binary runs");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Keeps reading after the port, so that the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(port) = line.strip_prefix("listening on ") {
                let _ = tx.send(port.trim().parse::<u16>().ok());
            }
        }
    });
    let mut server = Server { port: 0, child };
    server.port = rx
        .recv_timeout(Duration::from_secs(20))
        .ok()
        .flatten()
        .expect("the server listens within 20 s");
    server
}

/// One HTTP/1.1 request on a connection of its own; the status and body of the answer.
async fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        if body.starts_with('{') {
            "application/json"
        } else {
            "text/plain;charset=UTF-8"
        },
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(40), stream.read_to_end(&mut raw))
        .await
        .expect("an answer within 40 s")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn unchunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        body.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    body
}

/// A Socket.IO client on the long-polling transport.
struct PollingClient {
    port: u16,
    sid: String,
    /// The id of the socket in the main namespace.
    id: String,
    /// Events received and not looked at yet.
    pending: Vec<(String, Value)>,
}

impl PollingClient {
    fn path(&self) -> String {
        format!("/io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    async fn connect(port: u16) -> PollingClient {
        let (status, open) = http(port, "GET", "/io/?EIO=4&transport=polling", None).await;
        assert_eq!(status, 200, "{open}");
        let handshake: Value =
            serde_json::from_str(open.strip_prefix('0').expect("an open packet")).unwrap();
        let mut client = PollingClient {
            port,
            sid: handshake["sid"].as_str().unwrap().to_string(),
            id: String::new(),
            pending: Vec::new(),
        };
        client.send("40").await;
        loop {
            for packet in client.poll().await {
                if let Some(connect) = packet.strip_prefix("40") {
                    let connect: Value = serde_json::from_str(connect).unwrap();
                    client.id = connect["sid"].as_str().unwrap().to_string();
                }
            }
            if !client.id.is_empty() {
                break;
            }
        }
        client.send(r#"42["authenticate"]"#).await;
        client.event("authenticated").await;
        client
    }

    async fn send(&self, packet: &str) {
        let (status, body) = http(self.port, "POST", &self.path(), Some(packet)).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    /// One long-polling round: the packets the server had (answering pings on the way).
    async fn poll(&mut self) -> Vec<String> {
        let (status, body) = http(self.port, "GET", &self.path(), None).await;
        assert_eq!(status, 200, "{body}");
        let mut packets = Vec::new();
        for packet in body.split('\u{1e}') {
            if packet == "2" {
                self.send("3").await;
            } else if let Some(event) = packet.strip_prefix("42") {
                let event: Value = serde_json::from_str(event).unwrap();
                let name = event[0].as_str().unwrap_or_default().to_string();
                self.pending
                    .push((name, event.get(1).cloned().unwrap_or(Value::Null)));
            } else {
                packets.push(packet.to_string());
            }
        }
        packets
    }

    /// The data of the next event `name` (others are passed over), within 10 s.
    async fn event(&mut self, name: &str) -> Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(i) = self.pending.iter().position(|(n, _)| n == name) {
                    return self.pending.remove(i).1;
                }
                self.poll().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
    }
}

/// One HTTP/1.1 connection kept open for many requests, as an application's HTTP client keeps
/// one per node.
struct KeepAlive {
    port: u16,
    stream: BufReader<TcpStream>,
}

impl KeepAlive {
    async fn open(port: u16) -> KeepAlive {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        KeepAlive {
            port,
            stream: BufReader::new(stream),
        }
    }

    /// A JSON POST; the status and body of the answer (which has a `Content-Length`).
    async fn post(&mut self, path: &str, body: &Value) -> (u16, String) {
        let body = body.to_string();
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.port,
            body.len()
        );
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(40), async {
            let mut status = String::new();
            self.stream.read_line(&mut status).await.unwrap();
            let status: u16 = status
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .expect("a status line");
            let mut length = 0;
            loop {
                let mut line = String::new();
                self.stream.read_line(&mut line).await.unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; length];
            self.stream.read_exact(&mut body).await.unwrap();
            (status, String::from_utf8(body).unwrap())
        })
        .await
        .expect("an answer within 40 s")
    }
}

fn streams_args(redis_url: &str, key: &str) -> Vec<String> {
    [
        "--redis-url",
        redis_url,
        "--redis-key",
        key,
        "--redis-mode",
        "streams",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn rest_sends_through_two_nodes_reach_a_third_in_send_order() {
    let url = redis_url();
    let key = format!("ignis-server-streams-{:016x}", rand::random::<u64>());
    let args = streams_args(&url, &key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let one = start_server(&args);
    let two = start_server(&args);
    let three = start_server(&args);
    let mut client = PollingClient::connect(three.port).await;

    let mut to_one = KeepAlive::open(one.port).await;
    let mut to_two = KeepAlive::open(two.port).await;
    const N: usize = 200;
    for i in 0..N {
        let to = if i % 2 == 0 { &mut to_one } else { &mut to_two };
        let (status, answer) = to
            .post("/api/socket/broadcast", &json!({"topic": "seq", "data": i}))
            .await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut got = Vec::new();
    while got.len() < N {
        got.push(client.event("seq").await);
    }
    let expected: Vec<Value> = (0..N).map(|i| json!(i)).collect();
    assert_eq!(got, expected, "the order of the answered sends");

    // A room send and a client send answer after their entry too, in order.
    let (status, answer) = to_one
        .post(
            &format!("/api/socket/client/{}/send", client.id),
            &json!({"topic": "seq", "data": "to-client"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = to_two
        .post(
            &format!("/api/socket/room/{}/send", client.id),
            &json!({"topic": "seq", "data": "to-room"}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(client.event("seq").await, json!("to-client"));
    assert_eq!(client.event("seq").await, json!("to-room"));
}

/// A private `redis-server` the test can stop; killed when dropped.
struct PrivateRedis(Child);

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_rest_send_answers_503_when_redis_is_gone() {
    let port = free_port();
    let redis = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--port")
        .arg(port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    let mut redis = PrivateRedis(redis);
    tokio::time::timeout(Duration::from_secs(10), async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("redis-server listens within 10 s");
    let url = format!("redis://127.0.0.1:{port}");
    let args = streams_args(&url, "ignis-server-streams-down");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start_server(&args);
    let mut api = KeepAlive::open(server.port).await;
    let (status, answer) = api
        .post("/api/socket/broadcast", &json!({"topic": "t", "data": 1}))
        .await;
    assert_eq!(status, 200, "{answer}");

    let _ = redis.0.kill();
    let _ = redis.0.wait();
    for path in [
        "/api/socket/broadcast".to_string(),
        "/api/socket/room/some-room/send".to_string(),
    ] {
        let (status, answer) = api.post(&path, &json!({"topic": "t", "data": 2})).await;
        assert_eq!(status, 503, "{path}: {answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let text = answer.to_string();
        assert!(text.contains("could not be published"), "{text}");
    }
}
