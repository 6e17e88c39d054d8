//! The `redaction` processor's settings.

use std::collections::BTreeMap;

use auditcol_core::config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};

use crate::glob::Glob;

/// Attributes that say what the event is: never redacted.
pub const PROTECTED: [&str; 7] = [
    "audit.type",
    "audit.action",
    "audit.version",
    "audit.status",
    "audit.id",
    "audit.source",
    "audit.redacted",
];

/// Settings of one `redaction` processor.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactionConfig {
    /// The HMAC-SHA256 key of `hash`; required when a rule hashes.
    pub hash_key: Option<String>,
    /// Attribute key glob → action.
    pub attributes: BTreeMap<String, Action>,
    /// Payload path (dot-separated, a glob per segment) → action.
    pub body: BTreeMap<String, Action>,
    /// Regular expressions: matches inside any string value are masked.
    pub blocked_values: Vec<String>,
    /// Whether to record what was changed in `audit.redacted`.
    pub summary: Summary,
}

/// What happens to a matched value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// IPv4 to its /24, IPv6 to its /48, anything else to `****`.
    Mask,
    /// HMAC-SHA256 with `hash_key`, in hex: the same value always gives the
    /// same pseudonym, so trails stay joinable.
    Hash,
    /// Removed.
    Delete,
}

impl Action {
    /// The name used in `audit.redacted`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mask => "mask",
            Self::Hash => "hash",
            Self::Delete => "delete",
        }
    }
}

/// `summary`: whether changed records say what was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Summary {
    /// Nothing is added.
    #[default]
    Silent,
    /// `audit.redacted` lists what was changed: keys, paths and actions,
    /// never values.
    Info,
}

impl Validate for RedactionConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for pattern in self.attributes.keys() {
            let glob = Glob::new(pattern)
                .map_err(|e| ConfigError::at(format!("attributes.{pattern}"), e))?;
            if let Some(key) = PROTECTED.iter().find(|k| glob.matches(k)) {
                return Err(ConfigError::at(
                    format!("attributes.{pattern}"),
                    format!(
                        "matches {key}, which says what the event is and cannot be redacted; narrow the pattern (e.g. audit.actor.*)"
                    ),
                ));
            }
        }
        for path in self.body.keys() {
            for segment in path.split('.') {
                Glob::new(segment).map_err(|e| {
                    ConfigError::at(format!("body.{path}"), format!("segment `{segment}`: {e}"))
                })?;
            }
        }
        for (i, pattern) in self.blocked_values.iter().enumerate() {
            regex::Regex::new(pattern).map_err(|e| {
                ConfigError::at(
                    format!("blocked_values[{i}]"),
                    format!("`{pattern}` is not a valid regular expression: {e}"),
                )
            })?;
        }
        let hashes = self
            .attributes
            .values()
            .chain(self.body.values())
            .any(|a| *a == Action::Hash);
        match &self.hash_key {
            Some(key) if key.is_empty() => Err(ConfigError::at(
                "hash_key",
                "is empty (an unset ${env:…}?): give a secret key, or use mask/delete",
            )),
            None if hashes => Err(ConfigError::at(
                "hash_key",
                "is required by the `hash` rules: a secret key, e.g. ${env:AUDIT_HASH_KEY}",
            )),
            _ => Ok(()),
        }
    }
}
