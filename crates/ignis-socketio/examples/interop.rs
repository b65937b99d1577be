//! The test server of the interop suite (`tests/interop/CONTRACT.md`): the same behaviour as the
//! suite's Node reference server, so that the suite proves we answer as Node does.

use std::time::Duration;

use clap::{Parser, ValueEnum};
use ignis_socketio::engine::{Cors, PerMessageDeflate};
use ignis_socketio::proto::value::Map;
use ignis_socketio::{
    ConnectError, Namespace, ParserKind, RecoveryConfig, SocketIo, SocketRef, Value,
};

#[derive(Clone, Copy, ValueEnum)]
enum CliParser {
    Json,
    Msgpack,
}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, value_enum, default_value = "json")]
    parser: CliParser,
}

fn rooms_value(socket: &SocketRef) -> Value {
    Value::Array(
        socket
            .rooms()
            .iter()
            .map(|r| Value::from(r.to_string()))
            .collect(),
    )
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(k, v);
    }
    Value::Map(m)
}

/// `echo` as every namespace of the contract has it.
fn echo(socket: &SocketRef) {
    socket.on("echo", |socket, mut event| async move {
        if event.wants_ack() {
            let args = std::mem::take(&mut event.args);
            event.ack(args);
        } else {
            let _ = socket.emit("echo", event.args);
        }
    });
}

fn main_namespace(io: &SocketIo, ns: &std::sync::Arc<Namespace>) {
    ns.use_middleware(|socket| async move {
        if socket.handshake().auth.get("reject") == Some(&Value::Bool(true)) {
            return Err(ConnectError::with_data(
                "rejected",
                map(vec![("reason", Value::from("reject requested"))]),
            ));
        }
        Ok(())
    });
    let io = io.clone();
    ns.on_connect(move |socket| {
        let io = io.clone();
        async move {
            let query_foo = socket
                .handshake()
                .query("foo")
                .map(Value::from)
                .unwrap_or(Value::Null);
            let welcome = map(vec![
                ("id", Value::from(socket.id().as_str())),
                ("nsp", Value::from("/")),
                ("auth", socket.handshake().auth.clone()),
                ("recovered", Value::Bool(socket.recovered())),
                ("query", map(vec![("foo", query_foo)])),
            ]);
            let _ = socket.emit("welcome", &welcome);
            echo(&socket);
            register_main_events(&io, &socket);
        }
    });
}

fn register_main_events(io: &SocketIo, socket: &SocketRef) {
    socket.on("request-ack", |socket, event| async move {
        let Some(ms) = count_arg(&event, 60_000) else {
            return;
        };
        let result = socket
            .emit_with_ack(
                "need-ack",
                vec![Value::from("question")],
                Duration::from_millis(ms),
            )
            .await;
        let reply = match result {
            Ok(mut args) => map(vec![(
                "answer",
                if args.is_empty() {
                    Value::Null
                } else {
                    args.remove(0)
                },
            )]),
            Err(_) => map(vec![("error", Value::from("timeout"))]),
        };
        let _ = socket.emit("ack-result", &reply);
    });
    socket.on("join", |socket, event| async move {
        let Some(room) = event.args.first().and_then(Value::as_str).map(String::from) else {
            return;
        };
        socket.join(room);
        let rooms = rooms_value(&socket);
        event.ack(vec![rooms]);
    });
    socket.on("leave", |socket, event| async move {
        let Some(room) = event.args.first().and_then(Value::as_str).map(String::from) else {
            return;
        };
        socket.leave(&room);
        let rooms = rooms_value(&socket);
        event.ack(vec![rooms]);
    });
    socket.on("get-rooms", |socket, event| async move {
        let rooms = rooms_value(&socket);
        event.ack(vec![rooms]);
    });
    let io1 = io.clone();
    socket.on("to-room", move |_socket, mut event| {
        let io = io1.clone();
        async move {
            let (Some(room), Some(name)) = (arg_str(&event, 0), arg_str(&event, 1)) else {
                return;
            };
            let args = event.args.split_off(2);
            let _ = io.to(room).emit(&name, args);
        }
    });
    socket.on("broadcast", |socket, mut event| async move {
        let Some(name) = arg_str(&event, 0) else {
            return;
        };
        let args = event.args.split_off(1);
        let _ = socket.broadcast().emit(&name, args);
    });
    let io2 = io.clone();
    socket.on("except-room", move |_socket, mut event| {
        let io = io2.clone();
        async move {
            let (Some(room), Some(name)) = (arg_str(&event, 0), arg_str(&event, 1)) else {
                return;
            };
            let args = event.args.split_off(2);
            let _ = io.except(room).emit(&name, args);
        }
    });
    let io3 = io.clone();
    socket.on("broadcast-with-ack", move |_socket, event| {
        let io = io3.clone();
        async move {
            let Some(ack) = event.take_ack() else {
                return;
            };
            let result = io
                .operators()
                .timeout(Duration::from_millis(1000))
                .emit_with_ack("bcast-ack-request", Vec::new())
                .await;
            let (timed_out, answers) = match result {
                Ok(answers) => (false, answers),
                Err(ignis_socketio::BroadcastAckError::Timeout(t)) => (true, t.answers),
                Err(_) => (true, Vec::new()),
            };
            let mut responses: Vec<Value> = answers
                .into_iter()
                .map(|mut args| {
                    if args.is_empty() {
                        Value::Null
                    } else {
                        args.remove(0)
                    }
                })
                .collect();
            responses.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            ack.send(vec![map(vec![
                ("timedOut", Value::Bool(timed_out)),
                ("responses", Value::Array(responses)),
            ])]);
        }
    });
    let io4 = io.clone();
    socket.on("fetch-sockets", move |_socket, event| {
        let io = io4.clone();
        async move {
            let Some(ack) = event.take_ack() else {
                return;
            };
            let mut ids: Vec<String> = io
                .operators()
                .fetch_sockets()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.id.to_string())
                .collect();
            ids.sort();
            ack.send(vec![Value::Array(
                ids.into_iter().map(Value::from).collect(),
            )]);
        }
    });
    let io5 = io.clone();
    socket.on("sockets-join", move |_socket, event| {
        let io = io5.clone();
        async move {
            let (Some(room), Some(ack)) = (arg_str(&event, 0), event.take_ack()) else {
                return;
            };
            let _ = io.operators().sockets_join(room).await;
            ack.send(Vec::new());
        }
    });
    let io6 = io.clone();
    socket.on("sockets-leave", move |_socket, event| {
        let io = io6.clone();
        async move {
            let (Some(room), Some(ack)) = (arg_str(&event, 0), event.take_ack()) else {
                return;
            };
            let _ = io.operators().sockets_leave(room).await;
            ack.send(Vec::new());
        }
    });
    let io7 = io.clone();
    socket.on("disconnect-room", move |_socket, event| {
        let io = io7.clone();
        async move {
            let Some(room) = arg_str(&event, 0) else {
                return;
            };
            let _ = io.to(room).disconnect_sockets(false).await;
        }
    });
    socket.on("server-binary", |socket, _event| async move {
        let args = vec![
            Value::bytes(vec![1u8, 2, 3]),
            map(vec![
                ("nested", Value::bytes(vec![4u8, 5])),
                ("list", Value::Array(vec![Value::bytes(vec![6u8])])),
            ]),
        ];
        let _ = socket.emit("server-binary", args);
    });
    socket.on("disconnect-me", |socket, _event| async move {
        socket.disconnect();
    });
    socket.on("close-transport", |socket, _event| async move {
        socket.close_connection();
    });
    socket.on("volatile-burst", |socket, event| async move {
        let Some(n) = count_arg(&event, 10_000) else {
            return;
        };
        for i in 0..n {
            let _ = socket.volatile().emit("vol", vec![Value::from_u64(i)]);
        }
    });
    socket.on("big-plain", |socket, event| async move {
        let Some(n) = count_arg(&event, 10_000_000) else {
            return;
        };
        let _ = socket.compress(false).emit("big", &"x".repeat(n as usize));
    });
    socket.on("big", |socket, event| async move {
        let Some(n) = count_arg(&event, 10_000_000) else {
            return;
        };
        let _ = socket.emit("big", &"x".repeat(n as usize));
    });
}

