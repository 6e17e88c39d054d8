use super::*;
use auditcol_model::{ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs, string_kv};
use prost::Message;
use serde_json::json;

fn otlp_json(records: serde_json::Value) -> Vec<u8> {
    json!({"resourceLogs": [{"resource": {"attributes": []}, "scopeLogs": [{"scope": {"name": "s"}, "logRecords": records}]}]})
        .to_string()
        .into_bytes()
}

#[test]
fn len_counts_records_across_resources_and_scopes() {
    let mut batch = LogBatch::sample_audit(3);
    batch.merge(LogBatch::sample_audit(4));
    assert_eq!(batch.len(), 7);
    assert_eq!(batch.records().count(), 7);
}

#[test]
fn retain_drops_records_and_empty_containers() {
    let mut batch = LogBatch::sample_audit(8);
    batch.retain(|r| r.audit_type() == Some("flag"));
    assert_eq!(batch.len(), 4);
    batch.retain(|_| false);
    assert!(batch.is_empty());
    assert_eq!(batch, LogBatch::new());
}

#[test]
fn retain_marked_keeps_the_records_flagged_by_position() {
    let batch = LogBatch::sample_audit(4);
    let mut kept = batch.clone();
    // Records beyond the flags are dropped.
    kept.retain_marked(&[false, true, true]);
    let keys: Vec<_> = kept
        .records()
        .map(|r| r.body_json()["key"].clone())
        .collect();
    assert_eq!(keys, ["flag-1", "flag-2"]);
    assert_eq!(batch.len(), 4, "the original is untouched");
}

#[test]
fn split_front_keeps_order_and_context() {
    let mut a = LogBatch::sample_audit(3);
    a.merge(LogBatch::sample_audit(3));
    let front = a.split_front(4);
    assert_eq!((front.len(), a.len()), (4, 2));
    let times: Vec<u64> = front
        .records()
        .chain(a.records())
        .map(|r| r.time_unix_nano() % 10)
        .collect();
    assert_eq!(times, vec![0, 1, 2, 0, 1, 2]);
    assert!(
        a.records()
            .all(|r| r.resource_attribute("service.name") == Some("test"))
    );
    assert!(a.records().all(|r| r.scope_name() == "auditcol"));
}

