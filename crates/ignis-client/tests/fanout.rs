//! Broadcasts are queued for their recipients after the broadcasting task yields, several at a
//! time (see `ignis_socketio`'s fan-out): what a client receives must be exactly what it would
//! get had each broadcast been queued on the spot, in the same order, on every transport.

mod common;

use std::time::Duration;

use common::{Inbox, serve, within};
use ignis_client::{Client, Transport, Value};
use ignis_socketio::engine::PerMessageDeflate;
use ignis_socketio::{SocketIo, SocketRef};

const MODES: [(&str, &[Transport]); 2] = [
    ("websocket", &[Transport::Websocket]),
    ("polling", &[Transport::Polling]),
];

/// A server whose handlers interleave broadcasts with what else reaches a client.
async fn server() -> (SocketIo, u16) {
    let io = SocketIo::builder()
        .path("/socket.io/")
        .per_message_deflate(PerMessageDeflate {
            // Every message is long enough to be compressed for a client that asked.
            threshold: 0,
            ..PerMessageDeflate::default()
        })
        .build();
    let io2 = io.clone();
    io.ns("/", move |socket: SocketRef| {
        let io = io2.clone();
        async move {
            socket.join("all");
            // `n` broadcasts to everyone and `n` to a room, each followed by an event to the
            // sender alone, then the sender's acknowledgement: all from one handler that never
            // yields in between.
            let io1 = io.clone();
            socket.on_sync("interleave", move |socket, mut event| {
                let n: u64 = event.arg(0).unwrap_or(0);
                for i in 0..n {
                    let _ = io1.emit("everyone", &i);
                    let _ = socket.emit("mine", &i);
                    let _ = io1.to("all").emit("room", &i);
                }
                event.ack(vec![Value::from("done")]);
            });
            // `n` broadcasts, nothing else: they share rounds.
            let io2 = io.clone();
            socket.on_sync("burst", move |_socket, event| {
                let n: u64 = event.arg(0).unwrap_or(0);
                for i in 0..n {
                    let _ = io2.emit("burst", &i);
                }
            });
            // `n` broadcasts to everyone, each followed by one to the room `odd`: groups of
            // recipients that alternate, each written by several workers when large.
            let io4 = io.clone();
            socket.on_sync("mixed", move |_socket, event| {
                let n: u64 = event.arg(0).unwrap_or(0);
                for i in 0..n {
                    let _ = io4.emit("mixed", &i);
                    let _ = io4.to("odd").emit("mixed", &(1000 + i));
                }
            });
            socket.on_sync("join-odd", |socket, mut event| {
                socket.join("odd");
                event.ack(vec![]);
            });
            // A broadcast, then broadcasts held, then another: the first arrives, the second
            // does not.
            let io3 = io.clone();
            socket.on_sync("hold", move |socket, _event| {
                let _ = io3.emit("before-hold", &1);
                socket.hold_broadcasts(true);
                let _ = io3.emit("after-hold", &2);
                let _ = socket.emit("held", &3);
                socket.hold_broadcasts(false);
            });
        }
    });
    let port = serve(&io).await;
    (io, port)
}

async fn connect(
    port: u16,
    transports: &[Transport],
    deflate: bool,
) -> (ignis_client::Socket, Inbox) {
    let socket = within(
        "connect",
        Client::builder(format!("http://127.0.0.1:{port}"))
            .transports(transports.iter().copied())
            .per_message_deflate(deflate)
            .connect("/"),
    )
    .await
    .expect("connects");
    let inbox = Inbox::attach(&socket);
    (socket, inbox)
}

