//! A Rust tonic client and raw HTTP requests against the real binary:
//! filtering across pipelines, and bad input answered precisely while good
//! input keeps flowing.

use auditcol_e2e::{Collector, file_lines, http_post};
use auditcol_model::{AuditEvent, ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use prost::Message;

const TWO_PIPELINES: &str = r#"
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
      http: {endpoint: "127.0.0.1:0"}
processors:
  filter/flags: {events: ["flag:*"], exclude: ["*:deleted"]}
  filter/all: {}
  batch: {timeout: 20ms}
exporters:
  file/flags: {path: "{DIR}/flags.jsonl"}
  file/all: {path: "{DIR}/all.jsonl"}
service:
  pipelines:
    logs/flags: {receivers: [otlp], processors: [filter/flags, batch], exporters: [file/flags]}
    logs/all: {receivers: [otlp], processors: [filter/all, batch], exporters: [file/all]}
"#;

fn event(noun: &str, verb: &str, second: u64) -> AuditEvent {
    let mut e = AuditEvent::new(noun, verb);
    e.metadata.actor.authentication = Some("token".into());
    e.payload = serde_json::json!({"key": format!("{noun}-{second}")});
    e.timestamp = 1_714_557_600_000_000_000 + second * 1_000_000_000;
    e
}

fn request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn line(e: &AuditEvent) -> String {
    serde_json::to_string(e).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_pipeline_writes_only_what_its_filter_lets_through() {
    let collector = Collector::start(TWO_PIPELINES);
    let events = [
        event("flag", "created", 0),
        event("segment", "created", 1),
        event("flag", "deleted", 2),
        event("FLAG", "Updated", 3),
    ];
    let mut client = LogsServiceClient::connect(format!("http://{}", collector.endpoint("grpc")))
        .await
        .unwrap();
    client
        .export(request(
            events.iter().map(AuditEvent::to_log_record).collect(),
        ))
        .await
        .unwrap();

    let mut updated = events[3].clone();
    updated.event_type = "flag".into();
    updated.action = "updated".into();
    assert_eq!(
        file_lines(&collector.path("flags.jsonl"), 2),
        vec![line(&events[0]), line(&updated)]
    );
    assert_eq!(
        file_lines(&collector.path("all.jsonl"), 4),
        vec![
            line(&events[0]),
            line(&events[1]),
            line(&events[2]),
            line(&updated)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_grpc_requests_get_precise_errors_and_good_ones_still_pass() {
    let collector = Collector::start(TWO_PIPELINES);
    let mut client = LogsServiceClient::connect(format!("http://{}", collector.endpoint("grpc")))
        .await
        .unwrap();
    let mut incomplete = event("flag", "created", 0).to_log_record();
    incomplete.attributes.retain(|kv| kv.key != "audit.action");
    let status = client.export(request(vec![incomplete])).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("resourceLogs[0].scopeLogs[0].logRecords[0]"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("audit.action"),
        "{}",
        status.message()
    );

    let good = event("flag", "created", 5);
    client
        .export(request(vec![good.to_log_record()]))
        .await
        .unwrap();
    assert_eq!(
        file_lines(&collector.path("all.jsonl"), 1),
        vec![line(&good)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_http_requests_get_precise_errors_and_good_ones_still_pass() {
    let collector = Collector::start(TWO_PIPELINES);
    let http = collector.endpoint("http");
    let json = [("Content-Type", "application/json")];

    let malformed = http_post(
        http,
        "/v1/logs",
        &json,
        br#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":{}}]}]}]}"#,
    );
    assert_eq!(malformed.status, 400, "{}", malformed.text());
    assert!(
        malformed.text().contains("timeUnixNano"),
        "{}",
        malformed.text()
    );

    let wrong_type = http_post(
        http,
        "/v1/logs",
        &[("Content-Type", "text/plain")],
        b"hello",
    );
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.text());

    let protobuf = [("Content-Type", "application/x-protobuf")];
    let garbage = http_post(http, "/v1/logs", &protobuf, &[0x0a, 0xff, 0xff, 0xff]);
    assert_eq!(garbage.status, 400, "{}", garbage.text());

    let good = event("variant", "created", 9);
    let ok = http_post(
        http,
        "/v1/logs",
        &protobuf,
        &request(vec![good.to_log_record()]).encode_to_vec(),
    );
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        file_lines(&collector.path("all.jsonl"), 1),
        vec![line(&good)]
    );
}