#[test]
fn split_makes_batches_of_at_most_max() {
    let parts = LogBatch::sample_audit(10).split(4);
    assert_eq!(
        parts.iter().map(LogBatch::len).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    assert_eq!(LogBatch::sample_audit(10).split(0).len(), 1);
}

/// Decodes OTLP/JSON that must be wholly valid.
fn decode_json(body: &[u8]) -> Result<LogBatch, DecodeError> {
    LogBatch::decode_json(body).map(|d| d.all_or_nothing().expect("every record is valid"))
}

fn decode_protobuf(body: &[u8]) -> Result<Decoded, DecodeError> {
    LogBatch::decode_protobuf(Bytes::copy_from_slice(body))
}

#[test]
fn protobuf_round_trip() {
    let batch = LogBatch::sample_audit(5);
    let bytes = batch.encode_protobuf();
    assert_eq!(bytes.len(), batch.encoded_len());
    let decoded = decode_protobuf(&bytes).unwrap();
    assert_eq!(decoded.rejected, 0);
    assert_eq!(decoded.batch, batch);
}

#[test]
fn otlp_json_round_trip() {
    let batch = LogBatch::sample_audit(5);
    let mut out = Vec::new();
    batch.write_otlp_json(&mut out).unwrap();
    assert_eq!(decode_json(&out).unwrap(), batch);
}

#[test]
fn json_accepts_int64_as_strings_and_hex_ids() {
    let batch = decode_json(&otlp_json(json!([{
        "timeUnixNano": "1714557600000000000",
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174",
        "attributes": [{"key": "n", "value": {"intValue": "42"}}]
    }])))
    .unwrap();
    let record = batch.records().next().unwrap();
    assert_eq!(record.time_unix_nano(), 1_714_557_600_000_000_000);
}

#[test]
fn json_accepts_empty_kvlist_and_array_values() {
    let batch = decode_json(&otlp_json(json!([
        {"body": {"kvlistValue": {}}},
        {"body": {"arrayValue": {}}}
    ])))
    .unwrap();
    let bodies: Vec<_> = batch.records().map(|r| r.body_json()).collect();
    assert_eq!(bodies, vec![json!({}), json!([])]);
}

#[test]
fn json_treats_null_fields_as_absent() {
    let batch = decode_json(&otlp_json(json!([{"attributes": null, "body": null}]))).unwrap();
    assert_eq!(batch.len(), 1);
}

#[test]
fn json_refuses_trace_ids_of_the_wrong_length_naming_them() {
    let err = LogBatch::decode_json(&otlp_json(json!([{"traceId": "not-hex"}]))).unwrap_err();
    assert!(
        err.message
            .contains("resourceLogs[0].scopeLogs[0].logRecords[0].traceId"),
        "{}",
        err.message
    );
    let batch = decode_json(&otlp_json(json!([{"traceId": "", "spanId": ""}]))).unwrap();
    assert_eq!(batch.len(), 1);
}

#[test]
fn json_errors_name_the_field() {
    let err = LogBatch::decode_json(&otlp_json(json!([{"timeUnixNano": {"x": 1}}]))).unwrap_err();
    assert!(
        err.message
            .contains("resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano"),
        "{}",
        err.message
    );
    for body in [&b"[1,2]"[..], b"{"] {
        let err = LogBatch::decode_json(body).unwrap_err();
        assert!(
            err.message.starts_with("invalid OTLP JSON: "),
            "{}",
            err.message
        );
    }
}

#[test]
fn protobuf_errors_say_what_failed() {
    let err = decode_protobuf(&[0x0a, 0xff, 0xff]).unwrap_err();
    assert!(
        err.message.starts_with("invalid OTLP protobuf"),
        "{}",
        err.message
    );
}

#[test]
fn decode_leaves_out_bad_records_and_names_the_first() {
    let decoded = LogBatch::decode_json(&otlp_json(json!([
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}}]},
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}}]},
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}},
                        {"key": "audit.type", "value": {"stringValue": "segment"}}]},
    ])))
    .unwrap();
    assert_eq!((decoded.batch.len(), decoded.rejected), (1, 2));
    let err = decoded.first_rejection.unwrap();
    assert_eq!(err.path, "resourceLogs[0].scopeLogs[0].logRecords[1]");
    assert!(
        err.reason.contains("`audit.action` is missing"),
        "{}",
        err.reason
    );
}

#[test]
fn prepare_ingest_fills_observed_time_id_source_and_event_name() {
    let mut batch = decode_json(&otlp_json(json!([
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "Flag"}},
                        {"key": "audit.action", "value": {"stringValue": "CREATED"}}]},
        {"observedTimeUnixNano": "5", "attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "deleted"}},
                        {"key": "audit.id", "value": {"stringValue": "given"}},
                        {"key": "audit.source", "value": {"stringValue": "flipt"}}]},
        {"body": {"stringValue": "not audit"}}
    ])))
    .unwrap();
    batch.prepare_ingest(99, "otlp");
    let records: Vec<_> = batch.records().collect();
    assert_eq!(records[0].audit_noun_verb(), Some(("flag", "created")));
    assert_eq!(records[0].event_name(), "audit.flag.created");
    assert_eq!(records[0].observed_time_unix_nano(), 99);
    assert_eq!(records[0].attribute("audit.source"), Some("otlp"));
    let id = records[0].attribute("audit.id").unwrap();
    assert_eq!(uuid_version(id), Some(7));
    assert_eq!(records[1].attribute("audit.id"), Some("given"));
    assert_eq!(records[1].attribute("audit.source"), Some("flipt"));
    assert_eq!(records[1].observed_time_unix_nano(), 5);
    assert_eq!(records[2].attribute("audit.id"), None);
    assert_eq!(records[2].observed_time_unix_nano(), 99);
}

fn uuid_version(id: &str) -> Option<u32> {
    // xxxxxxxx-xxxx-Vxxx-...
    id.chars().nth(14)?.to_digit(16)
}

#[test]
fn from_events_sets_source_and_round_trips_events() {
    let mut event = AuditEvent::new("flag", "created");
    event.timestamp = 7;
    let batch = LogBatch::from_events("flipt", [&event]);
    let record = batch.records().next().unwrap();
    assert_eq!(record.attribute("audit.source"), Some("flipt"));
    assert_eq!(record.to_audit_event(), Some(event));
}

