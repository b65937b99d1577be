//! Connection state recovery loses nothing, duplicates nothing and reorders nothing when
//! broadcasts are made while a socket is being restored, and a client that comes back at once
//! is not undone by the cleanup of the socket it replaces.
//!
//! The adapter here is the memory adapter with hooks at the steps of a restore, so that a
//! broadcast lands exactly in the window a test is about, on every run.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{Hooked, Hooks, Polling, WAIT, offset};
use ignis_socketio::adapter::{Adapter, BroadcastOptions, MemoryAdapter};
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{Namespace, RecoveryConfig, SessionData, Sid, SocketIo, Value};
use serde_json::json;
use tokio::sync::mpsc;

/// A server with recovery on and the hooked adapter; the sessions it keeps are told on the
/// returned channel.
async fn server(
    hooks: &Arc<Hooks>,
) -> (SocketIo, SocketAddr, mpsc::UnboundedReceiver<SessionData>) {
    let (tx, rx) = mpsc::unbounded_channel();
    *hooks.persisted.lock() = Some(tx);
    let h = Arc::clone(hooks);
    let io = SocketIo::builder()
        .connection_state_recovery(RecoveryConfig::default())
        .adapter(move |_: &str| Hooked {
            inner: MemoryAdapter::new(),
            hooks: Arc::clone(&h),
        })
        .build();
    let addr = common::serve(&io).await;
    (io, addr, rx)
}

/// Broadcasts `tick n` to the whole namespace through `adapter`.
fn tick(adapter: &MemoryAdapter, ns: &Namespace, n: i64) {
    let packet = Packet::event("/", "tick", vec![Value::from(n)], None);
    adapter
        .broadcast(ns, packet, &BroadcastOptions::default())
        .expect("broadcast");
}

fn tick_numbers(events: &[serde_json::Value]) -> Vec<i64> {
    events
        .iter()
        .filter(|e| e[0] == "tick")
        .map(|e| e[1].as_i64().expect("a number"))
        .collect()
}

/// A client connected and holding the offset of a first tick; its id and pid.
async fn first_connection(io: &SocketIo, addr: SocketAddr) -> (Polling, String, String, String) {
    let client = Polling::open(addr, "/socket.io/").await;
    let connected = client.connect(None).await;
    let pid = connected.pid.expect("recovery on: a pid");
    io.emit("tick", &1).unwrap();
    let events = client.events(1).await;
    assert_eq!(tick_numbers(&events), [1]);
    let last = offset(&events[0]);
    (client, connected.id, pid, last)
}

/// Cuts the client's connection from the server side, as a network failure would.
async fn cut(
    io: &SocketIo,
    client: &Polling,
    id: &str,
    persisted: &mut mpsc::UnboundedReceiver<SessionData>,
) {
    let socket = io
        .main_namespace()
        .get_socket(Sid::parse(id).expect("a socket id"))
        .expect("the socket");
    socket.close_connection();
    client.until_closed().await;
    let session = tokio::time::timeout(WAIT, persisted.recv())
        .await
        .expect("the session is kept")
        .expect("a session");
    assert_eq!(session.sid.as_str(), id);
}

