//! The bench contract on socketioxide: `bench-socketioxide PORT`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};

/// Broadcasts reach authenticated clients only, as in the Ignis server.
const AUTHED: &str = "authenticated-clients";

fn now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

// socketioxide answers the CONNECT and then spawns this handler, so an event sent at once can
// arrive before the handlers below exist; the load generator sends `authenticate` again after
// a second without an answer (counted as `auth_retries`).
async fn on_connect(socket: SocketRef) {
    socket.on("authenticate", async |socket: SocketRef| {
        socket.join(AUTHED);
        let _ = socket.emit("authenticated", &json!({ "id": socket.id.to_string() }));
    });
    socket.on(
        "echo",
        async |socket: SocketRef, Data::<Value>(original), ack: AckSender| {
            let _ = socket.emit(
                "echo:response",
                &json!({ "original": original, "timestamp": now() }),
            );
            let _ = ack.send(&json!({ "ok": true }));
        },
    );
    socket.on(
        "join",
        async |socket: SocketRef, Data::<Value>(payload), ack: AckSender| {
            let rooms: Vec<String> = payload["rooms"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .filter_map(|r| r.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            socket.join(rooms.clone());
            let _ = ack.send(&rooms);
        },
    );
}

fn topic(body: &Value) -> Result<String, StatusCode> {
    body["topic"]
        .as_str()
        .filter(|t| !t.is_empty())
        .map(String::from)
        .ok_or(StatusCode::BAD_REQUEST)
}

async fn broadcast(
    State(io): State<SocketIo>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    let topic = topic(&body)?;
    io.to(AUTHED)
        .emit(&topic, &body["data"])
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(json!({ "success": true })))
}

async fn room_send(
    State(io): State<SocketIo>,
    Path(room): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    let topic = topic(&body)?;
    io.to(room)
        .emit(&topic, &body["data"])
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    Ok(Json(json!({ "success": true })))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3400);
    let (layer, io) = SocketIo::builder().req_path("/io/").build_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new()
        .route("/broadcast", post(broadcast))
        .route("/room/{room}/send", post(room_send))
        .with_state(io)
        .layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {port}");
    axum::serve(listener, app).await?;
    Ok(())
}
