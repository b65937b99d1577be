//! `SocketIo::stats()` after known traffic from a raw long-polling client: events received,
//! packets sent, broadcasts with their recipients, and a volatile broadcast dropped for a
//! client that has not taken what came before.

mod common;

use common::Polling;

use ignis_socketio::SocketIo;

#[tokio::test]
async fn stats_count_events_sends_broadcasts_and_volatile_drops() {
    let io = SocketIo::builder().build();
    io.ns("/", |socket| async move {
        socket.on_sync("echo", |_, mut event| {
            let args = std::mem::take(&mut event.args);
            event.ack(args);
        });
    });
    let client = Polling::joined(common::serve(&io).await).await;
    client.post(r#"421["echo","a"]"#).await;
    client.until(|p| p.starts_with("431")).await;
    client.post(r#"422["echo","b"]"#).await;
    client.until(|p| p.starts_with("432")).await;

    let stats = io.stats();
    assert_eq!(stats.events_received, 2);
    // The CONNECT answer and two acknowledgements.
    assert_eq!(stats.packets_sent, 3);
    assert!(stats.bytes_sent >= 3, "{stats:?}");
    assert_eq!(stats.send_failures, 0);
    assert_eq!(stats.broadcasts, 0);

    // The client does not poll: the first broadcast waits in its queue, and a volatile one made
    // after it is dropped for this client.
    io.emit("news", "first").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    io.operators().volatile().emit("news", "second").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let stats = io.stats();
    assert_eq!(stats.broadcasts, 2);
    assert_eq!(stats.broadcast_recipients, 2);
    assert!(stats.broadcast_bytes > 0);
    assert_eq!(stats.volatile_drops, 1, "{stats:?}");

    // What it then reads is the first broadcast alone.
    let seen = client.until(|p| p.contains("first")).await;
    assert!(seen.iter().all(|p| !p.contains("second")), "{seen:?}");

    let engine = io.engine().stats();
    assert_eq!(engine.open_polling, 1);
    assert_eq!(engine.handshakes_polling, 1);
    assert!(engine.messages_in >= 3, "{engine:?}");
    assert!(engine.bytes_in > 0);
}
