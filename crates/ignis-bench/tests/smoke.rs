//! The load generator against an in-process server that follows the bench contract: 50
//! clients authenticate, echo with acks, join rooms and receive REST broadcasts and room sends.

use std::net::SocketAddr;
use std::time::Duration;

use ignis_bench::fleet::Target;
use ignis_bench::scenario::{self, Setup};
use ignis_socketio::{SocketIo, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 50;

/// The contract on ignis-socketio: authenticate, echo with an ack, join with an ack.
fn contract_server() -> SocketIo {
    let io = SocketIo::builder().path("/io/").build();
    io.ns("/", |socket| async move {
        socket.on("authenticate", |socket, _event| async move {
            let _ = socket.emit(
                "authenticated",
                &serde_json::json!({ "id": socket.id().to_string() }),
            );
        });
        socket.on("echo", |_socket, mut event| async move {
            let args = std::mem::take(&mut event.args);
            event.ack(args);
        });
        socket.on("join", |socket, mut event| async move {
            let rooms: Vec<String> = event
                .args
                .first()
                .and_then(|p| p.get("rooms"))
                .and_then(Value::as_array)
                .map(|rooms| {
                    rooms
                        .iter()
                        .filter_map(|r| r.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            socket.join(rooms.clone());
            event.ack(vec![Value::Array(
                rooms.into_iter().map(Value::from).collect(),
            )]);
        });
    });
    io
}

/// `POST /broadcast` and `POST /room/{room}/send` with `{topic, data}`, keep-alive.
async fn rest(io: SocketIo, listener: tokio::net::TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let io = io.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Some((path, body_start, length)) = head(&buf) else {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    continue;
                };
                while buf.len() < body_start + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body: serde_json::Value =
                    serde_json::from_slice(&buf[body_start..body_start + length])
                        .expect("json body");
                buf.drain(..body_start + length);
                let topic = body["topic"].as_str().expect("topic").to_string();
                let data = &body["data"];
                let sent = match path
                    .strip_prefix("/room/")
                    .and_then(|p| p.strip_suffix("/send"))
                {
                    Some(room) => io.to(room.to_string()).emit(&topic, data),
                    None => io.emit(&topic, data),
                };
                sent.expect("emit");
                let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                if stream.write_all(answer.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn head(buf: &[u8]) -> Option<(String, usize, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut request = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(n) = request.parse(buf).ok()? else {
        return None;
    };
    let length = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
        .unwrap_or(0);
    Some((request.path?.to_string(), n, length))
}

#[test]
fn fifty_clients_through_every_scenario() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (io_addr, rest_addr): (SocketAddr, SocketAddr) = runtime.block_on(async {
        let io = contract_server();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let rest_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addrs = (
            listener.local_addr().expect("addr"),
            rest_listener.local_addr().expect("addr"),
        );
        let serving = io.clone();
        tokio::spawn(async move { serving.serve(listener).await });
        tokio::spawn(rest(io, rest_listener));
        addrs
    });
    let pid = std::process::id();
    let setup = Setup {
        label: "smoke".into(),
        targets: vec![Target {
            addr: io_addr,
            path: "/io/".into(),
        }],
        server_pids: vec![pid],
        threads: 2,
        source_ips: 1,
        broadcast_path: "/broadcast".into(),
        room_path: "/room/{room}/send".into(),
        rest_addr: None,
        rest_headers: String::new(),
        posters: 2,
        connect_timeout: Duration::from_secs(20),
    };

    let connect = scenario::connect(&setup, CLIENTS, Duration::from_millis(10)).expect("connect");
    assert_eq!(connect["clients"], CLIENTS);
    assert_eq!(connect["lost"], 0);

    let echo = scenario::echo(&setup, CLIENTS, Duration::from_millis(500)).expect("echo");
    assert!(
        echo["acks"].as_u64().expect("acks") > CLIENTS as u64,
        "{echo}"
    );
    assert!(
        echo["latency"]["p99_us"].as_u64().expect("p99") > 0,
        "{echo}"
    );

    // Posts go to the REST listener of the same process.
    let setup = Setup {
        rest_addr: Some(rest_addr),
        ..setup
    };
    let broadcast =
        scenario::broadcast(&setup, CLIENTS, 40.0, Duration::from_millis(500)).expect("broadcast");
    assert_eq!(broadcast["missing"], 0, "{broadcast}");
    assert_eq!(broadcast["deliveries"], 20 * CLIENTS as u64, "{broadcast}");
    assert_eq!(broadcast["posts_failed"], 0, "{broadcast}");

    let rooms = scenario::rooms(&setup, CLIENTS, &[10, 20], 40.0, Duration::from_millis(500))
        .expect("rooms");
    // Rooms of 10, 20, 10, 10 members; 20 sends to each room in turn.
    assert_eq!(rooms["rooms"], 4, "{rooms}");
    assert_eq!(rooms["expected"], 5 * (10 + 20 + 10 + 10), "{rooms}");
    assert_eq!(rooms["missing"], 0, "{rooms}");

    let sweep = scenario::sweep(
        &setup,
        CLIENTS,
        &[20.0, 40.0],
        2,
        Duration::from_millis(300),
    )
    .expect("sweep");
    assert_eq!(sweep["max_sustained_rate"], 40.0, "{sweep}");
}
