//! The application lifecycle and the component's binding errors.

use std::sync::Arc;
use std::time::Duration;

use ignis::socketio::{AuthenticateHandler, RedisConfig, ServerOptions, SocketIoComponent, keys};
use ignis::{AppConfig, Application, ApplicationError, Component, ComponentContext, StartError};
use parking_lot::Mutex;

fn config() -> AppConfig {
    AppConfig {
        name: "test".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    }
}

fn allow_all() -> AuthenticateHandler {
    AuthenticateHandler::new(|_| async { Ok(true) })
}

/// Records when it binds and when its hook runs.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Component for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn binding(&mut self, ctx: &mut ComponentContext<'_>) -> Result<(), ApplicationError> {
        self.log.lock().push(format!("bind {}", self.name));
        let log = self.log.clone();
        let name = self.name;
        ctx.register_post_start_hook(format!("hook-{name}"), move |app| async move {
            // The HTTP server already listens when hooks run.
            assert!(
                tokio::net::TcpStream::connect(app.local_addr())
                    .await
                    .is_ok()
            );
            log.lock().push(format!("hook {name}"));
            Ok(())
        });
        Ok(())
    }
}

#[tokio::test]
async fn components_bind_in_order_then_hooks_run_in_order_after_the_server_starts() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let app_log = log.clone();
    let running = Application::new(config())
        .component(Recorder {
            name: "a",
            log: log.clone(),
        })
        .component(Recorder {
            name: "b",
            log: log.clone(),
        })
        .register_post_start_hook("app", move |_| async move {
            app_log.lock().push("hook app".into());
            Ok(())
        })
        .start()
        .await
        .unwrap();
    assert_eq!(
        *log.lock(),
        vec!["bind a", "bind b", "hook a", "hook b", "hook app"]
    );
    running.stop().await;
}

#[tokio::test]
async fn a_failing_hook_stops_the_server_and_start_returns_the_error() {
    let ran_after = Arc::new(Mutex::new(false));
    let flag = ran_after.clone();
    let err = Application::new(config())
        .register_post_start_hook("boom", |app| async move {
            // Remember the address to check it is closed afterwards.
            Err(format!("failed on {}", app.local_addr()).into())
        })
        .register_post_start_hook("after", move |_| async move {
            *flag.lock() = true;
            Ok(())
        })
        .start()
        .await
        .err()
        .expect("start must fail");
    let StartError::Hook { identifier, error } = err else {
        panic!("unexpected error {err}");
    };
    assert_eq!(identifier, "boom");
    let addr: std::net::SocketAddr = error
        .to_string()
        .trim_start_matches("failed on ")
        .parse()
        .unwrap();
    assert!(!*ran_after.lock(), "hooks after a failed one never run");
    // The listener is closed.
    let mut closed = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the server still listens after a failed start");
}

#[tokio::test]
async fn component_binding_errors_use_the_original_messages() {
    let missing_auth = Application::new(config())
        .component(SocketIoComponent::new())
        .start()
        .await
        .err()
        .expect("start must fail")
        .to_string();
    assert_eq!(
        missing_auth,
        "component SocketIOComponent: [DANGER][SocketIOComponent] Invalid authenticateFn to setup io socket server!"
    );

    let bad_path = Application::new(config())
        .bind(keys::AUTHENTICATE_HANDLER, allow_all())
        .bind(
            keys::SERVER_OPTIONS,
            ServerOptions {
                path: Some("io".into()),
                ..ServerOptions::default()
            },
        )
        .component(SocketIoComponent::new())
        .start()
        .await
        .err()
        .expect("start must fail")
        .to_string();
    assert!(bad_path.contains("Invalid path \"io\""), "{bad_path}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_the_start_with_its_address() {
    // Nothing listens on port 1.
    let redis = RedisConfig::new("127.0.0.1", 1)
        .unwrap()
        .connect_timeout(Duration::from_millis(300));
    let err = Application::new(config())
        .bind(keys::AUTHENTICATE_HANDLER, allow_all())
        .bind(keys::REDIS_CONNECTION, redis)
        .component(SocketIoComponent::new())
        .start()
        .await
        .err()
        .expect("a bound Redis connection must not silently fall back")
        .to_string();
    assert!(err.contains("socket-io-initialize"), "{err}");
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn the_helper_is_bound_after_start_and_serves_the_socket_io_path() {
    let running = Application::new(config())
        .bind(keys::AUTHENTICATE_HANDLER, allow_all())
        .component(SocketIoComponent::new())
        .start()
        .await
        .unwrap();
    let helper = running.handle().get(keys::SOCKET_IO_INSTANCE).unwrap();
    assert_eq!(helper.client_count(), 0);
    // An Engine.IO handshake on /io/ answers with an open packet.
    let mut stream = tokio::net::TcpStream::connect(running.local_addr())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            b"GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("0{\"sid\":"), "{response}");
    running.stop().await;
}

/// Reads until the server closes the connection; the bytes read, or `None` when it is still
/// open after `within`.
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .ok()
        .map(|_| got)
}

#[tokio::test]
async fn a_connection_that_does_not_send_its_request_head_in_time_is_closed() {
    use tokio::io::AsyncWriteExt;
    let timeout = Duration::from_millis(300);
    let plain = Application::new(AppConfig {
        request_head_timeout: timeout,
        ..config()
    })
    .start()
    .await
    .unwrap();
    // With Socket.IO mounted, the first request is read without hyper first.
    let with_io = Application::new(AppConfig {
        request_head_timeout: timeout,
        ..config()
    })
    .bind(keys::AUTHENTICATE_HANDLER, allow_all())
    .component(SocketIoComponent::new())
    .start()
    .await
    .unwrap();
    for app in [&plain, &with_io] {
        let addr = app.local_addr();
        // Says nothing at all.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Starts a head and never ends it, on the Socket.IO path and elsewhere.
        let mut partial_io = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial_io
            .write_all(b"GET /io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut partial = tokio::net::TcpStream::connect(addr).await.unwrap();
        partial
            .write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        // Nothing closes early.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for stream in [&mut silent, &mut partial_io, &mut partial] {
            assert_eq!(
                closed_within(stream, Duration::from_millis(10)).await,
                None,
                "closed before its deadline"
            );
        }
        for stream in [&mut silent, &mut partial_io, &mut partial] {
            let got = closed_within(stream, Duration::from_secs(5)).await;
            assert!(got.is_some(), "still open well after its deadline");
        }
        // A request sent in time is answered.
        let mut ok = tokio::net::TcpStream::connect(addr).await.unwrap();
        ok.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = closed_within(&mut ok, Duration::from_secs(5))
            .await
            .expect("answered and closed");
        assert!(
            answer.starts_with(b"HTTP/1.1 404"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    plain.stop().await;
    with_io.stop().await;
}
