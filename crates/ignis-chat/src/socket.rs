//! The chat's Socket.IO events.
//!
//! A client connects to `/io`, authenticates through the component's flow with the token the
//! REST API issued (`authenticate {token}`, the CONNECT `auth.token` or `Authorization: Bearer`),
//! and then gets these events. Identity always comes from the token: a `userId` in a payload is
//! ignored. Every event answers its acknowledgement with `{ok: true, …}` or
//! `{ok: false, error: {code, message}}`; a failure is also sent to the socket as `error`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ignis::BoxError;
use ignis::socketio::{AuthRequest, SendOptions};
use ignis_socketio::proto::value::{Map, to_value};
use ignis_socketio::{AckSender, Event, Handshake, Sid, SocketHandlers, SocketRef, Value};
use parking_lot::Mutex;
use serde::Serialize;

use crate::Chat;
use crate::model::{Sender, User, now};
use crate::store::{NewMessage, WriteError};

/// How long a `typing:start` lasts without another.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest message, in characters.
pub const MAX_CONTENT_CHARS: usize = 4000;

/// The Socket.IO room of a chat room.
pub fn room_of(room_id: &str) -> String {
    format!("room:{room_id}")
}

/// The Socket.IO room of every connection of a user.
pub fn user_room(user_id: &str) -> String {
    format!("user:{user_id}")
}

/// A connected socket's user and typing indicators.
struct Session {
    /// Shared with each event, which needs it without a copy of its strings.
    user: Arc<User>,
    turn: Arc<Turn>,
    /// Room id -> the timer that stops the indicator.
    typing: HashMap<String, tokio::task::AbortHandle>,
}

/// The most events of one connection that may wait for their turn; past it, events are
/// refused (`RATE_LIMITED`) rather than queued, so a client cannot pile up tasks.
pub const MAX_WAITING_EVENTS: usize = 32;

/// A connection's events take turns.
#[derive(Default)]
struct Turn {
    /// Taken by each event for its whole work, in the order the events arrived (the handler's
    /// first poll queues for it, and tokio's mutex is first come, first served): events that
    /// wait on the database would otherwise finish, and store, in any order.
    lock: tokio::sync::Mutex<()>,
    /// Events holding or waiting for the lock.
    waiting: AtomicUsize,
}

/// One event's place among a connection's waiting events.
struct Place<'a>(&'a Turn);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Turn {
    fn place(&self) -> Option<Place<'_>> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_WAITING_EVENTS {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Place(self))
    }
}

/// The authenticated sockets of this node.
#[derive(Default)]
pub(crate) struct Sockets {
    sessions: Mutex<HashMap<Sid, Session>>,
}

/// A failed event: its code and message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// A machine-readable code: `VALIDATION`, `FORBIDDEN`, `NOT_FOUND`, or `<ACTION>_FAILED`
    /// (`SEND_FAILED`, `JOIN_FAILED`, ...) when the store failed.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

