//! The sharded mode against a real Redis 7 (`REDIS_URL`, default `redis://127.0.0.1:6379`): two
//! Ignis servers in one process, each with its own connection, under a prefix no other run
//! uses.

use std::sync::Arc;
use std::time::Duration;

use ignis_redis::{
    Emitter, RedisConnection, ShardedAdapter, ShardedAdapterConfig, ShardedAdapterFactory,
    SubscriptionMode,
};
use ignis_socketio::{Adapter, Namespace, Room, Sid, SocketIo, Value};
use tokio::sync::mpsc;

mod common;

fn random_prefix() -> String {
    common::random_prefix("ignis-rs-sharded")
}

async fn connect() -> RedisConnection {
    common::connect("Redis 7").await
}

fn config(prefix: &str, mode: SubscriptionMode) -> ShardedAdapterConfig {
    ShardedAdapterConfig {
        channel_prefix: prefix.to_string(),
        subscription_mode: mode,
        requests_timeout: Duration::from_secs(2),
        ..ShardedAdapterConfig::default()
    }
}

async fn node(
    prefix: &str,
    name: &'static str,
    seen: mpsc::UnboundedSender<(String, Vec<Value>)>,
) -> (SocketIo, Arc<Namespace>, RedisConnection) {
    let config = config(prefix, SubscriptionMode::Dynamic);
    let factory = |conn| ShardedAdapterFactory::new(conn, config);
    common::node(connect().await, factory, name, seen).await
}

#[tokio::test]
async fn two_ignis_nodes_form_a_sharded_cluster() {
    let prefix = random_prefix();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (_io1, ns1, conn1) = node(&prefix, "one", seen_tx.clone()).await;
    let (_io2, ns2, _conn2) = node(&prefix, "two", seen_tx).await;

    assert_eq!(ns1.adapter().server_count().await.unwrap(), 2);
    assert!(conn1.is_healthy());

    common::only_the_other_node_answers(&ns1, &mut seen).await;

    // Garbage on the main channel is ignored, and the nodes keep working.
    let main = format!("{prefix}#/#");
    for garbage in [
        b"\xc1garbage".to_vec(),
        b"{\"type\":99}".to_vec(),
        b"{\"type\":3,\"nsp\":\"/\"}".to_vec(),
        vec![0x93, 0x01],
    ] {
        conn1.spublish(main.clone(), garbage).await.unwrap();
    }

    // The sharded emitter reaches both nodes' handlers.
    Emitter::sharded(conn1.clone(), &prefix, SubscriptionMode::Dynamic)
        .server_side_emit("who", vec![Value::from("e")])
        .await
        .unwrap();
    common::both_nodes_ran_who(&mut seen).await;

    assert!(ns2.operators().fetch_sockets().await.unwrap().is_empty());
    assert!(ns2.adapter().all_rooms(&ns2).await.unwrap().is_empty());
}

/// How many subscribers a sharded channel has.
async fn subscribers(conn: &RedisConnection, channel: &str) -> usize {
    conn.subscribed().await;
    conn.shardnumsub(channel).await.unwrap()
}

#[tokio::test]
async fn room_channels_come_and_go_with_the_rooms() {
    let sid = Sid::parse("abcdefghij0123456789").unwrap();
    let room = |s: &str| -> Room { Arc::from(s) };
    for (mode, public, private) in [
        (SubscriptionMode::Dynamic, 1, 0),
        (SubscriptionMode::DynamicPrivate, 1, 1),
        (SubscriptionMode::Static, 0, 0),
    ] {
        let prefix = random_prefix();
        let conn = connect().await;
        let adapter = ShardedAdapter::new(conn.clone(), config(&prefix, mode), "/");
        let public_channel = format!("{prefix}#/#news#");
        let private_channel = format!("{prefix}#/#{}#", sid.as_str());
        assert_eq!(subscribers(&conn, &format!("{prefix}#/#")).await, 1);
        assert_eq!(
            subscribers(&conn, &format!("{prefix}#/#{}#", adapter.uid())).await,
            1
        );

        adapter.add_all(sid, &[room(sid.as_str()), room("news"), room("news")]);
        assert_eq!(
            subscribers(&conn, &public_channel).await,
            public,
            "{mode:?}"
        );
        assert_eq!(
            subscribers(&conn, &private_channel).await,
            private,
            "{mode:?}"
        );
        // A room named like another socket's id is refused by the index: no channel either.
        let other = Sid::parse("9876543210jihgfedcba").unwrap();
        adapter.add_all(sid, &[room(other.as_str())]);
        assert_eq!(
            subscribers(&conn, &format!("{prefix}#/#{}#", other.as_str())).await,
            0,
            "{mode:?}"
        );
        // Joining again subscribes once.
        adapter.add_all(sid, &[room("news")]);
        assert_eq!(
            subscribers(&conn, &public_channel).await,
            public,
            "{mode:?}"
        );

        adapter.del(sid, "news");
        assert_eq!(subscribers(&conn, &public_channel).await, 0, "{mode:?}");
        adapter.add_all(sid, &[room("news")]);
        assert_eq!(
            subscribers(&conn, &public_channel).await,
            public,
            "{mode:?}"
        );
        adapter.del_all(sid);
        assert_eq!(subscribers(&conn, &public_channel).await, 0, "{mode:?}");
        assert_eq!(subscribers(&conn, &private_channel).await, 0, "{mode:?}");

        drop(adapter);
        assert_eq!(subscribers(&conn, &format!("{prefix}#/#")).await, 0);
    }
}
