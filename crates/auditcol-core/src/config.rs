//! The collector config: YAML in the OpenTelemetry Collector's shape.
//!
//! ```yaml
//! receivers:  { otlp: { protocols: { grpc: {}, http: {} } } }
//! processors: { filter/flags: { events: ["flag:*"] }, batch: {} }
//! exporters:  { file: { path: /var/log/audit.jsonl } }
//! service:
//!   pipelines:
//!     logs: { receivers: [otlp], processors: [filter/flags, batch], exporters: [file] }
//! ```
//!
//! `${env:NAME}` and `${env:NAME:-default}` are substituted in every string
//! value (`$$` is a literal `$`); a value that is exactly one reference takes
//! the type of what it expands to (`queue_size: ${env:QS}` is a number).
//! Unknown keys are errors; every error names the component id and the key
//! path.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// An error in one component's settings: the key path inside the component
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path inside the component, e.g. `protocols.grpc.endpoint`; empty for the whole component.
    pub path: String,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl ConfigError {
    /// An error at key path `path`.
    pub fn at(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A secret setting (a token, a password, a key): read as a string, never
/// printed — its `Debug` is `***`, and it has no `Display` — so a config
/// struct that derives `Debug` cannot leak it into a log or `validate`'s
/// output. Use [`Secret::expose`] only where the value is needed.
///
/// ```
/// use auditcol_core::config::Secret;
///
/// let token: Secret = serde_json::from_value(serde_json::json!("s3cr3t")).unwrap();
/// assert_eq!(format!("{token:?}"), "***");
/// assert_eq!(token.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True for an empty value (most often an unset `${env:…}`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Serialised masked (`[REDACTED]`, or empty when empty): the only
/// serialisation of settings is for showing them (`auditcol print-config`).
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { REDACTED })
    }
}

/// Checks of a component's settings beyond what their types say.
pub trait Validate {
    /// Returns the first invalid setting, with its key path.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Deserialises a component's raw settings (`null` = all defaults) into its
/// config struct and validates it. Errors carry the key path.
pub fn parse_component_config<T: DeserializeOwned + Validate>(
    raw: &Value,
) -> Result<T, ConfigError> {
    let raw = if raw.is_null() {
        Value::Object(Default::default())
    } else {
        raw.clone()
    };
    let config: T = serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::at(
            if path == "." { String::new() } else { path },
            e.into_inner().to_string(),
        )
    })?;
    config.validate()?;
    Ok(config)
}

/// What a masked secret shows, as in the Collector's `print-config`.
pub const REDACTED: &str = "[REDACTED]";

/// Masks the secrets in a config tree, for output meant to be shown or
/// shared (`auditcol print-config`): every value under a key that names a
/// secret (`signing_secret`, `password`, `token`, `hash_key`,
/// `sasl.password`, an `htpasswd` given inline…) and every value of a
/// `headers` map (they carry API keys and `Authorization`, so all are
/// opaque, as in the Collector) becomes `[REDACTED]`, and so does the
/// password in a URL's `user:password@`. File names (`*_file`, `file`,
/// `*.location`) are not secrets and stay. Component ids are not keys of
/// settings: `bearertokenauth/in` is a name, not a token.
pub fn mask_secrets(config: &mut Value) {
    let Value::Object(sections) = config else {
        return mask_settings(config);
    };
    for (name, section) in sections.iter_mut() {
        match section {
            Value::Object(components)
                if ["receivers", "processors", "exporters", "extensions"]
                    .contains(&name.as_str()) =>
            {
                components.values_mut().for_each(mask_settings);
            }
            other => mask_settings(other),
        }
    }
}

