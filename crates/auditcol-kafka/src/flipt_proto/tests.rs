//! The hand-written `flipt.audit.Event` writer and reader, held to the
//! schema in `proto/`: compiled here with protox and read and written by
//! reflection (prost-reflect), independently of the code under test.

use std::path::Path;
use std::sync::OnceLock;

use auditcol_core::LogBatch;
use auditcol_core::model::AuditEvent;
use auditcol_core::model::timestamp::parse_rfc3339;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, prost::Message};
use serde_json::{Value, json};

use super::*;

/// `flipt.audit.Event`, from `proto/flipt/audit/event.proto`.
fn descriptor() -> MessageDescriptor {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
        let files = protox::compile(["flipt/audit/event.proto"], [root])
            .expect("proto/flipt/audit/event.proto compiles");
        DescriptorPool::from_file_descriptor_set(files).expect("a valid descriptor set")
    })
    .get_message_by_name("flipt.audit.Event")
    .expect("the schema defines flipt.audit.Event")
}

/// The bytes our writer makes for `event`.
fn written(event: &AuditEvent) -> Vec<u8> {
    let batch = LogBatch::from_events("test", [event]);
    let record = batch.records().next().unwrap();
    let mut out = Vec::new();
    write_event(&record.audit_fields().unwrap(), &mut out).unwrap();
    out
}

/// What a reader built from the schema sees in `bytes`, as proto3 JSON.
fn read_by_reflection(bytes: &[u8]) -> Value {
    let message = DynamicMessage::decode(descriptor(), bytes).expect("decodes by the schema");
    serde_json::to_value(&message).unwrap()
}

/// Bytes written by reflection from proto3 JSON.
fn written_by_reflection(json: &Value) -> Vec<u8> {
    let message =
        DynamicMessage::deserialize(descriptor(), json.clone()).expect("valid proto3 JSON");
    message.encode_to_vec()
}

/// Every number as a double (Struct numbers are), so that `3` and `3.0` compare equal.
fn doubles(value: &Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.iter().map(doubles).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), doubles(v))).collect())
        }
        other => other.clone(),
    }
}

/// The proto3 JSON a schema reader should see for `event`: Flipt's JSON
/// with the actor fields Flipt has no field for under `other`.
fn expected_proto_json(event: &AuditEvent) -> Value {
    let mut flipt = serde_json::to_value(event).unwrap();
    let mut actor = serde_json::Map::new();
    let mut other = serde_json::Map::new();
    for (name, value) in event.metadata.actor.fields() {
        if ["authentication", "ip", "email", "name", "picture"].contains(&name) {
            actor.insert(name.into(), json!(value));
        } else {
            other.insert(name.into(), json!(value));
        }
    }
    if !other.is_empty() {
        actor.insert("other".into(), Value::Object(other));
    }
    flipt["metadata"] = json!({"actor": actor});
    if flipt["payload"].is_null() {
        flipt.as_object_mut().unwrap().remove("payload");
    }
    flipt
}

/// Compares proto3 JSON, timestamps by instant and numbers as doubles.
fn assert_same_event(actual: &Value, expected: &Value) {
    let mut actual = actual.clone();
    let mut expected = expected.clone();
    let ts = |v: &mut Value| {
        let text = v["timestamp"]
            .as_str()
            .unwrap_or("1970-01-01T00:00:00Z")
            .to_owned();
        v.as_object_mut().unwrap().remove("timestamp");
        parse_rfc3339(&text).unwrap()
    };
    assert_eq!(ts(&mut actual), ts(&mut expected), "timestamp");
    assert_eq!(doubles(&actual), doubles(&expected));
}

fn documented_event() -> AuditEvent {
    serde_json::from_value(json!({
        "version": "0.2", "type": "flag", "action": "created", "status": "success",
        "metadata": {"actor": {"authentication": "none", "ip": "172.17.0.1"}},
        "payload": {"description": "flipt flag", "enabled": true, "key": "flipt",
                    "name": "flipt", "namespace_key": "default"},
        "timestamp": "1970-01-01T00:00:00Z"
    }))
    .unwrap()
}

#[test]
fn the_documented_event_reads_by_the_schema_as_flipts_json() {
    let event = documented_event();
    assert_same_event(
        &read_by_reflection(&written(&event)),
        &expected_proto_json(&event),
    );
}

#[test]
fn an_event_written_by_the_schema_reads_back_as_the_same_event() {
    let mut event = documented_event();
    event.timestamp = 1_714_557_600_123_456_789;
    event.status = "denied".into();
    event.metadata.actor.set("email", "dev@example.com".into());
    event.metadata.actor.set("first_name", "Dev".into());
    let bytes = written_by_reflection(&expected_proto_json(&event));
    assert_eq!(read_event(&bytes).unwrap(), event);
}

#[test]
fn what_flipts_sink_writes_without_auditcols_additions_is_read() {
    // Flipt's sink: no `other`, status set, an empty actor when anonymous.
    let bytes = written_by_reflection(&json!({
        "version": "0.2", "type": "segment", "action": "deleted",
        "metadata": {"actor": {}}, "timestamp": "2024-05-01T10:00:00.500Z", "status": "success"
    }));
    let event = read_event(&bytes).unwrap();
    assert_eq!(
        (event.event_type.as_str(), event.action.as_str()),
        ("segment", "deleted")
    );
    assert!(event.metadata.actor.is_empty());
    assert_eq!(event.payload, Value::Null);
    assert_eq!(event.timestamp, 1_714_557_600_500_000_000);
}

