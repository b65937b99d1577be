//! A minimal application with the Socket.IO component, used by the interop tests to check the
//! component's edge cases: `--auth ok|refuse|error|panic` chooses what the authenticate handler
//! does, `--validator` binds a validator that allows every room, and `--client-connected panic`
//! binds a client-connected handler that panics.

use std::time::Duration;

use ignis::socketio::{
    AuthenticateHandler, ClientConnectedHandler, SocketIoComponent, ValidateRoomHandler, keys,
};
use ignis::{AppConfig, Application};

#[derive(Default)]
struct Args {
    auth: String,
    validator: bool,
    client_connected_panics: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        auth: "ok".into(),
        ..Args::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--auth" => args.auth = it.next().ok_or("--auth needs a value")?,
            "--validator" => args.validator = true,
            "--client-connected" => {
                args.client_connected_panics = it.next().as_deref() == Some("panic");
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let mode = args.auth.clone();
    let authenticate = AuthenticateHandler::new(move |_req| {
        let mode = mode.clone();
        async move {
            match mode.as_str() {
                "ok" => Ok(true),
                "refuse" => Ok(false),
                "error" => Err("the identity provider is down".into()),
                _ => panic!("authenticate handler panicked"),
            }
        }
    });
    let mut app = Application::new(AppConfig {
        name: "component-example".into(),
        host: "127.0.0.1".into(),
        port: 0,
        ..AppConfig::default()
    })
    .bind(keys::AUTHENTICATE_HANDLER, authenticate)
    .component(
        SocketIoComponent::new()
            .authenticate_timeout(Duration::from_secs(3))
            .app_ping_interval(Duration::from_millis(500)),
    );
    if args.validator {
        app = app.bind(
            keys::VALIDATE_ROOM_HANDLER,
            ValidateRoomHandler::new(|_, rooms| async move { Ok(rooms) }),
        );
    }
    if args.client_connected_panics {
        app = app.bind(
            keys::CLIENT_CONNECTED_HANDLER,
            ClientConnectedHandler::new(|_| async { panic!("client connected handler panicked") }),
        );
    }
    let running = match app.start().await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", running.local_addr().port());
    running.run_until_signal().await;
}