#[test]
fn events_with_attributes_keep_the_source_id_through_ingest() {
    let event = AuditEvent::new("feature", "created");
    let mut batch = LogBatch::try_from_events_with_attributes(
        "flagsmith",
        [
            (
                &event,
                vec![("audit.id", "42"), ("flagsmith.project.id", "6")],
            ),
            (&event, vec![]),
        ],
    )
    .unwrap();
    batch.prepare_ingest(5, "flagsmith");
    let records: Vec<_> = batch.records().collect();
    assert_eq!(records[0].audit_id(), Some("42"));
    assert_eq!(records[0].attribute("flagsmith.project.id"), Some("6"));
    assert_eq!(records[0].attribute("audit.source"), Some("flagsmith"));
    assert_eq!(
        records[0].to_audit_event(),
        Some(AuditEvent {
            timestamp: 5, // unknown (0): the observed time
            ..event.clone()
        })
    );
    assert_eq!(uuid_version(records[1].audit_id().unwrap()), Some(7));
}

#[test]
fn an_event_attribute_never_overrides_or_repeats_one_the_event_sets() {
    let event = AuditEvent::new("feature", "created");
    let batch = LogBatch::try_from_events_with_attributes(
        "x",
        [(
            &event,
            vec![
                ("audit.status", "denied"),
                ("audit.id", "1"),
                ("audit.id", "2"),
            ],
        )],
    )
    .unwrap();
    let record = batch.records().next().unwrap();
    assert_eq!(record.attribute("audit.status"), Some("success"));
    assert_eq!(record.audit_id(), Some("1"));
}

#[test]
fn a_record_with_a_duplicate_audit_key_is_rejected_with_its_path() {
    let decoded = LogBatch::decode_json(&otlp_json(json!([
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}},
                        {"key": "audit.type", "value": {"stringValue": "segment"}}]},
    ])))
    .unwrap();
    assert!(decoded.batch.is_empty());
    let err = decoded.first_rejection.unwrap();
    assert!(
        err.reason.contains("`audit.type` appears more than once"),
        "{err}"
    );
}

#[test]
fn a_structurally_bad_record_is_rejected_alone() {
    // The second record's attribute key is not UTF-8.
    let good = LogBatch::sample_audit(1).encode_protobuf();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    LogRecord::default(),
                    LogRecord {
                        attributes: vec![string_kv("k\u{e9}", "v")],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut bytes = request.encode_to_vec();
    let at = bytes.iter().rposition(|b| *b == 0xa9).unwrap();
    bytes[at] = 0xff;
    let decoded = decode_protobuf(&bytes).unwrap();
    assert_eq!((decoded.batch.len(), decoded.rejected), (1, 1));
    let err = decoded.first_rejection.unwrap();
    assert_eq!(
        err.path,
        "resourceLogs[0].scopeLogs[0].logRecords[1].attributes[0].key"
    );
    assert!(err.reason.contains("UTF-8"), "{err}");
    assert!(decode_protobuf(&good).unwrap().first_rejection.is_none());
}

#[test]
fn a_clients_own_event_name_on_an_audit_event_is_replaced() {
    let mut batch = decode_json(&otlp_json(json!([
        {"eventName": "audit.segment.deleted",
         "attributes": [{"key": "audit.type", "value": {"stringValue": "Flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}}]},
        {"eventName": "audit.flag.created",
         "attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}}]},
        {"eventName": "app.started", "body": {"stringValue": "not audit"}},
    ])))
    .unwrap();
    batch.prepare_ingest(1, "otlp");
    let names: Vec<_> = batch.records().map(|r| r.event_name()).collect();
    assert_eq!(
        names,
        ["audit.flag.created", "audit.flag.created", "app.started"]
    );
    // A right one is kept as it is: no second event_name field.
    let request = ExportLogsServiceRequest::decode(batch.encode_protobuf().as_slice()).unwrap();
    let second = batch.records().nth(1).unwrap();
    let event_name_fields = second.view().fields().filter(|f| f.number == 12).count();
    assert_eq!(event_name_fields, 1);
    assert_eq!(
        request.resource_logs[0].scope_logs[0].log_records[0].event_name,
        "audit.flag.created"
    );
}

#[test]
fn actor_field_names_and_statuses_must_be_names() {
    let decoded = LogBatch::decode_json(&otlp_json(json!([
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}},
                        {"key": "audit.actor.email payload: {}", "value": {"stringValue": "eve"}}]},
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}},
                        {"key": "audit.status", "value": {"stringValue": "success\nforged"}}]},
    ])))
    .unwrap();
    assert_eq!((decoded.batch.len(), decoded.rejected), (0, 2));
    let first = decoded.first_rejection.unwrap();
    assert_eq!(
        first.path,
        "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[2].key"
    );
    assert!(
        first.reason.contains("not a valid actor field name"),
        "{first}"
    );
}

