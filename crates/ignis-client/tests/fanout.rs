//! Broadcasts are queued for their recipients after the broadcasting task yields, several at a
//! time (see `ignis_socketio`'s fan-out): what a client receives must be exactly what it would
//! get had each broadcast been queued on the spot, in the same order, on every transport.

mod common;

use std::time::Duration;

use common::{Inbox, serve, within};
use ignis_client::{Client, Transport, Value};
use ignis_socketio::engine::PerMessageDeflate;
use ignis_socketio::proto::socketio::Packet;
use ignis_socketio::{BroadcastFlags, Sid, SocketIo, SocketRef};

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
            socket.on_sync("interleave", move |socket, event| {
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
            socket.on_sync("join-odd", |socket, event| {
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

/// The bound on the deliveries that wait for a round, per server (`fanout.rs`).
const MAX_PENDING_DELIVERIES: usize = 128 * 1024;

/// A broadcast `pending` of a server, held: made on a thread of its own, in a runtime of one
/// thread that does not run the round the broadcast scheduled until [`Held::release`].
struct Held {
    release: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Held {
    /// Makes the broadcast; with `fill`, `io`'s pending deliveries then go up to a few below
    /// the bound, with broadcasts to sessions that are not connected (which rounds skip).
    async fn broadcast(io: SocketIo, fill: bool) -> Held {
        let (made_tx, made) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                io.emit("pending", &1).expect("broadcast");
                if fill {
                    let ns = io.main_namespace();
                    let absent: Vec<Sid> = (0..1000).map(|_| Sid::generate()).collect();
                    let packet = Packet::event("/", "absent", vec![], None);
                    for _ in 0..(MAX_PENDING_DELIVERIES - 10) / absent.len() {
                        ns.deliver(packet.clone(), &absent, &BroadcastFlags::default());
                    }
                }
                let _ = made_tx.send(());
                // Blocks the runtime's only thread: the round cannot run. A test that failed
                // meanwhile drops the sender, which releases it too.
                let _ = released.recv();
                // The round runs meanwhile.
                tokio::time::sleep(Duration::from_millis(10)).await;
            });
        });
        tokio::task::spawn_blocking(move || made.recv())
            .await
            .expect("joined")
            .expect("the broadcast is made");
        Held { release, thread }
    }

    /// Lets the round run, and waits for it.
    async fn release(self) {
        let _ = self.release.send(());
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("joined")
            .expect("the holder ends");
    }
}

/// The names of the events a client gets within `wait`.
async fn received_within(inbox: &Inbox, wait: Duration) -> Vec<String> {
    tokio::time::sleep(wait).await;
    inbox.drain().into_iter().map(|e| e.name).collect()
}

/// A poll answers with what is queued. So a message that came over long-polling settles once
/// it is handled: the broadcasts made before are queued, and the client's poll carries them
/// without waiting for their round. Over WebSocket the round is left to come on its own (a
/// round writes the frames by itself, and gathering broadcasts is the point).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_polling_settles_the_broadcasts_made_before_it() {
    for (name, transports) in MODES {
        let (io, port) = server().await;
        let (socket, inbox) = connect(port, transports, false).await;
        let held = Held::broadcast(io.clone(), false).await;
        // An event the server does not answer: nothing is sent back that would settle.
        socket.emit("burst", &0).unwrap();
        if name == "polling" {
            let seen = read_through(&inbox, "pending").await;
            assert_eq!(seen, [("pending".to_string(), Value::from(1))], "{name}");
        } else {
            let early = received_within(&inbox, Duration::from_millis(300)).await;
            assert!(early.is_empty(), "{name}: {early:?}");
        }
        held.release().await;
        if name != "polling" {
            let seen = read_through(&inbox, "pending").await;
            assert_eq!(seen, [("pending".to_string(), Value::from(1))], "{name}");
        }
        socket.disconnect();
    }
}

