//! The room messages' single writer, on SQLite and on PostgreSQL: messages sent at once by many
//! senders share transactions, yet each is stored exactly once, each sender's in the order sent,
//! and a message that cannot be stored fails alone.

mod common;

use common::{Backend, TestChat};
use serde_json::Value as Json;

macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

on_both_databases!(
    concurrent_senders_share_the_writer,
    membership_is_remembered
);

const SENDERS: usize = 20;
const EACH: usize = 40;

async fn concurrent_senders_share_the_writer(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let room = t.room(&alice, "general", false).await;
    let store = t.chat.chat().store.clone();
    let sender = store.user(&alice_id).await.unwrap().unwrap();
    let mut tasks = Vec::new();
    for task in 0..SENDERS {
        let (store, sender, room) = (store.clone(), sender.clone(), room.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..EACH {
                store
                    .insert_message(ignis_chat::store::NewMessage {
                        room_id: &room,
                        sender: &sender,
                        content: &format!("{task} {i}"),
                        kind: "text",
                    })
                    .await
                    .expect("stored");
            }
        }));
    }
    // Meanwhile, messages to a room that does not exist: refused by the database one by one,
    // whatever batch they fall in, and they take no other message down with them.
    let (bad_store, bad_sender) = (store.clone(), sender.clone());
    let bad = tokio::spawn(async move {
        let mut refused = 0;
        for i in 0..10 {
            let result = bad_store
                .insert_message(ignis_chat::store::NewMessage {
                    room_id: "no-such-room",
                    sender: &bad_sender,
                    content: &format!("bad {i}"),
                    kind: "text",
                })
                .await;
            refused += usize::from(result.is_err());
        }
        refused
    });
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(bad.await.unwrap(), 10);

    // The whole history, oldest first, through the API's pages.
    let mut history: Vec<String> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(id) => format!("/api/chat/rooms/{room}/messages?limit=100&before={id}"),
            None => format!("/api/chat/rooms/{room}/messages?limit=100"),
        };
        let (status, page) = t.get(&path, &alice).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            break;
        }
        before = page.last().and_then(|m| m["id"].as_str()).map(String::from);
        history.extend(
            page.iter()
                .map(|m: &Json| m["content"].as_str().unwrap().to_string()),
        );
    }
    history.reverse();
    assert_eq!(history.len(), SENDERS * EACH);
    let mut next = [0usize; SENDERS];
    for content in &history {
        let (task, i) = content.split_once(' ').unwrap();
        let (task, i): (usize, usize) = (task.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[task], "sender {task} out of order in {history:?}");
        next[task] += 1;
    }
    assert!(next.iter().all(|n| *n == EACH));
    t.stop().await;
}

async fn membership_is_remembered(backend: Backend) {
    let t = TestChat::start(backend).await;
    let (alice, alice_id) = t.user("alice").await;
    let (_, bob_id) = t.user("bob").await;
    let room = t.room(&alice, "general", false).await;
    let store = &t.chat.chat().store;
    assert!(store.is_member(&room, &alice_id).await.unwrap());
    assert!(!store.is_member(&room, &bob_id).await.unwrap());
    assert!(!store.is_member("no-such-room", &alice_id).await.unwrap());
    // Not a member is not remembered: bob joins and is one at once.
    store.add_member(&room, &bob_id, "member").await.unwrap();
    assert!(store.is_member(&room, &bob_id).await.unwrap());
    assert!(store.is_member(&room, &alice_id).await.unwrap());
    t.stop().await;
}
