//! Bytes from a client into a whole server running in this process: the `ignis` application with
//! the Socket.IO component (its accept loop, the engine's direct WebSocket path, hyper for
//! everything else, polling, the Socket.IO parser and the component's auth flow and rooms).
//!
//! The first byte picks an entry point, and the rest is what the client sends there:
//! - raw: the bytes as they are, as the first request of a connection (HTTP head and body);
//! - websocket: a valid upgrade, then the input as a list of frames, masked by the harness so
//!   that the fuzzer works on payloads (Engine.IO and Socket.IO text) rather than on masks;
//! - polling: a handshake, then the input as the body of POSTs to the new session.
//!
//! Checked: no panic anywhere in the server (libfuzzer-sys's panic hook aborts the process, and
//! it is process-wide, so a panic in a server task is a crash too), and the server still answers a
//! handshake after every input (a stalled or dead server is a crash).
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ignis::socketio::{
    AuthenticateHandler, ServerOptions, SocketIoComponent, ValidateRoomHandler, keys,
};
use ignis::{AppConfig, Application};
use libfuzzer_sys::fuzz_target;

/// How long a client waits for the server to finish answering one input.
const READ_DEADLINE: Duration = Duration::from_millis(500);

fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let options = ServerOptions {
                    // Short heartbeats, so that the sessions the inputs leave behind go quickly.
                    ping_interval: Some(Duration::from_millis(300)),
                    ping_timeout: Some(Duration::from_millis(300)),
                    max_http_buffer_size: Some(64 * 1024),
                    ..ServerOptions::default()
                };
                let app = Application::new(AppConfig {
                    name: "fuzz".into(),
                    host: "127.0.0.1".into(),
                    port: 0,
                    request_head_timeout: Duration::from_secs(1),
                })
                .bind(keys::SERVER_OPTIONS, options)
                .bind(
                    keys::AUTHENTICATE_HANDLER,
                    AuthenticateHandler::new(|req| async move {
                        Ok(req.handshake.header("x-refuse").is_none())
                    }),
                )
                .bind(
                    keys::VALIDATE_ROOM_HANDLER,
                    ValidateRoomHandler::new(|_, rooms| async move { Ok(rooms) }),
                )
                .component(
                    SocketIoComponent::new()
                        .authenticate_timeout(Duration::from_millis(500))
                        .app_ping_interval(Duration::from_millis(200)),
                );
                let running = app.start().await.expect("the fuzz server starts");
                tx.send(running.local_addr()).expect("address");
                running.run_until_signal().await;
            });
        });
        rx.recv().expect("the fuzz server's address")
    })
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the fuzz server");
    stream.set_nodelay(true).ok();
    stream.set_read_timeout(Some(Duration::from_millis(50))).ok();
    stream
}

/// Reads until the server closes or the deadline passes; returns what was read.
fn read_all(stream: &mut TcpStream, stop_at: Option<&[u8]>) -> Vec<u8> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if let Some(end) = stop_at {
                    if out.windows(end.len()).any(|w| w == end) {
                        break;
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    out
}

fn raw(addr: SocketAddr, data: &[u8]) {
    let mut stream = connect(addr);
    let _ = stream.write_all(data);
    let _ = stream.shutdown(Shutdown::Write);
    read_all(&mut stream, None);
}

/// A client frame: FIN and opcode from `head`, masked with a fixed key.
fn push_frame(out: &mut Vec<u8>, head: u8, payload: &[u8]) {
    out.push(head);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

fn websocket(addr: SocketAddr, settings: u8, data: &[u8]) {
    let mut stream = connect(addr);
    let deflate = if settings & 1 != 0 {
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    } else {
        ""
    };
    let refuse = if settings & 2 != 0 { "X-Refuse: 1\r\n" } else { "" };
    let head = format!(
        "GET /io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: fuzz\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{deflate}{refuse}\r\n"
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    read_all(&mut stream, Some(b"\r\n\r\n"));
    // The input as frames: [head byte][length byte][payload of that length]..., where the head's
    // low nibble is the opcode and its top bits FIN and RSV. Text frames are what the fuzzer
    // reaches the Socket.IO parser with.
    let mut frames = Vec::with_capacity(data.len() + 64);
    let mut rest = data;
    while let [head, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        push_frame(&mut frames, *head, &tail[..n]);
        rest = &tail[n..];
    }
    let _ = stream.write_all(&frames);
    let _ = stream.shutdown(Shutdown::Write);
    read_all(&mut stream, None);
}

/// Opens a polling session; returns its sid.
fn polling_handshake(addr: SocketAddr) -> Option<String> {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n")
        .ok()?;
    let answer = read_all(&mut stream, None);
    let text = String::from_utf8_lossy(&answer);
    let start = text.find("\"sid\":\"")? + 7;
    let end = start + text[start..].find('"')?;
    Some(text[start..end].to_owned())
}

fn polling(addr: SocketAddr, data: &[u8]) {
    let Some(sid) = polling_handshake(addr) else {
        panic!("the server did not answer a polling handshake");
    };
    // The input, split at 0xff bytes, as the bodies of successive POSTs.
    for body in data.split(|b| *b == 0xff).take(4) {
        let mut stream = connect(addr);
        let head = format!(
            "POST /io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: fuzz\r\n\
             Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
        read_all(&mut stream, None);
    }
}

fuzz_target!(|data: &[u8]| {
    let addr = server();
    let [mode, settings, rest @ ..] = data else {
        return;
    };
    match mode % 3 {
        0 => raw(addr, rest),
        1 => websocket(addr, *settings, rest),
        _ => polling(addr, rest),
    }
    // Still serving: a new client gets its handshake.
    assert!(
        polling_handshake(addr).is_some(),
        "the server stopped answering after this input"
    );
});
