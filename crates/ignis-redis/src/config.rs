//! [`RedisConfig`]: where Redis is (one node, or the seed nodes of a Redis Cluster), how to
//! authenticate and encrypt, and how patient to be.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, TlsCertificates};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::connection::RedisError;

/// Where Redis is and how to reach it: one node ([`RedisConfig::from_url`]) or a Redis Cluster
/// ([`RedisConfig::cluster`]).
#[derive(Clone)]
pub struct RedisConfig {
    /// The node, or the seed nodes of a cluster (never empty).
    pub(crate) nodes: Vec<ConnectionInfo>,
    pub(crate) cluster: bool,
    /// PEM certificates that replace the built-in roots for verifying the server.
    tls_ca: Option<Arc<[u8]>>,
    /// How long [`RedisConnection::connect`](crate::RedisConnection::connect) waits for Redis
    /// before giving up.
    pub connect_timeout: Duration,
    /// How long a command may take before it fails.
    pub response_timeout: Duration,
    /// The first wait between two reconnection attempts, doubled after each failure.
    pub reconnect_min: Duration,
    /// The longest wait between two reconnection attempts.
    pub reconnect_max: Duration,
    /// How many publishes may wait for the connection before a broadcast fails.
    pub publish_queue: usize,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No credentials in logs.
        f.debug_struct("RedisConfig")
            .field("addr", &self.address())
            .field("cluster", &self.cluster)
            .field("db", &self.nodes[0].redis_settings().db())
            .field("custom_ca", &self.tls_ca.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

/// Plain (`None`) or TLS, and then whether verified.
fn tls_of(info: &ConnectionInfo) -> Option<bool> {
    match info.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => Some(*insecure),
        _ => None,
    }
}

fn config_error(e: impl fmt::Display) -> RedisError {
    RedisError::Config(e.to_string())
}

impl RedisConfig {
    /// A plain TCP connection to `host:port`, database 0, no credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Result<RedisConfig, RedisError> {
        let info = ConnectionAddr::Tcp(host.into(), port)
            .into_connection_info()
            .map_err(config_error)?;
        Ok(RedisConfig::with_nodes(vec![info], false))
    }

    /// One node, from a URL: `redis://[user[:password]@]host[:port][/db]`, `rediss://` for
    /// TLS (`rediss://host/#insecure` skips verification).
    pub fn from_url(url: &str) -> Result<RedisConfig, RedisError> {
        let info = url.trim().into_connection_info().map_err(config_error)?;
        Ok(RedisConfig::with_nodes(vec![info], false))
    }

