//! Two collectors chained with the OTLP exporters: A (otlp receiver → otlp
//! or otlphttp exporter) → B (otlp receiver → file). What B writes equals
//! what was sent to A, and B's records are A's, field for field.

use auditcol_e2e::{Collector, file_lines};
use auditcol_model::{AuditEvent, ExportLogsServiceRequest, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;

const B: &str = r#"
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
      http: {endpoint: "127.0.0.1:0"}
exporters:
  file/events: {path: "{DIR}/events.jsonl"}
  file/raw: {path: "{DIR}/raw.otlp.jsonl", format: otlp_json}
service:
  pipelines:
    logs: {receivers: [otlp], exporters: [file/events, file/raw]}
"#;

/// A, forwarding with `exporter` (YAML of one exporter named `forward`).
fn a_config(exporter_type: &str, exporter: &str) -> String {
    format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  {exporter_type}/forward: {exporter}
  file/raw: {{path: "{{DIR}}/raw.otlp.jsonl", format: otlp_json}}
service:
  pipelines:
    logs: {{receivers: [otlp], exporters: [{exporter_type}/forward, file/raw]}}
"#
    )
}

fn events() -> Vec<AuditEvent> {
    (0..5)
        .map(|i| {
            let mut e = AuditEvent::new(if i % 2 == 0 { "flag" } else { "segment" }, "created");
            e.metadata.actor.authentication = Some("token".into());
            e.metadata.actor.email = Some(format!("dev{i}@example.com"));
            e.payload = serde_json::json!({"key": format!("k{i}"), "nested": {"list": [1, 2, i]}});
            e.timestamp = 1_714_557_600_000_000_000 + i * 1_000_000_000;
            e
        })
        .collect()
}

/// An OTLP/JSON batch line as the generated structs.
fn decode(line: &str) -> ExportLogsServiceRequest {
    serde_json::from_str(line).unwrap()
}

async fn chain(exporter_type: &str, exporter: &str) {
    let b = Collector::start(B);
    let exporter = exporter
        .replace("{B_GRPC}", &b.endpoint("grpc").to_string())
        .replace("{B_HTTP}", &b.endpoint("http").to_string());
    let a = Collector::start(&a_config(exporter_type, &exporter));
    let events = events();
    let mut client = LogsServiceClient::connect(format!("http://{}", a.endpoint("grpc")))
        .await
        .unwrap();
    client
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: events.iter().map(AuditEvent::to_log_record).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .unwrap();

    let expected: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(file_lines(&b.path("events.jsonl"), 5), expected);
    let at_a = file_lines(&a.path("raw.otlp.jsonl"), 1);
    let at_b = file_lines(&b.path("raw.otlp.jsonl"), 1);
    assert_eq!(
        decode(&at_b[0]),
        decode(&at_a[0]),
        "B must hold A's records unchanged (audit.id, observed time, every attribute)"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn otlp_grpc_chain_delivers_every_event_unchanged() {
    chain("otlp", r#"{endpoint: "{B_GRPC}", tls: {insecure: true}}"#).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn otlphttp_json_chain_delivers_every_event_unchanged() {
    chain(
        "otlphttp",
        r#"{endpoint: "http://{B_HTTP}", encoding: json}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn otlphttp_proto_chain_delivers_every_event_unchanged() {
    chain(
        "otlphttp",
        r#"{endpoint: "http://{B_HTTP}", compression: none}"#,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retries_while_b_is_down_and_loses_nothing_acknowledged() {
    // A port that nothing listens on until B starts there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = Collector::start(&a_config(
        "otlp",
        &format!(
            r#"{{endpoint: "127.0.0.1:{port}", tls: {{insecure: true}}, retry_on_failure: {{initial_interval: 100ms, max_interval: 200ms}}}}"#
        ),
    ));
    let events = events();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: events.iter().map(AuditEvent::to_log_record).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let mut client = LogsServiceClient::connect(format!("http://{}", a.endpoint("grpc")))
        .await
        .unwrap();
    // A acknowledges only once B has the batch: the export waits.
    let export = tokio::spawn(async move { client.export(request).await });
    // Long enough for several attempts at 100-200 ms.
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert!(!export.is_finished(), "acknowledged before B had it");

    let b = Collector::start(&B.replace(
        r#"grpc: {endpoint: "127.0.0.1:0"}"#,
        &format!(r#"grpc: {{endpoint: "127.0.0.1:{port}"}}"#),
    ));
    export.await.unwrap().unwrap();
    let expected: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    assert_eq!(file_lines(&b.path("events.jsonl"), 5), expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_from_b_is_a_permanent_failure_for_the_client_of_a() {
    let b = Collector::start(B);
    // B has no such path: it answers 404, which is permanent. A retry would
    // keep the client waiting for minutes (max_elapsed_time 300s).
    let a = Collector::start(&a_config(
        "otlphttp",
        &format!(
            r#"{{logs_endpoint: "http://{}/v1/nowhere", retry_on_failure: {{initial_interval: 10ms}}}}"#,
            b.endpoint("http")
        ),
    ));
    let mut client = LogsServiceClient::connect(format!("http://{}", a.endpoint("grpc")))
        .await
        .unwrap();
    let status = client
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: events().iter().map(AuditEvent::to_log_record).collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("HTTP 404"),
        "{}",
        status.message()
    );
}
