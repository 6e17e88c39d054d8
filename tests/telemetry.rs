//! The collector's own telemetry, end to end: the counters on `/metrics`
//! after a known mix of events (parsed as strict OpenMetrics, compared
//! exactly), the logs of refusals and drops, and the health check across
//! start and shutdown.

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use auditcol_e2e::openmetrics::Exposition;
use auditcol_e2e::{
    Collector, TIMEOUT, file_lines, flipt_event, http_get, http_post, send_with_python_sdk,
};
use serde_json::{Value, json};

/// One OTLP/JSON log record: an audit event `noun:verb`, a record with
/// only `audit.type` (invalid), or a plain log line (`None`).
fn record(audit: Option<(&str, Option<&str>)>, key: &str) -> Value {
    let mut attributes = Vec::new();
    if let Some((noun, verb)) = audit {
        attributes.push(json!({"key": "audit.type", "value": {"stringValue": noun}}));
        if let Some(verb) = verb {
            attributes.push(json!({"key": "audit.action", "value": {"stringValue": verb}}));
        }
    }
    json!({
        "timeUnixNano": "1714557600000000000",
        "body": {"kvlistValue": {"values": [{"key": "key", "value": {"stringValue": key}}]}},
        "attributes": attributes,
    })
}

fn otlp_json(records: Vec<Value>) -> Vec<u8> {
    json!({"resourceLogs": [{"scopeLogs": [{"logRecords": records}]}]})
        .to_string()
        .into_bytes()
}

fn post_otlp_json(collector: &Collector, body: &[u8]) -> auditcol_e2e::HttpResponse {
    http_post(
        collector.endpoint("http"),
        "/v1/logs",
        &[("Content-Type", "application/json")],
        body,
    )
}

