//! Secrets stay secret: no secret string of a config appears in the logs of
//! a full run (at `debug`, with refused requests and delivered ones), in
//! `print-config` or in `validate`.

use std::process::Command;

use auditcol_e2e::{
    Collector, WebhookSink, binary, file_lines, flipt_event, http_post,
    sign_with_documented_snippet,
};

/// Each secret once, as an operator would set it in the environment.
const SECRETS: [(&str, &str); 6] = [
    ("FLIPT_SECRET", "flipt-in-Zq8v3L"),
    ("SIEM_SECRET", "siem-out-Kd92Wp"),
    ("SIEM_API_KEY", "apikey-Xr51Tn"),
    ("HASH_KEY", "hashkey-Bb77Qe"),
    ("TRAIL_KEY", "trailkey-Mm40Ys-9f2c71d0a4"),
    ("KAFKA_PASSWORD", "kafka-pw-Hh13Ua"),
];

const CONFIG: &str = r#"
receivers:
  webhook/flipt:
    endpoint: "127.0.0.1:0"
    format: audit
    signing_secret: ${env:FLIPT_SECRET}
processors:
  redaction:
    hash_key: ${env:HASH_KEY}
    attributes: {"audit.actor.email": hash}
exporters:
  file:
    path: "{DIR}/audit.jsonl"
    integrity:
      hmac_key: ${env:TRAIL_KEY}
  webhook/siem:
    endpoint: "{SIEM_URL}"
    signing_secret: ${env:SIEM_SECRET}
    headers:
      X-API-Key: ${env:SIEM_API_KEY}
service:
  pipelines:
    logs:
      receivers: [webhook/flipt]
      processors: [redaction]
      exporters: [file, webhook/siem]
"#;

/// The same, with a Kafka exporter that is only validated and printed.
fn config_with_kafka(siem_url: &str) -> String {
    CONFIG.replace("{SIEM_URL}", siem_url).replace(
        "exporters:\n",
        "exporters:\n  kafka:\n    brokers: [\"127.0.0.1:9\"]\n    topic: audit\n    authentication:\n      mechanism: PLAIN\n      username: auditcol\n      password: ${env:KAFKA_PASSWORD}\n",
    )
}

fn assert_no_secret(what: &str, text: &str) {
    for (name, value) in SECRETS {
        assert!(!text.contains(value), "{what} shows {name}:\n{text}");
    }
}

#[test]
fn no_secret_appears_in_the_logs_of_a_full_run() {
    let dir = tempfile::tempdir().unwrap();
    let siem = WebhookSink::start(dir.path(), "siem", SECRETS[1].1, "X-Auditcol-Signature");
    let mut env: Vec<(&str, &str)> = SECRETS.to_vec();
    env.push(("RUST_LOG", "debug"));
    let mut collector = Collector::start_with_env(&CONFIG.replace("{SIEM_URL}", &siem.url), &env);
    let endpoint = collector.component_endpoint("webhook/flipt");

    let mut event = flipt_event("flag", "created", "dark-mode", "2024-05-01T10:00:00Z");
    event["metadata"]["actor"]["email"] = "kyle@example.com".into();
    let body = serde_json::to_vec(&event).unwrap();
    let post = |signature: &str| {
        http_post(
            endpoint,
            "/",
            &[
                ("Content-Type", "application/json"),
                ("x-flipt-webhook-signature", signature),
            ],
            &body,
        )
    };
    // Refused: a wrong signature, and one made with the right secret over other bytes.
    assert_eq!(post("00").status, 401);
    let other = sign_with_documented_snippet(SECRETS[0].1, b"other bytes");
    assert_eq!(post(&other).status, 401);
    // Accepted, written and delivered.
    let reply = post(&sign_with_documented_snippet(SECRETS[0].1, &body));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(file_lines(&collector.path("audit.jsonl"), 1).len(), 1);
    let delivered = siem.requests();
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].0, "the SIEM could not verify the signature");

    assert!(collector.terminate().success());
    let log = collector.log();
    assert!(
        log.contains("DEBUG"),
        "the run did not log at debug:\n{log}"
    );
    assert_no_secret("the collector's log", &log);
}

#[test]
fn print_config_and_validate_mask_every_secret_and_fill_in_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        config_with_kafka("https://siem.example/in").replace("{DIR}", dir.path().to_str().unwrap()),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(binary())
            .args(args)
            .arg("--config")
            .arg(&path)
            .envs(SECRETS)
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(out.status.success(), "{args:?}: {stderr}");
        (stdout, stderr)
    };

    let (printed, stderr) = run(&["print-config", "--format", "json"]);
    assert_no_secret("print-config", &(printed.clone() + &stderr));
    let config: serde_json::Value = serde_json::from_str(&printed).unwrap();
    let redacted = serde_json::json!("[REDACTED]");
    for (path, want) in [
        ("/receivers/webhook~1flipt/signing_secret", &redacted),
        ("/exporters/webhook~1siem/signing_secret", &redacted),
        ("/exporters/webhook~1siem/headers/X-API-Key", &redacted),
        ("/processors/redaction/hash_key", &redacted),
        ("/exporters/file/integrity/hmac_key", &redacted),
        ("/exporters/kafka/authentication/password", &redacted),
        // Defaults filled in.
        (
            "/exporters/kafka/authentication/username",
            &"auditcol".into(),
        ),
        ("/exporters/file/format", &"json".into()),
        (
            "/exporters/webhook~1siem/sending_queue/queue_size",
            &1000.into(),
        ),
        (
            "/receivers/webhook~1flipt/read_header_timeout",
            &"10s".into(),
        ),
        ("/service/telemetry/logs/level", &"info".into()),
    ] {
        assert_eq!(config.pointer(path), Some(want), "{path} in {printed}");
    }

    let (stdout, stderr) = run(&["validate"]);
    assert_eq!(stdout, "OK\n");
    assert_no_secret("validate", &stderr);
}
