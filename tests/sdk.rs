//! The Rust SDK (`auditcol-sdk`) and `auditcol send` against the real
//! collector: otlp receiver → filter → file (Flipt JSON lines, and OTLP JSON
//! to see the records themselves). What the collector writes is the event
//! that was built; what it refuses, and an endpoint nobody listens on, make
//! `send` exit 1 with the endpoint and the reason.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use auditcol_e2e::{Collector, binary, file_lines};
use auditcol_model::ExportLogsServiceRequest;
use auditcol_sdk::{AuditEvent, AuditSender, DeliveryError, Protocol};
use opentelemetry_proto::tonic::common::v1::any_value::Value as OtlpValue;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Value, json};

/// otlp (gRPC and HTTP) → filter → Flipt JSON lines and OTLP JSON batches.
const CONFIG: &str = r#"
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
      http: {endpoint: "127.0.0.1:0"}
processors:
  filter: {events: ["*:*"]}
exporters:
  file/events: {path: "{DIR}/events.jsonl", format: json}
  file/raw: {path: "{DIR}/raw.otlp.jsonl", format: otlp_json}
service:
  pipelines:
    logs: {receivers: [otlp], processors: [filter], exporters: [file/events, file/raw]}
"#;

const PROTOCOLS: [Protocol; 3] = [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson];

