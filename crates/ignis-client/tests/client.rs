//! The client against the in-process `ignis_socketio` server: every transport, binary, acks
//! both ways, namespaces over one connection, both parsers, reconnection and recovery.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Inbox, obj, rust_server, until, within};
use ignis_client::{
    AckError, Client, ClientBuilder, ConnectError, DisconnectReason, Error, Parser, Transport,
    Value,
};
use ignis_socketio::ParserKind;
use parking_lot::Mutex;

const MODES: [(&str, &[Transport]); 3] = [
    ("websocket", &[Transport::Websocket]),
    ("polling", &[Transport::Polling]),
    ("upgrade", &[Transport::Polling, Transport::Websocket]),
];

fn builder(port: u16, transports: &[Transport]) -> ClientBuilder {
    Client::builder(format!("http://127.0.0.1:{port}"))
        .transports(transports.iter().copied())
        .reconnection_delay(Duration::from_millis(50))
        .reconnection_delay_max(Duration::from_millis(200))
}

fn bin(b: &[u8]) -> Value {
    Value::bytes(b.to_vec())
}

fn parsers() -> [(ParserKind, Parser); 2] {
    [
        (ParserKind::Json, Parser::Json),
        (ParserKind::MsgPack, Parser::Msgpack),
    ]
}

#[tokio::test]
async fn transports_acks_and_binary_both_parsers() {
    for (server_parser, client_parser) in parsers() {
        let (_io, port) = rust_server(server_parser, false, None).await;
        for (name, transports) in MODES {
            let socket = within(
                "connect",
                builder(port, transports).parser(client_parser).connect("/"),
            )
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let inbox = Inbox::attach(&socket);
            assert!(socket.id().is_some());

            // Client-to-server ack with binary, both ways.
            let args = vec![Value::from("a"), bin(&[1, 2, 3]), obj(&[("n", bin(&[4]))])];
            let answer = within(
                "echo ack",
                socket.emit_with_ack("echo", args.clone(), Duration::from_secs(2)),
            )
            .await
            .unwrap();
            assert_eq!(answer, args, "{name}");

            // Acks of arguments encoded once: text alone, and with binary values.
            let text_only = vec![obj(&[("ok", Value::Bool(true))]), Value::from("q\"")];
            for args in [text_only, args.clone(), vec![]] {
                let answer = within(
                    "encoded ack",
                    socket.emit_with_ack("encoded-ack", args.clone(), Duration::from_secs(2)),
                )
                .await
                .unwrap();
                assert_eq!(answer, args, "{name}");
            }

            // Plain emit answered with an event.
            socket.emit("echo", &"plain").unwrap();
            let event = inbox.next("echo").await;
            assert_eq!(event.args, vec![Value::from("plain")], "{name}");

            // Server-sent binary.
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
                "{name}"
            );

            // Server-to-client ack.
            socket.on("need-ack", |event| {
                assert!(event.wants_ack());
                let _ = event.ack(vec![Value::from("answer")]);
            });
            socket.emit_args("request-ack", vec![]).unwrap();
            let result = inbox.next("ack-result").await;
            assert_eq!(
                result.args,
                vec![obj(&[("answer", Value::from("answer"))])],
                "{name}"
            );

            if transports.len() == 2 {
                until("upgrade", || {
                    socket.transport() == Some(Transport::Websocket)
                })
                .await;
                // Still works after the upgrade.
                let answer = socket
                    .emit_with_ack("echo", vec![Value::from(1)], Duration::from_secs(2))
                    .await
                    .unwrap();
                assert_eq!(answer, vec![Value::from(1)]);
            } else {
                assert_eq!(socket.transport(), Some(transports[0]), "{name}");
            }
            socket.disconnect();
            assert!(!socket.connected());
        }
    }
}

#[tokio::test]
async fn ack_timeout_and_reserved_names() {
    let (io, port) = rust_server(ParserKind::Json, false, None).await;
    io.main_namespace(); // keep the server alive
    let socket = within(
        "connect",
        builder(port, &[Transport::Websocket]).connect("/"),
    )
    .await
    .unwrap();
    // Nobody answers `nothing`.
    let err = socket
        .emit_with_ack("nothing", vec![], Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, AckError::Timeout), "{err:?}");
    for reserved in ["connect", "disconnect", "connect_error", "disconnecting"] {
        assert!(
            matches!(socket.emit(reserved, &1), Err(Error::ReservedEvent(_))),
            "{reserved}"
        );
    }
    socket.disconnect();
}

