//! Clients that try to exhaust the server: a ping flood from a client that never reads, a client
//! that leaves large messages unread, a protocol error. Memory a client can make the server
//! hold stays bounded, the client is cut or stopped with a clear reason, and the engine counts
//! what it did.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

mod common;

use ignis_engine::{
    CloseReason, Engine, EngineConfig, Handler, RequestInfo, SendError, SharedMessage, Socket,
};
use ignis_proto::engineio::{Data, Str};
use ignis_ws::{Decoder, Message, OpCode, Role};
use tokio::sync::mpsc;

/// Echoes every message; hands every opened session to the test and reports closes.
struct Echo {
    opened: mpsc::UnboundedSender<Arc<Socket<()>>>,
    closed: mpsc::UnboundedSender<CloseReason>,
}

impl Handler for Echo {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, socket: &Arc<Socket<()>>, _request: &RequestInfo) {
        let _ = self.opened.send(Arc::clone(socket));
    }
    fn on_message(&self, socket: &Arc<Socket<()>>, data: Data) {
        let _ = socket.send(data);
    }
    fn on_close(&self, _socket: &Arc<Socket<()>>, reason: CloseReason) {
        let _ = self.closed.send(reason);
    }
}

struct Server {
    port: u16,
    engine: Engine<Echo>,
    opened: mpsc::UnboundedReceiver<Arc<Socket<()>>>,
    closed: mpsc::UnboundedReceiver<CloseReason>,
}

