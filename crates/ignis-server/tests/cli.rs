//! The `ignis-server` binary's command line: `--help` and `mint-token`.

use std::process::Command;

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ignis-server"));
    // The test's own environment must not configure the server.
    for (name, _) in std::env::vars() {
        if name.starts_with("APP_ENV_") {
            command.env_remove(name);
        }
    }
    command
}

#[test]
fn help_lists_the_jwt_and_cors_settings() {
    let out = server().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for setting in [
        "--jwt-leeway-secs",
        "APP_ENV_JWT_LEEWAY_SECS",
        "--jwt-issuer",
        "APP_ENV_JWT_ISSUER",
        "--jwt-audience",
        "APP_ENV_JWT_AUDIENCE",
        "APP_ENV_JWT_SECRET",
        "--cors-origins",
        "--get-clients",
        "--drain-seconds",
        "APP_ENV_SERVER_DRAIN_SECONDS",
        "mint-token",
    ] {
        assert!(
            help.contains(setting),
            "{setting} missing from --help:\n{help}"
        );
    }
}

fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64url_decode(payload);
    serde_json::from_slice(&bytes).unwrap()
}

fn base64url_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => panic!("not base64url: {c}"),
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        acc = (acc << 6) | u32::from(value(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn mint_token_signs_with_the_secret_from_the_environment() {
    let out = server()
        .args(["mint-token", "--sub", "alice", "--ttl", "2h"])
        .env("APP_ENV_JWT_SECRET", "a-test-secret-long-enough-for-hs256")
        .env("APP_ENV_JWT_AUDIENCE", "ignis")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims = claims_of(token.trim());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "ignis");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 7200);

    // Without a secret there is nothing to sign with: a clear error, exit 2.
    let out = server()
        .args(["mint-token", "--sub", "alice"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("APP_ENV_JWT_SECRET"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ignis-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The text of the files in `dir` whose name starts with `prefix`.
fn logs(dir: &std::path::Path, prefix: &str) -> (usize, String) {
    let mut count = 0;
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            count += 1;
            text += &std::fs::read_to_string(entry.path()).unwrap();
        }
    }
    (count, text)
}

#[test]
fn logs_go_to_rotating_files_and_errors_to_their_own() {
    let dir = temp_dir("logs");
    // Old files of an earlier run: with three kept, the two oldest go.
    for hour in 0..4 {
        std::fs::write(dir.join(format!("ignis.2020-01-01-0{hour}.log")), "old\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A port taken: the server logs an error and stops.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = server()
        .args(["--port", &port, "--log-keep", "3", "--log-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("cannot start"),
        "with a directory, nothing on stderr: {stderr}"
    );

    let (files, all) = logs(&dir, "ignis.");
    assert_eq!(files, 3, "the oldest files pruned");
    assert!(all.contains("OPEN DEVELOPMENT MODE"), "{all}");
    assert!(all.contains("cannot start"), "{all}");
    let (files, errors) = logs(&dir, "error.");
    assert_eq!(files, 1);
    assert!(errors.contains("cannot start"), "{errors}");
    assert!(
        !errors.contains("OPEN DEVELOPMENT MODE"),
        "a warning is not an error: {errors}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_log_files_hold_one_object_a_line() {
    let dir = temp_dir("json-logs");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = server()
        .args([
            "--port",
            &port,
            "--log-format",
            "json",
            "--log-rotation",
            "daily",
        ])
        .arg("--log-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, errors) = logs(&dir, "error.");
    let line: serde_json::Value = serde_json::from_str(errors.lines().next().unwrap()).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert!(line["message"].as_str().unwrap().contains("cannot start"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn print_config_shows_the_settings_without_secrets() {
    let out = server()
        .args(["--print-config", "--port", "4567", "--parser", "msgpack"])
        .env("APP_ENV_JWT_SECRET", "a-secret-that-must-not-show")
        .env("APP_ENV_ENGINE_PING_INTERVAL_MS", "5000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("a-secret-that-must-not-show"), "{text}");
    assert!(text.contains("jwt_secret = \"<hidden>\""), "{text}");
    assert!(text.contains("port = 4567"), "{text}");
    assert!(text.contains("parser = \"msgpack\""), "{text}");
    assert!(text.contains("ping_interval_ms = 5000"), "{text}");
}

#[test]
fn a_bad_value_names_its_key_and_the_server_does_not_start() {
    let dir = temp_dir("bad-value");
    let file = dir.join("ignis.toml");
    std::fs::write(
        &file,
        "[engine]\ntransports = [\"polling\", \"smoke-signals\"]\n",
    )
    .unwrap();
    let out = server().arg("--config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("engine.transports") && stderr.contains("\"smoke-signals\""),
        "{stderr}"
    );
    let out = server().args(["--ping-timeout-ms", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--ping-timeout-ms"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
