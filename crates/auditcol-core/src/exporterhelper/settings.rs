//! The exporter helper's settings, with the OpenTelemetry Collector's key
//! names and defaults (one deliberate difference: `wait_for_result`).

use serde::{Deserialize, Serialize};

use crate::LogBatch;
use crate::config::{ConfigDuration, ConfigError, Validate, nested};

/// The default per-attempt `timeout`: 5s, as in the Collector.
///
/// Exporter configs use it as `#[serde(default = "default_timeout")]`,
/// because [`ConfigDuration`]'s own default is zero (= no timeout).
pub fn default_timeout() -> ConfigDuration {
    ConfigDuration::from_secs(5)
}

/// Everything the helper needs: `timeout`, `retry_on_failure` and
/// `sending_queue`.
///
/// An exporter's config cannot `#[serde(flatten)]` this struct (flatten does
/// not work with `deny_unknown_fields`), so it lists the three fields itself
/// and builds this with [`ExporterHelperSettings::from_parts`]:
///
/// ```
/// use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
/// use auditcol_core::exporterhelper::{
///     ExporterHelperSettings, QueueSettings, RetrySettings, default_timeout,
/// };
///
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct MyExporterConfig {
///     endpoint: String,
///     #[serde(default = "default_timeout")]
///     timeout: ConfigDuration,
///     #[serde(default)]
///     retry_on_failure: RetrySettings,
///     #[serde(default)]
///     sending_queue: QueueSettings,
/// }
///
/// impl MyExporterConfig {
///     fn helper_settings(&self) -> ExporterHelperSettings {
///         ExporterHelperSettings::from_parts(
///             self.timeout,
///             self.retry_on_failure.clone(),
///             self.sending_queue.clone(),
///         )
///     }
/// }
///
/// impl Validate for MyExporterConfig {
///     fn validate(&self) -> Result<(), ConfigError> {
///         // Errors come back with paths such as `retry_on_failure.multiplier`.
///         self.helper_settings().validate()
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterHelperSettings {
    /// How long one send attempt may take; 0 = no limit.
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Retrying failed sends.
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// The queue between `consume` and the sending workers.
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

impl Default for ExporterHelperSettings {
    fn default() -> Self {
        Self {
            timeout: default_timeout(),
            retry_on_failure: RetrySettings::default(),
            sending_queue: QueueSettings::default(),
        }
    }
}

impl ExporterHelperSettings {
    /// Assembles the settings from an exporter config's three fields.
    pub fn from_parts(
        timeout: ConfigDuration,
        retry_on_failure: RetrySettings,
        sending_queue: QueueSettings,
    ) -> Self {
        Self {
            timeout,
            retry_on_failure,
            sending_queue,
        }
    }
}

impl Validate for ExporterHelperSettings {
    /// Error paths are relative to the exporter: `retry_on_failure.multiplier`,
    /// `sending_queue.queue_size`, ...
    fn validate(&self) -> Result<(), ConfigError> {
        nested("retry_on_failure", self.retry_on_failure.validate())?;
        nested("sending_queue", self.sending_queue.validate())
    }
}

/// `retry_on_failure`: exponential backoff with jitter.
///
/// The n-th wait is `initial_interval * multiplier^(n-1)`, capped at
/// `max_interval`, then randomised by ± `randomization_factor`. A
/// retry-after hint from the failure replaces the computed wait.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// false: a failed send fails the batch at once.
    pub enabled: bool,
    /// The first wait.
    pub initial_interval: ConfigDuration,
    /// The longest wait (before randomisation).
    pub max_interval: ConfigDuration,
    /// Give up after retrying this long; 0 = retry forever. Unset: 300s,
    /// or forever with a persistent queue.
    pub max_elapsed_time: Option<ConfigDuration>,
    /// Factor between successive waits; at least 1.
    pub multiplier: f64,
    /// Jitter: each wait is drawn from `[w·(1-f), w·(1+f)]`; between 0 and 1.
    pub randomization_factor: f64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            enabled: true,
            initial_interval: ConfigDuration::from_secs(5),
            max_interval: ConfigDuration::from_secs(30),
            max_elapsed_time: None,
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

/// `max_elapsed_time` when unset, with an in-memory queue.
pub const DEFAULT_MAX_ELAPSED_TIME: ConfigDuration = ConfigDuration::from_secs(300);

impl RetrySettings {
    /// How long to retry before giving up (zero: forever). Unset, 300s —
    /// or forever when `persistent`: a persistent queue is there so that a
    /// long outage loses nothing.
    pub fn max_elapsed(&self, persistent: bool) -> ConfigDuration {
        match self.max_elapsed_time {
            Some(d) => d,
            None if persistent => ConfigDuration::from_secs(0),
            None => DEFAULT_MAX_ELAPSED_TIME,
        }
    }
}

impl Validate for RetrySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(ConfigError::at(
                "multiplier",
                format!(
                    "must be at least 1 (got {}): waits must not shrink between retries",
                    self.multiplier
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            return Err(ConfigError::at(
                "randomization_factor",
                format!(
                    "must be between 0 and 1 (got {})",
                    self.randomization_factor
                ),
            ));
        }
        if self.initial_interval > self.max_interval {
            return Err(ConfigError::at(
                "initial_interval",
                format!(
                    "{} is longer than max_interval ({}): raise max_interval or lower initial_interval",
                    self.initial_interval, self.max_interval
                ),
            ));
        }
        Ok(())
    }
}

/// How the sending queue measures its fill level against `queue_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Sizer {
    /// Batches (requests), whatever their size.
    #[default]
    Requests,
    /// Log records.
    Items,
    /// Bytes of the OTLP/protobuf encoding.
    Bytes,
}

impl Sizer {
    /// The size of `batch` in this sizer's unit.
    pub fn size_of(self, batch: &LogBatch) -> usize {
        match self {
            Self::Requests => 1,
            Self::Items => batch.len(),
            Self::Bytes => batch.encoded_len(),
        }
    }

    /// The unit's name as written in the config.
    pub fn name(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Items => "items",
            Self::Bytes => "bytes",
        }
    }
}

