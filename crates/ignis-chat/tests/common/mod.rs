//! The chat under test: started on port 0 with a data directory of its own, on SQLite or on a
//! PostgreSQL database created for the test and dropped after it; a small HTTP client; Socket.IO
//! clients that authenticate with the chat's tokens and record what they receive.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ignis_chat::{Config, RunningChat};
use ignis_client::{Client, Event, Socket, Value};
use serde_json::{Value as Json, json};
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long a test waits for anything the chat should do.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests use (trust auth), as a URL of its maintenance database.
pub(crate) fn postgres_admin_url() -> String {
    std::env::var("IGNIS_CHAT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A database of one test: dropped when the test ends, passed or failed.
pub(crate) struct Database {
    pub url: String,
    postgres: Option<String>,
    dir: PathBuf,
    /// A handle of another node on the same database: dropping it drops nothing.
    shared: bool,
}

impl Database {
    pub(crate) async fn new(backend: Backend) -> Database {
        let dir = std::env::temp_dir().join(unique("ignis-chat-test"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        match backend {
            Backend::Sqlite => Database {
                url: format!("sqlite://{}", dir.join("chat.db").display()),
                postgres: None,
                dir,
                shared: false,
            },
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = unique("ignis_chat_test");
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!(
                            "the PostgreSQL tests need a server at {admin} (trust auth; set \
                         IGNIS_CHAT_TEST_POSTGRES to use another): {e}"
                        )
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Database {
                    url: format!("{base}/{name}"),
                    postgres: Some(name),
                    dir,
                    shared: false,
                }
            }
        }
    }

    /// The same database, for another node: the first handle drops it.
    pub(crate) fn shared(db: &Database) -> Database {
        Database {
            url: db.url.clone(),
            postgres: db.postgres.clone(),
            dir: db.dir.clone(),
            shared: true,
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.clone()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.shared {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let Some(name) = self.postgres.take() else {
            return;
        };
        // Dropped from a thread of its own: this may run inside the test's runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let admin = postgres_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            })
        });
        if let Ok(Err(e)) = handle.join() {
            eprintln!("could not drop a test database: {e}");
        }
    }
}

/// A running chat and its database.
pub(crate) struct TestChat {
    pub chat: RunningChat,
    pub port: u16,
    pub db: Database,
}

pub(crate) fn config(db: &Database) -> Config {
    Config {
        port: 0,
        data_dir: db.data_dir(),
        database_url: Some(db.url.clone()),
        presence_grace: Duration::from_millis(300),
        node_heartbeat: Duration::from_millis(300),
        ..Config::default()
    }
}

impl TestChat {
    pub(crate) async fn start(backend: Backend) -> TestChat {
        let db = Database::new(backend).await;
        let config = config(&db);
        Self::start_with(db, config).await
    }

    pub(crate) async fn start_with(db: Database, config: Config) -> TestChat {
        let chat = ignis_chat::start(config).await.expect("the chat starts");
        let port = chat.local_addr().port();
        TestChat { chat, port, db }
    }

    pub(crate) async fn stop(self) -> Database {
        self.chat.stop().await;
        self.db
    }

    /// An HTTP request; the status and the JSON body (`null` if the body is not JSON).
    pub(crate) async fn http(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Json) {
        http(self.port, method, path, token, body).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> (u16, Json) {
        self.http("GET", path, Some(token), None).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Json) -> (u16, Json) {
        self.http("POST", path, Some(token), Some(&body.to_string()))
            .await
    }

    /// Signs a user up; their token and id.
    pub(crate) async fn user(&self, username: &str) -> (String, String) {
        let (status, body) = self
            .http(
                "POST",
                "/api/auth/sign-up",
                None,
                Some(&json!({"username": username, "password": "password123"}).to_string()),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (
            body["token"].as_str().unwrap().to_string(),
            body["user"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// Creates a room; its id.
    pub(crate) async fn room(&self, token: &str, name: &str, private: bool) -> String {
        let (status, body) = self
            .post(
                "/api/chat/rooms",
                token,
                json!({"name": name, "isPrivate": private}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// A Socket.IO client authenticated with `token`.
    pub(crate) async fn client(&self, token: &str) -> Peer {
        Peer::connect(self.port, token).await
    }
}

pub(crate) async fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Json) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("the answer comes in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response);
    let (head, payload) = text.split_once("\r\n\r\n").expect("a whole response");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    (status, serde_json::from_str(&payload).unwrap_or(Json::Null))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A client and what it received.
pub(crate) struct Peer {
    pub socket: Socket,
    events: mpsc::UnboundedReceiver<Event>,
}

impl Peer {
    pub(crate) async fn connect(port: u16, token: &str) -> Peer {
        let socket = Client::builder(format!("http://127.0.0.1:{port}"))
            .path("/io")
            .reconnection(false)
            .connect("/")
            .await
            .expect("the client connects");
        let (tx, events) = mpsc::unbounded_channel();
        socket.on_any(move |e| {
            let _ = tx.send(e);
        });
        socket
            .emit("authenticate", &json!({ "token": token }))
            .expect("emit");
        let mut peer = Peer { socket, events };
        peer.expect("authenticated").await;
        peer
    }

    /// A client that sends `event` (without an acknowledgement) the moment it hears
    /// `authenticated`, from the callback that receives it: as early as a client can.
    pub(crate) async fn connect_eager(
        port: u16,
        token: &str,
        event: &'static str,
        payload: Json,
    ) -> Peer {
        let socket = Client::builder(format!("http://127.0.0.1:{port}"))
            .path("/io")
            .reconnection(false)
            .connect("/")
            .await
            .expect("the client connects");
        let (tx, events) = mpsc::unbounded_channel();
        let args = vec![ignis_client::proto::value::to_value(&payload).expect("value")];
        let sender = socket.clone();
        socket.on_any(move |e| {
            if e.name == "authenticated" {
                let _ = sender.emit_args(event, args.clone());
            }
            let _ = tx.send(e);
        });
        socket
            .emit("authenticate", &json!({ "token": token }))
            .expect("emit");
        let mut peer = Peer { socket, events };
        peer.expect("authenticated").await;
        peer
    }

    /// The next `name` event (others before it are dropped); its first argument as JSON.
    pub(crate) async fn expect(&mut self, name: &str) -> Json {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {name} event in time"))
                .expect("the client is there");
            if event.name == name {
                return json_of(event.args.first());
            }
        }
    }

    /// The first event among `names`: its name and first argument.
    pub(crate) async fn next_of(&mut self, names: &[&str]) -> (String, Json) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("none of {names:?} in time"))
                .expect("the client is there");
            if names.contains(&event.name.as_str()) {
                return (event.name.clone(), json_of(event.args.first()));
            }
        }
    }

    /// The next `name` event whose payload satisfies `pred`.
    pub(crate) async fn expect_where(&mut self, name: &str, pred: impl Fn(&Json) -> bool) -> Json {
        loop {
            let v = self.expect(name).await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Whether a `name` event arrives within `within`.
    pub(crate) async fn receives(&mut self, name: &str, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) if e.name == name => return true,
                Ok(Some(_)) => continue,
                _ => return false,
            }
        }
    }

    /// Forgets what was received so far.
    pub(crate) fn drain(&mut self) {
        while self.events.try_recv().is_ok() {}
    }

    /// Emits with an acknowledgement; the answer as JSON.
    pub(crate) async fn call(&self, event: &str, payload: Json) -> Json {
        let args = vec![ignis_client::proto::value::to_value(&payload).expect("value")];
        self.call_args(event, args).await
    }

    pub(crate) async fn call_args(&self, event: &str, args: Vec<Value>) -> Json {
        let answer = self
            .socket
            .emit_with_ack(event, args, WAIT)
            .await
            .unwrap_or_else(|e| panic!("no ack to {event}: {e}"));
        json_of(answer.first())
    }

    pub(crate) fn close(&self) {
        self.socket.disconnect();
    }
}

pub(crate) fn json_of(v: Option<&Value>) -> Json {
    v.map(|v| serde_json::to_value(v).expect("JSON"))
        .unwrap_or(Json::Null)
}

/// Asserts an `{ok: false}` answer with `code`.
#[track_caller]
pub(crate) fn assert_fails(answer: &Json, code: &str) {
    assert_eq!(answer["ok"], json!(false), "{answer}");
    assert_eq!(answer["error"]["code"], json!(code), "{answer}");
    assert!(answer["error"]["message"].is_string(), "{answer}");
}

#[track_caller]
pub(crate) fn assert_ok(answer: &Json) {
    assert_eq!(answer["ok"], json!(true), "{answer}");
}