#[tokio::test]
async fn namespaces_share_one_connection() {
    let (io, port) = rust_server(ParserKind::Json, false, None).await;
    let manager = builder(port, &[Transport::Websocket])
        .auth(serde_json::json!({ "token": "secret" }))
        .build()
        .unwrap();
    let main = manager.socket("/").unwrap();
    let custom = manager.socket("custom").unwrap();
    let private = manager.socket("/private").unwrap();
    within("main", main.connect()).await.unwrap();
    within("custom", custom.connect()).await.unwrap();
    within("private", private.connect()).await.unwrap();
    assert_eq!(custom.nsp(), "/custom");
    assert_eq!(io.engine().session_count(), 1, "one Engine.IO connection");

    let answer = custom
        .emit_with_ack("echo", vec![Value::from("c")], Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(answer, vec![Value::from("c")]);

    // Leaving one namespace keeps the others.
    custom.disconnect();
    let answer = main
        .emit_with_ack("echo", vec![Value::from("m")], Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(answer, vec![Value::from("m")]);
    assert!(manager.is_open());
    main.disconnect();
    private.disconnect();
    until("connection closed", || !manager.is_open()).await;
    until("server session gone", || io.engine().session_count() == 0).await;
}

#[tokio::test]
async fn refused_and_unknown_namespaces() {
    let (_io, port) = rust_server(ParserKind::Json, false, None).await;
    let err = within(
        "private",
        builder(port, &[Transport::Websocket]).connect("/private"),
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
        "unknown",
        builder(port, &[Transport::Polling]).connect("/nope"),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Connect(ConnectError::Refused { message, .. }) if message == "Invalid namespace"),
        "{err:?}"
    );
}

#[tokio::test]
async fn headers_query_and_auth_reach_the_server() {
    let io = ignis_socketio::SocketIo::builder().path("/io").build();
    let seen = Arc::new(Mutex::new(None));
    let s = Arc::clone(&seen);
    io.ns("/", move |socket| {
        let s = Arc::clone(&s);
        async move {
            let h = socket.handshake();
            *s.lock() = Some((
                h.header("x-test").map(String::from),
                h.query("foo").map(String::from),
                h.auth.clone(),
            ));
        }
    });
    let port = common::serve(&io).await;
    for (_, transports) in MODES {
        *seen.lock() = None;
        let socket = within(
            "connect",
            builder(port, transports)
                .path("/io")
                .header("x-test", "yes")
                .query("foo", "bar")
                .auth(serde_json::json!({ "token": "t" }))
                .connect("/"),
        )
        .await
        .unwrap();
        let got = seen.lock().clone().expect("handshake seen");
        assert_eq!(got.0.as_deref(), Some("yes"));
        assert_eq!(got.1.as_deref(), Some("bar"));
        assert_eq!(got.2, obj(&[("token", Value::from("t"))]));
        socket.disconnect();
    }
}

#[tokio::test]
async fn server_disconnect_is_final() {
    let (_io, port) = rust_server(ParserKind::Json, false, None).await;
    let socket = within(
        "connect",
        builder(port, &[Transport::Websocket]).connect("/"),
    )
    .await
    .unwrap();
    let reasons = Arc::new(Mutex::new(Vec::new()));
    let r = Arc::clone(&reasons);
    socket.on_disconnect(move |reason| r.lock().push(reason));
    socket.emit_args("disconnect-me", vec![]).unwrap();
    until("disconnect", || !reasons.lock().is_empty()).await;
    assert_eq!(reasons.lock()[0], DisconnectReason::IoServerDisconnect);
    assert!(!socket.active());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !socket.connected(),
        "no reconnection after io server disconnect"
    );
    until("connection closed", || !socket.manager().is_open()).await;
}

