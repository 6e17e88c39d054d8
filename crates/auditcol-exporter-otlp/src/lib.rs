//! The `otlp` exporter: log batches as OTLP/gRPC to any OTLP endpoint
//! (another auditcol, an OpenTelemetry Collector, a backend).
//!
//! ```yaml
//! exporters:
//!   otlp:
//!     endpoint: otlp.example.com:4317   # TLS unless tls.insecure or http://
//!     compression: gzip                 # gzip (default) | none
//!     auth:
//!       authenticator: bearertokenauth/backend   # an extension's credentials as metadata on every call
//! ```
//!
//! The exporter is an [`ExporterHelper`] around an [`OtlpGrpcSender`]: the
//! helper queues, retries and times out; the sender makes one
//! `LogsService/Export` call per batch with the batch's own protobuf bytes
//! (records leave unchanged) and says what the answer means per the OTLP
//! specification: OK delivered (a `partial_success` is logged and counted),
//! UNAVAILABLE, ABORTED, OUT_OF_RANGE, DATA_LOSS, CANCELLED,
//! DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED with a `RetryInfo` retryable
//! (after the `RetryInfo` delay when there is one), anything else permanent.

use std::sync::Arc;

use auditcol_core::auth::exporter_authenticator;
use auditcol_core::component::{BuildContext, Exporter, ExporterFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::exporterhelper::ExporterHelper;

pub mod config;
mod sender;
pub mod status;

pub use config::{Compression, OtlpExporterConfig, TlsSettings};
pub use sender::OtlpGrpcSender;

/// The type name in component ids: `otlp`, `otlp/<name>`.
pub const TYPE_NAME: &str = "otlp";

/// Builds `otlp` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct OtlpExporterFactory;

impl ExporterFactory for OtlpExporterFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let config: OtlpExporterConfig = ctx.parse_config(config)?;
        let auth = exporter_authenticator(config.auth.as_ref(), &ctx.host)?;
        let sender = OtlpGrpcSender::new(ctx.id.to_string(), &config).with_auth(auth);
        Ok(Arc::new(ExporterHelper::new(
            ctx,
            config.helper_settings(),
            Arc::new(sender),
        )))
    }
}

#[cfg(test)]
mod tests;
