//! The `otlphttp` exporter: log batches as OTLP/HTTP to any OTLP endpoint
//! (another auditcol, an OpenTelemetry Collector, Grafana/Loki, Elastic…).
//!
//! ```yaml
//! exporters:
//!   otlphttp:
//!     endpoint: https://otlp.example.com:4318   # POST to <endpoint>/v1/logs
//!     encoding: proto                           # proto (default) | json
//!     compression: gzip                         # gzip (default) | none
//!     auth:
//!       authenticator: bearertokenauth/backend   # an extension's credentials on every request
//! ```
//!
//! The exporter is an [`ExporterHelper`] around an [`OtlpHttpSender`]: the
//! helper queues, retries and times out; the sender encodes a batch from its
//! wire form (records leave unchanged), POSTs it and says what the answer
//! means per the OTLP specification: 2xx delivered (a `partial_success` is
//! logged and counted: those records are rejected for good), 429/502/503/504
//! and transport errors retryable (honouring `Retry-After`), any other
//! status permanent.

use std::sync::Arc;

use auditcol_core::auth::exporter_authenticator;
use auditcol_core::component::{BuildContext, Exporter, ExporterFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::exporterhelper::ExporterHelper;

pub mod config;
mod sender;
pub mod status;

pub use config::{Compression, Encoding, OtlpHttpExporterConfig, TlsSettings};
pub use sender::OtlpHttpSender;

/// The type name in component ids: `otlphttp`, `otlphttp/<name>`.
pub const TYPE_NAME: &str = "otlphttp";

/// Builds `otlphttp` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpHttpExporterFactory;

impl ExporterFactory for OtlpHttpExporterFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let config: OtlpHttpExporterConfig = ctx.parse_config(config)?;
        let auth = exporter_authenticator(config.auth.as_ref(), &ctx.host)?;
        let sender = OtlpHttpSender::new(ctx.id.to_string(), &config).with_auth(auth);
        Ok(Arc::new(ExporterHelper::new(
            ctx,
            config.helper_settings(),
            Arc::new(sender),
        )))
    }
}

#[cfg(test)]
mod tests;
