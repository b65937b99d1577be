//! Redis faults under the streams adapter, on a `redis-server` the test starts itself with
//! append-only persistence: broadcasts made while Redis is paused, or stopped and started again,
//! reach the clients of both servers once it is back, in order, none lost; and an entry whose
//! reply was lost is not added again when the writer retries.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cluster_common::Node;
use ignis_redis::{RedisConfig, RedisConnection, StreamsAdapterConfig, StreamsAdapterFactory};
use ignis_socketio::{RecoveryConfig, SocketIo, Value};
use tokio::process::{Child, Command};

mod cluster_common;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A private `redis-server` with append-only persistence in a directory of its own.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start(port: u16, dir: PathBuf) -> PrivateRedis {
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server is installed");
        cluster_common::eventually(Duration::from_secs(10), "redis-server listens", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        PrivateRedis {
            port,
            dir,
            child: Some(child),
        }
    }

    /// Stops it the way an operator would (SIGTERM: the append-only file is flushed).
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn node(redis: &PrivateRedis) -> Node {
    let mut config = RedisConfig::from_url(&redis.url()).unwrap();
    config.reconnect_max = Duration::from_millis(300);
    let conn = RedisConnection::connect(config).await.unwrap();
    let adapter_config = StreamsAdapterConfig {
        block_time: Duration::from_millis(300),
        requests_timeout: Duration::from_secs(3),
        ..StreamsAdapterConfig::default()
    };
    let factory = StreamsAdapterFactory::new(conn.clone(), adapter_config).unwrap();
    assert!(factory.reading(Duration::from_secs(5)).await);
    let io = SocketIo::builder()
        .adapter(factory)
        .connection_state_recovery(RecoveryConfig::default())
        .build();
    cluster_common::serve(io, conn).await
}

#[tokio::test]
async fn nothing_is_lost_while_redis_pauses_or_restarts() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ignis-streams-faults-{port}"));
    let mut redis = PrivateRedis::start(port, dir.clone()).await;
    let one = node(&redis).await;
    let two = node(&redis).await;
    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    one.ns.operators().emit("m", "before").unwrap();
    p1.expect("m", "before").await;
    p2.expect("m", "before").await;

    // Paused: commands wait, then go through.
    let admin = redis::Client::open(redis.url()).unwrap();
    let mut c = admin.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1000)
        .arg("ALL")
        .query_async(&mut c)
        .await
        .unwrap();
    for i in 0..5 {
        one.ns.operators().emit("m", &format!("one-{i}")).unwrap();
        two.ns.operators().emit("m", &format!("two-{i}")).unwrap();
    }
    for peer in [&mut p1, &mut p2] {
        let mut got = Vec::new();
        for _ in 0..10 {
            let (name, args) = peer.next().await;
            assert_eq!(name, "m");
            got.push(args[0].as_str().unwrap_or_default().to_string());
        }
        // Each server's broadcasts in its order; the two interleave as the stream says.
        for server in ["one", "two"] {
            let mine: Vec<String> = got
                .iter()
                .filter(|g| g.starts_with(server))
                .cloned()
                .collect();
            let expected: Vec<String> = (0..5).map(|i| format!("{server}-{i}")).collect();
            assert_eq!(mine, expected, "{got:?}");
        }
    }

    // Stopped, with broadcasts made meanwhile, then started again on its append-only file.
    redis.stop().await;
    let sent: Vec<String> = (0..10).map(|i| format!("down-{i}")).collect();
    for m in &sent {
        one.ns
            .operators()
            .emit("m", m)
            .expect("kept for when Redis is back");
    }
    // A call that waits for its entry has a deadline (the requests timeout) while Redis is
    // away; the entry itself stays queued.
    let waited = tokio::time::timeout(
        Duration::from_secs(6),
        one.ns.operators().local().fetch_sockets(),
    )
    .await;
    assert!(
        matches!(waited, Ok(Ok(_))),
        "local calls do not wait for Redis"
    );
    // A confirmed broadcast answers an error within the requests timeout (3 s), and its
    // entry too goes out once Redis is back.
    let confirmed = tokio::time::timeout(
        Duration::from_secs(6),
        one.ns
            .operators()
            .emit_confirmed("m", vec![Value::from("down-confirmed")]),
    )
    .await
    .expect("answered within the requests timeout");
    assert!(confirmed.is_err(), "{confirmed:?}");
    let mut sent = sent;
    sent.push("down-confirmed".to_string());
    let joined = tokio::time::timeout(
        Duration::from_secs(6),
        two.ns.operators().sockets_join("while-down"),
    )
    .await
    .expect("answered within the requests timeout");
    assert!(joined.is_err(), "{joined:?}");
    let redis = PrivateRedis::start(port, dir).await;
    cluster_common::eventually(Duration::from_secs(20), "both servers reconnected", || {
        let healthy = one.conn.is_healthy() && two.conn.is_healthy();
        async move { healthy }
    })
    .await;
    for m in &sent {
        p1.expect("m", m).await;
        p2.expect("m", m).await;
    }
    one.ns.operators().emit("m", "after").unwrap();
    p1.expect("m", "after").await;
    p2.expect("m", "after").await;
    drop(redis);
}

