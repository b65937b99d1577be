//! The client against the real Node `socket.io` 4.8 server of the interop suite
//! (`tests/interop/reference/server.js`, contract in `tests/interop/CONTRACT.md`).
//!
//! Needs `node` and `cd tests/interop && npm ci`. Without them the tests say so on stderr and
//! pass, unless `IGNIS_REQUIRE_NODE=1` is set (CI), which turns the absence into a failure.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Inbox, obj, until, within};
use ignis_client::{
    Client, ClientBuilder, ConnectError, DisconnectReason, Error, Parser, Transport, Value,
};
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const MODES: [(&str, &[Transport]); 3] = [
    ("websocket", &[Transport::Websocket]),
    ("polling", &[Transport::Polling]),
    ("upgrade", &[Transport::Polling, Transport::Websocket]),
];

struct NodeServer {
    child: Child,
    port: u16,
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// Starts the reference server, or `None` (with a notice) when Node or the npm packages are
/// missing and they are not required.
async fn node_server(parser: &str) -> Option<NodeServer> {
    let dir = interop_dir();
    let required = std::env::var("IGNIS_REQUIRE_NODE").is_ok_and(|v| v == "1");
    if !dir.join("node_modules/socket.io").exists() {
        assert!(
            !required,
            "tests/interop/node_modules missing: run npm ci there"
        );
        eprintln!("skipped: tests/interop/node_modules missing (cd tests/interop && npm ci)");
        return None;
    }
    let spawned = Command::new("node")
        .arg(dir.join("reference/server.js"))
        .args(["--port", "0", "--parser", parser])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            assert!(!required, "cannot start node: {e}");
            eprintln!("skipped: cannot start node: {e}");
            return None;
        }
    };
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port = within("node server to listen", async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(port) = line.strip_prefix("listening on ") {
                return port.trim().parse::<u16>().expect("port");
            }
        }
        panic!("node server exited before listening");
    })
    .await;
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(NodeServer { child, port })
}

fn builder(port: u16, transports: &[Transport]) -> ClientBuilder {
    Client::builder(format!("http://127.0.0.1:{port}"))
        .transports(transports.iter().copied())
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
}

fn bin(b: &[u8]) -> Value {
    Value::bytes(b.to_vec())
}

#[tokio::test]
async fn every_transport_binary_and_acks_both_ways() {
    for (parser_name, parser) in [("json", Parser::Json), ("msgpack", Parser::Msgpack)] {
        let Some(server) = node_server(parser_name).await else {
            return;
        };
        for (name, transports) in MODES {
            let manager = builder(server.port, transports)
                .parser(parser)
                .query("foo", "bar")
                .auth(serde_json::json!({ "token": "t" }))
                .build()
                .unwrap();
            let socket = manager.socket("/").unwrap();
            let inbox = Inbox::attach(&socket);
            within("connect", socket.connect())
                .await
                .unwrap_or_else(|e| panic!("{parser_name}/{name}: {e}"));

            let welcome = inbox.next("welcome").await;
            let w = &welcome.args[0];
            assert_eq!(w.get("id").and_then(Value::as_str), socket.id().as_deref());
            assert_eq!(w.get("recovered"), Some(&Value::Bool(false)));
            assert_eq!(w.get("auth"), Some(&obj(&[("token", Value::from("t"))])));
            assert_eq!(w.get("query"), Some(&obj(&[("foo", Value::from("bar"))])));
            assert!(
                welcome.offset.is_some(),
                "recovery is on: the offset is set aside"
            );

            let args = vec![Value::from("a"), bin(&[1, 2, 3]), obj(&[("n", bin(&[4]))])];
            let answer = within(
                "echo ack",
                socket.emit_with_ack("echo", args.clone(), Duration::from_secs(2)),
            )
            .await
            .unwrap();
            assert_eq!(answer, args, "{parser_name}/{name}");

            socket.emit_args("server-binary", vec![]).unwrap();
            let event = inbox.next("server-binary").await;
            assert_eq!(
                event.args,
                vec![
                    bin(&[1, 2, 3]),
                    obj(&[
                        ("nested", bin(&[4, 5])),
                        ("list", Value::Array(vec![bin(&[6])]))
                    ])
                ],
                "{parser_name}/{name}"
            );

            socket.on("need-ack", |event| {
                let _ = event.ack(vec![Value::from("answer")]);
            });
            socket.emit("request-ack", &1000).unwrap();
            let result = inbox.next("ack-result").await;
            assert_eq!(result.args, vec![obj(&[("answer", Value::from("answer"))])]);

            // Large enough to be compressed by the server.
            socket.emit("big", &5000).unwrap();
            let big = inbox.next("big").await;
            assert_eq!(big.args[0].as_str().map(str::len), Some(5000));

            if transports.len() == 2 {
                until("upgrade", || {
                    socket.transport() == Some(Transport::Websocket)
                })
                .await;
                let answer = socket
                    .emit_with_ack("echo", vec![Value::from(1)], Duration::from_secs(2))
                    .await
                    .unwrap();
                assert_eq!(answer, vec![Value::from(1)]);
            }
            socket.disconnect();
            until("closed", || !manager.is_open()).await;
        }
    }
}