/// The first argument, if it is a whole number no larger than `max`.
fn count_arg(event: &ignis_socketio::Event, max: u64) -> Option<u64> {
    event
        .args
        .first()
        .and_then(Value::as_u64)
        .filter(|n| *n <= max)
}

fn arg_str(event: &ignis_socketio::Event, i: usize) -> Option<String> {
    event.args.get(i).and_then(Value::as_str).map(String::from)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let parser = match args.parser {
        CliParser::Json => ParserKind::Json,
        CliParser::Msgpack => ParserKind::MsgPack,
    };
    let io = SocketIo::builder()
        .path("/socket.io/")
        .ping_interval(Duration::from_millis(2000))
        .ping_timeout(Duration::from_millis(1000))
        .upgrade_timeout(Duration::from_millis(2000))
        .connect_timeout(Duration::from_millis(2000))
        .max_http_buffer_size(1_000_000)
        .cors(Cors::default())
        .per_message_deflate(PerMessageDeflate {
            threshold: 1024,
            ..PerMessageDeflate::default()
        })
        .http_compression_threshold(Some(1024))
        .parser(parser)
        .connection_state_recovery(RecoveryConfig {
            max_disconnection_duration: Duration::from_millis(10_000),
            skip_middlewares: true,
        })
        .build();

    let main = io.main_namespace();
    main_namespace(&io, &main);

    io.ns("/custom", |socket| async move {
        let welcome = map(vec![
            ("id", Value::from(socket.id().as_str())),
            ("nsp", Value::from("/custom")),
            ("auth", socket.handshake().auth.clone()),
        ]);
        let _ = socket.emit("welcome", &welcome);
        echo(&socket);
    });

    io.dyn_ns(
        |name| {
            name.strip_prefix("/dyn-")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        },
        |socket| async move {
            let welcome = map(vec![
                ("id", Value::from(socket.id().as_str())),
                ("nsp", Value::from(socket.namespace().name())),
            ]);
            let _ = socket.emit("welcome", &welcome);
            echo(&socket);
        },
    );

    let private = io.ns("/private", |socket| async move {
        let welcome = map(vec![
            ("id", Value::from(socket.id().as_str())),
            ("nsp", Value::from("/private")),
        ]);
        let _ = socket.emit("welcome", &welcome);
    });
    private.use_middleware(|socket| async move {
        if socket.handshake().auth.get("token").and_then(Value::as_str) == Some("secret") {
            Ok(())
        } else {
            Err(ConnectError::with_data(
                "unauthorized",
                map(vec![("code", Value::from_u64(401))]),
            ))
        }
    });

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on {}", listener.local_addr()?.port());
    let server = io.clone().serve(listener);
    tokio::select! {
        r = server => r,
        _ = shutdown_signal() => {
            io.close();
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
