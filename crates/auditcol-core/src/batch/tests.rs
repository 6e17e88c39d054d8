use super::*;
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

#[test]
fn protobuf_round_trip() {
    let batch = LogBatch::sample_audit(5);
    let bytes = batch.encode_protobuf();
    assert_eq!(bytes.len(), batch.encoded_len());
    assert_eq!(LogBatch::decode_protobuf(&bytes).unwrap(), batch);
}

#[test]
fn otlp_json_round_trip() {
    let batch = LogBatch::sample_audit(5);
    let mut out = Vec::new();
    batch.write_otlp_json(&mut out);
    assert_eq!(LogBatch::decode_json(&out).unwrap(), batch);
}

#[test]
fn json_accepts_int64_as_strings_and_hex_ids() {
    let batch = LogBatch::decode_json(&otlp_json(json!([{
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
    let batch = LogBatch::decode_json(&otlp_json(json!([
        {"body": {"kvlistValue": {}}},
        {"body": {"arrayValue": {}}}
    ])))
    .unwrap();
    let bodies: Vec<_> = batch.records().map(|r| r.body_json()).collect();
    assert_eq!(bodies, vec![json!({}), json!([])]);
}

#[test]
fn json_treats_null_fields_as_absent() {
    let batch =
        LogBatch::decode_json(&otlp_json(json!([{"attributes": null, "body": null}]))).unwrap();
    assert_eq!(batch.len(), 1);
}

#[test]
fn json_treats_invalid_trace_ids_as_absent() {
    let batch =
        LogBatch::decode_json(&otlp_json(json!([{"traceId": "not-hex", "spanId": "12"}]))).unwrap();
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
    let err = LogBatch::decode_json(b"[1,2]").unwrap_err();
    assert!(
        err.message
            .contains("must be an ExportLogsServiceRequest object")
    );
    let err = LogBatch::decode_json(b"{").unwrap_err();
    assert!(err.message.starts_with("invalid JSON"));
}

#[test]
fn protobuf_errors_say_what_failed() {
    let err = LogBatch::decode_protobuf(&[0x0a, 0xff, 0xff]).unwrap_err();
    assert!(
        err.message.starts_with("invalid OTLP protobuf"),
        "{}",
        err.message
    );
}

#[test]
fn validate_names_the_bad_record() {
    let batch = LogBatch::decode_json(&otlp_json(json!([
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}},
                        {"key": "audit.action", "value": {"stringValue": "created"}}]},
        {"attributes": [{"key": "audit.type", "value": {"stringValue": "flag"}}]}
    ])))
    .unwrap();
    let err = batch.validate().unwrap_err();
    assert_eq!(err.path, "resourceLogs[0].scopeLogs[0].logRecords[1]");
    assert!(
        err.reason.contains("`audit.action` is missing"),
        "{}",
        err.reason
    );
}

#[test]
fn prepare_ingest_fills_observed_time_id_source_and_event_name() {
    let mut batch = LogBatch::decode_json(&otlp_json(json!([
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