/// Broadcasts made at every step of a restore reach the client once each, in the order they
/// were made: before the socket is back in its rooms (found among the missed packets: the
/// lookup used to come first, and such a broadcast was lost), after it is back and before the
/// lookup (both missed and delivered live: sent once), and after the lookup (delivered live,
/// after the older missed packets: it used to overtake them, or be dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_made_during_a_restore_arrive_once_and_in_order() {
    let hooks = Arc::new(Hooks::default());
    let (io, addr, mut persisted) = server(&hooks).await;
    let (first, id, pid, last) = first_connection(&io, addr).await;
    cut(&io, &first, &id, &mut persisted).await;
    // Missed while away.
    io.emit("tick", &2).unwrap();
    io.emit("tick", &3).unwrap();
    *hooks.after_restore.lock() = Some(Box::new(|a, ns| tick(a, ns, 4)));
    *hooks.before_missed.lock() = Some(Box::new(|a, ns| tick(a, ns, 5)));
    *hooks.after_missed.lock() = Some(Box::new(|a, ns| tick(a, ns, 6)));

    let client = Polling::open(addr, "/socket.io/").await;
    let connected = client
        .connect(Some(json!({ "pid": pid, "offset": last })))
        .await;
    assert_eq!(connected.id, id, "recovered: same id");
    assert_eq!(connected.pid.as_deref(), Some(pid.as_str()));
    assert!(hooks.after_missed.lock().is_none(), "every hook ran");
    // Everything the restore sent came before its answer; what follows is live.
    assert_eq!(tick_numbers(&connected.before), [2, 3, 4, 5, 6]);
    io.emit("tick", &7).unwrap();
    let live = client.events(1).await;
    assert_eq!(tick_numbers(&live), [7]);
    // Offsets increase: the client's last one is a point before which it saw everything.
    let offsets: Vec<String> = connected.before.iter().chain(&live).map(offset).collect();
    let numbers: Vec<u64> = offsets
        .iter()
        .map(|o| u64::from_str_radix(o.rsplit('-').next().unwrap(), 16).unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
}

/// A client that comes back while the socket it replaces is still being cleaned up (here: the
/// session is kept, and the rest of the cleanup waits) is not undone by that cleanup: it
/// stays in the namespace and in its rooms. The session used to be kept before the old socket
/// left its rooms and the namespace, whose removal, by id, then took the new socket's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_back_at_once_keeps_its_rooms_after_the_old_sockets_cleanup() {
    let hooks = Arc::new(Hooks::default());
    let (io, addr, mut persisted) = server(&hooks).await;
    let (first, id, pid, last) = first_connection(&io, addr).await;
    let sid = Sid::parse(&id).unwrap();
    let old = io.main_namespace().get_socket(sid).unwrap();
    old.join("r");
    let (left_tx, mut left) = mpsc::unbounded_channel();
    old.on_disconnect(move |_, _| {
        let _ = left_tx.send(());
        async {}
    });
    let (release, hold) = std::sync::mpsc::channel();
    *hooks.hold_persist.lock() = Some(hold);

    old.close_connection();
    // The session closes once the client reads, and its cleanup is held meanwhile.
    let closing = tokio::spawn(async move { first.until_closed().await });
    let session = tokio::time::timeout(WAIT, persisted.recv())
        .await
        .expect("the session is kept")
        .expect("a session");
    assert_eq!(session.sid, sid);
    // The old socket's cleanup is now held where the session was kept.
    let client = Polling::open(addr, "/socket.io/").await;
    let connected = client
        .connect(Some(json!({ "pid": pid, "offset": last })))
        .await;
    assert_eq!(connected.id, id, "recovered: same id");
    release.send(()).unwrap();
    tokio::time::timeout(WAIT, left.recv())
        .await
        .expect("the old socket's cleanup ran to its end");
    closing.await.unwrap();

    let now = io.main_namespace().get_socket(sid).expect("the new socket");
    assert!(!Arc::ptr_eq(&now, &old));
    assert!(now.connected());
    let mut rooms: Vec<String> = now.rooms().iter().map(|r| r.to_string()).collect();
    rooms.sort();
    let mut expected = vec![id.clone(), "r".to_string()];
    expected.sort();
    assert_eq!(rooms, expected);
    io.to("r").emit("tick", &2).unwrap();
    io.emit("tick", &3).unwrap();
    assert_eq!(tick_numbers(&client.events(2).await), [2, 3]);
}

/// A client back on a new connection while its old one still looks alive to the server (a
/// reset not read yet, a dead peer before its ping timeout) recovers all the same: it proved it
/// is that client with its private id, so its old socket leaves at once, session kept. It used
/// to get a new session, and lose what was sent meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_before_its_old_connection_is_seen_to_fail_recovers() {
    let hooks = Arc::new(Hooks::default());
    let (io, addr, _persisted) = server(&hooks).await;
    let (first, id, pid, last) = first_connection(&io, addr).await;
    // Queued on the old connection, which the client no longer reads.
    io.emit("tick", &2).unwrap();

    let client = Polling::open(addr, "/socket.io/").await;
    let connected = client
        .connect(Some(json!({ "pid": pid, "offset": last })))
        .await;
    assert_eq!(connected.id, id, "recovered: same id");
    assert_eq!(tick_numbers(&connected.before), [2]);
    io.emit("tick", &3).unwrap();
    assert_eq!(tick_numbers(&client.events(1).await), [3]);
    assert_eq!(io.main_namespace().socket_count(), 1);
    // The old connection was closed by the server.
    first.until_closed().await;
}

