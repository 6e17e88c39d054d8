//! AuditEvent ⇄ OTLP LogRecord, following the table in DESIGN.md §2.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::anyvalue::{json_to_any, value_to_json, value_to_string};
use crate::audit::{AttrValue, AuditAttributes};
use crate::conventions::*;
use crate::event::AuditEvent;

/// Why a log record that claims to be an audit event is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    /// One of `audit.type` / `audit.action` is set without the other.
    #[error("attribute `{present}` is set but `{missing}` is missing: an audit event needs both")]
    Incomplete {
        present: &'static str,
        missing: &'static str,
    },
    /// An audit attribute that must be a string is of another type.
    #[error("attribute `{key}` must be a string value")]
    NotAString { key: &'static str },
    /// An audit attribute appears more than once: readers could disagree on
    /// which value counts.
    #[error("attribute `{key}` appears more than once: an audit event has one of each")]
    Duplicate { key: &'static str },
    /// `audit.type` or `audit.action` is empty or has characters outside `[A-Za-z0-9_.-]`.
    #[error(
        "attribute `{key}` = {value:?} is not a valid {what}: use letters, digits, `_`, `-` or `.`"
    )]
    InvalidName {
        key: &'static str,
        value: String,
        what: &'static str,
    },
}

/// The string value of attribute `key`, if present and a string.
pub fn str_attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

/// A string attribute.
pub fn string_kv(key: impl Into<String>, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        key_strindex: 0,
    }
}

/// True for a non-empty noun or verb made of `[A-Za-z0-9_.-]`.
#[inline]
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| NAME_BYTES[usize::from(b)])
}

/// The bytes a name may hold (one lookup per byte: this runs on several
/// names of every record).
static NAME_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.';
        b += 1;
    }
    table
};

/// Checks that a record which carries `audit.type` or `audit.action` is a
/// well-formed audit event. Records with neither are not audit events and pass.
pub fn validate_record(record: &LogRecord) -> Result<(), MappingError> {
    audit_attributes(&record.attributes).check()
}

/// The audit attributes of owned OTLP attributes, through the one scanner.
pub(crate) fn audit_attributes(attributes: &[KeyValue]) -> AuditAttributes<'_> {
    AuditAttributes::scan(attributes.iter().map(|kv| {
        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => AttrValue::Str(s.as_str()),
            _ => AttrValue::Other,
        };
        (kv.key.as_str(), value)
    }))
}

impl AuditEvent {
    /// The OTLP log record of this event.
    ///
    /// `observed_time_unix_nano` is left 0: it is the time of receipt, which
    /// the receiver sets. `audit.id` and `audit.source` are not part of the
    /// Flipt event; ingest adds them.
    pub fn to_log_record(&self) -> LogRecord {
        let noun = self.event_type.to_ascii_lowercase();
        let verb = self.action.to_ascii_lowercase();
        let (severity_number, severity_text) = severity_for_status(&self.status);
        let mut attributes = Vec::with_capacity(4 + 5);
        attributes.push(string_kv(AUDIT_TYPE, noun.as_str()));
        attributes.push(string_kv(AUDIT_ACTION, verb.as_str()));
        attributes.push(string_kv(AUDIT_VERSION, self.version.as_str()));
        attributes.push(string_kv(AUDIT_STATUS, self.status.as_str()));
        for (field, value) in self.metadata.actor.fields() {
            attributes.push(string_kv(format!("{AUDIT_ACTOR_PREFIX}{field}"), value));
        }
        LogRecord {
            time_unix_nano: self.timestamp,
            observed_time_unix_nano: 0,
            severity_number,
            severity_text: severity_text.to_owned(),
            body: if self.payload.is_null() {
                None
            } else {
                Some(json_to_any(&self.payload))
            },
            attributes,
            dropped_attributes_count: 0,
            flags: 0,
            trace_id: Vec::new(),
            span_id: Vec::new(),
            event_name: event_name(&noun, &verb),
        }
    }

