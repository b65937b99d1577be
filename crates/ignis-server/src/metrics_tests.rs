//! `/metrics` as `main` serves it: known traffic (clients authenticated, refused and timed
//! out, events, a REST broadcast, a REST 404), then the figures read back from a scrape, which
//! Prometheus's own `promtool check metrics` accepts; the API key in front of it; and the
//! separate listener of `--metrics-addr`. With Redis, and a bad address: `tests/metrics.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::api::tests::PollingClient;
use crate::config::{Cli, Config};
use crate::metrics::METRICS_ADDR;
use crate::tests::start;

const SECRET: &str = "a-metrics-test-secret-long-enough";
const KEY: &str = "metrics-k3y";

fn token_auth(sub: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    json!({ "token": token }).to_string()
}

/// One HTTP/1.1 request with `headers`; the status and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut raw))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

/// The samples of an exposition, by series as written (`name{label="value",...}`).
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

async fn scrape(addr: SocketAddr) -> (String, HashMap<String, f64>) {
    let (status, body) = http(addr, "GET", "/metrics", &[("x-api-key", KEY)], "").await;
    assert_eq!(status, 200, "{body}");
    let parsed = samples(&body);
    (body, parsed)
}

/// Polls a client's session until the server ends it (it answers the close packet, or no
/// longer knows the session).
async fn poll_until_closed(addr: SocketAddr, client: &PollingClient) {
    let url = format!("/io/?EIO=4&transport=polling&sid={}", client.engine_sid);
    let closed = async {
        loop {
            let (status, body) = http(addr, "GET", &url, &[], "").await;
            if status != 200 || body.split('\u{1e}').any(|p| p == "1") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the server closes the session");
}

/// Runs `promtool check metrics` on an exposition: Prometheus's own parser and linter.
fn promtool_check(exposition: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("IGNIS_REQUIRE_PROMTOOL").as_deref() == Ok("1") => panic!(
            "promtool is required (IGNIS_REQUIRE_PROMTOOL=1) but cannot run: {e}; \
             install Debian's `prometheus` package"
        ),
        Err(e) => {
            eprintln!("promtool not run ({e}): install Debian's `prometheus` package to check");
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(exposition.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused the exposition:\n{}{}\n---\n{exposition}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[tokio::test]
async fn scrape_shows_known_traffic_and_passes_promtool() {
    let app = start(Cli {
        jwt_secret: Some(SECRET.into()),
        api_key: Some(KEY.into()),
        auth_timeout_ms: Some(300),
        ..Cli::default()
    })
    .await;
    let addr = app.local_addr();

    // Alice authenticates and sends two more events; Mallory's token is refused; Idle never
    // authenticates and passes its deadline.
    let alice = PollingClient::connect_only(addr, Some(&token_auth("alice"))).await;
    alice.write(r#"42["authenticate"]"#).await;
    alice.event("authenticated").await;
    for ack in 1..=2 {
        alice
            .emit_with_ack(ack, "join", json!({ "rooms": ["lobby"] }))
            .await;
    }
    let forged = json!({ "token": "a.b.c" }).to_string();
    let mallory = PollingClient::connect_only(addr, Some(&forged)).await;
    mallory.write(r#"42["authenticate"]"#).await;
    mallory.event("unauthenticated").await;
    poll_until_closed(addr, &mallory).await;
    let idle = PollingClient::connect_only(addr, None).await;
    idle.event("unauthenticated").await;
    poll_until_closed(addr, &idle).await;

    let (_, before) = scrape(addr).await;

    // A broadcast through the REST API reaches Alice, the one authenticated client.
    let (status, body) = http(
        addr,
        "POST",
        "/api/socket/broadcast",
        &[("x-api-key", KEY)],
        r#"{"topic":"news","data":{"n":1}}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(alice.event("news").await, vec![json!({"n": 1})]);
    // A path no route matches.
    let (status, _) = http(addr, "GET", "/api/no/such/route", &[], "").await;
    assert_eq!(status, 404);

    let (exposition, after) = scrape(addr).await;
    let v = |series: &str| value(&after, series);

    assert_eq!(v(r#"ignis_connections{transport="polling"}"#), 1.0);
    assert_eq!(v(r#"ignis_connections{transport="websocket"}"#), 0.0);
    assert_eq!(v(r#"ignis_clients{state="authenticated"}"#), 1.0);
    assert_eq!(v(r#"ignis_clients{state="unauthenticated"}"#), 0.0);
    assert_eq!(v(r#"ignis_handshakes_total{transport="polling"}"#), 3.0);
    assert_eq!(v(r#"ignis_handshakes_total{transport="websocket"}"#), 0.0);
    assert_eq!(v("ignis_upgrades_total"), 0.0);
    // Mallory and Idle were cut by the server.
    assert_eq!(v(r#"ignis_disconnects_total{reason="forced_close"}"#), 2.0);
    assert_eq!(v(r#"ignis_disconnects_total{reason="ping_timeout"}"#), 0.0);
    assert_eq!(v(r#"ignis_authentications_total{result="ok"}"#), 1.0);
    assert_eq!(v(r#"ignis_authentications_total{result="refused"}"#), 1.0);
    assert_eq!(v(r#"ignis_authentications_total{result="timeout"}"#), 1.0);
    // Alice's `authenticate` and two `join`s, and Mallory's `authenticate`.
    assert_eq!(v("ignis_events_received_total"), 4.0);
    assert!(
        v("ignis_messages_received_total") >= 4.0 + 3.0,
        "events and CONNECTs"
    );
    assert!(v("ignis_received_bytes_total") > 50.0);
    assert!(v("ignis_packets_sent_total") > 0.0);
    assert!(v(r#"ignis_sent_bytes_total{path="direct"}"#) > 0.0);
    // The broadcast: one, to one recipient.
    let delta = |series: &str| v(series) - value(&before, series);
    assert_eq!(delta("ignis_broadcasts_total"), 1.0);
    assert_eq!(delta("ignis_broadcast_deliveries_total"), 1.0);
    assert!(delta(r#"ignis_sent_bytes_total{path="broadcast"}"#) > 0.0);
    assert_eq!(v("ignis_volatile_drops_total"), 0.0);
    assert_eq!(
        v(r#"ignis_slow_clients_disconnected_total{bound="bytes"}"#),
        0.0
    );
    assert_eq!(v("ignis_failed_sends_total"), 0.0);
    // REST: the matched route's template, the 404 as `unmatched`, with their latency.
    assert_eq!(
        v(
            r#"ignis_http_request_duration_seconds_count{method="POST",route="/api/socket/broadcast",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            r#"ignis_http_request_duration_seconds_count{method="GET",route="unmatched",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            r#"ignis_http_request_duration_seconds_count{method="GET",route="/metrics",status="200"}"#
        ),
        1.0,
        "the first scrape, counted once it was answered"
    );
    assert!(
        !exposition.contains("/api/no/such"),
        "a raw path became a label"
    );
    assert!(!exposition.contains("lobby"), "a room name became a label");
    // No Redis here: no Redis series.
    assert!(!exposition.contains("ignis_redis_up"));
    // The process.
    assert!(v("process_resident_memory_bytes") > 1e6);
    assert!(v("process_open_fds") > 3.0);
    assert!(v("process_max_fds") >= v("process_open_fds"));
    assert!(v("process_cpu_seconds_total") > 0.0);

    promtool_check(&exposition);
    app.stop().await;
}

#[tokio::test]
async fn metrics_need_the_api_key_when_one_is_set() {
    let app = start(Cli {
        api_key: Some(KEY.into()),
        ..Cli::default()
    })
    .await;
    let addr = app.local_addr();
    let (status, _) = http(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 401);
    let (status, _) = http(addr, "GET", "/metrics", &[("x-api-key", "wrong")], "").await;
    assert_eq!(status, 401);
    let (status, body) = http(
        addr,
        "GET",
        "/metrics",
        &[("authorization", &format!("Bearer {KEY}"))],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE ignis_connections gauge"), "{body}");
    app.stop().await;

    // Without a key, /metrics is open, as the API is.
    let app = start(Cli::default()).await;
    let (status, _) = http(app.local_addr(), "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn metrics_addr_serves_them_apart_and_off_turns_them_off() {
    let app = start(Cli {
        api_key: Some(KEY.into()),
        metrics_addr: Some("127.0.0.1:0".into()),
        ..Cli::default()
    })
    .await;
    let metrics_addr = app
        .handle()
        .get(METRICS_ADDR)
        .expect("the metrics address is bound");
    // On its own address, without the key; OpenMetrics when asked for.
    let (status, body) = http(metrics_addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    assert!(body.contains("ignis_handshakes_total"), "{body}");
    let (status, body) = http(
        metrics_addr,
        "GET",
        "/metrics",
        &[("accept", "application/openmetrics-text; version=1.0.0")],
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.ends_with("# EOF\n"), "{body}");
    // Not on the API's port, key or not.
    let (status, _) = http(
        app.local_addr(),
        "GET",
        "/metrics",
        &[("x-api-key", KEY)],
        "",
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;

    let app = start(Cli {
        metrics: Some(false),
        ..Cli::default()
    })
    .await;
    let (status, _) = http(app.local_addr(), "GET", "/metrics", &[], "").await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[test]
fn metrics_settings_come_from_flags_and_the_file() {
    let dir = std::env::temp_dir().join(format!("ignis-metrics-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "metrics = false\nmetrics_addr = \"127.0.0.1:9464\"\n",
    )
    .unwrap();
    let config = Config::load(Cli {
        config: Some(file.clone()),
        ..Cli::default()
    })
    .unwrap();
    assert!(!config.metrics.enabled);
    assert_eq!(config.metrics.addr, Some("127.0.0.1:9464".parse().unwrap()));
    let config = Config::load(Cli::default()).unwrap();
    assert!(config.metrics.enabled);
    assert_eq!(config.metrics.addr, None);

    let error = Config::load(Cli {
        metrics_addr: Some("localhost".into()),
        ..Cli::default()
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("metrics addr"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The series of a scrape are bounded: whatever the clients did, none carries a value they
/// chose. Checked on the label values of every series of a busy scrape.
#[tokio::test]
async fn label_values_are_from_a_fixed_set() {
    let app = start(Cli::default()).await;
    let addr = app.local_addr();
    let client = PollingClient::connect(addr).await;
    client
        .emit_with_ack(1, "join", json!({ "rooms": ["room-chosen-by-client"] }))
        .await;
    let _ = http(addr, "BREW", "/api/socket/info", &[], "").await;
    let _ = http(addr, "GET", "/api/socket/client/abc/rooms", &[], "").await;
    let (status, body) = http(addr, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    let allowed_routes = [
        "/api/socket/client/{clientId}/rooms",
        "/metrics",
        "unmatched",
        "/api/socket/info",
    ];
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        assert!(!line.contains("room-chosen-by-client"), "{line}");
        assert!(!line.contains("BREW"), "{line}");
        if let Some(at) = line.find("route=\"") {
            let route = &line[at + 7..];
            let route = &route[..route.find('"').unwrap()];
            assert!(allowed_routes.contains(&route), "{line}");
        }
    }
    app.stop().await;
}
