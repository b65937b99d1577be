//! The WebSocket task polls its heartbeat timer only when the timer is new, was reset or fired,
//! not on every sleep. A connection kept busy (many wake-ups, none of them the timer's) must still
//! get its pings on time, and one that stops answering them must still be closed.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use ignis_engine::{CloseReason, Engine, EngineConfig, Handler, RequestInfo, Socket};
use ignis_proto::engineio::Data;

/// Echoes every message, so that each one wakes the connection's task and writes.
struct Echo;

impl Handler for Echo {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, _socket: &Arc<Socket<()>>, _request: &RequestInfo) {}
    fn on_message(&self, socket: &Arc<Socket<()>>, data: Data) {
        let _ = socket.send(data);
    }
    fn on_close(&self, _socket: &Arc<Socket<()>>, _reason: CloseReason) {}
}

/// A masked client text frame carrying `text` (an Engine.IO packet).
fn client_frame(text: &str) -> Vec<u8> {
    let key = [0x21, 0x43, 0x65, 0x87];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&key);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Reads one server frame (unmasked, short); `None` once the server closed the connection.
fn read_frame(stream: &mut std::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).ok()?;
            usize::from(u16::from_be_bytes(ext))
        }
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0f, payload))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_connection_is_pinged_on_time_and_closed_when_it_stops_answering() {
    let config = EngineConfig {
        ping_interval: Duration::from_millis(150),
        ping_timeout: Duration::from_millis(150),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(engine.serve(listener));

    tokio::task::spawn_blocking(move || {
        let mut stream = common::open_websocket(port);
        let (_, open) = read_frame(&mut stream).expect("open packet");
        assert_eq!(open.first(), Some(&b'0'));

        // For a second, a message every millisecond: the task wakes for each one, and the
        // pings must come all the same, answered each time.
        let started = Instant::now();
        let mut pings = 0;
        let mut echoes = 0;
        while started.elapsed() < Duration::from_secs(1) {
            stream.write_all(&client_frame("4hello")).unwrap();
            loop {
                let (opcode, payload) = read_frame(&mut stream).expect("open while answering");
                assert_eq!(opcode, 1);
                if payload == b"2" {
                    pings += 1;
                    stream.write_all(&client_frame("3")).unwrap();
                    continue;
                }
                assert_eq!(payload, b"4hello");
                echoes += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(echoes > 100, "{echoes} echoes");
        // One ping per 150 ms: six in a second, give or take the scheduling of a busy host.
        assert!(pings >= 4, "only {pings} pings in a second of traffic");

        // Still busy, but the pings go unanswered: the server closes the connection within
        // an interval and a timeout, and some slack.
        let silent_since = Instant::now();
        let closed = loop {
            if stream.write_all(&client_frame("4hello")).is_err() {
                break silent_since.elapsed();
            }
            match read_frame(&mut stream) {
                Some((8, _)) | None => break silent_since.elapsed(),
                Some(_) => {}
            }
            assert!(
                silent_since.elapsed() < Duration::from_secs(5),
                "a client that does not answer pings is never closed"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(
            closed >= Duration::from_millis(150),
            "closed after {closed:?}"
        );
    })
    .await
    .unwrap();
}