    /// The audit event carried by `record`, or `None` when the record has no
    /// `audit.type`/`audit.action` and so is not an audit event.
    ///
    /// A zero `time_unix_nano` means unknown (OTLP): the timestamp falls back
    /// to `observed_time_unix_nano`. A missing `audit.version` reads as
    /// `0.2` and a missing `audit.status` as `success`. Non-string actor
    /// attributes are kept in their JSON spelling.
    pub fn from_log_record(record: &LogRecord) -> Option<AuditEvent> {
        let attrs = &record.attributes;
        let audit = audit_attributes(attrs);
        let (event_type, action) = audit.noun_verb()?;
        let mut event = AuditEvent::new(event_type, action);
        if let Some(version) = audit.version {
            event.version = version.to_owned();
        }
        if let Some(status) = audit.status {
            event.status = status.to_owned();
        }
        for kv in attrs {
            if let Some(field) = kv.key.strip_prefix(AUDIT_ACTOR_PREFIX) {
                let value = value_to_string(kv.value.as_ref().and_then(|v| v.value.as_ref()));
                event.metadata.actor.set(field, value);
            }
        }
        event.payload = value_to_json(record.body.as_ref().and_then(|b| b.value.as_ref()));
        event.timestamp = if record.time_unix_nano != 0 {
            record.time_unix_nano
        } else {
            record.observed_time_unix_nano
        };
        Some(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn name_bytes_are_exactly_letters_digits_and_three_marks() {
        for b in 0..=255u8 {
            let expected = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.');
            assert_eq!(super::NAME_BYTES[usize::from(b)], expected, "{b:#x}");
        }
        assert!(!super::is_valid_name(""));
        assert!(super::is_valid_name("flag-v2.on_off"));
        assert!(!super::is_valid_name("flag created"));
    }

    fn sample() -> AuditEvent {
        serde_json::from_value(json!({
            "version": "0.2", "type": "flag", "action": "created",
            "metadata": {"actor": {"authentication": "token", "ip": "10.0.0.1", "email": "a@b.c", "team": "core"}},
            "payload": {"key": "flipt", "enabled": true},
            "timestamp": "2024-05-01T10:00:00.5Z", "status": "success"
        }))
        .unwrap()
    }

    fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a str> {
        str_attribute(&r.attributes, key)
    }

    #[test]
    fn noun_and_verb_become_lower_case_attributes() {
        let mut e = sample();
        e.event_type = "Flag".into();
        e.action = "CREATED".into();
        let r = e.to_log_record();
        assert_eq!(attr(&r, AUDIT_TYPE), Some("flag"));
        assert_eq!(attr(&r, AUDIT_ACTION), Some("created"));
    }

    #[test]
    fn event_name_is_audit_type_action() {
        assert_eq!(sample().to_log_record().event_name, "audit.flag.created");
    }

    #[test]
    fn version_becomes_an_attribute() {
        assert_eq!(attr(&sample().to_log_record(), AUDIT_VERSION), Some("0.2"));
    }

    #[test]
    fn success_status_is_info_and_others_warn() {
        let r = sample().to_log_record();
        assert_eq!(attr(&r, AUDIT_STATUS), Some("success"));
        assert_eq!(
            (r.severity_number, r.severity_text.as_str()),
            (SEVERITY_INFO, "INFO")
        );
        let mut denied = sample();
        denied.status = "denied".into();
        let r = denied.to_log_record();
        assert_eq!(attr(&r, AUDIT_STATUS), Some("denied"));
        assert_eq!(
            (r.severity_number, r.severity_text.as_str()),
            (SEVERITY_WARN, "WARN")
        );
    }

    #[test]
    fn each_actor_field_becomes_one_attribute() {
        let r = sample().to_log_record();
        assert_eq!(attr(&r, "audit.actor.authentication"), Some("token"));
        assert_eq!(attr(&r, "audit.actor.ip"), Some("10.0.0.1"));
        assert_eq!(attr(&r, "audit.actor.email"), Some("a@b.c"));
        assert_eq!(attr(&r, "audit.actor.team"), Some("core"));
    }

    #[test]
    fn payload_becomes_a_structured_body() {
        let r = sample().to_log_record();
        let body = r.body.as_ref().unwrap();
        assert!(matches!(body.value, Some(Value::KvlistValue(_))));
        assert_eq!(
            value_to_json(body.value.as_ref()),
            json!({"key": "flipt", "enabled": true})
        );
    }

    #[test]
    fn timestamp_becomes_time_unix_nano() {
        assert_eq!(
            sample().to_log_record().time_unix_nano,
            1_714_557_600_500_000_000
        );
    }

    #[test]
    fn zero_time_falls_back_to_observed_time() {
        let mut r = sample().to_log_record();
        r.time_unix_nano = 0;
        r.observed_time_unix_nano = 42;
        assert_eq!(AuditEvent::from_log_record(&r).unwrap().timestamp, 42);
    }

    #[test]
    fn record_without_type_or_action_is_not_an_audit_event() {
        let mut r = sample().to_log_record();
        r.attributes.retain(|kv| kv.key != AUDIT_ACTION);
        assert!(AuditEvent::from_log_record(&r).is_none());
        assert_eq!(
            validate_record(&r),
            Err(MappingError::Incomplete {
                present: AUDIT_TYPE,
                missing: AUDIT_ACTION
            })
        );
        r.attributes.retain(|kv| kv.key != AUDIT_TYPE);
        assert!(validate_record(&r).is_ok());
    }

    #[test]
    fn missing_version_and_status_take_defaults() {
        let r = LogRecord {
            attributes: vec![
                string_kv(AUDIT_TYPE, "flag"),
                string_kv(AUDIT_ACTION, "updated"),
            ],
            ..Default::default()
        };
        let e = AuditEvent::from_log_record(&r).unwrap();
        assert_eq!((e.version.as_str(), e.status.as_str()), ("0.2", "success"));
        assert_eq!(e.payload, serde_json::Value::Null);
    }

    #[test]
    fn invalid_names_and_types_are_rejected_with_the_key() {
        let mut r = LogRecord {
            attributes: vec![
                string_kv(AUDIT_TYPE, "fl ag"),
                string_kv(AUDIT_ACTION, "created"),
            ],
            ..Default::default()
        };
        let err = validate_record(&r).unwrap_err();
        assert!(
            err.to_string().contains("`audit.type` = \"fl ag\""),
            "{err}"
        );
        r.attributes[0] = KeyValue {
            key: AUDIT_TYPE.into(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(3)),
            }),
            key_strindex: 0,
        };
        assert_eq!(
            validate_record(&r),
            Err(MappingError::NotAString { key: AUDIT_TYPE })
        );
    }

