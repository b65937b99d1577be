//! Against a real Redis Cluster of three masters (`REDIS_CLUSTER_URLS`, default
//! `redis://127.0.0.1:7101,…7103`, started by `scripts/redis-cluster.sh` when it is not up): two
//! Ignis servers, in each protocol and subscription mode, whose connections use different
//! nodes, with real Socket.IO clients.

use std::collections::BTreeSet;
use std::time::Duration;

use cluster_common::{Kind, Node, Peer};
use ignis_redis::{RedisConfig, RedisConnection, RedisError};

mod cluster_common;

#[tokio::test]
async fn classic_servers_share_the_cluster() {
    exercise(Kind::Classic).await;
}

#[tokio::test]
async fn sharded_servers_share_the_cluster_in_dynamic_mode() {
    exercise(Kind::Sharded(ignis_redis::SubscriptionMode::Dynamic)).await;
}

#[tokio::test]
async fn sharded_servers_share_the_cluster_in_dynamic_private_mode() {
    exercise(Kind::Sharded(ignis_redis::SubscriptionMode::DynamicPrivate)).await;
}

#[tokio::test]
async fn sharded_servers_share_the_cluster_in_static_mode() {
    exercise(Kind::Sharded(ignis_redis::SubscriptionMode::Static)).await;
}

/// Two servers whose connections start at different seed nodes.
async fn exercise(kind: Kind) {
    let urls = cluster_common::ensure_shared_cluster();
    let prefix = cluster_common::random_prefix("ignis-rs-cluster");
    let one = cluster_common::node(cluster_common::connect(&urls, 0).await, kind, &prefix).await;
    let two = cluster_common::node(cluster_common::connect(&urls, 1).await, kind, &prefix).await;
    assert!(one.conn.is_healthy() && two.conn.is_healthy());

    // The server count is the sum over the nodes: with the classic protocol each server's
    // request channel subscription sits on the node its subscriber connected to.
    assert_eq!(one.ns.adapter().server_count().await.unwrap(), 2);
    assert_eq!(two.ns.adapter().server_count().await.unwrap(), 2);
    if kind == Kind::Classic {
        let request = format!("{prefix}-request#/#");
        for url in &urls[..2] {
            let alone = cluster_common::connect_node(url).await;
            assert_eq!(
                alone.numsub(&request).await.unwrap(),
                1,
                "{url} has one subscriber of {request}"
            );
        }
    }

    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "all").await;

    // A room on the other server only.
    p2.join("room").await;
    one.ns.to("room").emit("room", "to-room").unwrap();
    p2.expect("room", "to-room").await;
    // `p1` is not in the room: its next event is the next broadcast to all.
    one.ns.operators().emit("marker", "after-room").unwrap();
    p1.expect("marker", "after-room").await;
    p2.expect("marker", "after-room").await;

    fetch_and_remote_join(&one, &two, &p1, &mut p2).await;

    // The emitter on a connection of its own reaches the sockets of both servers.
    let emitter_conn = cluster_common::connect(&urls, 2).await;
    let emitter = kind.emitter(emitter_conn, &prefix);
    emitter.to("room").emit("emitted", &"to-room").unwrap();
    p2.expect("emitted", "to-room").await;
    emitter.emit("emitted", &"to-all").unwrap();
    p1.expect("emitted", "to-all").await;
    p2.expect("emitted", "to-all").await;
}

/// `fetch_sockets` finds the sockets of both servers, and a socket of the other server joins
/// a room from here.
async fn fetch_and_remote_join(one: &Node, two: &Node, p1: &Peer, p2: &mut Peer) {
    let ids: BTreeSet<String> = one
        .ns
        .operators()
        .fetch_sockets()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id.as_str().to_string())
        .collect();
    assert_eq!(ids, BTreeSet::from([p1.id(), p2.id()]));

    one.ns
        .to(p2.id())
        .sockets_join("vip")
        .await
        .expect("remote join");
    cluster_common::eventually(
        Duration::from_secs(5),
        "the other server applied the join",
        || async {
            two.ns
                .to("vip")
                .local()
                .fetch_sockets()
                .await
                .is_ok_and(|s| s.len() == 1)
        },
    )
    .await;
    // In the sharded modes the room may have a channel of its own now.
    two.conn.subscribed().await;
    one.ns.to("vip").emit("vip", "welcome").unwrap();
    p2.expect("vip", "welcome").await;
}

