//! The rules, compiled, and what they do to one record.

use std::net::IpAddr;

use auditcol_core::RecordEdit;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::config::{Action, PROTECTED, RedactionConfig, Summary};
use crate::glob::Glob;

/// What a masked value becomes when it is not an IP address.
pub const MASK: &str = "****";

/// The attribute that lists what was changed (with `summary: info`).
pub const REDACTED: &str = "audit.redacted";

/// Compiled rules.
pub struct Redactor {
    attributes: Vec<(Glob, Action)>,
    body: Vec<(Vec<Glob>, Action)>,
    blocked: Vec<regex::Regex>,
    keyed: Option<Hmac<Sha256>>,
    summary: Summary,
}

impl Redactor {
    /// Compiles validated settings (an invalid one is skipped: validation
    /// has refused it already).
    pub fn new(config: &RedactionConfig) -> Self {
        Self {
            attributes: config
                .attributes
                .iter()
                .filter_map(|(p, a)| Some((Glob::new(p).ok()?, *a)))
                .collect(),
            body: config
                .body
                .iter()
                .filter_map(|(p, a)| {
                    let globs: Result<Vec<Glob>, _> = p.split('.').map(Glob::new).collect();
                    Some((globs.ok()?, *a))
                })
                .collect(),
            blocked: config
                .blocked_values
                .iter()
                .filter_map(|p| regex::Regex::new(p).ok())
                .collect(),
            keyed: config
                .hash_key
                .as_deref()
                .and_then(|k| Hmac::<Sha256>::new_from_slice(k.as_bytes()).ok()),
            summary: config.summary,
        }
    }

    /// Applies the rules to `edit`; returns what was changed (empty: nothing).
    pub fn redact(&self, edit: &mut RecordEdit) -> Vec<String> {
        let mut changes = Vec::new();
        let mut kept = Vec::with_capacity(edit.attributes.len());
        for (key, mut value) in std::mem::take(&mut edit.attributes) {
            if PROTECTED.contains(&key.as_str()) {
                kept.push((key, value));
                continue;
            }
            let action = self
                .attributes
                .iter()
                .filter(|(glob, _)| glob.matches(&key))
                .map(|(_, a)| *a)
                .max();
            match action {
                Some(Action::Delete) => {
                    changes.push(format!("{key}:delete"));
                    continue;
                }
                Some(action) => {
                    value = self.apply(action, &value);
                    changes.push(format!("{key}:{}", action.name()));
                }
                None => {
                    if self.block(&mut value) {
                        changes.push(format!("{key}:blocked"));
                    }
                }
            }
            kept.push((key, value));
        }
        edit.attributes = kept;
        if let Some(body) = &mut edit.body {
            let mut path = Vec::new();
            self.redact_value(body, &mut path, &mut changes);
        }
        if !changes.is_empty() && self.summary == Summary::Info {
            edit.attributes
                .push((REDACTED.to_owned(), Value::String(changes.join(","))));
        }
        changes
    }

    /// Walks a payload value: members whose path matches a rule are acted
    /// on whole; other strings are checked against `blocked_values`.
    fn redact_value(&self, value: &mut Value, path: &mut Vec<String>, changes: &mut Vec<String>) {
        match value {
            Value::Object(members) => {
                let keys: Vec<String> = members.keys().cloned().collect();
                for key in keys {
                    path.push(key.clone());
                    let action = self
                        .body
                        .iter()
                        .filter(|(globs, _)| {
                            globs.len() == path.len()
                                && globs.iter().zip(path.iter()).all(|(g, s)| g.matches(s))
                        })
                        .map(|(_, a)| *a)
                        .max();
                    let shown = format!("payload.{}", path.join("."));
                    match action {
                        Some(Action::Delete) => {
                            members.remove(&key);
                            changes.push(format!("{shown}:delete"));
                        }
                        Some(action) => {
                            if let Some(member) = members.get_mut(&key) {
                                *member = self.apply(action, member);
                            }
                            changes.push(format!("{shown}:{}", action.name()));
                        }
                        None => {
                            if let Some(member) = members.get_mut(&key) {
                                self.redact_value(member, path, changes);
                            }
                        }
                    }
                    path.pop();
                }
            }
            Value::Array(items) => {
                for item in items {
                    self.redact_value(item, path, changes);
                }
            }
            Value::String(text) => {
                let blocked = self.block_text(text);
                if blocked {
                    changes.push(format!("payload.{}:blocked", path.join(".")));
                }
            }
            _ => {}
        }
    }

