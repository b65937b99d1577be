//! What the recovery tests share (the `ignis` crate's too): a Socket.IO client over
//! long-polling, from raw HTTP requests (every packet the server sends, in order, and a CONNECT
//! with whatever auth a test wants: recovery's `pid` and `offset`), and the memory adapter with
//! hooks at the steps of a restore.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ignis_socketio::adapter::{
    AckCollector, Adapter, AdapterError, BoxFuture, BroadcastOptions, MemoryAdapter, RefusedRoom,
    RemoteSocket, Room,
};
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{Namespace, SessionData, Sid, Value};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Serves `io` on a port of its own, in a task of the test's runtime; its address.
pub(crate) async fn serve(io: &ignis_socketio::SocketIo) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.clone().serve(listener));
    addr
}

/// Every wait of a test is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

/// One Engine.IO session over long-polling.
pub(crate) struct Polling {
    addr: SocketAddr,
    path: String,
    sid: String,
    /// Packets received and not read yet.
    unread: Mutex<std::collections::VecDeque<String>>,
}

/// A [`Polling`] client that joined the main namespace without auth, with its socket id.
pub(crate) struct Member {
    conn: Polling,
    /// The Socket.IO socket id.
    pub id: String,
}

impl std::ops::Deref for Member {
    type Target = Polling;
    fn deref(&self) -> &Polling {
        &self.conn
    }
}

impl Member {
    /// Opens a session at `path` and joins the main namespace.
    pub(crate) async fn join(addr: SocketAddr, path: &str) -> Member {
        let conn = Polling::open(addr, path).await;
        let id = conn.connect(None).await.id;
        Member { conn, id }
    }
}

/// What the server answered to a CONNECT, and the events it sent before the answer.
pub(crate) struct Connected {
    pub id: String,
    pub pid: Option<String>,
    pub before: Vec<serde_json::Value>,
}

impl Polling {
    /// Opens a session at `path` (`/socket.io/`).
    pub(crate) async fn open(addr: SocketAddr, path: &str) -> Polling {
        let (status, open) =
            http(addr, "GET", &format!("{path}?EIO=4&transport=polling"), "").await;
        assert_eq!(status, 200, "{open}");
        let start = open.find("\"sid\":\"").expect("open packet") + 7;
        Polling {
            addr,
            path: path.to_string(),
            sid: open[start..start + 20].to_string(),
            unread: Mutex::new(Default::default()),
        }
    }

    /// Opens a session at `/socket.io/` and joins the main namespace without auth.
    pub(crate) async fn joined(addr: SocketAddr) -> Polling {
        let client = Polling::open(addr, "/socket.io/").await;
        client.post("40").await;
        client.until(|p| p.starts_with("40")).await;
        client
    }

    fn url(&self) -> String {
        format!("{}?EIO=4&transport=polling&sid={}", self.path, self.sid)
    }

