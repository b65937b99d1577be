//! The load generator against an in-process server that follows the bench contract: 50
//! clients authenticate, echo with acks, join rooms and receive REST broadcasts and room sends.

use std::net::SocketAddr;
use std::time::Duration;

use ignis_bench::fleet::Target;
use ignis_bench::scenario::{self, Setup};
use ignis_socketio::{RecoveryConfig, SocketIo, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENTS: usize = 50;

/// The contract on ignis-socketio: authenticate, echo with an ack, join with an ack; with
/// connection state recovery when asked.
fn contract_server(recovery: bool) -> SocketIo {
    let mut builder = SocketIo::builder().path("/io/");
    if recovery {
        builder = builder.connection_state_recovery(RecoveryConfig::default());
    }
    let io = builder.build();
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
        socket.on("join", |socket, event| async move {
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

fn serve(runtime: &tokio::runtime::Runtime, recovery: bool) -> (SocketAddr, SocketAddr) {
    runtime.block_on(async {
        let io = contract_server(recovery);
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
    })
}

fn setup(io_addr: SocketAddr, rest_addr: Option<SocketAddr>) -> Setup {
    Setup {
        label: "smoke".into(),
        targets: vec![Target {
            addr: io_addr,
            path: "/io/".into(),
        }],
        server_pids: vec![std::process::id()],
        threads: 2,
        source_ips: 1,
        broadcast_path: "/broadcast".into(),
        room_path: "/room/{room}/send".into(),
        rest_addr,
        rest_headers: String::new(),
        posters: 2,
        connect_timeout: Duration::from_secs(20),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn fifty_clients_through_every_scenario() {
    let runtime = runtime();
    let (io_addr, rest_addr) = serve(&runtime, false);
    let setup = setup(io_addr, None);

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

/// What every jitter report must add up to, whatever was lost.
fn jitter_accounting_holds(report: &serde_json::Value) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    };
    assert_eq!(n("expected"), n("posts") * CLIENTS as u64, "{report}");
    assert_eq!(n("unique") + n("missing"), n("expected"), "{report}");
    assert!(n("received") >= n("unique"), "{report}");
    assert_eq!(n("posts_failed"), 0, "{report}");
    // Connections were cut, and every client came back.
    assert!(n("cuts") > 0, "{report}");
    assert_eq!(n("ready_at_end"), CLIENTS as u64, "{report}");
}

#[test]
fn jitter_cuts_and_recovers_and_soak_samples() {
    let runtime = runtime();
    // Connections cut every ~300 ms while 20 broadcasts a second flow.
    let plan = |recovery| scenario::JitterPlan {
        clients: CLIENTS,
        cut_every: Duration::from_millis(300),
        rate: 20.0,
        duration: Duration::from_millis(1500),
        recovery,
        reconnect_after: Duration::ZERO,
        drain: Duration::from_secs(8),
    };
    let (io_addr, rest_addr) = serve(&runtime, true);
    let on = scenario::jitter(&setup(io_addr, Some(rest_addr)), &plan(true)).expect("jitter on");
    jitter_accounting_holds(&on);
    // The server restored sessions: the clients sent back what it gave them.
    let recovered = on["recovered"].as_u64().expect("recovered");
    assert!(
        recovered > 0 && recovered <= on["reconnects"].as_u64().expect("reconnects"),
        "{on}"
    );

    let (io_addr, rest_addr) = serve(&runtime, false);
    let setup = setup(io_addr, Some(rest_addr));
    let off = scenario::jitter(&setup, &plan(false)).expect("jitter off");
    jitter_accounting_holds(&off);
    assert_eq!(off["recovered"], 0, "{off}");

    let soak = scenario::soak(
        &setup,
        &scenario::SoakPlan {
            clients: CLIENTS,
            duration: Duration::from_secs(3),
            sample_every: Duration::from_secs(1),
            lifetime: Duration::from_millis(500),
            echo_every: Duration::from_millis(200),
            rate: 20.0,
            rooms: 5,
            rooms_per_client: 2,
        },
    )
    .expect("soak");
    // Samples at 0, 1, 2 and 3 s; clients came and went, echoed and received.
    assert_eq!(soak["samples"].as_array().map(Vec::len), Some(4), "{soak}");
    for key in ["left", "acks", "deliveries"] {
        assert!(soak[key].as_u64().expect(key) > 0, "{key}: {soak}");
    }
    assert!(
        soak["opened"].as_u64().expect("opened") > CLIENTS as u64,
        "{soak}"
    );
    assert!(soak["flat"].is_boolean(), "{soak}");
    assert!(soak["rss_kib"]["flat"].is_boolean(), "{soak}");
}

/// The scale benchmark split over two holders and a poster, as `scripts/bench-scale.sh` runs it
/// over processes: every broadcast reaches all 50 clients, every room send its room of 10.
#[test]
fn scale_holders_and_poster_meet_in_the_control_directory() {
    use ignis_bench::scale::{self, HoldPlan, PostStreams};

    let runtime = runtime();
    let (io_addr, rest_addr) = serve(&runtime, false);
    let setup = Setup {
        rest_addr: Some(rest_addr),
        ..setup(io_addr, None)
    };
    let control = std::env::temp_dir().join(format!("ignis-bench-scale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&control);
    std::fs::create_dir_all(&control).expect("control directory");
    let holders: Vec<_> = [(0, 30), (30, 20)]
        .into_iter()
        .map(|(first, count)| {
            let plan = HoldPlan {
                total: CLIENTS,
                first,
                count,
                room_size: 10,
                token: Some("not checked by the contract server".into()),
                control: control.clone(),
                drain: Duration::from_secs(10),
                max_wait: Duration::from_secs(30),
            };
            let setup = setup.clone();
            std::thread::spawn(move || scale::hold(&setup, &plan))
        })
        .collect();
    // The poster starts once both holders are ready, as the script does.
    for first in [0, 30] {
        let ready = control.join(format!("ready-{first}.json"));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "holder {first} not ready"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let streams = PostStreams {
        duration: Duration::from_secs(1),
        broadcast_rate: 4.0,
        room_rate: 12.0,
        rooms: 5,
        control: control.clone(),
    };
    let post = scale::post(&setup, &streams).expect("post");
    assert_eq!(post["broadcasts"], 4, "{post}");
    assert_eq!(post["room_sends"], 12, "{post}");
    assert_eq!(post["room_posts"]["failed"], 0, "{post}");
    let reports: Vec<serde_json::Value> = holders
        .into_iter()
        .map(|h| h.join().expect("holder thread").expect("hold"))
        .collect();
    // 12 room sends over 5 rooms: rooms 0 and 1 get 3, the others 2; rooms 0-2 are the first
    // holder's, 3-4 the second's.
    let expected = [4 * 30 + 10 * (3 + 3 + 2), 4 * 20 + 10 * (2 + 2)];
    for (report, expected) in reports.iter().zip(expected) {
        assert_eq!(report["expected"], expected, "{report}");
        assert_eq!(report["deliveries"], expected, "{report}");
        assert_eq!(report["missing"], 0, "{report}");
        assert_eq!(report["duplicated"], 0, "{report}");
        assert_eq!(report["out_of_order"], 0, "{report}");
        assert_eq!(report["lost"], 0, "{report}");
        let counted: u64 = report["latency_buckets"]
            .as_array()
            .expect("buckets")
            .iter()
            .map(|b| b[1].as_u64().expect("count"))
            .sum();
        assert_eq!(counted, expected, "{report}");
    }
    let _ = std::fs::remove_dir_all(&control);
}
