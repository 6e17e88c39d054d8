//! The `otlp` exporter's settings.

use std::collections::BTreeMap;

use auditcol_core::auth::AuthSettings;
use auditcol_core::config::{ConfigDuration, ConfigError, Validate, nested};
use auditcol_core::exporterhelper::{
    ExporterHelperSettings, QueueSettings, RetrySettings, default_timeout,
};
use serde::{Deserialize, Serialize};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

/// Settings of one `otlp` (gRPC) exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `host:port`, or a URL: `http://host:port` (plain text) or
    /// `https://host:port` (TLS).
    #[serde(default)]
    pub endpoint: String,
    /// How requests are compressed.
    #[serde(default)]
    pub compression: Compression,
    /// gRPC metadata sent with every request, e.g. an API key from `${env:…}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS: on unless `insecure` or an `http://` endpoint.
    #[serde(default)]
    pub tls: TlsSettings,
    /// An authenticator extension whose credentials go with every call, as metadata.
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// Per-request timeout (exporter helper).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Retries of retryable failures (exporter helper).
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// The queue in front of the sender (exporter helper).
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

impl Default for OtlpExporterConfig {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            compression: Compression::default(),
            headers: BTreeMap::new(),
            tls: TlsSettings::default(),
            auth: None,
            timeout: default_timeout(),
            retry_on_failure: RetrySettings::default(),
            sending_queue: QueueSettings::default(),
        }
    }
}

/// Request compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip, as the Collector's default.
    #[default]
    Gzip,
    /// No compression.
    None,
}

/// `tls`, as the Collector's `configtls` client settings. As in the
/// Collector's gRPC clients, `insecure: true` means plain text (for a
/// `host:port` endpoint; the scheme of an `http://` or `https://` one
/// decides by itself).
pub type TlsSettings = auditcol_core::tls::TlsClientSettings;

impl OtlpExporterConfig {
    /// Whether the connection uses TLS: an `https://` endpoint always, an
    /// `http://` one never, a `host:port` unless `tls.insecure`.
    pub fn uses_tls(&self) -> bool {
        if self.endpoint.starts_with("https://") {
            true
        } else if self.endpoint.starts_with("http://") {
            false
        } else {
            !self.tls.insecure
        }
    }

    /// The endpoint as a URI with the scheme that [`Self::uses_tls`] says.
    pub fn uri(&self) -> String {
        if self.endpoint.contains("://") {
            self.endpoint.clone()
        } else if self.uses_tls() {
            format!("https://{}", self.endpoint)
        } else {
            format!("http://{}", self.endpoint)
        }
    }

    /// The exporter helper's part of the settings.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings::from_parts(
            self.timeout,
            self.retry_on_failure.clone(),
            self.sending_queue.clone(),
        )
    }
}

