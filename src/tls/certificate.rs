//! The server's certificate, read again from its files when they change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

/// What tells a file's versions apart without reading it: its modification time, its length and
/// (on Unix) its inode, which a file replaced by a rename changes.
type Stamp = Option<(SystemTime, u64, u64)>;

/// The certificate every handshake is answered with; [`Self::reload_if_changed`] swaps it when
/// its files change.
pub struct ReloadingCertificate {
    certificate_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// The stamps of the files last read, loaded or not, so that a bad renewal is reported once.
    seen: Mutex<(Stamp, Stamp)>,
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("certificate_path", &self.certificate_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertificate {
    /// Reads the certificate chain and key; fails if they do not load or do not match.
    pub fn load(certificate_path: &Path, key_path: &Path) -> anyhow::Result<Self> {
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let stamps = (stamp(certificate_path), stamp(key_path));
        let current = read(certificate_path, key_path, &provider)?;
        Ok(Self {
            certificate_path: certificate_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            current: ArcSwap::from_pointee(current),
            seen: Mutex::new(stamps),
        })
    }

    /// Reads the files again if either changed since they were last read; a pair that does not
    /// load is logged and the certificate in use kept. Costs two `stat`s when nothing changed.
    pub fn reload_if_changed(&self) {
        let stamps = (stamp(&self.certificate_path), stamp(&self.key_path));
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if *seen == stamps {
                return;
            }
            *seen = stamps;
        }
        match read(&self.certificate_path, &self.key_path, &self.provider) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(certificate = %self.certificate_path.display(), "TLS certificate reloaded");
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "TLS certificate files changed but do not load; serving the previous certificate"
            ),
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&metadata);
    #[cfg(not(unix))]
    let inode = 0;
    Some((metadata.modified().ok()?, metadata.len(), inode))
}

fn read(certificate_path: &Path, key_path: &Path, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = super::read_certificates(certificate_path)?;
    // The error names the file, never its content: the key is a secret.
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| anyhow::anyhow!("no private key could be read from {}: {e}", key_path.display()))?;
    CertifiedKey::from_der(chain, key, provider).context("the private key does not match the certificate")
}
