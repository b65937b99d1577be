//! Two `ignis-server` processes on a Redis Cluster (`REDIS_CLUSTER_URLS`, default the three
//! masters `scripts/redis-cluster.sh` makes on 127.0.0.1:7101-7103, started when it is not up):
//! a REST send to one reaches a Socket.IO client of the other, in both Redis protocols.
//!
//! The client speaks Engine.IO long-polling over plain HTTP/1.1, which is all this needs.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn cluster_urls() -> String {
    if let Ok(urls) = std::env::var("REDIS_CLUSTER_URLS") {
        return urls;
    }
    // Idempotent, and quick when the cluster is up; the test never skips.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/redis-cluster.sh"
    );
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg("ensure")
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(status.success(), "{script} ensure failed");
    "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103".into()
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

async fn rest_post(port: u16, path: &str, body: Value) -> Value {
    let (status, answer) = http(port, "POST", path, Some(&body.to_string())).await;
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

async fn a_rest_send_on_one_server_reaches_a_client_of_the_other(mode: &[&str]) {
    let urls = cluster_urls();
    let key = format!("ignis-server-cluster-{:016x}", rand::random::<u64>());
    let mut args = vec!["--redis-url", urls.as_str(), "--redis-key", key.as_str()];
    args.extend_from_slice(mode);
    let one = start_server(&args);
    let two = start_server(&args);

    let mut client = PollingClient::connect(two.port).await;

    let sent = rest_post(
        one.port,
        &format!("/api/socket/client/{}/send", client.id),
        json!({"topic": "cluster-news", "data": {"from": "one"}}),
    )
    .await;
    assert_eq!(sent["success"], json!(true), "{sent}");
    assert_eq!(client.event("cluster-news").await, json!({"from": "one"}));

    // A room the client joined through the other server, then a send to that room.
    let joined = rest_post(
        one.port,
        &format!("/api/socket/client/{}/join", client.id),
        json!({"rooms": ["cluster-room"]}),
    )
    .await;
    assert_eq!(joined["success"], json!(true), "{joined}");
    // In the sharded dynamic mode the room gets a channel of its own on the other server; the
    // join's answer does not wait for that subscription.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = rest_post(
        one.port,
        "/api/socket/room/cluster-room/send",
        json!({"topic": "room-news", "data": 7}),
    )
    .await;
    assert_eq!(sent["success"], json!(true), "{sent}");
    assert_eq!(client.event("room-news").await, json!(7));

    // The rooms of the cluster and their members, seen from the server the client is not on.
    let rooms = rest_get(one.port, "/api/socket/rooms").await;
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .contains(&json!({"room": "cluster-room", "size": 1})),
        "{rooms}"
    );
    let members = rest_get(one.port, "/api/socket/room/cluster-room/clients").await;
    assert_eq!(members["clients"], json!([client.id]), "{members}");

    // A disconnect through the other server.
    let (status, answer) = http(
        one.port,
        "DELETE",
        &format!("/api/socket/client/{}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["success"], json!(true), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !client.poll().await.iter().any(|p| p == "41") {}
    })
    .await
    .expect("the client's DISCONNECT within 10 s");
    let members = rest_get(one.port, "/api/socket/room/cluster-room/clients").await;
    assert_eq!(members["count"], json!(0), "{members}");
}

async fn rest_get(port: u16, path: &str) -> Value {
    let (status, answer) = http(port, "GET", path, None).await;
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test]
async fn classic_rest_send_crosses_the_cluster() {
    a_rest_send_on_one_server_reaches_a_client_of_the_other(&[]).await;
}

#[tokio::test]
async fn sharded_rest_send_crosses_the_cluster() {
    a_rest_send_on_one_server_reaches_a_client_of_the_other(&["--redis-mode", "sharded"]).await;
}