#[test]
fn ingest_patches_survive_encoding() {
    let mut batch = decode_json(&otlp_json(json!([
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "Flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}}]},
    ])))
    .unwrap();
    batch.prepare_ingest(42, "otlp");
    let request = ExportLogsServiceRequest::decode(batch.encode_protobuf().as_slice()).unwrap();
    let record = &request.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.observed_time_unix_nano, 42);
    assert_eq!(record.event_name, "audit.flag.created");
    let keys: Vec<_> = record.attributes.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        ["audit.type", "audit.action", "audit.id", "audit.source"]
    );
    assert_eq!(
        auditcol_model::str_attribute(&record.attributes, "audit.type"),
        Some("flag")
    );
    // Decoding the encoded batch gives the same batch, and ingest is idempotent.
    let again = decode_protobuf(&batch.encode_protobuf()).unwrap().batch;
    assert_eq!(again, batch);
    let mut twice = batch.clone();
    twice.prepare_ingest(43, "other");
    assert_eq!(twice, batch);
}

#[test]
fn clones_share_records_until_one_changes() {
    let original = LogBatch::sample_audit(4);
    let mut filtered = original.clone();
    // The same bytes, not equal copies.
    let name_at = |b: &LogBatch| b.records().next().unwrap().event_name().as_ptr();
    assert_eq!(name_at(&original), name_at(&filtered));
    filtered.retain(|r| r.audit_type() == Some("flag"));
    assert_eq!((original.len(), filtered.len()), (4, 2));
    assert_eq!(original, LogBatch::sample_audit(4));
}

#[test]
fn containers_with_fields_after_their_children_keep_them() {
    use auditcol_model::wire::{put_bytes, put_key, put_varint};
    // ResourceLogs with scope_logs (2) before resource (1) and schema_url (3).
    let record = LogBatch::sample_audit(1);
    let scope_logs: Vec<u8> = ExportLogsServiceRequest::decode(record.encode_protobuf().as_slice())
        .unwrap()
        .resource_logs[0]
        .scope_logs[0]
        .encode_to_vec();
    let mut resource_logs = Vec::new();
    put_bytes(&mut resource_logs, 2, &scope_logs);
    put_bytes(&mut resource_logs, 1, &[]);
    put_bytes(&mut resource_logs, 3, b"https://schema");
    let mut request = Vec::new();
    put_key(&mut request, 1, 2);
    put_varint(&mut request, resource_logs.len() as u64);
    request.extend_from_slice(&resource_logs);
    let batch = decode_protobuf(&request).unwrap().batch;
    let back = ExportLogsServiceRequest::decode(batch.encode_protobuf().as_slice()).unwrap();
    assert_eq!(back.resource_logs[0].schema_url, "https://schema");
    assert_eq!(back.resource_logs[0].scope_logs.len(), 1);
}

/// Found by the `otlp_protobuf` fuzz target: a resource (or scope) given
/// twice is one merged resource to a protobuf reader, but the last one to
/// `resource_attribute`; the request is refused instead.
#[test]
fn a_resource_or_scope_given_twice_refuses_the_request() {
    use auditcol_model::wire::put_bytes;
    let resource = |name: &str| {
        let mut kv = Vec::new();
        put_bytes(&mut kv, 1, &string_kv("service.name", name).encode_to_vec());
        kv
    };
    let scope_logs =
        ExportLogsServiceRequest::decode(LogBatch::sample_audit(1).encode_protobuf().as_slice())
            .unwrap()
            .resource_logs[0]
            .scope_logs[0]
            .encode_to_vec();
    let mut resource_logs = Vec::new();
    put_bytes(&mut resource_logs, 1, &resource("a"));
    put_bytes(&mut resource_logs, 1, &resource("b"));
    put_bytes(&mut resource_logs, 2, &scope_logs);
    let mut request = Vec::new();
    put_bytes(&mut request, 1, &resource_logs);
    let err = decode_protobuf(&request).unwrap_err();
    assert_eq!(
        err.message,
        "invalid OTLP protobuf: resourceLogs[0]: resource appears more than once: send it once"
    );

    // The scope logs of a batch have their scope already: one more.
    let mut scope_twice = scope_logs.clone();
    let mut scope = Vec::new();
    put_bytes(&mut scope, 1, b"lib");
    put_bytes(&mut scope_twice, 1, &scope);
    let mut resource_logs = Vec::new();
    put_bytes(&mut resource_logs, 2, &scope_twice);
    let mut request = Vec::new();
    put_bytes(&mut request, 1, &resource_logs);
    let err = decode_protobuf(&request).unwrap_err();
    assert!(
        err.message
            .ends_with("resourceLogs[0].scopeLogs[0]: scope appears more than once: send it once"),
        "{}",
        err.message
    );
}

