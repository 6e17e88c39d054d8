//! Checkpoint keys: Ed25519 (PKCS#8 PEM files; verifiers need only the
//! public key) or an HMAC-SHA256 secret shared by writer and verifier.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;

type HmacSha256 = Hmac<Sha256>;

/// The file name `auditcol keygen` gives the private key.
pub const PRIVATE_KEY_FILE: &str = "auditcol-signing.pem";
/// The file name `auditcol keygen` gives the public key.
pub const PUBLIC_KEY_FILE: &str = "auditcol-signing.pub.pem";

/// The label an HMAC key id is computed from (see [`TrailSigner::key_id`]).
const HMAC_KEY_ID_LABEL: &[u8] = b"auditcol key id";

/// How checkpoints are signed, as written in their `alg` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032) over the checkpoint's canonical bytes.
    #[serde(rename = "ed25519")]
    Ed25519,
    /// HMAC-SHA256 over the checkpoint's canonical bytes.
    #[serde(rename = "hmac-sha256")]
    HmacSha256,
}

impl Algorithm {
    /// The name in checkpoints: `ed25519` or `hmac-sha256`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::HmacSha256 => "hmac-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a key of the kind expected.
    #[error("{path}: {message}")]
    Format {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// `keygen` would overwrite a key.
    #[error(
        "{0} already exists: keep it, or pass --force to replace it (the trail it signs can then only be checked with the old public key)"
    )]
    Exists(PathBuf),
    /// `keygen` cannot write.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No randomness from the operating system.
    #[error("cannot get random bytes from the operating system: {0}")]
    Random(String),
}

/// Signs checkpoints: the writer's key.
pub enum TrailSigner {
    /// An Ed25519 private key.
    Ed25519(Box<SigningKey>),
    /// An HMAC-SHA256 secret.
    Hmac(HmacSha256),
}

impl fmt::Debug for TrailSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(
            f,
            "TrailSigner({}, key id {})",
            self.algorithm(),
            self.key_id()
        )
    }
}

impl TrailSigner {
    /// Reads a PKCS#8 PEM Ed25519 private key (as `auditcol keygen` writes it).
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        read_pem_file(path, Self::from_pem)
    }

    /// Parses a PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        if text.contains("BEGIN PUBLIC KEY") {
            return Err("this is a public key: `signing_key_file` takes the private key (auditcol-signing.pem); the public key is for `auditcol verify --public-key`".into());
        }
        SigningKey::from_pkcs8_pem(text)
            .map(|key| TrailSigner::Ed25519(Box::new(key)))
            .map_err(|e| {
                format!("not a PKCS#8 PEM Ed25519 private key ({e}); create one with `auditcol keygen --out DIR`")
            })
    }

    /// An HMAC-SHA256 signer keyed with `secret`.
    pub fn hmac(secret: &[u8]) -> Self {
        TrailSigner::Hmac(hmac_keyed(secret))
    }

    /// The algorithm of the signatures.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            TrailSigner::Ed25519(_) => Algorithm::Ed25519,
            TrailSigner::Hmac(_) => Algorithm::HmacSha256,
        }
    }

    /// The key id written in checkpoints: 16 hex digits. Ed25519: the first
    /// 8 bytes of SHA-256 of the 32-byte public key. HMAC: the first 8 bytes
    /// of HMAC-SHA256(key, "auditcol key id") — it tells keys apart without
    /// revealing them.
    pub fn key_id(&self) -> String {
        self.verifier().key_id()
    }

    /// The signature of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            TrailSigner::Ed25519(key) => {
                use ed25519_dalek::Signer;
                key.sign(message).to_bytes().to_vec()
            }
            TrailSigner::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// What checks this signer's signatures.
    pub fn verifier(&self) -> TrailVerifier {
        match self {
            TrailSigner::Ed25519(key) => TrailVerifier::Ed25519(key.verifying_key()),
            TrailSigner::Hmac(keyed) => TrailVerifier::Hmac(keyed.clone()),
        }
    }
}

/// Checks checkpoint signatures: the auditor's key.
#[derive(Clone)]
pub enum TrailVerifier {
    /// An Ed25519 public key.
    Ed25519(VerifyingKey),
    /// An HMAC-SHA256 secret.
    Hmac(HmacSha256),
}

impl fmt::Debug for TrailVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TrailVerifier({}, key id {})",
            self.algorithm(),
            self.key_id()
        )
    }
}

impl TrailVerifier {
    /// Reads a PEM public key (SubjectPublicKeyInfo, as `auditcol keygen`
    /// writes it). A private key is accepted too: its public half is used.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyError> {
        read_pem_file(path, Self::from_pem)
    }

    /// Parses a PEM Ed25519 public key (or private key).
    pub fn from_pem(text: &str) -> Result<Self, String> {
        if text.contains("BEGIN PRIVATE KEY") {
            return TrailSigner::from_pem(text).map(|signer| signer.verifier());
        }
        VerifyingKey::from_public_key_pem(text)
            .map(TrailVerifier::Ed25519)
            .map_err(|e| format!("not a PEM Ed25519 public key ({e}); `auditcol keygen` writes one as auditcol-signing.pub.pem"))
    }

    /// An HMAC-SHA256 verifier keyed with `secret`.
    pub fn hmac(secret: &[u8]) -> Self {
        TrailVerifier::Hmac(hmac_keyed(secret))
    }

    /// The algorithm it checks.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            TrailVerifier::Ed25519(_) => Algorithm::Ed25519,
            TrailVerifier::Hmac(_) => Algorithm::HmacSha256,
        }
    }

    /// The key id (see [`TrailSigner::key_id`]).
    pub fn key_id(&self) -> String {
        match self {
            TrailVerifier::Ed25519(key) => hex::encode(&Sha256::digest(key.as_bytes())[..8]),
            TrailVerifier::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(HMAC_KEY_ID_LABEL);
                hex::encode(&mac.finalize().into_bytes()[..8])
            }
        }
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            TrailVerifier::Ed25519(key) => Signature::from_slice(signature)
                .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok()),
            TrailVerifier::Hmac(keyed) => {
                let mut mac = keyed.clone();
                mac.update(message);
                mac.verify_slice(signature).is_ok()
            }
        }
    }
}

