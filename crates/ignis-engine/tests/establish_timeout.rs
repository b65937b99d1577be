//! A session whose establish deadline passed is closed, and while the client has not fetched
//! its close yet, nothing of it keeps a CPU busy: not the polling session's timer, whose
//! establish deadline stays due, nor a WebSocket probe of that session, which must fail rather
//! than wait for an upgrade of a session that is closing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

mod common;

use common::Quiet;
use ignis_engine::{Engine, EngineConfig};

/// Sends `request` and reads the answer to the end (the request asks to close the connection).
fn exchange(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

fn polling_handshake(port: u16) -> String {
    let answer = exchange(
        port,
        "GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let start = answer.find("\"sid\":\"").expect("open packet") + 7;
    answer[start..start + 20].to_string()
}

/// Opens a WebSocket probe for the polling session `sid` and says nothing on it.
fn silent_probe(port: u16, sid: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET /engine.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: x\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    stream
}

/// CPU time this process used so far (user and system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name (which may hold spaces) end with ") ".
    let rest = &stat[stat.rfind(") ").unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis(ticks * 10)
}

/// The engine runs on a runtime of its own, so that a session that spins its worker threads
/// cannot hold up the test, which then measures it and fails rather than hangs.
#[test]
fn sessions_past_their_establish_deadline_wait_for_their_close_without_spinning() {
    // Leaked: dropping a runtime waits for its workers, and a spinning one never stops.
    let runtime: &'static tokio::runtime::Runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    ));
    let config = EngineConfig {
        establish_timeout: Some(Duration::from_millis(200)),
        // Long enough to watch the closing sessions wait for the client to fetch the close.
        ping_interval: Duration::from_secs(10),
        ping_timeout: Duration::from_millis(2500),
        upgrade_timeout: Duration::from_secs(10),
        ..EngineConfig::default()
    };
    let engine = Engine::new(config, Quiet);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    runtime.spawn(engine.clone().serve(listener));

    // Polling sessions that never poll again, and polling sessions with a silent probe.
    for _ in 0..4 {
        polling_handshake(port);
    }
    let probes: Vec<TcpStream> = (0..4)
        .map(|_| silent_probe(port, &polling_handshake(port)))
        .collect();
    assert_eq!(engine.session_count(), 8);

    // Past the establish deadline, every session is closing and waits for its client.
    std::thread::sleep(Duration::from_millis(400));
    let before = cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time() - before;
    // A spinning session keeps a core busy for the whole second; eight idle ones cost nothing
    // measurable (a tick or two at most).
    assert!(
        used < Duration::from_millis(300),
        "closing sessions used {used:?} of CPU in 1 s"
    );

    // The closes are not lost: once the client had its chance to fetch them, every session ends.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while engine.session_count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{} sessions never ended",
            engine.session_count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(probes);
}
