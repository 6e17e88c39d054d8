use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::conventions::{DEFAULT_VERSION, STATUS_SUCCESS};
use crate::timestamp;

/// An audit event in the Flipt v0.2 shape.
///
/// Serialises with the fields in this order: `version`, `type`, `action`,
/// `metadata`, `payload`, `timestamp`, `status`; `timestamp` is RFC 3339 in
/// UTC. On input `version` defaults to `0.2`, `status` to `success`,
/// `payload` to `null` and a missing `timestamp` to 0 ("unknown", which
/// output replaces with the time the event was received).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Version of the event structure.
    #[serde(default = "default_version")]
    pub version: String,
    /// The noun: the kind of entity acted upon (`flag`, `segment`, ...).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The verb: what was done to it (`created`, `updated`, `deleted`, ...).
    pub action: String,
    /// Information about the event as a whole, the actor in particular.
    #[serde(default)]
    pub metadata: Metadata,
    /// The request or object the event is about.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// When the event happened, in nanoseconds since the Unix epoch; 0 = unknown.
    #[serde(
        default,
        serialize_with = "serialize_timestamp",
        deserialize_with = "deserialize_timestamp"
    )]
    pub timestamp: u64,
    /// The outcome: `success`, `denied`, ...
    #[serde(default = "default_status")]
    pub status: String,
}

/// Event-wide information.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// Who did it. Always present, possibly empty.
    #[serde(default)]
    pub actor: Actor,
}

/// Identity information of whoever initiated the event.
///
/// The fields Flipt documents come first; any other string field is kept in
/// [`Actor::other`] and serialised after them in key order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// How the actor authenticated (`none`, `token`, `oidc`, `system`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<String>,
    /// The client address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The user's e-mail address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The user's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A URL of the user's picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// Any other identity field.
    #[serde(flatten)]
    pub other: BTreeMap<String, String>,
}

impl Actor {
    /// Every field that is set, known fields first, as `(name, value)`.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        let known = [
            ("authentication", &self.authentication),
            ("ip", &self.ip),
            ("email", &self.email),
            ("name", &self.name),
            ("picture", &self.picture),
        ];
        known
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .chain(self.other.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// Sets field `name` to `value`, whether known or not.
    pub fn set(&mut self, name: &str, value: String) {
        let slot = match name {
            "authentication" => &mut self.authentication,
            "ip" => &mut self.ip,
            "email" => &mut self.email,
            "name" => &mut self.name,
            "picture" => &mut self.picture,
            _ => {
                self.other.insert(name.to_owned(), value);
                return;
            }
        };
        *slot = Some(value);
    }

    /// True when no field is set.
    pub fn is_empty(&self) -> bool {
        self.fields().next().is_none()
    }
}

impl AuditEvent {
    /// A new successful event of version 0.2 with an empty actor and no payload.
    pub fn new(event_type: impl Into<String>, action: impl Into<String>) -> Self {
        Self {
            version: default_version(),
            event_type: event_type.into(),
            action: action.into(),
            metadata: Metadata::default(),
            payload: serde_json::Value::Null,
            timestamp: 0,
            status: default_status(),
        }
    }
}

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}

fn default_status() -> String {
    STATUS_SUCCESS.to_owned()
}

fn serialize_timestamp<S: Serializer>(nanos: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&timestamp::format_rfc3339(*nanos))
}

fn deserialize_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    timestamp::parse_rfc3339(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
      "version": "0.2", "type": "flag", "action": "created", "status": "success",
      "metadata": {"actor": {"authentication": "none", "ip": "172.17.0.1"}},
      "payload": {"description": "flipt flag", "enabled": true, "key": "flipt",
                  "name": "flipt", "namespace_key": "default"},
      "timestamp": "1970-01-01T00:00:00Z"
    }"#;

    #[test]
    fn seed_event_serialises_in_design_field_order() {
        let event: AuditEvent = serde_json::from_str(SEED).unwrap();
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"authentication":"none","ip":"172.17.0.1"}},"payload":{"description":"flipt flag","enabled":true,"key":"flipt","name":"flipt","namespace_key":"default"},"timestamp":"1970-01-01T00:00:00Z","status":"success"}"#
        );
    }

    #[test]
    fn unknown_actor_fields_are_kept_after_known_ones() {
        let event: AuditEvent = serde_json::from_str(
            r#"{"type":"flag","action":"deleted","metadata":{"actor":{"team":"core","email":"a@b.c"}}}"#,
        )
        .unwrap();
        assert_eq!(event.metadata.actor.other["team"], "core");
        let json = serde_json::to_string(&event.metadata.actor).unwrap();
        assert_eq!(json, r#"{"email":"a@b.c","team":"core"}"#);
    }

    #[test]
    fn defaults_fill_optional_fields() {
        let event: AuditEvent =
            serde_json::from_str(r#"{"type":"segment","action":"updated"}"#).unwrap();
        assert_eq!(event.version, "0.2");
        assert_eq!(event.status, "success");
        assert_eq!(event.timestamp, 0);
        assert!(event.metadata.actor.is_empty());
    }

    #[test]
    fn missing_action_is_an_error_naming_it() {
        let err = serde_json::from_str::<AuditEvent>(r#"{"type":"flag"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `action`"), "{err}");
    }

    #[test]
    fn bad_timestamp_is_an_error_naming_the_value() {
        let err = serde_json::from_str::<AuditEvent>(
            r#"{"type":"flag","action":"created","timestamp":"soon"}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("`soon` is not an RFC 3339 timestamp"),
            "{err}"
        );
    }
}
