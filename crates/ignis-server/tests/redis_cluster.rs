//! Two `ignis-server` processes on a Redis Cluster (`REDIS_CLUSTER_URLS`, default the three
//! masters `scripts/redis-cluster.sh` makes on 127.0.0.1:7101-7103, started when it is not up):
//! a REST send to one reaches a Socket.IO client of the other, in both Redis protocols.
//!
//! The client speaks Engine.IO long-polling over plain HTTP/1.1, which is all this needs.

use std::process::Stdio;
use std::time::Duration;

mod process;
use process::{PollingClient, http, start_server};

use serde_json::{Value, json};

fn cluster_urls() -> String {
    if let Ok(urls) = std::env::var("REDIS_CLUSTER_URLS") {
        return urls;
    }
    // Idempotent, and quick when the cluster is up; the test never skips.
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/redis-cluster.sh"
    );
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg("ensure")
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(status.success(), "{script} ensure failed");
    "redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103".into()
}

async fn rest_post(port: u16, path: &str, body: Value) -> Value {
    let (status, answer) = http(port, "POST", path, Some(&body.to_string())).await;
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

async fn a_rest_send_on_one_server_reaches_a_client_of_the_other(mode: &[&str]) {
    let urls = cluster_urls();
    let key = format!("ignis-server-cluster-{:016x}", rand::random::<u64>());
    let mut args = vec!["--redis-url", urls.as_str(), "--redis-key", key.as_str()];
    args.extend_from_slice(mode);
    let one = start_server(&args);
    let two = start_server(&args);

    let mut client = PollingClient::connect(two.port).await;

    let sent = rest_post(
        one.port,
        &format!("/api/socket/client/{}/send", client.id),
        json!({"topic": "cluster-news", "data": {"from": "one"}}),
    )
    .await;
    assert_eq!(sent["success"], json!(true), "{sent}");
    assert_eq!(client.event("cluster-news").await, json!({"from": "one"}));

    // A room the client joined through the other server, then a send to that room.
    let joined = rest_post(
        one.port,
        &format!("/api/socket/client/{}/join", client.id),
        json!({"rooms": ["cluster-room"]}),
    )
    .await;
    assert_eq!(joined["success"], json!(true), "{joined}");
    // In the sharded dynamic mode the room gets a channel of its own on the other server; the
    // join's answer does not wait for that subscription.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = rest_post(
        one.port,
        "/api/socket/room/cluster-room/send",
        json!({"topic": "room-news", "data": 7}),
    )
    .await;
    assert_eq!(sent["success"], json!(true), "{sent}");
    assert_eq!(client.event("room-news").await, json!(7));

    // The rooms of the cluster and their members, seen from the server the client is not on.
    let rooms = rest_get(one.port, "/api/socket/rooms").await;
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .contains(&json!({"room": "cluster-room", "size": 1})),
        "{rooms}"
    );
    let members = rest_get(one.port, "/api/socket/room/cluster-room/clients").await;
    assert_eq!(members["clients"], json!([client.id]), "{members}");

    // A disconnect through the other server.
    let (status, answer) = http(
        one.port,
        "DELETE",
        &format!("/api/socket/client/{}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["success"], json!(true), "{answer}");
    tokio::time::timeout(Duration::from_secs(10), async {
        while !client.poll().await.iter().any(|p| p == "41") {}
    })
    .await
    .expect("the client's DISCONNECT within 10 s");
    let members = rest_get(one.port, "/api/socket/room/cluster-room/clients").await;
    assert_eq!(members["count"], json!(0), "{members}");
}

async fn rest_get(port: u16, path: &str) -> Value {
    let (status, answer) = http(port, "GET", path, None).await;
    assert_eq!(status, 200, "{path}: {answer}");
    serde_json::from_str(&answer).unwrap()
}

#[tokio::test]
async fn classic_rest_send_crosses_the_cluster() {
    a_rest_send_on_one_server_reaches_a_client_of_the_other(&[]).await;
}

#[tokio::test]
async fn sharded_rest_send_crosses_the_cluster() {
    a_rest_send_on_one_server_reaches_a_client_of_the_other(&["--redis-mode", "sharded"]).await;
}