/// Two servers in one process: each has its own broadcasts pending and its own bound. What
/// one sends (broadcasts past the other's bound, emits and acks that settle) neither waits for
/// nor queues the other's broadcasts; each still keeps its own order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_in_one_process_settle_their_own_broadcasts_only() {
    for (name, transports) in MODES {
        let (a, a_port) = server().await;
        let (_b, b_port) = server().await;
        let (a_socket, a_inbox) = connect(a_port, transports, false).await;
        let (b_socket, b_inbox) = connect(b_port, transports, false).await;
        let held = Held::broadcast(a.clone(), true).await;

        // B's broadcasts. With one fan-out for the process, they would wait for the round
        // that A scheduled and holds (one round task for the process), and past the bound
        // they share with A's, B's broadcaster would queue A's broadcasts too.
        const BURST: u64 = 300;
        b_socket.emit("burst", &BURST).unwrap();
        let burst = read_until(&b_inbox, "B's burst", |seen| seen.len() >= BURST as usize).await;
        let expected: Vec<(String, Value)> = (0..BURST)
            .map(|i| ("burst".to_string(), Value::from(i)))
            .collect();
        assert_eq!(burst, expected, "{name}: B's burst");
        // B's emits and acks settle B's broadcasts before each of them, and B's order holds.
        const N: u64 = 50;
        let answer = within(
            "B's ack",
            b_socket.emit_with_ack("interleave", vec![Value::from(N)], Duration::from_secs(5)),
        )
        .await
        .expect("acknowledged");
        assert_eq!(answer, vec![Value::from("done")]);
        let seen: Vec<(String, Value)> = b_inbox
            .drain()
            .into_iter()
            .map(|e| (e.name, e.args.first().cloned().unwrap_or(Value::Null)))
            .collect();
        let expected: Vec<(String, Value)> = (0..N)
            .flat_map(|i| ["everyone", "mine", "room"].map(|e| (e.to_string(), Value::from(i))))
            .collect();
        assert_eq!(seen, expected, "{name}: B's order");

        // A's broadcast is still A's to queue: none of that reached A's client.
        let early = received_within(&a_inbox, Duration::from_millis(300)).await;
        assert!(
            early.is_empty(),
            "{name}: A's pending broadcast was queued by B: {early:?}"
        );

        held.release().await;
        let seen = read_through(&a_inbox, "pending").await;
        assert_eq!(seen, [("pending".to_string(), Value::from(1))], "{name}");
        // A's own order holds too.
        let answer = within(
            "A's ack",
            a_socket.emit_with_ack("interleave", vec![Value::from(N)], Duration::from_secs(5)),
        )
        .await
        .expect("acknowledged");
        assert_eq!(answer, vec![Value::from("done")]);
        let seen: Vec<(String, Value)> = a_inbox
            .drain()
            .into_iter()
            .map(|e| (e.name, e.args.first().cloned().unwrap_or(Value::Null)))
            .collect();
        assert_eq!(seen, expected, "{name}: A's order");
        a_socket.disconnect();
        b_socket.disconnect();
    }
}

/// A steady stream of broadcasts on one server, and the other's clients get their events in
/// order, each after the broadcasts made before it, as if they were alone in the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_stream_on_one_server_leaves_the_others_order_alone() {
    let (a, a_port) = server().await;
    let (_b, b_port) = server().await;
    let (_a_socket, a_inbox) = connect(a_port, &[Transport::Websocket], false).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Several per round, then the round.
                for _ in 0..20 {
                    let _ = a.emit("tick", &sent);
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sent
        })
    };
    const N: u64 = 50;
    let expected: Vec<(String, Value)> = (0..N)
        .flat_map(|i| ["everyone", "mine", "room"].map(|e| (e.to_string(), Value::from(i))))
        .collect();
    for (name, transports) in MODES {
        let (socket, inbox) = connect(b_port, transports, false).await;
        for _ in 0..5 {
            let answer = within(
                "B's ack",
                socket.emit_with_ack("interleave", vec![Value::from(N)], Duration::from_secs(5)),
            )
            .await
            .expect("acknowledged");
            assert_eq!(answer, vec![Value::from("done")]);
            let seen: Vec<(String, Value)> = inbox
                .drain()
                .into_iter()
                .map(|e| (e.name, e.args.first().cloned().unwrap_or(Value::Null)))
                .collect();
            assert_eq!(seen, expected, "{name}");
        }
        socket.disconnect();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = within("the stream", stream).await.expect("the stream ends");
    assert!(sent > 0);
    // A's stream arrived whole and in order.
    let ticks = read_until(&a_inbox, "A's ticks", |seen| seen.len() >= sent as usize).await;
    let expected: Vec<(String, Value)> = (0..sent)
        .map(|i| ("tick".to_string(), Value::from(i)))
        .collect();
    assert_eq!(ticks, expected);
}
