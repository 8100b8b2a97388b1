//! TLS for the listener: rustls with the `ring` crypto provider (no aws-lc build), configured
//! from `tls_server_config` in the web config. ALPN offers HTTP/2 and HTTP/1.1.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::web_config::TlsServerConfig;

/// Why TLS could not be set up; startup fails with the message.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file is unreadable or holds no PEM certificate.
    #[error("reading certificate {path}: {message}")]
    Certificate {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The key file is unreadable or holds no PEM private key.
    #[error("reading private key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the pair (key does not match, unsupported algorithm).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a rustls server configuration from PEM files.
///
/// # Errors
/// [`TlsError`] naming the file at fault.
pub fn server_config(c: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_path = c.cert_file.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert_file)
        .map_err(|e| TlsError::Certificate { path: cert_path.clone(), message: e.to_string() })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Certificate { path: cert_path.clone(), message: e.to_string() })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate { path: cert_path, message: "no PEM certificate found".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&c.key_file)
        .map_err(|e| TlsError::Key { path: c.key_file.display().to_string(), message: e.to_string() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
