//! Kafka, end to end: the real binary against a real Kafka-compatible broker
//! (Tansu), read and written by an independent client (confluent-kafka).
//!
//! - the exporter's four encodings, as that client decodes them; key = noun;
//!   topic from an attribute;
//! - agent → Kafka → gateway → file with the shipped configs: every event
//!   exactly once, a poison message skipped and logged;
//! - a gateway killed with a batch it never got acknowledged: its offsets
//!   were not committed, and the next gateway of the group delivers it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use auditcol_e2e::kafka::{Tansu, kafka_consume, kafka_produce};
use auditcol_e2e::{Collector, flipt_event, send_with_python_sdk};
use auditcol_model::timestamp::parse_rfc3339;
use auditcol_model::{
    AuditEvent, ExportLogsServiceRequest, LogRecord, ResourceLogs, ScopeLogs, string_kv,
};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use serde_json::{Value, json};

/// Consumer-group joins on Tansu take up to ~20 s.
const GROUP_JOIN: Duration = Duration::from_secs(90);

fn events() -> Vec<AuditEvent> {
    let parse = |v: Value| serde_json::from_value::<AuditEvent>(v).unwrap();
    vec![
        parse(
            json!({"version": "0.2", "type": "flag", "action": "created",
            "metadata": {"actor": {"authentication": "token", "email": "dev@example.com"}},
            "payload": {"key": "dark-mode", "enabled": true, "rollout": 25},
            "timestamp": "2024-05-01T10:00:00Z", "status": "success"}),
        ),
        parse(
            json!({"version": "0.2", "type": "segment", "action": "deleted",
            "metadata": {"actor": {"authentication": "none", "ip": "172.17.0.1"}},
            "payload": {"key": "beta", "constraints": [{"property": "plan", "value": "pro"}]},
            "timestamp": "2024-05-01T10:00:01.250Z", "status": "success"}),
        ),
        parse(
            json!({"version": "0.2", "type": "flag", "action": "updated",
            "metadata": {"actor": {"authentication": "oidc", "name": "Kyle"}},
            "payload": {"key": "dark-mode", "enabled": false},
            "timestamp": "2024-05-01T10:00:02Z", "status": "success"}),
        ),
        parse(
            json!({"version": "0.2", "type": "variant", "action": "created",
            "metadata": {"actor": {"authentication": "token"}},
            "payload": {"key": "blue"},
            "timestamp": "2024-05-01T10:00:03Z", "status": "denied"}),
        ),
    ]
}

/// Sends `records` to the collector's OTLP gRPC receiver in one request.
async fn send(collector: &Collector, records: Vec<LogRecord>) {
    send_to(collector.endpoint("grpc"), records).await
}

