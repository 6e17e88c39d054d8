//! `format: audit`: the Flipt v0.2 audit event, as Flipt's webhook sink
//! posts it (`json.Marshal` of its `audit.Event`) and as any service can.
//!
//! Required: `version`, `type`, `action`, `timestamp` (RFC 3339). Optional:
//! `status` (default `success`), `metadata.actor`, `payload`. Unknown fields
//! are errors, in the event and in `metadata`: Flipt's v0.2 event has no
//! others, so one is a typo or a different format, and silently dropping it
//! would lose part of an audit record.
//!
//! Actor fields follow Flipt's `Actor` struct, whose fields are all
//! `omitempty`: an empty (or null) value is the same as an absent one, so
//! the event is written back exactly as Flipt's encoder would write it.

use auditcol_core::model::conventions::STATUS_SUCCESS;
use auditcol_core::model::{Actor, AuditEvent, Metadata};
use serde_json::Value;

use crate::body::{EventError, kind_of};
use crate::decode::{
    expect_object, field_path, optional_str, required_name, required_str, required_timestamp,
};

/// The fields of a Flipt v0.2 event, in Flipt's order.
const FIELDS: [&str; 7] = [
    "version",
    "type",
    "action",
    "metadata",
    "payload",
    "timestamp",
    "status",
];

/// Decodes the event `value`, found at `at` (`events[3]`).
pub fn decode(value: Value, at: &str) -> Result<AuditEvent, EventError> {
    let mut object = expect_object(value, at, "an audit event")?;
    if let Some(unknown) = object.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(EventError::at(
            field_path(at, unknown),
            format!("unknown field: an audit event has {}", FIELDS.join(", ")),
        ));
    }
    let version = required_str(&object, at, "version")?;
    if version.is_empty() {
        return Err(EventError::at(
            field_path(at, "version"),
            "must not be empty (Flipt sends `0.2`)",
        ));
    }
    let mut event = AuditEvent::new(
        required_name(&object, at, "type")?,
        required_name(&object, at, "action")?,
    );
    event.version = version.to_owned();
    event.timestamp = required_timestamp(&object, at, "timestamp")?;
    event.status = optional_str(&object, at, "status")?
        .unwrap_or(STATUS_SUCCESS)
        .to_owned();
    event.metadata = decode_metadata(object.remove("metadata"), &field_path(at, "metadata"))?;
    event.payload = object.remove("payload").unwrap_or(Value::Null);
    Ok(event)
}

