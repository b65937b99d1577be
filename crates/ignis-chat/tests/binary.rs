//! The `ignis-chat` binary: settings from a TOML file and the environment, a fresh data
//! directory filled on first start, a graceful stop on SIGTERM, a clear refusal of bad settings.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;

/// Kills the chat if the test fails before it stopped it.
struct Running(Option<std::process::Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the binary with `args`; the running process and its port.
async fn spawn(args: &[&str]) -> (Running, u16) {
    let log = tempfile_path("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ignis-chat"))
        .args(args)
        .args(["--port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(Some(child));
    let port = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix("listening on ")
            .map(|p| p.parse::<u16>().unwrap())
    })
    .await
    .unwrap();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    let port = port.unwrap_or_else(|| panic!("the chat did not start: {stderr}"));
    (running, port)
}

fn tempfile_path(what: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("ignis-chat-{what}-{}-{n}", std::process::id()))
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ignis-chat-bin-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_from_a_config_file_and_the_environment_and_stops_on_sigterm() {
    let dir = temp_dir("run");
    // A name a URL would misread: the default database is opened by path.
    let data = dir.join("chat data?#1");
    let file = dir.join("chat.toml");
    std::fs::write(
        &file,
        format!("data_dir = {:?}\npresence_grace_ms = 100\n", data),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ignis-chat"))
        .arg("--config")
        .arg(&file)
        .env("APP_ENV_SERVER_PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let mut running = Running(Some(child));
    let port = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix("listening on ")
            .map(|p| p.parse::<u16>().unwrap())
    })
    .await
    .unwrap()
    .expect("the chat says where it listens");

    let (status, body) = common::http(
        port,
        "POST",
        "/api/auth/sign-up",
        None,
        Some(&json!({"username": "alice", "password": "password123"}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The SQLite database and the generated secret are in the data directory from the file.
    assert!(data.join("chat.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let term = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = std::time::Instant::now() + common::WAIT;
    let status = loop {
        let child = running.0.as_mut().unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            running.0 = None;
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the chat did not stop on SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_settings_are_refused_with_their_name() {
    let dir = temp_dir("bad");
    for (args, expected) in [
        (vec!["--database-url", "mysql://x"], "invalid database URL"),
        (vec!["--jwt-secret", "short"], "invalid JWT secret"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ignis-chat"))
            .args(&args)
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Two nodes on one PostgreSQL and one Redis; one is killed with SIGKILL, so it cannot say
/// goodbye: its users go offline once its heartbeats stop (within four heartbeats).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_users_go_offline() {
    let db = common::Database::new(common::Backend::Postgres).await;
    let redis = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let key = format!("ignis-chat-kill-{}", std::process::id());
    let data = db.data_dir();
    let args = [
        "--database-url",
        db.url.as_str(),
        "--redis-url",
        redis.as_str(),
        "--redis-key",
        key.as_str(),
        "--jwt-secret",
        "a-secret-shared-by-both-nodes",
        "--node-heartbeat-ms",
        "200",
        "--presence-grace-ms",
        "100",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let (mut doomed, port1) = spawn(&args).await;
    let (_survivor, port2) = spawn(&args).await;
    let sign_up = |port: u16, name: &'static str| async move {
        let (status, body) = common::http(
            port,
            "POST",
            "/api/auth/sign-up",
            None,
            Some(&json!({"username": name, "password": "password123"}).to_string()),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        (
            body["token"].as_str().unwrap().to_string(),
            body["user"]["id"].as_str().unwrap().to_string(),
        )
    };
    let (alice, _) = sign_up(port2, "alice").await;
    let (bob, bob_id) = sign_up(port1, "bob").await;
    let mut a = common::Peer::connect(port2, &alice).await;
    let _b = common::Peer::connect(port1, &bob).await;
    let is_bob = |v: &serde_json::Value| v["userId"] == json!(bob_id);
    assert_eq!(
        a.expect_where("presence:changed", is_bob).await["status"],
        "online"
    );

    let killed = std::time::Instant::now();
    doomed.0.as_mut().unwrap().kill().unwrap();
    let _ = doomed.0.take().unwrap().wait();
    let offline = a.expect_where("presence:changed", is_bob).await;
    assert_eq!(offline["status"], "offline");
    eprintln!("offline {:?} after SIGKILL", killed.elapsed());
    let (_, online) = common::http(
        port2,
        "GET",
        "/api/chat/users?online=true",
        Some(&alice),
        None,
    )
    .await;
    assert!(!online.to_string().contains(&bob_id), "{online}");
}
