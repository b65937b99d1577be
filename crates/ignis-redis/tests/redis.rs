//! Against a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`): two Ignis servers in
//! one process, each with its own connection, under a key prefix no other run uses.

use std::sync::Arc;
use std::time::Duration;

use ignis_redis::{
    Emitter, RedisAdapterConfig, RedisAdapterFactory, RedisConfig, RedisConnection, RedisError,
};
use ignis_socketio::{Namespace, SocketIo, Value};
use tokio::sync::mpsc;

mod common;

fn random_key() -> String {
    common::random_prefix("ignis-rs-test")
}

async fn connect() -> RedisConnection {
    common::connect("Redis").await
}

/// A server whose `/` namespace answers the server event `who` with its name and reports every
/// server event it gets on `seen`.
async fn node(
    key: &str,
    name: &'static str,
    seen: mpsc::UnboundedSender<(String, Vec<Value>)>,
) -> (SocketIo, Arc<Namespace>, RedisConnection) {
    let config = RedisAdapterConfig {
        key: key.to_string(),
        requests_timeout: Duration::from_secs(2),
        ..RedisAdapterConfig::default()
    };
    let factory = |conn| RedisAdapterFactory::new(conn, config);
    common::node(connect().await, factory, name, seen).await
}

#[tokio::test]
async fn unreachable_redis_is_reported_with_its_address() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = RedisConfig::new("127.0.0.1", port)
        .unwrap()
        .connect_timeout(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let err = RedisConnection::connect(config).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    let RedisError::Unreachable { ref addr, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(addr, &format!("127.0.0.1:{port}"));
    assert!(err.to_string().starts_with(&format!(
        "Redis at 127.0.0.1:{port} is not reachable after 500ms"
    )));
}

#[test]
fn bad_urls_are_configuration_errors() {
    for url in ["", "http://x", "redis://host:notaport"] {
        assert!(
            matches!(RedisConfig::from_url(url), Err(RedisError::Config(_))),
            "{url}"
        );
    }
    let c = RedisConfig::from_url("redis://user:secret@example.com:6380/3").unwrap();
    assert_eq!(c.address(), "example.com:6380");
    assert!(
        !format!("{c:?}").contains("secret"),
        "no credentials in Debug"
    );
    assert_eq!(
        RedisConfig::new("h", 1).unwrap().tls(false).address(),
        "h:1 (TLS)"
    );
}

#[tokio::test]
async fn two_ignis_nodes_form_a_cluster() {
    let key = random_key();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_io1, ns1, conn1) = node(&key, "one", seen_tx.clone()).await;
    let (_io2, ns2, _conn2) = node(&key, "two", seen_tx).await;

    assert_eq!(ns1.adapter().server_count().await.unwrap(), 2);

    // With an acknowledgement: only the other node answers.
    common::only_the_other_node_answers(&ns1, &mut seen).await;

    // Garbage on the request channel is ignored, and the node keeps working.
    conn1
        .publish(format!("{key}-request#/#"), b"\xc1garbage".to_vec())
        .await
        .unwrap();
    conn1
        .publish(format!("{key}-request#/#"), b"{\"type\":99}".to_vec())
        .await
        .unwrap();
    conn1
        .publish(format!("{key}#/#"), vec![0x93, 0x01])
        .await
        .unwrap();

    // The emitter reaches both nodes' handlers.
    Emitter::with_key(conn1.clone(), &key)
        .server_side_emit("who", vec![Value::from("e")])
        .await
        .unwrap();
    common::both_nodes_ran_who(&mut seen).await;

    // No sockets anywhere, but both nodes answer.
    assert!(ns2.operators().fetch_sockets().await.unwrap().is_empty());
    assert!(ns2.adapter().all_rooms(&ns2).await.unwrap().is_empty());

    // Reserved names are refused before anything is sent.
    let emitter = Emitter::with_key(conn1, &key);
    assert!(matches!(
        emitter.emit("connect", &1),
        Err(ignis_redis::EmitterError::ReservedEvent(_))
    ));
}

#[tokio::test]
async fn a_request_nobody_answers_times_out() {
    let key = random_key();
    let (seen_tx, _seen) = mpsc::unbounded_channel();
    let (_io1, ns1, conn1) = node(&key, "one", seen_tx).await;
    // A second subscriber on the request channel that never answers: a node that hangs.
    let silent = connect().await;
    let config = RedisAdapterConfig {
        key: key.clone(),
        ..RedisAdapterConfig::default()
    };
    let _hung = ignis_redis::RedisAdapter::new(silent.clone(), config, "/");
    silent.subscribed().await;
    drop(conn1);

    assert_eq!(ns1.adapter().server_count().await.unwrap(), 2);
    let started = std::time::Instant::now();
    let answer = ns1
        .adapter()
        .server_side_emit(
            &ns1,
            vec![Value::from("nobody-listens")],
            Some(Duration::from_millis(300)),
        )
        .await;
    assert_eq!(answer, Err(ignis_socketio::AdapterError::Timeout));
    assert!(started.elapsed() < Duration::from_secs(2));
}