    fn apply(&self, action: Action, value: &Value) -> Value {
        match action {
            Action::Mask => Value::String(mask(value)),
            Action::Hash => Value::String(self.hash(value)),
            Action::Delete => Value::Null,
        }
    }

    /// Hex HMAC-SHA256 of the value's text (a string as is, anything else
    /// as JSON).
    fn hash(&self, value: &Value) -> String {
        let Some(keyed) = &self.keyed else {
            return MASK.to_owned();
        };
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut mac = keyed.clone();
        mac.update(text.as_bytes());
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Masks what `blocked_values` match inside a string value; true if any did.
    fn block(&self, value: &mut Value) -> bool {
        match value {
            Value::String(text) => self.block_text(text),
            _ => false,
        }
    }

    fn block_text(&self, text: &mut String) -> bool {
        let mut changed = false;
        for regex in &self.blocked {
            if regex.is_match(text) {
                *text = regex.replace_all(text, MASK).into_owned();
                changed = true;
            }
        }
        changed
    }
}

/// An IPv4 address to its /24, an IPv6 address to its /48, anything else to `****`.
pub fn mask(value: &Value) -> String {
    let Value::String(text) = value else {
        return MASK.to_owned();
    };
    match text.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0).to_string()
        }
        Err(_) => MASK.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn redactor(config: serde_json::Value) -> Redactor {
        let config: RedactionConfig =
            auditcol_core::config::parse_component_config(&config).unwrap();
        Redactor::new(&config)
    }

    fn edit(attributes: &[(&str, Value)], body: Value) -> RecordEdit {
        RecordEdit {
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            body: Some(body),
        }
    }

    #[test]
    fn ips_are_masked_to_their_network_and_other_text_to_stars() {
        assert_eq!(mask(&json!("172.17.3.9")), "172.17.3.0");
        assert_eq!(mask(&json!("2001:db8:1:2:3::9")), "2001:db8:1::");
        assert_eq!(mask(&json!("kyle")), "****");
        assert_eq!(mask(&json!(42)), "****");
    }

    #[test]
    fn hashing_is_a_stable_pseudonym_per_key() {
        let a = redactor(json!({"hash_key": "k1", "attributes": {"audit.actor.email": "hash"}}));
        let b = redactor(json!({"hash_key": "k2", "attributes": {"audit.actor.email": "hash"}}));
        let mut e1 = edit(
            &[("audit.actor.email", json!("kyle@example.com"))],
            json!({}),
        );
        let mut e2 = e1.clone();
        let mut e3 = e1.clone();
        a.redact(&mut e1);
        a.redact(&mut e2);
        b.redact(&mut e3);
        assert_eq!(e1, e2);
        assert_ne!(e1, e3);
        let pseudonym = e1.attributes[0].1.as_str().unwrap();
        assert_eq!(pseudonym.len(), 64);
        assert!(!pseudonym.contains("kyle"));
    }

    #[test]
    fn attributes_are_hashed_masked_or_deleted_and_the_summary_lists_keys_only() {
        let r = redactor(json!({
            "hash_key": "k",
            "attributes": {"audit.actor.email": "hash", "audit.actor.ip": "mask", "audit.actor.name": "delete"},
            "summary": "info",
        }));
        let mut e = edit(
            &[
                ("audit.type", json!("flag")),
                ("audit.actor.email", json!("kyle@example.com")),
                ("audit.actor.ip", json!("10.1.2.3")),
                ("audit.actor.name", json!("Kyle")),
            ],
            json!({}),
        );
        r.redact(&mut e);
        let keys: Vec<&str> = e.attributes.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "audit.type",
                "audit.actor.email",
                "audit.actor.ip",
                REDACTED
            ]
        );
        assert_eq!(e.attributes[2].1, json!("10.1.2.0"));
        assert_eq!(
            e.attributes[3].1,
            json!("audit.actor.email:hash,audit.actor.ip:mask,audit.actor.name:delete")
        );
        let text = serde_json::to_string(&e.attributes).unwrap();
        assert!(!text.contains("kyle") && !text.contains("Kyle"));
    }

    #[test]
    fn payload_paths_match_a_glob_per_segment() {
        let r = redactor(json!({"body": {"*.password": "delete", "secret*": "mask"}}));
        let mut e = edit(
            &[],
            json!({
                "password": "top-level stays",
                "user": {"password": "hunter2", "name": "k"},
                "secret_token": "abc",
                "list": [{"password": "in an array"}],
            }),
        );
        let changes = r.redact(&mut e);
        assert_eq!(
            e.body.unwrap(),
            json!({
                "password": "top-level stays",
                "user": {"name": "k"},
                "secret_token": "****",
                "list": [{}],
            })
        );
        assert!(
            changes.contains(&"payload.user.password:delete".to_owned()),
            "{changes:?}"
        );
    }

    #[test]
    fn blocked_values_are_masked_inside_any_string() {
        let r = redactor(json!({"blocked_values": ["\\b\\d{13,16}\\b"]}));
        let mut e = edit(
            &[("note", json!("card 4111111111111111 used"))],
            json!({"deep": ["pay with 5500000000000004"]}),
        );
        r.redact(&mut e);
        assert_eq!(e.attributes[0].1, json!("card **** used"));
        assert_eq!(e.body.unwrap(), json!({"deep": ["pay with ****"]}));
    }

    #[test]
    fn the_strongest_of_several_matching_rules_wins() {
        let r = redactor(
            json!({"attributes": {"audit.actor.*": "mask", "audit.actor.email": "delete"}}),
        );
        let mut e = edit(&[("audit.actor.email", json!("a@b.c"))], json!({}));
        r.redact(&mut e);
        assert!(e.attributes.is_empty());
    }

    #[test]
    fn a_record_nothing_matches_is_unchanged() {
        let r = redactor(json!({"attributes": {"audit.actor.email": "mask"}}));
        let mut e = edit(&[("audit.type", json!("flag"))], json!({"key": "x"}));
        let before = e.clone();
        assert!(r.redact(&mut e).is_empty());
        assert_eq!(e, before);
    }

    #[test]
    fn config_errors_name_the_pattern() {
        let parse = |v: serde_json::Value| {
            auditcol_core::config::parse_component_config::<RedactionConfig>(&v).unwrap_err()
        };
        assert_eq!(
            parse(json!({"attributes": {"a[b": "mask"}})).path,
            "attributes.a[b"
        );
        let err = parse(json!({"attributes": {"audit.*": "mask"}}));
        assert!(err.message.contains("audit.type"), "{}", err.message);
        assert_eq!(parse(json!({"body": {"a.[x": "mask"}})).path, "body.a.[x");
        assert_eq!(
            parse(json!({"blocked_values": ["(unclosed"]})).path,
            "blocked_values[0]"
        );
        assert_eq!(parse(json!({"attributes": {"x": "hash"}})).path, "hash_key");
        assert_eq!(
            parse(json!({"hash_key": "", "attributes": {"x": "mask"}})).path,
            "hash_key"
        );
        assert_eq!(
            parse(json!({"attributes": {"x": "scramble"}})).path,
            "attributes.x"
        );
    }
}
