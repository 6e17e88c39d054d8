//! The official OpenTelemetry Python SDK sends audit events to the real
//! binary over OTLP gRPC and HTTP; the exact output lines are checked.

use auditcol_e2e::{Collector, file_lines, flipt_event, send_with_python_sdk};
use serde_json::json;

fn config(format: &str, path: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
      http: {{endpoint: "127.0.0.1:0"}}
processors:
  filter: {{events: ["*:*"]}}
  batch: {{timeout: 50ms}}
exporters:
  file: {{path: "{path}", format: {format}}}
service:
  pipelines:
    logs: {{receivers: [otlp], processors: [filter, batch], exporters: [file]}}
"#
    )
}

/// Flipt's own JSON line for `event`: the event itself, fields in order.
fn flipt_line(event: &serde_json::Value) -> String {
    let e: auditcol_model::AuditEvent = serde_json::from_value(event.clone()).unwrap();
    serde_json::to_string(&e).unwrap()
}

#[test]
fn grpc_events_are_written_as_flipt_json_lines() {
    let collector = Collector::start(&config("json", "{DIR}/out/audit.jsonl"));
    let events = json!([
        flipt_event("flag", "created", "flipt", "2024-05-01T10:00:00Z"),
        flipt_event("segment", "deleted", "beta-users", "2024-05-01T10:00:01Z"),
        {"version": "0.2", "type": "flag", "action": "updated",
         "metadata": {"actor": {"authentication": "oidc", "email": "kyle@example.com", "name": "Kyle"}},
         "payload": {"key": "dark-mode", "enabled": false, "rollout": 12.5, "tags": ["ui", "beta"]},
         "timestamp": "2024-05-01T10:00:02Z", "status": "denied"},
    ]);
    let summary = send_with_python_sdk("grpc", collector.endpoint("grpc"), &events);
    assert_eq!(summary, json!({"exported": 3, "failed": 0}));

    let lines = file_lines(&collector.path("out/audit.jsonl"), 3);
    let expected: Vec<String> = events.as_array().unwrap().iter().map(flipt_line).collect();
    assert_eq!(lines, expected);
    assert_eq!(
        lines[0],
        r#"{"version":"0.2","type":"flag","action":"created","metadata":{"actor":{"authentication":"none","ip":"172.17.0.1"}},"payload":{"description":"flipt flag","enabled":true,"key":"flipt","name":"flipt","namespace_key":"default"},"timestamp":"2024-05-01T10:00:00Z","status":"success"}"#
    );
}

#[test]
fn http_events_are_printed_as_console_lines_on_stdout() {
    let collector = Collector::start(&config("console", "-"));
    let events = json!([
        flipt_event("flag", "created", "flipt", "2024-05-01T10:00:00Z"),
        flipt_event("variant", "deleted", "blue", "2024-05-01T10:00:03Z"),
    ]);
    let summary = send_with_python_sdk("http", collector.endpoint("http"), &events);
    assert_eq!(summary, json!({"exported": 2, "failed": 0}));
    let lines = collector.stdout_lines(2);
    assert_eq!(
        lines,
        vec![
            r#"2024-05-01T10:00:00.000Z flag:created success actor: authentication=none ip=172.17.0.1 payload: {"description":"flipt flag","enabled":true,"key":"flipt","name":"flipt","namespace_key":"default"}"#,
            r#"2024-05-01T10:00:03.000Z variant:deleted success actor: authentication=none ip=172.17.0.1 payload: {"description":"flipt flag","enabled":true,"key":"blue","name":"blue","namespace_key":"default"}"#,
        ]
    );
}

#[test]
fn records_keep_resource_scope_id_and_source_in_otlp_json() {
    let collector = Collector::start(&config("otlp_json", "{DIR}/audit.otlp.jsonl"));
    let events = json!([flipt_event(
        "flag",
        "created",
        "flipt",
        "2024-05-01T10:00:00Z"
    )]);
    send_with_python_sdk("grpc", collector.endpoint("grpc"), &events);
    let lines = file_lines(&collector.path("audit.otlp.jsonl"), 1);
    let request: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    let rl = &request["resourceLogs"][0];
    let resource_attrs = rl["resource"]["attributes"].as_array().unwrap();
    assert!(
        resource_attrs
            .iter()
            .any(|kv| kv["key"] == "service.name" && kv["value"]["stringValue"] == "python-e2e")
    );
    assert_eq!(rl["scopeLogs"][0]["scope"]["name"], "auditcol.e2e");
    let record = &rl["scopeLogs"][0]["logRecords"][0];
    assert_eq!(record["eventName"], "audit.flag.created");
    let attr = |key: &str| {
        record["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv["key"] == key)
            .map(|kv| kv["value"]["stringValue"].as_str().unwrap().to_owned())
    };
    assert_eq!(attr("audit.source").as_deref(), Some("otlp"));
    let id = attr("audit.id").expect("audit.id assigned at ingest");
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "7", "a UUIDv7: {id}");
    assert_ne!(record["observedTimeUnixNano"], "0");
}
