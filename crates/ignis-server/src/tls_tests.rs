//! HTTPS and WSS as `main` serves them, with certificates made for each test: the polling
//! handshake over HTTPS, a WebSocket over WSS on the engine's direct path, a client that
//! trusts another CA refused, a client that never starts its TLS handshake cut at the head
//! deadline, and a certificate reloaded under a live connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ignis::{RunningApp, ServerTls};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::auth::Verifier;
use crate::build;
use crate::config::{Cli, Config};

struct Ca {
    pem: String,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

fn new_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    Ca {
        pem: issuer.pem(),
        issuer,
    }
}

/// A directory for one test's files, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("ignis-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a certificate for `localhost` and 127.0.0.1 signed by `ca`, and its key.
fn write_server_cert(dir: &Path, ca: &Ca, name: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

async fn start(cli: Cli, tls: Arc<ServerTls>) -> RunningApp {
    let config = Config::load(Cli {
        port: Some(0),
        ..cli
    })
    .unwrap();
    let verifier = Verifier::new(&config.jwt).unwrap();
    build(
        &config,
        verifier,
        None,
        crate::drain::DrainSwitch::default(),
    )
    .tls(tls)
    .start()
    .await
    .expect("the server starts")
}

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

async fn connect(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> Result<TlsStream<TcpStream>, std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    connector(ca_pem)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Reads until `pattern` shows, or fails the test after 5 s.
async fn read_until(stream: &mut TlsStream<TcpStream>, pattern: &str) -> String {
    read_until_bytes(stream, pattern.as_bytes()).await
}

async fn read_until_bytes(stream: &mut TlsStream<TcpStream>, pattern: &[u8]) -> String {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.windows(pattern.len()).any(|w| w == pattern) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no {pattern:?} in {:?}", String::from_utf8_lossy(&seen)))
            .unwrap();
        assert!(
            n > 0,
            "closed before {pattern:?}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// Opens a WebSocket on `/io` over `stream` and returns what came with the `101`.
async fn websocket(stream: &mut TlsStream<TcpStream>) -> String {
    stream
        .write_all(
            b"GET /io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    // The open packet, in the first frame after the 101.
    read_until(stream, "\"pingInterval\"").await
}

#[tokio::test]
async fn https_and_wss_on_one_port() {
    let dir = TempDir::new("serve");
    let ca = new_ca("Ignis test CA");
    let (cert, key) = write_server_cert(&dir.0, &ca, "ignis test server");
    let tls = Arc::new(ServerTls::from_pem_files(cert, key).unwrap());
    let app = start(Cli::default(), tls).await;
    let addr = app.local_addr();

    let mut https = connect(addr, &ca.pem).await.unwrap();
    https
        .write_all(b"GET /io/?EIO=4&transport=polling HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut https, "\"sid\"").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut https = connect(addr, &ca.pem).await.unwrap();
    https
        .write_all(b"GET /api/health-check HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until(&mut https, "\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut wss = connect(addr, &ca.pem).await.unwrap();
    let answer = websocket(&mut wss).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");

    // Plain HTTP on the TLS port gets no answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /api/health-check HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200"));
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_is_refused() {
    let dir = TempDir::new("wrong-ca");
    let ca = new_ca("Ignis test CA");
    let (cert, key) = write_server_cert(&dir.0, &ca, "ignis test server");
    let app = start(
        Cli::default(),
        Arc::new(ServerTls::from_pem_files(cert, key).unwrap()),
    )
    .await;
    let other = new_ca("Another CA");
    let err = connect(app.local_addr(), &other.pem).await.unwrap_err();
    assert!(
        err.to_string().contains("invalid peer certificate"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_cut_at_the_head_deadline() {
    let dir = TempDir::new("silent");
    let ca = new_ca("Ignis test CA");
    let (cert, key) = write_server_cert(&dir.0, &ca, "ignis test server");
    let app = start(
        Cli {
            request_timeout_ms: Some(300),
            ..Cli::default()
        },
        Arc::new(ServerTls::from_pem_files(cert, key).unwrap()),
    )
    .await;
    // TCP open, no ClientHello.
    let mut silent = TcpStream::connect(app.local_addr()).await.unwrap();
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the server keeps a silent connection: {closed:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_reload_keeps_open_connections_and_serves_the_new_certificate() {
    let dir = TempDir::new("reload");
    let old_ca = new_ca("Old CA");
    let (cert, key) = write_server_cert(&dir.0, &old_ca, "old server");
    let tls = Arc::new(ServerTls::from_pem_files(&cert, &key).unwrap());
    let app = start(
        Cli {
            engine: crate::settings::EngineCli {
                ping_interval_ms: Some(200),
                ..Default::default()
            },
            ..Cli::default()
        },
        tls.clone(),
    )
    .await;
    let addr = app.local_addr();
    let mut live = connect(addr, &old_ca.pem).await.unwrap();
    websocket(&mut live).await;

    let new_ca = new_ca("New CA");
    write_server_cert(&dir.0, &new_ca, "new server");
    tls.reload().unwrap();

    // New connections see the new certificate only.
    assert!(connect(addr, &old_ca.pem).await.is_err());
    let mut fresh = connect(addr, &new_ca.pem).await.unwrap();
    websocket(&mut fresh).await;
    // The connection opened before still works: the server's heartbeat (a text frame "2")
    // reaches it, and its answer keeps it open past a few intervals.
    for _ in 0..3 {
        read_until_bytes(&mut live, &[0x81, 1, b'2']).await;
        // A masked "3" (pong), as a client sends it.
        live.write_all(&[0x81, 0x81, 0, 0, 0, 0, b'3'])
            .await
            .unwrap();
    }

    // A file that cannot be used leaves the current certificate.
    std::fs::write(dir.0.join("key.pem"), "not a key").unwrap();
    assert!(tls.reload().is_err());
    assert!(connect(addr, &new_ca.pem).await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn our_client_over_https_and_wss() {
    use ignis_client::{Client, TlsOptions, Transport};
    let dir = TempDir::new("client");
    let ca = new_ca("Ignis test CA");
    let (cert, key) = write_server_cert(&dir.0, &ca, "ignis test server");
    let app = start(
        Cli::default(),
        Arc::new(ServerTls::from_pem_files(cert, key).unwrap()),
    )
    .await;
    let port = app.local_addr().port();
    let connect = |url: String, transports: Vec<Transport>, tls: TlsOptions| {
        Client::builder(url)
            .path("/io")
            .transports(transports)
            .reconnection(false)
            .timeout(Duration::from_secs(5))
            .tls(tls)
            .connect("/")
    };
    let trusted = || TlsOptions::new().ca_pem(ca.pem.clone());
    // Polling upgraded to WebSocket over https, and WebSocket alone over wss.
    for (url, transports) in [
        (
            format!("https://localhost:{port}"),
            vec![Transport::Polling, Transport::Websocket],
        ),
        (
            format!("https://localhost:{port}"),
            vec![Transport::Polling],
        ),
        (
            format!("wss://localhost:{port}"),
            vec![Transport::Websocket],
        ),
    ] {
        let socket = connect(url.clone(), transports.clone(), trusted())
            .await
            .unwrap_or_else(|e| panic!("{url} {transports:?}: {e}"));
        assert!(socket.connected());
        socket.disconnect();
    }

    // Another CA: refused, and the error says why.
    let other = new_ca("Another CA");
    for transports in [vec![Transport::Polling], vec![Transport::Websocket]] {
        let err = connect(
            format!("https://localhost:{port}"),
            transports,
            TlsOptions::new().ca_pem(other.pem.clone()),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("TLS handshake failed") && err.contains("invalid peer certificate"),
            "{err}"
        );
    }
    // The Ignis client helper over wss: connected and authenticated (open development mode).
    let helper = ignis_client::SocketIoClientHelper::new(ignis_client::HelperOptions::new(
        "tls-test",
        Client::builder(format!("wss://localhost:{port}"))
            .path("/io")
            .transports([Transport::Websocket])
            .reconnection(false)
            .tls(trusted()),
    ))
    .unwrap();
    helper.connect_and_wait().await.unwrap();
    let authenticated = helper.authenticate_and_wait().await.unwrap();
    assert!(authenticated.get("id").is_some(), "{authenticated:?}");
    helper.shutdown();

    // The insecure switch trusts anything.
    let socket = connect(
        format!("wss://localhost:{port}"),
        vec![Transport::Websocket],
        TlsOptions::new().danger_accept_invalid_certs(true),
    )
    .await
    .unwrap();
    socket.disconnect();
    app.stop().await;
}

/// Connection set-up over TLS against plain TCP: `n` WebSocket connections opened one after
/// the other (TCP connect, the TLS handshake for the one, the WebSocket handshake, the open
/// packet), timed from the client. Client and server share the process, so the TLS figure
/// holds both sides' handshake work. A benchmark, not a check; its figures need a quiet
/// machine:
///
/// ```sh
/// cargo test --release -p ignis-server --bin ignis-server tls_tests::setup_cost -- \
///   --ignored --nocapture
/// ```
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: run it on a quiet machine"]
async fn setup_cost() {
    let n: usize = std::env::var("IGNIS_SETUP_COST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let dir = TempDir::new("setup-cost");
    let ca = new_ca("Ignis bench CA");
    let (cert, key) = write_server_cert(&dir.0, &ca, "ignis bench server");
    let plain_config = Config::load(Cli {
        port: Some(0),
        ..Cli::default()
    })
    .unwrap();
    let plain = build(
        &plain_config,
        Verifier::new(&plain_config.jwt).unwrap(),
        None,
        crate::drain::DrainSwitch::default(),
    )
    .start()
    .await
    .unwrap();
    let tls = start(
        Cli::default(),
        Arc::new(ServerTls::from_pem_files(cert, key).unwrap()),
    )
    .await;

    let summary = |name: &str, mut times: Vec<Duration>| {
        times.sort();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        println!(
            "{name}: {n} connections, mean {mean:?}, p50 {:?}, p99 {:?}",
            at(0.5),
            at(0.99)
        );
    };
    let request: &[u8] = b"GET /io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
        Upgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut times = Vec::with_capacity(n);
    // After the connection is up (TCP, and for TLS its handshake too): the server's own work
    // for a WebSocket set-up, which TLS should not change apart from the handshake.
    let mut after_connect = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let mut stream = TcpStream::connect(plain.local_addr()).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let connected = std::time::Instant::now();
        stream.write_all(request).await.unwrap();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("pingInterval") {
            let mut buf = [0u8; 1024];
            let got = stream.read(&mut buf).await.unwrap();
            assert!(got > 0);
            seen.extend_from_slice(&buf[..got]);
        }
        times.push(started.elapsed());
        after_connect.push(connected.elapsed());
    }
    summary("plain ws", times);
    summary("plain ws after the TCP connect", after_connect);
    let mut times = Vec::with_capacity(n);
    let mut after_connect = Vec::with_capacity(n);
    for _ in 0..n {
        let started = std::time::Instant::now();
        let mut stream = connect(tls.local_addr(), &ca.pem).await.unwrap();
        let connected = std::time::Instant::now();
        websocket(&mut stream).await;
        times.push(started.elapsed());
        after_connect.push(connected.elapsed());
    }
    summary("tls wss", times);
    summary(
        "tls wss after the TCP connect and the TLS handshake",
        after_connect,
    );
    plain.stop().await;
    tls.stop().await;
}
