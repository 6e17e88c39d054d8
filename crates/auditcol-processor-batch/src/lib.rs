//! The `batch` processor: merges batches from concurrent callers before they
//! reach the exporters, with the OpenTelemetry Collector's settings
//! (`send_batch_size`, `send_batch_max_size`, `timeout`).
//!
//! The difference from the Collector is acknowledgement: the Collector's
//! batch processor answers its callers as soon as it has their data in
//! memory, and loses it on a crash. This one holds every caller until the
//! flush carrying its records has been accepted downstream, and completes it
//! with the downstream result. See [`BatchProcessor`] for the mechanics.
//!
//! ```yaml
//! processors:
//!   batch:
//!     send_batch_size: 8192      # flush once this many records are pending
//!     send_batch_max_size: 0     # largest batch sent downstream, 0 = no limit
//!     timeout: 200ms             # flush this long after the first pending record
//! ```

use std::sync::Arc;

use auditcol_core::SharedConsumer;
use auditcol_core::component::{BuildContext, Processor, ProcessorFactory};
use auditcol_core::config::ConfigError;

pub mod config;
mod processor;

pub use config::BatchConfig;
pub use processor::{BatchProcessor, INTAKE_CAPACITY, MAX_CONCURRENT_FLUSHES};

/// The type name in component ids: `batch`, `batch/<name>`.
pub const TYPE_NAME: &str = "batch";

/// Builds `batch` processors. Building spawns nothing: the batching task
/// starts with [`auditcol_core::component::Component::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchProcessorFactory;

impl ProcessorFactory for BatchProcessorFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let config: BatchConfig = ctx.parse_config(config)?;
        Ok(Arc::new(BatchProcessor::new(ctx.id.clone(), config, next)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::component::ComponentId;
    use auditcol_core::{LogBatch, LogsConsumer, PipelineError};

    struct Nowhere;
    #[async_trait::async_trait]
    impl LogsConsumer for Nowhere {
        async fn consume(&self, _: LogBatch) -> Result<(), PipelineError> {
            Ok(())
        }
    }

    fn ctx() -> BuildContext {
        BuildContext::new(ComponentId::new(TYPE_NAME, None)).in_pipeline("logs")
    }

    #[tokio::test]
    async fn built_processor_is_not_running_until_started() {
        let processor = BatchProcessorFactory
            .build(&ctx(), &serde_json::Value::Null, Arc::new(Nowhere))
            .unwrap();
        let err = processor
            .consume(LogBatch::sample_audit(1))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            PipelineError::retryable("batch processor batch is not running")
        );
    }

    #[test]
    fn factory_reports_config_errors_with_their_path() {
        let err = BatchProcessorFactory
            .build(
                &ctx(),
                &serde_json::json!({"send_batch_size": 10, "send_batch_max_size": 5}),
                Arc::new(Nowhere),
            )
            .err()
            .unwrap();
        assert_eq!(err.path, "send_batch_max_size");
    }
}