/// Sends `records` to an OTLP gRPC endpoint in one request; returns once
/// it answered OK.
async fn send_to(endpoint: std::net::SocketAddr, records: Vec<LogRecord>) {
    let mut client = LogsServiceClient::connect(format!("http://{endpoint}"))
        .await
        .unwrap();
    client
        .export(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
        .await
        .unwrap();
}

/// Every number as a double (protobuf's Struct has no integers).
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

/// The `audit.id`s of the records of OTLP/JSON requests (protobuf's JSON
/// mapping or OTLP/JSON: the same shape), in order.
fn otlp_ids(request: &Value) -> Vec<String> {
    let mut ids = Vec::new();
    for resource in request["resourceLogs"].as_array().into_iter().flatten() {
        for scope in resource["scopeLogs"].as_array().into_iter().flatten() {
            for record in scope["logRecords"].as_array().into_iter().flatten() {
                for kv in record["attributes"].as_array().into_iter().flatten() {
                    if kv["key"] == "audit.id" {
                        ids.push(kv["value"]["stringValue"].as_str().unwrap().to_owned());
                    }
                }
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporters_four_encodings_are_what_an_independent_client_decodes() {
    let tansu = Tansu::start();
    for topic in [
        "t-json",
        "t-routed",
        "t-protobuf",
        "t-otlp-proto",
        "t-otlp-json",
    ] {
        tansu.create_topic(topic, 2);
    }
    let brokers = tansu.brokers();
    let collector = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  kafka/json: {{brokers: ["{brokers}"], topic: t-json, topic_from_attribute: tenant.topic}}
  kafka/protobuf: {{brokers: ["{brokers}"], topic: t-protobuf, encoding: protobuf}}
  kafka/otlp_proto: {{brokers: ["{brokers}"], topic: t-otlp-proto, encoding: otlp_proto, key: none, compression: zstd}}
  kafka/otlp_json: {{brokers: ["{brokers}"], topic: t-otlp-json, encoding: otlp_json, key: none, compression: gzip}}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [kafka/json, kafka/protobuf, kafka/otlp_proto, kafka/otlp_json]
"#
    ));
    let events = events();
    let ids: Vec<String> = (0..events.len())
        .map(|i| format!("0190a1b2-0000-7000-8000-00000000000{i}"))
        .collect();
    let records = events
        .iter()
        .zip(&ids)
        .enumerate()
        .map(|(i, (event, id))| {
            let mut record = event.to_log_record();
            record.attributes.push(string_kv("audit.id", id.as_str()));
            if i == 2 {
                record
                    .attributes
                    .push(string_kv("tenant.topic", "t-routed"));
            }
            record
        })
        .collect();
    // Acknowledged only once every exporter's messages are confirmed.
    send(&collector, records).await;

    // json: Flipt's event, keyed by noun, id and source in headers.
    let json_messages = kafka_consume(&brokers, "t-json", 3, "json");
    assert_eq!(json_messages.len(), 3, "{json_messages:?}");
    let routed = kafka_consume(&brokers, "t-routed", 1, "json");
    assert_eq!(routed.len(), 1, "{routed:?}");
    let by_id: HashMap<&str, &Value> = json_messages
        .iter()
        .chain(&routed)
        .map(|m| (m["headers"]["audit.id"].as_str().unwrap(), m))
        .collect();
    for (event, id) in events.iter().zip(&ids) {
        let message = by_id[id.as_str()];
        assert_eq!(
            message["value"],
            serde_json::to_value(event).unwrap(),
            "{id}"
        );
        assert_eq!(message["key"], event.event_type.as_str());
        assert_eq!(message["headers"]["audit.source"], "otlp");
    }
    assert_eq!(
        by_id[ids[2].as_str()]["value"]["action"],
        "updated",
        "routed by tenant.topic"
    );

    // protobuf: read with Flipt's schema, it is Flipt's event.
    let protobuf = kafka_consume(&brokers, "t-protobuf", 4, "protobuf");
    assert_eq!(protobuf.len(), 4, "{protobuf:?}");
    for m in &protobuf {
        let id = m["headers"]["audit.id"].as_str().unwrap();
        let event = &events[ids.iter().position(|i| i == id).unwrap()];
        let mut expected = serde_json::to_value(event).unwrap();
        let mut got = m["value"].clone();
        assert_eq!(
            parse_rfc3339(got["timestamp"].as_str().unwrap()).unwrap(),
            event.timestamp,
            "{id}"
        );
        expected.as_object_mut().unwrap().remove("timestamp");
        got.as_object_mut().unwrap().remove("timestamp");
        assert_eq!(doubles(&got), doubles(&expected), "{id}");
        assert_eq!(m["key"], event.event_type.as_str());
    }

    // otlp_proto, otlp_json: one request per batch, every record in it.
    for (topic, encoding) in [("t-otlp-proto", "otlp_proto"), ("t-otlp-json", "otlp_json")] {
        let messages = kafka_consume(&brokers, topic, 1, encoding);
        assert_eq!(messages.len(), 1, "{encoding}: {messages:?}");
        assert_eq!(otlp_ids(&messages[0]["value"]), ids, "{encoding}");
        assert_eq!(messages[0]["key"], Value::Null);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_topic_creates_the_topic_at_start_and_topics_from_attributes_on_first_use() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let collector = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  kafka:
    brokers: ["{brokers}"]
    topic: made-at-start
    topic_from_attribute: tenant.topic
    create_topic: {{partitions: 3}}
service:
  pipelines:
    logs: {{receivers: [otlp], exporters: [kafka]}}
"#
    ));
    collector.wait_for_log("created the topic (create_topic)");
    let mut records = records_with_ids(0, 2);
    records[1]
        .attributes
        .push(string_kv("tenant.topic", "made-on-first-use"));
    send(&collector, records).await;
    let at_start = kafka_consume(&brokers, "made-at-start", 1, "json");
    assert_eq!(at_start.len(), 1, "{at_start:?}");
    assert_eq!(at_start[0]["headers"]["audit.id"], "id-0");
    let on_use = kafka_consume(&brokers, "made-on-first-use", 1, "json");
    assert_eq!(on_use.len(), 1, "{on_use:?}");
    assert_eq!(on_use[0]["headers"]["audit.id"], "id-1");
}

/// Waits until the OTLP/JSON lines of `path` hold `n` distinct audit ids;
/// returns how many times each id was written.
fn written_ids(path: &std::path::Path, n: usize, within: Duration) -> HashMap<String, usize> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for line in text.lines() {
            let request: Value = serde_json::from_str(line).unwrap();
            for id in otlp_ids(&request) {
                *seen.entry(id).or_insert(0) += 1;
            }
        }
        if seen.len() >= n {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {} of {n} events",
            path.display(),
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn shipped(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../collector-config")
            .join(name),
    )
    .unwrap()
}

fn flipt_events(from: usize, n: usize) -> Value {
    Value::Array(
        (from..from + n)
            .map(|i| {
                flipt_event(
                    "flag",
                    "created",
                    &format!("flag-{i}"),
                    "2024-05-01T10:00:00Z",
                )
            })
            .collect(),
    )
}

#[test]
fn agent_to_kafka_to_gateway_writes_every_event_exactly_once_and_skips_a_poison_message() {
    let tansu = Tansu::start();
    tansu.create_topic("audit-events", 2);
    let brokers = tansu.brokers();
    let env = [
        ("KAFKA_BROKERS", brokers.as_str()),
        ("OTLP_GRPC_ENDPOINT", "127.0.0.1:0"),
        ("OTLP_HTTP_ENDPOINT", "127.0.0.1:0"),
        ("AUDIT_DIR", "{DIR}"),
    ];
    let gateway = Collector::start_with_env(&shipped("kafka-to-gateway.yaml"), &env);
    let agent = Collector::start_with_env(&shipped("agent-to-kafka.yaml"), &env);

    // A message no encoding can read, before the events.
    kafka_produce(&brokers, "audit-events", &[b"not an OTLP request"]);
    let mut total = 0;
    for round in 0..3 {
        let sent = send_with_python_sdk(
            "grpc",
            agent.endpoint("grpc"),
            &flipt_events(round * 10, 10),
        );
        assert_eq!(sent["exported"], 10, "{sent}");
        total += 10;
    }
    written_ids(&gateway.path("audit.jsonl"), total, GROUP_JOIN);
    // A moment more: a duplicate would show now.
    std::thread::sleep(Duration::from_secs(2));
    let written = written_ids(&gateway.path("audit.jsonl"), total, GROUP_JOIN);
    assert_eq!(written.len(), total);
    assert!(
        written.values().all(|n| *n == 1),
        "written more than once: {written:?}"
    );
    gateway.wait_for_log("refused a message");
    let poison = gateway
        .log()
        .lines()
        .find(|l| l.contains("refused a message"))
        .unwrap()
        .to_owned();
    // Where it was: the first message of its partition; and what became of it.
    assert!(
        poison.contains("cannot decode the message at audit-events/"),
        "{poison}"
    );
    assert!(poison.contains("@0 (encoding "), "{poison}");
    assert!(
        poison.contains("skipped (set dead_letter_topic"),
        "{poison}"
    );
}

/// A gateway of group `group` reading `topic`, exporting with the exporter
/// `out` of type `exporter_type` and settings `exporter`.
fn gateway(
    brokers: &str,
    topic: &str,
    group: &str,
    exporter_type: &str,
    exporter: &str,
) -> Collector {
    Collector::start(&format!(
        r#"
receivers:
  kafka:
    brokers: ["{brokers}"]
    topics: [{topic}]
    group_id: {group}
    encoding: otlp_proto
    session_timeout: 6s
    heartbeat_interval: 1s
exporters:
  {exporter_type}/out: {exporter}
service:
  pipelines:
    logs: {{receivers: [kafka], exporters: [{exporter_type}/out]}}
"#
    ))
}

#[test]
fn a_gateway_killed_before_its_batch_was_acknowledged_leaves_it_to_the_next_one() {
    let tansu = Tansu::start();
    tansu.create_topic("audit-events", 1);
    let brokers = tansu.brokers();
    let agent = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  kafka: {{brokers: ["{brokers}"], encoding: otlp_proto}}
service:
  pipelines:
    logs: {{receivers: [otlp], exporters: [kafka]}}
"#
    ));
    // The first gateway forwards to an OTLP endpoint that is down: it never
    // gets its batch acknowledged.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut first = gateway(
        &brokers,
        "audit-events",
        "gateways",
        "otlp",
        &format!(
            "{{endpoint: \"http://{closed}\", retry_on_failure: {{initial_interval: 100ms}}}}"
        ),
    );
    let sent = send_with_python_sdk("grpc", agent.endpoint("grpc"), &flipt_events(0, 10));
    assert_eq!(sent["exported"], 10, "{sent}");
    first.wait_for_log_within("messages received", GROUP_JOIN);
    // Long enough for several commit intervals: a receiver committing what
    // it merely read would commit now.
    std::thread::sleep(Duration::from_secs(3));
    first.kill();

    let second = gateway(
        &brokers,
        "audit-events",
        "gateways",
        "file",
        "{path: \"{DIR}/audit.jsonl\", format: otlp_json}",
    );
    let sent = send_with_python_sdk("grpc", agent.endpoint("grpc"), &flipt_events(10, 10));
    assert_eq!(sent["exported"], 10, "{sent}");
    let written = written_ids(&second.path("audit.jsonl"), 20, GROUP_JOIN);
    assert_eq!(written.len(), 20, "{written:?}");
}

