//! The `memory_limiter` processor: the OpenTelemetry Collector's, with its
//! keys, plus admission of requests by the receivers before they decode.
//!
//! ```yaml
//! processors:
//!   memory_limiter:
//!     check_interval: 1s
//!     limit_mib: 200          # hard limit; or limit_percentage
//!     spike_limit_mib: 40     # soft = hard - spike; default 20% of the limit
//! ```
//!
//! The state is an [`auditcol_core::memorylimiter::MemoryLimiter`], one per
//! processor id in a service (the instances of one id in several pipelines
//! share it). The receivers of the pipelines that list it ask it before
//! they read a request, and account the request's decoded size until the
//! pipeline answers (see that module). The processor itself refuses
//! batches with backpressure while the measured memory is over the soft
//! limit, as the Collector's does, so data from any receiver is held back.
//! Refusing happens before acknowledgement: a refused client retries.

use std::sync::Arc;

use async_trait::async_trait;
use auditcol_core::component::{BuildContext, Processor, ProcessorFactory};
use auditcol_core::config::ConfigError;
use auditcol_core::memorylimiter::{MemoryLimiter, total_memory};
use auditcol_core::{Component, LogBatch, LogsConsumer, PipelineError, SharedConsumer};

pub mod config;

pub use config::MemoryLimiterConfig;

/// The type name in component ids: `memory_limiter`, `memory_limiter/<name>`.
pub const TYPE_NAME: &str = "memory_limiter";

/// Builds `memory_limiter` processors.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryLimiterProcessorFactory;

impl ProcessorFactory for MemoryLimiterProcessorFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
        next: SharedConsumer,
    ) -> Result<Arc<dyn Processor>, ConfigError> {
        let config: MemoryLimiterConfig = ctx.parse_config(config)?;
        let limits = config.limits(total_memory())?;
        let limiter = ctx.host.memory_limiter(&ctx.id, || {
            MemoryLimiter::new(limits, config.check_interval.0)
        });
        Ok(Arc::new(MemoryLimiterProcessor { limiter, next }))
    }
}

/// Hands batches on while the measured memory is under the soft limit.
pub struct MemoryLimiterProcessor {
    limiter: MemoryLimiter,
    next: SharedConsumer,
}

impl MemoryLimiterProcessor {
    /// A processor judging by `limiter`, handing on to `next`.
    pub fn new(limiter: MemoryLimiter, next: SharedConsumer) -> Self {
        Self { limiter, next }
    }
}

impl Component for MemoryLimiterProcessor {}

#[async_trait]
impl LogsConsumer for MemoryLimiterProcessor {
    async fn consume(&self, batch: LogBatch) -> Result<(), PipelineError> {
        self.limiter.check_measured()?;
        self.next.consume(batch).await
    }
}

impl Processor for MemoryLimiterProcessor {}

#[cfg(test)]
mod tests;
