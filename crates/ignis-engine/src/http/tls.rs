//! HTTPS and WSS on the engine's listener (feature `tls`).
//!
//! A TLS connection is terminated in the accept loop and its plaintext handed to the same
//! connection code as a plain one (the direct WebSocket path, hyper for the rest) over a local
//! socket pair, with the client's real address: everything the engine does per connection —
//! per-IP limits, the direct path, senders writing to a socket themselves — works unchanged,
//! and the plain-TCP path does not change at all. The price is a copy of every byte between the
//! TLS stream and the pair, and two more file descriptors per TLS connection (see the README's
//! "Operating it" for the measured set-up cost).
//!
//! The certificate is reloaded with [`ServerTls::reload`] (the server calls it on SIGHUP): new
//! connections get the new one, open connections keep the session they negotiated.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        error: io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file holds no private key of a known format.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey {
        /// The key file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
    /// rustls refused the certificate and key (a key that does not match, say).
    #[error("the certificate and key cannot be used: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The server's certificate and key, from PEM files, reloadable while the server runs.
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    acceptor: RwLock<TlsAcceptor>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

fn load(cert_path: &Path, key_path: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| TlsError::Read {
            path: path.to_path_buf(),
            error,
        })
    };
    let cert_pem = read(cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.to_path_buf(),
        });
    }
    let key_pem = read(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // HTTP/1.1 only: the engine's WebSocket and polling transports are HTTP/1.1.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl ServerTls {
    /// Reads a PEM certificate chain (the server's certificate first) and its private key.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<ServerTls, TlsError> {
        let (cert_path, key_path) = (cert.into(), key.into());
        let acceptor = load(&cert_path, &key_path)?;
        Ok(ServerTls {
            cert_path,
            key_path,
            acceptor: RwLock::new(acceptor),
        })
    }

    /// Reads the files again; connections accepted from now on use the new certificate. On an
    /// error the previous one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let acceptor = load(&self.cert_path, &self.key_path)?;
        *self.acceptor.write() = acceptor;
        Ok(())
    }

    fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.read().clone()
    }
}

/// A connected pair of local sockets: the end the engine serves, typed as the TCP stream the
/// connection code takes, and the end the TLS side writes the plaintext to.
fn plaintext_pair() -> io::Result<(TcpStream, UnixStream)> {
    let (engine_end, tls_end) = std::os::unix::net::UnixStream::pair()?;
    engine_end.set_nonblocking(true)?;
    tls_end.set_nonblocking(true)?;
    // SAFETY: the descriptor is an open stream socket that this function owns and gives away.
    // The connection code reads, writes and shuts it down with calls (`recv`, `writev`,
    // `send`, `shutdown`) that a local stream socket answers as a TCP one does; it asks it for
    // nothing TCP-only (the address it uses is the client's, passed beside it).
    let engine_end = unsafe { std::net::TcpStream::from_raw_fd(engine_end.into_raw_fd()) };
    Ok((
        TcpStream::from_std(engine_end)?,
        UnixStream::from_std(tls_end)?,
    ))
}

/// Completes the TLS handshake of an accepted connection within `deadline` (a client that
/// opens a connection and says nothing must not hold a task), and returns the plaintext end
/// for the connection code; the task that copies between the two runs until either side ends.
pub(crate) async fn accept(
    tls: &ServerTls,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Duration,
) -> Option<TcpStream> {
    let acceptor = tls.acceptor();
    let tls_stream = match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let (engine_end, tls_end) = match plaintext_pair() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "cannot create a socket pair for a TLS connection");
            return None;
        }
    };
    tokio::spawn(pump(tls_stream, tls_end));
    Some(engine_end)
}

/// Bytes one copy moves at once: one buffer of this size per direction and TLS connection.
const PUMP_CHUNK: usize = 8 * 1024;

/// How long the engine's answers still flow to a client that stopped sending.
const HALF_CLOSED_LIMIT: Duration = Duration::from_secs(30);

/// Copies between the client's TLS stream and the engine's end until the engine closes its
/// end (then the client gets a TLS close) or the client goes (then the engine reads the end
/// of its input, as on TCP, and has [`HALF_CLOSED_LIMIT`] to finish answering).
async fn pump(tls: tokio_rustls::server::TlsStream<TcpStream>, local: UnixStream) {
    let (mut tls_read, mut tls_write) = tokio::io::split(tls);
    let (mut local_read, mut local_write) = local.into_split();
    let to_engine = async {
        let _ = copy(&mut tls_read, &mut local_write).await;
        let _ = local_write.shutdown().await;
    };
    let to_client = async {
        let _ = copy(&mut local_read, &mut tls_write).await;
        let _ = tls_write.shutdown().await;
    };
    tokio::pin!(to_client);
    tokio::select! {
        // The engine closed: nothing more reaches the client, whatever it still sends.
        () = &mut to_client => return,
        () = to_engine => {}
    }
    let _ = tokio::time::timeout(HALF_CLOSED_LIMIT, to_client).await;
}

/// Copies until the reader ends or either side fails.
async fn copy<R, W>(reader: &mut R, writer: &mut W) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; PUMP_CHUNK];
    loop {
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        writer.write_all(&buf[..n]).await?;
        writer.flush().await?;
    }
}