/// Reads events until `done` says the ones seen are all; returns their names and first
/// arguments.
async fn read_until(
    inbox: &Inbox,
    what: &str,
    done: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    within(what, async {
        let mut seen = Vec::new();
        loop {
            for event in inbox.drain() {
                let arg = event.args.first().cloned().unwrap_or(Value::Null);
                seen.push((event.name, arg));
            }
            if done(&seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Reads events up to the first named `last`.
async fn read_through(inbox: &Inbox, last: &str) -> Vec<(String, Value)> {
    read_until(inbox, last, |seen| {
        seen.iter().any(|(name, _)| name == last)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_or_an_ack_after_a_broadcast_arrives_after_it() {
    let (_io, port) = server().await;
    for (name, transports) in MODES {
        for deflate in [false, true] {
            let (socket, inbox) = connect(port, transports, deflate).await;
            const N: u64 = 50;
            let answer = within(
                "ack",
                socket.emit_with_ack("interleave", vec![Value::from(N)], Duration::from_secs(5)),
            )
            .await
            .expect("acknowledged");
            assert_eq!(answer, vec![Value::from("done")]);
            // The ack is a packet of its own, after every event the handler sent before it:
            // those are all here once it is.
            let seen: Vec<(String, Value)> = inbox
                .drain()
                .into_iter()
                .map(|e| (e.name, e.args.first().cloned().unwrap_or(Value::Null)))
                .collect();
            let expected: Vec<(String, Value)> = (0..N)
                .flat_map(|i| {
                    ["everyone", "mine", "room"].map(|event| (event.to_string(), Value::from(i)))
                })
                .collect();
            assert_eq!(seen, expected, "{name}, deflate {deflate}");
            socket.disconnect();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_that_share_a_round_reach_every_client_in_order() {
    let (_io, port) = server().await;
    let mut clients = Vec::new();
    for (_, transports) in MODES {
        for deflate in [false, true] {
            clients.push(connect(port, transports, deflate).await);
        }
    }
    const N: u64 = 300;
    clients[0].0.emit("burst", &N).unwrap();
    let expected: Vec<(String, Value)> = (0..N)
        .map(|i| ("burst".to_string(), Value::from(i)))
        .collect();
    for (i, (_socket, inbox)) in clients.iter().enumerate() {
        let seen = read_until(inbox, "the burst", |seen| seen.len() >= expected.len()).await;
        assert_eq!(seen, expected, "client {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holding_broadcasts_applies_to_those_made_after_it() {
    let (_io, port) = server().await;
    for (name, transports) in MODES {
        let (socket, inbox) = connect(port, transports, false).await;
        socket.emit("hold", &()).unwrap();
        let seen = read_through(&inbox, "held").await;
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["before-hold", "held"], "{name}");
        socket.disconnect();
    }
}

#[test]
fn a_broadcast_made_outside_any_runtime_is_queued_at_once() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (io, socket, inbox) = runtime.block_on(async {
        let (io, port) = server().await;
        let (socket, inbox) = connect(port, &[Transport::Websocket], false).await;
        (io, socket, inbox)
    });
    // No runtime on this thread: nothing to defer to.
    io.emit("from-outside", &7).unwrap();
    let seen = runtime.block_on(read_through(&inbox, "from-outside"));
    assert_eq!(seen, [("from-outside".to_string(), Value::from(7))]);
    drop(socket);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternating_broadcasts_to_hundreds_of_clients_arrive_in_order() {
    let (_io, port) = server().await;
    // More recipients than one worker writes at a time, so that each group is shared out.
    const CLIENTS: usize = 300;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let (socket, inbox) = connect(port, &[Transport::Websocket], false).await;
        if i % 2 == 1 {
            within(
                "join",
                socket.emit_with_ack("join-odd", vec![], Duration::from_secs(5)),
            )
            .await
            .expect("joined");
        }
        clients.push((socket, inbox));
    }
    const N: u64 = 40;
    clients[0].0.emit("mixed", &N).unwrap();
    for (i, (_socket, inbox)) in clients.iter().enumerate() {
        let expected: Vec<(String, Value)> = (0..N)
            .flat_map(|n| {
                let mut got = vec![("mixed".to_string(), Value::from(n))];
                if i % 2 == 1 {
                    got.push(("mixed".to_string(), Value::from(1000 + n)));
                }
                got
            })
            .collect();
        let seen = read_until(inbox, "the broadcasts", |seen| seen.len() >= expected.len()).await;
        assert_eq!(seen, expected, "client {i}");
    }
}
