//! What the engine's integration tests share: a raw WebSocket opened by hand, and a handler
//! that does nothing.

// Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use ignis_engine::{CloseReason, Handler, RequestInfo, Socket};
use ignis_proto::engineio::Data;

/// A handler that takes sessions in and does nothing with them (it never establishes one).
pub(crate) struct Quiet;

impl Handler for Quiet {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, _socket: &Arc<Socket<()>>, _request: &RequestInfo) {}
    fn on_message(&self, _socket: &Arc<Socket<()>>, _data: Data) {}
    fn on_close(&self, _socket: &Arc<Socket<()>>, _reason: CloseReason) {}
}

/// Connects to the engine at its default path and completes a WebSocket handshake; returns the
/// stream right after the `101` answer's empty line (frames that follow it stay unread).
pub(crate) fn open_websocket(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    // The answer ends with an empty line; frames may follow in the same read, so byte by byte.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );
    stream
}
