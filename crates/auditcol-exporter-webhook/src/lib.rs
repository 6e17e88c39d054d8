//! The `webhook` exporter: audit events as signed HTTP requests to any
//! endpoint — a SIEM, a CI/CD hook, a chat channel, or a receiver written for
//! Flipt's or Flagsmith's webhooks.
//!
//! ```yaml
//! exporters:
//!   webhook/siem:
//!     endpoint: https://siem.example.com/audit
//!     signing_secret: ${env:SIEM_WEBHOOK_SECRET}  # X-Auditcol-Signature: hex HMAC-SHA256 of the body
//!     mode: event                                 # one Flipt v0.2 event per request (default) | batch
//!     auth: {authenticator: basicauth/siem}       # an extension's credentials on every request
//! ```
//!
//! The exporter is an [`ExporterHelper`] around a [`WebhookSender`]: the
//! helper queues and retries; the sender plans a batch into requests, sends
//! them with bounded concurrency (in batch order per noun), and answers
//! which events remain when some requests fail, so that only those are sent
//! again and delivered events are not duplicated. 2xx is delivered; 408,
//! 429, 5xx and transport errors are retried (honouring `Retry-After`); any
//! other answer refuses its events for good: they are logged with their ids,
//! counted as failed, and the batch's outcome is an error, so an upstream
//! that waits for acknowledgement hears of it.

use std::sync::Arc;

use auditcol_core::auth::exporter_authenticator;
use auditcol_core::component::{BuildContext, Exporter, ExporterFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::exporterhelper::ExporterHelper;
use auditcol_core::telemetry::DropReason;

pub mod config;
mod sender;
pub mod template;

pub use config::{Method, Mode, SignaturePreset, TemplateSettings, WebhookExporterConfig};
pub use sender::WebhookSender;

/// The type name in component ids: `webhook`, `webhook/<name>`.
pub const TYPE_NAME: &str = "webhook";

/// Builds `webhook` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhookExporterFactory;

impl ExporterFactory for WebhookExporterFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let config: WebhookExporterConfig = ctx.parse_config(config)?;
        let auth = exporter_authenticator(config.auth.as_ref(), &ctx.host)?;
        let sender = WebhookSender::new(ctx.id.to_string(), &config)
            .with_auth(auth)
            .with_non_audit_drops(ctx.telemetry.exporter_drops(&ctx.id, DropReason::NonAudit));
        Ok(Arc::new(ExporterHelper::new(
            ctx,
            config.helper_settings(),
            Arc::new(sender),
        )))
    }
}

#[cfg(test)]
mod tests;