/// Found by the `otlp_protobuf` fuzz target: a resource whose
/// `dropped_attributes_count` (a varint) came length-delimited — the fuzzer
/// had turned the tag of its `service.name` attribute from 1 into 2 — was
/// let in and forwarded, and any protobuf reader downstream refuses the
/// whole request for it (every other client's records batched with it too).
/// Every known field of resources, scopes and key-value pairs is checked.
#[test]
fn known_fields_of_the_wrong_wire_type_are_refused_where_they_are() {
    use auditcol_model::wire::{put_bytes, put_key, put_varint};
    let scope_logs =
        ExportLogsServiceRequest::decode(LogBatch::sample_audit(1).encode_protobuf().as_slice())
            .unwrap()
            .resource_logs[0]
            .scope_logs[0]
            .encode_to_vec();
    let request = |resource: &[u8], scope_logs: &[u8]| {
        let mut resource_logs = Vec::new();
        put_bytes(&mut resource_logs, 1, resource);
        put_bytes(&mut resource_logs, 2, scope_logs);
        let mut request = Vec::new();
        put_bytes(&mut request, 1, &resource_logs);
        request
    };
    // resource { dropped_attributes_count: <bytes> }
    let mut resource = Vec::new();
    put_bytes(
        &mut resource,
        2,
        &string_kv("service.name", "flipt").encode_to_vec(),
    );
    let err = decode_protobuf(&request(&resource, &scope_logs)).unwrap_err();
    assert_eq!(
        err.message,
        "invalid OTLP protobuf: resourceLogs[0]: resource: invalid protobuf: wire type 2 where 0 is expected"
    );

    // scope { dropped_attributes_count: <fixed64> }
    let mut scope = Vec::new();
    put_key(&mut scope, 4, 1);
    scope.extend_from_slice(&[0; 8]);
    let mut bad_scope_logs = Vec::new();
    put_bytes(&mut bad_scope_logs, 1, &scope);
    let err = decode_protobuf(&request(&[], &bad_scope_logs)).unwrap_err();
    assert!(
        err.message
            .ends_with("scopeLogs[0]: scope: invalid protobuf: wire type 1 where 0 is expected"),
        "{}",
        err.message
    );

    // a record attribute { key_strindex: <bytes> }: the record alone is refused
    let mut kv = string_kv("k", "v").encode_to_vec();
    put_bytes(&mut kv, 3, b"x");
    let mut record = Vec::new();
    put_bytes(&mut record, 6, &kv);
    let mut records = Vec::new();
    put_bytes(&mut records, 2, &record);
    let mut valid = Vec::new();
    put_key(&mut valid, 2, 2);
    put_varint(&mut valid, 0);
    records.extend_from_slice(&valid);
    let decoded = decode_protobuf(&request(&[], &records)).unwrap();
    assert_eq!((decoded.batch.len(), decoded.rejected), (1, 1));
    assert_eq!(
        decoded.first_rejection.unwrap().to_string(),
        "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[0].keyStrindex: invalid protobuf: wire type 2 where 0 is expected"
    );
}

mod properties {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, InstrumentationScope, KeyValue, any_value::Value,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use proptest::prelude::*;

