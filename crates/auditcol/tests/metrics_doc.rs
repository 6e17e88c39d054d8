//! Every metric auditcol exposes is in the table of `docs/metrics.md`, and
//! the table lists nothing else.

use std::collections::BTreeSet;
use std::path::Path;

use auditcol_core::config::CollectorConfig;
use auditcol_core::pipeline::Service;
use auditcol_core::telemetry::MetricSpec;

/// The metric names in the first column of the table (`| \`name\` | type |`).
fn documented() -> BTreeSet<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/metrics.md");
    let text = std::fs::read_to_string(doc).unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` | "))
        .filter(|(_, rest)| {
            ["counter", "gauge", "info"]
                .iter()
                .any(|kind| rest.starts_with(kind))
        })
        .map(|(name, _)| name.to_owned())
        .collect()
}

fn declared() -> BTreeSet<String> {
    let specs: Vec<&MetricSpec> = auditcol_core::telemetry::METRICS
        .iter()
        .chain(auditcol_receiver_kafka::METRICS)
        .collect();
    specs
        .iter()
        .map(|s| s.name.to_owned())
        .chain(["target_info".to_owned()])
        .collect()
}

#[test]
fn the_table_lists_exactly_the_declared_metrics() {
    assert_eq!(documented(), declared());
}

#[test]
fn what_a_collector_with_every_component_registers_is_declared() {
    let config = r#"
extensions:
  health_check: {endpoint: "127.0.0.1:0"}
receivers:
  otlp: {protocols: {grpc: {endpoint: "127.0.0.1:0"}, http: {endpoint: "127.0.0.1:0"}}}
  webhook: {endpoint: "127.0.0.1:0"}
  kafka: {brokers: ["127.0.0.1:9"]}
processors:
  filter: {}
  batch: {}
  redaction: {attributes: {"audit.actor.ip": delete}}
exporters:
  file: {path: "-"}
  otlp: {endpoint: "127.0.0.1:9", tls: {insecure: true}}
  otlphttp: {endpoint: "http://127.0.0.1:9"}
  webhook: {endpoint: "http://127.0.0.1:9/hook"}
  debug: {}
  kafka: {brokers: ["127.0.0.1:9"]}
service:
  extensions: [health_check]
  telemetry: {metrics: {level: detailed}}
  pipelines:
    logs:
      receivers: [otlp, webhook, kafka]
      processors: [filter, redaction, batch]
      exporters: [file, otlp, otlphttp, webhook, debug, kafka]
"#;
    let config = CollectorConfig::from_yaml(config, &|_| None).unwrap();
    let service = Service::build(&config, &auditcol::registry()).unwrap();
    let registered: BTreeSet<String> = service
        .telemetry()
        .registered_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let declared = declared();
    let undeclared: Vec<&String> = registered.difference(&declared).collect();
    assert!(
        undeclared.is_empty(),
        "registered but not declared: {undeclared:?}"
    );
    // Most are registered at build already.
    assert!(registered.len() >= 12, "{registered:?}");
}
