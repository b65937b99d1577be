//! What the Redis Cluster tests share: the cluster (started by `scripts/redis-cluster.sh` when
//! it is not up, never skipped), Ignis servers on it with real Socket.IO clients, and the
//! checks that traffic crosses the cluster.

#![allow(dead_code)]

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ignis_client::{Client, Socket, Value as ClientValue};
use ignis_redis::{
    Emitter, RedisAdapterConfig, RedisAdapterFactory, RedisConfig, RedisConnection,
    ShardedAdapterConfig, ShardedAdapterFactory, SubscriptionMode,
};
use ignis_socketio::{Namespace, SocketIo, Value};
use tokio::sync::mpsc;

/// The port of the first node of the shared test cluster.
pub(crate) const SHARED_CLUSTER_PORT: u16 = 7101;

/// The seed URLs of the shared cluster: `REDIS_CLUSTER_URLS`, comma separated, or the one
/// `scripts/redis-cluster.sh` makes.
pub(crate) fn cluster_urls() -> Vec<String> {
    match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(list) => list
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        Err(_) => local_urls(SHARED_CLUSTER_PORT),
    }
}

/// The URLs of the cluster `scripts/redis-cluster.sh` makes from `port` on.
pub(crate) fn local_urls(port: u16) -> Vec<String> {
    (port..port + 3)
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect()
}

/// Whether every node of `urls` answers and says the cluster is ok.
fn healthy(urls: &[String]) -> bool {
    urls.iter().all(|url| {
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return false;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) else {
            return false;
        };
        redis::cmd("CLUSTER")
            .arg("INFO")
            .query::<String>(&mut conn)
            .is_ok_and(|info| info.contains("cluster_state:ok"))
    })
}

static ENSURED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// Runs `scripts/redis-cluster.sh <command>` for the cluster from `port` on.
pub(crate) fn script(command: &str, port: u16) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/redis-cluster.sh"
    );
    let status = Command::new("bash")
        .arg(script)
        .arg(command)
        .env("IGNIS_REDIS_CLUSTER_PORT", port.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(status.success(), "{script} {command} failed: {status}");
}

/// Makes sure the shared cluster is up: the tests need it and never skip.
pub(crate) fn ensure_shared_cluster() -> Vec<String> {
    let urls = cluster_urls();
    let mut ensured = ENSURED.lock().unwrap_or_else(|e| e.into_inner());
    if ensured.contains(&SHARED_CLUSTER_PORT) || healthy(&urls) {
        ensured.push(SHARED_CLUSTER_PORT);
        return urls;
    }
    assert!(
        std::env::var("REDIS_CLUSTER_URLS").is_err(),
        "the Redis Cluster of REDIS_CLUSTER_URLS ({urls:?}) is not healthy"
    );
    script("ensure", SHARED_CLUSTER_PORT);
    assert!(healthy(&urls), "the cluster {urls:?} did not come up");
    ensured.push(SHARED_CLUSTER_PORT);
    urls
}

/// Makes (or finds) a private cluster from `port` on, for tests that stop its nodes.
pub(crate) fn ensure_private_cluster(port: u16) -> Vec<String> {
    let urls = local_urls(port);
    if !healthy(&urls) {
        script("ensure", port);
    }
    assert!(healthy(&urls), "the cluster {urls:?} did not come up");
    urls
}

/// `{stem}-` and 16 random hex digits.
pub(crate) fn random_prefix(stem: &str) -> String {
    format!("{stem}-{:016x}", rand::random::<u64>())
}

/// A connection to the cluster of `urls` whose seed list starts at `first`, so that its classic
/// subscriber lands on that node.
pub(crate) async fn connect(urls: &[String], first: usize) -> RedisConnection {
    let mut seeds = urls.to_vec();
    seeds.rotate_left(first % urls.len());
    let config = RedisConfig::cluster(&seeds).expect("cluster URLs");
    assert!(config.is_cluster());
    RedisConnection::connect(config)
        .await
        .unwrap_or_else(|e| panic!("the Redis Cluster {urls:?}: {e}"))
}

/// A connection to one node of the cluster, to look at what that node alone knows.
pub(crate) async fn connect_node(url: &str) -> RedisConnection {
    RedisConnection::connect(RedisConfig::from_url(url).unwrap())
        .await
        .unwrap()
}

/// Which adapter the servers of a test use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    Classic,
    Sharded(SubscriptionMode),
}

pub(crate) const ALL_KINDS: [Kind; 4] = [
    Kind::Classic,
    Kind::Sharded(SubscriptionMode::Dynamic),
    Kind::Sharded(SubscriptionMode::DynamicPrivate),
    Kind::Sharded(SubscriptionMode::Static),
];

impl Kind {
    pub(crate) fn emitter(self, conn: RedisConnection, prefix: &str) -> Emitter {
        match self {
            Kind::Classic => Emitter::with_key(conn, prefix),
            Kind::Sharded(mode) => Emitter::sharded(conn, prefix, mode),
        }
    }
}

