//! Certificates made at run time with `rcgen`: a CA, and server and client
//! certificates it signs, written as PEM files for the `tls` settings under
//! test. Nothing is checked in: every run has keys of its own.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let pki = auditcol_testkit::pki::TestPki::generate(dir.path());
//! assert!(std::fs::read_to_string(&pki.ca).unwrap().contains("BEGIN CERTIFICATE"));
//! assert!(pki.server.key.exists() && pki.client.cert.exists());
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate authority that signs test certificates.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its private key, as PEM text.
pub struct Issued {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (DER), to compare with what a server presents.
    pub der: Vec<u8>,
}

/// Where a certificate and its key were written.
#[derive(Debug, Clone)]
pub struct PemFiles {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

impl TestCa {
    /// A new CA (P-256) whose subject is `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `path` and returns it.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.pem()).expect("write the CA certificate");
        path.to_owned()
    }

    /// A server certificate (serverAuth) for `names`: DNS names or IP
    /// addresses, e.g. `["127.0.0.1", "localhost"]`.
    pub fn server(&self, names: &[&str]) -> Issued {
        self.issue(names, names.first().copied().unwrap_or("server"), true)
    }

    /// A client certificate (clientAuth) whose subject is `name`.
    pub fn client(&self, name: &str) -> Issued {
        self.issue(&[], name, false)
    }

    fn issue(&self, names: &[&str], common_name: &str, server: bool) -> Issued {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate names");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![if server {
            ExtendedKeyUsagePurpose::ServerAuth
        } else {
            ExtendedKeyUsagePurpose::ClientAuth
        }];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("certificate");
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

impl Issued {
    /// Writes `<dir>/<stem>.pem` and `<dir>/<stem>.key`.
    pub fn write(&self, dir: &Path, stem: &str) -> PemFiles {
        let files = PemFiles {
            cert: dir.join(format!("{stem}.pem")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, &self.cert_pem).expect("write the certificate");
        std::fs::write(&files.key, &self.key_pem).expect("write the key");
        files
    }
}

/// A CA, a server certificate for `127.0.0.1` and `localhost`, and a client
/// certificate, written into one directory.
pub struct TestPki {
    /// The CA that signed both certificates.
    pub authority: TestCa,
    /// `ca.pem`.
    pub ca: PathBuf,
    /// `server.pem` / `server.key`.
    pub server: PemFiles,
    /// `client.pem` / `client.key`.
    pub client: PemFiles,
    /// The server certificate (DER).
    pub server_der: Vec<u8>,
}

impl TestPki {
    /// Generates the whole set into `dir`.
    pub fn generate(dir: &Path) -> Self {
        let authority = TestCa::new("auditcol test CA");
        let ca = authority.write(&dir.join("ca.pem"));
        let server = authority.server(&["127.0.0.1", "localhost"]);
        let server_der = server.der.clone();
        let server = server.write(dir, "server");
        let client = authority
            .client("auditcol test client")
            .write(dir, "client");
        Self {
            authority,
            ca,
            server,
            client,
            server_der,
        }
    }
}

/// A path as the `&str` a config takes.
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}
