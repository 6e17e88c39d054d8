//! The `otlphttp` exporter's settings.

use std::collections::BTreeMap;

use auditcol_core::auth::AuthSettings;
use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
use auditcol_core::exporterhelper::{
    ExporterHelperSettings, QueueSettings, RetrySettings, default_timeout,
};
use auditcol_core::httpclient;
use serde::{Deserialize, Serialize};

/// The path appended to `endpoint`, as in the OTLP specification.
pub const LOGS_PATH: &str = "/v1/logs";

/// Settings of one `otlphttp` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpHttpExporterConfig {
    /// Base URL: logs are POSTed to `<endpoint>/v1/logs`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Full URL for logs; takes precedence over `endpoint`.
    #[serde(default)]
    pub logs_endpoint: Option<String>,
    /// How the request body is encoded.
    #[serde(default)]
    pub encoding: Encoding,
    /// How the request body is compressed.
    #[serde(default)]
    pub compression: Compression,
    /// Extra request headers, e.g. an API key from `${env:…}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// TLS for `https://` URLs.
    #[serde(default)]
    pub tls: TlsSettings,
    /// An authenticator extension whose credentials go with every request.
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

impl Default for OtlpHttpExporterConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            logs_endpoint: None,
            encoding: Encoding::default(),
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

/// The request body's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf`.
    #[default]
    Proto,
    /// OTLP/JSON, `application/json`.
    Json,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// `Content-Encoding: gzip`, as the Collector's default.
    #[default]
    Gzip,
    /// No compression.
    None,
}

/// `tls`: how `https://` endpoints are trusted, and the client certificate.
/// `http://` endpoints are plain text, as in the Collector: the URL scheme
/// decides, so `tls.insecure` is refused.
pub type TlsSettings = auditcol_core::tls::TlsClientSettings;

