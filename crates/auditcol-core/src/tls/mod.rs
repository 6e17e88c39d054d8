//! TLS for every listener and every client, in the shape of the
//! OpenTelemetry Collector's `configtls` (feature `tls`).
//!
//! - [`TlsServerSettings`]: the `tls` section of a listener (OTLP gRPC and
//!   HTTP, webhooks): `cert_file`, `key_file`, `client_ca_file` (mutual TLS:
//!   a client without a certificate of that CA is refused at the
//!   handshake), `min_version`, `reload_interval`. [`ServerTls`] serves it:
//!   handshakes off the accept loop under a deadline, and certificate files
//!   re-read when they change, so a rotation needs no restart.
//! - [`TlsClientSettings`]: the `tls` section of a client (webhook, otlp,
//!   otlphttp and kafka components): `ca_file`, `cert_file`, `key_file`,
//!   `insecure`, `insecure_skip_verify`, `server_name_override`,
//!   `min_version`. What `insecure` means depends on the transport, so each
//!   component checks it (see its README); the files are checked here.
//!
//! Every PEM file is read and checked when the config is built, so
//! `auditcol validate` reports the file and what is wrong with it: not
//! found or unreadable, not PEM, no certificate or no private key in it, a
//! key that does not belong to the certificate, a CA file without a CA.
//!
//! rustls with the ring provider, TLS 1.2 and 1.3 only. (The Kafka
//! components hand the same files to librdkafka, which uses OpenSSL.)
//!
//! ```
//! use auditcol_core::tls::{TlsServerSettings, TlsVersion};
//!
//! let settings: TlsServerSettings = serde_json::from_value(serde_json::json!({
//!     "cert_file": "/etc/auditcol/server.pem",
//!     "key_file": "/etc/auditcol/server.key",
//!     "min_version": "1.3",
//!     "reload_interval": "1m",
//! })).unwrap();
//! assert_eq!(settings.min_version, TlsVersion::V1_3);
//! let err = settings.validate().unwrap_err();
//! assert_eq!(err.to_string(), "cert_file: /etc/auditcol/server.pem: file not found");
//! ```

mod client;
mod files;
mod server;

use std::fmt;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

pub use client::{ClientTls, TlsClientSettings};
pub use rustls;
pub use server::{ReloadOutcome, ServerTls, TlsConnection, TlsServerSettings};

/// ALPN for a gRPC listener or client: HTTP/2 only.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2"];
/// ALPN for an HTTP listener or client: HTTP/2, then HTTP/1.1.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The lowest TLS version a listener or client accepts: `"1.2"` (the
/// default) or `"1.3"`. rustls speaks no older version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2 and 1.3.
    #[default]
    V1_2,
    /// TLS 1.3 only.
    V1_3,
}

impl TlsVersion {
    /// The protocol versions from this one up.
    pub(crate) fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static TLS13_ONLY: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            Self::V1_2 => rustls::ALL_VERSIONS,
            Self::V1_3 => &TLS13_ONLY,
        }
    }

    /// `1.2` or `1.3`, as written in config.
    pub fn name(self) -> &'static str {
        match self {
            Self::V1_2 => "1.2",
            Self::V1_3 => "1.3",
        }
    }

    fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "1.2" => Ok(Self::V1_2),
            "1.3" => Ok(Self::V1_3),
            "1.0" | "1.1" => Err(format!(
                "TLS {text} is not supported: it is deprecated (RFC 8996) and rustls speaks 1.2 and 1.3 only; write \"1.2\" or \"1.3\""
            )),
            other => Err(format!(
                "unknown TLS version `{other}`: write \"1.2\" or \"1.3\""
            )),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Read from `"1.3"`, or from `1.3` — YAML reads an unquoted version as a number.
impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl Visitor<'_> for VersionVisitor {
            type Value = TlsVersion;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a TLS version, \"1.2\" or \"1.3\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<TlsVersion, E> {
                TlsVersion::parse(v).map_err(E::custom)
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TlsVersion, E> {
                TlsVersion::parse(&v.to_string()).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TlsVersion, E> {
                TlsVersion::parse(&v.to_string()).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TlsVersion, E> {
                TlsVersion::parse(&v.to_string()).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(VersionVisitor)
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// The crypto provider of every TLS config: ring.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests;
