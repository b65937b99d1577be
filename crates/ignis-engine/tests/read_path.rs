//! The WebSocket read path: a read that does not fill the buffer clears the socket's readiness
//! (so the task does not wake again for nothing). Whatever the timing, nothing a client sends may
//! then sit unread in the socket: every message must reach the handler.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

mod common;

use ignis_engine::{CloseReason, Engine, EngineConfig, Handler, RequestInfo, Socket};
use ignis_proto::engineio::Data;
use tokio::sync::mpsc;

struct Counter {
    messages: mpsc::UnboundedSender<String>,
}

impl Handler for Counter {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, _socket: &Arc<Socket<()>>, _request: &RequestInfo) {}
    fn on_message(&self, _socket: &Arc<Socket<()>>, data: Data) {
        if let Data::Text(text) = data {
            let _ = self.messages.send(text.as_str().to_owned());
        }
    }
    fn on_close(&self, _socket: &Arc<Socket<()>>, _reason: CloseReason) {}
}

/// A masked client text frame carrying `4<text>` (an Engine.IO message).
fn client_frame(text: &str) -> Vec<u8> {
    let payload = format!("4{text}");
    let key = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.bytes().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_is_read_whatever_the_timing_of_its_bytes() {
    let (tx, mut messages) = mpsc::unbounded_channel();
    let engine = Engine::new(EngineConfig::default(), Counter { messages: tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(engine.serve(listener));

    const COUNT: usize = 5_000;
    const TAIL: usize = 2_000;
    let writer = tokio::task::spawn_blocking(move || {
        let mut stream = common::open_websocket(port);
        // Frames go out whole, split at any byte position, several in one write, and with
        // pauses in between, so that reads end at every point of a frame and the server often
        // finds its socket drained right before more arrives.
        let mut pending = Vec::new();
        let mut seed = 0x9E37_79B9u32;
        for i in 0..COUNT {
            let body = "m".repeat(i % 300);
            pending.extend(client_frame(&format!("{i}:{body}")));
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            // Now and then 400 frames (about 70 KB) in one go: more than a read takes.
            let burst = i % 1000 < 400;
            if (burst && i % 1000 != 399) || (!burst && seed.is_multiple_of(3)) {
                continue;
            }
            let cut = (seed as usize) % (pending.len() + 1);
            stream.write_all(&pending[..cut]).unwrap();
            if seed.is_multiple_of(5) {
                std::thread::sleep(Duration::from_micros(200));
            }
            stream.write_all(&pending[cut..]).unwrap();
            pending.clear();
        }
        // Last, 2 MB in one write and nothing after it: whatever the reads leave must still be
        // read, with no further arrival to wake the server.
        for i in COUNT..COUNT + TAIL {
            pending.extend(client_frame(&format!("{i}:{}", "t".repeat(1000))));
        }
        stream.write_all(&pending).unwrap();
        stream
    });
    for i in 0..COUNT + TAIL {
        let text = tokio::time::timeout(Duration::from_secs(10), messages.recv())
            .await
            .unwrap_or_else(|_| panic!("message {i} never arrived"))
            .unwrap();
        let number: usize = text.split(':').next().unwrap().parse().unwrap();
        assert_eq!(number, i, "messages arrive in order");
    }
    drop(writer.await.unwrap());
}
