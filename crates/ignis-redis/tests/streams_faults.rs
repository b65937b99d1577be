//! Redis faults under the streams adapter, on a `redis-server` the test starts itself with
//! append-only persistence: broadcasts made while Redis is paused, or stopped and started again,
//! reach the clients of both servers once it is back, in order, none lost.

use std::path::PathBuf;
use std::time::Duration;

use cluster_common::Node;
use ignis_redis::{RedisConfig, RedisConnection, StreamsAdapterConfig, StreamsAdapterFactory};
use ignis_socketio::{RecoveryConfig, SocketIo};
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
