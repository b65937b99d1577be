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