/// An Ignis server on the cluster, listening on a port of its own.
pub(crate) struct Node {
    pub io: SocketIo,
    pub ns: Arc<Namespace>,
    pub conn: RedisConnection,
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.task.abort();
        self.io.close();
    }
}

/// A server whose sockets can ask to join a room (`join`, answered once this node listens to
/// the room's channel).
pub(crate) async fn node(conn: RedisConnection, kind: Kind, prefix: &str) -> Node {
    let io = match kind {
        Kind::Classic => {
            let config = RedisAdapterConfig {
                key: prefix.to_string(),
                requests_timeout: Duration::from_secs(3),
                ..RedisAdapterConfig::default()
            };
            SocketIo::builder()
                .adapter(RedisAdapterFactory::new(conn.clone(), config))
                .build()
        }
        Kind::Sharded(mode) => {
            let config = ShardedAdapterConfig {
                channel_prefix: prefix.to_string(),
                subscription_mode: mode,
                requests_timeout: Duration::from_secs(3),
                ..ShardedAdapterConfig::default()
            };
            SocketIo::builder()
                .adapter(ShardedAdapterFactory::new(conn.clone(), config))
                .build()
        }
    };
    serve(io, conn).await
}

/// Serves `io` on a port of its own, with the `join` event of [`node`].
pub(crate) async fn serve(io: SocketIo, conn: RedisConnection) -> Node {
    let on_join = conn.clone();
    let ns = io.ns("/", move |socket| {
        let conn = on_join.clone();
        async move {
            socket.on("join", move |socket, event| {
                let conn = conn.clone();
                async move {
                    if let Some(room) = event.args.first().and_then(Value::as_str) {
                        socket.join(room.to_string());
                    }
                    conn.subscribed().await;
                    event.ack(vec![Value::Bool(true)]);
                }
            });
        }
    });
    conn.subscribed().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = io.clone();
    let task = tokio::spawn(async move {
        let _ = server.serve(listener).await;
    });
    Node {
        io,
        ns,
        conn,
        url,
        task,
    }
}

/// A Socket.IO client and the events it got, in order.
pub(crate) struct Peer {
    pub socket: Socket,
    events: mpsc::UnboundedReceiver<(String, Vec<ClientValue>)>,
    /// The offset of the last event that had one (connection state recovery).
    last_offset: Arc<Mutex<Option<String>>>,
}

pub(crate) async fn peer(node: &Node) -> Peer {
    let socket = Client::builder(node.url.as_str())
        .connect("/")
        .await
        .expect("the client connects");
    let (tx, events) = mpsc::unbounded_channel();
    let last_offset = Arc::new(Mutex::new(None));
    let offsets = Arc::clone(&last_offset);
    socket.on_any(move |event| {
        if let Some(offset) = &event.offset
            && let Ok(mut last) = offsets.lock()
        {
            *last = Some(offset.clone());
        }
        let _ = tx.send((event.name.clone(), event.args.clone()));
    });
    Peer {
        socket,
        events,
        last_offset,
    }
}

impl Peer {
    pub(crate) fn last_offset(&self) -> Option<String> {
        self.last_offset.lock().ok().and_then(|o| o.clone())
    }

    pub(crate) fn id(&self) -> String {
        self.socket.id().expect("connected")
    }

    /// The next event, which must come within a few seconds.
    pub(crate) async fn next(&mut self) -> (String, Vec<ClientValue>) {
        tokio::time::timeout(Duration::from_secs(5), self.events.recv())
            .await
            .expect("an event within 5 s")
            .expect("the client is alive")
    }

    /// The next event is `name` with the one argument `arg`.
    pub(crate) async fn expect(&mut self, name: &str, arg: &str) {
        let (got, args) = self.next().await;
        assert_eq!(
            (got.as_str(), args),
            (name, vec![ClientValue::from(arg)]),
            "expected {name}({arg})"
        );
    }

    pub(crate) async fn join(&self, room: &str) {
        let answer = self
            .socket
            .emit_with_ack(
                "join",
                vec![ClientValue::from(room)],
                Duration::from_secs(5),
            )
            .await
            .expect("join answered");
        assert_eq!(answer, vec![ClientValue::Bool(true)]);
    }
}

/// Waits until `f` holds, for at most `within`.
pub(crate) async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Broadcasts cross between the two nodes both ways, to everyone and to a room.
pub(crate) async fn broadcasts_cross(
    one: &Node,
    two: &Node,
    p1: &mut Peer,
    p2: &mut Peer,
    tag: &str,
) {
    let from_one = format!("{tag}-from-one");
    one.ns.operators().emit("hello", &from_one).unwrap();
    p1.expect("hello", &from_one).await;
    p2.expect("hello", &from_one).await;

    let from_two = format!("{tag}-from-two");
    two.ns.operators().emit("hello", &from_two).unwrap();
    p1.expect("hello", &from_two).await;
    p2.expect("hello", &from_two).await;
}