fn decode_metadata(value: Option<Value>, at: &str) -> Result<Metadata, EventError> {
    let mut metadata = match value {
        None | Some(Value::Null) => return Ok(Metadata::default()),
        Some(value) => expect_object(value, at, "the event's metadata")?,
    };
    if let Some(unknown) = metadata.keys().find(|k| *k != "actor") {
        return Err(EventError::at(
            field_path(at, unknown),
            "unknown field: metadata has only `actor`",
        ));
    }
    let at = field_path(at, "actor");
    let fields = match metadata.remove("actor") {
        None | Some(Value::Null) => return Ok(Metadata::default()),
        Some(value) => expect_object(value, &at, "the actor")?,
    };
    let mut actor = Actor::default();
    for (name, value) in fields {
        match value {
            _ if name.is_empty() => {
                return Err(EventError::at(&at, "an actor field has an empty name"));
            }
            Value::String(text) if !text.is_empty() => actor.set(&name, text),
            Value::String(_) | Value::Null => {}
            other => {
                return Err(EventError::at(
                    field_path(&at, &name),
                    format!("expected a string, got {}", kind_of(&other)),
                ));
            }
        }
    }
    Ok(Metadata { actor })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example event of the Flipt audit documentation (`seeds/flipt-audit-events.txt`).
    fn seed() -> Value {
        let text = include_str!("../testdata/flipt-documented-event.json");
        serde_json::from_str(text).unwrap()
    }

    fn decode_one(value: Value) -> Result<AuditEvent, EventError> {
        decode(value, "events[0]")
    }

    fn with(mut base: Value, key: &str, value: Value) -> Value {
        base[key] = value;
        base
    }

    fn without(mut base: Value, key: &str) -> Value {
        base.as_object_mut().unwrap().remove(key);
        base
    }

    #[test]
    fn the_seed_event_is_decoded_field_for_field() {
        let event = decode_one(seed()).unwrap();
        assert_eq!(event.version, "0.2");
        assert_eq!(event.event_type, "flag");
        assert_eq!(event.action, "created");
        assert_eq!(event.status, "success");
        assert_eq!(event.metadata.actor.authentication.as_deref(), Some("none"));
        assert_eq!(event.metadata.actor.ip.as_deref(), Some("172.17.0.1"));
        assert_eq!(event.payload, seed()["payload"]);
        assert_eq!(event.timestamp, 0);
        assert_eq!(
            event,
            serde_json::from_value::<AuditEvent>(seed()).unwrap(),
            "the same event as the model's own serde path"
        );
    }

    #[test]
    fn status_defaults_to_success_and_actor_and_payload_are_optional() {
        let minimal = json!({"version": "0.2", "type": "segment", "action": "deleted",
                             "timestamp": "2024-05-01T10:00:00Z"});
        let event = decode_one(minimal.clone()).unwrap();
        assert_eq!(event.status, "success");
        assert!(event.metadata.actor.is_empty());
        assert_eq!(event.payload, Value::Null);
        assert_eq!(event.timestamp, 1_714_557_600_000_000_000);
        for empty in [
            json!(null),
            json!({}),
            json!({"actor": null}),
            json!({"actor": {}}),
        ] {
            assert_eq!(
                decode_one(with(minimal.clone(), "metadata", empty)).unwrap(),
                event
            );
        }
        assert_eq!(
            decode_one(with(minimal, "status", json!("denied")))
                .unwrap()
                .status,
            "denied"
        );
    }

    #[test]
    fn each_required_field_missing_is_named() {
        for field in ["version", "type", "action", "timestamp"] {
            let err = decode_one(without(seed(), field)).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("events[0].{field}: missing: the field is required")
            );
            let err = decode_one(with(seed(), field, json!(null))).unwrap_err();
            assert_eq!(err.path, format!("events[0].{field}"));
        }
    }

    #[test]
    fn a_timestamp_that_is_not_rfc_3339_is_named_with_its_value() {
        for bad in ["1714557600", "2024-05-01 10:00:00", "2024-05-01T10:00:00"] {
            let err = decode_one(with(seed(), "timestamp", json!(bad))).unwrap_err();
            assert_eq!(err.path, "events[0].timestamp");
            assert!(
                err.reason.starts_with(&format!("not RFC 3339: `{bad}`")),
                "{err}"
            );
        }
        let err = decode_one(with(seed(), "timestamp", json!("1969-12-31T23:59:59Z"))).unwrap_err();
        assert!(err.reason.contains("outside the range"), "{err}");
        let err = decode_one(with(seed(), "timestamp", json!(0))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "events[0].timestamp: expected a string, got a number"
        );
    }

    #[test]
    fn offsets_are_accepted_and_the_time_kept_exactly() {
        let event = decode_one(with(
            seed(),
            "timestamp",
            json!("2024-05-01T12:00:00.5+02:00"),
        ))
        .unwrap();
        assert_eq!(event.timestamp, 1_714_557_600_500_000_000);
    }

    #[test]
    fn an_invalid_noun_or_verb_is_named() {
        let err = decode_one(with(seed(), "type", json!("feature flag"))).unwrap_err();
        assert_eq!(err.path, "events[0].type");
        assert!(
            err.reason.contains("`feature flag` is not a valid name"),
            "{err}"
        );
        let err = decode_one(with(seed(), "action", json!(""))).unwrap_err();
        assert_eq!(err.path, "events[0].action");
        let err = decode_one(with(seed(), "version", json!(""))).unwrap_err();
        assert_eq!(err.path, "events[0].version");
    }

    #[test]
    fn unknown_fields_are_errors_naming_them() {
        let err = decode_one(with(seed(), "actor", json!({}))).unwrap_err();
        assert_eq!(err.path, "events[0].actor");
        assert!(err.reason.starts_with("unknown field"), "{err}");
        let err = decode_one(with(seed(), "metadata", json!({"author": {}}))).unwrap_err();
        assert_eq!(err.path, "events[0].metadata.author");
    }

    #[test]
    fn actor_values_must_be_strings_and_empty_ones_are_absent_as_in_flipt() {
        let err = decode_one(with(seed(), "metadata", json!({"actor": {"ip": 7}}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "events[0].metadata.actor.ip: expected a string, got a number"
        );
        let event = decode_one(with(
            seed(),
            "metadata",
            json!({"actor": {"authentication": "none", "ip": "", "email": null, "team": "core"}}),
        ))
        .unwrap();
        let fields: Vec<_> = event.metadata.actor.fields().collect();
        assert_eq!(fields, [("authentication", "none"), ("team", "core")]);
    }

    #[test]
    fn a_non_object_is_refused_saying_what_it_is() {
        for (value, kind) in [(json!([]), "an array"), (json!("x"), "a string")] {
            let err = decode_one(value).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("events[0]: expected a JSON object (an audit event), got {kind}")
            );
        }
        let err = decode_one(with(seed(), "metadata", json!([]))).unwrap_err();
        assert_eq!(err.path, "events[0].metadata");
    }
}
