//! The `ignis-server` binary over TLS: SIGHUP reloads the certificate while a client stays
//! connected.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ignis_client::{Client, Socket, TlsOptions, Transport};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

fn new_ca(name: &str) -> (String, CertifiedIssuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    (issuer.pem(), issuer)
}

fn write_server_cert(dir: &Path, issuer: &CertifiedIssuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn connect(port: u16, ca_pem: &str) -> Result<Socket, ignis_client::Error> {
    Client::builder(format!("wss://localhost:{port}"))
        .path("/io")
        .transports([Transport::Websocket])
        .reconnection(false)
        .timeout(Duration::from_secs(5))
        .tls(TlsOptions::new().ca_pem(ca_pem.to_string()))
        .connect("/")
        .await
}

#[tokio::test]
async fn sighup_reloads_the_certificate_under_live_connections() {
    let dir = std::env::temp_dir().join(format!("ignis-tls-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (old_pem, old_ca) = new_ca("Old CA");
    write_server_cert(&dir, &old_ca);

    let mut command = Command::new(env!("CARGO_BIN_EXE_ignis-server"));
    for (name, _) in std::env::vars() {
        if name.starts_with("APP_ENV_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["--port", "0", "--ping-interval-ms", "300"])
        .arg("--tls-cert")
        .arg(dir.join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port: u16 = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();
    // The log, line by line, to wait for the reload.
    let (log_tx, log_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if log_tx.send(line).is_err() {
                return;
            }
        }
    });

    let live = connect(port, &old_pem).await.unwrap();
    let (new_pem, new_ca) = new_ca("New CA");
    write_server_cert(&dir, &new_ca);
    let status = Command::new("kill")
        .args(["-HUP", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = log_rx.recv_timeout(left).expect("no reload in the log");
        if line.contains("TLS certificate reloaded") {
            break;
        }
    }

    assert!(
        connect(port, &old_pem).await.is_err(),
        "the old certificate is gone"
    );
    let fresh = connect(port, &new_pem).await.unwrap();
    // Several heartbeats later, the connection opened before the reload is still there.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(live.connected());
    assert!(fresh.connected());
    live.disconnect();
    fresh.disconnect();
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
}
