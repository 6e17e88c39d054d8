//! Settings of the `batch` processor: the Collector's names and defaults.

use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
use serde::{Deserialize, Serialize};

/// `processors: { batch/<name>: { send_batch_size, send_batch_max_size, timeout } }`.
///
/// The Collector's `metadata_keys` and `metadata_cardinality_limit` are not
/// supported; like any unknown key they are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Records pending after which a batch is sent regardless of `timeout`.
    /// A trigger, not a limit: a flush may hold more (see `send_batch_max_size`).
    #[serde(default = "default_send_batch_size")]
    pub send_batch_size: usize,
    /// Largest batch sent downstream; bigger flushes go out in pieces.
    /// 0 = no limit.
    #[serde(default)]
    pub send_batch_max_size: usize,
    /// Time after the first pending record at which a batch is sent
    /// regardless of size. 0 = send every batch immediately, ignoring
    /// `send_batch_size` (only `send_batch_max_size` still applies).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Send pending records at once when no batch of this processor is being
    /// exported (group commit). Callers are held until their batch is
    /// exported, so waiting for size or timeout while nothing is in flight
    /// only adds latency; under load, batches still grow while earlier ones
    /// are exported. `false` = the Collector's strict size-or-timeout rule.
    #[serde(default = "default_flush_when_idle")]
    pub flush_when_idle: bool,
}

/// The Collector's default `send_batch_size`.
pub const DEFAULT_SEND_BATCH_SIZE: usize = 8192;

/// The Collector's default `timeout`.
pub const DEFAULT_TIMEOUT: ConfigDuration = ConfigDuration::from_millis(200);

fn default_send_batch_size() -> usize {
    DEFAULT_SEND_BATCH_SIZE
}

fn default_timeout() -> ConfigDuration {
    DEFAULT_TIMEOUT
}

fn default_flush_when_idle() -> bool {
    true
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            send_batch_size: DEFAULT_SEND_BATCH_SIZE,
            send_batch_max_size: 0,
            timeout: DEFAULT_TIMEOUT,
            flush_when_idle: true,
        }
    }
}

impl Validate for BatchConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.send_batch_size == 0 {
            return Err(ConfigError::at(
                "send_batch_size",
                "must be at least 1; to send every batch immediately, set `timeout: 0`",
            ));
        }
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(ConfigError::at(
                "send_batch_max_size",
                format!(
                    "{} is smaller than send_batch_size ({}): set it to 0 (no limit) or to at least send_batch_size",
                    self.send_batch_max_size, self.send_batch_size
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;
    use serde_json::json;

    fn parse(raw: serde_json::Value) -> Result<BatchConfig, ConfigError> {
        parse_component_config(&raw)
    }

    #[test]
    fn defaults_are_the_collectors() {
        let config = parse(serde_json::Value::Null).unwrap();
        assert_eq!(config, BatchConfig::default());
        assert_eq!(config.send_batch_size, 8192);
        assert_eq!(config.send_batch_max_size, 0);
        assert_eq!(config.timeout, ConfigDuration::from_millis(200));
        assert!(config.flush_when_idle);
    }

    #[test]
    fn all_settings_parse() {
        let config = parse(json!({
            "send_batch_size": 100,
            "send_batch_max_size": 100,
            "timeout": "1s",
            "flush_when_idle": false,
        }))
        .unwrap();
        assert_eq!(
            config,
            BatchConfig {
                send_batch_size: 100,
                send_batch_max_size: 100,
                timeout: ConfigDuration::from_secs(1),
                flush_when_idle: false,
            }
        );
        assert_eq!(
            parse(json!({"timeout": "0"})).unwrap().timeout.0.as_nanos(),
            0
        );
    }

    #[test]
    fn max_size_below_size_is_an_error() {
        let err = parse(json!({"send_batch_size": 100, "send_batch_max_size": 50})).unwrap_err();
        assert_eq!(err.path, "send_batch_max_size");
        assert!(
            err.message
                .contains("50 is smaller than send_batch_size (100)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn zero_size_is_an_error() {
        let err = parse(json!({"send_batch_size": 0})).unwrap_err();
        assert_eq!(err.path, "send_batch_size");
        assert!(err.message.contains("timeout: 0"), "{}", err.message);
    }

    #[test]
    fn unsupported_collector_keys_are_rejected() {
        for key in [
            "metadata_keys",
            "metadata_cardinality_limit",
            "send_batch_sise",
        ] {
            let err = parse(json!({ key: [] })).unwrap_err();
            assert!(
                err.message.contains(&format!("unknown field `{key}`")),
                "{key}: {}",
                err.message
            );
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse(json!({"timeout": "soon"})).unwrap_err();
        assert_eq!(err.path, "timeout");
        let err = parse(json!({"send_batch_size": -1})).unwrap_err();
        assert_eq!(err.path, "send_batch_size");
    }
}