    /// A Redis Cluster, from the URLs of some of its nodes (any node will do: the others are
    /// discovered). User, password and TLS come from the URLs and must be the same in all of
    /// them; a cluster has database 0 only.
    pub fn cluster<I, S>(urls: I) -> Result<RedisConfig, RedisError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nodes = urls
            .into_iter()
            .map(|url| {
                url.as_ref()
                    .trim()
                    .into_connection_info()
                    .map_err(config_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if nodes.is_empty() {
            return Err(RedisError::Config(
                "a Redis Cluster needs at least one node URL".into(),
            ));
        }
        let config = RedisConfig::with_nodes(nodes, true);
        config.check_cluster()?;
        Ok(config)
    }

    /// A comma-separated list of URLs, as a command line or environment variable gives it: one
    /// URL is a single node ([`RedisConfig::from_url`]), several are the seed nodes of a
    /// cluster ([`RedisConfig::cluster`]).
    pub fn from_url_list(list: &str) -> Result<RedisConfig, RedisError> {
        let urls: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        match urls.as_slice() {
            [] => Err(RedisError::Config("no Redis URL given".into())),
            [one] => RedisConfig::from_url(one),
            many => RedisConfig::cluster(many),
        }
    }

    fn with_nodes(nodes: Vec<ConnectionInfo>, cluster: bool) -> RedisConfig {
        RedisConfig {
            nodes,
            cluster,
            tls_ca: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(3),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            publish_queue: 8192,
        }
    }

    /// What a cluster client would refuse, found before connecting.
    fn check_cluster(&self) -> Result<(), RedisError> {
        let first = &self.nodes[0];
        for node in &self.nodes {
            if matches!(node.addr(), ConnectionAddr::Unix(_)) {
                return Err(RedisError::Config(
                    "a Redis Cluster is reached over TCP, not a Unix socket".into(),
                ));
            }
            if node.redis_settings().db() != 0 {
                return Err(RedisError::Config(
                    "a Redis Cluster has database 0 only".into(),
                ));
            }
            if tls_of(node) != tls_of(first) {
                return Err(RedisError::Config(
                    "the cluster node URLs mix TLS and plain connections".into(),
                ));
            }
            let (a, b) = (node.redis_settings(), first.redis_settings());
            if a.username() != b.username() || a.password() != b.password() {
                return Err(RedisError::Config(
                    "the cluster node URLs have different credentials".into(),
                ));
            }
        }
        Ok(())
    }

    fn map_nodes(mut self, f: impl Fn(ConnectionInfo) -> ConnectionInfo) -> Self {
        self.nodes = self.nodes.into_iter().map(f).collect();
        self
    }

    /// Authenticates as `username` (Redis 6 ACL) on every node.
    pub fn username(self, username: &str) -> Self {
        self.map_nodes(|info| {
            let settings = info.redis_settings().clone().set_username(username);
            info.set_redis_settings(settings)
        })
    }

    /// Authenticates with `password` on every node.
    pub fn password(self, password: &str) -> Self {
        self.map_nodes(|info| {
            let settings = info.redis_settings().clone().set_password(password);
            info.set_redis_settings(settings)
        })
    }

    /// The database of a single node; a cluster refuses any but 0 when connecting.
    pub fn database(self, db: i64) -> Self {
        self.map_nodes(|info| {
            let settings = info.redis_settings().clone().set_db(db);
            info.set_redis_settings(settings)
        })
    }

    /// TLS, verified against the certificates of webpki-roots (or those of
    /// [`RedisConfig::tls_ca_pem`]); `insecure` skips verification (tests only).
    pub fn tls(self, insecure: bool) -> Self {
        self.map_nodes(|info| {
            let addr = match info.addr().clone() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                    ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure,
                        tls_params: None,
                    }
                }
                other => other,
            };
            info.set_addr(addr)
        })
    }

    /// TLS verified against these PEM certificates (a private CA) instead of the built-in
    /// roots. Turns TLS on for URLs that did not ask for it; fails when `pem` holds no
    /// certificate.
    pub fn tls_ca_pem(self, pem: impl AsRef<[u8]>) -> Result<Self, RedisError> {
        let pem = pem.as_ref();
        let mut certificates = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            cert.map_err(|e| RedisError::Config(format!("the TLS CA is not valid PEM: {e}")))?;
            certificates += 1;
        }
        if certificates == 0 {
            return Err(RedisError::Config(
                "the TLS CA holds no PEM certificate".into(),
            ));
        }
        let insecure = self.is_insecure();
        let mut config = if self.uses_tls() {
            self
        } else {
            self.tls(insecure)
        };
        config.tls_ca = Some(Arc::from(pem));
        Ok(config)
    }

    /// Sets [`RedisConfig::connect_timeout`].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Whether this targets a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// `host:port` (or the socket path), for messages; the seed nodes of a cluster, comma
    /// separated.
    pub fn address(&self) -> String {
        let addrs: Vec<String> = self
            .nodes
            .iter()
            .map(|info| match info.addr() {
                ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
                    format!("{host}:{port}")
                }
                ConnectionAddr::Unix(path) => path.display().to_string(),
                _ => "redis".to_string(),
            })
            .collect();
        let mut address = addrs.join(",");
        if self.cluster {
            address = format!("cluster {address}");
        }
        if self.uses_tls() {
            address.push_str(" (TLS)");
        }
        address
    }

    pub(crate) fn uses_tls(&self) -> bool {
        matches!(self.nodes[0].addr(), ConnectionAddr::TcpTls { .. })
    }

    fn is_insecure(&self) -> bool {
        matches!(
            self.nodes[0].addr(),
            ConnectionAddr::TcpTls { insecure: true, .. }
        )
    }

    fn certificates(&self) -> Option<TlsCertificates> {
        self.tls_ca.as_ref().map(|ca| TlsCertificates {
            client_tls: None,
            root_cert: Some(ca.to_vec()),
        })
    }

    /// A client of one node (`node` indexes the nodes) speaking `protocol`.
    pub(crate) fn client(
        &self,
        node: usize,
        protocol: ProtocolVersion,
    ) -> Result<redis::Client, RedisError> {
        let info = self.nodes[node % self.nodes.len()].clone();
        let settings = info.redis_settings().clone().set_protocol(protocol);
        let info = info.set_redis_settings(settings);
        match self.certificates() {
            Some(certs) if !self.is_insecure() => {
                redis::Client::build_with_tls(info, certs).map_err(config_error)
            }
            _ => redis::Client::open(info).map_err(config_error),
        }
    }

    /// A client of the cluster node at `host:port`, with the seed nodes' credentials and TLS.
    pub(crate) fn node_client(
        &self,
        host: &str,
        port: u16,
        protocol: ProtocolVersion,
    ) -> Result<redis::Client, RedisError> {
        let seed = &self.nodes[0];
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.to_string(), port),
        };
        let settings = seed.redis_settings().clone().set_protocol(protocol);
        let info = seed.clone().set_addr(addr).set_redis_settings(settings);
        match self.certificates() {
            Some(certs) if !self.is_insecure() => {
                redis::Client::build_with_tls(info, certs).map_err(config_error)
            }
            _ => redis::Client::open(info).map_err(config_error),
        }
    }

    /// The host of the first seed node.
    pub(crate) fn seed_host(&self) -> String {
        match self.nodes[0].addr() {
            ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
            _ => "127.0.0.1".to_string(),
        }
    }

    /// A builder for a client of the cluster, with the timeouts and certificates set.
    pub(crate) fn cluster_builder(&self, protocol: ProtocolVersion) -> ClusterClientBuilder {
        let mut builder = ClusterClientBuilder::new(self.nodes.clone())
            .use_protocol(protocol)
            .connection_timeout(self.connect_timeout)
            .response_timeout(self.response_timeout)
            // Few quick retries: the caller has its own backoff, and a dead node should not
            // hold every publish for long.
            .retries(2)
            .min_retry_wait(self.reconnect_min.as_millis().max(1) as u64)
            .max_retry_wait(self.reconnect_max.as_millis().max(1) as u64);
        if let Some(certs) = self.certificates().filter(|_| !self.is_insecure()) {
            builder = builder.certs(certs);
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_url_is_a_node_several_are_a_cluster() {
        let one = RedisConfig::from_url_list(" redis://127.0.0.1:7101 ").unwrap();
        assert!(!one.is_cluster());
        assert_eq!(one.address(), "127.0.0.1:7101");

        let many = RedisConfig::from_url_list("redis://a:7101, redis://b:7102,").unwrap();
        assert!(many.is_cluster());
        assert_eq!(many.address(), "cluster a:7101,b:7102");

        let tls = RedisConfig::cluster(["rediss://u:sekrit@a:1", "rediss://u:sekrit@b:2"]).unwrap();
        assert_eq!(tls.address(), "cluster a:1,b:2 (TLS)");
        assert!(!format!("{tls:?}").contains("sekrit"));

        assert!(matches!(
            RedisConfig::from_url_list(" , "),
            Err(RedisError::Config(_))
        ));
    }

    #[test]
    fn a_cluster_refuses_what_it_cannot_do() {
        for urls in [
            vec![],
            vec!["redis://a:1", "rediss://b:2"],
            vec!["redis://a:1/2"],
            vec!["redis://u:one@a:1", "redis://u:two@b:2"],
            vec!["redis://a:1", "nope"],
        ] {
            assert!(
                matches!(RedisConfig::cluster(&urls), Err(RedisError::Config(_))),
                "{urls:?}"
            );
        }
    }

    #[test]
    fn a_custom_ca_must_hold_a_certificate_and_turns_tls_on() {
        let config = RedisConfig::from_url("redis://h:1").unwrap();
        assert!(matches!(
            config.clone().tls_ca_pem(b"not a certificate"),
            Err(RedisError::Config(_))
        ));
        let pem = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        let config = config.tls_ca_pem(pem).unwrap();
        assert_eq!(config.address(), "h:1 (TLS)");
        assert!(format!("{config:?}").contains("custom_ca: true"));
    }
}
