//! The `debug` exporter: what reaches the end of a pipeline, written to the
//! collector's own log — the Collector's `debug` exporter, with its
//! `verbosity` levels and sampling, so the habit of adding it to a pipeline
//! to see what flows carries over.
//!
//! ```yaml
//! exporters:
//!   debug:
//!     verbosity: normal        # basic (default) | normal | detailed
//! ```
//!
//! Every line it writes is one log line whatever a record holds: text from
//! records is JSON-escaped (newlines, control characters and ANSI escapes
//! included), so no input can forge a log line.

use std::sync::Arc;

use auditcol_core::component::{BuildContext, Exporter, ExporterFactory};
use auditcol_core::config::ConfigError;

pub mod config;
mod exporter;

pub use config::{DebugExporterConfig, Verbosity};
pub use exporter::DebugExporter;

/// The type name in component ids: `debug`, `debug/<name>`.
pub const TYPE_NAME: &str = "debug";

/// Builds `debug` exporters.
#[derive(Debug, Clone, Copy, Default)]
pub struct DebugExporterFactory;

impl ExporterFactory for DebugExporterFactory {
    fn type_name(&self) -> &'static str {
        TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Exporter>, ConfigError> {
        let config: DebugExporterConfig = ctx.parse_config(config)?;
        Ok(Arc::new(DebugExporter::new(ctx.id.to_string(), &config)))
    }
}