#[tokio::test]
async fn namespaces_over_one_connection() {
    let Some(server) = node_server("json").await else {
        return;
    };
    let manager = builder(server.port, &[Transport::Websocket])
        .auth(serde_json::json!({ "token": "secret" }))
        .build()
        .unwrap();
    let main = manager.socket("/").unwrap();
    let custom = manager.socket("/custom").unwrap();
    let private = manager.socket("/private").unwrap();
    let dynamic = manager.socket("/dyn-42").unwrap();
    let custom_inbox = Inbox::attach(&custom);
    for s in [&main, &custom, &private, &dynamic] {
        within("connect", s.connect()).await.unwrap();
    }
    let welcome = custom_inbox.next("welcome").await;
    assert_eq!(welcome.args[0].get("nsp"), Some(&Value::from("/custom")));
    let answer = dynamic
        .emit_with_ack("echo", vec![Value::from("d")], Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(answer, vec![Value::from("d")]);
    let rooms = main
        .emit_with_ack("join", vec![Value::from("r")], Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        rooms[0],
        Value::Array(vec![Value::from(main.id().unwrap()), Value::from("r")])
    );

    let err = within("unknown", manager.socket("/nope").unwrap().connect())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Refused { message, .. } if message == "Invalid namespace"),
        "{err:?}"
    );
    manager.close();
    until("closed", || !manager.is_open()).await;

    let err = within(
        "private refused",
        builder(server.port, &[Transport::Polling]).connect("/private"),
    )
    .await
    .unwrap_err();
    match err {
        Error::Connect(ConnectError::Refused { message, data }) => {
            assert_eq!(message, "unauthorized");
            assert_eq!(data, Some(obj(&[("code", Value::from(401))])));
        }
        other => panic!("{other:?}"),
    }
    let err = within(
        "main refused",
        builder(server.port, &[Transport::Websocket])
            .auth(serde_json::json!({ "reject": true }))
            .connect("/"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Connect(ConnectError::Refused { message, data })
            if message == "rejected" && data == &Some(obj(&[("reason", Value::from("reject requested"))]))),
        "{err:?}"
    );
}

#[tokio::test]
async fn reconnection_and_connection_state_recovery() {
    let Some(server) = node_server("json").await else {
        return;
    };
    for (name, transports) in MODES {
        let manager = builder(server.port, transports).build().unwrap();
        let socket = manager.socket("/").unwrap();
        let inbox = Inbox::attach(&socket);
        let connects = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&connects);
        socket.on_connect(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&reasons);
        socket.on_disconnect(move |reason| r.lock().push(reason));
        within("connect", socket.connect()).await.unwrap();
        inbox.next("welcome").await;
        let id = socket.id().unwrap();
        socket
            .emit_with_ack("join", vec![Value::from("room-a")], Duration::from_secs(2))
            .await
            .unwrap();

        socket.emit_args("close-transport", vec![]).unwrap();
        until("reconnected", || connects.load(Ordering::SeqCst) == 2).await;
        assert_eq!(
            reasons.lock().as_slice(),
            [DisconnectReason::TransportClose],
            "{name}"
        );
        assert!(socket.recovered(), "{name}");
        assert_eq!(socket.id(), Some(id.clone()), "{name}");
        let welcome = inbox.next("welcome").await;
        let w = &welcome.args[0];
        assert_eq!(w.get("recovered"), Some(&Value::Bool(true)), "{name}");
        let auth = w.get("auth").expect("auth");
        assert!(
            auth.get("pid").and_then(Value::as_str).is_some(),
            "{name}: pid sent"
        );
        assert!(
            auth.get("offset").and_then(Value::as_str).is_some(),
            "{name}: offset sent"
        );
        let rooms = socket
            .emit_with_ack("get-rooms", vec![], Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(
            rooms[0],
            Value::Array(vec![Value::from(id), Value::from("room-a")])
        );

        // A server-side disconnect is final and not recoverable.
        socket.emit_args("disconnect-me", vec![]).unwrap();
        until("server disconnect", || reasons.lock().len() == 2).await;
        assert_eq!(reasons.lock()[1], DisconnectReason::IoServerDisconnect);
        until("closed", || !manager.is_open()).await;
        assert!(!socket.active());
    }
}

#[tokio::test]
async fn broadcast_acks_and_rooms_between_two_clients() {
    let Some(server) = node_server("json").await else {
        return;
    };
    let a = within(
        "a",
        builder(server.port, &[Transport::Websocket]).connect("/"),
    )
    .await
    .unwrap();
    let b = within(
        "b",
        builder(server.port, &[Transport::Polling]).connect("/"),
    )
    .await
    .unwrap();
    let b_inbox = Inbox::attach(&b);
    for s in [&a, &b] {
        let id = s.id().unwrap();
        s.on("bcast-ack-request", move |event| {
            let _ = event.ack(vec![Value::from(id.as_str())]);
        });
    }
    let result = within(
        "broadcast ack",
        a.emit_with_ack("broadcast-with-ack", vec![], Duration::from_secs(3)),
    )
    .await
    .unwrap();
    let mut ids = vec![a.id().unwrap(), b.id().unwrap()];
    ids.sort();
    assert_eq!(
        result[0],
        obj(&[
            ("timedOut", Value::Bool(false)),
            (
                "responses",
                Value::Array(ids.into_iter().map(Value::from).collect())
            )
        ])
    );
    b.emit_with_ack("join", vec![Value::from("room")], Duration::from_secs(2))
        .await
        .unwrap();
    a.emit_args(
        "to-room",
        vec![Value::from("room"), Value::from("hello"), Value::from(1)],
    )
    .unwrap();
    assert_eq!(b_inbox.next("hello").await.args, vec![Value::from(1)]);
    a.disconnect();
    b.disconnect();
}