    fn any_value() -> impl Strategy<Value = AnyValue> {
        let leaf = prop_oneof![
            ".{0,8}".prop_map(Value::StringValue),
            any::<i64>().prop_map(Value::IntValue),
            any::<bool>().prop_map(Value::BoolValue),
            any::<f64>().prop_map(Value::DoubleValue),
        ]
        .prop_map(|v| AnyValue { value: Some(v) });
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop::collection::vec(("[a-z]{1,4}", inner), 0..4).prop_map(|kvs| AnyValue {
                value: Some(Value::KvlistValue(
                    opentelemetry_proto::tonic::common::v1::KeyValueList {
                        values: kvs
                            .into_iter()
                            .map(|(key, value)| KeyValue {
                                key,
                                value: Some(value),
                                key_strindex: 0,
                            })
                            .collect(),
                    },
                )),
            })
        })
    }

    fn record() -> impl Strategy<Value = LogRecord> {
        (
            prop::option::of(("[a-z]{1,5}", "[a-zA-Z]{1,5}")),
            prop::collection::vec(("[a-z.]{1,8}", any_value()), 0..4),
            prop::option::of(any_value()),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(audit, attrs, body, time, observed)| {
                let mut attributes: Vec<KeyValue> = attrs
                    .into_iter()
                    .filter(|(k, _)| !k.starts_with("audit."))
                    .map(|(key, value)| KeyValue {
                        key,
                        value: Some(value),
                        key_strindex: 0,
                    })
                    .collect();
                if let Some((noun, verb)) = audit {
                    attributes.push(string_kv("audit.type", noun));
                    attributes.push(string_kv("audit.action", verb));
                }
                LogRecord {
                    attributes,
                    body,
                    time_unix_nano: time,
                    observed_time_unix_nano: observed,
                    ..Default::default()
                }
            })
    }

    fn request() -> impl Strategy<Value = ExportLogsServiceRequest> {
        let scope = (prop::collection::vec(record(), 1..4), "[a-z]{0,4}").prop_map(
            |(log_records, name)| ScopeLogs {
                scope: Some(InstrumentationScope {
                    name,
                    ..Default::default()
                }),
                log_records,
                schema_url: String::new(),
            },
        );
        let resource =
            (prop::collection::vec(scope, 1..3), "[a-z]{0,4}").prop_map(|(scope_logs, service)| {
                ResourceLogs {
                    resource: Some(Resource {
                        attributes: vec![string_kv("service.name", service)],
                        ..Default::default()
                    }),
                    scope_logs,
                    schema_url: String::new(),
                }
            });
        prop::collection::vec(resource, 0..3)
            .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
    }

    /// An audit event with actor fields (some repeated, some not strings),
    /// maybe a version and status, and a body.
    fn audit_record() -> impl Strategy<Value = LogRecord> {
        (
            ("[a-zA-Z]{1,5}", "[a-zA-Z]{1,5}"),
            prop::collection::vec(
                (
                    "authentication|ip|email|name|picture|[a-z]{1,4}",
                    any_value(),
                ),
                0..5,
            ),
            prop::option::of("0\\.[0-9]"),
            prop::option::of("[a-z]{1,7}"),
            prop::option::of(any_value()),
            prop::collection::vec(("[a-z.]{1,8}", any_value()), 0..3),
            any::<u64>(),
        )
            .prop_map(
                |((noun, verb), actor, version, status, body, other, time)| {
                    let mut attributes = vec![string_kv("audit.type", noun)];
                    for (key, value) in other.into_iter().filter(|(k, _)| !k.starts_with("audit."))
                    {
                        attributes.push(KeyValue {
                            key,
                            value: Some(value),
                            key_strindex: 0,
                        });
                    }
                    attributes.push(string_kv("audit.action", verb));
                    for (name, value) in actor {
                        attributes.push(KeyValue {
                            key: format!("audit.actor.{name}"),
                            value: Some(value),
                            key_strindex: 0,
                        });
                    }
                    if let Some(v) = version {
                        attributes.push(string_kv("audit.version", v));
                    }
                    if let Some(s) = status {
                        attributes.push(string_kv("audit.status", s));
                    }
                    LogRecord {
                        attributes,
                        body,
                        time_unix_nano: time,
                        ..Default::default()
                    }
                },
            )
    }

    proptest! {
        /// The writers' fast path (parts located at decode) writes what a
        /// walk over the record writes, before and after ingest.
        #[test]
        fn indexed_audit_json_equals_the_walk(records in prop::collection::vec(audit_record(), 1..6)) {
            let request = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    scope_logs: vec![ScopeLogs { log_records: records, ..Default::default() }],
                    ..Default::default()
                }],
            };
            let mut batch = decode_protobuf(&request.encode_to_vec()).unwrap().batch;
            for round in 0..2 {
                for record in batch.records() {
                    let (mut indexed, mut walked) = (Vec::new(), Vec::new());
                    prop_assert!(record.write_audit_json(&mut indexed));
                    prop_assert!(auditcol_model::json::write_audit_event_json(&record.view(), &mut walked));
                    prop_assert_eq!(String::from_utf8(indexed).unwrap(), String::from_utf8(walked).unwrap(), "round {}", round);
                }
                batch.prepare_ingest(7, "otlp");
            }
        }

        /// A request decoded from pieces cut anywhere — a gRPC request's
        /// frames — gives what the joined bytes give: the same records,
        /// the same rejections, the same errors, also for damaged bytes.
        #[test]
        fn decoding_across_cuts_equals_decoding_the_whole(
            request in request(),
            cuts in prop::collection::vec(0usize..2048, 0..12),
            damage in prop::option::of((0usize..2048, any::<u8>())),
        ) {
            let mut bytes = request.encode_to_vec();
            if let Some((at, byte)) = damage && !bytes.is_empty() {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let whole = decode_protobuf(&bytes);
            let message = super::super::chunks::cut(&bytes, &cuts);
            let cut = LogBatch::decode_protobuf_chunks(&message);
            prop_assert_eq!(LogBatch::decode_cost(&message), LogBatch::decode_cost(&Chunks::from(bytes.clone())));
            match (whole, cut) {
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (Ok(a), Ok(b)) => {
                    prop_assert_eq!(a.rejected, b.rejected);
                    prop_assert_eq!(a.first_rejection, b.first_rejection);
                    prop_assert_eq!(a.batch.encode_protobuf(), b.batch.encode_protobuf());
                    for (x, y) in a.batch.records().zip(b.batch.records()) {
                        let (mut jx, mut jy) = (Vec::new(), Vec::new());
                        prop_assert_eq!(x.write_audit_json(&mut jx), y.write_audit_json(&mut jy));
                        prop_assert_eq!(jx, jy);
                    }
                }
                (a, b) => prop_assert!(false, "whole {:?} vs cut {:?}", a.map(|d| d.rejected), b.map(|d| d.rejected)),
            }
        }

        /// Decode and encode pass every record through unchanged; split and
        /// merge keep order; the index agrees with prost's decoding.
        #[test]
        fn decode_encode_split_merge_preserve_the_request(request in request(), at in 0usize..12) {
            let bytes = request.encode_to_vec();
            let decoded = decode_protobuf(&bytes).unwrap();
            prop_assert_eq!(decoded.rejected, 0);
            let batch = decoded.batch;
            let back = ExportLogsServiceRequest::decode(batch.encode_protobuf().as_slice()).unwrap();
            // NaN != NaN: compare encodings.
            prop_assert_eq!(back.encode_to_vec(), bytes);
            let records: Vec<&LogRecord> = request.resource_logs.iter()
                .flat_map(|r| &r.scope_logs).flat_map(|s| &s.log_records).collect();
            prop_assert_eq!(batch.len(), records.len());
            for (got, want) in batch.records().zip(&records) {
                prop_assert_eq!(got.time_unix_nano(), want.time_unix_nano);
                prop_assert_eq!(got.observed_time_unix_nano(), want.observed_time_unix_nano);
                let attrs = &want.attributes;
                prop_assert_eq!(got.audit_type(), auditcol_model::str_attribute(attrs, "audit.type"));
                prop_assert_eq!(got.audit_action(), auditcol_model::str_attribute(attrs, "audit.action"));
                prop_assert_eq!(got.body_json(), auditcol_model::anyvalue::value_to_json(want.body.as_ref().and_then(|b| b.value.as_ref())));
            }
            let mut rest = batch.clone();
            let mut front = rest.split_front(at);
            prop_assert_eq!(front.len() + rest.len(), batch.len());
            front.merge(rest);
            let merged: Vec<u64> = front.records().map(|r| r.time_unix_nano()).collect();
            let original: Vec<u64> = batch.records().map(|r| r.time_unix_nano()).collect();
            prop_assert_eq!(merged, original);
        }
    }
}
