//! HTTPS: the certificate and key files (`--tls-cert`, `--tls-key`) read into a rustls
//! server configuration whose certificate can be replaced while the server runs.
//!
//! - [`Tls::load`] reads both PEM files and checks that the key is the certificate's. Any
//!   failure is one [`TlsError`] naming the file and what is wrong with it, never a byte of
//!   the key.
//! - [`Tls`] is a [`Transport`] of the accept loop ([`crate::connections`]): each accepted
//!   TCP stream goes through the handshake inside the connection's header clock and holds a
//!   connection slot, so a client that stalls its handshake is closed (or shed when the
//!   server is full) like one that stalls its request head.
//! - [`Tls::reload`], what the binary runs on SIGHUP, reads the files again. New handshakes
//!   get the new certificate; connections already open keep theirs and go on; files that
//!   cannot be used leave the old certificate in place.
//!
//! The crypto provider is aws-lc-rs, the one the rest of the workspace already builds
//! (reqwest's rustls, jsonwebtoken), named here rather than taken from a process default.

use crate::connections::Transport;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use thiserror::Error;
use tokio::net::TcpStream;
use zeroize::Zeroizing;

/// The two PEM files: the certificate chain (the server's own first, then intermediates)
/// and its private key (PKCS#8, PKCS#1 or SEC1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used. Messages name files, never key material.
#[derive(Debug, Error)]
pub enum TlsError {
    // `error`, not `source`: the cause is part of this one line, not a second link of
    // the chain that `{:#}` would print again.
    #[error("cannot read the TLS {what} {}: {error}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("the TLS certificate file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("the TLS certificate file {} is not valid PEM: {reason}", path.display())]
    CertificatePem { path: PathBuf, reason: String },
    #[error("the TLS certificate in {} cannot be used: {reason}", path.display())]
    Certificate { path: PathBuf, reason: String },
    #[error("the TLS key file {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", path.display())]
    NoKey { path: PathBuf },
    #[error("the TLS key in {} cannot be used: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("the TLS key in {} is not the key of the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot set up TLS: {0}")]
    Config(rustls::Error),
}

/// The certificate new handshakes get; replaced by [`Tls::reload`].
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl Current {
    fn get(&self) -> Arc<CertifiedKey> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, key: CertifiedKey) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(key);
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// The server's TLS: its files, the certificate in use, and the acceptor that hands it out.
/// Clones share the certificate, so a reload through one is seen by all.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: Arc<Current>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.files)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Reads and checks the certificate and key, and builds the server configuration
    /// (TLS 1.2 and 1.3, HTTP/1.1 by ALPN, no client certificates).
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = read_pair(files, &provider)?;
        let current = Arc::new(Current(RwLock::new(Arc::new(key))));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            files: files.clone(),
            provider,
            current,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Reads the files again and, when they can be used, serves their certificate to every
    /// handshake from now on; returns its fingerprint. On an error the certificate in use
    /// stays.
    pub fn reload(&self) -> Result<String, TlsError> {
        let key = read_pair(&self.files, &self.provider)?;
        let fingerprint = fingerprint(&key);
        self.current.set(key);
        Ok(fingerprint)
    }

    /// The SHA-256 fingerprint of the certificate in use, as `openssl x509 -fingerprint
    /// -sha256` prints it (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.current.get())
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

impl Transport for Tls {
    type Stream = tokio_rustls::server::TlsStream<TcpStream>;

    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Stream>> + Send {
        self.acceptor.accept(tcp)
    }
}

fn read(what: &'static str, path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|error| TlsError::Read {
            what,
            path: path.to_owned(),
            error,
        })
}

/// The certificate chain and key of `files`, checked to belong together.
fn read_pair(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read("certificate", &files.cert)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertificatePem {
            path: files.cert.clone(),
            reason: pem_problem(&e),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key_pem = read("key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: files.key.clone(),
        },
        e => TlsError::Key {
            path: files.key.clone(),
            reason: format!("it is not valid PEM: {}", pem_problem(&e)),
        },
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: files.key.clone(),
            reason: match e {
                rustls::Error::General(why) => why,
                e => e.to_string(),
            },
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        // A key type that cannot tell its public key is checked by the first handshake.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(rustls::Error::InvalidCertificate(e)) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            reason: format!("it is not a valid X.509 certificate ({e:?})"),
        }),
        Err(e) => Err(TlsError::Certificate {
            path: files.cert.clone(),
            reason: e.to_string(),
        }),
    }
}

/// What is wrong with a PEM file, in words: pem's own messages print bytes as numbers, and
/// may quote a line of the file (of a key file, key material).
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a BEGIN line has no matching END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a section is not valid base64".to_owned(),
        pem::Error::SectionTooLarge => "a section is too large".to_owned(),
        other => other.to_string(),
    }
}

fn fingerprint(key: &CertifiedKey) -> String {
    let Some(leaf) = key.cert.first() else {
        return String::new();
    };
    Sha256::digest(leaf.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files whose certificate is one that parses as PEM, so that the key is what fails.
    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    const SOME_CERT: &str = "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n";

    #[test]
    fn unusable_files_are_one_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: dir.path().join("nope.key"),
        };
        let err = Tls::load(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("cannot read the TLS certificate ") && err.contains("nope.pem"),
            "{err}"
        );
        for (cert, key, expected) in [
            ("", "", "holds no PEM certificate"),
            ("just text\n", "", "holds no PEM certificate"),
            (
                "-----BEGIN CERTIFICATE-----\nMAMC\n",
                "",
                "is not valid PEM",
            ),
            (SOME_CERT, "", "holds no PEM private key"),
            (SOME_CERT, SOME_CERT, "holds no PEM private key"),
            (
                SOME_CERT,
                "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n",
                "the TLS key in",
            ),
        ] {
            let files = files(dir.path(), cert, key);
            let err = Tls::load(&files).unwrap_err().to_string();
            assert!(err.contains(expected), "{cert:?} {key:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    /// A key file that is not valid PEM is refused without quoting it: its lines may be key
    /// material.
    #[test]
    fn a_broken_key_file_is_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let sentinel = "c2VjcmV0LWtleS1tYXRlcmlhbA";
        for key in [
            format!("-----BEGIN PRIVATE KEY-----\n{sentinel}\n"),
            format!("-----BEGIN PRIVATE KEY {sentinel}\n{sentinel}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{sentinel}!!\n-----END PRIVATE KEY-----\n"),
        ] {
            let files = files(dir.path(), SOME_CERT, &key);
            let err = Tls::load(&files).unwrap_err().to_string();
            assert!(err.contains("key"), "{err}");
            assert!(!err.contains(sentinel), "{err}");
        }
    }
}
