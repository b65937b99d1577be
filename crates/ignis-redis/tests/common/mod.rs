//! What the Redis tests of both protocols share: the Redis to use (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`), channel prefixes no other run uses, and a server with a server
//! event to ask.

use std::sync::Arc;
use std::time::Duration;

use ignis_redis::{RedisConfig, RedisConnection};
use ignis_socketio::{AdapterFactory, Namespace, SocketIo, Value};
use tokio::sync::mpsc;

pub(crate) fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// `{stem}-` and 16 random hex digits.
pub(crate) fn random_prefix(stem: &str) -> String {
    format!("{stem}-{:016x}", rand::random::<u64>())
}

/// A connection to the test Redis; without one the tests cannot run, and say they need
/// `needs`.
pub(crate) async fn connect(needs: &str) -> RedisConnection {
    let config = RedisConfig::from_url(&redis_url()).expect("REDIS_URL is a Redis URL");
    RedisConnection::connect(config)
        .await
        .unwrap_or_else(|e| panic!("these tests need {needs} ({}): {e}", redis_url()))
}

/// A server on `conn` with the adapter `factory` makes of it, whose `/` namespace answers the
/// server event `who` with its name and reports every server event it gets on `seen`.
pub(crate) async fn node<F: AdapterFactory>(
    conn: RedisConnection,
    factory: impl FnOnce(RedisConnection) -> F,
    name: &'static str,
    seen: mpsc::UnboundedSender<(String, Vec<Value>)>,
) -> (SocketIo, Arc<Namespace>, RedisConnection) {
    let io = SocketIo::builder().adapter(factory(conn.clone())).build();
    let ns = io.main_namespace();
    ns.on_server_event("who", move |args| {
        let seen = seen.clone();
        async move {
            let _ = seen.send((name.to_string(), args));
            Some(Value::from(name))
        }
    });
    conn.subscribed().await;
    (io, ns, conn)
}

/// A server-side emit with an acknowledgement from `ns1`'s node, in a cluster of that node and
/// one named `two`: only `two` answers.
pub(crate) async fn only_the_other_node_answers(
    ns1: &Namespace,
    seen: &mut mpsc::UnboundedReceiver<(String, Vec<Value>)>,
) {
    let answers = ns1
        .adapter()
        .server_side_emit(
            ns1,
            vec![Value::from("who"), Value::Int(1)],
            Some(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    assert_eq!(answers, vec![Value::from("two")]);
    assert_eq!(
        seen.recv().await.unwrap(),
        ("two".to_string(), vec![Value::Int(1)])
    );
}

/// Both nodes, `one` and `two`, ran `who` (in either order).
pub(crate) async fn both_nodes_ran_who(seen: &mut mpsc::UnboundedReceiver<(String, Vec<Value>)>) {
    let mut names = vec![seen.recv().await.unwrap().0, seen.recv().await.unwrap().0];
    names.sort();
    assert_eq!(names, ["one", "two"]);
}
