//! The `webhook` exporter's settings.

use std::collections::BTreeMap;

use auditcol_core::auth::AuthSettings;
use auditcol_core::config::{ConfigDuration, ConfigError, Secret, Validate};
use auditcol_core::exporterhelper::{
    ExporterHelperSettings, QueueSettings, RetrySettings, default_timeout,
};
use auditcol_core::httpclient::{self, TlsClientSettings};
use serde::{Deserialize, Serialize};

use crate::template::BodyTemplate;

/// The signature header when neither `signature` nor `signature_header` says otherwise.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Auditcol-Signature";

/// Events per request in `mode: batch` unless `max_events_per_request` says otherwise.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 100;

/// Settings of one `webhook` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookExporterConfig {
    /// The URL requests go to.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `POST` (default) or `PUT`.
    #[serde(default)]
    pub method: Method,
    /// Extra request headers, e.g. an API key from `${env:…}`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// One event per request, or a JSON array of events per request.
    #[serde(default)]
    pub mode: Mode,
    /// `mode: batch` only: at most this many events per request.
    #[serde(default)]
    pub max_events_per_request: Option<usize>,
    /// Requests in flight at once for one batch.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// The HMAC-SHA256 key; no signature header without it.
    #[serde(default)]
    pub signing_secret: Option<Secret>,
    /// A preset for the signature header: `flipt` or `flagsmith`.
    #[serde(default)]
    pub signature: Option<SignaturePreset>,
    /// The signature header; default from `signature`, else `X-Auditcol-Signature`.
    #[serde(default)]
    pub signature_header: Option<String>,
    /// A body template instead of the event JSON.
    #[serde(default)]
    pub template: Option<TemplateSettings>,
    /// TLS for `https://` endpoints (the URL scheme decides, as in the
    /// Collector: `tls.insecure` is refused).
    #[serde(default)]
    pub tls: TlsClientSettings,
    /// An authenticator extension whose credentials go with every request
    /// (besides the signature).
    #[serde(default)]
    pub auth: Option<AuthSettings>,
    /// Per request: an answer must have come within it.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Retries of retryable failures (exporter helper).
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// The queue in front of the sender (exporter helper).
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

fn default_max_concurrent_requests() -> usize {
    4
}

impl Default for WebhookExporterConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            method: Method::default(),
            headers: BTreeMap::new(),
            mode: Mode::default(),
            max_events_per_request: None,
            max_concurrent_requests: default_max_concurrent_requests(),
            signing_secret: None,
            signature: None,
            signature_header: None,
            template: None,
            tls: TlsClientSettings::default(),
            auth: None,
            timeout: default_timeout(),
            retry_on_failure: RetrySettings::default(),
            sending_queue: QueueSettings::default(),
        }
    }
}

/// The HTTP method of every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `POST`, as Flipt's and Flagsmith's webhooks.
    #[default]
    Post,
    /// `PUT`.
    Put,
}

/// What one request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One event per request: the Flipt v0.2 event JSON, as Flipt's webhook sink sends.
    #[default]
    Event,
    /// A JSON array of up to `max_events_per_request` events per request.
    Batch,
}

/// Signature header presets, so that receivers written for Flipt's or
/// Flagsmith's webhooks verify auditcol's requests unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignaturePreset {
    /// `x-flipt-webhook-signature`, as Flipt's webhook sink.
    Flipt,
    /// `X-Flagsmith-Signature`, as Flagsmith's audit-log webhooks.
    Flagsmith,
}

impl SignaturePreset {
    /// The header this preset signs in.
    pub fn header(self) -> &'static str {
        match self {
            Self::Flipt => "x-flipt-webhook-signature",
            Self::Flagsmith => "X-Flagsmith-Signature",
        }
    }
}

/// `template`: a body rendered per request with minijinja.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSettings {
    /// The template text.
    pub body: String,
    /// The request's `Content-Type`; when it is JSON, a rendered body must
    /// be valid JSON.
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_content_type() -> String {
    "application/json".to_owned()
}

impl WebhookExporterConfig {
    /// The header requests are signed in, when a secret is set.
    pub fn signature_header(&self) -> &str {
        match (&self.signature_header, self.signature) {
            (Some(header), _) => header,
            (None, Some(preset)) => preset.header(),
            (None, None) => DEFAULT_SIGNATURE_HEADER,
        }
    }