fn fail(code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn validation(message: impl Into<String>) -> Failure {
    fail("VALIDATION", message)
}

/// The store failed: the event's own code, and no detail for the client.
fn store_failure(code: &'static str, e: impl std::fmt::Display) -> Failure {
    tracing::error!(code, error = %e, "chat event failed in the store");
    fail(code, "the chat could not do this now; try again")
}

/// The token a client presented: the `authenticate` payload's, the CONNECT `auth.token`, or the
/// `Authorization: Bearer` header.
fn token_of(payload: Option<&Value>, handshake: &Handshake) -> Option<String> {
    let from = |v: Option<&Value>| {
        v.and_then(|v| v.get("token"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(String::from)
    };
    from(payload)
        .or_else(|| from(Some(&handshake.auth)))
        .or_else(|| {
            handshake
                .header("authorization")
                .and_then(|h| {
                    h.strip_prefix("Bearer ")
                        .or_else(|| h.strip_prefix("bearer "))
                })
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        })
}

/// The authenticate handler: a valid token of a user that exists. The socket is admitted
/// here, before the handler returns, and not in the component's client-connected handler: the
/// component emits `authenticated` before it runs that handler, and a client may send its
/// first event the moment it hears `authenticated`. An event that found no handler yet would
/// be dropped without an answer, its acknowledgement never sent.
pub(crate) async fn authenticate(
    chat: &Arc<Chat>,
    handlers: &Arc<SocketHandlers>,
    request: AuthRequest,
) -> Result<bool, BoxError> {
    let Some(token) = token_of(request.payload.as_ref(), &request.handshake) else {
        return Ok(false);
    };
    let Some(user_id) = chat.tokens.verify(&token) else {
        return Ok(false);
    };
    let Some(user) = chat.store.user(&user_id).await? else {
        return Ok(false);
    };
    request.socket.set_data(to_value(&Sender::from(&user))?);
    admit(
        chat,
        handlers,
        &request.socket,
        User {
            is_online: true,
            last_seen_at: None,
            ..user
        },
    );
    Ok(true)
}

/// The socket gets the chat's events and its user's room, and counts for the user's presence.
fn admit(chat: &Arc<Chat>, handlers: &Arc<SocketHandlers>, socket: &SocketRef, user: User) {
    // Handlers first: a disconnect from now on is seen, and a disconnect before is caught by
    // the check below; `leave` runs once whichever sees it.
    socket.attach(handlers);
    socket.join(user_room(&user.id));
    let user_id = user.id.clone();
    chat.sockets.sessions.lock().insert(
        socket.id(),
        Session {
            user: Arc::new(user),
            turn: Arc::new(Turn::default()),
            typing: HashMap::new(),
        },
    );
    chat.presence.connect(&user_id);
    if !socket.connected() {
        leave(chat, socket);
    }
}

/// A socket left: its typing stops, its user's presence counts one connection fewer.
fn leave(chat: &Chat, socket: &SocketRef) {
    let Some(session) = chat.sockets.sessions.lock().remove(&socket.id()) else {
        return;
    };
    for (room_id, timer) in session.typing {
        timer.abort();
        typing_update(chat, &room_id, &session.user.id, false, None);
    }
    chat.presence.disconnect(&session.user.id);
}

fn user_of(chat: &Chat, socket: &SocketRef) -> Option<(Arc<User>, Arc<Turn>)> {
    chat.sockets
        .sessions
        .lock()
        .get(&socket.id())
        .map(|s| (s.user.clone(), s.turn.clone()))
}

fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut m = Map::with_capacity(N);
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}

/// Tells every connection of `user_id`, on any node, that `added_by` made them a member of
/// `room` (a private room they could not see before): `room:added {room, addedBy}`.
pub(crate) fn announce_room_added(
    chat: &Chat,
    user_id: &str,
    room: &impl Serialize,
    added_by: &str,
) {
    let Some(helper) = chat.helper() else { return };
    let payload = object([("room", value_of(room)), ("addedBy", Value::from(added_by))]);
    if let Err(e) = helper
        .io()
        .to(vec![user_room(user_id)])
        .emit("room:added", vec![payload])
    {
        // The membership is stored: the page finds the room at its next list refresh.
        tracing::warn!(error = %e, "room:added not sent");
    }
}

fn value_of(v: &impl Serialize) -> Value {
    to_value(v).unwrap_or(Value::Null)
}

/// Answers an event: `{ok: true, …fields}`, or `{ok: false, error}` and an `error` event.
fn reply(socket: &SocketRef, ack: Option<AckSender>, outcome: Result<Vec<(&str, Value)>, Failure>) {
    match outcome {
        Ok(fields) => {
            if let Some(ack) = ack {
                let mut m = Map::with_capacity(fields.len() + 1);
                m.insert("ok", true);
                for (k, v) in fields {
                    m.insert(k, v);
                }
                ack.send(vec![Value::Map(m)]);
            }
        }
        Err(f) => {
            let error = object([("code", f.code.into()), ("message", f.message.into())]);
            let _ = socket.emit("error", ignis_socketio::Args::value(&error));
            if let Some(ack) = ack {
                ack.send(vec![object([("ok", false.into()), ("error", error)])]);
            }
        }
    }
}

/// The event's payload object.
fn payload(event: &Event) -> Result<&Map, Failure> {
    event
        .args
        .first()
        .and_then(Value::as_map)
        .ok_or_else(|| validation("the payload must be an object"))
}

/// An id: no id of the chat is empty, longer than 100 bytes or holds a NUL (which PostgreSQL
/// cannot even compare, so looking it up would fail rather than find nothing).
fn id_field<'a>(p: &'a Map, name: &str) -> Result<&'a str, Failure> {
    match p.get(name) {
        Some(Value::Str(s)) if !s.is_empty() && s.len() <= 100 && !s.contains('\0') => Ok(s),
        Some(Value::Str(_)) => Err(validation(format!("{name} must be a valid id"))),
        None | Some(Value::Null) => Err(validation(format!("{name} is required"))),
        Some(_) => Err(validation(format!("{name} must be a string"))),
    }
}

