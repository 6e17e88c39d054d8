//! The `file` exporter's settings.

use auditcol_core::config::{ConfigDuration, ConfigError, Validate};
use auditcol_core::exporterhelper::{
    ExporterHelperSettings, QueueSettings, RetrySettings, default_timeout,
};
use serde::Deserialize;

/// The value of `path` that means standard output (as does no `path`).
pub const STDOUT: &str = "-";

/// Settings of one `file` exporter.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
        self.helper_settings().validate()
    }
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    fn unknown_keys_are_rejected() {
        let err = parse(serde_json::json!({"compression": "zstd"})).unwrap_err();
        assert!(
            err.message.contains("unknown field `compression`"),
            "{}",
            err.message
        );
    }
}
