//! `/metrics` of the `ignis-server` binary where it needs a process of its own: two nodes over
//! the real Redis (`REDIS_URL`, default 127.0.0.1:6379), whose scrape shows the connections'
//! state and a request to the other node with its latency; and a `--metrics-addr` that cannot
//! be bound, which stops the server.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

// The tests of this file start servers and make requests, and use nothing more of the module.
#[allow(dead_code)]
mod process;
use process::{http, start_server};

/// Connects a long-polling client to the main namespace; the socket's id.
async fn connect(port: u16) -> String {
    let (status, open) = http(port, "GET", "/io/?EIO=4&transport=polling", None).await;
    assert_eq!(status, 200, "{open}");
    let handshake: serde_json::Value =
        serde_json::from_str(open.strip_prefix('0').expect("an open packet")).unwrap();
    let sid = handshake["sid"].as_str().expect("a sid").to_string();
    let path = format!("/io/?EIO=4&transport=polling&sid={sid}");
    let (status, _) = http(port, "POST", &path, Some("40")).await;
    assert_eq!(status, 200);
    let (status, connect) = http(port, "GET", &path, None).await;
    assert_eq!(status, 200);
    let packet = connect
        .split('\u{1e}')
        .find_map(|p| p.strip_prefix("40"))
        .expect("the CONNECT answer");
    let payload: serde_json::Value = serde_json::from_str(packet).unwrap();
    payload["sid"].as_str().expect("a socket id").to_string()
}

/// `promtool check metrics` on an exposition, as the unit tests run it (required when
/// `IGNIS_REQUIRE_PROMTOOL=1`).
fn promtool_check(exposition: &str) {
    use std::io::Write;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if std::env::var("IGNIS_REQUIRE_PROMTOOL").as_deref() == Ok("1") => {
            panic!("promtool is required (IGNIS_REQUIRE_PROMTOOL=1) but cannot run: {e}")
        }
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

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn redis_state_and_requests_to_other_nodes_are_counted() {
    let redis_url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let key = format!(
        "ignis-metrics-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let args = ["--redis-url", &redis_url, "--redis-key", &key];
    let a = start_server(&args);
    let b = start_server(&args);
    let id = connect(a.port).await;

    // Node B finds node A's client through a request to the other nodes, once both see each
    // other.
    let path = format!("/api/socket/client/{id}/rooms");
    let found = async {
        loop {
            let (status, body) = http(b.port, "GET", &path, None).await;
            if status == 200 && body.contains(&id) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), found)
        .await
        .expect("node B finds node A's client");

    let (status, exposition) = http(b.port, "GET", "/metrics", None).await;
    assert_eq!(status, 200);
    let s = samples(&exposition);
    let v = |series: &str| {
        *s.get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{exposition}"))
    };
    assert_eq!(v(r#"ignis_redis_up{connection="subscriber"}"#), 1.0);
    assert_eq!(v(r#"ignis_redis_up{connection="publisher"}"#), 1.0);
    assert_eq!(v("ignis_redis_reconnects_total"), 0.0);
    assert_eq!(v(r#"ignis_redis_publish_errors_total{cause="redis"}"#), 0.0);
    let ok = v(r#"ignis_adapter_requests_total{result="ok"}"#);
    assert!(ok >= 1.0, "{exposition}");
    let all = ok
        + v(r#"ignis_adapter_requests_total{result="timeout"}"#)
        + v(r#"ignis_adapter_requests_total{result="error"}"#);
    assert_eq!(v("ignis_adapter_request_duration_seconds_count"), all);
    assert_eq!(
        v(r#"ignis_adapter_request_duration_seconds_bucket{le="+Inf"}"#),
        all
    );
    assert!(v("ignis_adapter_request_duration_seconds_sum") > 0.0);
    // Cumulative buckets: never fewer under a larger bound.
    let mut previous = 0.0;
    for bound in [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    ] {
        let series = format!(r#"ignis_adapter_request_duration_seconds_bucket{{le="{bound}"}}"#);
        let under = v(&series);
        assert!(under >= previous && under <= all, "{series}:\n{exposition}");
        previous = under;
    }
    promtool_check(&exposition);
}

#[test]
fn a_metrics_address_that_cannot_be_bound_stops_the_server() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_ignis-server"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-addr",
            &addr,
        ])
        .output()
        .expect("the server binary runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("metrics address") && stderr.contains(&addr),
        "{stderr}"
    );
}
