//! Settings of the `filter` processor.

use auditcol_core::config::{ConfigError, Validate};
use serde::{Deserialize, Serialize};

use crate::pattern::{EventFilter, EventPattern};

/// What happens to records that are not audit events (no `audit.type` or
/// no `audit.action`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NonAudit {
    /// Drop them: an audit pipeline carries audit events only.
    #[default]
    Drop,
    /// Let them through untouched.
    Keep,
}

/// `processors: { filter/<name>: { events, exclude, non_audit } }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// `noun:verb` patterns an audit event must match one of to pass.
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// `noun:verb` patterns that drop an audit event even if it is included.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// What to do with records that are not audit events.
    #[serde(default)]
    pub non_audit: NonAudit,
}

fn default_events() -> Vec<String> {
    vec!["*:*".to_owned()]
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            events: default_events(),
            exclude: Vec::new(),
            non_audit: NonAudit::default(),
        }
    }
}

impl FilterConfig {
    /// Compiles the patterns; errors name the entry's key path (`events[2]`).
    pub fn compile(&self) -> Result<EventFilter, ConfigError> {
        if self.events.is_empty() {
            return Err(ConfigError::at(
                "events",
                "events is empty: nothing would pass; use [\"*:*\"] for everything",
            ));
        }
        Ok(EventFilter::new(
            compile_list("events", &self.events)?,
            compile_list("exclude", &self.exclude)?,
        ))
    }
}

fn compile_list(key: &str, texts: &[String]) -> Result<Vec<EventPattern>, ConfigError> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            EventPattern::parse(text)
                .map_err(|e| ConfigError::at(format!("{key}[{i}]"), e.to_string()))
        })
        .collect()
}

impl Validate for FilterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.compile().map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;
    use serde_json::json;

    fn parse(raw: serde_json::Value) -> Result<FilterConfig, ConfigError> {
        parse_component_config(&raw)
    }

    #[test]
    fn defaults_pass_every_audit_event_and_drop_the_rest() {
        let config = parse(serde_json::Value::Null).unwrap();
        assert_eq!(config, FilterConfig::default());
        assert_eq!(config.events, ["*:*"]);
        assert!(config.exclude.is_empty());
        assert_eq!(config.non_audit, NonAudit::Drop);
    }

    #[test]
    fn full_config_parses() {
        let config = parse(json!({
            "events": ["flag:*", "segment:deleted"],
            "exclude": ["*:read"],
            "non_audit": "keep",
        }))
        .unwrap();
        assert_eq!(config.events, ["flag:*", "segment:deleted"]);
        assert_eq!(config.exclude, ["*:read"]);
        assert_eq!(config.non_audit, NonAudit::Keep);
    }

    #[test]
    fn invalid_entries_are_errors_at_their_key_path() {
        // (config, path, substring of the message)
        let cases = [
            (
                json!({"events": ["flag:*", "x", "flag"]}),
                "events[1]",
                "`x` is not a `noun:verb` pattern",
            ),
            (
                json!({"events": ["flag:*", "*:*", "a:b:c"]}),
                "events[2]",
                "more than one `:`",
            ),
            (
                json!({"events": [":created"]}),
                "events[0]",
                "has an empty noun",
            ),
            (
                json!({"events": ["flag:"]}),
                "events[0]",
                "has an empty verb",
            ),
            (
                json!({"events": ["fl*g:created"]}),
                "events[0]",
                "`*` must stand alone",
            ),
            (
                json!({"events": ["flag:cre ated"]}),
                "events[0]",
                "has the character ' ' in the verb",
            ),
            (
                json!({"exclude": ["*:*", "fl/ag:read"]}),
                "exclude[1]",
                "has the character '/' in the noun",
            ),
            (
                json!({"events": []}),
                "events",
                "events is empty: nothing would pass; use [\"*:*\"] for everything",
            ),
        ];
        for (raw, path, message) in cases {
            let err = parse(raw.clone()).unwrap_err();
            assert_eq!(err.path, path, "{raw}");
            assert!(err.message.contains(message), "{raw}: {}", err.message);
        }
    }

    #[test]
    fn unknown_keys_and_bad_non_audit_are_errors() {
        let err = parse(json!({"event": ["flag:*"]})).unwrap_err();
        assert!(err.message.contains("unknown field `event`"), "{err}");
        let err = parse(json!({"non_audit": "pass"})).unwrap_err();
        assert_eq!(err.path, "non_audit");
        assert!(err.message.contains("unknown variant `pass`"), "{err}");
    }

    #[test]
    fn empty_exclude_is_fine() {
        assert!(parse(json!({"exclude": []})).is_ok());
    }
}