/// [`mask_secrets`] for one component's settings.
fn mask_settings(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if key == "headers" {
                    if let Value::Object(headers) = item {
                        headers.values_mut().for_each(redact);
                    }
                } else if names_secret(key) {
                    redact(item);
                } else {
                    mask_settings(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_settings),
        Value::String(text) => {
            if let Some(masked) = mask_url_password(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

/// Whether a config key names a secret (and not the file that holds one).
fn names_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let names_file = key == "file"
        || key == "filename"
        || [
            "_file",
            "_files",
            "_env",
            "_path",
            ".location",
            "_header",
            "_id",
        ]
        .iter()
        .any(|end| key.ends_with(end));
    !names_file
        && [
            "secret",
            "password",
            "passwd",
            "token",
            "api_key",
            "apikey",
            "api-key",
            "authorization",
            "credential",
            "cookie",
            "private",
            "hash_key",
            "hmac_key",
            "htpasswd",
            "inline",
            "key.pem",
        ]
        .iter()
        .any(|word| key.contains(word))
}

/// Every scalar in `value` becomes [`REDACTED`] (file names excepted);
/// empty and absent values stay as they are, so one can see none is set.
fn redact(value: &mut Value) {
    match value {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if !(key == "file" || key.ends_with("_file")) {
                    redact(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        other => *other = Value::String(REDACTED.into()),
    }
}

/// `scheme://user:password@host…` with the password masked; `None` when
/// the text holds no such credentials.
fn mask_url_password(text: &str) -> Option<String> {
    let scheme_end = text.find("://")? + 3;
    let rest = &text[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let colon = rest[..at].find(':')?;
    Some(format!(
        "{}{}{REDACTED}{}",
        &text[..scheme_end],
        &rest[..=colon],
        &rest[at..]
    ))
}

/// Prefixes the key path of errors from a nested settings struct.
pub fn nested<T>(prefix: &str, result: Result<T, ConfigError>) -> Result<T, ConfigError> {
    result.map_err(|e| ConfigError {
        path: if e.path.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", e.path)
        },
        message: e.message,
    })
}

/// A duration written as in Go and the Collector: `200ms`, `5s`, `1m30s`,
/// `1.5h`; units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`; `0` alone is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    /// From milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Self(Duration::from_millis(ms))
    }

    /// From seconds.
    pub const fn from_secs(s: u64) -> Self {
        Self(Duration::from_secs(s))
    }

    /// Parses the Go duration syntax.
    pub fn parse(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "invalid duration `{text}`: write a number and a unit, e.g. `200ms`, `5s`, `1m30s`"
            )
        };
        let s = text.trim();
        if s == "0" {
            return Ok(Self(Duration::ZERO));
        }
        if s.is_empty() {
            return Err(invalid());
        }
        let mut total = 0f64;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(invalid());
            }
            let number: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let nanos_per = match &rest[..unit_len] {
                "ns" => 1.0,
                "us" | "µs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err(invalid()),
                unit => {
                    return Err(format!(
                        "invalid duration `{text}`: unknown unit `{unit}` (use ns, us, ms, s, m or h)"
                    ));
                }
            };
            total += number * nanos_per;
            rest = &rest[unit_len..];
        }
        if !total.is_finite() || total > u64::MAX as f64 {
            return Err(format!("invalid duration `{text}`: too large"));
        }
        Ok(Self(Duration::from_nanos(total.round() as u64)))
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        let (value, unit) = if nanos == 0 {
            return f.write_str("0s");
        } else if nanos.is_multiple_of(3_600_000_000_000) {
            (nanos / 3_600_000_000_000, "h")
        } else if nanos.is_multiple_of(60_000_000_000) {
            (nanos / 60_000_000_000, "m")
        } else if nanos.is_multiple_of(1_000_000_000) {
            (nanos / 1_000_000_000, "s")
        } else if nanos.is_multiple_of(1_000_000) {
            (nanos / 1_000_000, "ms")
        } else if nanos.is_multiple_of(1_000) {
            (nanos / 1_000, "us")
        } else {
            (nanos, "ns")
        };
        write!(f, "{value}{unit}")
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a duration string such as `200ms` or `5s`")
        })?;
        ConfigDuration::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The whole collector config, component settings still raw.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Receivers by id.
    #[serde(default)]
    pub receivers: BTreeMap<String, Value>,
    /// Processors by id.
    #[serde(default)]
    pub processors: BTreeMap<String, Value>,
    /// Exporters by id.
    #[serde(default)]
    pub exporters: BTreeMap<String, Value>,
    /// Extensions by id (authenticators, the health check); they run only
    /// when listed in `service.extensions`.
    #[serde(default)]
    pub extensions: BTreeMap<String, Value>,
    /// The pipelines.
    pub service: ServiceConfig,
}