/// Reads the key file at `path` and parses it with `parse`; errors name the file.
fn read_pem_file<T>(path: &Path, parse: fn(&str) -> Result<T, String>) -> Result<T, KeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|message| KeyError::Format {
        path: path.to_owned(),
        message,
    })
}

fn hmac_keyed(secret: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length: this cannot fail.
    <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())
}

/// The files written by [`write_key_pair`].
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    /// The private key, mode 0600.
    pub private_key: PathBuf,
    /// The public key.
    pub public_key: PathBuf,
    /// The key id checkpoints will carry.
    pub key_id: String,
}

/// Creates a new Ed25519 key from the operating system's randomness and
/// writes it to `dir` (created if missing) as [`PRIVATE_KEY_FILE`] (PKCS#8
/// PEM, mode 0600) and [`PUBLIC_KEY_FILE`] (SubjectPublicKeyInfo PEM).
/// Refuses to replace existing files unless `force`.
pub fn write_key_pair(dir: &Path, force: bool) -> Result<KeyPairFiles, KeyError> {
    let private_key = dir.join(PRIVATE_KEY_FILE);
    let public_key = dir.join(PUBLIC_KEY_FILE);
    if !force {
        for path in [&private_key, &public_key] {
            if path.exists() {
                return Err(KeyError::Exists(path.clone()));
            }
        }
    }
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let line_ending = ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF;
    let private_pem = key
        .to_pkcs8_pem(line_ending)
        .map_err(|e| KeyError::Random(format!("cannot encode the key: {e}")))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(line_ending)
        .map_err(|e| KeyError::Random(format!("cannot encode the public key: {e}")))?;
    write_file(&private_key, private_pem.as_bytes(), 0o600, force)?;
    write_file(&public_key, public_pem.as_bytes(), 0o644, force)?;
    Ok(KeyPairFiles {
        private_key,
        public_key,
        key_id: TrailVerifier::Ed25519(key.verifying_key()).key_id(),
    })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32, replace: bool) -> Result<(), KeyError> {
    let error = |source| KeyError::Write {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if replace {
        // A replaced key file may have had looser permissions: start afresh
        // so the mode below applies.
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
    }
    options.create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists(path.to_owned())
        } else {
            error(e)
        }
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(error)
}

/// Whether a private key file can be read by others than its owner (unix
/// mode bits), for a warning at start.
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_can_read_and_its_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_pair(&dir.path().join("keys"), false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.private_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!readable_by_others(&files.private_key));
        let signer = TrailSigner::from_pem_file(&files.private_key).unwrap();
        let verifier = TrailVerifier::from_pem_file(&files.public_key).unwrap();
        assert_eq!(signer.key_id(), files.key_id);
        assert_eq!(verifier.key_id(), files.key_id);
        let signature = signer.sign(b"message");
        assert!(verifier.verify(b"message", &signature));
        assert!(!verifier.verify(b"messagE", &signature));
    }

    #[test]
    fn keygen_refuses_to_overwrite_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_key_pair(dir.path(), false).unwrap();
        let err = write_key_pair(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        let second = write_key_pair(dir.path(), true).unwrap();
        assert_ne!(first.key_id, second.key_id);
    }

    #[test]
    fn a_public_key_given_as_the_signing_key_is_named_for_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_pair(dir.path(), false).unwrap();
        let err = TrailSigner::from_pem_file(&files.public_key).unwrap_err();
        assert!(err.to_string().contains("this is a public key"), "{err}");
        let err = TrailSigner::from_pem("hello").unwrap_err();
        assert!(err.contains("auditcol keygen"), "{err}");
    }

    #[test]
    fn a_verifier_takes_the_private_key_too() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_key_pair(dir.path(), false).unwrap();
        let verifier = TrailVerifier::from_pem_file(&files.private_key).unwrap();
        assert_eq!(verifier.key_id(), files.key_id);
    }

    #[test]
    fn hmac_signatures_verify_with_the_same_secret_only() {
        let signer = TrailSigner::hmac(b"a secret of some length");
        let signature = signer.sign(b"m");
        assert_eq!(signature.len(), 32);
        assert!(TrailVerifier::hmac(b"a secret of some length").verify(b"m", &signature));
        assert!(!TrailVerifier::hmac(b"another secret").verify(b"m", &signature));
        assert_ne!(
            TrailVerifier::hmac(b"a").key_id(),
            TrailVerifier::hmac(b"b").key_id()
        );
    }
}
