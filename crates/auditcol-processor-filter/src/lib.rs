//! The `filter` processor: keeps audit events by Flipt's `noun:verb` rules.
//!
//! ```yaml
//! processors:
//!   filter/flags:
//!     events: ["flag:*", "segment:deleted"]   # include, default ["*:*"]
//!     exclude: ["*:read"]                     # default []
//!     non_audit: drop                          # drop (default) | keep
//! ```
//!
//! Patterns are compiled once at build time into an [`EventFilter`]; the
//! per-record check compares borrowed attribute values with
//! `eq_ignore_ascii_case` and allocates nothing. Dropped records count as
//! delivered: a batch filtered down to nothing is acknowledged without
//! reaching the next stage. They are counted by reason (`non_audit`,
//! `not_included`, `excluded`) in `auditcol_processor_dropped_log_records`
//! and logged at INFO, the first of each reason and then a summary every 10 s.

use std::sync::Arc;

use auditcol_core::SharedConsumer;
use auditcol_core::component::{BuildContext, Processor, ProcessorFactory};
use auditcol_core::config::ConfigError;

pub mod config;
pub mod pattern;
mod processor;

pub use config::{FilterConfig, NonAudit};
pub use pattern::{EventFilter, EventPattern, PatternError, PatternSide, Verdict};
pub use processor::FilterProcessor;

/// The type name in component ids: `filter`, `filter/<name>`.
pub const TYPE_NAME: &str = "filter";

/// Builds `filter` processors.
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterProcessorFactory;

impl ProcessorFactory for FilterProcessorFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let config: FilterConfig = ctx.parse_config(config)?;
        Ok(Arc::new(
            FilterProcessor::from_config(&config, next)?.with_telemetry(&ctx.telemetry, &ctx.id),
        ))
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
        BuildContext::new(ComponentId::new(TYPE_NAME, Some("flags"))).in_pipeline("logs")
    }

    #[test]
    fn factory_rejects_invalid_patterns_with_their_path() {
        let err = FilterProcessorFactory
            .build(
                &ctx(),
                &serde_json::json!({"events": ["flag:*", "flag"]}),
                Arc::new(Nowhere),
            )
            .err()
            .unwrap();
        assert_eq!(err.path, "events[1]");
    }
}
