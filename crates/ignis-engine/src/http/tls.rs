//! HTTPS and WSS on the engine's listener (feature `tls`).
//!
//! A TLS connection is terminated in the accept loop and its stream served by the same
//! connection code as a plain one ([`crate::Stream`]: the direct WebSocket path, hyper for the
//! rest), with the client's real address for the per-IP limits. One difference: on a plain
//! connection senders write to the socket themselves while its task sleeps; a TLS connection's
//! state has one writer, its task, which senders wake (see [`crate::transport::stream`]).
//!
//! The certificate is reloaded with [`ServerTls::reload`] (the server calls it on SIGHUP): new
//! connections get the new one, open connections keep the session they negotiated.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
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

/// Completes the TLS handshake of an accepted connection within `deadline` (a client that
/// opens a connection and says nothing must not hold a task), and returns the TLS stream for
/// the connection code.
pub(crate) async fn accept(
    tls: &ServerTls,
    stream: TcpStream,
    peer: SocketAddr,
    deadline: Duration,
) -> Option<crate::transport::stream::TlsStream> {
    let acceptor = tls.acceptor();
    match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}