/// What a restore keeps aside is bounded: past the bound, the connection is closed with nothing
/// sent and the session kept again, and the client, which comes back with the same offset, gets
/// everything, once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_that_keeps_too_much_aside_lets_the_client_try_again() {
    const FLOOD: i64 = 9_000;
    let hooks = Arc::new(Hooks::default());
    let (tx, mut persisted) = mpsc::unbounded_channel();
    *hooks.persisted.lock() = Some(tx);
    let h = Arc::clone(&hooks);
    let io = SocketIo::builder()
        .connection_state_recovery(RecoveryConfig::default())
        // Room in the outbound queue for the replay of all of it, the second time.
        .engine(|c| c.max_queued_messages = 100_000)
        .adapter(move |_: &str| Hooked {
            inner: MemoryAdapter::new(),
            hooks: Arc::clone(&h),
        })
        .build();
    let addr = common::serve(&io).await;

    let (first, id, pid, last) = first_connection(&io, addr).await;
    cut(&io, &first, &id, &mut persisted).await;
    // More than a restore keeps aside, all made once the socket is back in its rooms.
    *hooks.before_missed.lock() = Some(Box::new(|a, ns| {
        for n in 2..2 + FLOOD {
            tick(a, ns, n);
        }
    }));
    let auth = json!({ "pid": pid, "offset": last });
    let refused = Polling::open(addr, "/socket.io/").await;
    refused.post(&format!("40{auth}")).await;
    refused.until_closed().await;
    let session = tokio::time::timeout(WAIT, persisted.recv())
        .await
        .expect("the session is kept again")
        .expect("a session");
    assert_eq!(session.sid.as_str(), id);

    let client = Polling::open(addr, "/socket.io/").await;
    let connected = client.connect(Some(auth)).await;
    assert_eq!(connected.id, id, "recovered: same id");
    let expected: Vec<i64> = (2..2 + FLOOD).collect();
    assert_eq!(tick_numbers(&connected.before), expected);
}

/// A client that comes back while the server is still taking its old socket out (the failure
/// was seen, the session is not kept yet) waits for the session and recovers, instead of
/// finding none and starting over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_back_while_its_old_socket_leaves_waits_for_the_session() {
    let hooks = Arc::new(Hooks::default());
    let (io, addr, mut persisted) = server(&hooks).await;
    let (first, id, pid, last) = first_connection(&io, addr).await;
    let (release, hold) = std::sync::mpsc::channel();
    *hooks.hold_before_persist.lock() = Some(hold);
    let (tried_tx, tried) = std::sync::mpsc::channel();
    *hooks.after_restore.lock() = Some(Box::new(move |_, _| {
        let _ = tried_tx.send(());
    }));

    io.main_namespace()
        .get_socket(Sid::parse(&id).unwrap())
        .unwrap()
        .close_connection();
    let closing = tokio::spawn(async move { first.until_closed().await });
    let connecting = tokio::spawn(async move {
        let client = Polling::open(addr, "/socket.io/").await;
        let connected = client
            .connect(Some(json!({ "pid": pid, "offset": last })))
            .await;
        (client, connected)
    });
    // The restore found no session yet, and waits; the old socket's cleanup goes on.
    tokio::task::spawn_blocking(move || tried.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("a first try to restore");
    release.send(()).unwrap();
    let (client, connected) = tokio::time::timeout(WAIT, connecting)
        .await
        .expect("connected")
        .unwrap();
    assert_eq!(connected.id, id, "recovered: same id");
    persisted.recv().await.expect("the session was kept");
    closing.await.unwrap();
    io.emit("tick", &2).unwrap();
    assert_eq!(tick_numbers(&client.events(1).await), [2]);
}
