//! The `tls` section of a client and [`ClientTls`], the rustls config it
//! makes.

use std::io;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;
use tokio::net::TcpStream;

use super::files::{PemFile, certified_key};
use super::{TlsVersion, provider};
use crate::config::ConfigError;

/// `tls` of a client, as the Collector's `configtls` client settings.
///
/// Which connections use TLS is the component's business: `insecure`
/// means plain text for gRPC and Kafka, while for HTTP the URL scheme
/// decides (see each component's README). The other keys are checked
/// here, the files included.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientSettings {
    /// CA certificates (PEM) that server certificates must chain to,
    /// instead of the built-in (webpki) roots.
    pub ca_file: Option<String>,
    /// The client certificate (PEM) for mutual TLS; with `key_file`.
    pub cert_file: Option<String>,
    /// The client certificate's private key (PEM); with `cert_file`.
    pub key_file: Option<String>,
    /// Plain text instead of TLS, where the transport allows the choice.
    pub insecure: bool,
    /// Accept any server certificate and name. For tests only: it gives up
    /// what TLS is for.
    pub insecure_skip_verify: bool,
    /// The name the server's certificate must carry, instead of the
    /// endpoint's host (e.g. when connecting to an IP address).
    pub server_name_override: Option<String>,
    /// The lowest TLS version accepted; unset = 1.2.
    pub min_version: Option<TlsVersion>,
}

impl TlsClientSettings {
    /// Checks the keys and loads the files as a connection would: every
    /// problem names its key (`ca_file`) and, for files, the file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.load(&[]).map(drop)
    }

    /// For a connection in plain text: the first TLS key that is set is an
    /// error at its path, saying `why` it is unused.
    pub fn check_unused(&self, why: &str) -> Result<(), ConfigError> {
        let set = [
            ("ca_file", self.ca_file.is_some()),
            ("cert_file", self.cert_file.is_some()),
            ("key_file", self.key_file.is_some()),
            ("insecure_skip_verify", self.insecure_skip_verify),
            ("server_name_override", self.server_name_override.is_some()),
            ("min_version", self.min_version.is_some()),
        ];
        match set.into_iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(ConfigError::at(key, why)),
            None => Ok(()),
        }
    }

    fn check_keys(&self) -> Result<Option<ServerName<'static>>, ConfigError> {
        for (key, value) in [
            ("ca_file", &self.ca_file),
            ("cert_file", &self.cert_file),
            ("key_file", &self.key_file),
            ("server_name_override", &self.server_name_override),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(ConfigError::at(
                    key,
                    "must not be empty: give a value or remove the key",
                ));
            }
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::at(
                    "key_file",
                    "is required with `cert_file`: the client certificate's private key",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::at(
                    "cert_file",
                    "is required with `key_file`: the client certificate",
                ));
            }
            _ => {}
        }
        if self.insecure_skip_verify {
            let unused = "is unused with `insecure_skip_verify: true`, which accepts any server certificate and name: remove one of the two";
            if self.ca_file.is_some() {
                return Err(ConfigError::at("ca_file", unused));
            }
            if self.server_name_override.is_some() {
                return Err(ConfigError::at("server_name_override", unused));
            }
        }
        self.server_name_override
            .as_deref()
            .map(|name| {
                ServerName::try_from(name.to_owned()).map_err(|_| {
                    ConfigError::at(
                        "server_name_override",
                        format!("`{name}` is not a DNS name or an IP address"),
                    )
                })
            })
            .transpose()
    }

    /// Reads the files and makes the rustls config, offering `alpn`
    /// ([`super::ALPN_GRPC`], [`super::ALPN_HTTP`]).
    pub fn load(&self, alpn: &[&[u8]]) -> Result<ClientTls, ConfigError> {
        let server_name_override = self.check_keys()?;
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = if self.insecure_skip_verify {
            Arc::new(AcceptAnyServerCertificate {
                provider: provider.clone(),
            })
        } else {
            let roots = match &self.ca_file {
                Some(path) => PemFile::read("ca_file", path)?.trust_anchors()?,
                None => RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| {
                        ConfigError::at("ca_file", format!("cannot verify servers: {e}"))
                    })?;
            match &server_name_override {
                Some(name) => Arc::new(VerifyAs {
                    inner: webpki,
                    name: name.clone(),
                }),
                None => webpki,
            }
        };
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(self.min_version.unwrap_or_default().versions())
            .map_err(|e| ConfigError::at("min_version", e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let cert = PemFile::read("cert_file", cert)?;
                let key = PemFile::read("key_file", key)?;
                let (chain, private_key) = certified_key(&cert, &key, &provider)?;
                builder
                    .with_client_auth_cert(chain, private_key)
                    .map_err(|e| {
                        cert.error(format_args!("cannot be used as a client certificate: {e}"))
                    })?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(ClientTls {
            config: Arc::new(config),
            server_name_override,
        })
    }
}

/// A client's TLS, ready to connect: the rustls config and the name to
/// check servers against.
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name_override: Option<ServerName<'static>>,
}

impl ClientTls {
    /// The rustls config (e.g. for reqwest's `use_preconfigured_tls`). With
    /// `server_name_override`, its verifier checks certificates against
    /// that name, whatever name it is asked about.
    pub fn rustls_config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name sent (SNI) and checked for a server at `host`:
    /// `server_name_override`, else the host (a DNS name or an IP address,
    /// `[::1]` as written in URLs too).
    pub fn server_name(&self, host: &str) -> io::Result<ServerName<'static>> {
        if let Some(name) = &self.server_name_override {
            return Ok(name.clone());
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("`{host}` is not a DNS name or an IP address"),
            )
        })
    }

    /// Connects to `host:port` (TCP_NODELAY) and makes the TLS handshake.
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = self.server_name(host)?;
        let tcp_host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((tcp_host, port)).await?;
        tcp.set_nodelay(true)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
    }
}

/// Checks certificates against one name, whatever name the connection
/// asks about (`server_name_override` where the caller cannot set SNI).
#[derive(Debug)]
struct VerifyAs {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for VerifyAs {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate, any name. The handshake
/// signatures are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
