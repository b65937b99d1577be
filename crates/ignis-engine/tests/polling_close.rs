//! Long-polling sessions and load balancers. The handshake's answer names the session in a
//! header, so that a load balancer can stick the session to its node from the first answer on.
//!
//! A long-polling session the server closes while messages are still queued for it: the client
//! gets the messages in one GET and the close packet alone in the next, as the reference sends
//! them (it flushes its buffer before it closes). socket.io-client hands the events of a payload
//! to its sockets a tick after it read them, so that events sharing a payload with the close
//! would reach it after its disconnect, be kept for its next connection, and come a second time
//! to a recovered session among its missed packets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ignis_engine::{CloseReason, Engine, EngineConfig, Handler, RequestInfo, Socket};
use ignis_proto::engineio::Data;
use tokio::sync::mpsc;

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

/// One HTTP/1.1 GET on a connection of its own; the body of the answer.
fn get(port: u16, path: &str) -> String {
    get_with_head(port, path).1
}

/// One HTTP/1.1 GET on a connection of its own; the head and the body of the answer.
fn get_with_head(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("an answer");
    let answer = String::from_utf8(answer).expect("text");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    (head.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_close_comes_after_the_queued_messages_in_a_poll_of_its_own() {
    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let (closed_tx, mut closed) = mpsc::unbounded_channel();
    let engine = Engine::new(
        EngineConfig::default(),
        Probe {
            opened: opened_tx,
            closed: closed_tx,
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(engine.serve(listener));

    let (head, open) = tokio::task::spawn_blocking(move || {
        get_with_head(port, "/engine.io/?EIO=4&transport=polling")
    })
    .await
    .unwrap();
    let socket = opened.recv().await.expect("a session");
    let sid = socket.id().to_string();
    assert!(open.starts_with(&format!("0{{\"sid\":\"{sid}\"")), "{open}");
    // The header a load balancer sticks the session to its node by.
    let named = format!("{}: {sid}", ignis_engine::SESSION_ID_HEADER);
    assert!(
        head.lines().any(|line| line.eq_ignore_ascii_case(&named)),
        "{head}"
    );

    socket.send(Data::Text("a".into())).unwrap();
    socket.send(Data::Text("b".into())).unwrap();
    socket.close();
    // The close packet is queued behind the messages once the session stops taking sends.
    tokio::time::timeout(Duration::from_secs(5), async {
        while socket.is_open() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the close is queued");

    let poll = format!("/engine.io/?EIO=4&transport=polling&sid={sid}");
    let (first, second) = tokio::task::spawn_blocking(move || {
        let first = get(port, &poll);
        let second = get(port, &poll);
        (first, second)
    })
    .await
    .unwrap();
    assert_eq!(first, "4a\u{1e}4b", "the messages, without the close");
    assert_eq!(second, "1", "the close packet, alone");
    let reason = tokio::time::timeout(Duration::from_secs(5), closed.recv())
        .await
        .expect("the session ends")
        .expect("a reason");
    assert_eq!(reason, CloseReason::ForcedClose);
}
