//! Writes the Flipt v0.2 JSON of an audit log record straight from the OTLP
//! record, without building an [`AuditEvent`](crate::AuditEvent) first.
//!
//! This is the exporters' hot path: building the event allocates a string per
//! field and a map per payload object, which cost more than the rest of the
//! pipeline together. The output is byte-for-byte what
//! `serde_json::to_string(&AuditEvent::from_log_record(record)?)` gives; a
//! property test holds the two together.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;

use crate::anyvalue::{value_to_json, value_to_string};
use crate::conventions::{
    AUDIT_ACTION, AUDIT_ACTOR_PREFIX, AUDIT_STATUS, AUDIT_TYPE, AUDIT_VERSION, DEFAULT_VERSION,
    STATUS_SUCCESS,
};
use crate::timestamp::write_rfc3339;

/// The known actor fields, in output order; others follow sorted by name.
const KNOWN_ACTOR_FIELDS: [&str; 5] = ["authentication", "ip", "email", "name", "picture"];

/// Appends the Flipt JSON of `record` (no newline) to `out`. Returns false,
/// writing nothing, when the record is not an audit event.
pub fn write_audit_event_json(record: &LogRecord, out: &mut Vec<u8>) -> bool {
    let attrs = &record.attributes;
    let (Some(noun), Some(verb)) = (first_str(attrs, AUDIT_TYPE), first_str(attrs, AUDIT_ACTION))
    else {
        return false;
    };
    out.extend_from_slice(b"{\"version\":");
    write_str(
        out,
        first_str(attrs, AUDIT_VERSION).unwrap_or(DEFAULT_VERSION),
    );
    out.extend_from_slice(b",\"type\":");
    write_str(out, noun);
    out.extend_from_slice(b",\"action\":");
    write_str(out, verb);
    out.extend_from_slice(b",\"metadata\":{\"actor\":{");
    write_actor(attrs, out);
    out.extend_from_slice(b"}},\"payload\":");
    write_value(record.body.as_ref().and_then(|b| b.value.as_ref()), out);
    out.extend_from_slice(b",\"timestamp\":\"");
    let nanos = if record.time_unix_nano != 0 {
        record.time_unix_nano
    } else {
        record.observed_time_unix_nano
    };
    let mut ts = String::with_capacity(32);
    write_rfc3339(&mut ts, nanos);
    out.extend_from_slice(ts.as_bytes());
    out.extend_from_slice(b"\",\"status\":");
    write_str(
        out,
        first_str(attrs, AUDIT_STATUS).unwrap_or(STATUS_SUCCESS),
    );
    out.push(b'}');
    true
}

/// Like `str_attribute`: the first attribute named `key`, if it is a string.
fn first_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?
    {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn write_actor(attrs: &[KeyValue], out: &mut Vec<u8>) {
    // (rank, name, index): known fields by rank, others by name; the last
    // occurrence of a name wins, as in `Actor::set`.
    let mut fields: Vec<(usize, &str, usize)> = attrs
        .iter()
        .enumerate()
        .filter_map(|(i, kv)| {
            let name = kv.key.strip_prefix(AUDIT_ACTOR_PREFIX)?;
            let rank = KNOWN_ACTOR_FIELDS
                .iter()
                .position(|k| *k == name)
                .unwrap_or(KNOWN_ACTOR_FIELDS.len());
            Some((rank, name, i))
        })
        .collect();
    fields.sort_by(|a, b| {
        (a.0, a.1, std::cmp::Reverse(a.2)).cmp(&(b.0, b.1, std::cmp::Reverse(b.2)))
    });
    fields.dedup_by(|later, kept| later.1 == kept.1);
    for (n, (_, name, i)) in fields.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(out, name);
        out.push(b':');
        match attrs[*i].value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => write_str(out, s),
            other => write_str(out, &value_to_string(other)),
        }
    }
}