impl Validate for OtlpExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.endpoint.trim().is_empty() {
            return Err(ConfigError::at(
                "endpoint",
                "is required: the OTLP/gRPC server as host:port, e.g. otlp.example.com:4317",
            ));
        }
        if let Some((scheme, _)) = self.endpoint.split_once("://")
            && !matches!(scheme, "http" | "https")
        {
            return Err(ConfigError::at(
                "endpoint",
                format!(
                    "scheme `{scheme}://` is not supported: write host:port, http://host:port (plain text) or https://host:port (TLS)"
                ),
            ));
        }
        let uri: tonic::transport::Uri = self.uri().parse().map_err(|e| {
            ConfigError::at(
                "endpoint",
                format!("`{}` is not a valid address: {e}", self.endpoint),
            )
        })?;
        if uri.host().is_none_or(str::is_empty)
            || uri.port().is_none() && !self.endpoint.contains("://")
        {
            return Err(ConfigError::at(
                "endpoint",
                format!(
                    "`{}` needs a host and a port, e.g. otlp.example.com:4317",
                    self.endpoint
                ),
            ));
        }
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            AsciiMetadataKey::from_bytes(name.as_bytes()).map_err(|_| {
                ConfigError::at(&key, "is not a valid gRPC metadata key (lower-case ASCII letters, digits, `-`, `_`, `.`)")
            })?;
            AsciiMetadataValue::try_from(value.as_str()).map_err(|_| {
                ConfigError::at(&key, "is not a valid gRPC metadata value (printable ASCII)")
            })?;
        }
        if self.endpoint.starts_with("https://") && self.tls.insecure {
            return Err(ConfigError::at(
                "tls.insecure",
                "contradicts the https:// endpoint: remove one of them",
            ));
        }
        if self.uses_tls() {
            nested("tls", self.tls.validate())?;
        } else {
            nested(
                "tls",
                self.tls.check_unused(
                    "is unused: the connection is plain text (`tls.insecure` or an http:// endpoint)",
                ),
            )?;
        }
        self.helper_settings().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;

    fn parse(json: serde_json::Value) -> Result<OtlpExporterConfig, ConfigError> {
        parse_component_config(&json)
    }

    #[test]
    fn defaults_are_gzip_and_tls_as_the_collector() {
        let config = parse(serde_json::json!({"endpoint": "otlp.example.com:4317"})).unwrap();
        assert_eq!(config.compression, Compression::Gzip);
        assert_eq!(config.timeout, ConfigDuration::from_secs(5));
        assert!(config.uses_tls());
        assert_eq!(config.uri(), "https://otlp.example.com:4317");
    }

    #[test]
    fn the_scheme_or_insecure_decides_tls() {
        let table = [
            (
                serde_json::json!({"endpoint": "h:4317", "tls": {"insecure": true}}),
                false,
                "http://h:4317",
            ),
            (
                serde_json::json!({"endpoint": "http://h:4317"}),
                false,
                "http://h:4317",
            ),
            (
                serde_json::json!({"endpoint": "https://h:4317"}),
                true,
                "https://h:4317",
            ),
            (
                serde_json::json!({"endpoint": "https://h"}),
                true,
                "https://h",
            ),
        ];
        for (json, tls, uri) in table {
            let config = parse(json.clone()).unwrap();
            assert_eq!(config.uses_tls(), tls, "{json}");
            assert_eq!(config.uri(), uri, "{json}");
        }
    }

    #[test]
    fn bad_endpoints_are_rejected() {
        for endpoint in ["", "grpc://h:4317", "h", "http://", "a b:1"] {
            let err = parse(serde_json::json!({"endpoint": endpoint})).unwrap_err();
            assert_eq!(err.path, "endpoint", "{endpoint}: {err}");
        }
    }

    #[test]
    fn tls_contradictions_are_rejected_with_their_path() {
        let err = parse(serde_json::json!({"endpoint": "https://h:1", "tls": {"insecure": true}}))
            .unwrap_err();
        assert_eq!(err.path, "tls.insecure");
        let err =
            parse(serde_json::json!({"endpoint": "http://h:1", "tls": {"ca_file": "ca.pem"}}))
                .unwrap_err();
        assert_eq!(err.path, "tls.ca_file");
        let err =
            parse(serde_json::json!({"endpoint": "h:1", "tls": {"ca_file": ""}})).unwrap_err();
        assert_eq!(err.path, "tls.ca_file");
        let err = parse(serde_json::json!({"endpoint": "h:1", "tls": {"cert_file": "c.pem"}}))
            .unwrap_err();
        assert_eq!(err.path, "tls.key_file");
        let err = parse(serde_json::json!({"endpoint": "h:1", "tls": {"key_file": "k.pem"}}))
            .unwrap_err();
        assert_eq!(err.path, "tls.cert_file");
        let json = serde_json::json!({"endpoint": "h:1", "tls": {"insecure": true, "cert_file": "c", "key_file": "k"}});
        assert_eq!(parse(json).unwrap_err().path, "tls.cert_file");
        let err = parse(
            serde_json::json!({"endpoint": "h:1", "tls": {"insecure": true, "min_version": "1.3"}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "tls.min_version");
        let err = parse(
            serde_json::json!({"endpoint": "h:1", "tls": {"ca_file": "/nonexistent/ca.pem"}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "tls.ca_file: /nonexistent/ca.pem: file not found"
        );
    }

    #[test]
    fn bad_metadata_is_rejected_with_its_path() {
        let err =
            parse(serde_json::json!({"endpoint": "h:1", "headers": {"Bad Key": "v"}})).unwrap_err();
        assert_eq!(err.path, "headers.Bad Key");
        let err = parse(serde_json::json!({"endpoint": "h:1", "headers": {"x-key": "a\nb"}}))
            .unwrap_err();
        assert_eq!(err.path, "headers.x-key");
    }

    #[test]
    fn unknown_compression_names_the_allowed_ones() {
        let err = parse(serde_json::json!({"endpoint": "h:1", "compression": "zstd"})).unwrap_err();
        assert_eq!(err.path, "compression");
        assert!(err.message.contains("`gzip` or `none`"), "{}", err.message);
    }

    #[test]
    fn helper_settings_are_validated_with_their_path() {
        let json = serde_json::json!({"endpoint": "h:1", "sending_queue": {"max_size_mib": 3}});
        assert_eq!(parse(json).unwrap_err().path, "sending_queue.max_size_mib");
    }
}
