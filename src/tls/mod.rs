//! TLS, and mutual TLS, for the gRPC (and REST) listener, with rustls.
//!
//! The server's certificate chain and key are read from PEM files and read again, without a
//! restart, when either file changes: every new connection first checks the files' modification
//! times and sizes, so the first connection after a renewal is served the new certificate. A
//! renewal that does not load (a key that does not match the certificate, a file half written)
//! is logged and the certificate in use is kept. With a client CA, every client must present a
//! certificate that CA signed (mutual TLS); without one, clients are not asked for any.
//!
//! Plaintext stays the default; connections already open keep the certificate they started with.

mod certificate;
mod connection;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

pub use certificate::ReloadingCertificate;
pub use connection::{ServerConnection, accept};

/// Where the server's certificate, its key and the client CA are read from.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM: the server's certificate, then its chain.
    pub certificate: PathBuf,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: the CA certificates that sign the clients' certificates; `None`: no client certificate.
    pub client_ca: Option<PathBuf>,
}

/// The rustls server configuration of `settings`, answering with the certificate of `resolver`,
/// offering HTTP/2 (and HTTP/1.1 when `http1` is set, for the REST layer).
pub fn server_config(
    settings: &TlsSettings,
    resolver: Arc<ReloadingCertificate>,
    http1: bool,
) -> anyhow::Result<ServerConfig> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &settings.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in read_certificates(path)? {
                roots
                    .add(certificate)
                    .with_context(|| format!("a CA certificate in {}", path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .context("the client-certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    if http1 {
        config.alpn_protocols.push(b"http/1.1".to_vec());
    }
    Ok(config)
}

/// Every certificate in a PEM file; at least one.
fn read_certificates(path: &std::path::Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("a certificate in {}", path.display()))?;
    anyhow::ensure!(!certificates.is_empty(), "{} holds no certificate", path.display());
    Ok(certificates)
}