async fn start(config: EngineConfig) -> Server {
    let (opened_tx, opened) = mpsc::unbounded_channel();
    let (closed_tx, closed) = mpsc::unbounded_channel();
    let engine = Engine::new(
        config,
        Echo {
            opened: opened_tx,
            closed: closed_tx,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(engine.clone().serve(listener));
    Server {
        port,
        engine,
        opened,
        closed,
    }
}

/// A masked client frame.
fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    ignis_ws::encode_frame(opcode, payload, false, Some([7, 1, 3, 9])).to_vec()
}

/// Reads frames until `stop` says so or the connection ends; returns every frame read.
fn read_frames(
    stream: &mut TcpStream,
    mut stop: impl FnMut(&Message) -> bool,
) -> Vec<(OpCode, Vec<u8>)> {
    let mut decoder = Decoder::new(Role::Client, 64 << 20);
    let mut pending = Vec::new();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        loop {
            let decoded = decoder.decode(&pending).unwrap();
            if decoded.consumed == 0 {
                break;
            }
            pending.drain(..decoded.consumed);
            if let Some(message) = decoded.message {
                let done = stop(&message);
                frames.push(match message {
                    Message::Text(b) => (OpCode::Text, b.to_vec()),
                    Message::Binary(b) => (OpCode::Binary, b.to_vec()),
                    Message::Ping(b) => (OpCode::Ping, b.to_vec()),
                    Message::Pong(b) => (OpCode::Pong, b.to_vec()),
                    Message::Close(_) => (OpCode::Close, Vec::new()),
                    Message::Compressed(_) => (OpCode::Binary, Vec::new()),
                });
                if done {
                    return frames;
                }
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return frames,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// Writes `frame` over and over, up to `total` bytes, until the server stops taking them for
/// a while (it stopped reading); returns how many whole frames left.
fn flood(stream: &mut TcpStream, frame: &[u8], total: usize) -> usize {
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let batch: Vec<u8> = frame.repeat((256 * 1024 / frame.len()).max(1));
    let mut written = 0;
    while written < total {
        match stream.write(&batch[written % batch.len()..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("the server reset the connection: {e}"),
        }
    }
    stream.set_write_timeout(None).unwrap();
    written
}

/// Floods `frame` (see [`flood`]), then reads while it finishes the frame it was writing and
/// sends a ping `last`; returns how many frames it sent and every frame read up to the pong of
/// `last`.
fn flood_then_read(
    stream: &mut TcpStream,
    frame: &[u8],
    total: usize,
) -> (usize, Vec<(OpCode, Vec<u8>)>) {
    let written = flood(stream, frame, total);
    // The server may be waiting for this client to read before it reads more: read meanwhile.
    let mut reader = stream.try_clone().unwrap();
    let frames = std::thread::spawn(move || {
        read_frames(
            &mut reader,
            |m| matches!(m, Message::Pong(p) if &p[..] == b"last"),
        )
    });
    let rest = (frame.len() - written % frame.len()) % frame.len();
    stream.write_all(&frame[frame.len() - rest..]).unwrap();
    stream
        .write_all(&client_frame(OpCode::Ping, b"last"))
        .unwrap();
    (written.div_ceil(frame.len()), frames.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_flood_is_answered_with_the_latest_pong_only() {
    let server = start(EngineConfig::default()).await;
    let port = server.port;
    let pongs = tokio::task::spawn_blocking(move || {
        let mut stream = common::open_websocket(port);
        let ping = client_frame(OpCode::Ping, &[b'p'; 125]);
        let (sent, frames) = flood_then_read(&mut stream, &ping, 48 << 20);
        let pongs = frames.iter().filter(|(op, _)| *op == OpCode::Pong).count();
        assert_eq!(frames.last().map(|f| f.1.as_slice()), Some(&b"last"[..]));
        (sent, pongs)
    })
    .await
    .unwrap();
    let (sent, pongs) = pongs;
    // Every ping answered would be 48 MB of pongs held for a client that does not read.
    assert!(sent > 10_000, "{sent} pings sent");
    assert!(pongs * 10 < sent, "{pongs} pongs for {sent} pings");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pings_and_never_reads_is_not_read_either() {
    let mut server = start(EngineConfig::default()).await;
    let port = server.port;
    let client = tokio::task::spawn_blocking(move || {
        let mut stream = common::open_websocket(port);
        // Echoed messages fill the socket until the echo can't leave, then pings follow: the
        // pong owed can't leave either, and the server stops reading until the client reads.
        let mut frame = client_frame(OpCode::Text, &[b'4'; 256 * 1024]);
        frame.extend(client_frame(OpCode::Ping, b"ping"));
        let (sent, frames) = flood_then_read(&mut stream, &frame, 256 << 20);
        let echoes = frames.iter().filter(|(op, _)| *op == OpCode::Text).count();
        assert!(
            !frames.iter().any(|(op, _)| *op == OpCode::Close),
            "the session was closed"
        );
        (sent, echoes, stream)
    })
    .await
    .unwrap();
    let (sent, echoes, _stream) = client;
    let _socket = server.opened.recv().await.unwrap();
    // Stopped well before the 1 GiB offered; each message was echoed (the open packet is one
    // text frame more).
    assert!(sent < 1024, "{sent} messages sent");
    assert_eq!(echoes, sent + 1);
    assert!(server.closed.try_recv().is_err(), "still open");
    assert!(server.engine.abuse_counters().ping_flood_pauses >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_error_is_answered_with_one_close() {
    let server = start(EngineConfig::default()).await;
    let port = server.port;
    let frames = tokio::task::spawn_blocking(move || {
        let mut stream = common::open_websocket(port);
        // Unmasked: a protocol error from a client.
        let unmasked = ignis_ws::encode_frame(OpCode::Text, b"4hello", false, None);
        stream.write_all(&unmasked).unwrap();
        read_frames(&mut stream, |_| false)
    })
    .await
    .unwrap();
    let closes = frames.iter().filter(|(op, _)| *op == OpCode::Close).count();
    assert_eq!(closes, 1, "{frames:?}");
}

/// Sends 100 KB messages to `socket` until it refuses; how many it took.
fn fill(socket: &Socket<()>, shared: bool) -> usize {
    let text = Str::from("x".repeat(100_000));
    let message = SharedMessage::new(Data::Text(text.clone()));
    for sent in 0..100_000 {
        let result = if shared {
            socket.send_shared(std::slice::from_ref(&message), false)
        } else {
            socket.send(Data::Text(text.clone()))
        };
        match result {
            Ok(()) => {}
            Err(SendError::QueueFull | SendError::Closed) => return sent,
        }
    }
    panic!("never refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_is_bounded_in_bytes() {
    let config = EngineConfig {
        max_queued_bytes: 4 << 20,
        ..EngineConfig::default()
    };
    let mut server = start(config).await;
    let port = server.port;

    // WebSocket, one message per send and a broadcast's shared message: the client never
    // reads, so what the socket does not take stays with the session.
    for shared in [false, true] {
        let stream = tokio::task::spawn_blocking(move || common::open_websocket(port));
        let socket = server.opened.recv().await.unwrap();
        let stream = stream.await.unwrap();
        let sent = fill(&socket, shared);
        // 4 MiB held, plus what the kernel's buffers took; far from the 8192 messages.
        assert!(sent < 1000, "{sent} messages of 100 KB queued");
        assert_eq!(server.closed.recv().await, Some(CloseReason::SlowClient));
        drop(stream);
    }

    // Polling: the queue waits for a GET that never comes.
    let stream = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            stream,
            "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        stream
    });
    let socket = server.opened.recv().await.unwrap();
    let mut stream = stream.await.unwrap();
    let sent = fill(&socket, false);
    assert!(sent <= 42, "{sent} messages of 100 KB queued");
    // The next GET takes what was queued and the close.
    let sid = socket.id();
    write!(
        stream,
        "GET /engine.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    assert_eq!(server.closed.recv().await, Some(CloseReason::SlowClient));
    let counters = server.engine.abuse_counters();
    assert_eq!(counters.queue_full_bytes, 3);
    assert_eq!(counters.queue_full_messages, 0);
}