    #[test]
    fn seed_event_round_trips_to_identical_json() {
        let e = sample();
        let back = AuditEvent::from_log_record(&e.to_log_record()).unwrap();
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&e).unwrap()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn name() -> impl Strategy<Value = String> {
            "[a-z][a-z0-9_]{0,12}"
        }

        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<i64>().prop_map(serde_json::Value::from),
                (-1e12f64..1e12).prop_map(serde_json::Value::from),
                ".{0,16}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                    prop::collection::vec(("[a-z_]{1,8}", inner), 0..5)
                        .prop_map(|kvs| serde_json::Value::Object(kvs.into_iter().collect())),
                ]
            })
        }

        prop_compose! {
            fn event()(
                noun in name(), verb in name(), version in "0\\.[0-9]",
                status in prop_oneof![Just("success".to_owned()), Just("denied".to_owned()), name()],
                actor in prop::collection::btree_map("[a-z_]{1,10}", ".{0,20}", 0..6),
                payload in json_value(),
                timestamp in 1u64..u64::MAX,
            ) -> AuditEvent {
                let mut e = AuditEvent::new(noun, verb);
                e.version = version;
                e.status = status;
                for (k, v) in actor { e.metadata.actor.set(&k, v); }
                e.payload = payload;
                e.timestamp = timestamp;
                e
            }
        }

        proptest! {
            #[test]
            fn event_to_record_to_event_is_identity(e in event()) {
                let back = AuditEvent::from_log_record(&e.to_log_record()).unwrap();
                prop_assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&e).unwrap());
            }

            #[test]
            fn json_round_trip_is_identity(e in event()) {
                let json = serde_json::to_string(&e).unwrap();
                let parsed: AuditEvent = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(parsed, e);
            }

            #[test]
            fn mapped_records_always_validate(e in event()) {
                prop_assert!(validate_record(&e.to_log_record()).is_ok());
            }
        }
    }
}
