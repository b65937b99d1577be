//! A node of a Redis Cluster goes away and comes back: the servers keep delivering where the
//! cluster can, report themselves degraded while their subscriptions are gone, and restore
//! them, and follow a slot that moves to another master. On a private cluster (127.0.0.1:7111-7113, made by `scripts/redis-cluster.sh`), since
//! stopping nodes would disturb the tests that share the other one.

use std::time::Duration;

use cluster_common::Kind;
use ignis_redis::{RedisConnection, SubscriptionMode};

mod cluster_common;

const PORT: u16 = 7111;

/// Stops the node at `url` (its data is gone; its node table stays, so it rejoins).
async fn stop_node(url: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // The connection ends with the server: no answer is expected.
    let _ = redis::cmd("SHUTDOWN")
        .arg("NOSAVE")
        .query_async::<()>(&mut conn)
        .await;
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    cluster_common::eventually(Duration::from_secs(5), "the node stopped", || async move {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    })
    .await;
}

/// The URL of the master serving the slot of `channel`.
async fn master_of(urls: &[String], channel: &str) -> String {
    let client = redis::Client::open(urls[0].as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .unwrap();
    let slots: Vec<(i64, i64, (String, i64))> = {
        let raw: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn)
            .await
            .unwrap();
        raw.into_iter()
            .map(|range| {
                let redis::Value::Array(parts) = range else {
                    panic!("CLUSTER SLOTS")
                };
                let start: i64 = redis::from_redis_value(parts[0].clone()).unwrap();
                let end: i64 = redis::from_redis_value(parts[1].clone()).unwrap();
                let redis::Value::Array(master) = parts[2].clone() else {
                    panic!("CLUSTER SLOTS")
                };
                let host: String = redis::from_redis_value(master[0].clone()).unwrap();
                let port: i64 = redis::from_redis_value(master[1].clone()).unwrap();
                (start, end, (host, port))
            })
            .collect()
    };
    let (_, _, (host, port)) = slots
        .into_iter()
        .find(|(start, end, _)| (*start..=*end).contains(&slot))
        .expect("the slot has a master");
    format!("redis://{host}:{port}")
}

async fn healthy(conn: &RedisConnection) -> bool {
    conn.is_healthy()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_follow_restarted_nodes_and_moved_slots() {
    let urls = cluster_common::ensure_private_cluster(PORT);

    // Classic: the subscriber of `one` sits on the third node, which goes away. It moves to
    // another node; broadcasts go on meanwhile, through the nodes that are left.
    let prefix = cluster_common::random_prefix("ignis-rs-restart");
    let one = cluster_common::node(
        cluster_common::connect(&urls, 2).await,
        Kind::Classic,
        &prefix,
    )
    .await;
    let two = cluster_common::node(
        cluster_common::connect(&urls, 0).await,
        Kind::Classic,
        &prefix,
    )
    .await;
    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "before").await;
    let request = format!("{prefix}-request#/#");
    assert_eq!(
        cluster_common::connect_node(&urls[2])
            .await
            .numsub(&request)
            .await
            .unwrap(),
        1
    );

    stop_node(&urls[2]).await;
    cluster_common::eventually(
        Duration::from_secs(10),
        "the classic subscriber moved to another node",
        || async {
            let mut total = 0;
            for url in &urls[..2] {
                total += cluster_common::connect_node(url)
                    .await
                    .numsub(&request)
                    .await
                    .unwrap_or(0);
            }
            total == 2
        },
    )
    .await;
    cluster_common::eventually(Duration::from_secs(10), "both healthy again", || async {
        healthy(&one.conn).await && healthy(&two.conn).await
    })
    .await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "while-down").await;

    cluster_common::script("ensure", PORT);
    cluster_common::eventually(Duration::from_secs(10), "both servers counted", || async {
        one.ns.adapter().server_count().await == Ok(2)
    })
    .await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "after").await;
    drop((p1, p2, one, two));

    // Sharded: the master of the namespace's main channel goes away. Both servers report
    // themselves degraded, then subscribe again once it is back.
    let prefix = cluster_common::random_prefix("ignis-rs-restart-sharded");
    let kind = Kind::Sharded(SubscriptionMode::Dynamic);
    let one = cluster_common::node(cluster_common::connect(&urls, 0).await, kind, &prefix).await;
    let two = cluster_common::node(cluster_common::connect(&urls, 1).await, kind, &prefix).await;
    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "before").await;

    let main = format!("{prefix}#/#");
    let owner = master_of(&urls, &main).await;
    stop_node(&owner).await;
    cluster_common::eventually(
        Duration::from_secs(10),
        "both report the outage",
        || async { !healthy(&one.conn).await && !healthy(&two.conn).await },
    )
    .await;

    cluster_common::script("ensure", PORT);
    cluster_common::eventually(
        Duration::from_secs(20),
        "both are healthy again",
        || async { healthy(&one.conn).await && healthy(&two.conn).await },
    )
    .await;
    // The command connection finds its way back to the restarted node too.
    cluster_common::eventually(Duration::from_secs(10), "both servers counted", || async {
        one.ns.adapter().server_count().await == Ok(2)
    })
    .await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "after").await;
    p2.join("room").await;
    one.ns.to("room").emit("room", "after-restart").unwrap();
    p2.expect("room", "after-restart").await;

    drop((p1, p2, one, two));

    slot_moves(&urls).await;
}

async fn query<T: redis::FromRedisValue>(url: &str, args: &[&str]) -> T {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd(args[0])
        .arg(&args[1..])
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{args:?} on {url}: {e}"))
}

/// The slot of the main channel moves to another master: Redis drops the sharded
/// subscriptions of that slot, and the servers subscribe again where it went.
async fn slot_moves(urls: &[String]) {
    let prefix = cluster_common::random_prefix("ignis-rs-slot-move");
    let kind = Kind::Sharded(SubscriptionMode::Dynamic);
    let one = cluster_common::node(cluster_common::connect(urls, 0).await, kind, &prefix).await;
    let two = cluster_common::node(cluster_common::connect(urls, 1).await, kind, &prefix).await;
    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "before-move").await;

    let main = format!("{prefix}#/#");
    let slot: i64 = query(&urls[0], &["CLUSTER", "KEYSLOT", &main]).await;
    let slot = slot.to_string();
    let from = master_of(urls, &main).await;
    let to = urls.iter().find(|u| **u != from).unwrap().clone();
    let from_id: String = query(&from, &["CLUSTER", "MYID"]).await;
    let to_id: String = query(&to, &["CLUSTER", "MYID"]).await;
    let _: () = query(&to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]).await;
    let _: () = query(&from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]).await;
    for url in urls {
        let _: () = query(url, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]).await;
    }

    cluster_common::eventually(
        Duration::from_secs(10),
        "both servers subscribed on the slot's new master",
        || async {
            let counts: std::collections::HashMap<String, usize> =
                query(&to, &["PUBSUB", "SHARDNUMSUB", &main]).await;
            counts.get(&main) == Some(&2)
        },
    )
    .await;
    assert_eq!(one.ns.adapter().server_count().await.unwrap(), 2);
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "after-move").await;
}