/// Message content: a string of 1 to 4000 characters, not only blanks, without NUL (which
/// PostgreSQL text cannot hold: refused on either database, so that both behave alike).
pub fn check_content(v: Option<&Value>) -> Result<&str, Failure> {
    match v {
        Some(Value::Str(s)) => {
            if s.trim().is_empty() {
                Err(validation("content must not be empty"))
            } else if s.contains('\0') {
                Err(validation("content must not contain NUL characters"))
            } else if s.chars().count() > MAX_CONTENT_CHARS {
                Err(validation(format!(
                    "content must be at most {MAX_CONTENT_CHARS} characters"
                )))
            } else {
                Ok(s)
            }
        }
        None | Some(Value::Null) => Err(validation("content is required")),
        Some(_) => Err(validation("content must be a string")),
    }
}

fn message_type(p: &Map) -> Result<&str, Failure> {
    match p.get("type") {
        None | Some(Value::Null) => Ok("text"),
        Some(Value::Str(s))
            if !s.is_empty()
                && s.len() <= 20
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            Ok(s)
        }
        Some(_) => Err(validation(
            "type must be 1 to 20 characters of letters, digits, _ and -",
        )),
    }
}

fn send_to(chat: &Chat, room: String, topic: &str, data: Value) -> Result<(), Failure> {
    let Some(helper) = chat.helper() else {
        return Err(fail("SEND_FAILED", "the chat is starting"));
    };
    helper
        .send(SendOptions {
            destination: Some(room),
            topic: topic.into(),
            data,
            log: false,
        })
        .map_err(|e| store_failure("SEND_FAILED", e))
}

fn typing_update(
    chat: &Chat,
    room_id: &str,
    user_id: &str,
    typing: bool,
    except: Option<&SocketRef>,
) {
    let data = object([
        ("roomId", room_id.into()),
        ("userId", user_id.into()),
        ("isTyping", typing.into()),
    ]);
    let room = room_of(room_id);
    // The typist's own socket does not need its indicator back.
    let sent = match except {
        Some(socket) => socket.to(room).emit("typing:update", vec![data]),
        None => chat
            .helper()
            .map(|h| h.io().to(room).emit("typing:update", vec![data]))
            .unwrap_or(Ok(())),
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "typing update not sent");
    }
}

/// Stops `socket`'s typing in `room_id` if it was typing there.
fn stop_typing(chat: &Chat, socket: &SocketRef, room_id: &str) {
    let stopped = {
        let mut sessions = chat.sockets.sessions.lock();
        sessions.get_mut(&socket.id()).and_then(|s| {
            let timer = s.typing.remove(room_id)?;
            timer.abort();
            Some(s.user.id.clone())
        })
    };
    if let Some(user_id) = stopped {
        typing_update(chat, room_id, &user_id, false, Some(socket));
    }
}

/// The `roomId` of an event that needs the connection to be in that room, and its Socket.IO
/// room; the failure `code` with `message` when it is not.
fn held_room(
    socket: &SocketRef,
    event: &Event,
    code: &'static str,
    message: &'static str,
) -> Result<(String, String), Failure> {
    let room_id = id_field(payload(event)?, "roomId")?.to_string();
    let sio_room = room_of(&room_id);
    if !in_room(socket, &sio_room) {
        return Err(fail(code, message));
    }
    Ok((room_id, sio_room))
}

