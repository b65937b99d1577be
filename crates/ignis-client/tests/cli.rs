//! The `ignis-cli` binary: output lines and exit codes.

mod common;

use common::{AuthMode, SpecServer, closed_port, obj, serve, within};
use ignis_client::Value;
use ignis_socketio::SocketIo;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_resumed_authenticated_in_its_rooms() {
    let server = SpecServer::start().await;
    let url = server.url();
    let cli = tokio::spawn(async move {
        run(&[
            &url,
            "--path",
            "/io",
            "--authenticate",
            "--join",
            "room-1",
            "--duration",
            "2",
        ])
        .await
    });
    server.next("join").await;
    // The server closes the connection (as a draining node does): no DISCONNECT packet.
    for socket in server.io.main_namespace().sockets() {
        socket.close_connection();
    }
    let again = server.next("authenticate").await;
    let join = server.next("join").await;
    assert_eq!(join.socket, again.socket, "joined again once authenticated");
    assert_eq!(
        join.args,
        vec![obj(&[("rooms", Value::Array(vec![Value::from("room-1")]))])]
    );
    let (code, lines, stderr) = cli.await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    let connects: Vec<_> = lines.iter().filter(|l| l["type"] == "connect").collect();
    assert_eq!(connects.len(), 2, "{lines:?}");
    let lost = lines
        .iter()
        .find(|l| l["type"] == "disconnect")
        .expect("a disconnect line");
    assert_eq!(lost["reason"], "transport close");
    let resumed = lines
        .iter()
        .find(|l| l["type"] == "resumed")
        .expect("a resumed line");
    assert_eq!(
        resumed,
        &serde_json::json!({ "type": "resumed", "recovered": false, "rejoined": ["room-1"] })
    );
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
        vec!["ftp://example.com"],
        vec!["https://h", "--ca", "/nonexistent/ca.pem"],
        vec!["https://h", "--ca", "/nonexistent/ca.pem", "--insecure"],
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

/// A server on `/io` whose rules allow only the room `lobby`: `join` is acknowledged with the
/// rooms the socket holds, then a `joined` event follows.
async fn rules_server() -> (SocketIo, String) {
    let io = SocketIo::builder().path("/io").build();
    io.ns("/", |socket| async move {
        socket.on("join", |socket, event| async move {
            let asked = event
                .args
                .first()
                .and_then(|a| a.get("rooms"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let allowed: Vec<String> = asked
                .iter()
                .filter_map(Value::as_str)
                .filter(|r| *r == "lobby")
                .map(String::from)
                .collect();
            socket.join(allowed);
            let held = socket
                .rooms()
                .iter()
                .map(|r| Value::from(r.to_string()))
                .collect();
            event.ack(vec![obj(&[("rooms", Value::Array(held))])]);
            let _ = socket.emit("joined", "done");
        });
    });
    let port = serve(&io).await;
    (io, format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn prints_the_join_acknowledgement_with_the_refused_rooms() {
    let (_io, url) = rules_server().await;
    // No --path: the default is ignis-server's /io.
    let (code, lines, stderr) =
        run(&[&url, "--join", "lobby", "--join", "secret", "--count", "1"]).await;
    assert_eq!(code, 0, "{stderr}");
    let id = lines[0]["id"]
        .as_str()
        .expect("a connect line first")
        .to_string();
    let join = lines
        .iter()
        .find(|l| l["type"] == "join")
        .unwrap_or_else(|| panic!("no join line: {lines:?}"));
    assert_eq!(
        join,
        &serde_json::json!({
            "type": "join",
            "requested": ["lobby", "secret"],
            "rooms": [id, "lobby"],
            "refused": ["secret"],
        })
    );
}

#[tokio::test]
async fn a_404_at_connect_is_printed_once_with_a_hint_about_the_path() {
    let server = SpecServer::start().await;
    let (code, lines, _) = run(&[
        &server.url(),
        "--path",
        "/socket.io",
        "--no-reconnect",
        "--timeout",
        "5",
    ])
    .await;
    assert_eq!(code, 1);
    let errors: Vec<_> = lines
        .iter()
        .filter(|l| l["type"] == "connect_error")
        .collect();
    assert_eq!(errors.len(), 1, "{lines:?}");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("404"),
        "{lines:?}"
    );
    assert!(
        errors[0]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("--path")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn connects_over_wss_with_a_ca_or_insecure() {
    let dir = std::env::temp_dir().join(format!("ignis-cli-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let tls = std::sync::Arc::new(ignis_engine::ServerTls::from_pem_files(&cert, &key).unwrap());
    let io = SocketIo::builder().build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        io.engine()
            .clone()
            .serve_tls_with(listener, tls, |_req| async {
                http::Response::new(ignis_engine::ResponseBody::from("not found"))
            }),
    );
    let url = format!("wss://localhost:{port}");
    let ca = cert.to_string_lossy().into_owned();
    let common = ["--path", "/socket.io", "--no-reconnect", "--timeout", "5"];
    for (extra, expected) in [
        (vec!["--ca", ca.as_str()], 0),
        (vec!["--insecure"], 0),
        // The system's roots do not know this self-signed certificate.
        (vec![], 1),
    ] {
        let mut args = vec![url.as_str()];
        args.extend_from_slice(&common);
        args.extend_from_slice(&extra);
        args.extend_from_slice(&["--transport", "websocket", "--duration", "0.3"]);
        let (code, lines, stderr) = run(&args).await;
        assert_eq!(code, expected, "{extra:?}: {lines:?} {stderr}");
        if expected == 0 {
            assert_eq!(lines[0]["type"], "connect", "{lines:?}");
        } else {
            let error = lines.last().unwrap().to_string();
            assert!(error.contains("TLS handshake failed"), "{error}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
