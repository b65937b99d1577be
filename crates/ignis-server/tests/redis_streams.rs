//! `ignis-server` processes on Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`) with
//! `--redis-mode streams` and a key of their own: a REST send answers once its entry is in the
//! stream, so that sends answered one after another, through different nodes, reach a client
//! of a third node in that order; and a send answers 503, not 200 and not never, when Redis is
//! gone.
//!
//! The Socket.IO client speaks Engine.IO long-polling over plain HTTP/1.1.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod process;
use process::{PollingClient, start_server};

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
