//! The `kafka` exporter: audit events to a Kafka topic, as Flipt's Kafka
//! sink sends them (one event per message, keyed by its noun) or as OTLP
//! batches — the way to fan audit events out to Redpanda Connect, data
//! lakes and SIEMs, and the way agents hand events to a consumer group of
//! gateway collectors (the `kafka` receiver).
//!
//! ```yaml
//! exporters:
//!   kafka:
//!     brokers: ["kafka-1:9092"]
//!     topic: audit-events   # default
//!     encoding: json        # json | protobuf | otlp_proto | otlp_json
//! ```
//!
//! The exporter is an [`ExporterHelper`] around a [`KafkaSender`]: the helper
//! queues and retries; the sender writes a batch as messages, hands them to
//! librdkafka (`acks=all`, idempotent), waits for every delivery report, and
//! answers which records remain when some messages failed, so that only
//! those are sent again. An event is acknowledged upstream only once its
//! delivery report is in.
//!
//! [`ExporterHelper`]: auditcol_core::exporterhelper::ExporterHelper

use std::sync::Arc;

use auditcol_core::component::{BuildContext, Exporter, ExporterFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::exporterhelper::ExporterHelper;
use auditcol_core::telemetry::DropReason;

pub mod config;
mod sender;

pub use config::{Compression, CreateTopic, KafkaExporterConfig, MessageKey};
pub use sender::KafkaSender;

/// The type name in component ids: `kafka`, `kafka/<name>`.
pub const TYPE_NAME: &str = "kafka";

/// Builds `kafka` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaExporterFactory;

impl ExporterFactory for KafkaExporterFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let config = KafkaExporterConfig::parse(config)?;
        ctx.record_effective(auditcol_kafka::effective_config(&config.client, &config));
        let sender = KafkaSender::new(ctx.id.to_string(), &config)
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