fn write_value(value: Option<&Value>, out: &mut Vec<u8>) {
    match value {
        None | Some(Value::StringValueStrindex(_)) => out.extend_from_slice(b"null"),
        Some(Value::StringValue(s)) => write_str(out, s),
        Some(Value::BoolValue(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Some(Value::IntValue(i)) => {
            out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes())
        }
        Some(Value::DoubleValue(d)) => {
            let _ = serde_json::to_writer(&mut *out, d);
        }
        Some(Value::ArrayValue(a)) => {
            out.push(b'[');
            for (n, item) in a.values.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(item.value.as_ref(), out);
            }
            out.push(b']');
        }
        Some(Value::KvlistValue(kv)) if has_duplicate_keys(&kv.values) => {
            // A JSON object keeps one value per key (the last, at the first
            // key's place): rare enough to take the general path.
            let _ = serde_json::to_writer(&mut *out, &value_to_json(value));
        }
        Some(Value::KvlistValue(kv)) => {
            out.push(b'{');
            for (n, item) in kv.values.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_str(out, &item.key);
                out.push(b':');
                write_value(
                    item.value
                        .as_ref()
                        .and_then(|v: &AnyValue| v.value.as_ref()),
                    out,
                );
            }
            out.push(b'}');
        }
        Some(Value::BytesValue(_)) => {
            let _ = serde_json::to_writer(&mut *out, &value_to_json(value));
        }
    }
}

fn has_duplicate_keys(values: &[KeyValue]) -> bool {
    values.len() > 1
        && values
            .iter()
            .enumerate()
            .any(|(i, a)| values[..i].iter().any(|b| b.key == a.key))
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    // serde_json's escaping, without an intermediate String.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuditEvent;
    use crate::mapping::string_kv;
    use proptest::prelude::*;

    fn via_event(record: &LogRecord) -> Option<String> {
        AuditEvent::from_log_record(record).map(|e| serde_json::to_string(&e).unwrap())
    }

    fn direct(record: &LogRecord) -> Option<String> {
        let mut out = Vec::new();
        write_audit_event_json(record, &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn non_audit_records_write_nothing() {
        let mut out = Vec::new();
        assert!(!write_audit_event_json(&LogRecord::default(), &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn odd_records_match_the_event_path() {
        let any = |v| Some(AnyValue { value: Some(v) });
        let kv = |k: &str, v| KeyValue {
            key: k.into(),
            value: any(v),
            key_strindex: 0,
        };
        let record = LogRecord {
            attributes: vec![
                string_kv(AUDIT_TYPE, "flag"),
                string_kv(AUDIT_ACTION, "created"),
                string_kv("audit.actor.zeta", "z"),
                kv("audit.actor.ip", Value::IntValue(7)),
                string_kv("audit.actor.email", "first"),
                string_kv("audit.actor.email", "last \"quoted\"\n"),
                kv(AUDIT_STATUS, Value::BoolValue(false)),
            ],
            observed_time_unix_nano: 1_500_000_000,
            body: any(Value::KvlistValue(
                opentelemetry_proto::tonic::common::v1::KeyValueList {
                    values: vec![
                        kv("a", Value::DoubleValue(f64::NAN)),
                        kv("b", Value::BytesValue(b"xy".to_vec())),
                        kv("a", Value::DoubleValue(2.5)),
                    ],
                },
            )),
            ..Default::default()
        };
        assert_eq!(direct(&record), via_event(&record));
    }

    proptest! {
        #[test]
        fn direct_json_equals_the_event_path(
            noun in "[a-z]{1,6}", verb in "[a-z]{1,6}",
            actor in prop::collection::vec(("[a-z]{1,5}|authentication|ip|email|name|picture", ".{0,8}"), 0..6),
            payload in prop::collection::vec(("[a-c]{1,2}", prop_oneof![
                any::<i64>().prop_map(Value::IntValue),
                any::<f64>().prop_map(Value::DoubleValue),
                any::<bool>().prop_map(Value::BoolValue),
                ".{0,10}".prop_map(Value::StringValue),
            ]), 0..6),
            time in any::<u64>(), observed in any::<u64>(),
            version in prop::option::of("0\\.[0-9]"), status in prop::option::of("[a-z]{1,7}"),
        ) {
            let mut attributes = vec![string_kv(AUDIT_TYPE, noun), string_kv(AUDIT_ACTION, verb)];
            if let Some(v) = version { attributes.push(string_kv(AUDIT_VERSION, v)); }
            if let Some(s) = status { attributes.push(string_kv(AUDIT_STATUS, s)); }
            for (k, v) in actor { attributes.push(string_kv(format!("audit.actor.{k}"), v)); }
            let body = AnyValue { value: Some(Value::KvlistValue(opentelemetry_proto::tonic::common::v1::KeyValueList {
                values: payload.into_iter().map(|(k, v)| KeyValue { key: k, value: Some(AnyValue { value: Some(v) }), key_strindex: 0 }).collect(),
            })) };
            let record = LogRecord { attributes, body: Some(body), time_unix_nano: time, observed_time_unix_nano: observed, ..Default::default() };
            prop_assert_eq!(direct(&record), via_event(&record));
        }
    }
}