/// Whether the socket is in the Socket.IO room.
fn in_room(socket: &SocketRef, room: &str) -> bool {
    socket.rooms().iter().any(|r| r.as_ref() == room)
}

/// Registers an event whose work may wait on the database: the acknowledgement is answered
/// when it is done.
fn on<F, Fut>(handlers: &mut SocketHandlers, chat: &Arc<Chat>, name: &'static str, f: F)
where
    F: Fn(Arc<Chat>, SocketRef, Arc<User>, Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<(&'static str, Value)>, Failure>> + Send + 'static,
{
    on_counted(handlers, chat, name, false, f)
}

/// Like [`on`]; with `message`, the event counts against the user's message rate when it
/// arrives (not when its turn comes, which a slow database would spread over more seconds).
fn on_counted<F, Fut>(
    handlers: &mut SocketHandlers,
    chat: &Arc<Chat>,
    name: &'static str,
    message: bool,
    f: F,
) where
    F: Fn(Arc<Chat>, SocketRef, Arc<User>, Event) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<(&'static str, Value)>, Failure>> + Send + 'static,
{
    let weak = Arc::downgrade(chat);
    let f = Arc::new(f);
    handlers.on(name, move |socket, event| {
        let weak = weak.clone();
        let f = f.clone();
        async move {
            let Some(chat) = weak.upgrade() else { return };
            let ack = event.take_ack();
            let outcome = match user_of(&chat, &socket) {
                Some((user, _)) if message && !chat.presence.allow_message(&user.id) => Err(fail(
                    "RATE_LIMITED",
                    format!(
                        "too many messages: at most {} per second",
                        chat.presence.message_rate()
                    ),
                )),
                Some((user, turn)) => match turn.place() {
                    Some(_place) => {
                        let _turn = turn.lock.lock().await;
                        f(chat.clone(), socket.clone(), user, event).await
                    }
                    None => Err(fail(
                        "RATE_LIMITED",
                        format!("too many requests at once: at most {MAX_WAITING_EVENTS} may wait"),
                    )),
                },
                None => Err(fail("FORBIDDEN", "not authenticated")),
            };
            reply(&socket, ack, outcome);
        }
    });
}

/// The chat's events, one table shared by every socket.
pub(crate) fn handlers(chat: &Arc<Chat>) -> SocketHandlers {
    let mut h = SocketHandlers::new();
    let weak = Arc::downgrade(chat);
    h.on_disconnect(move |socket, _reason| {
        let weak = weak.clone();
        async move {
            if let Some(chat) = weak.upgrade() {
                leave(&chat, &socket);
            }
        }
    });
    on(
        &mut h,
        chat,
        "room:join",
        |chat, socket, user, event| async move {
            let room_id = id_field(payload(&event)?, "roomId")?.to_string();
            let failed = |e| store_failure("JOIN_FAILED", e);
            let room = chat
                .store
                .room(&room_id)
                .await
                .map_err(failed)?
                .ok_or_else(|| fail("NOT_FOUND", "Room not found"))?;
            if chat
                .store
                .member(&room_id, &user.id)
                .await
                .map_err(failed)?
                .is_none()
            {
                if room.is_private {
                    return Err(fail("FORBIDDEN", "Cannot join private room"));
                }
                match chat.store.add_member(&room_id, &user.id, "member").await {
                    // Joined meanwhile from another connection: a member all the same.
                    Ok(_) | Err(WriteError::Conflict) => {}
                    Err(WriteError::Store(e)) => return Err(failed(e)),
                }
            }
            let sio_room = room_of(&room_id);
            if in_room(&socket, &sio_room) {
                // Joined already (a second `room:join` of the same connection): nothing changes.
                return Ok(vec![("room", value_of(&room))]);
            }
            // A connection may be in a bounded number of rooms: past it the join is refused, and
            // the client must hear so rather than an `ok` for a room it will hear nothing from.
            if socket.try_join(sio_room.clone()).is_err() {
                return Err(fail(
                    "JOIN_FAILED",
                    "this connection is in as many rooms as it may be; leave one first",
                ));
            }
            let data = object([
                ("roomId", room_id.as_str().into()),
                ("userId", user.id.as_str().into()),
            ]);
            let _ = socket.to(sio_room).emit("room:user-joined", vec![data]);
            Ok(vec![("room", value_of(&room))])
        },
    );
    on(
        &mut h,
        chat,
        "room:leave",
        |chat, socket, user, event| async move {
            let (room_id, sio_room) = held_room(&socket, &event, "NOT_FOUND", "not in this room")?;
            stop_typing(&chat, &socket, &room_id);
            let data = object([
                ("roomId", room_id.as_str().into()),
                ("userId", user.id.as_str().into()),
            ]);
            let _ = socket
                .to(sio_room.clone())
                .emit("room:user-left", vec![data]);
            socket.leave(&sio_room);
            Ok(vec![])
        },
    );
    on_counted(
        &mut h,
        chat,
        "message:send",
        true,
        |chat, socket, user, event| async move {
            let p = payload(&event)?;
            let room_id = id_field(p, "roomId")?;
            let content = check_content(p.get("content"))?;
            let kind = message_type(p)?;
            let failed = |e| store_failure("SEND_FAILED", e);
            if !chat
                .store
                .is_member(room_id, &user.id)
                .await
                .map_err(failed)?
            {
                return Err(match chat.store.room(room_id).await.map_err(failed)? {
                    Some(_) => fail("FORBIDDEN", "Not a member of this room"),
                    None => fail("NOT_FOUND", "Room not found"),
                });
            }
            // The store publishes the message once it is stored, with the others stored in the
            // same transaction, in storage order.
            let publisher = chat.clone();
            let room = room_of(room_id);
            let (message, published) = chat
                .store
                .insert_message_then(
                    NewMessage {
                        room_id,
                        sender: &user,
                        content,
                        kind,
                    },
                    Box::new(move |m| {
                        send_to(&publisher, room, "message:new", value_of(m)).is_ok()
                    }),
                )
                .await
                .map_err(failed)?;
            if !published {
                return Err(fail(
                    "SEND_FAILED",
                    "the chat could not do this now; try again",
                ));
            }
            let value = value_of(&message);
            stop_typing(&chat, &socket, room_id);
            Ok(vec![("message", value)])
        },
    );
    on(
        &mut h,
        chat,
        "message:edit",
        |chat, _socket, user, event| async move {
            let p = payload(&event)?;
            let message_id = id_field(p, "messageId")?;
            let content = check_content(p.get("content"))?;
            let failed = |e| store_failure("EDIT_FAILED", e);
            let (mut message, _) = chat
                .store
                .message(message_id)
                .await
                .map_err(failed)?
                .filter(|(m, _)| m.deleted_at.is_none())
                .ok_or_else(|| fail("NOT_FOUND", "Message not found"))?;
            if message.sender_id != user.id {
                return Err(fail("FORBIDDEN", "Cannot edit others messages"));
            }
            let at = now();
            if !chat
                .store
                .edit_message(message_id, content, at)
                .await
                .map_err(failed)?
            {
                return Err(fail("NOT_FOUND", "Message not found"));
            }
            message.content = content.to_string();
            message.edited_at = Some(at);
            message.modified_at = at;
            let value = value_of(&message);
            send_to(
                &chat,
                room_of(&message.room_id),
                "message:edited",
                value.clone(),
            )?;
            Ok(vec![("message", value)])
        },
    );
    on(
        &mut h,
        chat,
        "message:delete",
        |chat, _socket, user, event| async move {
            let message_id = id_field(payload(&event)?, "messageId")?;
            let failed = |e| store_failure("DELETE_FAILED", e);
            let (message, _) = chat
                .store
                .message(message_id)
                .await
                .map_err(failed)?
                .filter(|(m, _)| m.deleted_at.is_none())
                .ok_or_else(|| fail("NOT_FOUND", "Message not found"))?;
            if message.sender_id != user.id {
                let admin = chat
                    .store
                    .member(&message.room_id, &user.id)
                    .await
                    .map_err(failed)?
                    .is_some_and(|m| m.role == "admin");
                if !admin {
                    return Err(fail("FORBIDDEN", "Cannot delete this message"));
                }
            }
            if !chat
                .store
                .delete_message(message_id, now())
                .await
                .map_err(failed)?
            {
                return Err(fail("NOT_FOUND", "Message not found"));
            }
            let data = object([
                ("messageId", message.id.as_str().into()),
                ("roomId", message.room_id.as_str().into()),
            ]);
            send_to(&chat, room_of(&message.room_id), "message:deleted", data)?;
            Ok(vec![
                ("messageId", message.id.into()),
                ("roomId", message.room_id.into()),
            ])
        },
    );
    on_counted(
        &mut h,
        chat,
        "dm:send",
        true,
        |chat, _socket, user, event| async move {
            let p = payload(&event)?;
            let receiver = id_field(p, "receiverId")?;
            let content = check_content(p.get("content"))?;
            let failed = |e| store_failure("DM_FAILED", e);
            if chat.store.user(receiver).await.map_err(failed)?.is_none() {
                return Err(fail("NOT_FOUND", "User not found"));
            }
            let dm = chat
                .store
                .insert_dm(&user.id, receiver, content)
                .await
                .map_err(failed)?;
            let value = value_of(&dm);
            // Every connection of both users, on any node: one emit to both users' rooms.
            let helper = chat
                .helper()
                .ok_or_else(|| fail("DM_FAILED", "the chat is starting"))?;
            helper
                .io()
                .to(vec![user_room(receiver), user_room(&user.id)])
                .emit("dm:new", vec![value.clone()])
                .map_err(|e| store_failure("DM_FAILED", e))?;
            Ok(vec![("message", value)])
        },
    );
    on(
        &mut h,
        chat,
        "typing:start",
        |chat, socket, user, event| async move {
            let (room_id, _) = held_room(&socket, &event, "FORBIDDEN", "join the room first")?;
            let weak_chat = Arc::downgrade(&chat);
            let weak_socket = Arc::downgrade(&socket);
            let timer_room = room_id.clone();
            let timer_user = user.id.clone();
            let timer = tokio::spawn(async move {
                tokio::time::sleep(TYPING_TIMEOUT).await;
                if let (Some(chat), Some(socket)) = (weak_chat.upgrade(), weak_socket.upgrade()) {
                    let ended = chat
                        .sockets
                        .sessions
                        .lock()
                        .get_mut(&socket.id())
                        .and_then(|s| s.typing.remove(&timer_room))
                        .is_some();
                    if ended {
                        typing_update(&chat, &timer_room, &timer_user, false, Some(&socket));
                    }
                }
            });
            let was_typing = {
                let mut sessions = chat.sockets.sessions.lock();
                match sessions.get_mut(&socket.id()) {
                    Some(s) => match s.typing.insert(room_id.clone(), timer.abort_handle()) {
                        Some(old) => {
                            old.abort();
                            true
                        }
                        None => false,
                    },
                    None => {
                        timer.abort();
                        return Err(fail("FORBIDDEN", "not authenticated"));
                    }
                }
            };
            if !was_typing {
                typing_update(&chat, &room_id, &user.id, true, Some(&socket));
            }
            Ok(vec![])
        },
    );
    on(
        &mut h,
        chat,
        "typing:stop",
        |chat, socket, _user, event| async move {
            let room_id = id_field(payload(&event)?, "roomId")?.to_string();
            stop_typing(&chat, &socket, &room_id);
            Ok(vec![])
        },
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_limits_count_characters() {
        let ok = "é".repeat(MAX_CONTENT_CHARS);
        assert!(check_content(Some(&Value::from(ok.as_str()))).is_ok());
        let long = "é".repeat(MAX_CONTENT_CHARS + 1);
        assert_eq!(
            check_content(Some(&Value::from(long.as_str())))
                .unwrap_err()
                .code,
            "VALIDATION"
        );
        assert!(check_content(Some(&Value::from("   "))).is_err());
        assert!(check_content(Some(&Value::from("a\0b"))).is_err());
        assert!(check_content(Some(&Value::from(3))).is_err());
        assert!(check_content(None).is_err());
    }
}