#[test]
fn absent_version_and_status_take_the_defaults() {
    let bytes = written_by_reflection(&json!({"type": "flag", "action": "updated"}));
    let event = read_event(&bytes).unwrap();
    assert_eq!(
        (event.version.as_str(), event.status.as_str()),
        ("0.2", "success")
    );
}

#[test]
fn a_payload_that_is_not_an_object_is_refused_naming_its_kind() {
    let mut event = documented_event();
    event.payload = json!([1, 2]);
    let batch = LogBatch::from_events("test", [&event]);
    let fields = batch.records().next().unwrap().audit_fields().unwrap();
    let mut out = Vec::new();
    let err = write_event(&fields, &mut out).unwrap_err();
    assert_eq!(err.kind, "an array");
    assert!(err.to_string().contains("use encoding `json`"), "{err}");
    assert!(out.is_empty());
}

#[test]
fn integral_numbers_come_back_as_integers_and_others_as_doubles() {
    let mut event = documented_event();
    event.payload = json!({"n": 3, "neg": -7, "x": 0.25, "big": 9_007_199_254_740_993_i64, "list": [1, [true, null]], "o": {}});
    let back = read_event(&written(&event)).unwrap();
    assert_eq!(back.payload["n"], json!(3));
    assert_eq!(back.payload["neg"], json!(-7));
    assert_eq!(back.payload["x"], json!(0.25));
    // Beyond 2^53 a double cannot hold every integer: the nearest one.
    assert_eq!(back.payload["big"], json!(9_007_199_254_740_992_i64));
    assert_eq!(back.payload["list"], json!([1, [true, null]]));
    assert_eq!(back.payload["o"], json!({}));
}

#[test]
fn malformed_and_hostile_bytes_are_errors_not_panics() {
    assert!(
        read_event(&[0x0a, 0x05, b'a'])
            .unwrap_err()
            .contains("truncated")
    );
    // `type` as a varint.
    assert!(read_event(&[0x10, 0x01]).unwrap_err().starts_with("type:"));
    // A payload nested 40 levels deep: refused, not a stack overflow.
    let mut value = Vec::new();
    for _ in 0..40 {
        let mut list = Vec::new();
        put_bytes(&mut list, wkt::LIST_VALUES, &value);
        value.clear();
        put_bytes(&mut value, wkt::LIST_VALUE, &list);
    }
    let mut entry = Vec::new();
    put_bytes(&mut entry, wkt::ENTRY_KEY, b"k");
    put_bytes(&mut entry, wkt::ENTRY_VALUE, &value);
    let mut payload = Vec::new();
    put_bytes(&mut payload, wkt::STRUCT_FIELDS, &entry);
    let mut event = Vec::new();
    put_bytes(&mut event, event::PAYLOAD, &payload);
    assert!(read_event(&event).unwrap_err().contains("deeper than"));
    // Negative time.
    let bytes = written_by_reflection(
        &json!({"type": "f", "action": "a", "timestamp": "1969-12-31T23:59:59Z"}),
    );
    assert!(read_event(&bytes).unwrap_err().starts_with("timestamp"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-1_000_000_000i64..1_000_000_000).prop_map(Value::from),
            (-1e12f64..1e12).prop_map(Value::from),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    prop_compose! {
        fn event()(
            noun in "[a-z][a-z0-9_]{0,10}", verb in "[a-z][a-z0-9_]{0,10}",
            status in prop_oneof![Just("success".to_owned()), Just("denied".to_owned())],
            actor in prop::collection::btree_map(
                prop_oneof![Just("authentication".to_owned()), Just("ip".to_owned()), Just("email".to_owned()), "[a-z_]{1,8}"],
                ".{1,12}", 0..5),
            payload in prop_oneof![Just(Value::Null), prop::collection::btree_map("[a-z_]{1,6}", json_value(), 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect()))],
            timestamp in 0u64..4_000_000_000_000_000_000,
        ) -> AuditEvent {
            let mut e = AuditEvent::new(noun, verb);
            e.status = status;
            for (k, v) in actor { e.metadata.actor.set(&k, v); }
            e.payload = payload;
            e.timestamp = timestamp;
            e
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn what_we_write_reads_by_the_schema_as_the_event(e in event()) {
            let mut expected = expected_proto_json(&e);
            if e.timestamp == 0 {
                // Time 0 is "unknown": the record falls back to its observed time (0 here).
                expected["timestamp"] = json!("1970-01-01T00:00:00Z");
            }
            assert_same_event(&read_by_reflection(&written(&e)), &expected);
        }

        #[test]
        fn what_the_schema_writes_we_read_as_the_event(e in event()) {
            let bytes = written_by_reflection(&expected_proto_json(&e));
            let back = read_event(&bytes).unwrap();
            prop_assert_eq!(doubles(&back.payload), doubles(&e.payload));
            let mut same = back.clone();
            same.payload = e.payload.clone();
            prop_assert_eq!(same, e);
        }
    }
}