/// `value` of the sample, or a panic naming it.
fn exactly(metrics: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    metrics
        .value(name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}; {:#?}", metrics.samples(name)))
}

#[test]
fn metrics_count_every_record_by_outcome_in_the_collectors_names() {
    let collector = Collector::start(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
      http: {endpoint: "127.0.0.1:0"}
processors:
  filter/flags:
    events: ["flag:*"]
  batch: {}
exporters:
  file:
    path: "{DIR}/audit.jsonl"
    format: json
service:
  telemetry:
    metrics: {address: "127.0.0.1:0", level: detailed}
  pipelines:
    logs: {receivers: [otlp], processors: [filter/flags, batch], exporters: [file]}
"#,
    );

    // gRPC, the official Python SDK: 4 flag events and 2 segment events.
    let events: Vec<Value> = (0..6)
        .map(|i| {
            let noun = if i < 4 { "flag" } else { "segment" };
            flipt_event(
                noun,
                "created",
                &format!("grpc-{i}"),
                "2024-05-01T10:00:00Z",
            )
        })
        .collect();
    let sent = send_with_python_sdk("grpc", collector.endpoint("grpc"), &json!(events));
    assert_eq!(sent["exported"], 6, "{sent}");

    // HTTP: 2 flag events, a plain log line, a segment event and one record
    // with audit.type but no audit.action: a partial success.
    let response = post_otlp_json(
        &collector,
        &otlp_json(vec![
            record(Some(("flag", Some("updated"))), "http-0"),
            record(None, "not an audit event"),
            record(Some(("flag", None)), "invalid"),
            record(Some(("segment", Some("deleted"))), "http-1"),
            record(Some(("flag", Some("deleted"))), "http-2"),
        ]),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let answer: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    // HTTP: two invalid records and nothing else: refused whole.
    let response = post_otlp_json(
        &collector,
        &otlp_json(vec![
            record(Some(("flag", None)), "invalid"),
            record(Some(("team", None)), "invalid"),
        ]),
    );
    assert_eq!(response.status, 400, "{}", response.text());
    // HTTP: not JSON at all.
    assert_eq!(post_otlp_json(&collector, b"{").status, 400);

    // Every client has its answer, and an answer comes only once the
    // records are exported: the counters are final.
    assert_eq!(file_lines(&collector.path("audit.jsonl"), 6).len(), 6);
    let metrics = collector.metrics();
    let grpc = [("receiver", "otlp"), ("transport", "grpc")];
    let http = [("receiver", "otlp"), ("transport", "http")];
    let filter = [("otel_signal", "logs"), ("processor", "filter/flags")];
    let batch = [("otel_signal", "logs"), ("processor", "batch")];
    let file = [("exporter", "file")];
    let queue = [("data_type", "logs"), ("exporter", "file")];
    // (sample, labels, value)
    type Expected<'a> = Vec<(&'a str, Vec<(&'a str, &'a str)>, f64)>;
    let expected: Expected = vec![
        (
            "otelcol_receiver_accepted_log_records_total",
            grpc.to_vec(),
            6.0,
        ),
        (
            "otelcol_receiver_refused_log_records_total",
            grpc.to_vec(),
            0.0,
        ),
        (
            "otelcol_receiver_accepted_log_records_total",
            http.to_vec(),
            4.0,
        ),
        (
            "otelcol_receiver_refused_log_records_total",
            http.to_vec(),
            3.0,
        ),
        (
            "auditcol_receiver_refused_requests_total",
            [&http[..], &[("reason", "invalid")]].concat(),
            2.0,
        ),
        (
            "otelcol_processor_incoming_items_total",
            filter.to_vec(),
            10.0,
        ),
        (
            "otelcol_processor_outgoing_items_total",
            filter.to_vec(),
            6.0,
        ),
        (
            "auditcol_processor_dropped_log_records_total",
            vec![("processor", "filter/flags"), ("reason", "not_included")],
            3.0,
        ),
        (
            "auditcol_processor_dropped_log_records_total",
            vec![("processor", "filter/flags"), ("reason", "non_audit")],
            1.0,
        ),
        (
            "auditcol_processor_dropped_log_records_total",
            vec![("processor", "filter/flags"), ("reason", "excluded")],
            0.0,
        ),
        (
            "otelcol_processor_incoming_items_total",
            batch.to_vec(),
            6.0,
        ),
        (
            "otelcol_processor_outgoing_items_total",
            batch.to_vec(),
            6.0,
        ),
        (
            "otelcol_exporter_sent_log_records_total",
            file.to_vec(),
            6.0,
        ),
        (
            "otelcol_exporter_send_failed_log_records_total",
            file.to_vec(),
            0.0,
        ),
        (
            "otelcol_exporter_enqueue_failed_log_records_total",
            file.to_vec(),
            0.0,
        ),
        ("otelcol_exporter_queue_size", queue.to_vec(), 0.0),
        ("otelcol_exporter_queue_capacity", queue.to_vec(), 1000.0),
    ];
    for (name, labels, want) in expected {
        assert_eq!(exactly(&metrics, name, &labels), want, "{name}{labels:?}");
    }
    // The Collector's types; the resource in target_info, not on every series.
    for (family, kind) in [
        ("otelcol_receiver_accepted_log_records", "counter"),
        ("otelcol_processor_incoming_items", "counter"),
        ("otelcol_exporter_queue_size", "gauge"),
        ("target", "info"),
    ] {
        assert_eq!(metrics.family(family).kind, kind, "{family}");
    }
    let target = &metrics.family("target").samples[0];
    assert_eq!(target.labels["service_name"], "auditcol");
    assert!(!target.labels["service_instance_id"].is_empty());
    assert!(
        metrics
            .families
            .values()
            .flat_map(|f| &f.samples)
            .filter(|s| s.name != "target_info")
            .all(|s| !s.labels.contains_key("service_instance_id")),
        "service labels only on target_info"
    );

    // Refusals and drops are in the log: the first of each kind at once
    // (written before the requests were answered; the harness reads the
    // collector's stderr on a thread of its own, so wait for the lines).
    for reason in ["invalid", "not_included", "non_audit"] {
        collector.wait_for_log(&format!("reason=\"{reason}\""));
    }
    let log = collector.log();
    let refused = log
        .lines()
        .find(|l| l.contains("refused a request") && l.contains("reason=\"invalid\""))
        .unwrap_or_else(|| panic!("no refusal line:\n{log}"));
    assert!(refused.contains("WARN"), "{refused}");
    assert!(
        refused.contains("component=receivers::otlp (http)"),
        "{refused}"
    );
    assert!(refused.contains("client=127.0.0.1:"), "{refused}");
    for (reason, level) in [("not_included", "INFO"), ("non_audit", "INFO")] {
        assert!(
            log.lines().any(|l| l.contains(level)
                && l.contains("component=processors::filter/flags")
                && l.contains(&format!("reason=\"{reason}\""))),
            "no {level} line for {reason}:\n{log}"
        );
    }
}

#[test]
fn level_none_serves_no_metrics_and_a_taken_port_fails_the_start_naming_it() {
    let config = |telemetry: &str| {
        format!(
            r#"
receivers: {{otlp: {{protocols: {{http: {{endpoint: "127.0.0.1:0"}}}}}}}}
exporters: {{file: {{path: "{{DIR}}/audit.jsonl"}}}}
service:
  telemetry: {telemetry}
  pipelines: {{logs: {{receivers: [otlp], exporters: [file]}}}}
"#
        )
    };
    // The harness sets the address to 127.0.0.1:0; `none` wins.
    let collector = Collector::start(&config("{metrics: {level: none}}"));
    assert!(
        !collector.endpoints.contains_key("metrics"),
        "{}",
        collector.log()
    );
    drop(collector);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        config(&format!("{{metrics: {{address: \"{addr}\"}}}}"))
            .replace("{DIR}", dir.path().to_str().unwrap()),
    )
    .unwrap();
    let out = std::process::Command::new(auditcol_e2e::binary())
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Said once, as the log's ERROR line.
    let said = format!("cannot serve metrics on {addr} (service.telemetry.metrics.address)");
    assert_eq!(stderr.matches(&said).count(), 1, "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("ERROR") && line.contains(&said)),
        "{stderr}"
    );
    assert!(!stderr.contains("auditcol is running"), "{stderr}");
}

