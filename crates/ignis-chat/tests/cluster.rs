//! Two chat nodes on one PostgreSQL database and one Redis form one chat: room messages, DMs,
//! typing and presence reach users on the other node. Needs Redis at 127.0.0.1:6379
//! (`REDIS_URL` names another) and the PostgreSQL server of the other tests.

mod common;

use common::{Backend, Database, TestChat, assert_ok};
use ignis::socketio::RedisConfig;
use serde_json::{Value as Json, json};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn node(db: &Database, key: &str) -> TestChat {
    let mut config = common::config(db);
    config.redis = Some(RedisConfig::from_url_list(&redis_url()).expect("a Redis URL"));
    config.redis_key = key.to_string();
    let chat = ignis_chat::start(config).await.unwrap_or_else(|e| {
        panic!(
            "a chat node starts (it needs Redis at {}): {e}",
            redis_url()
        )
    });
    let port = chat.local_addr().port();
    TestChat {
        chat,
        port,
        db: Database::shared(db),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_are_one_chat() {
    let db = Database::new(Backend::Postgres).await;
    let key = format!("ignis-chat-test-{}", std::process::id());
    let n1 = node(&db, &key).await;
    let n2 = node(&db, &key).await;
    let (alice, alice_id) = n1.user("alice").await;
    let (bob, bob_id) = n2.user("bob").await;
    let room = n1.room(&alice, "general", false).await;

    let mut a = n1.client(&alice).await;
    let mut b_phone = n2.client(&bob).await;
    let mut b_laptop = n1.client(&bob).await;
    let is_bob = |v: &Json| v["userId"] == json!(bob_id);
    assert_eq!(
        a.expect_where("presence:changed", is_bob).await["status"],
        "online"
    );

    assert_ok(&a.call("room:join", json!({"roomId": room})).await);
    assert_ok(&b_phone.call("room:join", json!({"roomId": room})).await);
    a.expect("room:user-joined").await;

    // A room message from node 2 reaches node 1, and back.
    assert_ok(
        &b_phone
            .call("message:send", json!({"roomId": room, "content": "from 2"}))
            .await,
    );
    assert_eq!(a.expect("message:new").await["content"], "from 2");
    assert_ok(
        &a.call("message:send", json!({"roomId": room, "content": "from 1"}))
            .await,
    );
    b_phone
        .expect_where("message:new", |m| m["content"] == "from 1")
        .await;

    // Typing crosses nodes.
    assert_ok(&b_phone.call("typing:start", json!({"roomId": room})).await);
    let typing = a.expect("typing:update").await;
    assert_eq!(
        (typing["userId"].clone(), typing["isTyping"].clone()),
        (json!(bob_id), json!(true))
    );

    // A DM reaches every device of the receiver, on both nodes, and the sender's.
    let sent = a
        .call(
            "dm:send",
            json!({"receiverId": bob_id, "content": "hi bob"}),
        )
        .await;
    assert_ok(&sent);
    let id = sent["message"]["id"].clone();
    assert_eq!(b_phone.expect("dm:new").await["id"], id);
    assert_eq!(b_laptop.expect("dm:new").await["id"], id);
    assert_eq!(a.expect("dm:new").await["id"], id);
    assert_eq!(sent["message"]["senderId"], json!(alice_id));

    // Bob leaves node 2 but is still on node 1: online. Then node 1 too: offline.
    b_phone.close();
    b_laptop.close();
    let offline = a.expect_where("presence:changed", is_bob).await;
    assert_eq!(offline["status"], "offline");
    let (_, online) = n2.get("/api/chat/users?online=true", &alice).await;
    let online: Vec<&str> = online
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    assert_eq!(online, vec![alice_id.as_str()]);
    n2.chat.stop().await;
    n1.chat.stop().await;
}
