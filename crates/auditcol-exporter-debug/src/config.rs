//! The `debug` exporter's settings: the Collector's `verbosity` and sampling.

use auditcol_core::config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};

/// Settings of one `debug` exporter.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebugExporterConfig {
    /// How much of each batch to write.
    pub verbosity: Verbosity,
    /// Batches written in full each second before sampling starts.
    pub sampling_initial: u64,
    /// After `sampling_initial` in a second, every this-many-th batch.
    pub sampling_thereafter: u64,
}

impl Default for DebugExporterConfig {
    fn default() -> Self {
        // The Collector's defaults.
        Self {
            verbosity: Verbosity::Basic,
            sampling_initial: 2,
            sampling_thereafter: 1,
        }
    }
}

/// `verbosity`, as the Collector's debug exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verbosity {
    /// One line per batch: how many resources and records.
    #[default]
    Basic,
    /// One line per record: an audit event's Flipt JSON, or a log record's
    /// event name, body and attributes.
    Normal,
    /// Every field: one line per batch with the whole OTLP/JSON request.
    Detailed,
}

impl Validate for DebugExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.sampling_thereafter == 0 {
            return Err(ConfigError::at(
                "sampling_thereafter",
                "must be at least 1 (1 = write every batch after the first `sampling_initial`)",
            ));
        }
        Ok(())
    }
}