    pub(crate) async fn post(&self, packets: &str) {
        let (status, body) = http(self.addr, "POST", &self.url(), packets).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Posts packets (joined into one payload); the status.
    pub(crate) async fn try_post(&self, packets: &str) -> u16 {
        http(self.addr, "POST", &self.url(), packets).await.0
    }

    /// Reads packets (answering heartbeats) until one matches or the session ends (a CLOSE
    /// packet, `1`, or a poll answered with another status than 200, recorded as `<status>`);
    /// every packet read, in order. Packets that came after it in the same response are kept
    /// for the next read.
    pub(crate) async fn until(&self, wanted: impl Fn(&str) -> bool) -> Vec<String> {
        let read = async {
            let mut seen = Vec::new();
            loop {
                loop {
                    let next = self.unread.lock().pop_front();
                    let Some(packet) = next else { break };
                    if packet == "2" {
                        // The session may be closing: its answer does not matter then.
                        let _ = self.try_post("3").await;
                        continue;
                    }
                    let done = wanted(&packet) || packet == "1";
                    seen.push(packet);
                    if done {
                        return seen;
                    }
                }
                let (status, body) = http(self.addr, "GET", &self.url(), "").await;
                if status != 200 {
                    seen.push(format!("<{status}>"));
                    return seen;
                }
                self.unread
                    .lock()
                    .extend(body.split('\u{1e}').map(String::from));
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("the client hears back")
    }

    /// Reads until the server closes the session (a long-polling session closes once the
    /// client has taken what was queued: it must be read); every packet read, in order.
    pub(crate) async fn until_closed(&self) -> Vec<String> {
        self.until(|_| false).await
    }

    /// Joins the main namespace with `auth`; the answer, and the events that came before it.
    pub(crate) async fn connect(&self, auth: Option<serde_json::Value>) -> Connected {
        match auth {
            Some(auth) => self.post(&format!("40{auth}")).await,
            None => self.post("40").await,
        }
        let mut seen = self.until(|p| p.starts_with("40")).await;
        let answer = seen.pop().expect("an answer");
        let answer: serde_json::Value =
            serde_json::from_str(&answer[2..]).expect("a CONNECT answer with data");
        Connected {
            id: answer["sid"].as_str().expect("sid").to_string(),
            pid: answer["pid"].as_str().map(String::from),
            before: seen.iter().filter_map(|p| event(p)).collect(),
        }
    }

    /// The next `n` events, in order.
    pub(crate) async fn events(&self, n: usize) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        while events.len() < n {
            let seen = self.until(|p| p.starts_with("42")).await;
            events.extend(seen.iter().filter_map(|p| event(p)));
        }
        events
    }
}

/// The arguments of an EVENT packet of the main namespace (`42[...]`), name first.
pub(crate) fn event(packet: &str) -> Option<serde_json::Value> {
    let json = packet.strip_prefix("42")?;
    serde_json::from_str(json).ok()
}

/// The offset an event carries when recovery is on: its last argument.
pub(crate) fn offset(event: &serde_json::Value) -> String {
    event
        .as_array()
        .and_then(|a| a.last())
        .and_then(|o| o.as_str())
        .expect("an offset")
        .to_string()
}

/// Runs in the middle of a restore, with the adapter that broadcasts.
pub(crate) type Hook = Box<dyn FnOnce(&MemoryAdapter, &Namespace) + Send>;

#[derive(Default)]
pub(crate) struct Hooks {
    /// After the session was taken, before the socket is back in its rooms.
    pub after_restore: Mutex<Option<Hook>>,
    /// Once the socket is back in its rooms, before its missed packets are looked up.
    pub before_missed: Mutex<Option<Hook>>,
    /// Right after the missed packets were looked up.
    pub after_missed: Mutex<Option<Hook>>,
    /// Told of every session kept.
    pub persisted: Mutex<Option<mpsc::UnboundedSender<SessionData>>>,
    /// When set, keeping a session waits for a word on this (after the session is stored).
    pub hold_persist: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// When set, keeping a session waits for a word on this before the session is stored.
    pub hold_before_persist: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

fn fire(slot: &Mutex<Option<Hook>>, adapter: &MemoryAdapter, ns: &Namespace) {
    let hook = slot.lock().take();
    if let Some(hook) = hook {
        hook(adapter, ns);
    }
}

/// The memory adapter, with the hooks.
pub(crate) struct Hooked {
    pub inner: MemoryAdapter,
    pub hooks: Arc<Hooks>,
}

impl Adapter for Hooked {
    fn add_all(&self, sid: Sid, rooms: &[Room]) {
        self.inner.add_all(sid, rooms)
    }
    fn add_all_bounded(&self, sid: Sid, rooms: &[Room], max: usize) -> Vec<RefusedRoom> {
        self.inner.add_all_bounded(sid, rooms, max)
    }
    fn del(&self, sid: Sid, room: &str) {
        self.inner.del(sid, room)
    }
    fn del_all(&self, sid: Sid) {
        self.inner.del_all(sid)
    }
    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.inner.socket_rooms(sid)
    }
    fn local_sockets(&self, opts: &BroadcastOptions) -> Vec<Sid> {
        self.inner.local_sockets(opts)
    }
    fn local_rooms(&self) -> Vec<Room> {
        self.inner.local_rooms()
    }
    fn broadcast(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
    ) -> Result<(), AdapterError> {
        self.inner.broadcast(ns, packet, opts)
    }
    fn broadcast_with_ack(
        &self,
        ns: &Namespace,
        packet: Packet,
        opts: &BroadcastOptions,
        collector: Arc<dyn AckCollector>,
    ) -> Result<(), AdapterError> {
        self.inner.broadcast_with_ack(ns, packet, opts, collector)
    }
    fn server_count(&self) -> BoxFuture<'_, Result<usize, AdapterError>> {
        self.inner.server_count()
    }
    fn fetch_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
    ) -> BoxFuture<'a, Result<Vec<RemoteSocket>, AdapterError>> {
        self.inner.fetch_sockets(ns, opts)
    }
    fn add_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        self.inner.add_sockets(ns, opts, rooms)
    }
    fn del_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        rooms: &'a [Room],
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        self.inner.del_sockets(ns, opts, rooms)
    }
    fn disconnect_sockets<'a>(
        &'a self,
        ns: &'a Namespace,
        opts: &'a BroadcastOptions,
        close: bool,
    ) -> BoxFuture<'a, Result<(), AdapterError>> {
        self.inner.disconnect_sockets(ns, opts, close)
    }
    fn all_rooms<'a>(
        &'a self,
        ns: &'a Namespace,
    ) -> BoxFuture<'a, Result<Vec<Room>, AdapterError>> {
        self.inner.all_rooms(ns)
    }
    fn server_side_emit<'a>(
        &'a self,
        ns: &'a Namespace,
        args: Vec<Value>,
        ack: Option<Duration>,
    ) -> BoxFuture<'a, Result<Vec<Value>, AdapterError>> {
        self.inner.server_side_emit(ns, args, ack)
    }

    fn persist_session(&self, ns: &Namespace, session: SessionData) {
        let hold = self.hooks.hold_before_persist.lock().take();
        if let Some(hold) = hold {
            hold_worker(&hold);
        }
        self.inner.persist_session(ns, session.clone());
        if let Some(tx) = &*self.hooks.persisted.lock() {
            let _ = tx.send(session);
        }
        let hold = self.hooks.hold_persist.lock().take();
        if let Some(hold) = hold {
            hold_worker(&hold);
        }
    }

    fn restore_session<'a>(
        &'a self,
        ns: &'a Namespace,
        pid: &'a str,
        offset: &'a str,
    ) -> BoxFuture<'a, Option<SessionData>> {
        Box::pin(async move {
            let session = self.inner.restore_session(ns, pid, offset).await;
            fire(&self.hooks.after_restore, &self.inner, ns);
            session
        })
    }

    fn missed_packets<'a>(
        &'a self,
        ns: &'a Namespace,
        rooms: &'a [Room],
        offset: &'a str,
    ) -> BoxFuture<'a, Option<Vec<Packet>>> {
        Box::pin(async move {
            fire(&self.hooks.before_missed, &self.inner, ns);
            let missed = self.inner.missed_packets(ns, rooms, offset).await;
            fire(&self.hooks.after_missed, &self.inner, ns);
            missed
        })
    }
}

/// Blocks the calling task until `hold` is released (bounded, so that a failing run ends), the
/// way a slow adapter would. On a multi-threaded runtime the worker hands its queue to another
/// thread first: a plain blocking call would strand the task in the worker's LIFO slot (which no
/// other worker steals), and the server would look stalled for the whole hold.
fn hold_worker(hold: &std::sync::mpsc::Receiver<()>) {
    let wait = || {
        let _ = hold.recv_timeout(WAIT);
    };
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
        _ => wait(),
    }
}
