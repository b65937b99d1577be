//! `ignis-server` processes and a minimal Engine.IO long-polling client over plain HTTP/1.1,
//! shared by the integration tests that run several nodes.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An `ignis-server` process and its port; killed when dropped.
pub(crate) struct Server {
    pub(crate) port: u16,
    pub(crate) child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_server(args: &[&str]) -> Server {
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
pub(crate) async fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
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

pub(crate) fn unchunk(mut rest: &str) -> String {
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
pub(crate) struct PollingClient {
    pub(crate) port: u16,
    pub(crate) sid: String,
    /// The id of the socket in the main namespace.
    pub(crate) id: String,
    /// Events received and not looked at yet.
    pub(crate) pending: Vec<(String, Value)>,
}

impl PollingClient {
    pub(crate) fn path(&self) -> String {
        format!("/io/?EIO=4&transport=polling&sid={}", self.sid)
    }

    pub(crate) async fn connect(port: u16) -> PollingClient {
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

    pub(crate) async fn send(&self, packet: &str) {
        let (status, body) = http(self.port, "POST", &self.path(), Some(packet)).await;
        assert_eq!((status, body.as_str()), (200, "ok"));
    }

    /// One long-polling round: the packets the server had (answering pings on the way).
    pub(crate) async fn poll(&mut self) -> Vec<String> {
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
    pub(crate) async fn event(&mut self, name: &str) -> Value {
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
