//! Sessions that never finish a handshake, an upgrade or a namespace connect expire, and a flood
//! of them leaves the session table empty and memory flat.

use std::time::Duration;

use ignis_socketio::SocketIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn sid_of(response: &str) -> String {
    let start = response.find("\"sid\":\"").expect("open packet") + 7;
    response[start..start + 20].to_string()
}

/// A WebSocket upgrade that completes the HTTP handshake and then says nothing.
async fn silent_websocket(addr: std::net::SocketAddr, query: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET /socket.io/?EIO=4&transport=websocket{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 101"));
    s
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_abandoned_sessions_expires_and_leaves_memory_flat() {
    let io = SocketIo::builder()
        .connect_timeout(Duration::from_millis(300))
        .upgrade_timeout(Duration::from_millis(300))
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(200))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(io.clone().serve(listener));

    // The allocator and the runtime grow their pools over the first rounds (measured: RSS levels
    // off after about eight rounds); what counts is that it then stays flat.
    const WARM_UP: usize = 8;
    const MEASURED: usize = 4;
    let mut baseline = 0;
    for round in 0..WARM_UP + MEASURED {
        let mut sockets = Vec::new();
        // Polling handshakes that never send CONNECT.
        for _ in 0..200 {
            let _ = http_get(addr, "/socket.io/?EIO=4&transport=polling").await;
        }
        // Polling sessions whose upgrade starts and never finishes.
        for _ in 0..50 {
            let open = http_get(addr, "/socket.io/?EIO=4&transport=polling").await;
            let sid = sid_of(&open);
            sockets.push(silent_websocket(addr, &format!("&sid={sid}")).await);
        }
        // WebSocket sessions that never send CONNECT.
        for _ in 0..100 {
            sockets.push(silent_websocket(addr, "").await);
        }
        assert!(
            io.engine().session_count() > 0,
            "round {round}: sessions were opened"
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while io.engine().session_count() > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: {} sessions never expired",
                io.engine().session_count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(io.main_namespace().socket_count(), 0);
        drop(sockets);
        tokio::time::sleep(Duration::from_millis(100)).await;
        if round + 1 == WARM_UP {
            baseline = rss_kib();
        }
    }
    let growth = rss_kib().saturating_sub(baseline);
    // 4 200 sessions were opened after the warm-up; keeping even 128 bytes of each would show.
    assert!(
        growth < 512,
        "RSS grew by {growth} KiB over {MEASURED} rounds of abandoned sessions"
    );
}
