//! The `memory_limiter` settings: the Collector's keys and rules.

use std::time::Duration;

use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
use auditcol_core::memorylimiter::Limits;
use serde::{Deserialize, Serialize};

const MIB: u64 = 1 << 20;

/// The settings of a `memory_limiter` processor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// How often the process's memory is read (required, > 0).
    pub check_interval: ConfigDuration,
    /// The hard limit in MiB; exclusive with `limit_percentage`.
    pub limit_mib: u64,
    /// Hard minus soft limit in MiB; default 20% of `limit_mib`.
    pub spike_limit_mib: u64,
    /// The hard limit in percent of the memory available (the cgroup's
    /// limit if any, else the machine's).
    pub limit_percentage: u64,
    /// Hard minus soft limit in percent of the memory available; default
    /// 20% of the limit.
    pub spike_limit_percentage: u64,
}

impl Validate for MemoryLimiterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.check_interval.0 == Duration::ZERO {
            return Err(ConfigError::at(
                "check_interval",
                "must be greater than zero (e.g. `1s`)",
            ));
        }
        match (self.limit_mib, self.limit_percentage) {
            (0, 0) => {
                return Err(ConfigError::at(
                    "limit_mib",
                    "set `limit_mib` or `limit_percentage` to a value greater than zero",
                ));
            }
            (mib, pct) if mib > 0 && pct > 0 => {
                return Err(ConfigError::at(
                    "limit_percentage",
                    "`limit_mib` and `limit_percentage` are exclusive: set one of them",
                ));
            }
            _ => {}
        }
        if self.limit_mib > 0 {
            if self.spike_limit_percentage > 0 {
                return Err(ConfigError::at(
                    "spike_limit_percentage",
                    "goes with `limit_percentage`; with `limit_mib` use `spike_limit_mib`",
                ));
            }
            if self.spike_limit_mib >= self.limit_mib {
                return Err(ConfigError::at(
                    "spike_limit_mib",
                    format!(
                        "must be less than limit_mib ({}): the soft limit is limit_mib - spike_limit_mib",
                        self.limit_mib
                    ),
                ));
            }
        } else {
            if self.spike_limit_mib > 0 {
                return Err(ConfigError::at(
                    "spike_limit_mib",
                    "goes with `limit_mib`; with `limit_percentage` use `spike_limit_percentage`",
                ));
            }
            for (key, value) in [
                ("limit_percentage", self.limit_percentage),
                ("spike_limit_percentage", self.spike_limit_percentage),
            ] {
                if value > 100 {
                    return Err(ConfigError::at(key, "must be between 0 and 100"));
                }
            }
            if self.spike_limit_percentage >= self.limit_percentage {
                return Err(ConfigError::at(
                    "spike_limit_percentage",
                    format!(
                        "must be less than limit_percentage ({})",
                        self.limit_percentage
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl MemoryLimiterConfig {
    /// The limits in bytes; `total` is the memory available (for the
    /// percentages). A spike limit left at 0 is 20% of the limit, as in
    /// the Collector.
    pub fn limits(&self, total: Option<u64>) -> Result<Limits, ConfigError> {
        let (hard, spike) = if self.limit_mib > 0 {
            (self.limit_mib * MIB, self.spike_limit_mib * MIB)
        } else {
            let total = total.ok_or_else(|| {
                ConfigError::at(
                    "limit_percentage",
                    "the memory available cannot be read (no cgroup limit, no /proc/meminfo): use limit_mib",
                )
            })?;
            (
                total / 100 * self.limit_percentage,
                total / 100 * self.spike_limit_percentage,
            )
        };
        let spike = if spike == 0 { hard / 5 } else { spike };
        Ok(Limits {
            hard,
            soft: hard - spike,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: serde_json::Value) -> Result<MemoryLimiterConfig, ConfigError> {
        auditcol_core::config::parse_component_config(&yaml)
    }

    #[test]
    fn spike_defaults_to_a_fifth_of_the_limit() {
        let config = parse(serde_json::json!({"check_interval": "1s", "limit_mib": 200})).unwrap();
        assert_eq!(
            config.limits(None).unwrap(),
            Limits {
                hard: 200 * MIB,
                soft: 160 * MIB
            }
        );
    }

    #[test]
    fn percentages_are_of_the_memory_available() {
        let config = parse(serde_json::json!({
            "check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 10
        }))
        .unwrap();
        let total = 1000 * MIB;
        assert_eq!(
            config.limits(Some(total)).unwrap(),
            Limits {
                hard: total / 100 * 50,
                soft: total / 100 * 40
            }
        );
    }

    #[test]
    fn invalid_settings_name_their_key() {
        let cases = [
            (serde_json::json!({"limit_mib": 100}), "check_interval"),
            (
                serde_json::json!({"check_interval": "0s", "limit_mib": 100}),
                "check_interval",
            ),
            (serde_json::json!({"check_interval": "1s"}), "limit_mib"),
            (
                serde_json::json!({"check_interval": "1s", "limit_mib": 100, "limit_percentage": 50}),
                "limit_percentage",
            ),
            (
                serde_json::json!({"check_interval": "1s", "limit_mib": 100, "spike_limit_mib": 100}),
                "spike_limit_mib",
            ),
            (
                serde_json::json!({"check_interval": "1s", "limit_mib": 100, "spike_limit_percentage": 10}),
                "spike_limit_percentage",
            ),
            (
                serde_json::json!({"check_interval": "1s", "limit_percentage": 101}),
                "limit_percentage",
            ),
            (
                serde_json::json!({"check_interval": "1s", "limit_percentage": 50, "spike_limit_percentage": 50}),
                "spike_limit_percentage",
            ),
            (
                serde_json::json!({"check_interval": "1s", "limit_percentage": 50, "spike_limit_mib": 10}),
                "spike_limit_mib",
            ),
            (
                serde_json::json!({"check_interval": "1s", "limit_mib": 100, "ballast_size_mib": 10}),
                "",
            ),
        ];
        for (yaml, key) in cases {
            let error = parse(yaml.clone()).unwrap_err();
            if key.is_empty() {
                assert!(error.message.contains("ballast_size_mib"), "{error:?}");
            } else {
                assert_eq!(error.path, key, "{yaml}: {error:?}");
            }
        }
    }
}