impl OtlpHttpExporterConfig {
    /// The URL logs are POSTed to: `logs_endpoint`, else `endpoint` +
    /// `/v1/logs`. `None` when neither is set (rejected by `validate`).
    pub fn logs_url(&self) -> Option<String> {
        if let Some(url) = &self.logs_endpoint {
            return Some(url.clone());
        }
        self.endpoint
            .as_deref()
            .map(|base| format!("{}{LOGS_PATH}", base.trim_end_matches('/')))
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

/// Checks that `url` is an absolute `http://` or `https://` URL.
fn check_url(key: &str, url: &str) -> Result<(), ConfigError> {
    httpclient::check_url(key, url, "https://otlp.example.com:4318")
}

impl Validate for OtlpHttpExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint {
            check_url("endpoint", url)?;
        }
        if let Some(url) = &self.logs_endpoint {
            check_url("logs_endpoint", url)?;
        }
        // The URL requests go to: `logs_endpoint` wins over `endpoint`.
        let used = match (&self.logs_endpoint, &self.endpoint) {
            (Some(url), _) => ("logs_endpoint", url),
            (None, Some(url)) => ("endpoint", url),
            (None, None) => {
                return Err(ConfigError::at(
                    "endpoint",
                    "is required (or `logs_endpoint`): the base URL of the OTLP/HTTP server, e.g. https://otlp.example.com:4318",
                ));
            }
        };
        httpclient::check_headers(&self.headers)?;
        httpclient::check_tls(&self.tls, used.0, used.1)?;
        self.helper_settings().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;

    fn parse(json: serde_json::Value) -> Result<OtlpHttpExporterConfig, ConfigError> {
        parse_component_config(&json)
    }

    #[test]
    fn defaults_are_proto_and_gzip_as_the_collector() {
        let config = parse(serde_json::json!({"endpoint": "http://127.0.0.1:4318"})).unwrap();
        assert_eq!(config.encoding, Encoding::Proto);
        assert_eq!(config.compression, Compression::Gzip);
        assert_eq!(config.timeout, ConfigDuration::from_secs(5));
        assert!(config.headers.is_empty());
        assert_eq!(config.tls, TlsSettings::default());
        assert_eq!(
            config.logs_url().as_deref(),
            Some("http://127.0.0.1:4318/v1/logs")
        );
    }

    #[test]
    fn endpoint_gets_v1_logs_and_logs_endpoint_is_used_as_is() {
        let config =
            parse(serde_json::json!({"endpoint": "https://otlp.example.com/otlp/"})).unwrap();
        assert_eq!(
            config.logs_url().as_deref(),
            Some("https://otlp.example.com/otlp/v1/logs")
        );
        let config = parse(serde_json::json!({
            "endpoint": "https://otlp.example.com",
            "logs_endpoint": "https://logs.example.com/ingest",
        }))
        .unwrap();
        assert_eq!(
            config.logs_url().as_deref(),
            Some("https://logs.example.com/ingest")
        );
    }

    #[test]
    fn an_endpoint_is_required() {
        let err = parse(serde_json::json!(null)).unwrap_err();
        assert_eq!(err.path, "endpoint");
        assert!(err.message.contains("is required"), "{}", err.message);
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        for (json, path) in [
            (
                serde_json::json!({"endpoint": "127.0.0.1:4318"}),
                "endpoint",
            ),
            (
                serde_json::json!({"endpoint": "grpc://host:4317"}),
                "endpoint",
            ),
            (
                serde_json::json!({"logs_endpoint": "not a url"}),
                "logs_endpoint",
            ),
        ] {
            assert_eq!(parse(json).unwrap_err().path, path);
        }
    }

    #[test]
    fn unknown_encoding_and_compression_name_the_allowed_ones() {
        let err =
            parse(serde_json::json!({"endpoint": "http://h", "encoding": "xml"})).unwrap_err();
        assert_eq!(err.path, "encoding");
        assert!(err.message.contains("`proto` or `json`"), "{}", err.message);
        let err =
            parse(serde_json::json!({"endpoint": "http://h", "compression": "zstd"})).unwrap_err();
        assert_eq!(err.path, "compression");
        assert!(err.message.contains("`gzip` or `none`"), "{}", err.message);
    }

    #[test]
    fn bad_headers_are_rejected_with_their_path() {
        let err = parse(serde_json::json!({"endpoint": "http://h", "headers": {"x-key": "a\nb"}}))
            .unwrap_err();
        assert_eq!(err.path, "headers.x-key");
        let err = parse(serde_json::json!({"endpoint": "http://h", "headers": {"bad key": "v"}}))
            .unwrap_err();
        assert_eq!(err.path, "headers.bad key");
    }

    #[test]
    fn tls_keys_are_checked() {
        let err = parse(serde_json::json!({"endpoint": "https://h", "tls": {"ca_file": ""}}))
            .unwrap_err();
        assert_eq!(err.path, "tls.ca_file");
        let err =
            parse(serde_json::json!({"endpoint": "https://h", "tls": {"cert_file": "c.pem"}}))
                .unwrap_err();
        assert_eq!(err.path, "tls.key_file");
        let err = parse(serde_json::json!({"endpoint": "https://h", "tls": {"key_file": "k.pem"}}))
            .unwrap_err();
        assert_eq!(err.path, "tls.cert_file");
        let err =
            parse(serde_json::json!({"endpoint": "https://h", "tls": {"min_version": "1.0"}}))
                .unwrap_err();
        assert_eq!(err.path, "tls.min_version");
        assert!(
            err.message.contains("TLS 1.0 is not supported"),
            "{}",
            err.message
        );
    }

    #[test]
    fn helper_settings_are_validated_with_their_path() {
        let json =
            serde_json::json!({"endpoint": "http://h", "retry_on_failure": {"multiplier": 0}});
        assert_eq!(parse(json).unwrap_err().path, "retry_on_failure.multiplier");
    }
}