/// GETs the health check: (status, body).
fn health(addr: SocketAddr) -> (u16, Value) {
    let response = http_get(addr, "/health");
    let body = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{e}: {}", response.text()));
    (response.status, body)
}

/// Polls the health check until `ready` says yes, or fails after TIMEOUT.
fn health_until(collector: &Collector, what: &str, ready: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = health(collector.endpoint("health_check"));
        if ready(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "health check never {what}: last {status} {body}\n{}",
            collector.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A component slow to start and slow to stop, held by the test: the file
/// exporter writes to a named pipe. Opening a pipe for writing waits for a
/// reader; a write larger than the pipe's buffer waits for the reader to read.
#[test]
fn health_check_is_503_while_starting_200_while_running_and_503_while_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let mut collector = Collector::spawn_in(
        dir.path(),
        r#"
extensions:
  health_check: {endpoint: "127.0.0.1:0", path: /health}
receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:0"}
processors:
  batch: {}
exporters:
  file:
    path: "{DIR}/audit.fifo"
    format: json
    # A write blocked on the pipe must not time out and be written again.
    timeout: "0"
service:
  extensions: [health_check]
  pipelines:
    logs: {receivers: [otlp], processors: [batch], exporters: [file]}
"#,
    );

    // Starting: the extension runs, the exporter waits for the pipe's reader.
    collector.wait_until("protocol=\"health_check\"");
    let body = health_until(
        &collector,
        "reported the exporter starting",
        |status, body| status == 503 && body["components"]["exporters::file"] == "starting",
    );
    assert_eq!(body["status"], "starting", "{body}");
    assert_eq!(body["components"]["extensions::health_check"], "running");
    assert_eq!(body["components"]["receivers::otlp"], "pending");
    assert_eq!(body["components"]["processors::batch (logs)"], "pending");

    // The reader opens the pipe (and reads nothing yet): the start completes.
    let mut reader = std::fs::File::open(&fifo).unwrap();
    collector.wait_until_running();
    let (status, body) = health(collector.endpoint("health_check"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status": "ok", "components": {
            "extensions::health_check": "running",
            "exporters::file": "running",
            "processors::batch (logs)": "running",
            "receivers::otlp": "running",
        }})
    );

    // More lines than the pipe holds: the exporter's write waits for the reader.
    const RECORDS: usize = 600;
    let http = collector.endpoint("http");
    let body = otlp_json(
        (0..RECORDS)
            .map(|i| {
                record(
                    Some(("flag", Some("created"))),
                    &format!("key-{i:04}-padding-padding"),
                )
            })
            .collect(),
    );
    let client = std::thread::spawn(move || {
        http_post(
            http,
            "/v1/logs",
            &[("Content-Type", "application/json")],
            &body,
        )
        .status
    });
    // Once the batch processor has the records, shutting down writes them:
    // the exporter cannot drain before the test reads.
    let deadline = Instant::now() + TIMEOUT;
    while collector.metrics().value(
        "otelcol_processor_incoming_items_total",
        &[("otel_signal", "logs"), ("processor", "batch")],
    ) != Some(RECORDS as f64)
    {
        assert!(
            Instant::now() < deadline,
            "the records never reached the batch processor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    collector.send_terminate();
    let body = health_until(&collector, "reported stopping", |status, body| {
        status == 503 && body["status"] == "stopping"
    });
    assert_eq!(body["components"]["receivers::otlp"], "stopping", "{body}");
    assert_eq!(body["components"]["extensions::health_check"], "running");

    // The reader reads: the exporter drains, the collector stops.
    let mut written = String::new();
    reader.read_to_string(&mut written).unwrap();
    assert!(collector.wait_exit().success(), "{}", collector.log());
    assert_eq!(client.join().unwrap(), 200);
    assert_eq!(written.lines().count(), RECORDS);
    assert!(
        std::net::TcpStream::connect(collector.endpoint("health_check")).is_err(),
        "the health check stops with the collector"
    );
}
