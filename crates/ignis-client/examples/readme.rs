//! The README's client example: a typed Socket.IO client, then the Ignis helper.
//! Run a server first (`cargo run -p ignis-socketio --example interop -- --port 3000`).

use std::time::Duration;

use ignis_client::{Client, HelperOptions, SocketIoClientHelper, Subscription, Value};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A plain Socket.IO client: WebSocket or polling with upgrade, reconnection, acks, binary.
    let socket = Client::builder("http://127.0.0.1:3000")
        .auth(serde_json::json!({ "token": "secret" }))
        .connect("/")
        .await?;
    socket.on("welcome", |event| println!("welcome {:?}", event.args));
    let answer = socket
        .emit_with_ack(
            "echo",
            vec![Value::from("hi"), Value::bytes(vec![1u8, 2, 3])],
            Duration::from_secs(5),
        )
        .await?;
    println!("echoed {answer:?}");
    socket.disconnect();

    // The Ignis managed client: authenticate, subscribe, join rooms.
    let helper = SocketIoClientHelper::new(
        HelperOptions::new(
            "my-service",
            Client::builder("http://127.0.0.1:3000").path("/io"),
        )
        .on_authenticated(|payload| println!("authenticated: {payload:?}"))
        .on_disconnected(|reason| println!("disconnected: {reason}")),
    )?;
    helper.connect_and_wait().await?;
    helper.authenticate_and_wait().await?;
    helper.subscribe(Subscription::sync("chat:message", |event| {
        println!("{:?}", event.args)
    }));
    helper.join_rooms(&["lobby"]);
    helper.emit(
        "chat:message",
        &serde_json::json!({ "room": "lobby", "message": "hello" }),
    )?;
    helper.shutdown();
    Ok(())
}