#[test]
fn validate_check_connectivity_asks_the_brokers_about_each_topic() {
    let tansu = Tansu::start();
    tansu.create_topic("audit-events", 1);
    let config = |topic: &str| {
        format!(
            "receivers: {{kafka: {{brokers: [\"{b}\"], topics: [{topic}]}}}}\n\
             exporters: {{kafka: {{brokers: [\"{b}\"], topic: {topic}}}}}\n\
             service: {{pipelines: {{logs: {{receivers: [kafka], exporters: [kafka]}}}}}}",
            b = tansu.brokers()
        )
    };
    let run = |text: String| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(auditcol_e2e::binary())
            .args([
                "validate",
                "--check-connectivity",
                "--config",
                path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, stdout) = run(config("audit-events"));
    assert!(ok, "{stdout}");
    assert!(
        stdout.contains("exporters::kafka: reachable: brokers"),
        "{stdout}"
    );
    assert!(
        stdout.contains("receivers::kafka: reachable: brokers"),
        "{stdout}"
    );
    assert!(stdout.ends_with("OK\n"), "{stdout}");
    let (ok, stdout) = run(config("missing"));
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("exporters::kafka: FAILED: topic `missing` does not exist"),
        "{stdout}"
    );
    assert!(
        stdout.contains("receivers::kafka: FAILED: topic `missing` does not exist"),
        "{stdout}"
    );
}

