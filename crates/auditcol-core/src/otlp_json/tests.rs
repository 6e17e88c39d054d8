//! Both directions are held to their twins: `prost` for protobuf and
//! `serde_json` over `opentelemetry-proto`'s generated types for JSON (what
//! `LogBatch` wrote before this module).

use super::*;
use auditcol_model::view::MAX_ANY_VALUE_DEPTH;
use auditcol_model::wire::put_bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, EntityRef, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use proptest::prelude::*;
use prost::Message;

/// The twin of `protobuf_to_json`: what `LogBatch::write_otlp_json` writes.
fn serde_output(request: &ExportLogsServiceRequest) -> Vec<u8> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Request<'a> {
        resource_logs: &'a [ResourceLogs],
    }
    serde_json::to_vec(&Request {
        resource_logs: &request.resource_logs,
    })
    .expect("serialising into memory")
}

fn to_json(protobuf: &[u8]) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    protobuf_to_json(protobuf, &mut out)?;
    Ok(out)
}

fn to_protobuf(json: &str) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::new();
    json_to_protobuf(json.as_bytes(), &mut out)?;
    Ok(out)
}

/// A request holding the records written as JSON in `records` (the inside
/// of the `logRecords` array).
fn request_json(records: &str) -> String {
    format!(r#"{{"resourceLogs":[{{"scopeLogs":[{{"logRecords":[{records}]}}]}}]}}"#)
}

const RECORD: &str = "resourceLogs[0].scopeLogs[0].logRecords[0]";

/// The one record of `request_json(record)`, decoded by prost from what
/// `json_to_protobuf` wrote.
fn decode_record(record: &str) -> LogRecord {
    let json = request_json(record);
    let bytes = to_protobuf(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let request = ExportLogsServiceRequest::decode(&bytes[..]).expect("prost decodes the output");
    // The output is canonical: prost writes the same bytes back.
    assert_eq!(request.encode_to_vec(), bytes, "{json}");
    let mut records = request
        .resource_logs
        .into_iter()
        .flat_map(|rl| rl.scope_logs)
        .flat_map(|sl| sl.log_records);
    let record = records.next().expect("one record");
    assert!(records.next().is_none());
    record
}

fn value(v: Value) -> Option<AnyValue> {
    Some(AnyValue { value: Some(v) })
}

fn body(v: Value) -> LogRecord {
    LogRecord {
        body: value(v),
        ..Default::default()
    }
}

fn kv(key: &str, v: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: v,
        key_strindex: 0,
    }
}

/// An `AnyValue` of `depth` levels: arrays around an int.
fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 1..depth {
        v = AnyValue {
            value: Some(Value::ArrayValue(ArrayValue { values: vec![v] })),
        };
    }
    v
}

/// An `AnyValue` of `depth` levels: kvlists around an int (four JSON levels each).
fn nested_kvlist(depth: usize) -> AnyValue {
    let mut v = AnyValue {
        value: Some(Value::IntValue(1)),
    };
    for _ in 1..depth {
        v = AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("k", Some(v))],
            })),
        };
    }
    v
}

fn request_with_body(v: AnyValue) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    body: Some(v),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

const TRACE: [u8; 16] = [
    0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c,
];
const SPAN: [u8; 8] = [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74];

