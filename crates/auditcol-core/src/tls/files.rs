//! PEM files read and checked, with errors that name the file and say what
//! is wrong with it. One place for servers, clients and reloads.

use std::fmt;
use std::io;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{PemObject, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::ConfigError;

/// A PEM file as read, with the config key that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PemFile {
    /// The key under `tls`, e.g. `cert_file`: the path of errors.
    pub(crate) key: &'static str,
    /// The file name as configured.
    pub(crate) path: String,
    /// Its bytes.
    pub(crate) bytes: Vec<u8>,
}

/// The file `path` (config key `key`) could not be read: why, in words.
pub(crate) fn read_error(key: &'static str, path: &str, error: &io::Error) -> ConfigError {
    let why = match error.kind() {
        io::ErrorKind::NotFound => "file not found".to_owned(),
        io::ErrorKind::PermissionDenied => {
            "cannot be read: permission denied (the collector's user needs read access)".to_owned()
        }
        io::ErrorKind::IsADirectory => "is a directory, not a PEM file".to_owned(),
        _ => format!("cannot be read: {error}"),
    };
    ConfigError::at(key, format!("{path}: {why}"))
}

impl PemFile {
    /// Reads `path`, named by config key `key`.
    pub(crate) fn read(key: &'static str, path: &str) -> Result<Self, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| read_error(key, path, &e))?;
        Ok(Self {
            key,
            path: path.to_owned(),
            bytes,
        })
    }

    pub(crate) fn error(&self, what: impl fmt::Display) -> ConfigError {
        ConfigError::at(self.key, format!("{}: {what}", self.path))
    }

    /// The labels of its `-----BEGIN <label>-----` lines, in order.
    fn labels(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.bytes)
            .lines()
            .filter_map(|line| {
                line.trim()
                    .strip_prefix("-----BEGIN ")?
                    .strip_suffix("-----")
                    .map(str::to_owned)
            })
            .collect()
    }

    /// Its PEM sections, or why it is not PEM.
    fn sections(&self) -> Result<Vec<(SectionKind, Vec<u8>)>, ConfigError> {
        if self.labels().is_empty() {
            let hint = if self.bytes.first() == Some(&0x30) {
                " (it looks like DER: convert it with `openssl x509 -inform der -in FILE -out FILE.pem`)"
            } else {
                ""
            };
            return Err(self.error(format_args!(
                "not a PEM file: no `-----BEGIN ...-----` line{hint}"
            )));
        }
        <(SectionKind, Vec<u8>)>::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(format_args!("not valid PEM: {e}")))
    }

    /// What the file holds, for messages: `it holds PRIVATE KEY`.
    fn holds(&self) -> String {
        let labels = self.labels();
        format!("it holds {}", labels.join(", "))
    }

    /// The certificates, in order: at least one.
    pub(crate) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        let certs: Vec<CertificateDer<'static>> = self
            .sections()?
            .into_iter()
            .filter(|(kind, _)| *kind == SectionKind::Certificate)
            .map(|(_, der)| CertificateDer::from(der))
            .collect();
        if certs.is_empty() {
            let hint = if self.labels().iter().any(|l| l.contains("PRIVATE KEY")) {
                ": is it the key file?"
            } else {
                ""
            };
            return Err(self.error(format_args!(
                "no certificate in it ({}{hint})",
                self.holds()
            )));
        }
        Ok(certs)
    }

    /// The one private key (PKCS#8, PKCS#1 or SEC1).
    pub(crate) fn private_key(&self) -> Result<PrivateKeyDer<'static>, ConfigError> {
        if self.labels().iter().any(|l| l.starts_with("ENCRYPTED")) {
            return Err(self.error(
                "the private key is encrypted: give an unencrypted PEM key (e.g. `openssl pkey -in KEY -out KEY.plain`) and protect the file with its permissions",
            ));
        }
        let mut keys: Vec<PrivateKeyDer<'static>> = self
            .sections()?
            .into_iter()
            .filter_map(|(kind, der)| PrivateKeyDer::from_pem(kind, der))
            .collect();
        match keys.len() {
            0 => {
                let hint = if self.labels().iter().any(|l| l == "CERTIFICATE") {
                    ": is it the certificate file?"
                } else {
                    ""
                };
                Err(self.error(format_args!(
                    "no private key in it ({}{hint})",
                    self.holds()
                )))
            }
            1 => Ok(keys.remove(0)),
            n => Err(self.error(format_args!(
                "{n} private keys in it: keep only the certificate's key"
            ))),
        }
    }

    /// The CA certificates, as trust anchors: at least one.
    pub(crate) fn trust_anchors(&self) -> Result<RootCertStore, ConfigError> {
        let mut roots = RootCertStore::empty();
        for (n, cert) in self.certificates()?.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                self.error(format_args!(
                    "certificate {} is not a usable CA certificate: {e}",
                    n + 1
                ))
            })?;
        }
        Ok(roots)
    }
}

/// A certificate chain and the private key of its first certificate,
/// checked to belong together: the key's public key must be the one in the
/// certificate (compared as SubjectPublicKeyInfo, as rustls does).
pub(crate) fn certified_key(
    cert: &PemFile,
    key: &PemFile,
    provider: &Arc<CryptoProvider>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    let chain = cert.certificates()?;
    let private_key = key.private_key()?;
    let signing_key = provider
        .key_provider
        .load_private_key(private_key.clone_key())
        .map_err(|e| key.error(format_args!("the private key cannot be used: {e}")))?;
    match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(key.error(format_args!(
                "does not match the certificate in {}: the key's public key is not the certificate's (a key from another pair, or a certificate renewed with a new key?)",
                cert.path
            )));
        }
        // The provider cannot tell the public key (never with ring): the
        // handshake will show it.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(cert.error(format_args!(
                "the first certificate is not a valid X.509 certificate: {e}"
            )));
        }
    }
    Ok((chain, private_key))
}
