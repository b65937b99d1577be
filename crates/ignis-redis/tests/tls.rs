//! TLS and authentication against a real Redis that the test starts itself: `redis-server` with a
//! certificate from a CA made for the test (rcgen), on a free port, and an ACL user of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use cluster_common::Kind;
use ignis_redis::{RedisConfig, RedisConnection, RedisError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::process::{Child, Command};

mod cluster_common;

/// A CA and, when asked, a server certificate for 127.0.0.1 and localhost it signed.
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

/// A `redis-server` child with TLS only, and the admin password `admin-secret` for `default`.
struct TlsRedis {
    port: u16,
    dir: PathBuf,
    ca: Ca,
    _child: Child,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

async fn start_tls_redis() -> TlsRedis {
    let ca = new_ca("Ignis test CA");
    let server_key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "ignis test redis");
    let server_cert = params.signed_by(&server_key, &ca.issuer).unwrap();

    let dir = std::env::temp_dir().join(format!("ignis-redis-tls-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, contents: &str| {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };
    let cert = write("server.crt", &server_cert.pem());
    let key = write("server.key", &server_key.serialize_pem());
    let ca_file = write("ca.crt", &ca.pem);

    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--bind", "127.0.0.1"])
        .arg("--tls-port")
        .arg(port.to_string())
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&ca_file)
        .args([
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--requirepass", "admin-secret"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed");
    cluster_common::eventually(Duration::from_secs(10), "redis-server listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    TlsRedis {
        port,
        dir,
        ca,
        _child: child,
    }
}

impl TlsRedis {
    fn url(&self, credentials: &str) -> String {
        format!("rediss://{credentials}127.0.0.1:{}", self.port)
    }

    fn config(&self, credentials: &str) -> RedisConfig {
        RedisConfig::from_url(&self.url(credentials))
            .unwrap()
            .tls_ca_pem(&self.ca.pem)
            .unwrap()
            .connect_timeout(Duration::from_secs(3))
    }

    async fn connect(&self, credentials: &str) -> RedisConnection {
        RedisConnection::connect(self.config(credentials))
            .await
            .unwrap_or_else(|e| panic!("TLS Redis on port {}: {e}", self.port))
    }
}

#[tokio::test]
async fn broadcasts_cross_two_servers_over_verified_tls() {
    let redis = start_tls_redis().await;
    for kind in [
        Kind::Classic,
        Kind::Sharded(ignis_redis::SubscriptionMode::Dynamic),
    ] {
        let prefix = cluster_common::random_prefix("ignis-rs-tls");
        let one = cluster_common::node(redis.connect(":admin-secret@").await, kind, &prefix).await;
        let two = cluster_common::node(redis.connect(":admin-secret@").await, kind, &prefix).await;
        assert!(one.conn.is_healthy());
        assert!(one.conn.address().ends_with("(TLS)"));
        assert_eq!(one.ns.adapter().server_count().await.unwrap(), 2);
        let mut p1 = cluster_common::peer(&one).await;
        let mut p2 = cluster_common::peer(&two).await;
        cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "tls").await;
    }
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_naming_the_address() {
    let redis = start_tls_redis().await;
    let other = new_ca("Some other CA");
    let config = RedisConfig::from_url(&redis.url(":admin-secret@"))
        .unwrap()
        .tls_ca_pem(&other.pem)
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    let err = RedisConnection::connect(config).await.unwrap_err();
    let RedisError::Unreachable {
        ref addr,
        ref cause,
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(addr, &format!("127.0.0.1:{} (TLS)", redis.port));
    assert!(
        cause.to_lowercase().contains("certificate"),
        "the cause says what is wrong: {cause}"
    );

    // Without a CA the built-in roots are used, which do not know the test CA either.
    let config = RedisConfig::from_url(&redis.url(":admin-secret@"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2));
    assert!(matches!(
        RedisConnection::connect(config).await,
        Err(RedisError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn insecure_tls_skips_verification() {
    let redis = start_tls_redis().await;
    let url = format!("{}/#insecure", redis.url(":admin-secret@"));
    let conn = RedisConnection::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    assert!(conn.is_healthy());
    conn.publish("ignis-rs-tls-insecure".into(), b"x".to_vec())
        .await
        .unwrap();
    // The same through the builder.
    let config = RedisConfig::new("127.0.0.1", redis.port)
        .unwrap()
        .tls(true)
        .password("admin-secret");
    RedisConnection::connect(config).await.unwrap();
}

#[tokio::test]
async fn an_acl_user_with_a_password() {
    let redis = start_tls_redis().await;
    let admin = redis.connect(":admin-secret@").await;
    drop(admin);
    // The user may use the pub/sub commands of the adapters and nothing else.
    let client = redis::Client::build_with_tls(
        redis.url(":admin-secret@"),
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(redis.ca.pem.as_bytes().to_vec()),
        },
    )
    .unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "ignis",
            "on",
            ">user-secret",
            "resetchannels",
            "&*",
            "-@all",
            "+ping",
            "+hello",
            "+client",
            "+publish",
            "+spublish",
            "+subscribe",
            "+psubscribe",
            "+ssubscribe",
            "+unsubscribe",
            "+punsubscribe",
            "+sunsubscribe",
            "+pubsub",
        ])
        .query_async::<()>(&mut admin)
        .await
        .unwrap();

    let prefix = cluster_common::random_prefix("ignis-rs-acl");
    let one = cluster_common::node(
        redis.connect("ignis:user-secret@").await,
        Kind::Classic,
        &prefix,
    )
    .await;
    // The credentials can come from the builder too.
    let config = RedisConfig::from_url(&redis.url(""))
        .unwrap()
        .tls_ca_pem(&redis.ca.pem)
        .unwrap()
        .username("ignis")
        .password("user-secret");
    let two = cluster_common::node(
        RedisConnection::connect(config).await.unwrap(),
        Kind::Classic,
        &prefix,
    )
    .await;
    assert_eq!(one.ns.adapter().server_count().await.unwrap(), 2);
    let mut p1 = cluster_common::peer(&one).await;
    let mut p2 = cluster_common::peer(&two).await;
    cluster_common::broadcasts_cross(&one, &two, &mut p1, &mut p2, "acl").await;

    let err = RedisConnection::connect(redis.config("ignis:wrong@"))
        .await
        .unwrap_err();
    let RedisError::Unreachable { ref cause, .. } = err else {
        panic!("{err:?}")
    };
    assert!(
        cause.contains("WRONGPASS") || cause.to_lowercase().contains("auth"),
        "{cause}"
    );
}