#[tokio::test]
async fn server_side_emit_and_acknowledgements_cross_the_cluster() {
    let urls = cluster_common::ensure_shared_cluster();
    for kind in cluster_common::ALL_KINDS {
        let prefix = cluster_common::random_prefix("ignis-rs-cluster-sse");
        let one =
            cluster_common::node(cluster_common::connect(&urls, 1).await, kind, &prefix).await;
        let two =
            cluster_common::node(cluster_common::connect(&urls, 2).await, kind, &prefix).await;
        two.ns.on_server_event("who", |_| async {
            Some(ignis_socketio::Value::from("two"))
        });
        let answers = one
            .ns
            .adapter()
            .server_side_emit(
                &one.ns,
                vec![ignis_socketio::Value::from("who")],
                Some(Duration::from_secs(3)),
            )
            .await
            .unwrap();
        assert_eq!(
            answers,
            vec![ignis_socketio::Value::from("two")],
            "{kind:?}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_cluster_is_reported_with_its_seed_addresses() {
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .collect();
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}"))
        .collect();
    let config = RedisConfig::from_url_list(&urls.join(","))
        .unwrap()
        .connect_timeout(Duration::from_millis(500));
    let err = RedisConnection::connect(config).await.unwrap_err();
    let RedisError::Unreachable { ref addr, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        addr,
        &format!("cluster 127.0.0.1:{},127.0.0.1:{}", ports[0], ports[1])
    );
    assert!(err.to_string().starts_with("Redis at cluster 127.0.0.1:"));
}

/// A server on the streams adapter, whose connection starts at seed `first`.
async fn streams_node(urls: &[String], first: usize, prefix: &str) -> Node {
    let conn = cluster_common::connect(urls, first).await;
    let config = ignis_redis::StreamsAdapterConfig {
        stream_name: format!("{prefix}-stream"),
        channel_prefix: prefix.to_string(),
        session_key_prefix: format!("{prefix}:session:"),
        requests_timeout: Duration::from_secs(3),
        block_time: Duration::from_millis(500),
        ..ignis_redis::StreamsAdapterConfig::default()
    };
    let factory = ignis_redis::StreamsAdapterFactory::new(conn.clone(), config).unwrap();
    assert!(factory.reading(Duration::from_secs(5)).await);
    let io = ignis_socketio::SocketIo::builder()
        .adapter(factory)
        .connection_state_recovery(ignis_socketio::RecoveryConfig::default())
        .build();
    cluster_common::serve(io, conn).await
}

/// The stream lives on the master of its slot; the readers, writers and pub/sub of servers that
/// start at different seeds find it.
#[tokio::test]
async fn streams_servers_share_the_cluster() {
    let urls = cluster_common::ensure_shared_cluster();
    let prefix = cluster_common::random_prefix("ignis-rs-cluster-streams");
    let one = streams_node(&urls, 0, &prefix).await;
    let two = streams_node(&urls, 1, &prefix).await;
    assert_eq!(one.ns.adapter().server_count().await.unwrap(), 2);
    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "streams").await;
    fetch_and_remote_join(&one, &two, &p1, &mut p2).await;
    two.ns.on_server_event("who", |_| async {
        Some(ignis_socketio::Value::from("two"))
    });
    let answers = one
        .ns
        .adapter()
        .server_side_emit(
            &one.ns,
            vec![ignis_socketio::Value::from("who")],
            Some(Duration::from_secs(3)),
        )
        .await
        .unwrap();
    assert_eq!(answers, vec![ignis_socketio::Value::from("two")]);

    // A session kept by one server is restored by the other, with what it missed.
    let offset = p1_offset(&one, &mut p1).await;
    p2.expect("hello", "offset").await;
    let sid = ignis_socketio::Sid::generate();
    let own: ignis_socketio::Room = sid.as_str().into();
    one.ns.adapter().persist_session(
        &one.ns,
        ignis_socketio::SessionData {
            sid,
            pid: "pid-cluster".into(),
            rooms: vec![own.clone()],
            data: ignis_socketio::Value::Null,
            values: Default::default(),
        },
    );
    one.ns.operators().emit("hello", "missed").unwrap();
    p2.expect("hello", "missed").await;
    let mut restored = None;
    for _ in 0..50 {
        restored = two
            .ns
            .adapter()
            .restore_session(&two.ns, "pid-cluster", &offset)
            .await;
        if restored.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(restored.expect("restored").sid, sid);
    let missed = two
        .ns
        .adapter()
        .missed_packets(&two.ns, &[own], &offset)
        .await
        .expect("known");
    assert_eq!(missed.len(), 1);
}

/// A broadcast's offset, as `p1` gets it.
async fn p1_offset(one: &Node, p1: &mut Peer) -> String {
    one.ns.operators().emit("hello", "offset").unwrap();
    p1.expect("hello", "offset").await;
    p1.last_offset().expect("an offset")
}