/// The collector's URL for `protocol`.
fn url(collector: &Collector, protocol: Protocol) -> String {
    let listener = if protocol == Protocol::Grpc {
        "grpc"
    } else {
        "http"
    };
    format!("http://{}", collector.endpoint(listener))
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn events() -> Vec<AuditEvent> {
    vec![
        AuditEvent::builder("flag", "created")
            .actor("authentication", "token")
            .actor("email", "kyle@example.com")
            .actor("team", "core")
            .payload(json!({
                "key": "dark-mode", "enabled": true, "rollout": 0.25, "count": -3,
                "segments": [{"key": "beta", "rank": 1}, {"key": "staff", "rank": 2}],
                "tags": ["ui", "web"], "variant": {"name": "on", "attachment": {"colour": "#000"}},
                "empty": {}, "none": []
            }))
            .timestamp_unix_nanos(1_714_557_600_123_456_789)
            .id("event-1")
            .build()
            .unwrap(),
        AuditEvent::builder("Segment", "Deleted")
            .status("denied")
            .actor("ip", "10.0.0.7")
            .payload(json!(["a", 1, false]))
            .timestamp_unix_nanos(1_714_557_601_000_000_000)
            .build()
            .unwrap(),
        AuditEvent::builder("token", "rotated")
            .payload(json!("plain text"))
            .timestamp_unix_nanos(1_714_557_602_000_000_000)
            .build()
            .unwrap(),
    ]
}

/// Flipt JSON of `event`, as the file exporter should write it.
fn flipt(event: &AuditEvent) -> Value {
    serde_json::to_value(event.as_flipt()).unwrap()
}

/// Every JSON line of `path`, parsed (`n` awaited).
fn json_lines(path: PathBuf, n: usize) -> Vec<Value> {
    file_lines(&path, n)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The records of the OTLP JSON batches in `raw.otlp.jsonl` (`n` batches awaited).
fn raw_records(collector: &Collector, n: usize) -> Vec<(LogRecord, Vec<(String, String)>)> {
    let mut records = Vec::new();
    for line in file_lines(&collector.path("raw.otlp.jsonl"), n) {
        let request: ExportLogsServiceRequest = serde_json::from_str(&line).unwrap();
        for resource_logs in request.resource_logs {
            let resource: Vec<(String, String)> = resource_logs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .map(|kv| (kv.key.clone(), string_value(kv.value.as_ref())))
                .collect();
            for scope_logs in resource_logs.scope_logs {
                for record in scope_logs.log_records {
                    records.push((record, resource.clone()));
                }
            }
        }
    }
    records
}

fn string_value(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(OtlpValue::StringValue(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn attribute(record: &LogRecord, key: &str) -> Option<String> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| string_value(kv.value.as_ref()))
}

fn sender(collector: &Collector, protocol: Protocol) -> AuditSender {
    AuditSender::builder()
        .endpoint(url(collector, protocol))
        .protocol(protocol)
        .timeout(Duration::from_secs(10))
        .service_name("billing")
        .build()
        .unwrap()
}

// ---------------------------------------------------------------- the SDK

fn sdk_events_arrive_as_built(protocol: Protocol) {
    let collector = Collector::start(CONFIG);
    let sender = sender(&collector, protocol);
    let events = events();
    for event in &events {
        sender.emit(event);
    }
    let report = sender.shutdown().unwrap();
    assert_eq!(report.delivered, 3);

    let written = json_lines(collector.path("events.jsonl"), 3);
    let built: Vec<Value> = events.iter().map(flipt).collect();
    assert_eq!(written, built, "{protocol}");
}

#[test]
fn sdk_events_arrive_as_built_over_grpc() {
    sdk_events_arrive_as_built(Protocol::Grpc);
}

#[test]
fn sdk_events_arrive_as_built_over_http_protobuf() {
    sdk_events_arrive_as_built(Protocol::HttpProtobuf);
}

#[test]
fn sdk_events_arrive_as_built_over_http_json() {
    sdk_events_arrive_as_built(Protocol::HttpJson);
}

#[test]
fn sdk_records_carry_the_contracts_fields_and_the_collector_adds_id_and_source() {
    let collector = Collector::start(CONFIG);
    let sender = sender(&collector, Protocol::Grpc);
    for event in &events() {
        sender.emit(event);
    }
    sender.shutdown().unwrap();
    let records = raw_records(&collector, 1);
    assert_eq!(records.len(), 3);
    let (first, resource) = &records[0];
    assert_eq!(first.event_name, "audit.flag.created");
    assert_eq!(first.time_unix_nano, 1_714_557_600_123_456_789);
    assert_eq!(
        (first.severity_number, first.severity_text.as_str()),
        (9, "INFO")
    );
    assert_eq!(attribute(first, "audit.version").as_deref(), Some("0.2"));
    assert_eq!(attribute(first, "audit.id").as_deref(), Some("event-1"));
    assert_eq!(attribute(first, "audit.source").as_deref(), Some("otlp"));
    assert!(resource.contains(&("service.name".into(), "billing".into())));

    let (second, _) = &records[1];
    assert_eq!(second.event_name, "audit.segment.deleted");
    assert_eq!(
        (second.severity_number, second.severity_text.as_str()),
        (13, "WARN")
    );
    // No id given: the collector assigned a UUIDv7.
    let id = attribute(second, "audit.id").unwrap();
    assert_eq!((id.len(), &id[14..15]), (36, "7"), "{id}");
}

#[test]
fn sdk_payload_nulls_are_left_out_on_the_way() {
    let collector = Collector::start(CONFIG);
    let sender = sender(&collector, Protocol::HttpProtobuf);
    let event = AuditEvent::builder("flag", "updated")
        .payload(json!({"key": "x", "description": null, "list": [1, null, 2]}))
        .build()
        .unwrap();
    sender.emit(&event);
    sender.shutdown().unwrap();
    let written = &json_lines(collector.path("events.jsonl"), 1)[0];
    assert_eq!(written["payload"], json!({"key": "x", "list": [1, 2]}));
}

#[test]
fn sdk_reports_the_collectors_refusal_over_http() {
    let collector = Collector::start(CONFIG);
    let sender = sender(&collector, Protocol::HttpProtobuf);
    sender.emit(&deeply_nested_event());
    let Err(DeliveryError::NotDelivered(failure)) = sender.force_flush() else {
        panic!("a payload nested 40 deep was accepted")
    };
    assert_eq!((failure.delivered, failure.failed), (0, 1));
    assert!(
        failure.reasons[0].starts_with("HTTP 400 Bad Request: resourceLogs[0]"),
        "{failure}"
    );
    assert!(
        failure.reasons[0].ends_with("values nest more than 32 levels deep"),
        "{failure}"
    );
    // The sender goes on: the next event is delivered and reported alone.
    sender.emit(&events()[0]);
    assert_eq!(sender.shutdown().unwrap().delivered, 1);
}

#[test]
fn sdk_reports_the_collectors_refusal_over_grpc_by_its_status_code() {
    // The official gRPC exporter keeps the status code, not the message.
    let collector = Collector::start(CONFIG);
    let sender = sender(&collector, Protocol::Grpc);
    sender.emit(&deeply_nested_event());
    let Err(DeliveryError::NotDelivered(failure)) = sender.shutdown() else {
        panic!("a payload nested 40 deep was accepted")
    };
    assert_eq!((failure.delivered, failure.failed), (0, 1));
    assert!(
        failure.reasons[0].ends_with("gRPC code: InvalidArgument"),
        "{failure}"
    );
}

/// auditcol refuses values nested deeper than 32 levels; the SDK does not
/// check that (other OTLP endpoints have other limits).
fn deeply_nested_event() -> AuditEvent {
    let mut payload = json!("bottom");
    for _ in 0..40 {
        payload = json!([payload]);
    }
    AuditEvent::builder("flag", "created")
        .payload(payload)
        .build()
        .unwrap()
}

fn deeply_nested_payload() -> String {
    format!("{}{}", "[".repeat(40), "]".repeat(40))
}

// ---------------------------------------------------------- auditcol send

fn send(args: &[&str]) -> Output {
    send_with_stdin(args, None)
}

fn send_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(binary())
        .arg("send")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        input.write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `auditcol send --endpoint ENDPOINT --protocol PROTOCOL --timeout 5s ARGS`.
fn send_to(endpoint: &str, protocol: Protocol, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec![
        "--endpoint",
        endpoint,
        "--protocol",
        protocol.name(),
        "--timeout",
        "5s",
    ];
    all.extend_from_slice(args);
    send_with_stdin(&all, stdin)
}

/// [`send_to`] with the event `flag:created`, and `args`.
fn send_flag_created(endpoint: &str, protocol: Protocol, args: &[&str]) -> Output {
    let mut all = vec!["--type", "flag", "--action", "created"];
    all.extend_from_slice(args);
    send_to(endpoint, protocol, &all, None)
}

/// Asserts that `send` exited 1 saying that `missing` (`1 of 1`) audit
/// events did not reach `endpoint`; returns its stderr.
fn not_delivered(out: &Output, missing: &str, endpoint: &str, protocol: Protocol) -> String {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{protocol}: {stderr}");
    let expected =
        format!("error: {missing} audit events not delivered to {endpoint} ({protocol}): ");
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert_eq!(text(&out.stdout), "", "{protocol}");
    stderr
}

#[test]
fn send_delivers_one_event_from_flags_and_exits_0() {
    let collector = Collector::start(CONFIG);
    let payload = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        payload.path(),
        r#"{"key": "dark-mode", "rules": [{"rank": 1}], "enabled": false}"#,
    )
    .unwrap();
    let mut expected = Vec::new();
    for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
        let endpoint = url(&collector, protocol);
        let id = format!("cli-{i}");
        let out = send(&[
            "--endpoint",
            &endpoint,
            "--protocol",
            protocol.name(),
            "--type",
            "flag",
            "--action",
            "updated",
            "--status",
            "denied",
            "--actor",
            "email=kyle@example.com",
            "--actor",
            "ip=10.0.0.7",
            "--payload",
            &format!("@{}", payload.path().display()),
            "--timestamp",
            "2024-05-01T10:00:00.5Z",
            "--id",
            &id,
        ]);
        assert!(out.status.success(), "{protocol}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("delivered 1 audit event to {endpoint} ({protocol})\n")
        );
        expected.push(json!({
            "version": "0.2", "type": "flag", "action": "updated",
            "metadata": {"actor": {"ip": "10.0.0.7", "email": "kyle@example.com"}},
            "payload": {"key": "dark-mode", "rules": [{"rank": 1}], "enabled": false},
            "timestamp": "2024-05-01T10:00:00.5Z", "status": "denied"
        }));
        let records = raw_records(&collector, i + 1);
        assert_eq!(attribute(&records[i].0, "audit.id"), Some(id));
    }
    assert_eq!(json_lines(collector.path("events.jsonl"), 3), expected);
}

#[test]
fn send_without_payload_or_timestamp_sends_none_and_now() {
    let collector = Collector::start(CONFIG);
    let out = send(&[
        "--endpoint",
        &url(&collector, Protocol::Grpc),
        "--type",
        "flag",
        "--action",
        "created",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = &json_lines(collector.path("events.jsonl"), 1)[0];
    assert_eq!(line["payload"], Value::Null);
    assert_eq!(line["metadata"], json!({"actor": {}}));
    assert!(line["timestamp"].as_str().unwrap() > "2024-01-01", "{line}");
}

#[test]
fn send_to_an_endpoint_nobody_listens_on_exits_1_naming_it() {
    for protocol in PROTOCOLS {
        let endpoint = format!("http://127.0.0.1:{}", closed_port());
        let out = send_flag_created(&endpoint, protocol, &[]);
        let stderr = not_delivered(&out, "1 of 1", &endpoint, protocol);
        assert!(
            stderr.contains("Connection refused"),
            "{protocol}: {stderr}"
        );
    }
}

#[test]
fn send_refused_by_the_collector_exits_1_with_its_reason() {
    let collector = Collector::start(CONFIG);
    for protocol in PROTOCOLS {
        let endpoint = url(&collector, protocol);
        let out = send_flag_created(
            &endpoint,
            protocol,
            &["--payload", &deeply_nested_payload()],
        );
        let stderr = not_delivered(&out, "1 of 1", &endpoint, protocol);
        let status = if protocol == Protocol::Grpc {
            "gRPC code: InvalidArgument"
        } else {
            "HTTP 400 Bad Request"
        };
        assert!(stderr.contains(status), "{protocol}: {stderr}");
        assert!(
            stderr
                .trim_end()
                .ends_with("values nest more than 32 levels deep"),
            "{protocol}: the collector's reason is missing: {stderr}"
        );
    }
    let written = std::fs::read_to_string(collector.path("events.jsonl")).unwrap_or_default();
    assert_eq!(written, "", "a refused event was written");
}

#[test]
fn send_checks_names_before_sending_anything() {
    // Nothing listens there: the error must come before any connection.
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let out = send_flag_created(&endpoint, Protocol::Grpc, &["--actor", "bad key=x"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: cannot build the event: actor field name \"bad key\" is not a valid name: use letters, digits, `_`, `-` or `.`, and at least one character\n"
    );
}

#[test]
fn send_reports_bad_flag_values_with_exit_1_and_usage_errors_with_exit_2() {
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--type",
                "flag",
                "--action",
                "created",
                "--payload",
                "{oops",
            ],
            "error: --payload is not JSON: ",
        ),
        (
            &["--type", "flag", "--action", "created", "--actor", "email"],
            "error: --actor \"email\" is not FIELD=VALUE",
        ),
        (
            &[
                "--type",
                "flag",
                "--action",
                "created",
                "--timestamp",
                "soon",
            ],
            "error: --timestamp: ",
        ),
        (
            &[
                "--type",
                "flag",
                "--action",
                "created",
                "--endpoint",
                "127.0.0.1:4317",
            ],
            "error: invalid endpoint \"127.0.0.1:4317\": no scheme",
        ),
    ];
    for (args, expected) in cases {
        let out = send(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            text(&out.stderr).starts_with(expected),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    for args in [
        &["--type", "flag"][..],
        &["--stdin", "--type", "flag"],
        &["--type", "flag", "--action", "x", "--protocol", "http"],
    ] {
        assert_eq!(send(args).status.code(), Some(2), "{args:?}");
    }
    let out = Command::new(binary())
        .args([
            "--config", "x.yaml", "send", "--type", "flag", "--action", "x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--config is for running or validating a collector"));
}

fn stdin_line(noun: &str, verb: &str, key: &str) -> String {
    json!({"version": "0.2", "type": noun, "action": verb,
           "metadata": {"actor": {"authentication": "none", "ip": "172.17.0.1"}},
           "payload": {"key": key, "enabled": true},
           "timestamp": "2024-05-01T10:00:00Z", "status": "success"})
    .to_string()
}

#[test]
fn send_stdin_delivers_every_line() {
    let collector = Collector::start(CONFIG);
    let lines = [
        stdin_line("flag", "created", "a"),
        stdin_line("segment", "updated", "b"),
        stdin_line("flag", "deleted", "c"),
    ];
    let out = send_with_stdin(
        &[
            "--endpoint",
            &url(&collector, Protocol::HttpJson),
            "--protocol",
            "http/json",
            "--stdin",
        ],
        Some(&format!("{}\n", lines.join("\n"))),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("delivered 3 audit events to "));
    let expected: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(json_lines(collector.path("events.jsonl"), 3), expected);
}

#[test]
fn send_stdin_reports_a_bad_line_by_number_and_sends_the_others() {
    let collector = Collector::start(CONFIG);
    let input = [
        stdin_line("flag", "created", "a"),
        r#"{"type":"flag","action":"is created"}"#.to_owned(),
        String::new(),
        "not json".to_owned(),
        stdin_line("flag", "deleted", "c"),
    ]
    .join("\n");
    let out = send_with_stdin(
        &["--endpoint", &url(&collector, Protocol::Grpc), "--stdin"],
        Some(&input),
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: stdin line 2: action \"is created\" is not a valid name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: stdin line 4: not a Flipt v0.2 audit event: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: 2 stdin lines were not valid audit events"),
        "{stderr}"
    );
    let written = json_lines(collector.path("events.jsonl"), 2);
    assert_eq!(written[0]["payload"]["key"], "a");
    assert_eq!(written[1]["payload"]["key"], "c");
}

#[test]
fn send_stdin_reports_events_the_collector_left_out_of_an_accepted_batch() {
    // The receiver takes the good records of a request and reports the bad
    // one (OTLP partial success); the official gRPC exporter only logs that.
    let collector = Collector::start(CONFIG);
    let deep = json!({"type": "flag", "action": "created",
                      "payload": serde_json::from_str::<Value>(&deeply_nested_payload()).unwrap()});
    let input = [
        stdin_line("flag", "created", "a"),
        deep.to_string(),
        stdin_line("flag", "deleted", "c"),
    ]
    .join("\n");
    for (n, protocol) in [Protocol::Grpc, Protocol::HttpProtobuf]
        .into_iter()
        .enumerate()
    {
        let endpoint = url(&collector, protocol);
        let out = send_to(&endpoint, protocol, &["--stdin"], Some(&input));
        let stderr = not_delivered(&out, "1 of 3", &endpoint, protocol);
        assert!(
            stderr.contains(
                ": the endpoint rejected 1 of 3: resourceLogs[0].scopeLogs[0].logRecords[1]"
            ),
            "{protocol}: {stderr}"
        );
        assert!(
            stderr
                .trim_end()
                .ends_with("values nest more than 32 levels deep"),
            "{protocol}: {stderr}"
        );
        let delivered = 2 * (n + 1);
        assert_eq!(
            json_lines(collector.path("events.jsonl"), delivered).len(),
            delivered
        );
    }
}

#[test]
fn send_stdin_to_an_unreachable_endpoint_exits_1() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let input = [
        stdin_line("flag", "created", "a"),
        stdin_line("flag", "deleted", "b"),
    ];
    let out = send_to(
        &endpoint,
        Protocol::HttpJson,
        &["--stdin"],
        Some(&input.join("\n")),
    );
    not_delivered(&out, "2 of 2", &endpoint, Protocol::HttpJson);
}

// ------------------------------------------------------------------ TLS

/// The collector's own TLS on both listeners (certificates made now,
/// issued for 127.0.0.1): `send` must trust its CA through `--ca-file`.
#[test]
fn send_over_tls_trusts_the_ca_file_and_only_it() {
    let pki_dir = tempfile::tempdir().unwrap();
    let pki = auditcol_testkit::pki::TestPki::generate(pki_dir.path());
    let tls = format!(
        "tls: {{cert_file: \"{}\", key_file: \"{}\"}}",
        pki.server.cert.display(),
        pki.server.key.display()
    );
    let config = CONFIG
        .replace(
            r#"grpc: {endpoint: "127.0.0.1:0"}"#,
            &format!(r#"grpc: {{endpoint: "127.0.0.1:0", {tls}}}"#),
        )
        .replace(
            r#"http: {endpoint: "127.0.0.1:0"}"#,
            &format!(r#"http: {{endpoint: "127.0.0.1:0", {tls}}}"#),
        );
    let collector = Collector::start(&config);
    let ca = pki.ca.display().to_string();
    for (n, protocol) in [Protocol::Grpc, Protocol::HttpProtobuf]
        .into_iter()
        .enumerate()
    {
        let endpoint = url(&collector, protocol).replace("http://", "https://");
        let trusted = send_flag_created(&endpoint, protocol, &["--ca-file", &ca]);
        assert!(
            trusted.status.success(),
            "{protocol}: {}",
            text(&trusted.stderr)
        );
        assert_eq!(
            json_lines(collector.path("events.jsonl"), n + 1).len(),
            n + 1
        );

        let untrusted = send_flag_created(&endpoint, protocol, &[]);
        let stderr = not_delivered(&untrusted, "1 of 1", &endpoint, protocol);
        assert!(
            stderr.to_lowercase().contains("certificate"),
            "{protocol}: {stderr}"
        );
    }
}