/// The `service` section.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Pipelines by id: `logs` or `logs/<name>`.
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// The extensions that run, by id.
    #[serde(default)]
    pub extensions: Vec<String>,
    /// The collector's own telemetry.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

/// `service.telemetry`: what the collector tells about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's log lines (on stderr).
    pub logs: LogsConfig,
    /// `service.telemetry.metrics`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
}

/// The Collector's default metrics address, on loopback.
pub const DEFAULT_METRICS_ADDRESS: &str = "127.0.0.1:8888";

/// `service.telemetry.metrics`, as the Collector's `address` and `level`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `GET /metrics` is served: `host:port` (`:8888` for every interface).
    pub address: String,
    /// `none` (no endpoint), `basic`, `normal` (default) or `detailed`.
    pub level: crate::telemetry::MetricsLevel,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            address: DEFAULT_METRICS_ADDRESS.to_owned(),
            level: crate::telemetry::MetricsLevel::default(),
        }
    }
}

/// `service.telemetry.logs`, as in the Collector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// The least severe level written. `RUST_LOG`, when set, overrides it
    /// (and may set levels per module).
    pub level: LogLevel,
    /// `console` (readable lines) or `json` (one JSON object per line).
    pub encoding: LogEncoding,
}

/// A log level of `service.telemetry.logs.level`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    /// The level's name, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// The encoding of `service.telemetry.logs.encoding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    Json,
}

/// One pipeline: where data comes from, how it is processed, where it goes.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Receiver ids; at least one.
    pub receivers: Vec<String>,
    /// Processor ids, applied in order.
    #[serde(default)]
    pub processors: Vec<String>,
    /// Exporter ids; at least one.
    pub exporters: Vec<String>,
}

/// Why a config file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not valid YAML (the message has line and column).
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// A `${...}` reference that cannot be expanded.
    #[error("{path}: {message}")]
    Substitution { path: String, message: String },
    /// The top-level structure is wrong (unknown section, wrong type).
    #[error("{path}: {message}")]
    Structure { path: String, message: String },
    /// A component's settings are invalid.
    #[error("{section}::{id}: {error}")]
    Component {
        section: &'static str,
        id: String,
        error: ConfigError,
    },
    /// A pipeline is inconsistent (unknown component, missing receivers...).
    #[error("service::pipelines::{pipeline}: {message}")]
    Pipeline { pipeline: String, message: String },
}

impl CollectorConfig {
    /// Reads and parses a config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &|name| std::env::var(name).ok())
    }

    /// Parses config text, expanding `${env:...}` with `env`.
    pub fn from_yaml(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, LoadError> {
        Self::from_yaml_with_overrides(text, env, &[])
    }

    /// [`CollectorConfig::from_yaml`], then `overrides` (`--set`) applied
    /// over the file.
    pub fn from_yaml_with_overrides(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        overrides: &[ConfigOverride],
    ) -> Result<Self, LoadError> {
        let mut value: Value = serde_saphyr::from_str(text).map_err(|e| yaml_error(&e))?;
        if value.is_null() {
            return Err(LoadError::Structure {
                path: String::new(),
                message: "the config is empty: it needs at least `receivers`, `exporters` and `service.pipelines`".into(),
            });
        }
        substitute_env(&mut value, &mut String::new(), env)?;
        for o in overrides {
            o.apply(&mut value)?;
        }
        serde_path_to_error::deserialize(value).map_err(|e| LoadError::Structure {
            path: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    }
}

/// One `--set` of the command line, as the Collector's: a key path with
/// `::` between keys, `=`, and a YAML value
/// (`service::telemetry::metrics::address=127.0.0.1:0`). It is applied over
/// the file: maps on the way are created, the value replaces what was there.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigOverride {
    path: Vec<String>,
    value: Value,
}

impl ConfigOverride {
    /// Parses `key::key=value`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "invalid --set `{text}`: write key::key=value, e.g. --set=service::telemetry::metrics::level=none"
            )
        };
        let (path, value) = text.split_once('=').ok_or_else(usage)?;
        let path: Vec<String> = path.split("::").map(str::to_owned).collect();
        if path.iter().any(|k| k.trim().is_empty()) {
            return Err(usage());
        }
        let value = if value.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str::<Value>(value)
                .map_err(|e| format!("invalid --set `{text}`: the value is not YAML: {e}"))?
        };
        Ok(Self { path, value })
    }

    fn apply(&self, root: &mut Value) -> Result<(), LoadError> {
        let mut node = root;
        for (i, key) in self.path.iter().enumerate() {
            if node.is_null() {
                *node = Value::Object(Default::default());
            }
            let Value::Object(map) = node else {
                return Err(LoadError::Structure {
                    path: self.path[..i].join("."),
                    message: format!(
                        "--set {}: not a map, so `{key}` cannot be set in it",
                        self.path.join("::")
                    ),
                });
            };
            node = map.entry(key.clone()).or_insert(Value::Null);
        }
        *node = self.value.clone();
        Ok(())
    }
}

