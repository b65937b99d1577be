//! `Engine::serve_tls_with`: a WebSocket over TLS on the direct path, with the client's real
//! address, and the handshake deadline (feature `tls`).
#![cfg(feature = "tls")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ignis_engine::{CloseReason, Engine, EngineConfig, Handler, RequestInfo, ServerTls, Socket};
use ignis_proto::engineio::Data;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Echoes messages, and reports the address of each new session.
struct Echo(mpsc::UnboundedSender<Option<SocketAddr>>);

impl Handler for Echo {
    type Data = ();
    fn create_data(&self) {}
    fn on_open(&self, _socket: &Arc<Socket<()>>, request: &RequestInfo) {
        let _ = self.0.send(request.peer);
    }
    fn on_message(&self, socket: &Arc<Socket<()>>, data: Data) {
        let _ = socket.send(data);
    }
    fn on_close(&self, _socket: &Arc<Socket<()>>, _reason: CloseReason) {}
}

/// A self-signed certificate for `localhost`, written for the server; its PEM for the client.
fn certificate(dir: &std::path::Path) -> String {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let pem = certified.cert.pem();
    std::fs::write(dir.join("cert.pem"), &pem).unwrap();
    std::fs::write(dir.join("key.pem"), certified.signing_key.serialize_pem()).unwrap();
    pem
}

#[tokio::test]
async fn a_websocket_over_tls_echoes_with_the_clients_address() {
    let dir = std::env::temp_dir().join(format!("ignis-engine-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = certificate(&dir);
    let tls =
        Arc::new(ServerTls::from_pem_files(dir.join("cert.pem"), dir.join("key.pem")).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();

    let (opened_tx, mut opened) = mpsc::unbounded_channel();
    let engine = Engine::new(
        EngineConfig {
            request_head_timeout: Duration::from_millis(300),
            ..EngineConfig::default()
        },
        Echo(opened_tx),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(engine.serve_tls_with(listener, tls, |_req| async {
        http::Response::new(ignis_engine::ResponseBody::from("fallback"))
    }));

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    stream
        .write_all(
            b"GET /engine.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n\
              Upgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
    let peer = tokio::time::timeout(Duration::from_secs(5), opened.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        peer,
        Some(local),
        "the session sees the client's own address"
    );

    // A masked text frame "4hi" (a message), echoed back unmasked.
    stream
        .write_all(&[0x81, 0x83, 0, 0, 0, 0, b'4', b'h', b'i'])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let echo = [0x81, 3, b'4', b'h', b'i'];
    tokio::time::timeout(Duration::from_secs(5), async {
        while !seen.windows(echo.len()).any(|w| w == echo) {
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no echo in {:?}", String::from_utf8_lossy(&seen)));

    // A client that never starts its TLS handshake is closed at the head deadline.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 8];
    let closed = tokio::time::timeout(Duration::from_secs(3), silent.read(&mut buf)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    server.abort();
}