    /// Events per request in `mode: batch`.
    pub fn events_per_request(&self) -> usize {
        self.max_events_per_request
            .unwrap_or(DEFAULT_MAX_EVENTS_PER_REQUEST)
    }

    /// The exporter helper's part of the settings. The helper's own timeout
    /// is off: `timeout` bounds each request inside the sender, so that a
    /// slow request fails alone and the requests of the batch already
    /// delivered are not sent again.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings::from_parts(
            ConfigDuration::from_secs(0),
            self.retry_on_failure.clone(),
            self.sending_queue.clone(),
        )
    }
}

impl Validate for WebhookExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let Some(endpoint) = &self.endpoint else {
            return Err(ConfigError::at(
                "endpoint",
                "is required: the URL to send audit events to, e.g. https://siem.example.com/audit",
            ));
        };
        httpclient::check_url("endpoint", endpoint, "https://siem.example.com/audit")?;
        httpclient::check_headers(&self.headers)?;
        match (self.mode, self.max_events_per_request) {
            (Mode::Event, Some(_)) => {
                return Err(ConfigError::at(
                    "max_events_per_request",
                    "applies to `mode: batch` only: `mode: event` sends one event per request",
                ));
            }
            (Mode::Batch, Some(0)) => {
                return Err(ConfigError::at(
                    "max_events_per_request",
                    "must be at least 1",
                ));
            }
            _ => {}
        }
        if self.max_concurrent_requests == 0 {
            return Err(ConfigError::at(
                "max_concurrent_requests",
                "must be at least 1",
            ));
        }
        match &self.signing_secret {
            Some(secret) if secret.is_empty() => {
                return Err(ConfigError::at(
                    "signing_secret",
                    "is empty (an unset ${env:…}?): give the shared secret, or remove the key to send unsigned requests",
                ));
            }
            None if self.signature.is_some() || self.signature_header.is_some() => {
                let key = if self.signature.is_some() {
                    "signature"
                } else {
                    "signature_header"
                };
                return Err(ConfigError::at(
                    key,
                    "needs `signing_secret`: requests are signed with it",
                ));
            }
            _ => {}
        }
        if let (Some(header), Some(preset)) = (&self.signature_header, self.signature)
            && !header.eq_ignore_ascii_case(preset.header())
        {
            return Err(ConfigError::at(
                "signature_header",
                format!(
                    "conflicts with `signature: {}`, which signs in {}: keep one of the two",
                    match preset {
                        SignaturePreset::Flipt => "flipt",
                        SignaturePreset::Flagsmith => "flagsmith",
                    },
                    preset.header()
                ),
            ));
        }
        if let Some(header) = &self.signature_header {
            reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                ConfigError::at("signature_header", "is not a valid HTTP header name")
            })?;
        }
        if let Some(template) = &self.template {
            reqwest::header::HeaderValue::from_str(&template.content_type).map_err(|_| {
                ConfigError::at(
                    "template.content_type",
                    "is not a valid Content-Type header value",
                )
            })?;
            BodyTemplate::new(&template.body, &template.content_type)
                .map_err(|e| ConfigError::at("template.body", e))?;
        }
        httpclient::check_tls(&self.tls, "endpoint", endpoint)?;
        self.helper_settings().validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;
    use serde_json::json;

    fn parse(json: serde_json::Value) -> Result<WebhookExporterConfig, ConfigError> {
        parse_component_config(&json)
    }

    #[test]
    fn defaults_are_one_signed_event_per_post() {
        let config = parse(json!({"endpoint": "http://127.0.0.1:9/hook"})).unwrap();
        assert_eq!(config.method, Method::Post);
        assert_eq!(config.mode, Mode::Event);
        assert_eq!(config.max_concurrent_requests, 4);
        assert_eq!(config.timeout, ConfigDuration::from_secs(5));
        assert_eq!(config.signature_header(), "X-Auditcol-Signature");
        assert_eq!(config.events_per_request(), 100);
        assert!(config.template.is_none());
    }

    #[test]
    fn presets_choose_the_products_headers() {
        let flipt =
            parse(json!({"endpoint": "http://h", "signing_secret": "s", "signature": "flipt"}))
                .unwrap();
        assert_eq!(flipt.signature_header(), "x-flipt-webhook-signature");
        let flagsmith =
            parse(json!({"endpoint": "http://h", "signing_secret": "s", "signature": "flagsmith"}))
                .unwrap();
        assert_eq!(flagsmith.signature_header(), "X-Flagsmith-Signature");
        let own = parse(
            json!({"endpoint": "http://h", "signing_secret": "s", "signature_header": "X-Sig"}),
        )
        .unwrap();
        assert_eq!(own.signature_header(), "X-Sig");
    }

    #[test]
    fn the_signing_secret_is_masked_in_debug_and_print_config() {
        let config = parse(json!({"endpoint": "http://h", "signing_secret": "hunter2"})).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let printed = serde_json::to_value(&config).unwrap();
        assert_eq!(printed["signing_secret"], "[REDACTED]");
    }

    #[test]
    fn signature_settings_without_a_secret_or_in_conflict_are_rejected() {
        let err = parse(json!({"endpoint": "http://h", "signature": "flipt"})).unwrap_err();
        assert_eq!(err.path, "signature");
        assert!(
            err.message.contains("needs `signing_secret`"),
            "{}",
            err.message
        );
        let err = parse(json!({"endpoint": "http://h", "signing_secret": ""})).unwrap_err();
        assert_eq!(err.path, "signing_secret");
        let err = parse(json!({"endpoint": "http://h", "signing_secret": "s",
            "signature": "flagsmith", "signature_header": "x-flipt-webhook-signature"}))
        .unwrap_err();
        assert_eq!(err.path, "signature_header");
        let err = parse(json!({"endpoint": "http://h", "signing_secret": "s", "signature_header": "bad header"}))
            .unwrap_err();
        assert_eq!(err.path, "signature_header");
        let err =
            parse(json!({"endpoint": "http://h", "signing_secret": "s", "signature": "github"}))
                .unwrap_err();
        assert_eq!(err.path, "signature");
    }

    #[test]
    fn endpoint_is_a_required_http_url() {
        assert_eq!(parse(json!({})).unwrap_err().path, "endpoint");
        assert_eq!(
            parse(json!({"endpoint": "siem:443"})).unwrap_err().path,
            "endpoint"
        );
        let err = parse(json!({"endpoint": "http://h", "method": "GET"})).unwrap_err();
        assert_eq!(err.path, "method");
    }

    #[test]
    fn max_events_per_request_belongs_to_batch_mode() {
        let err = parse(json!({"endpoint": "http://h", "max_events_per_request": 5})).unwrap_err();
        assert_eq!(err.path, "max_events_per_request");
        let err =
            parse(json!({"endpoint": "http://h", "mode": "batch", "max_events_per_request": 0}))
                .unwrap_err();
        assert_eq!(err.path, "max_events_per_request");
        let ok =
            parse(json!({"endpoint": "http://h", "mode": "batch", "max_events_per_request": 5}))
                .unwrap();
        assert_eq!(ok.events_per_request(), 5);
        let err = parse(json!({"endpoint": "http://h", "max_concurrent_requests": 0})).unwrap_err();
        assert_eq!(err.path, "max_concurrent_requests");
    }

    #[test]
    fn a_template_that_does_not_compile_is_a_config_error() {
        let err =
            parse(json!({"endpoint": "http://h", "template": {"body": "{{ type "}})).unwrap_err();
        assert_eq!(err.path, "template.body");
        let err = parse(
            json!({"endpoint": "http://h", "template": {"body": "x", "content_type": "a\nb"}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "template.content_type");
        let err = parse(json!({"endpoint": "http://h", "template": {"text": "x"}})).unwrap_err();
        assert!(err.path.starts_with("template"), "{}", err.path);
    }

    #[test]
    fn helper_settings_keep_their_paths_and_the_helper_timeout_is_off() {
        let err = parse(json!({"endpoint": "http://h", "retry_on_failure": {"multiplier": 0}}))
            .unwrap_err();
        assert_eq!(err.path, "retry_on_failure.multiplier");
        let config = parse(json!({"endpoint": "http://h", "timeout": "2s"})).unwrap();
        assert_eq!(
            config.helper_settings().timeout,
            ConfigDuration::from_secs(0)
        );
    }
}