/// A YAML syntax error as a user reads it: what is wrong and where, without
/// the parser's advice to its own API's callers.
fn yaml_error(error: &serde_saphyr::Error) -> LoadError {
    let mut options = serde_saphyr::RenderOptions::new(&serde_saphyr::UserMessageFormatter);
    options.snippets = serde_saphyr::SnippetMode::Off;
    LoadError::Yaml(error.render_with_options(options))
}

fn substitute_env(
    value: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), LoadError> {
    match value {
        Value::String(s) if s.contains('$') => {
            let (expanded, whole) = expand(s, env).map_err(|message| LoadError::Substitution {
                path: path.clone(),
                message,
            })?;
            *value = match whole {
                // A value that is exactly one reference takes the type of what it expands to.
                true => match serde_saphyr::from_str::<Value>(&expanded) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
                    _ => Value::String(expanded),
                },
                false => Value::String(expanded),
            };
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                substitute_env(item, path, env)?;
                path.truncate(len);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                substitute_env(item, path, env)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Expands references in `text`; also says whether `text` was exactly one reference.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut references = 0;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated reference in `{text}`: expected `}}`"))?;
            let reference = &after[..end];
            let spec = reference.strip_prefix("env:").ok_or_else(|| {
                format!("unsupported reference `${{{reference}}}`: only `${{env:NAME}}` and `${{env:NAME:-default}}` are supported")
            })?;
            let (name, default) = match spec.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (spec, None),
            };
            let valid_name = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid_name {
                return Err(format!(
                    "invalid environment variable name `{name}` in `${{{reference}}}`"
                ));
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    tracing::warn!(
                        variable = name,
                        "environment variable is not set: substituting an empty string"
                    );
                }
            }
            references += 1;
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    let whole = references == 1
        && text.starts_with("${")
        && text.ends_with('}')
        && text.matches("${").count() == 1;
    Ok((out, whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("10.0.0.1".into()),
            "SIZE" => Some("42".into()),
            _ => None,
        }
    }

    const BASE: &str = "service: {pipelines: {logs: {receivers: [otlp], exporters: [file]}}}\n";

    #[test]
    fn telemetry_defaults_to_the_collectors_address_on_loopback_at_normal() {
        let cfg = CollectorConfig::from_yaml(BASE, &env).unwrap();
        let metrics = &cfg.service.telemetry.metrics;
        assert_eq!(metrics.address, "127.0.0.1:8888");
        assert_eq!(metrics.level, crate::telemetry::MetricsLevel::Normal);
        let cfg = CollectorConfig::from_yaml(
            "service:\n  telemetry: {metrics: {address: ':9999', level: none}}\n  pipelines: {logs: {receivers: [otlp], exporters: [file]}}\n",
            &env,
        )
        .unwrap();
        let metrics = &cfg.service.telemetry.metrics;
        assert_eq!(metrics.address, ":9999");
        assert_eq!(metrics.level, crate::telemetry::MetricsLevel::None);
    }

    #[test]
    fn unknown_telemetry_keys_and_levels_are_refused_with_their_path() {
        for (telemetry, path) in [
            ("{metrics: {readers: []}}", "service.telemetry.metrics"),
            (
                "{metrics: {level: verbose}}",
                "service.telemetry.metrics.level",
            ),
            ("{traces: {}}", "service.telemetry"),
        ] {
            let err = CollectorConfig::from_yaml(
                &format!("service:\n  telemetry: {telemetry}\n  pipelines: {{logs: {{receivers: [otlp], exporters: [file]}}}}\n"),
                &env,
            )
            .unwrap_err();
            assert!(err.to_string().starts_with(path), "{telemetry}: {err}");
        }
    }

    #[test]
    fn overrides_set_keys_over_the_file_creating_maps_on_the_way() {
        let overrides = [
            ConfigOverride::parse("service::telemetry::metrics::address=127.0.0.1:0").unwrap(),
            ConfigOverride::parse("receivers::otlp::protocols::grpc::max_recv_msg_size_mib=8")
                .unwrap(),
        ];
        let cfg = CollectorConfig::from_yaml_with_overrides(
            &format!("receivers: {{otlp: {{protocols: {{grpc: {{endpoint: x}}}}}}}}\n{BASE}"),
            &env,
            &overrides,
        )
        .unwrap();
        assert_eq!(cfg.service.telemetry.metrics.address, "127.0.0.1:0");
        let grpc = &cfg.receivers["otlp"]["protocols"]["grpc"];
        assert_eq!(grpc["endpoint"], "x");
        assert_eq!(grpc["max_recv_msg_size_mib"], 8);
    }

    #[test]
    fn malformed_overrides_say_how_to_write_them() {
        for bad in ["service", "=x", "service::::level=none"] {
            let err = ConfigOverride::parse(bad).unwrap_err();
            assert!(err.contains("key::key=value"), "{bad}: {err}");
        }
        let through_a_list =
            ConfigOverride::parse("service::pipelines::logs::receivers::x=1").unwrap();
        let err =
            CollectorConfig::from_yaml_with_overrides(BASE, &env, &[through_a_list]).unwrap_err();
        assert!(err.to_string().contains("not a map"), "{err}");
    }

    #[test]
    fn env_references_are_expanded() {
        let cfg = CollectorConfig::from_yaml(
            &format!("receivers:\n  otlp:\n    a: ${{env:HOST}}:4317\n    b: ${{env:MISSING:-x}}\n    c: $${{env:HOST}}\n    d: ${{env:SIZE}}\n{BASE}"),
            &env,
        )
        .unwrap();
        let otlp = &cfg.receivers["otlp"];
        assert_eq!(otlp["a"], "10.0.0.1:4317");
        assert_eq!(otlp["b"], "x");
        assert_eq!(otlp["c"], "${env:HOST}");
        assert_eq!(otlp["d"], 42);
    }

    #[test]
    fn unsupported_reference_names_the_key() {
        let err = CollectorConfig::from_yaml(
            &format!("receivers:\n  otlp:\n    a: ${{file:/x}}\n{BASE}"),
            &env,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("receivers.otlp.a: unsupported reference"),
            "{err}"
        );
    }

    #[test]
    fn unknown_top_level_key_is_an_error() {
        let err =
            CollectorConfig::from_yaml(&format!("recievers: {{}}\n{BASE}"), &env).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `recievers`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_pipeline_key_names_its_path() {
        let err = CollectorConfig::from_yaml(
            "service: {pipelines: {logs: {receivers: [otlp], exporters: [file], exporter: [x]}}}",
            &env,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("service.pipelines.logs"),
            "{err}"
        );
        assert!(
            err.to_string().contains("unknown field `exporter`"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_masked_and_file_names_kept() {
        let mut config = serde_json::json!({
            "receivers": {"webhook/flipt": {"signing_secret": "s3cr3t", "signature_header": "x-flipt-webhook-signature"}},
            "exporters": {
                "webhook": {"endpoint": "https://user:pa55@siem.example/in?x=1", "headers": {"X-API-Key": "k1", "Content-Type": "application/json"}},
                "kafka": {"sasl": {"username": "svc", "password": "pw"}, "properties": {"ssl.key.password": "kp", "ssl.ca.location": "/ca.pem", "linger.ms": "5"}},
                "file": {"integrity": {"hmac_key": "hk", "signing_key_file": "/k.pem"}, "sync": true}
            },
            "processors": {"redaction": {"hash_key": "", "attributes": {"audit.actor.email": "hash"}}},
            "extensions": {
                "bearertokenauth": {"token": "t0k", "tokens": ["a", "b"], "tokens_file": "/t", "scheme": "Bearer"},
                "basicauth": {"htpasswd": {"file": "/h", "inline": "u:$2y$x"}, "client_auth": {"username": "u", "password": "p"}}
            }
        });
        mask_secrets(&mut config);
        let text = config.to_string();
        for secret in [
            "s3cr3t", "pa55", "k1", "\"pw\"", "kp", "hk", "t0k", "[\"a\"", "$2y$x", "\"p\"",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for kept in [
            "x-flipt-webhook-signature",
            "https://user:[REDACTED]@siem.example/in?x=1",
            "\"Content-Type\":\"[REDACTED]\"",
            "\"username\":\"svc\"",
            "/ca.pem",
            "\"linger.ms\":\"5\"",
            "/k.pem",
            "\"hash_key\":\"\"",
            "\"tokens_file\":\"/t\"",
            "\"file\":\"/h\"",
            "\"scheme\":\"Bearer\"",
            "\"sync\":true",
        ] {
            assert!(text.contains(kept), "{kept} not in {text}");
        }
    }

    #[test]
    fn yaml_errors_say_what_and_where_without_the_parsers_internals() {
        let cases = [
            (
                format!("receivers:\n  otlp: {{}}\n  otlp: {{}}\n{BASE}"),
                "invalid YAML: duplicate mapping key: otlp not allowed here at line 3, column 3",
            ),
            (
                "receivers:\n  otlp: [\n".to_owned(),
                "invalid YAML: unclosed bracket '[' at line 2, column 9",
            ),
        ];
        for (yaml, want) in cases {
            let err = CollectorConfig::from_yaml(&yaml, &env).unwrap_err();
            assert!(matches!(err, LoadError::Yaml(_)), "{err}");
            assert_eq!(err.to_string(), want);
        }
    }

    #[test]
    fn durations_parse_go_syntax() {
        let ms = |t| ConfigDuration::parse(t).map(|d| d.0.as_millis());
        assert_eq!(ms("200ms"), Ok(200));
        assert_eq!(ms("5s"), Ok(5000));
        assert_eq!(ms("2m"), Ok(120_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1.5h"), Ok(5_400_000));
        assert_eq!(ms("0"), Ok(0));
        assert!(
            ConfigDuration::parse("5")
                .unwrap_err()
                .contains("write a number and a unit")
        );
        assert!(
            ConfigDuration::parse("5d")
                .unwrap_err()
                .contains("unknown unit `d`")
        );
        assert!(ConfigDuration::parse("").is_err());
        assert_eq!(ConfigDuration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(ConfigDuration::from_secs(120).to_string(), "2m");
    }

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        endpoint: String,
    }
    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        grpc: Inner,
        #[serde(default)]
        #[allow(dead_code)]
        timeout: ConfigDuration,
    }
    impl Validate for Outer {}

    #[test]
    fn component_errors_carry_the_key_path() {
        let err = parse_component_config::<Outer>(
            &serde_json::json!({"grpc": {"endpoint": "x", "port": 1}}),
        )
        .unwrap_err();
        assert_eq!(err.path, "grpc.port");
        assert!(
            err.message.contains("unknown field `port`"),
            "{}",
            err.message
        );
        let err = parse_component_config::<Outer>(
            &serde_json::json!({"grpc": {"endpoint": "x"}, "timeout": "fast"}),
        )
        .unwrap_err();
        assert_eq!(err.path, "timeout");
        assert!(
            err.message.contains("invalid duration `fast`"),
            "{}",
            err.message
        );
    }
}
