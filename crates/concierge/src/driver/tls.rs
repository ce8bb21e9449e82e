//! SIP over TLS (RFC 3261 §26.2, RFC 5630): the certificates and rustls configurations
//! the TLS connections of [`super::tcp`] use.
//!
//! - Server side: `[sip] tls_cert` / `tls_key` (PEM), or a self-signed certificate made
//!   at start whose SHA-256 fingerprint is logged (a softphone pins or accepts it).
//! - Mutual TLS: with `[sip] tls_client_ca` clients are asked for a certificate; one that
//!   chains to that CA makes its connection a trusted peer. A client without one is still
//!   served, as an untrusted caller; a certificate that does not verify fails the handshake.
//! - Client side (bridge legs to `sips:` or `;transport=tls` targets): the server's
//!   certificate is verified against `[sip] tls_ca_file` or the Mozilla roots, by the
//!   target's IP address (targets are addresses: there is no DNS yet); our certificate is
//!   offered when a trunk asks for one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::info;

use crate::config::SipConfig;

/// Why TLS could not be set up; each names the setting to change.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("cannot read the TLS {what} {path}: {message}; check `[sip] {field}`")]
    File {
        what: &'static str,
        field: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("`[sip] tls_cert` and `tls_key` go together: set both or neither")]
    HalfPair,
    #[error("cannot make the self-signed TLS certificate: {0}")]
    SelfSigned(String),
    #[error("TLS configuration rejected: {0}; check `[sip] tls_cert`, `tls_key`, `tls_client_ca`")]
    Rustls(String),
}

/// What the TLS listener and outbound TLS connections use.
#[derive(Clone)]
pub(crate) struct TlsSetup {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) connector: TlsConnector,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(
    path: &Path,
    what: &'static str,
    field: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let file_err = |message: String| TlsError::File {
        what,
        field,
        path: path.into(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(file_err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

fn roots(path: &Path, field: &'static str) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in read_certs(path, "CA file", field)? {
        store.add(cert).map_err(|e| TlsError::File {
            what: "CA file",
            field,
            path: path.into(),
            message: e.to_string(),
        })?;
    }
    Ok(store)
}

/// The hex SHA-256 fingerprint of a DER certificate, as softphones show it (AA:BB:…).
pub(crate) fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Our certificate chain and key: the configured files, or a fresh self-signed pair for
/// `names` (the advertised host, localhost and the loopback addresses).
fn identity(
    sip: &SipConfig,
    names: Vec<String>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    match (&sip.tls_cert, &sip.tls_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "certificate", "tls_cert")?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                what: "private key",
                field: "tls_key",
                path: key.clone(),
                message: e.to_string(),
            })?;
            if let Some(first) = chain.first() {
                info!(sha256 = %fingerprint(first), "TLS certificate loaded");
            }
            Ok((chain, key))
        }
        (None, None) => {
            let made = rcgen::generate_simple_self_signed(names)
                .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
            let der = made.cert.der().clone();
            info!(
                sha256 = %fingerprint(&der),
                "no [sip] tls_cert configured: made a self-signed TLS certificate"
            );
            let key = PrivateKeyDer::try_from(made.signing_key.serialize_der())
                .map_err(|e| TlsError::SelfSigned(e.to_string()))?;
            Ok((vec![der], key))
        }
        _ => Err(TlsError::HalfPair),
    }
}

impl TlsSetup {
    /// Builds the server and client configurations from `[sip]`. `host` is the
    /// advertised host, a subject name of a self-signed certificate.
    pub(crate) fn from_config(sip: &SipConfig, host: &str) -> Result<Self, TlsError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let mut names = vec![bare.to_owned(), "localhost".into()];
        for n in ["127.0.0.1", "::1"] {
            if !names.iter().any(|m| m == n) {
                names.push(n.into());
            }
        }
        let (chain, key) = identity(sip, names)?;
        let rustls_err = |e: rustls::Error| TlsError::Rustls(e.to_string());

        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?;
        let server = match &sip.tls_client_ca {
            Some(path) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(path, "tls_client_ca")?),
                    provider(),
                )
                // Phones without a certificate still call; they are just not trusted.
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
                server.with_client_cert_verifier(verifier)
            }
            None => server.with_no_client_auth(),
        }
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(rustls_err)?;

        let trust = match &sip.tls_ca_file {
            Some(path) => roots(path, "tls_ca_file")?,
            None => RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls_err)?
            .with_root_certificates(trust);
        // A trunk that asks for our certificate gets it (mutual TLS the other way).
        let client = if sip.tls_cert.is_some() {
            client
                .with_client_auth_cert(chain, key)
                .map_err(rustls_err)?
        } else {
            client.with_no_client_auth()
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_colon_separated_upper_hex_sha256() {
        let f = fingerprint(b"abc");
        assert_eq!(f.len(), 32 * 3 - 1);
        assert!(f.starts_with("BA:78:16:BF"), "{f}");
    }

    #[test]
    fn without_files_a_self_signed_certificate_is_made_and_half_a_pair_is_refused() {
        let sip = SipConfig::default();
        assert!(TlsSetup::from_config(&sip, "127.0.0.1").is_ok());
        let half = SipConfig {
            tls_cert: Some("cert.pem".into()),
            ..SipConfig::default()
        };
        assert!(matches!(
            TlsSetup::from_config(&half, "127.0.0.1"),
            Err(TlsError::HalfPair)
        ));
    }
}
