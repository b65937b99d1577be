//! The chat application's socket events (the original example's): `chat:message`, `echo` and
//! `get-clients`, registered on every authenticated client.
//!
//! Two departures from the original, both so that a client cannot reach past the room rules:
//! `chat:message {room}` posts only to a room the sender is in and the rules allow it, and
//! `get-clients` lists only the sender's own id unless [`ClientList::All`] is configured (then
//! every authenticated client's; never sockets that have not authenticated).

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::SystemTime;

use ignis::socketio::constants::ClientState;
use ignis::socketio::{ClientConnectedHandler, SendOptions, SocketIoServerHelper};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{EncodedArgs, Event, SocketHandlers, SocketRef, Value, iso_timestamp};

use crate::logging::Escaped;
use crate::rooms::RoomRules;

/// The helper, known once the Socket.IO component's post-start hook has run.
pub(crate) type HelperSlot = Arc<OnceLock<SocketIoServerHelper>>;

/// Which ids `get-clients` answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ClientList {
    /// Only the sender's own id; `count` is still every authenticated client of the node.
    #[default]
    Own,
    /// Every authenticated client of the node (the original lists every tracked socket).
    All,
}

impl std::str::FromStr for ClientList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "own" => Ok(ClientList::Own),
            "all" => Ok(ClientList::All),
            other => Err(format!("{other:?} is neither own nor all")),
        }
    }
}

/// What the chat events need besides the helper.
#[derive(Debug, Clone)]
pub(crate) struct ChatOptions {
    /// The rules a room must pass for `chat:message {room}` (as for `join`).
    pub rules: Arc<RoomRules>,
    pub client_list: ClientList,
}

/// The subject of the client's token, if it had one.
pub(crate) fn subject_of(socket: &ignis_socketio::Socket) -> Option<String> {
    socket
        .data()
        .get("sub")
        .and_then(Value::as_str)
        .map(String::from)
}

/// Whether `socket` may post to `room`: it is in the room now, and the rules would let it join.
fn may_post(socket: &SocketRef, rules: &RoomRules, room: &str) -> bool {
    socket.rooms().iter().any(|r| r.as_ref() == room)
        && rules.allows(room, subject_of(socket).as_deref())
}

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
    helper: &SocketIoServerHelper,
    destination: Option<String>,
    topic: &str,
    data: Value,
    log: bool,
) {
    // Logged here, escaped: the room name comes from the client, and the helper's own line
    // would write it as it is.
    if log {
        tracing::info!(
            destination = %Escaped(destination.as_deref().unwrap_or("all")),
            topic = %Escaped(topic),
            "Message emitted"
        );
    }
    let options = SendOptions {
        destination,
        topic: topic.to_string(),
        data,
        log: false,
    };
    if let Err(e) = helper.send(options) {
        tracing::error!(topic = %Escaped(topic), error = %e, "chat send failed");
    }
}

/// Gives every newly authenticated client the chat events: one table of handlers, built once
/// and shared by every socket.
pub(crate) fn handler(slot: HelperSlot, options: ChatOptions) -> ClientConnectedHandler {
    let handlers = Arc::new(handlers(slot, options));
    ClientConnectedHandler::new(move |socket: SocketRef| {
        socket.attach(&handlers);
        async { Ok(()) }
    })
}

fn handlers(slot: HelperSlot, options: ChatOptions) -> SocketHandlers {
    let ChatOptions { rules, client_list } = options;
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
        if let Some(room) = &room
            && !may_post(&socket, &rules, room)
        {
            tracing::info!(
                id = %socket.id(),
                room = %Escaped(room),
                "chat message refused: not in the room, or the room rules refuse it"
            );
            return reply_error(
                &socket,
                &mut event,
                "not allowed to post to this room: join it first",
            );
        }
        let data = object([
            ("from", socket.id().as_str().into()),
            ("message", message.into()),
            ("timestamp", now()),
        ]);
        match room {
            Some(room) => send(helper, Some(room), "chat:message", data, true),
            None => send(helper, None, "chat:broadcast", data, true),
        }
        event.ack(&*OK);
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
        if let Err(e) = socket.emit("echo:response", data) {
            tracing::error!(topic = "echo:response", error = %e, "chat send failed");
        }
        event.ack(&*OK);
    });
    handlers.on_sync("get-clients", move |socket, event| {
        let Some(helper) = slot.get() else { return };
        // The registry is walked only when the ids are listed; the count is a counter.
        let (count, clients): (usize, Vec<Value>) = match client_list {
            ClientList::All => {
                let ids: Vec<Value> = helper
                    .clients()
                    .into_iter()
                    .filter(|c| c.state() == ClientState::Authenticated)
                    .map(|c| Value::from(c.id().to_string()))
                    .collect();
                (ids.len(), ids)
            }
            ClientList::Own => (
                helper.authenticated_count(),
                vec![Value::from(socket.id().to_string())],
            ),
        };
        let data = object([
            ("count", Value::from_u64(count as u64)),
            ("clients", Value::Array(clients)),
        ]);
        send(
            helper,
            Some(socket.id().to_string()),
            "clients:list",
            data,
            false,
        );
        event.ack(&*OK);
    });
    handlers
}