/// `sending_queue`: a bounded queue drained by `num_consumers` workers.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// false: `consume` sends inline, with retries, before it returns.
    pub enabled: bool,
    /// Number of concurrent sending workers.
    pub num_consumers: usize,
    /// Capacity, in the unit of `sizer`.
    pub queue_size: usize,
    /// What `queue_size` counts.
    pub sizer: Sizer,
    /// true: `consume` returns only once the batch is exported. false: it
    /// returns once the batch is queued. Unset: true with an in-memory queue
    /// (it does not survive a crash), false with a persistent one (queued
    /// means fsynced).
    pub wait_for_result: Option<bool>,
    /// A directory for a persistent queue; each exporter keeps its own
    /// namespace in it.
    pub storage: Option<String>,
    /// A persistent queue's bound on disk, in MiB.
    pub max_size_mib: Option<u64>,
    /// What a push into a full queue does.
    pub when_full: WhenFull,
}

/// `max_size_mib` when unset.
pub const DEFAULT_MAX_SIZE_MIB: u64 = 1024;

/// `sending_queue.when_full`: what happens to a batch that finds the queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait for room, holding the caller (and so the client): backpressure
    /// travels upstream as latency. Ends with a retryable refusal at shutdown.
    #[default]
    Block,
    /// Refuse at once with a retryable backpressure error (HTTP 503 /
    /// gRPC UNAVAILABLE with a retry-after): the client retries.
    Reject,
}

impl QueueSettings {
    /// Whether callers wait for the export (see `wait_for_result`).
    pub fn waits_for_result(&self) -> bool {
        self.wait_for_result.unwrap_or(self.storage.is_none())
    }

    /// A persistent queue's bound on disk, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_size_mib.unwrap_or(DEFAULT_MAX_SIZE_MIB) << 20
    }
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            num_consumers: 10,
            queue_size: 1000,
            sizer: Sizer::Requests,
            wait_for_result: None,
            storage: None,
            max_size_mib: None,
            when_full: WhenFull::default(),
        }
    }
}

impl Validate for QueueSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.num_consumers == 0 {
            return Err(ConfigError::at(
                "num_consumers",
                "must be at least 1: no worker would ever send the queued batches",
            ));
        }
        if self.queue_size == 0 {
            return Err(ConfigError::at(
                "queue_size",
                "must be at least 1; to send without a queue set `sending_queue.enabled: false`",
            ));
        }
        match (&self.storage, self.max_size_mib) {
            (Some(storage), _) if storage.trim().is_empty() => {
                return Err(ConfigError::at(
                    "storage",
                    "is empty (an unset ${env:…}?): give a directory, or remove the key for an in-memory queue",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::at(
                    "max_size_mib",
                    "bounds a persistent queue on disk: set `storage` too, or remove the key",
                ));
            }
            (Some(_), Some(0)) => {
                return Err(ConfigError::at("max_size_mib", "must be at least 1"));
            }
            _ => {}
        }
        if self.storage.is_some() && !self.enabled {
            return Err(ConfigError::at(
                "storage",
                "needs the queue: `enabled: false` sends without one",
            ));
        }
        Ok(())
    }
}
