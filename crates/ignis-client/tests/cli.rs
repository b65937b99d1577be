//! The `ignis-cli` binary: output lines and exit codes.

mod common;

use common::{AuthMode, SpecServer, closed_port, obj, within};
use ignis_client::Value;
use tokio::process::Command;

async fn run(args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let output = within(
        "ignis-cli",
        Command::new(env!("CARGO_BIN_EXE_ignis-cli"))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("run ignis-cli");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    (
        output.status.code().unwrap_or(-1),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn authenticates_joins_emits_and_prints_events() {
    let server = SpecServer::start().await;
    let url = server.url();
    for transport in ["websocket", "polling", "upgrade"] {
        let (code, lines, stderr) = run(&[
            &url,
            "--path",
            "/io",
            "-H",
            "Authorization: Bearer t",
            "--transport",
            transport,
            "--authenticate",
            "--join",
            "room-1",
            "--emit",
            "client-message",
            "--data",
            r#"{"bin":false,"content":"hi"}"#,
            "--duration",
            "0.3",
        ])
        .await;
        assert_eq!(code, 0, "{transport}: {stderr}");
        assert_eq!(lines[0]["type"], "connect", "{lines:?}");
        let auth = lines
            .iter()
            .find(|l| l["event"] == "authenticated")
            .expect("authenticated line");
        assert_eq!(auth["type"], "event");
        assert!(auth["args"][0]["id"].is_string());
        let join = server.next("join").await;
        assert_eq!(
            join.args,
            vec![obj(&[("rooms", Value::Array(vec![Value::from("room-1")]))])]
        );
        let msg = server.next("client-message").await;
        assert_eq!(
            msg.args,
            vec![obj(&[
                ("bin", Value::Bool(false)),
                ("content", Value::from("hi"))
            ])]
        );
    }
}

#[tokio::test]
async fn exit_codes() {
    let server = SpecServer::start().await;
    let url = server.url();
    // --count: exits once enough events arrived.
    let (code, lines, _) = run(&[&url, "--path", "/io", "--authenticate", "--count", "1"]).await;
    assert_eq!(code, 0);
    assert!(lines.iter().any(|l| l["event"] == "authenticated"));

    server.set_mode(AuthMode::Reject);
    let (code, _, stderr) = run(&[&url, "--path", "/io", "--authenticate"]).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("Invalid token"), "{stderr}");

    server.set_mode(AuthMode::Silent);
    let (code, _, stderr) = run(&[
        &url,
        "--path",
        "/io",
        "--authenticate",
        "--auth-timeout",
        "0.2",
    ])
    .await;
    assert_eq!(code, 3, "{stderr}");

    let port = closed_port().await;
    let (code, lines, _) = run(&[
        &format!("http://127.0.0.1:{port}"),
        "--no-reconnect",
        "--timeout",
        "1",
    ])
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        lines.last().map(|l| l["type"].clone()),
        Some("connect_error".into())
    );

    for bad in [
        vec!["https://example.com"],
        vec!["http://h", "--data", "{}"],
        vec!["http://h", "--emit", "x", "--data", "{not json"],
        vec!["http://h", "-H", "no-colon"],
        vec![],
    ] {
        let (code, _, stderr) = run(&bad).await;
        assert_eq!(code, 2, "{bad:?}: {stderr}");
    }

    let (code, _, stderr) = run(&[&url, "--path", "/io", "--emit", "connect"]).await;
    assert_eq!(code, 4, "{stderr}");
}
