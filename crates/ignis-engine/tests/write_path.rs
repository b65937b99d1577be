//! The WebSocket write path under pressure: senders that write to the socket themselves, queued
//! broadcasts flushed later, partial writes handed to the connection's task, and a client that
//! stops reading. Whatever path a message takes, the client must see every message once and in
//! the order it was sent, and a client that falls too far behind is disconnected as too slow.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

mod common;

use ignis_engine::{
    CloseReason, DeliveryBatch, Engine, EngineConfig, Handler, RequestInfo, Round, SendError,
    SharedMessage, Socket, TEXT_HEADROOM, TextMessage,
};
use ignis_proto::engineio::{Data, Str};
use ignis_ws::{Decoder, Message, Role};
use tokio::sync::mpsc;

/// Hands every opened session to the test and reports why sessions closed.
struct Probe {
    opened: mpsc::UnboundedSender<Arc<Socket<()>>>,
    closed: mpsc::UnboundedSender<CloseReason>,
}

impl Handler for Probe {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, socket: &Arc<Socket<()>>, _request: &RequestInfo) {
        let _ = self.opened.send(Arc::clone(socket));
    }
    fn on_message(&self, _socket: &Arc<Socket<()>>, _data: Data) {}
    fn on_close(&self, _socket: &Arc<Socket<()>>, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

struct Server {
    port: u16,
    opened: mpsc::UnboundedReceiver<Arc<Socket<()>>>,
    closed: mpsc::UnboundedReceiver<CloseReason>,
}

async fn start(max_queued_messages: usize) -> Server {
    let (opened_tx, opened) = mpsc::unbounded_channel();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let config = EngineConfig {
        max_queued_messages,
        // These tests are about order and the message bound (`tests/abuse.rs` has the bytes').
        max_queued_bytes: usize::MAX,
        ..EngineConfig::default()
    };
    let engine = Engine::new(
        config,
        Probe {
            opened: opened_tx,
            closed: closed_tx,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(engine.serve(listener));
    Server {
        port,
        opened,
        closed,
    }
}

impl Server {
    /// Opens a WebSocket session from a new client, and reads the session's open packet.
    async fn open_session(&mut self) -> (Arc<Socket<()>>, Client) {
        let port = self.port;
        let client = tokio::task::spawn_blocking(move || Client::connect(port));
        let socket = self.opened.recv().await.unwrap();
        let mut client = client.await.unwrap();
        assert!(
            client.next_text().unwrap().starts_with("0{"),
            "the open packet"
        );
        (socket, client)
    }
}

/// A blocking WebSocket client that reads the server's text frames.
struct Client {
    stream: TcpStream,
    decoder: Decoder,
    pending: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = common::open_websocket(port);
        Client {
            stream,
            decoder: Decoder::new(Role::Client, 1 << 20),
            pending: Vec::new(),
        }
    }

    /// The next text frame's payload, or None once the server closed.
    fn next_text(&mut self) -> Option<String> {
        loop {
            let decoded = self.decoder.decode(&self.pending).unwrap();
            if decoded.consumed > 0 {
                self.pending.drain(..decoded.consumed);
                match decoded.message {
                    Some(Message::Text(bytes)) => {
                        return Some(String::from_utf8(bytes.to_vec()).unwrap());
                    }
                    Some(Message::Close(_)) => return None,
                    _ => continue,
                }
            }
            let mut buf = [0u8; 64 * 1024];
            let n = self.stream.read(&mut buf).unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }
}

/// A message of about 1 KiB that says its own number.
fn numbered(i: usize) -> Data {
    Data::Text(Str::from(format!("{i:08}:{}", "x".repeat(1000))))
}

/// The same message as [`numbered`], built to be framed in place.
fn numbered_text(i: usize) -> TextMessage {
    let mut buf = vec![0; TEXT_HEADROOM];
    buf.extend_from_slice(format!("{i:08}:{}", "x".repeat(1000)).as_bytes());
    TextMessage::new(buf).unwrap()
}

fn number_of(text: &str) -> usize {
    // Frames are `4<message>`: a message packet.
    assert!(text.starts_with('4'), "not a message packet: {text:.40}");
    text[1..9].parse().unwrap()
}

/// Reads `count` messages' numbers on a thread of its own, starting late and pausing now and
/// then, so that the server's writes fill the socket and come out partial; gives the client
/// back with them, so that the connection stays open.
fn read_late_and_slowly(
    mut client: Client,
    count: usize,
) -> tokio::task::JoinHandle<(Vec<usize>, Client)> {
    tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(100));
        let mut seen = Vec::with_capacity(count);
        while seen.len() < count {
            match client.next_text() {
                Some(text) => seen.push(number_of(&text)),
                None => break,
            }
            if seen.len() % 500 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        (seen, client)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_path_keeps_order_while_the_client_is_slow() {
    let mut server = start(1_000_000).await;
    let (socket, client) = server.open_session().await;

    // 20 000 messages (20 MB) go out while the client first reads nothing, then reads slowly:
    // the socket's buffers fill and drain again and again, writes come out partial, the rest
    // waits in the queue, and senders race the connection's task for the socket.
    const COUNT: usize = 20_000;
    let reader = read_late_and_slowly(client, COUNT);
    let mut batch = DeliveryBatch::new();
    for i in 0..COUNT {
        match i % 4 {
            // Direct sends (a message, or a bare frame), and broadcasts in batches of various
            // lengths.
            0 => socket.send(numbered(i)).unwrap(),
            1 => socket.send_text(numbered_text(i)).unwrap(),
            _ => socket
                .send_shared_in(&[SharedMessage::new(numbered(i))], false, &mut batch)
                .unwrap(),
        }
        if i % 7 == 0 {
            drop(std::mem::take(&mut batch));
        }
        if i % 13 == 0 {
            tokio::task::yield_now().await;
        }
        if i % 1000 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    drop(batch);
    let (received, _client) = reader.await.unwrap();
    assert_eq!(received.len(), COUNT, "every message arrives");
    let out_of_order = received.iter().enumerate().find(|(i, n)| i != *n);
    assert_eq!(
        out_of_order, None,
        "messages arrive in the order they were sent"
    );
    assert!(socket.is_open(), "the session is still open");
    assert!(server.closed.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_as_too_slow() {
    let mut server = start(64).await;
    let (socket, _client) = server.open_session().await;

    // Nothing is read: once the socket's buffers are full, at most 64 messages wait in the
    // queue, and the next one closes the session instead of growing it.
    let mut refused = None;
    let mut batch = DeliveryBatch::new();
    for i in 0..100_000 {
        let result = if i % 2 == 0 {
            socket.send(numbered(i))
        } else {
            socket.send_shared_in(&[SharedMessage::new(numbered(i))], false, &mut batch)
        };
        if let Err(e) = result {
            refused = Some(e);
            break;
        }
        if i % 16 == 0 {
            drop(std::mem::take(&mut batch));
            tokio::task::yield_now().await;
        }
    }
    assert_eq!(refused, Some(SendError::QueueFull));
    let reason = tokio::time::timeout(Duration::from_secs(10), server.closed.recv())
        .await
        .expect("the session closes")
        .unwrap();
    assert_eq!(reason, CloseReason::SlowClient);
    assert_eq!(reason.as_str(), "outbound queue full");
    assert_eq!(socket.send(numbered(0)), Err(SendError::Closed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_messages_are_dropped_only_while_the_client_is_behind() {
    let mut server = start(1_000_000).await;
    let (socket, mut client) = server.open_session().await;

    // A reading client gets a volatile message.
    socket
        .send_shared(&[SharedMessage::new(numbered(1))], true)
        .unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let text = client.next_text();
        (client, text)
    });
    let (mut client, text) = first.await.unwrap();
    assert_eq!(number_of(&text.unwrap()), 1);

    // Behind by megabytes, it loses volatile messages but none of the others.
    const LAST: usize = 20_000;
    for i in 2..LAST {
        socket.send(numbered(i)).unwrap();
    }
    const VOLATILE: usize = 100;
    for _ in 0..VOLATILE {
        socket
            .send_shared(&[SharedMessage::new(numbered(99_999_999))], true)
            .unwrap();
    }
    socket.send(numbered(LAST)).unwrap();
    let received = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        while seen.last() != Some(&LAST) {
            match client.next_text() {
                Some(text) => seen.push(number_of(&text)),
                None => break,
            }
        }
        seen
    })
    .await
    .unwrap();
    let volatile = received.iter().filter(|&&n| n == 99_999_999).count();
    let others: Vec<usize> = received.into_iter().filter(|&n| n != 99_999_999).collect();
    assert_eq!(others.len(), LAST - 1, "every other message arrives");
    let out_of_order = others.iter().zip(2..).find(|(n, i)| **n != *i);
    assert_eq!(out_of_order, None, "in order");
    assert!(
        volatile < VOLATILE,
        "volatile messages sent while the client was behind are dropped ({volatile} arrived)"
    );
}

#[test]
fn a_flush_scheduled_on_a_runtime_that_shuts_down_still_happens() {
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (socket, mut client) = server_runtime.block_on(async {
        let mut server = start(1_000).await;
        server.open_session().await
    });

    // A broadcast made on another runtime, which is dropped before its flush task ever runs.
    let other = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    other.block_on(async {
        let mut batch = DeliveryBatch::new();
        socket
            .send_shared_in(&[SharedMessage::new(numbered(1))], false, &mut batch)
            .unwrap();
    });
    drop(other);

    // The message went out anyway, and later broadcasts are flushed as usual.
    assert_eq!(number_of(&client.next_text().unwrap()), 1);
    server_runtime.block_on(async {
        let mut batch = DeliveryBatch::new();
        socket
            .send_shared_in(&[SharedMessage::new(numbered(2))], false, &mut batch)
            .unwrap();
    });
    let text = std::thread::spawn(move || client.next_text())
        .join()
        .unwrap();
    assert_eq!(number_of(&text.unwrap()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_connection_task_wakes_for_a_close_requested_elsewhere() {
    let mut server = start(64).await;
    let port = server.port;
    let client = tokio::task::spawn_blocking(move || {
        let mut client = Client::connect(port);
        // The open packet; then nothing, so that the task goes to sleep.
        let open = client.next_text().unwrap();
        assert!(open.starts_with('0'), "not an open packet: {open}");
        client
    });
    let socket = server.opened.recv().await.unwrap();
    let mut client = client.await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Only the close wakes the task: the heartbeat is 25 s away.
    socket.close();
    let reason = tokio::time::timeout(Duration::from_secs(5), server.closed.recv())
        .await
        .expect("the session closes at once")
        .unwrap();
    assert_eq!(reason, CloseReason::ForcedClose);
    let end = tokio::task::spawn_blocking(move || client.next_text());
    let end = tokio::time::timeout(Duration::from_secs(5), end)
        .await
        .expect("the client sees the close")
        .unwrap();
    assert_eq!(end, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_to_more_sessions_than_one_flush_task_writes_reaches_each_in_order() {
    // More than two chunks of a flush, each written by a task of its own.
    const CLIENTS: usize = 300;
    const MESSAGES: usize = 5;
    let mut server = start(1_000).await;
    let port = server.port;
    let clients = tokio::task::spawn_blocking(move || {
        (0..CLIENTS)
            .map(|_| {
                let mut client = Client::connect(port);
                assert!(client.next_text().unwrap().starts_with("0{"));
                client
            })
            .collect::<Vec<_>>()
    });
    let mut sockets = Vec::new();
    for _ in 0..CLIENTS {
        sockets.push(server.opened.recv().await.unwrap());
    }
    let mut clients = clients.await.unwrap();
    for i in 1..=MESSAGES {
        let message = [SharedMessage::new(numbered(i))];
        let mut batch = DeliveryBatch::new();
        for socket in &sockets {
            socket.send_shared_in(&message, false, &mut batch).unwrap();
        }
        drop(batch);
        if i == 2 {
            // Let one flush run between broadcasts, as well as broadcasts sharing one.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    tokio::task::spawn_blocking(move || {
        for client in &mut clients {
            for i in 1..=MESSAGES {
                assert_eq!(number_of(&client.next_text().unwrap()), i);
            }
        }
    })
    .await
    .unwrap();
}

/// A round of the messages numbered `from..from + len`.
fn round(from: usize, len: usize) -> Round {
    Round::new(
        (from..from + len)
            .map(|i| SharedMessage::new(numbered(i)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounds_keep_order_with_every_other_path_while_the_client_is_slow() {
    let mut server = start(1_000_000).await;
    let (socket, client) = server.open_session().await;

    // Rounds of 1 to 7 messages (written whole, in part, or queued behind a partial write)
    // between direct sends, to a client that reads late and slowly.
    const COUNT: usize = 20_000;
    let reader = read_late_and_slowly(client, COUNT);
    let mut i = 0;
    let mut step = 0;
    while i < COUNT {
        step += 1;
        if step % 3 == 0 {
            socket.send(numbered(i)).unwrap();
            i += 1;
        } else {
            let len = (step % 7 + 1).min(COUNT - i);
            assert!(socket.send_round(&round(i, len), false).unwrap());
            i += len;
        }
        if step % 11 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let (received, _client) = reader.await.unwrap();
    assert_eq!(received.len(), COUNT, "every message arrives");
    let out_of_order = received.iter().enumerate().find(|(i, n)| i != *n);
    assert_eq!(out_of_order, None, "in the order sent");
    assert!(server.closed.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_counts_as_every_message_it_carries_against_the_queue_bound() {
    const BOUND: usize = 64;
    const ROUND: usize = 10;
    let mut server = start(BOUND).await;
    let (socket, mut client) = server.open_session().await;

    // The client reads nothing until the session is refused: the socket takes what fits in
    // its buffers, and the rest waits in the queue until the bound is passed.
    let mut accepted = 0;
    let refused = loop {
        match socket.send_round(&round(accepted, ROUND), false) {
            Ok(_) => accepted += ROUND,
            Err(e) => break e,
        }
        assert!(accepted < 10_000_000, "never refused");
        if accepted % (ROUND * 16) == 0 {
            tokio::task::yield_now().await;
        }
    };
    assert_eq!(refused, SendError::QueueFull);
    let reason = tokio::time::timeout(Duration::from_secs(10), server.closed.recv())
        .await
        .expect("the session closes")
        .unwrap();
    assert_eq!(reason, CloseReason::SlowClient);

    // What the queue held is dropped with the session: at most the bound, counted in messages
    // (and the rest of one round the socket took in part), not in rounds.
    let received = tokio::task::spawn_blocking(move || {
        let mut count = 0;
        while client.next_text().is_some() {
            count += 1;
        }
        count
    })
    .await
    .unwrap();
    let dropped = accepted - received;
    assert!(
        dropped <= BOUND + ROUND,
        "{dropped} messages were queued when the session was refused ({accepted} accepted, \
         {received} received)"
    );
}

/// A masked client ping frame.
fn client_ping(payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x89, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_never_land_inside_a_frame_a_sender_wrote_in_part() {
    let mut server = start(1_000_000).await;
    let (socket, mut client) = server.open_session().await;

    // Large messages written by senders while the task sleeps come out partial when the client
    // reads slowly; the client pings all along, and every pong must come between two frames.
    const COUNT: usize = 3_000;
    let sender = {
        let socket = Arc::clone(&socket);
        std::thread::spawn(move || {
            for i in 0..COUNT {
                let text = format!("{i:08}:{}", "y".repeat(32 * 1024));
                if socket.send(Data::Text(Str::from(text))).is_err() {
                    break;
                }
                if i % 8 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        })
    };
    let reader = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut seen = 0;
        let mut pongs = 0;
        let mut buf = vec![0u8; 16 * 1024];
        while seen < COUNT {
            client.stream.write_all(&client_ping(b"p")).unwrap();
            let n = client.stream.read(&mut buf).unwrap_or(0);
            assert!(n > 0, "the server closed after {seen} messages");
            client.pending.extend_from_slice(&buf[..n]);
            loop {
                let decoded = client
                    .decoder
                    .decode(&client.pending)
                    .unwrap_or_else(|e| panic!("broken stream after {seen} messages: {e}"));
                if decoded.consumed == 0 {
                    break;
                }
                client.pending.drain(..decoded.consumed);
                match decoded.message {
                    Some(Message::Text(bytes)) => {
                        let text = std::str::from_utf8(&bytes).unwrap();
                        assert_eq!(number_of(text), seen, "in order");
                        seen += 1;
                    }
                    Some(Message::Pong(_)) => pongs += 1,
                    _ => {}
                }
            }
        }
        pongs
    });
    sender.join().unwrap();
    let pongs = reader.await.unwrap();
    assert!(pongs > 0, "the pings were answered");
}
