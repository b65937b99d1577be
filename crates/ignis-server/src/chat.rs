//! The chat application's socket events (the original example's): `chat:message`, `echo` and
//! `get-clients`, registered on every authenticated client.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::SystemTime;

use ignis::socketio::{ClientConnectedHandler, SendOptions, SocketIOServerHelper};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{EncodedArgs, Event, SocketHandlers, SocketRef, Value, iso_timestamp};

/// The helper, known once the Socket.IO component's post-start hook has run.
pub type HelperSlot = Arc<OnceLock<SocketIOServerHelper>>;

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut m = Map::with_capacity(N);
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}

/// The acknowledgement of every chat event that succeeded, `[{ok: true}]`: built and encoded
/// once.
static OK: LazyLock<EncodedArgs> =
    LazyLock::new(|| EncodedArgs::new(vec![object([("ok", true.into())])]));

fn now() -> Value {
    Value::from(iso_timestamp(SystemTime::now()))
}

/// Tells the client its payload was malformed (through the ack if it asked for one, else an
/// `error` event); the connection and the handlers stay as they were.
fn reply_error(socket: &SocketRef, event: &mut Event, message: &str) {
    let payload = object([
        ("event", event.name.as_str().into()),
        ("message", message.into()),
    ]);
    if event.wants_ack() {
        event.ack(vec![object([("error", payload)])]);
    } else {
        let _ = socket.emit("error", &payload);
    }
}

fn send(
    helper: &SocketIOServerHelper,
    destination: Option<String>,
    topic: &str,
    data: Value,
    log: bool,
) {
    let options = SendOptions {
        destination,
        topic: topic.to_string(),
        data,
        log,
    };
    if let Err(e) = helper.send(options) {
        tracing::error!(topic, error = %e, "chat send failed");
    }
}

/// Gives every newly authenticated client the chat events: one table of handlers, built once
/// and shared by every socket.
pub fn handler(slot: HelperSlot) -> ClientConnectedHandler {
    let handlers = Arc::new(handlers(slot));
    ClientConnectedHandler::new(move |socket: SocketRef| {
        socket.attach(&handlers);
        async { Ok(()) }
    })
}

fn handlers(slot: HelperSlot) -> SocketHandlers {
    let mut handlers = SocketHandlers::new();
    let s = slot.clone();
    // None of the handlers waits: they run in place, without a future each.
    handlers.on_sync("chat:message", move |socket, mut event| {
        let Some(helper) = s.get() else { return };
        let payload = event.args.first().and_then(Value::as_map).cloned();
        let Some(payload) = payload else {
            return reply_error(
                &socket,
                &mut event,
                "payload must be an object {room?, message}",
            );
        };
        let Some(message) = payload.get("message").and_then(Value::as_str) else {
            return reply_error(&socket, &mut event, "message must be a string");
        };
        let room = match payload.get("room") {
            None | Some(Value::Null) => None,
            Some(Value::Str(room)) if room.is_empty() => None,
            Some(Value::Str(room)) => Some(room.clone()),
            Some(_) => return reply_error(&socket, &mut event, "room must be a string"),
        };
        let data = object([
            ("from", socket.id().as_str().into()),
            ("message", message.into()),
            ("timestamp", now()),
        ]);
        match room {
            Some(room) => send(helper, Some(room), "chat:message", data, true),
            None => send(helper, None, "chat:broadcast", data, true),
        }
        event.ack_encoded(&OK);
    });
    let s = slot.clone();
    handlers.on_sync("echo", move |socket, mut event| {
        if s.get().is_none() {
            return;
        }
        let original = if event.args.is_empty() {
            Value::Null
        } else {
            event.args.swap_remove(0)
        };
        let data = object([("original", original), ("timestamp", now())]);
        // The sender is connected here: no room lookup or adapter round is needed to reach
        // it (the original goes through its emitter, which lands on this same socket).
        if let Err(e) = socket.emit_values("echo:response", std::slice::from_ref(&data)) {
            tracing::error!(topic = "echo:response", error = %e, "chat send failed");
        }
        event.ack_encoded(&OK);
    });
    handlers.on_sync("get-clients", move |socket, mut event| {
        let Some(helper) = slot.get() else { return };
        let clients: Vec<Value> = helper
            .clients()
            .iter()
            .map(|c| Value::from(c.id().to_string()))
            .collect();
        let data = object([
            ("count", Value::from_u64(clients.len() as u64)),
            ("clients", Value::Array(clients)),
        ]);
        send(
            helper,
            Some(socket.id().to_string()),
            "clients:list",
            data,
            false,
        );
        event.ack_encoded(&OK);
    });
    handlers
}