#[tokio::test]
async fn a_confirmed_broadcast_resolves_once_its_entry_is_in_the_stream() {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ignis-streams-confirmed-{port}"));
    let redis = PrivateRedis::start(port, dir).await;
    let one = node(&redis).await;
    let mut peer = cluster_common::peer(&one).await;
    let admin = redis::Client::open(redis.url()).unwrap();
    let mut c = admin.get_multiplexed_async_connection().await.unwrap();
    for i in 0..3 {
        // Writes wait 300 ms: a broadcast that resolved before its XADD ran finds no entry.
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(300)
            .arg("WRITE")
            .query_async(&mut c)
            .await
            .unwrap();
        let text = format!("confirmed-{i}");
        one.ns
            .operators()
            .emit_confirmed("m", vec![Value::from(text.as_str())])
            .await
            .expect("Redis took the entry");
        let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
            .arg("socket.io")
            .arg("-")
            .arg("+")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(entries.len(), i + 1, "{entries:?}");
        let (_, fields) = entries.last().unwrap();
        let data = &fields.iter().find(|(k, _)| k == "data").unwrap().1;
        assert!(data.contains(&format!("\"{text}\"")), "{data}");
    }
    for i in 0..3 {
        peer.expect("m", &format!("confirmed-{i}")).await;
    }
}

/// A TCP proxy to Redis that, once armed, lets the next command with `XADD` through to Redis and
/// then closes that connection without passing Redis's reply on: the writer sees its batch
/// fail although Redis took it.
struct ReplyDropper {
    port: u16,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
}

impl ReplyDropper {
    async fn start(redis: std::net::SocketAddr) -> ReplyDropper {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (a, d) = (Arc::clone(&armed), Arc::clone(&dropped));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(redis).await else {
                    continue;
                };
                tokio::spawn(pump(client, server, Arc::clone(&a), Arc::clone(&d)));
            }
        });
        ReplyDropper {
            port,
            armed,
            dropped,
        }
    }
}

async fn pump(
    client: tokio::net::TcpStream,
    server: tokio::net::TcpStream,
    armed: Arc<AtomicBool>,
    dropped: Arc<AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_up = Arc::clone(&cut);
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            let is_xadd = chunk.windows(4).any(|w| w.eq_ignore_ascii_case(b"XADD"));
            if is_xadd && armed.swap(false, Ordering::SeqCst) {
                cut_up.store(true, Ordering::SeqCst);
                dropped.fetch_add(1, Ordering::SeqCst);
                let _ = server_tx.write_all(chunk).await;
                // Redis applies it; its reply never reaches the client.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            if server_tx.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) {
                return;
            }
            if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first closes both connections.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[tokio::test]
async fn an_entry_whose_reply_was_lost_is_added_once() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis_addr = tokio::net::lookup_host(url_host_port(&redis_url))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = ReplyDropper::start(redis_addr).await;
    let prefix = cluster_common::random_prefix("ignis-rs-streams-lost-reply");
    let mut config = RedisConfig::from_url(&format!("redis://127.0.0.1:{}", proxy.port)).unwrap();
    config.reconnect_max = Duration::from_millis(300);
    let conn = RedisConnection::connect(config).await.unwrap();
    let adapter_config = StreamsAdapterConfig {
        stream_name: format!("{prefix}-stream"),
        channel_prefix: prefix.clone(),
        session_key_prefix: format!("{prefix}:session:"),
        block_time: Duration::from_millis(300),
        requests_timeout: Duration::from_secs(5),
        ..StreamsAdapterConfig::default()
    };
    let factory = StreamsAdapterFactory::new(conn.clone(), adapter_config).unwrap();
    assert!(factory.reading(Duration::from_secs(5)).await);
    let io = SocketIo::builder().adapter(factory).build();
    let one = cluster_common::serve(io, conn).await;
    let mut peer = cluster_common::peer(&one).await;
    one.ns.operators().emit("m", "before").unwrap();
    peer.expect("m", "before").await;

    proxy.armed.store(true, Ordering::SeqCst);
    let confirmed = one
        .ns
        .operators()
        .emit_confirmed("m", vec![Value::from("once")])
        .await;
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        1,
        "the reply was dropped"
    );
    assert!(confirmed.is_ok(), "{confirmed:?}");
    one.ns.operators().emit("m", "after").unwrap();
    peer.expect("m", "once").await;
    // Had the entry been added twice, the client would get it again before "after".
    peer.expect("m", "after").await;

    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(format!("{prefix}-stream"))
        .arg("-")
        .arg("+")
        .query_async(&mut c)
        .await
        .unwrap();
    let once = entries
        .iter()
        .filter(|(_, fields)| {
            fields
                .iter()
                .any(|(k, v)| k == "data" && v.contains("\"once\""))
        })
        .count();
    assert_eq!(once, 1, "{entries:?}");
    let _: () = redis::cmd("DEL")
        .arg(format!("{prefix}-stream"))
        .query_async(&mut c)
        .await
        .unwrap();
}

/// `host:port` of a `redis://` URL (without credentials or database).
fn url_host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.contains(':') {
        host_port.to_string()
    } else {
        format!("{host_port}:6379")
    }
}