#[tokio::test]
async fn reconnects_and_recovers_after_a_transport_close() {
    for (name, transports) in MODES {
        let (_io, port) = rust_server(ParserKind::Json, true, None).await;
        let socket = within("connect", builder(port, transports).connect("/"))
            .await
            .unwrap();
        let inbox = Inbox::attach(&socket);
        let connects = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&connects);
        socket.on_connect(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let reasons = Arc::new(Mutex::new(Vec::new()));
        let r = Arc::clone(&reasons);
        socket.on_disconnect(move |reason| r.lock().push(reason));

        let first_id = socket.id().unwrap();
        assert!(!socket.recovered());
        // An event with an offset, so the client has one to send back.
        socket.emit("echo", &"before").unwrap();
        let event = inbox.next("echo").await;
        assert_eq!(
            event.args,
            vec![Value::from("before")],
            "{name}: offset stripped"
        );
        assert!(event.offset.is_some(), "{name}: offset kept aside");
        let rooms = socket
            .emit_with_ack("join", vec![Value::from("r1")], Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(rooms[0].as_array().map(Vec::len), Some(2), "{name}");

        socket.emit_args("close-transport", vec![]).unwrap();
        until("reconnected", || connects.load(Ordering::SeqCst) == 1).await;
        assert_eq!(
            reasons.lock().as_slice(),
            [DisconnectReason::TransportClose],
            "{name}"
        );
        assert!(socket.connected());
        assert!(socket.recovered(), "{name}: session recovered");
        assert_eq!(
            socket.id().as_deref(),
            Some(first_id.as_str()),
            "{name}: same id"
        );
        let rooms = socket
            .emit_with_ack("get-rooms", vec![], Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(
            rooms[0],
            Value::Array(vec![Value::from(first_id.as_str()), Value::from("r1")]),
            "{name}: rooms kept"
        );
        socket.disconnect();
    }
}

#[tokio::test]
async fn emits_while_disconnected_are_sent_on_reconnection() {
    let (_io, port) = rust_server(ParserKind::Json, false, None).await;
    let socket = within(
        "connect",
        builder(port, &[Transport::Websocket]).connect("/"),
    )
    .await
    .unwrap();
    let inbox = Inbox::attach(&socket);
    let lost = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&lost);
    socket.on_disconnect(move |_| {
        l.fetch_add(1, Ordering::SeqCst);
    });
    socket.emit_args("close-transport", vec![]).unwrap();
    until("lost", || lost.load(Ordering::SeqCst) == 1).await;
    // Buffered until the reconnection.
    socket.emit("echo", &"buffered").unwrap();
    let event = inbox.next("echo").await;
    assert_eq!(event.args, vec![Value::from("buffered")]);
    assert!(!socket.recovered(), "recovery is off on this server");
    socket.disconnect();
}

#[tokio::test]
async fn reconnection_gives_up_after_the_attempt_limit() {
    let io = ignis_socketio::SocketIo::builder().build();
    io.ns("/", |_socket| async move {});
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(io.clone().serve(listener));
    let socket = within(
        "connect",
        builder(port, &[Transport::Websocket])
            .reconnection_attempts(2)
            .timeout(Duration::from_millis(500))
            .connect("/"),
    )
    .await
    .unwrap();
    let errors = Arc::new(AtomicUsize::new(0));
    let e = Arc::clone(&errors);
    socket.on_connect_error(move |_| {
        e.fetch_add(1, Ordering::SeqCst);
    });
    // Stop the server: every reconnection attempt fails.
    server.abort();
    let _ = server.await;
    io.close();
    until("gave up", || !socket.active()).await;
    assert!(!socket.connected());
    assert!(errors.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn ack_pending_when_the_connection_drops_fails() {
    let (_io, port) = rust_server(ParserKind::Json, false, None).await;
    let socket = within(
        "connect",
        builder(port, &[Transport::Websocket]).connect("/"),
    )
    .await
    .unwrap();
    let pending = {
        let socket = socket.clone();
        tokio::spawn(async move {
            socket
                .emit_with_ack("nothing", vec![], Duration::from_secs(4))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    socket.emit_args("close-transport", vec![]).unwrap();
    let result = within("ack failure", pending).await.unwrap();
    assert!(matches!(result, Err(AckError::Disconnected)), "{result:?}");
    socket.disconnect();
}
