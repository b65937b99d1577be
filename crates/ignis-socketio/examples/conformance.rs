//! The server the official protocol test suites expect (socketio/engine.io-protocol and
//! socketio/socket.io-protocol, folder `test-suite`): they connect to `localhost:3000`.
//!
//! `--suite engine.io`: an Engine.IO server on `/engine.io/` that echoes every message.
//! `--suite socket.io`: a Socket.IO server on `/socket.io/` with namespaces `/` and `/custom`
//! that emits `auth` with the handshake auth on connect, echoes `message` as `message-back`
//! and answers `message-with-ack` with its own arguments.

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ignis_socketio::SocketIo;
use ignis_socketio::engine::{
    CloseReason, Cors, Engine, EngineConfig, Handler, RequestInfo, Socket,
};
use ignis_socketio::proto::engineio::Data;

#[derive(Clone, Copy, ValueEnum)]
enum Suite {
    #[value(name = "engine.io")]
    EngineIo,
    #[value(name = "socket.io")]
    SocketIo,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    suite: Suite,
    #[arg(long, default_value_t = 3000)]
    port: u16,
}

struct Echo;

impl Handler for Echo {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, _socket: &Arc<Socket<()>>, _req: &RequestInfo) {}
    fn on_message(&self, socket: &Arc<Socket<()>>, data: Data) {
        let _ = socket.send(data);
    }
    fn on_close(&self, _socket: &Arc<Socket<()>>, _reason: CloseReason) {}
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let port = listener.local_addr()?.port();
    match args.suite {
        Suite::EngineIo => {
            let config = EngineConfig {
                path: "/engine.io/".into(),
                ping_interval: Duration::from_millis(300),
                ping_timeout: Duration::from_millis(200),
                max_http_buffer_size: 1_000_000,
                cors: Some(Cors::default()),
                ..EngineConfig::default()
            };
            println!("listening on {port}");
            Engine::new(config, Echo).serve(listener).await
        }
        Suite::SocketIo => {
            let io = SocketIo::builder()
                .path("/socket.io/")
                .ping_interval(Duration::from_millis(300))
                .ping_timeout(Duration::from_millis(200))
                .connect_timeout(Duration::from_millis(1000))
                .max_http_buffer_size(1_000_000)
                .cors(Cors::default())
                .build();
            for nsp in ["/", "/custom"] {
                io.ns(nsp, |socket| async move {
                    let _ = socket.emit("auth", &socket.handshake().auth);
                    socket.on("message", |socket, event| async move {
                        let _ = socket.emit("message-back", event.args);
                    });
                    socket.on("message-with-ack", |_socket, mut event| async move {
                        let args = std::mem::take(&mut event.args);
                        event.ack(args);
                    });
                });
            }
            println!("listening on {port}");
            io.serve(listener).await
        }
    }
}
