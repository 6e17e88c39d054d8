//! The `redaction` processor in the real binary: personal data in, pseudonyms
//! and masks out, and the raw values nowhere in the written trail.

use auditcol_e2e::{Collector, file_lines, http_post};

fn config(key: &str) -> String {
    format!(
        r#"
receivers:
  webhook:
    endpoint: "127.0.0.1:0"
    format: audit
processors:
  redaction:
    hash_key: "{key}"
    attributes: {{"audit.actor.email": hash, "audit.actor.ip": mask}}
    body: {{"*.password": delete}}
    blocked_values: ['\b\d{{13,16}}\b']
    summary: info
exporters:
  file:
    path: "{{DIR}}/audit.jsonl"
    format: json
  file/otlp:
    path: "{{DIR}}/audit.otlp.jsonl"
    format: otlp_json
service:
  pipelines:
    logs:
      receivers: [webhook]
      processors: [redaction]
      exporters: [file, file/otlp]
"#
    )
}

const EVENTS: &str = r#"[
 {"version":"0.2","type":"flag","action":"updated","metadata":{"actor":{"email":"kyle@example.com","ip":"172.17.0.1"}},
  "payload":{"key":"a","auth":{"password":"hunter2"},"note":"card 4111111111111111"},"timestamp":"2024-05-01T10:00:00Z","status":"success"},
 {"version":"0.2","type":"flag","action":"deleted","metadata":{"actor":{"email":"kyle@example.com","ip":"172.17.0.2"}},
  "payload":{"key":"b"},"timestamp":"2024-05-01T10:00:01Z","status":"success"}
]"#;

fn run(key: &str) -> (Vec<serde_json::Value>, String) {
    let collector = Collector::start(&config(key));
    let reply = http_post(
        collector.component_endpoint("webhook"),
        "/",
        &[("Content-Type", "application/json")],
        EVENTS.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let lines = file_lines(&collector.path("audit.jsonl"), 2);
    let otlp = file_lines(&collector.path("audit.otlp.jsonl"), 1).join("\n");
    let events = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, format!("{}\n{otlp}", lines.join("\n")))
}

#[test]
fn personal_data_is_pseudonymised_masked_and_removed_everywhere() {
    let (events, written) = run("key one");
    for raw in [
        "kyle@example.com",
        "172.17.0.1",
        "172.17.0.2",
        "hunter2",
        "4111111111111111",
    ] {
        assert!(!written.contains(raw), "{raw} was written:\n{written}");
    }
    let email =
        |e: &serde_json::Value| e["metadata"]["actor"]["email"].as_str().unwrap().to_owned();
    assert_eq!(
        email(&events[0]),
        email(&events[1]),
        "one person, one pseudonym"
    );
    assert_eq!(events[0]["metadata"]["actor"]["ip"], "172.17.0.0");
    assert_eq!(events[0]["payload"]["auth"], serde_json::json!({}));
    assert_eq!(events[0]["payload"]["note"], "card ****");
    assert!(
        written.contains("audit.redacted"),
        "the summary is in the OTLP output"
    );

    let (other, _) = run("key two");
    assert_ne!(
        email(&other[0]),
        email(&events[0]),
        "another key, another pseudonym"
    );
}
