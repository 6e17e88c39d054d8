//! The `file` exporter's settings.

use auditcol_core::config::{ConfigDuration, ConfigError, Validate, nested};
use auditcol_core::exporterhelper::{
    ExporterHelperSettings, QueueSettings, RetrySettings, default_timeout,
};
use serde::{Deserialize, Serialize};

/// The value of `path` that means standard output (as does no `path`).
pub const STDOUT: &str = "-";

/// Settings of one `file` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileExporterConfig {
    /// The file to append to; absent or `-` = standard output. Missing
    /// parent directories are created at start.
    #[serde(default)]
    pub path: Option<String>,
    /// How each event is written.
    #[serde(default)]
    pub format: Format,
    /// Rotate the file by size; absent = never rotate.
    #[serde(default)]
    pub rotation: Option<RotationSettings>,
    /// fsync after each batch, before it is acknowledged.
    #[serde(default)]
    pub sync: bool,
    /// A tamper-evident trail: a hash chain over the lines with signed
    /// checkpoints in a sidecar file; absent = none.
    #[serde(default)]
    pub integrity: Option<IntegritySettings>,
    /// Per-attempt write timeout (exporter helper).
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    /// Retries of failed writes (exporter helper).
    #[serde(default)]
    pub retry_on_failure: RetrySettings,
    /// The queue in front of the writer (exporter helper).
    #[serde(default)]
    pub sending_queue: QueueSettings,
}

impl Default for FileExporterConfig {
    fn default() -> Self {
        Self {
            path: None,
            format: Format::default(),
            rotation: None,
            sync: false,
            integrity: None,
            timeout: default_timeout(),
            retry_on_failure: RetrySettings::default(),
            sending_queue: QueueSettings::default(),
        }
    }
}

impl FileExporterConfig {
    /// The file path, or `None` for standard output.
    pub fn file_path(&self) -> Option<&str> {
        self.path.as_deref().filter(|p| *p != STDOUT)
    }

    /// The exporter helper's part of the settings.
    pub fn helper_settings(&self) -> ExporterHelperSettings {
        ExporterHelperSettings::from_parts(
            self.timeout,
            self.retry_on_failure.clone(),
            self.sending_queue.clone(),
        )
    }
}

impl Validate for FileExporterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(ConfigError::at(
                "path",
                "must not be empty: give a file path, or `-` (or no `path`) for standard output",
            ));
        }
        if let Some(rotation) = &self.rotation {
            if self.file_path().is_none() {
                return Err(ConfigError::at(
                    "rotation",
                    "standard output cannot be rotated: set `path` to a file or remove `rotation`",
                ));
            }
            if rotation.max_megabytes == 0 {
                return Err(ConfigError::at(
                    "rotation.max_megabytes",
                    "must be at least 1",
                ));
            }
        }
        if let Some(integrity) = &self.integrity {
            if self.file_path().is_none() {
                return Err(ConfigError::at(
                    "integrity",
                    "needs `path`: the trail's checkpoints live in a file beside the output file, which standard output does not have",
                ));
            }
            nested("integrity", integrity.validate())?;
        }
        self.helper_settings().validate()
    }
}

/// `integrity`: the hash chain and its signed checkpoints (see
/// `auditcol_integrity` and ARCHITECTURE.md, "The integrity trail").
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntegritySettings {
    /// An Ed25519 private key, PKCS#8 PEM (`auditcol keygen`); read at start.
    #[serde(default)]
    pub signing_key_file: Option<String>,
    /// An HMAC-SHA256 secret instead of a key file (`${env:...}`).
    #[serde(default)]
    pub hmac_key: Option<Secret>,
    /// How often lines not yet covered get a checkpoint (without `sync`).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: ConfigDuration,
}

/// The shortest `hmac_key` accepted, in bytes.
pub const MIN_HMAC_KEY_BYTES: usize = 16;

fn default_checkpoint_interval() -> ConfigDuration {
    ConfigDuration::from_secs(1)
}

impl Validate for IntegritySettings {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.signing_key_file, &self.hmac_key) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::at(
                    "",
                    "set one of `signing_key_file` and `hmac_key`, not both",
                ));
            }
            (None, None) => {
                return Err(ConfigError::at(
                    "",
                    "needs `signing_key_file` (an Ed25519 key from `auditcol keygen --out DIR`) or `hmac_key`",
                ));
            }
            (Some(file), None) if file.trim().is_empty() => {
                return Err(ConfigError::at("signing_key_file", "must not be empty"));
            }
            (None, Some(key)) if key.expose().len() < MIN_HMAC_KEY_BYTES => {
                return Err(ConfigError::at(
                    "hmac_key",
                    format!(
                        "must be at least {MIN_HMAC_KEY_BYTES} bytes (e.g. `openssl rand -hex 32`); is the environment variable set?"
                    ),
                ));
            }
            _ => {}
        }
        if self.checkpoint_interval.0.is_zero() {
            return Err(ConfigError::at(
                "checkpoint_interval",
                "must be more than 0 (e.g. `1s`)",
            ));
        }
        Ok(())
    }
}

/// A secret setting: deserialised as a string, never printed.
pub use auditcol_core::config::Secret;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One Flipt v0.2 audit event per line, as JSON. Records that are not
    /// audit events are skipped (use `otlp_json` to keep them).
    #[default]
    Json,
    /// One human-readable line per record.
    Console,
    /// One OTLP/JSON `ExportLogsServiceRequest` per line per batch: every
    /// record, every attribute.
    OtlpJson,
}