#[test]
fn proto3_json_forms_are_accepted() {
    let time = |t| LogRecord {
        time_unix_nano: t,
        ..Default::default()
    };
    let cases: Vec<(&str, LogRecord)> = vec![
        // 64-bit integers: numbers or strings, exponent forms when integral.
        (
            r#"{"timeUnixNano":"1714557600000000000"}"#,
            time(1_714_557_600_000_000_000),
        ),
        (
            r#"{"timeUnixNano":1714557600000000000}"#,
            time(1_714_557_600_000_000_000),
        ),
        (r#"{"timeUnixNano":1e3}"#, time(1000)),
        (r#"{"timeUnixNano":"1e3"}"#, time(1000)),
        (r#"{"timeUnixNano":"1.5E3"}"#, time(1500)),
        (r#"{"timeUnixNano":2.0}"#, time(2)),
        (r#"{"timeUnixNano":18446744073709551615}"#, time(u64::MAX)),
        (r#"{"timeUnixNano":"18446744073709551615"}"#, time(u64::MAX)),
        (r#"{"timeUnixNano":"\u0031\u0032"}"#, time(12)),
        (r#"{"timeUnixNano":0}"#, time(0)),
        (r#"{"timeUnixNano":"-0"}"#, time(0)),
        (
            r#"{"observedTimeUnixNano":"7","timeUnixNano":"5"}"#,
            LogRecord {
                time_unix_nano: 5,
                observed_time_unix_nano: 7,
                ..Default::default()
            },
        ),
        // 32-bit integers likewise.
        (
            r#"{"flags":"257","droppedAttributesCount":3e0}"#,
            LogRecord {
                flags: 257,
                dropped_attributes_count: 3,
                ..Default::default()
            },
        ),
        (
            r#"{"flags":4294967295}"#,
            LogRecord {
                flags: u32::MAX,
                ..Default::default()
            },
        ),
        // Enums: name or number (unknown numbers too: proto3 enums are open).
        (
            r#"{"severityNumber":"SEVERITY_NUMBER_INFO"}"#,
            LogRecord {
                severity_number: 9,
                ..Default::default()
            },
        ),
        (
            r#"{"severityNumber":13}"#,
            LogRecord {
                severity_number: 13,
                ..Default::default()
            },
        ),
        (
            r#"{"severityNumber":-3}"#,
            LogRecord {
                severity_number: -3,
                ..Default::default()
            },
        ),
        (
            r#"{"severityNumber":"SEVERITY_NUMBER_UNSPECIFIED"}"#,
            LogRecord::default(),
        ),
        // Ids: hex in either case; empty is absent.
        (
            r#"{"traceId":"5B8EFFF798038103d269b633813fc60c","spanId":"EEE19B7EC3C1B174"}"#,
            LogRecord {
                trace_id: TRACE.to_vec(),
                span_id: SPAN.to_vec(),
                ..Default::default()
            },
        ),
        (r#"{"traceId":"","spanId":""}"#, LogRecord::default()),
        // The original proto field names.
        (
            r#"{"time_unix_nano":"5","observed_time_unix_nano":6,"severity_number":"SEVERITY_NUMBER_WARN",
                "severity_text":"WARN","dropped_attributes_count":1,"trace_id":"5b8efff798038103d269b633813fc60c",
                "span_id":"eee19b7ec3c1b174","event_name":"e",
                "attributes":[{"key":"k","key_strindex":4,"value":{"string_value":"v"}}]}"#,
            LogRecord {
                time_unix_nano: 5,
                observed_time_unix_nano: 6,
                severity_number: 13,
                severity_text: "WARN".into(),
                dropped_attributes_count: 1,
                trace_id: TRACE.to_vec(),
                span_id: SPAN.to_vec(),
                event_name: "e".into(),
                attributes: vec![KeyValue {
                    key: "k".into(),
                    value: value(Value::StringValue("v".into())),
                    key_strindex: 4,
                }],
                ..Default::default()
            },
        ),
        // Doubles: numbers, numeric strings, the special strings.
        (
            r#"{"body":{"doubleValue":1.5}}"#,
            body(Value::DoubleValue(1.5)),
        ),
        (
            r#"{"body":{"doubleValue":2}}"#,
            body(Value::DoubleValue(2.0)),
        ),
        (
            r#"{"body":{"doubleValue":"1.5"}}"#,
            body(Value::DoubleValue(1.5)),
        ),
        (
            r#"{"body":{"doubleValue":"-2.5e-3"}}"#,
            body(Value::DoubleValue(-0.0025)),
        ),
        (
            r#"{"body":{"doubleValue":"Infinity"}}"#,
            body(Value::DoubleValue(f64::INFINITY)),
        ),
        (
            r#"{"body":{"doubleValue":"-Infinity"}}"#,
            body(Value::DoubleValue(f64::NEG_INFINITY)),
        ),
        (
            r#"{"body":{"double_value":0}}"#,
            body(Value::DoubleValue(0.0)),
        ),
        // intValue: numbers or strings; a oneof member is kept even when zero.
        (r#"{"body":{"intValue":"-42"}}"#, body(Value::IntValue(-42))),
        (r#"{"body":{"intValue":-42}}"#, body(Value::IntValue(-42))),
        (r#"{"body":{"intValue":"1e2"}}"#, body(Value::IntValue(100))),
        (r#"{"body":{"intValue":0}}"#, body(Value::IntValue(0))),
        (
            r#"{"body":{"intValue":"-9223372036854775808"}}"#,
            body(Value::IntValue(i64::MIN)),
        ),
        (
            r#"{"body":{"boolValue":false}}"#,
            body(Value::BoolValue(false)),
        ),
        (
            r#"{"body":{"stringValue":""}}"#,
            body(Value::StringValue(String::new())),
        ),
        (
            r#"{"body":{"stringValue":"h\u00e9\n"}}"#,
            body(Value::StringValue("hé\n".into())),
        ),
        (
            r#"{"body":{"stringValueStrindex":7}}"#,
            body(Value::StringValueStrindex(7)),
        ),
        // Bytes: standard or URL-safe base64, padded or not.
        (
            r#"{"body":{"bytesValue":"aGk="}}"#,
            body(Value::BytesValue(b"hi".to_vec())),
        ),
        (
            r#"{"body":{"bytesValue":"aGk"}}"#,
            body(Value::BytesValue(b"hi".to_vec())),
        ),
        (
            r#"{"body":{"bytesValue":"+/8="}}"#,
            body(Value::BytesValue(vec![0xfb, 0xff])),
        ),
        (
            r#"{"body":{"bytesValue":"-_8"}}"#,
            body(Value::BytesValue(vec![0xfb, 0xff])),
        ),
        (
            r#"{"body":{"bytes_value":""}}"#,
            body(Value::BytesValue(Vec::new())),
        ),
        // null is absent, wherever it is.
        (
            r#"{"attributes":null,"body":null,"timeUnixNano":null,"traceId":null}"#,
            LogRecord::default(),
        ),
        (
            r#"{"attributes":[{"key":"k","value":null}]}"#,
            LogRecord {
                attributes: vec![kv("k", None)],
                ..Default::default()
            },
        ),
        (
            r#"{"body":{"stringValue":null}}"#,
            LogRecord {
                body: Some(AnyValue { value: None }),
                ..Default::default()
            },
        ),
        (
            r#"{"body":{"stringValue":null,"intValue":3}}"#,
            body(Value::IntValue(3)),
        ),
        // Empty containers and values.
        (
            r#"{"body":{"kvlistValue":{}}}"#,
            body(Value::KvlistValue(KeyValueList::default())),
        ),
        (
            r#"{"body":{"arrayValue":{}}}"#,
            body(Value::ArrayValue(ArrayValue::default())),
        ),
        (
            r#"{"body":{"arrayValue":{"values":null}}}"#,
            body(Value::ArrayValue(ArrayValue::default())),
        ),
        (
            r#"{"body":{}}"#,
            LogRecord {
                body: Some(AnyValue { value: None }),
                ..Default::default()
            },
        ),
        (r#"{}"#, LogRecord::default()),
        // Unknown fields are ignored, whatever their value.
        (
            r#"{"x1":1,"x2":"s","x3":null,"x4":true,"x5":[1,[2,{"a":[]}]],"x6":{"b":{"c":[{}]}},"x7":-1.5e9,
                "timeUnixNano":"1","body":{"future":{"a":1},"stringValue":"v","alsoFuture":[]},
                "attributes":[{"key":"k","v2":[],"value":{"boolValue":true,"extra":"x"}}]}"#,
            LogRecord {
                time_unix_nano: 1,
                body: value(Value::StringValue("v".into())),
                attributes: vec![kv("k", value(Value::BoolValue(true)))],
                ..Default::default()
            },
        ),
        // Keys written with escapes are the same keys.
        (r#"{"time\u0055nixNano":"3"}"#, time(3)),
    ];
    for (json, expected) in cases {
        assert_eq!(decode_record(json), expected, "{json}");
    }
}

#[test]
fn nan_is_accepted_as_a_string() {
    let record = decode_record(r#"{"body":{"doubleValue":"NaN"}}"#);
    match record.body.and_then(|b| b.value) {
        Some(Value::DoubleValue(d)) => assert!(d.is_nan()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn containers_accept_snake_case_nulls_and_unknown_fields() {
    let json = r#"{"resource_logs":[
        {"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"s"}}],
                     "dropped_attributes_count":2,
                     "entity_refs":[{"schema_url":"u","type":"service","id_keys":["service.name"],"description_keys":[]}]},
         "schema_url":"r","unknown":{"deep":[[[]]]},
         "scope_logs":[{"scope":{"name":"n","version":"1","attributes":[],"dropped_attributes_count":1},
                        "log_records":[{}],"schema_url":"s"},
                       {"scope":null,"logRecords":null}]},
        {"resource":null,"scopeLogs":null}],
        "partialSuccess":{}}"#;
    let bytes = to_protobuf(json).unwrap();
    let expected = ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", value(Value::StringValue("s".into())))],
                    dropped_attributes_count: 2,
                    entity_refs: vec![EntityRef {
                        schema_url: "u".into(),
                        r#type: "service".into(),
                        id_keys: vec!["service.name".into()],
                        description_keys: vec![],
                    }],
                }),
                scope_logs: vec![
                    ScopeLogs {
                        scope: Some(InstrumentationScope {
                            name: "n".into(),
                            version: "1".into(),
                            attributes: vec![],
                            dropped_attributes_count: 1,
                        }),
                        log_records: vec![LogRecord::default()],
                        schema_url: "s".into(),
                    },
                    ScopeLogs::default(),
                ],
                schema_url: "r".into(),
            },
            ResourceLogs::default(),
        ],
    };
    assert_eq!(bytes, expected.encode_to_vec());
}

#[test]
fn keys_in_any_order_give_the_canonical_encoding() {
    let json = request_json(
        r#"{"eventName":"e","attributes":[{"value":{"intValue":"1"},"key":"a"}],"flags":1,
            "body":{"kvlistValue":{"values":[{"value":{"stringValue":"v"},"key":"k"}]}},
            "observedTimeUnixNano":"2","spanId":"eee19b7ec3c1b174","timeUnixNano":"1","severityNumber":9}"#,
    );
    let record = LogRecord {
        time_unix_nano: 1,
        observed_time_unix_nano: 2,
        severity_number: 9,
        flags: 1,
        span_id: SPAN.to_vec(),
        event_name: "e".into(),
        attributes: vec![kv("a", value(Value::IntValue(1)))],
        body: value(Value::KvlistValue(KeyValueList {
            values: vec![kv("k", value(Value::StringValue("v".into())))],
        })),
        ..Default::default()
    };
    let mut expected = request_with_body(AnyValue::default());
    expected.resource_logs[0].scope_logs[0].log_records[0] = record;
    assert_eq!(to_protobuf(&json).unwrap(), expected.encode_to_vec());
}

#[test]
fn large_messages_get_multi_byte_lengths() {
    let long = "x".repeat(20_000);
    let json = request_json(&format!(r#"{{"body":{{"stringValue":"{long}"}}}}"#));
    let expected = request_with_body(value(Value::StringValue(long)).unwrap_or_default());
    assert_eq!(to_protobuf(&json).unwrap(), expected.encode_to_vec());
}

/// `(JSON of the request, path, a substring of the reason)`.
type Rejection<'a> = (String, &'a str, &'a str);

#[test]
fn invalid_requests_are_refused_with_path_and_reason() {
    let record = |json: &str| request_json(json);
    let at = |field: &str| format!("{RECORD}.{field}");
    let time = at("timeUnixNano");
    let trace = at("traceId");
    let span = at("spanId");
    let body = at("body");
    let int_value = at("body.intValue");
    let flags = at("flags");
    let dropped = at("droppedAttributesCount");
    let severity = at("severityNumber");
    let double = at("body.doubleValue");
    let boolean = at("body.boolValue");
    let bytes = at("body.bytesValue");
    let attributes = at("attributes");
    let attribute = at("attributes[0]");
    let key = at("attributes[0].key");
    let kvlist = at("body.kvlistValue");
    let severity_text = at("severityText");
    #[rustfmt::skip]
    let cases: Vec<Rejection<'_>> = vec![
        // Duplicate keys, known (under either name) or not.
        (record(r#"{"timeUnixNano":"1","timeUnixNano":"2"}"#), RECORD, r#"duplicate key "timeUnixNano""#),
        (record(r#"{"timeUnixNano":"1","time_unix_nano":"2"}"#), RECORD, r#"duplicate key "time_unix_nano""#),
        (record(r#"{"x":1,"x":{}}"#), RECORD, r#"duplicate key "x""#),
        (record(r#"{"body":null,"body":{}}"#), RECORD, r#"duplicate key "body""#),
        (r#"{"resourceLogs":[],"resourceLogs":[]}"#.into(), "", r#"duplicate key "resourceLogs""#),
        // Ids of the wrong length or not hex.
        (record(r#"{"traceId":"abc"}"#), &trace, "expected 32 hex digits (a 16-byte trace id)"),
        (record(r#"{"traceId":"5b8efff798038103d269b633813fc60g"}"#), &trace, r#"found "5b8efff798038103d269b633813fc60g""#),
        (record(r#"{"spanId":"5b8efff798038103d269b633813fc60c"}"#), &span, "expected 16 hex digits (an 8-byte span id)"),
        (record(r#"{"spanId":"eee19b7ec3c1b17é"}"#), &span, "expected 16 hex digits"),
        (record(r#"{"traceId":12}"#), &trace, "expected a string of 32 hex digits, found 12"),
        // Integers that are not, or not in range.
        (record(r#"{"timeUnixNano":"abc"}"#), &time, r#"expected an integer (number or string), found "abc""#),
        (record(r#"{"timeUnixNano":1.5}"#), &time, "expected an integer, found 1.5 (it has a fractional part)"),
        (record(r#"{"timeUnixNano":"1e-1"}"#), &time, "fractional part"),
        (record(r#"{"timeUnixNano":"-1"}"#), &time, r#""-1" is out of range for an unsigned 64-bit integer"#),
        (record(r#"{"timeUnixNano":18446744073709551616}"#), &time, "out of range"),
        (record(r#"{"timeUnixNano":1e20}"#), &time, "out of range"),
        (record(r#"{"timeUnixNano":" 1"}"#), &time, "expected an integer"),
        (record(r#"{"timeUnixNano":true}"#), &time, "expected an integer (number or string), found true"),
        (record(r#"{"timeUnixNano":{"x":1}}"#), &time, "found an object"),
        (record(r#"{"body":{"intValue":"9223372036854775808"}}"#), &int_value, "out of range for a 64-bit integer"),
        (record(r#"{"flags":4294967296}"#), &flags, "out of range for an unsigned 32-bit integer"),
        (record(r#"{"droppedAttributesCount":-1}"#), &dropped, "out of range"),
        (record(r#"{"severityNumber":2147483648}"#), &severity, "out of range for a 32-bit integer"),
        // Enums, doubles, booleans, bytes.
        (record(r#"{"severityNumber":"INFO"}"#), &severity, r#"expected a severity number or name"#),
        (record(r#"{"severityNumber":"9"}"#), &severity, r#"found "9""#),
        (record(r#"{"body":{"doubleValue":"1.5x"}}"#), &double, "expected a number"),
        (record(r#"{"body":{"doubleValue":"inf"}}"#), &double, "expected a number"),
        (record(r#"{"body":{"doubleValue":1e400}}"#), &double, "out of range for a double"),
        (record(r#"{"body":{"boolValue":"true"}}"#), &boolean, r#"expected true or false, found "true""#),
        (record(r#"{"body":{"bytesValue":"a"}}"#), &bytes, "expected base64"),
        (record(r#"{"body":{"bytesValue":"a+b-"}}"#), &bytes, "expected base64"),
        // Wrong types.
        (record(r#"{"body":"hi"}"#), &body, r#"expected an AnyValue object, found "hi""#),
        (record(r#"{"attributes":{}}"#), &attributes, "expected an array of KeyValue objects, found an object"),
        (record(r#"{"attributes":[null]}"#), &attribute, "expected a KeyValue object, found null"),
        (record(r#"{"severityText":5}"#), &severity_text, "expected a string, found 5"),
        (record(r#"{"attributes":[{"key":["k"]}]}"#), &key, "expected a string, found an array"),
        (record(r#"{"body":{"kvlistValue":[]}}"#), &kvlist, "expected a KeyValueList object, found an array"),
        (r#"{"resourceLogs":[{"resource":{"entityRefs":[{"idKeys":[null]}]}}]}"#.into(), "resourceLogs[0].resource.entityRefs[0].idKeys[0]", "expected a string, found null"),
        (r#"{"resourceLogs":[{"resource":{"entityRefs":[{"idKeys":"k"}]}}]}"#.into(), "resourceLogs[0].resource.entityRefs[0].idKeys", "expected an array of strings"),
        (r#"{"resourceLogs":[null]}"#.into(), "resourceLogs[0]", "expected a ResourceLogs object, found null"),
        (r#"{"resourceLogs":{}}"#.into(), "resourceLogs", "expected an array of ResourceLogs objects, found an object"),
        // An AnyValue holds one value.
        (record(r#"{"body":{"stringValue":"a","intValue":1}}"#), &int_value, "an AnyValue holds one value, found both stringValue and intValue"),
        // The top level is an object.
        ("[1,2]".into(), "", "expected an ExportLogsServiceRequest object, found an array"),
        ("null".into(), "", "expected an ExportLogsServiceRequest object, found null"),
        (r#""x""#.into(), "", r#"found "x""#),
        ("12".into(), "", "found 12"),
        // Not JSON.
        (r#"{"resourceLogs":[{"#.into(), "resourceLogs[0]", "invalid JSON: EOF while parsing an object"),
        (record(r#"{"timeUnixNano":"1""#), RECORD, "invalid JSON:"),
        ("".into(), "", "invalid JSON: EOF while parsing a value"),
        ("{} {}".into(), "", "invalid JSON: trailing characters"),
        (r#"{"resourceLogs":[]"#.into(), "", "invalid JSON: EOF"),
        ("{\"resourceLogs\":[],\"x\":\"\u{1}\"}".into(), "", "invalid JSON: control character"),
    ];
    for (json, path, reason) in cases {
        let mut out = b"kept".to_vec();
        let err =
            json_to_protobuf(json.as_bytes(), &mut out).expect_err(&format!("{json} is refused"));
        assert_eq!(err.path, path, "{json}: {err}");
        assert!(err.reason.contains(reason), "{json}: {err}");
        assert_eq!(out, b"kept", "{json}: the output is left as it was");
    }
}

#[test]
fn errors_display_path_then_reason() {
    let err = to_protobuf(&request_json(r#"{"timeUnixNano":"abc"}"#)).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano: expected an integer (number or string), found "abc""#
    );
    let err = to_protobuf("[]").unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected an ExportLogsServiceRequest object, found an array"
    );
}

#[test]
fn nesting_is_bounded_alike_in_json_and_protobuf() {
    for deep in [nested as fn(usize) -> AnyValue, nested_kvlist] {
        let ok = request_with_body(deep(MAX_ANY_VALUE_DEPTH));
        let bytes = ok.encode_to_vec();
        let json = to_json(&bytes).expect("the limit itself passes");
        assert_eq!(json, serde_output(&ok));
        let json = String::from_utf8(json).unwrap();
        assert_eq!(to_protobuf(&json).expect("the limit itself passes"), bytes);

        let too_deep = request_with_body(deep(MAX_ANY_VALUE_DEPTH + 1));
        let err = to_json(&too_deep.encode_to_vec()).unwrap_err();
        assert!(err.path.starts_with(&format!("{RECORD}.body.")), "{err}");
        assert!(err.reason.contains("nest more than 32"), "{err}");
        let err = to_protobuf(&String::from_utf8(serde_output(&too_deep)).unwrap()).unwrap_err();
        assert!(err.path.starts_with(&format!("{RECORD}.body.")), "{err}");
        assert!(err.reason.contains("nest more than 32"), "{err}");
    }
    let depth_of = |path: &str| path.matches("values[").count() + 1;
    let err =
        to_protobuf(&String::from_utf8(serde_output(&request_with_body(nested(40)))).unwrap())
            .unwrap_err();
    assert_eq!(depth_of(&err.path), MAX_ANY_VALUE_DEPTH + 1, "{}", err.path);
}

#[test]
fn deep_unknown_fields_do_not_exhaust_the_stack() {
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let json = request_json(&format!(r#"{{"future":{deep},"timeUnixNano":"1"}}"#));
    assert!(to_protobuf(&json).is_ok());
    // Unclosed, it is a syntax error, not a crash.
    let json = format!(r#"{{"future":{}"#, "{\"a\":".repeat(100_000));
    assert!(
        to_protobuf(&json)
            .unwrap_err()
            .reason
            .starts_with("invalid JSON")
    );
}

#[test]
fn many_unknown_keys_are_skipped_and_their_duplicates_found() {
    let keys: Vec<String> = (0..100_000).map(|i| format!(r#""k{i}":[{i}]"#)).collect();
    let json = request_json(&format!("{{{}}}", keys.join(",")));
    assert_eq!(decode_record_json_len(&json), 1);
    let json = request_json(&format!(r#"{{{},"k7":null}}"#, keys.join(",")));
    let err = to_protobuf(&json).unwrap_err();
    assert_eq!(
        (err.path.as_str(), err.reason.as_str()),
        (RECORD, r#"duplicate key "k7""#)
    );
}

fn decode_record_json_len(json: &str) -> usize {
    let bytes = to_protobuf(json).unwrap();
    let request = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
    request.resource_logs[0].scope_logs[0].log_records.len()
}

#[test]
fn long_values_are_shortened_in_errors() {
    let digits = "1".repeat(1000);
    let err = to_protobuf(&request_json(&format!(r#"{{"timeUnixNano":{digits}}}"#))).unwrap_err();
    assert!(err.reason.len() < 200, "{err}");
    assert!(
        err.reason.ends_with(
            "… is out of range for an unsigned 64-bit integer (0 to 18446744073709551615)"
        ),
        "{err}"
    );
    let err = to_protobuf(&request_json(&format!(r#"{{"traceId":"{digits}"}}"#))).unwrap_err();
    assert!(err.reason.len() < 200, "{err}");
}

#[test]
fn special_doubles_survive_protobuf_to_json_to_protobuf() {
    for d in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let request = request_with_body(value(Value::DoubleValue(d)).unwrap_or_default());
        let bytes = request.encode_to_vec();
        let json = to_json(&bytes).unwrap();
        let text = String::from_utf8(json).unwrap();
        let expected = if d.is_nan() {
            "NaN"
        } else if d > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        };
        assert!(
            text.contains(&format!(r#""doubleValue":"{expected}""#)),
            "{text}"
        );
        assert_eq!(to_protobuf(&text).unwrap(), bytes, "{text}");
    }
}

#[test]
fn output_is_appended() {
    let request = sample_request(2);
    let protobuf = request.encode_to_vec();
    let mut out = b"before".to_vec();
    protobuf_to_json(&protobuf, &mut out).unwrap();
    assert_eq!(out[6..], serde_output(&request)[..]);
    let json = out.split_off(6);
    json_to_protobuf(&json, &mut out).unwrap();
    assert_eq!(out[..6], *b"before");
    assert_eq!(out[6..], protobuf[..]);
}

#[test]
fn an_empty_request_converts_both_ways() {
    assert_eq!(to_json(&[]).unwrap(), br#"{"resourceLogs":[]}"#);
    assert_eq!(to_protobuf("{}").unwrap(), Vec::<u8>::new());
    assert_eq!(
        to_protobuf(r#"{"resourceLogs":[]}"#).unwrap(),
        Vec::<u8>::new()
    );
}

#[test]
fn malformed_protobuf_is_refused_with_its_path() {
    let record = LogRecord {
        attributes: vec![kv("k", value(Value::StringValue("é".into())))],
        ..Default::default()
    };
    let mut request = request_with_body(AnyValue::default());
    request.resource_logs[0].scope_logs[0].log_records[0] = record;
    let mut bytes = request.encode_to_vec();
    let at = bytes.len() - 1; // the second byte of "é"
    bytes[at] = 0xff;
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            bytes,
            "resourceLogs[0].scopeLogs[0].logRecords[0].attributes[0].value.stringValue",
            "not UTF-8",
        ),
        (vec![0x0a, 0x05, 0x01], "", "truncated"),
        (
            vec![0x08, 0x01],
            "resourceLogs",
            "wire type 0 where 2 is expected",
        ),
        // A record whose timeUnixNano (field 1) is a varint.
        (
            vec![0x0a, 0x06, 0x12, 0x04, 0x12, 0x02, 0x08, 0x01],
            "resourceLogs[0].scopeLogs[0].logRecords[0].timeUnixNano",
            "wire type",
        ),
        (vec![0x0b], "", "unsupported wire type 3"),
    ];
    for (bytes, path, reason) in cases {
        let mut out = b"kept".to_vec();
        let err = protobuf_to_json(&bytes, &mut out).expect_err("refused");
        assert_eq!(err.path, path, "{bytes:?}: {err}");
        assert!(err.reason.contains(reason), "{bytes:?}: {err}");
        assert_eq!(out, b"kept");
    }
}

/// A request of `n` audit events as the collector writes them (the shape of
/// `LogBatch::sample_audit`), with trace context and an observed time.
fn sample_request(n: usize) -> ExportLogsServiceRequest {
    use auditcol_model::{AuditEvent, string_kv};
    let log_records = (0..n)
        .map(|i| {
            let mut e = AuditEvent::new(["flag", "segment"][i % 2], ["created", "deleted"][i % 2]);
            e.metadata.actor.authentication = Some("none".into());
            e.metadata.actor.ip = Some("127.0.0.1".into());
            e.payload =
                serde_json::json!({"key": format!("flag-{i}"), "enabled": true, "rollout": 0.25});
            e.timestamp = 1_714_557_600_000_000_000 + i as u64;
            let mut record = e.to_log_record();
            record.observed_time_unix_nano = record.time_unix_nano + 1;
            record.trace_id = TRACE.to_vec();
            record.span_id = SPAN.to_vec();
            record.attributes.push(string_kv("audit.source", "test"));
            record
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", "test")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: "auditcol".into(),
                    ..Default::default()
                }),
                log_records,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[test]
fn audit_events_match_the_serde_path() {
    let request = sample_request(20);
    let bytes = request.encode_to_vec();
    assert_eq!(to_json(&bytes).unwrap(), serde_output(&request));
    let json = String::from_utf8(serde_output(&request)).unwrap();
    assert_eq!(to_protobuf(&json).unwrap(), bytes);
}

// ---- property tests ----

fn text() -> impl Strategy<Value = String> {
    "(?s).{0,12}"
}

fn leaf_value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        Just(None),
        text().prop_map(|s| Some(Value::StringValue(s))),
        any::<bool>().prop_map(|b| Some(Value::BoolValue(b))),
        any::<i64>().prop_map(|i| Some(Value::IntValue(i))),
        any::<f64>()
            .prop_filter("finite", |d| d.is_finite())
            .prop_map(|d| Some(Value::DoubleValue(d))),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| Some(Value::BytesValue(b))),
        any::<i32>().prop_map(|i| Some(Value::StringValueStrindex(i))),
    ]
    .prop_map(|value| AnyValue { value })
}

fn key_value(values: impl Strategy<Value = AnyValue>) -> impl Strategy<Value = KeyValue> {
    (
        text(),
        prop::option::of(values),
        prop_oneof![3 => Just(0), 1 => any::<i32>()],
    )
        .prop_map(|(key, value, key_strindex)| KeyValue {
            key,
            value,
            key_strindex,
        })
}

fn any_value() -> impl Strategy<Value = AnyValue> {
    leaf_value().prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::ArrayValue(ArrayValue { values })),
            }),
            prop::collection::vec(key_value(inner), 0..4).prop_map(|values| AnyValue {
                value: Some(Value::KvlistValue(KeyValueList { values })),
            }),
        ]
    })
}

fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(key_value(any_value()), 0..4)
}

fn id(len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), prop::collection::vec(any::<u8>(), len)]
}

prop_compose! {
    fn log_record()(
        time_unix_nano in any::<u64>(),
        observed_time_unix_nano in any::<u64>(),
        severity_number in prop_oneof![0..=24i32, any::<i32>()],
        severity_text in text(),
        body in prop::option::of(any_value()),
        attributes in attributes(),
        dropped_attributes_count in prop_oneof![Just(0), any::<u32>()],
        flags in prop_oneof![Just(0), any::<u32>()],
        trace_id in id(16),
        span_id in id(8),
        event_name in text(),
    ) -> LogRecord {
        LogRecord {
            time_unix_nano, observed_time_unix_nano, severity_number, severity_text, body,
            attributes, dropped_attributes_count, flags, trace_id, span_id, event_name,
        }
    }
}

prop_compose! {
    fn resource()(
        attributes in attributes(),
        dropped_attributes_count in prop_oneof![Just(0), any::<u32>()],
        entity_refs in prop::collection::vec(
            (text(), text(), prop::collection::vec(text(), 0..3), prop::collection::vec(text(), 0..3))
                .prop_map(|(schema_url, r#type, id_keys, description_keys)| EntityRef {
                    schema_url, r#type, id_keys, description_keys,
                }),
            0..2,
        ),
    ) -> Resource {
        Resource { attributes, dropped_attributes_count, entity_refs }
    }
}

prop_compose! {
    fn scope()(
        name in text(), version in text(), attributes in attributes(),
        dropped_attributes_count in prop_oneof![Just(0), any::<u32>()],
    ) -> InstrumentationScope {
        InstrumentationScope { name, version, attributes, dropped_attributes_count }
    }
}

prop_compose! {
    fn resource_logs()(
        resource in prop::option::of(resource()),
        scope_logs in prop::collection::vec(
            (prop::option::of(scope()), prop::collection::vec(log_record(), 0..4), text())
                .prop_map(|(scope, log_records, schema_url)| ScopeLogs { scope, log_records, schema_url }),
            0..3,
        ),
        schema_url in text(),
    ) -> ResourceLogs {
        ResourceLogs { resource, scope_logs, schema_url }
    }
}

fn request() -> impl Strategy<Value = ExportLogsServiceRequest> {
    prop::collection::vec(resource_logs(), 0..3)
        .prop_map(|resource_logs| ExportLogsServiceRequest { resource_logs })
}

/// The same JSON with the keys of every object in reverse order.
fn reverse_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .rev()
            .map(|(k, v)| (k, reverse_keys(v)))
            .collect(),
        serde_json::Value::Array(items) => items.into_iter().map(reverse_keys).collect(),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn protobuf_to_json_writes_what_serde_writes(request in request()) {
        let json = to_json(&request.encode_to_vec()).unwrap();
        prop_assert_eq!(String::from_utf8(json).unwrap(), String::from_utf8(serde_output(&request)).unwrap());
    }

    #[test]
    fn json_to_protobuf_writes_what_prost_writes(request in request()) {
        let json = String::from_utf8(serde_output(&request)).unwrap();
        prop_assert_eq!(to_protobuf(&json).unwrap(), request.encode_to_vec());
    }

    #[test]
    fn the_order_of_keys_does_not_change_the_encoding(request in request()) {
        let value: serde_json::Value = serde_json::from_slice(&serde_output(&request)).unwrap();
        let json = reverse_keys(value).to_string();
        prop_assert_eq!(to_protobuf(&json).unwrap(), request.encode_to_vec());
    }

    /// Repeated occurrences of a message merge and the last scalar wins, as
    /// prost reads them (the encodings of two messages, concatenated).
    #[test]
    fn non_canonical_protobuf_reads_as_prost_reads_it(
        a in resource_logs(), b in resource_logs(), x in log_record(), y in log_record(),
    ) {
        let mut merged_resource_logs = a.encode_to_vec();
        merged_resource_logs.extend(b.encode_to_vec());
        let mut merged_record = x.encode_to_vec();
        merged_record.extend(y.encode_to_vec());
        let mut scope_logs = Vec::new();
        put_bytes(&mut scope_logs, 2, &merged_record);
        let mut resource_logs = Vec::new();
        put_bytes(&mut resource_logs, 2, &scope_logs);
        let mut bytes = Vec::new();
        put_bytes(&mut bytes, 1, &merged_resource_logs);
        put_bytes(&mut bytes, 1, &resource_logs);
        let decoded = ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
        prop_assert_eq!(to_json(&bytes).unwrap(), serde_output(&decoded));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut out = Vec::new();
        let _ = protobuf_to_json(&bytes, &mut out);
        let _ = json_to_protobuf(&bytes, &mut out);
    }

    #[test]
    fn mangled_json_never_panics(request in request(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut json = serde_output(&request);
        let at = cut.index(json.len());
        json[at] = byte;
        let mut out = Vec::new();
        let _ = json_to_protobuf(&json, &mut out);
        json.truncate(at);
        let _ = json_to_protobuf(&json, &mut out);
    }
}

/// Throughput, measured and printed, not asserted:
/// `cargo test -p auditcol-core --release otlp_json::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    use std::time::Instant;
    let request = sample_request(1000);
    let protobuf = request.encode_to_vec();
    let json = serde_output(&request);
    let rounds = 200;
    let records = 1000.0 * f64::from(rounds);
    let mut out = Vec::with_capacity(json.len());

    let timed = |label: &str, f: &mut dyn FnMut()| {
        f();
        let start = Instant::now();
        for _ in 0..rounds {
            f();
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{label:>40}: {:>10.0} records/s", records / secs);
    };
    timed("json_to_protobuf", &mut || {
        out.clear();
        json_to_protobuf(&json, &mut out).unwrap();
    });
    timed("serde_json + prost (before)", &mut || {
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let r: ExportLogsServiceRequest = serde_json::from_value(value).unwrap();
        std::hint::black_box(r.encode_to_vec());
    });
    let mut out = Vec::with_capacity(json.len());
    timed("protobuf_to_json", &mut || {
        out.clear();
        protobuf_to_json(&protobuf, &mut out).unwrap();
    });
    timed("prost + serde_json (before)", &mut || {
        let r = ExportLogsServiceRequest::decode(&protobuf[..]).unwrap();
        std::hint::black_box(serde_output(&r));
    });
    println!(
        "{} bytes of JSON, {} of protobuf",
        json.len(),
        protobuf.len()
    );
}

/// Invalid UTF-8 in a JSON string is refused with the field it is in (the
/// whole body is checked at once only to skip the check per string).
#[test]
fn json_with_bytes_that_are_not_utf8_names_the_field() {
    let mut json =
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"stringValue":"ok "#.to_vec();
    json.extend_from_slice(&[0xff, 0xfe]);
    json.extend_from_slice(br#""}}]}]}]}"#);
    let mut out = b"kept".to_vec();
    let err = json_to_protobuf(&json, &mut out).expect_err("refused");
    assert_eq!(
        err.path, "resourceLogs[0].scopeLogs[0].logRecords[0].body.stringValue",
        "{err}"
    );
    assert!(
        err.reason.contains("unicode") || err.reason.contains("UTF-8"),
        "{err}"
    );
    assert_eq!(out, b"kept");
}