/// Records of `flag:created` events with ids `id-<from>`…
fn records_with_ids(from: usize, n: usize) -> Vec<LogRecord> {
    (from..from + n)
        .map(|i| {
            let mut record = AuditEvent::new("flag", "created").to_log_record();
            record
                .attributes
                .push(string_kv("audit.id", format!("id-{i}")));
            record
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_broker_is_down_no_client_hears_ok_and_nothing_acknowledged_is_lost() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("audit-events", 1, 1).unwrap();
    let agent = Collector::start(&format!(
        r#"
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:0"}}
exporters:
  kafka:
    brokers: ["{}"]
    timeout: 1s
    retry_on_failure: {{initial_interval: 200ms, max_interval: 1s, max_elapsed_time: 0s}}
service:
  pipelines:
    logs: {{receivers: [otlp], exporters: [kafka]}}
"#,
        mock.bootstrap_servers()
    ));
    let endpoint = agent.endpoint("grpc");
    send_to(endpoint, records_with_ids(0, 5)).await;

    mock.broker_down(1).unwrap();
    let sending = tokio::spawn(send_to(endpoint, records_with_ids(5, 5)));
    // Delivery reports fail (timeout 1s) and the agent retries meanwhile.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        !sending.is_finished(),
        "the client heard OK while the broker was down"
    );
    mock.broker_up(1).unwrap();
    tokio::time::timeout(Duration::from_secs(60), sending)
        .await
        .expect("acknowledged once the broker is back")
        .unwrap();

    // Everything acknowledged is in the topic.
    let bootstrap = mock.bootstrap_servers();
    let ids = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "reader")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition_offset("audit-events", 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&list).unwrap();
        let mut ids = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while ids.len() < 10 && Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let id = m.headers().and_then(|h| {
                    use rdkafka::message::Headers;
                    h.iter()
                        .find(|h| h.key == "audit.id")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                });
                ids.extend(id);
            }
        }
        ids
    })
    .await
    .unwrap();
    let expected: std::collections::BTreeSet<String> = (0..10).map(|i| format!("id-{i}")).collect();
    assert_eq!(ids, expected);
}