/// `rotation`: size-based rotation, as the Collector's file exporter.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RotationSettings {
    /// Rotate before the file would grow past this many MiB.
    pub max_megabytes: u64,
    /// Rotated files to keep, oldest deleted first; 0 = keep all.
    pub max_backups: usize,
}

impl Default for RotationSettings {
    fn default() -> Self {
        Self {
            max_megabytes: 100,
            max_backups: 100,
        }
    }
}

impl RotationSettings {
    /// The size limit in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_megabytes.saturating_mul(1024 * 1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;

    fn parse(json: serde_json::Value) -> Result<FileExporterConfig, ConfigError> {
        parse_component_config(&json)
    }

    #[test]
    fn empty_config_writes_json_to_stdout() {
        let config = parse(serde_json::json!(null)).unwrap();
        assert_eq!(config, FileExporterConfig::default());
        assert_eq!(config.file_path(), None);
        assert_eq!(config.format, Format::Json);
        assert_eq!(config.timeout, ConfigDuration::from_secs(5));
    }

    #[test]
    fn dash_means_stdout() {
        let config = parse(serde_json::json!({"path": "-"})).unwrap();
        assert_eq!(config.file_path(), None);
    }

    #[test]
    fn unknown_format_names_the_allowed_ones() {
        let err = parse(serde_json::json!({"format": "xml"})).unwrap_err();
        assert_eq!(err.path, "format");
        assert!(
            err.message.contains("`json`, `console`, `otlp_json`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn rotation_of_stdout_is_rejected() {
        let err = parse(serde_json::json!({"path": "-", "rotation": {}})).unwrap_err();
        assert_eq!(err.path, "rotation");
        assert!(err.message.contains("cannot be rotated"), "{}", err.message);
        let err = parse(serde_json::json!({"rotation": {"max_backups": 3}})).unwrap_err();
        assert_eq!(err.path, "rotation");
    }

    #[test]
    fn rotation_defaults_to_100_megabytes_and_100_backups() {
        let config = parse(serde_json::json!({"path": "a.jsonl", "rotation": {}})).unwrap();
        assert_eq!(config.rotation, Some(RotationSettings::default()));
        assert_eq!(config.rotation.unwrap().max_bytes(), 100 * 1024 * 1024);
    }

    #[test]
    fn zero_megabytes_is_rejected() {
        let json = serde_json::json!({"path": "a.jsonl", "rotation": {"max_megabytes": 0}});
        assert_eq!(parse(json).unwrap_err().path, "rotation.max_megabytes");
    }

    #[test]
    fn empty_path_is_rejected() {
        assert_eq!(
            parse(serde_json::json!({"path": ""})).unwrap_err().path,
            "path"
        );
    }

    #[test]
    fn helper_settings_are_validated_with_their_path() {
        let json = serde_json::json!({"sending_queue": {"max_size_mib": 5}});
        assert_eq!(parse(json).unwrap_err().path, "sending_queue.max_size_mib");
        let json = serde_json::json!({"retry_on_failure": {"multiplier": 0}});
        assert_eq!(parse(json).unwrap_err().path, "retry_on_failure.multiplier");
    }

    #[test]
    fn integrity_takes_a_key_file_and_defaults_to_a_checkpoint_a_second() {
        let config = parse(
            serde_json::json!({"path": "a.jsonl", "integrity": {"signing_key_file": "k.pem"}}),
        )
        .unwrap();
        let integrity = config.integrity.unwrap();
        assert_eq!(integrity.signing_key_file.as_deref(), Some("k.pem"));
        assert_eq!(integrity.checkpoint_interval, ConfigDuration::from_secs(1));
    }

    #[test]
    fn integrity_errors_name_their_key() {
        let cases = [
            (
                serde_json::json!({"integrity": {"signing_key_file": "k.pem"}}),
                "integrity",
                "needs `path`",
            ),
            (
                serde_json::json!({"path": "-", "integrity": {"signing_key_file": "k.pem"}}),
                "integrity",
                "needs `path`",
            ),
            (
                serde_json::json!({"path": "a", "integrity": {}}),
                "integrity",
                "needs `signing_key_file`",
            ),
            (
                serde_json::json!({"path": "a", "integrity": {"signing_key_file": "k", "hmac_key": "0123456789abcdef"}}),
                "integrity",
                "not both",
            ),
            (
                serde_json::json!({"path": "a", "integrity": {"signing_key_file": " "}}),
                "integrity.signing_key_file",
                "empty",
            ),
            (
                serde_json::json!({"path": "a", "integrity": {"hmac_key": "short"}}),
                "integrity.hmac_key",
                "at least 16 bytes",
            ),
            (
                serde_json::json!({"path": "a", "integrity": {"hmac_key": "0123456789abcdef", "checkpoint_interval": "0"}}),
                "integrity.checkpoint_interval",
                "more than 0",
            ),
            (
                serde_json::json!({"path": "a", "integrity": {"hmac_key": "0123456789abcdef", "every": "1s"}}),
                "integrity.every",
                "unknown field `every`",
            ),
        ];
        for (json, path, message) in cases {
            let err = parse(json.clone()).unwrap_err();
            assert_eq!(err.path, path, "{json}: {err}");
            assert!(err.message.contains(message), "{json}: {err}");
        }
    }

    #[test]
    fn the_hmac_key_is_never_printed() {
        let config = parse(
            serde_json::json!({"path": "a", "integrity": {"hmac_key": "0123456789abcdef-secret"}}),
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("secret"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse(serde_json::json!({"compression": "zstd"})).unwrap_err();
        assert!(
            err.message.contains("unknown field `compression`"),
            "{}",
            err.message
        );
    }
}
