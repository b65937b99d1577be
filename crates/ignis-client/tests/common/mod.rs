//! Test fixtures: in-process `ignis_socketio` servers and bounded waits.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ignis_socketio::proto::value::Map;
use ignis_socketio::{Args, EncodedArgs, ParserKind, RecoveryConfig, SocketIo, Value};
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// Every wait in the tests is bounded by this.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// Waits for `fut`, failing the test after [`WAIT`].
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// Polls `cond` until it holds, failing the test after [`WAIT`].
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

pub(crate) fn obj(entries: &[(&str, Value)]) -> Value {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(*k, v.clone());
    }
    Value::Map(m)
}

/// How the spec's test server answers `authenticate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthMode {
    /// `authenticated {id}`.
    Accept,
    /// `unauthenticated {message: 'Invalid token'}`.
    Reject,
    /// No answer.
    Silent,
}

/// An event a server socket received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub socket: String,
    pub event: String,
    pub args: Vec<Value>,
}

/// The server of spec §14.2: plain Socket.IO on `/io`, recording what clients send.
pub(crate) struct SpecServer {
    pub io: SocketIo,
    pub port: u16,
    pub mode: Arc<Mutex<AuthMode>>,
    pub received: Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl SpecServer {
    pub(crate) async fn start() -> SpecServer {
        let io = SocketIo::builder().path("/io").build();
        let mode = Arc::new(Mutex::new(AuthMode::Accept));
        let (tx, rx) = mpsc::unbounded_channel();
        let m = Arc::clone(&mode);
        io.ns("/", move |socket| {
            let tx = tx.clone();
            let mode = Arc::clone(&m);
            async move {
                let tx2 = tx.clone();
                socket.on_any(move |socket, event, args| {
                    let tx = tx2.clone();
                    async move {
                        let _ = tx.send(Received {
                            socket: socket.id().as_str().to_owned(),
                            event,
                            args,
                        });
                    }
                });
                socket.on("authenticate", move |socket, _event| {
                    let mode = *mode.lock();
                    async move {
                        let id = Value::from(socket.id().as_str());
                        match mode {
                            AuthMode::Accept => {
                                let _ = socket.emit("authenticated", obj(&[("id", id)]));
                            }
                            AuthMode::Reject => {
                                let _ = socket.emit(
                                    "unauthenticated",
                                    obj(&[("message", Value::from("Invalid token"))]),
                                );
                            }
                            AuthMode::Silent => {}
                        }
                    }
                });
            }
        });
        let port = serve(&io).await;
        SpecServer {
            io,
            port,
            mode,
            received: Mutex::new(rx),
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(crate) fn set_mode(&self, mode: AuthMode) {
        *self.mode.lock() = mode;
    }

    pub(crate) fn socket_count(&self) -> usize {
        self.io.main_namespace().socket_count()
    }

    /// The next received event named `event` (others are skipped).
    pub(crate) async fn next(&self, event: &str) -> Received {
        within(&format!("server to receive {event:?}"), async {
            loop {
                let got = {
                    let mut rx = self.received.lock();
                    rx.try_recv().ok()
                };
                match got {
                    Some(r) if r.event == event => return r,
                    Some(_) => {}
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await
    }

    /// Whether `event` arrives within `wait`.
    pub(crate) async fn receives_within(&self, event: &str, wait: Duration) -> bool {
        tokio::time::timeout(wait, async {
            loop {
                let got = self.received.lock().try_recv().ok();
                match got {
                    Some(r) if r.event == event => return,
                    Some(_) => {}
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await
        .is_ok()
    }
}

/// Serves `io` on a free port of 127.0.0.1.
pub(crate) async fn serve(io: &SocketIo) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(io.clone().serve(listener));
    port
}

/// A port nothing listens on.
pub(crate) async fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A server with the behaviour of the interop contract that the client tests need, on
/// `/socket.io/`: echo (ack or event), request-ack, join/get-rooms, server-binary,
/// disconnect-me, close-transport, namespaces `/`, `/custom`, `/private`.
pub(crate) async fn rust_server(
    parser: ParserKind,
    recovery: bool,
    ping: Option<(u64, u64)>,
) -> (SocketIo, u16) {
    let mut builder = SocketIo::builder().path("/socket.io/").parser(parser);
    if recovery {
        builder = builder.connection_state_recovery(RecoveryConfig {
            max_disconnection_duration: Duration::from_secs(10),
            skip_middlewares: true,
        });
    }
    if let Some((interval, timeout)) = ping {
        builder = builder
            .ping_interval(Duration::from_millis(interval))
            .ping_timeout(Duration::from_millis(timeout));
    }
    let io = builder.build();
    io.ns("/", |socket| async move {
        let welcome = obj(&[
            ("id", Value::from(socket.id().as_str())),
            ("recovered", Value::Bool(socket.recovered())),
            ("auth", socket.handshake().auth.clone()),
        ]);
        let _ = socket.emit("welcome", &welcome);
        register_echo(&socket);
        socket.on("request-ack", |socket, _event| async move {
            let reply = match socket
                .emit_with_ack(
                    "need-ack",
                    vec![Value::from("question")],
                    Duration::from_secs(2),
                )
                .await
            {
                Ok(mut args) => obj(&[(
                    "answer",
                    if args.is_empty() {
                        Value::Null
                    } else {
                        args.remove(0)
                    },
                )]),
                Err(_) => obj(&[("error", Value::from("timeout"))]),
            };
            let _ = socket.emit("ack-result", &reply);
        });
        socket.on("join", |socket, event| async move {
            if let Some(room) = event.args.first().and_then(Value::as_str).map(String::from) {
                socket.join(room);
            }
            let rooms: Vec<Value> = socket
                .rooms()
                .iter()
                .map(|r| Value::from(r.to_string()))
                .collect();
            event.ack(vec![Value::Array(rooms)]);
        });
        // A handler that never waits, registered as one (`on_sync`), answering from borrowed
        // values (`Args::values`).
        socket.on_sync("get-rooms", |socket, event| {
            let rooms: Vec<Value> = socket
                .rooms()
                .iter()
                .map(|r| Value::from(r.to_string()))
                .collect();
            event.ack(Args::values(&[Value::Array(rooms)]));
        });
        // Answered from arguments encoded once (`&EncodedArgs`): as text, or (binary, msgpack)
        // from the values.
        socket.on_sync("encoded-ack", |_socket, mut event| {
            let args = EncodedArgs::new(std::mem::take(&mut event.args));
            event.ack(&args);
        });
        // Sent from borrowed values (`Args::values`): both parsers must carry them as they do
        // owned ones.
        socket.on("server-binary", |socket, _event| async move {
            let _ = socket.emit(
                "server-binary",
                Args::values(&[
                    Value::bytes(&[1u8, 2, 3][..]),
                    obj(&[
                        ("nested", Value::bytes(&[4u8, 5][..])),
                        ("list", Value::Array(vec![Value::bytes(&[6u8][..])])),
                    ]),
                ]),
            );
        });
        socket.on("disconnect-me", |socket, _event| async move {
            socket.disconnect();
        });
        socket.on("close-transport", |socket, _event| async move {
            socket.close_connection();
        });
    });
    io.ns("/custom", |socket| async move {
        let _ = socket.emit(
            "welcome",
            obj(&[
                ("id", Value::from(socket.id().as_str())),
                ("nsp", Value::from("/custom")),
            ]),
        );
        register_echo(&socket);
    });
    let private = io.ns("/private", |socket| async move {
        let _ = socket.emit("welcome", obj(&[("nsp", Value::from("/private"))]));
    });
    private.use_middleware(|socket| async move {
        if socket.handshake().auth.get("token").and_then(Value::as_str) == Some("secret") {
            Ok(())
        } else {
            Err(ignis_socketio::ConnectError::with_data(
                "unauthorized",
                obj(&[("code", Value::from(401))]),
            ))
        }
    });
    let port = serve(&io).await;
    (io, port)
}

fn register_echo(socket: &ignis_socketio::SocketRef) {
    socket.on("echo", |socket, mut event| async move {
        if event.wants_ack() {
            let args = std::mem::take(&mut event.args);
            event.ack(args);
        } else {
            let _ = socket.emit("echo", event.args);
        }
    });
}

/// Collects events of a client socket into a channel, for bounded waits.
pub(crate) struct Inbox {
    rx: Mutex<mpsc::UnboundedReceiver<ignis_client::Event>>,
}

impl Inbox {
    pub(crate) fn attach(socket: &ignis_client::Socket) -> Inbox {
        let (tx, rx) = mpsc::unbounded_channel();
        socket.on_any(move |event| {
            let _ = tx.send(event);
        });
        Inbox { rx: Mutex::new(rx) }
    }

    pub(crate) async fn next(&self, event: &str) -> ignis_client::Event {
        within(&format!("client to receive {event:?}"), async {
            loop {
                let got = self.rx.lock().try_recv().ok();
                match got {
                    Some(e) if e.name == event => return e,
                    Some(_) => {}
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
        .await
    }

    pub(crate) fn drain(&self) -> Vec<ignis_client::Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.rx.lock().try_recv() {
            out.push(e);
        }
        out
    }
}
